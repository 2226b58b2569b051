//! Data-parallel pre-training on MPI (feature `mpi`), under `mpirun -np 2` (OpenMPI; as root it
//! needs `--allow-run-as-root`, and `--oversubscribe` on two cores).
//!
//! One binary, two roles (no test harness): run by cargo, it is the driver: it launches itself
//! under `mpirun` as the ranks (`ELECTRA_MPI_ROLE` says what each does), runs the references in
//! process, and compares. The checks:
//! - 2 ranks x 1 thread, 5 steps: the same losses and weights as one process accumulating the
//!   ranks' batches as 2 micro-batches (bit for bit; the issue asks 1e-5), and as ranks connected
//!   by a host's all-reduce through the C ABI (`electra_trainer_set_allreduce`);
//! - two runs give the same bits;
//! - a save at step 3 and a resume give steps 4-5 bit-identical to the uninterrupted run;
//! - a rank that fails makes the other return an error naming it; a rank killed mid-step ends the
//!   job with an error; a rank that hangs makes the other fail after collective_timeout_s;
//! - `mpirun -np 2 electra pretrain --distributed mpi` (corpus shards, rank 0 writing) resumes
//!   bit-identically.

mod common;

use common::dist::*;
use electra::ffi::status::ELECTRA_OK;
use electra::ffi::trainer::*;
use electra::pretrain::{Distributed, TrainOptions, Trainer};
use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    match std::env::var("ELECTRA_MPI_ROLE") {
        Ok(role) => rank_main(&role),
        Err(_) => driver(),
    }
}

// === The ranks ===

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"))
}

/// One rank: steps `ELECTRA_MPI_FROM..ELECTRA_MPI_TO` (optionally resuming, saving, failing,
/// dying or hanging on the way) and writes its losses and weights into `ELECTRA_MPI_OUT`.
fn rank_main(role: &str) {
    let out = PathBuf::from(env("ELECTRA_MPI_OUT"));
    let (from, to): (usize, usize) = (env("ELECTRA_MPI_FROM").parse().unwrap(), env("ELECTRA_MPI_TO").parse().unwrap());
    let mut t = match std::env::var("ELECTRA_MPI_RESUME") {
        Ok(dir) => Trainer::resume(Path::new(&dir)).unwrap(),
        Err(_) => trainer(TrainOptions { distributed: Distributed::Mpi, collective_timeout_s: 4.0, ..opts() }),
    };
    let (r, n) = t.rank();
    assert_eq!(n, 2, "expected 2 ranks");
    let mut losses = Vec::new();
    for s in from..to {
        if r == 1 && s == 2 {
            match role {
                // Mid-step for rank 0, which is waiting in the step's first collective.
                "kill" => unsafe {
                    libc::raise(libc::SIGKILL);
                },
                "hang" => std::thread::sleep(Duration::from_secs(3600)),
                _ => {}
            }
        }
        let mut d = data(s, n * B);
        if role == "fail" && r == 1 && s == 2 {
            d.0[B * T + 3] = 1 << 20; // outside the vocabulary: rank 1's step fails
        }
        match t.train_step(&batch(&d, r * B..(r + 1) * B)) {
            Ok(st) => losses.push([st.loss, st.mlm_loss, st.disc_loss]),
            Err(e) => {
                std::fs::write(out.join(format!("error{r}.txt")), e.to_string()).unwrap();
                std::process::exit(3);
            }
        }
        if std::env::var("ELECTRA_MPI_SAVE_AT").is_ok_and(|v| v == (s + 1).to_string()) {
            t.save(&out.join("checkpoint")).unwrap();
        }
    }
    write_result(&out, r, &losses, &t.weights().unwrap());
}

fn write_result(out: &Path, r: usize, losses: &[[f32; 3]], weights: &[f32]) {
    let l: Vec<u8> = losses.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(out.join(format!("losses{r}.bin")), l).unwrap();
    std::fs::write(
        out.join(format!("weights{r}.bin")),
        weights.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
}

fn read_f32(p: &Path) -> Vec<f32> {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

// === The driver ===

fn mpirun(np: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", &np.to_string()]);
    // OpenMPI's shared-memory transport wants a writable session directory; keep it per run.
    c.env("OMPI_MCA_btl", "self,vader").env("OMPI_MCA_plm_rsh_agent", "false");
    c
}

struct Run {
    dir: PathBuf,
    status: std::process::ExitStatus,
    seconds: f64,
    log: String,
}

fn launch(tag: &str, role: &str, steps: (usize, usize), extra: &[(&str, String)]) -> Run {
    let dir = std::env::temp_dir().join(format!("electra-mpi-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = mpirun(2);
    c.arg(std::env::current_exe().unwrap())
        .env("ELECTRA_MPI_ROLE", role)
        .env("ELECTRA_MPI_OUT", &dir)
        .env("ELECTRA_MPI_FROM", steps.0.to_string())
        .env("ELECTRA_MPI_TO", steps.1.to_string());
    for (k, v) in extra {
        c.env(k, v);
    }
    timed(c, dir)
}

fn timed(mut c: Command, dir: PathBuf) -> Run {
    let t0 = Instant::now();
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("mpirun (apt install openmpi-bin)");
    // Bounded: no scenario may take a minute; a hang here is the failure the test looks for.
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("mpirun did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    Run { dir, status: o.status, seconds: t0.elapsed().as_secs_f64(), log }
}

fn ok(r: &Run) -> &Run {
    assert!(r.status.success(), "mpirun failed ({}):\n{}", r.status, r.log);
    r
}

fn check(name: &str, f: impl FnOnce()) {
    let t0 = Instant::now();
    f();
    eprintln!("ok: {name} ({:.1} s)", t0.elapsed().as_secs_f64());
}

fn driver() {
    if Command::new("mpirun").arg("--version").output().is_err() {
        // CI installs OpenMPI (.ci/run); a developer machine without it is told so, loudly.
        eprintln!("SKIPPED: tests/mpi.rs needs mpirun (apt install openmpi-bin libopenmpi-dev)");
        if std::env::var("CI").is_ok() {
            std::process::exit(1);
        }
        return;
    }
    // Reference: one process, the two ranks' rows as two micro-batches.
    let mut one = trainer(TrainOptions { accumulate_steps: 2, ..opts() });
    let mut ref_losses = Vec::new();
    for s in 0..STEPS {
        let d = data(s, 2 * B);
        let st = one.train_step(&batch(&d, 0..2 * B)).unwrap();
        ref_losses.extend([st.loss, st.mlm_loss, st.disc_loss]);
    }
    let ref_weights = one.weights().unwrap().into_owned();

    let first = launch("steps", "steps", (0, STEPS), &[]);
    check("2 ranks x 1 thread = 1 process with 2 micro-batches, 5 steps", || {
        ok(&first);
        for r in 0..2 {
            let (l, w) = (
                read_f32(&first.dir.join(format!("losses{r}.bin"))),
                read_f32(&first.dir.join(format!("weights{r}.bin"))),
            );
            eprintln!(
                "   rank {r}: losses {:.2e}, weights {:.2e} (relative)",
                rel(&l, &ref_losses),
                rel(&w, &ref_weights)
            );
            assert!(rel(&l, &ref_losses) <= 1e-5 && rel(&w, &ref_weights) <= 1e-5);
            assert!(bits(&w) == bits(&ref_weights), "rank {r}: not bit-identical to the accumulating process");
        }
    });
    check("2 ranks are reproducible run to run", || {
        let again = launch("again", "steps", (0, STEPS), &[]);
        ok(&again);
        assert_eq!(
            std::fs::read(again.dir.join("weights0.bin")).unwrap(),
            std::fs::read(first.dir.join("weights0.bin")).unwrap()
        );
        assert_eq!(
            std::fs::read(again.dir.join("losses1.bin")).unwrap(),
            std::fs::read(first.dir.join("losses1.bin")).unwrap()
        );
    });
    check("the host's all-reduce through the C ABI gives the MPI run's bits", || {
        let (losses, weights) = callback_run();
        assert!(bits(&losses) == bits(&read_f32(&first.dir.join("losses0.bin"))), "losses differ");
        assert!(bits(&weights) == bits(&read_f32(&first.dir.join("weights0.bin"))), "weights differ");
    });
    check("save at step 3, resume: steps 4-5 bit-identical", || {
        let saved = launch("save", "steps", (0, 3), &[("ELECTRA_MPI_SAVE_AT", "3".into())]);
        ok(&saved);
        let ckpt = saved.dir.join("checkpoint");
        let resumed = launch("resume", "steps", (3, STEPS), &[("ELECTRA_MPI_RESUME", ckpt.display().to_string())]);
        ok(&resumed);
        for r in 0..2 {
            assert!(
                std::fs::read(resumed.dir.join(format!("weights{r}.bin"))).unwrap()
                    == std::fs::read(first.dir.join(format!("weights{r}.bin"))).unwrap(),
                "rank {r}: weights after a resume"
            );
            let l = read_f32(&resumed.dir.join(format!("losses{r}.bin")));
            assert!(
                bits(&l) == bits(&read_f32(&first.dir.join(format!("losses{r}.bin")))[9..]),
                "rank {r}: losses 4-5"
            );
        }
    });
    check("a rank that fails makes the other fail, naming it", || {
        let f = launch("fail", "fail", (0, STEPS), &[]);
        assert!(!f.status.success());
        let e0 = std::fs::read_to_string(f.dir.join("error0.txt")).unwrap_or_default();
        let e1 = std::fs::read_to_string(f.dir.join("error1.txt")).unwrap_or_default();
        assert!(e0.contains("failed on rank 1 of 2"), "rank 0: {e0:?}\n{}", f.log);
        assert!(e1.contains("outside the vocabulary"), "rank 1: {e1:?}");
    });
    check("a rank killed mid-step ends the job with an error", || {
        let k = launch("kill", "kill", (0, STEPS), &[]);
        eprintln!("   mpirun exited {} after {:.1} s", k.status, k.seconds);
        assert!(!k.status.success() && k.seconds < 60.0, "{}", k.log);
    });
    check("a rank that hangs fails the other after collective_timeout_s (4 s)", || {
        let h = launch("hang", "hang", (0, STEPS), &[]);
        let e0 = std::fs::read_to_string(h.dir.join("error0.txt")).unwrap_or_default();
        eprintln!("   mpirun exited {} after {:.1} s; rank 0: {e0}", h.status, h.seconds);
        assert!(!h.status.success() && h.seconds < 60.0, "{}", h.log);
        assert!(e0.contains("collective_timeout_s"), "rank 0: {e0:?}\n{}", h.log);
    });
    check("mpirun -np 2 electra pretrain --distributed mpi: resume is bit-identical", cli_resume);
    for tag in ["steps", "again", "save", "resume", "fail", "kill", "hang", "cli-a", "cli-b"] {
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("electra-mpi-{tag}-{}", std::process::id())));
    }
    eprintln!("tests/mpi.rs: all passed");
}

/// 2 ranks as threads of this process, connected through `electra_trainer_set_allreduce` by a
/// C callback that sums in rank order: rank 0's losses and weights.
fn callback_run() -> (Vec<f32>, Vec<f32>) {
    let group = electra::distributed::ThreadGroup::ranks(2);
    extern "C" fn allreduce(data: *mut f32, count: usize, user: *mut c_void) -> i32 {
        // SAFETY: `user` is the `Arc<dyn Collective>` box below, alive for the trainer; `data`
        // holds `count` floats for the call.
        let (c, d) = unsafe {
            (&*(user as *const Arc<dyn electra::distributed::Collective>), std::slice::from_raw_parts_mut(data, count))
        };
        c.all_reduce_sum(d).map_or(1, |()| 0)
    }
    let outs: Vec<(Vec<f32>, PathBuf)> = std::thread::scope(|s| {
        let hs: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(r, c)| {
                s.spawn(move || {
                    let dir = std::env::temp_dir().join(format!("electra-mpi-cb{r}-{}", std::process::id()));
                    let _ = std::fs::remove_dir_all(&dir);
                    let init = std::env::temp_dir().join(format!("electra-mpi-init{r}-{}", std::process::id()));
                    let _ = std::fs::remove_dir_all(&init);
                    electra::hf::save(&common::pair(common::TINY_DISC, true, 5), &init).unwrap();
                    let mut o = serde_json::to_value(TrainOptions { rank: r, world_size: 2, ..opts() }).unwrap();
                    o["vocab_size"] = serde_json::Value::Null;
                    let (init_c, json) =
                        (CString::new(init.to_str().unwrap()).unwrap(), CString::new(o.to_string()).unwrap());
                    let mut t = std::ptr::null_mut();
                    let user = Box::into_raw(Box::new(c.clone()));
                    let mut losses = Vec::new();
                    unsafe {
                        assert_eq!(electra_trainer_new(init_c.as_ptr(), json.as_ptr(), &mut t), ELECTRA_OK);
                        assert_eq!(electra_trainer_set_allreduce(t, Some(allreduce), user.cast()), ELECTRA_OK);
                        for st in 0..STEPS {
                            let d = data(st, 2 * B);
                            let rows = r * B * T..(r + 1) * B * T;
                            let mut stats = electra_step_stats {
                                struct_size: std::mem::size_of::<electra_step_stats>() as u32,
                                ..Default::default()
                            };
                            let rc = electra_trainer_step(
                                t,
                                d.0[rows.clone()].as_ptr(),
                                d.1[rows.clone()].as_ptr(),
                                d.2[rows].as_ptr(),
                                B,
                                T,
                                &mut stats,
                            );
                            assert_eq!(rc, ELECTRA_OK);
                            losses.extend([stats.loss, stats.mlm_loss, stats.disc_loss]);
                        }
                        let out = CString::new(dir.to_str().unwrap()).unwrap();
                        assert_eq!(electra_trainer_export(t, out.as_ptr()), ELECTRA_OK);
                        electra_trainer_free(t);
                        drop(Box::from_raw(user));
                    }
                    let _ = std::fs::remove_dir_all(&init);
                    (losses, dir)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The export is in the pair layout; the flat weights follow the trainer's parameter table.
    let m = electra::hf::load(&outs[0].1).unwrap();
    for (_, d) in &outs {
        let _ = std::fs::remove_dir_all(d);
    }
    (outs[0].0.clone(), m.params.data.clone())
}

/// The CLI under mpirun: 5 steps straight, against 3 steps, a checkpoint, and a resume to 5.
fn cli_resume() {
    let exe = env!("CARGO_BIN_EXE_electra");
    let run = |tag: &str, extra: &[&str]| {
        let dir = std::env::temp_dir().join(format!("electra-mpi-{tag}-{}", std::process::id()));
        let mut c = mpirun(2);
        c.arg(exe).args(["pretrain", "--out"]).arg(&dir);
        c.args("--preset tiny --batch-size 4 --seq-len 32 --threads 1 --distributed mpi".split(' '));
        c.args("--eval-every 0 --eval-batches 1 --log-every 1".split(' '));
        // One schedule for the 3-step run and the 5-step one.
        c.args(["--options", r#"{"total_steps": 5, "warmup_steps": 1}"#]);
        c.args(extra);
        ok(&timed(c, dir.clone()));
        dir
    };
    let a = run("cli-a", &["--steps", "5"]);
    let b = run("cli-b", &["--steps", "3"]);
    let mut c = mpirun(2);
    c.arg(exe).args(["pretrain", "--resume"]).arg(&b).args(["--steps", "5", "--threads", "1"]);
    ok(&timed(c, b.clone()));
    let wa = electra::hf::load(&a.join("final")).unwrap();
    let wb = electra::hf::load(&b.join("final")).unwrap();
    let differ = bits(&wa.params.data).iter().zip(bits(&wb.params.data)).filter(|(a, b)| *a != b).count();
    assert_eq!(differ, 0, "CLI: {differ} of {} weights differ after the resume", wa.params.data.len());
    let metrics = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"loss\"")).count(), 5, "rank 0 logs each step once");
}
