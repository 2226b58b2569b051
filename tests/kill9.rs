//! `kill -9` during checkpointing: `electra pretrain` saves after every step and is killed
//! (SIGKILL) at pseudo-random points, mostly inside a save, many times over. After every kill
//! the checkpoint loads and holds a step no earlier than the last one committed; `--resume`
//! continues from it; and after the next successful save no temporary is left anywhere in the
//! run directory.

#![cfg(unix)]

use electra::io::safetensors::TensorFile;
use electra::pretrain::Trainer;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: usize = 18;
const STEPS: u64 = 100_000;

/// xorshift64: deterministic delays from a fixed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn electra(run: &Path, resume: bool, steps: u64) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_electra"));
    c.args(["pretrain", "--out"]).arg(run);
    if resume {
        c.arg("--resume").arg(run);
    }
    c.args(["--steps", &steps.to_string()])
        .args(["--batch-size", "2", "--seq-len", "16", "--save-every", "1", "--log-every", "1"])
        .args(["--eval-every", "0", "--eval-batches", "1", "--threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

fn metrics_len(run: &Path) -> u64 {
    std::fs::metadata(run.join("metrics.jsonl")).map_or(0, |m| m.len())
}

/// Waits until the child has logged a new step (a save follows at once), or exits.
fn wait_for_a_step(child: &mut Child, run: &Path, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics_len(run) <= before && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The step of the committed checkpoint, read from its header.
fn committed_step(run: &Path) -> u64 {
    let meta = TensorFile::read_metadata(&run.join("checkpoint/trainer.safetensors")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&meta["electra_trainer"]).unwrap();
    state["step"].as_u64().unwrap()
}

/// Every staging directory of ours under `dir` (an `.electra-save-*` directory with our journal).
fn temporaries(dir: &Path, found: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".electra-save-") && p.join("journal.json").exists() {
            found.push(p.clone());
        }
        if p.is_dir() {
            temporaries(&p, found);
        }
    }
}

#[test]
fn kill_9_during_checkpoints_never_loses_a_committed_step() {
    let run = std::env::temp_dir().join(format!("electra-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run);
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let mut committed = 0u64;
    let mut killed_in_save = 0;
    for k in 0..KILLS {
        let mut child = electra(&run, k > 0, STEPS).stderr(Stdio::null()).spawn().unwrap();
        if k == 0 {
            // The first run must commit a checkpoint before it is killed (else nothing to resume).
            let deadline = Instant::now() + Duration::from_secs(30);
            while !run.join("checkpoint/trainer.safetensors").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        wait_for_a_step(&mut child, &run, metrics_len(&run));
        // A step takes a few ms, its save (12 MB, fsynced) most of the rest: kills spread over
        // the next few steps land mostly inside a save.
        std::thread::sleep(Duration::from_micros(rng.below(120_000)));
        let tmp_seen = {
            let mut t = Vec::new();
            temporaries(&run, &mut t);
            !t.is_empty()
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        killed_in_save += usize::from(tmp_seen);
        let t = Trainer::resume(&run.join("checkpoint")).unwrap_or_else(|e| panic!("kill {k}: {e}"));
        assert!(t.step >= committed && t.step > 0, "kill {k}: step {} after {committed}", t.step);
        assert_eq!(committed_step(&run), t.step);
        committed = t.step;
    }
    // Resume to two steps past the last committed one: it continues from there. (A resume only
    // extends the step budget saved in run.json, so lower that budget first.)
    let target = committed + 2;
    let args_path = run.join("run.json");
    let mut args: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&args_path).unwrap()).unwrap();
    args["steps"] = target.into();
    std::fs::write(&args_path, args.to_string()).unwrap();
    let out = electra(&run, true, target).stderr(Stdio::piped()).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "resume after the kills failed: {log}");
    let first = log.lines().find(|l| l.starts_with("step ") && l.contains('/')).unwrap_or("");
    assert!(first.starts_with(&format!("step {}/{target}", committed + 1)), "resumed from elsewhere: {first}");
    assert_eq!(committed_step(&run), target);
    let mut left = Vec::new();
    temporaries(&run, &mut left);
    assert!(left.is_empty(), "temporaries left behind: {left:?}");
    assert!(killed_in_save > 0, "no kill landed inside a save: the test does not test anything");
    eprintln!("{KILLS} kills, {killed_in_save} with a save in flight; resumed at step {committed}");
    let _ = std::fs::remove_dir_all(&run);
}
