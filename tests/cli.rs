//! The `electra` command line under hostile arguments: every bad number, missing file, FIFO,
//! device, directory-as-file, endless stdin and over-long line is a clear error (exit status 1
//! or 2, a message on stderr), never a panic, a signal or a hang; runs are never overwritten by
//! accident; a resume never silently drops a flag; errors come before the work.
//!
//! Tiny settings throughout (the tiny preset, batches of 2 x 16 tokens, 1-2 steps), so the whole
//! file takes well under a minute on 2 cores.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longest a single command may take before the test kills it and fails.
const TIMEOUT: Duration = Duration::from_secs(20);

struct Out {
    code: Option<i32>,
    stderr: String,
    stdout: String,
    args: Vec<String>,
}

impl Out {
    /// A clean failure: status 1 or 2, a message, no panic or abort text.
    fn refused(&self) -> &Self {
        assert!(matches!(self.code, Some(1) | Some(2)), "{:?}: exit {:?}: {}", self.args, self.code, self.stderr);
        self.sane();
        assert!(self.stderr.trim().len() > 10, "{:?}: no message", self.args);
        self
    }

    /// Whatever the outcome: an exit status (no signal), never a panic or an allocation abort.
    fn sane(&self) -> &Self {
        assert!(self.code.is_some(), "{:?}: killed by a signal: {}", self.args, self.stderr);
        assert_ne!(self.code, Some(101), "{:?}: panic: {}", self.args, self.stderr);
        for bad in ["panicked at", "memory allocation", "RUST_BACKTRACE"] {
            assert!(!self.stderr.contains(bad), "{:?}: {bad}: {}", self.args, self.stderr);
        }
        self
    }

    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{:?}: {}", self.args, self.stderr);
        self
    }

    fn says(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "{:?}: expected {needle:?} in: {}", self.args, self.stderr);
        self
    }
}

/// Runs `electra ARGS` with `stdin`, killing it (and failing) after [`TIMEOUT`].
fn electra_with(args: &[&str], stdin: Stdio) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_electra"))
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read_all = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let reader = read_all(Box::new(child.stderr.take().unwrap()));
    let out_reader = read_all(Box::new(child.stdout.take().unwrap()));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still running after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Out {
        code: status.code(),
        stderr: reader.join().unwrap(),
        stdout: out_reader.join().unwrap(),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

fn electra(args: &[&str]) -> Out {
    electra_with(args, Stdio::null())
}

/// A fresh directory under target/tmp (the shared fixture is never removed by its test, so it
/// lives where `cargo clean` reaches it; earlier runs' copies are removed at the next start).
fn temp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("electra-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(s(p)).unwrap();
    // SAFETY: a NUL-terminated path; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", p.display());
}

/// Tiny pre-training flags.
const TINY: [&str; 12] = [
    "--batch-size",
    "2",
    "--seq-len",
    "16",
    "--eval-batches",
    "1",
    "--eval-every",
    "0",
    "--threads",
    "1",
    "--log-every",
    "1",
];

/// A run of 1 step in `dir` (the bundled corpus and vocabulary).
fn pretrain(dir: &Path, extra: &[&str]) -> Out {
    let mut a = vec!["pretrain", "--out", s(dir), "--steps", "1"];
    a.extend(TINY);
    a.extend(extra);
    electra(&a)
}

/// Shared fixtures: a pre-trained tiny pair, a classifier fine-tuned from it, the files.
struct Fixture {
    dir: PathBuf,
    disc: PathBuf,
    cls: PathBuf,
    train: PathBuf,
    fifo: PathBuf,
    long_line: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mine = format!("electra-cli-{}-", std::process::id());
        for e in std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("electra-cli-") && name.ends_with("-fixture") && !name.starts_with(&mine) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = temp("fixture");
        let run = dir.join("run");
        pretrain(&run, &[]).ok();
        let train = dir.join("train.tsv");
        std::fs::write(&train, "label\ttext\npos\ta fine day\nneg\ta grim sea\npos\tcalm water\nneg\tstorm\n").unwrap();
        let cls = dir.join("cls");
        let disc = run.join("final/discriminator");
        electra(&[
            "finetune",
            "--model",
            s(&disc),
            "--train",
            s(&train),
            "--out",
            s(&cls),
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--seq-len",
            "16",
            "--threads",
            "1",
        ])
        .ok();
        let fifo = dir.join("fifo");
        mkfifo(&fifo);
        // One line of 16 MiB: over the line cap, under the file-size cap.
        let long_line = dir.join("long.tsv");
        let mut big = b"pos\t".to_vec();
        big.resize(16 << 20, b'a');
        std::fs::write(&long_line, big).unwrap();
        Fixture { dir, disc, cls, train, fifo, long_line }
    })
}

/// Every file of `dir` (recursively) with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A fresh tiny run takes the tiny recipe's [CLS]-aware detection head (config.json says so, and
/// the finetuner and `detect` read such a discriminator) and a generator whose output layer is
/// its own (HF's `generator_lm_head.weight`, `tie_word_embeddings` false); `--options` gives
/// HF's head and the tied output back.
#[test]
fn the_tiny_recipe_detects_with_the_cls_aware_head_and_unties_the_generator_output() {
    let f = fixture();
    let cfg = std::fs::read_to_string(f.disc.join("config.json")).unwrap();
    assert!(cfg.contains(r#""rtd_head": "cls""#), "{cfg}");
    let config = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
    };
    let gen = f.disc.parent().unwrap().join("generator");
    assert_eq!(config(&gen)["tie_word_embeddings"], false, "{}", config(&gen));
    let names = |dir: &Path| {
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        safetensors::SafeTensors::deserialize(&bytes).unwrap().names().iter().map(|n| n.to_string()).collect::<Vec<_>>()
    };
    assert!(names(&gen).iter().any(|n| n == "generator_lm_head.weight"), "{:?}", names(&gen));
    electra(&["detect", "--model", s(&f.disc), "the sea was calm"]).ok();
    let d = temp("plain-head");
    pretrain(&d.join("run"), &["--options", r#"{"rtd_head": "plain", "tie_generator_output": true}"#]).ok();
    let cfg = std::fs::read_to_string(d.join("run/final/discriminator/config.json")).unwrap();
    assert!(!cfg.contains("rtd_head"), "{cfg}");
    let gen = d.join("run/final/generator");
    assert_eq!(config(&gen)["tie_word_embeddings"], true, "{}", config(&gen));
    assert!(!names(&gen).iter().any(|n| n == "generator_lm_head.weight"), "{:?}", names(&gen));
}

#[test]
fn a_new_run_over_an_earlier_one_is_refused_unless_overwrite() {
    let d = temp("overwrite");
    let run = d.join("run");
    pretrain(&run, &[]).ok();
    let before = snapshot(&run);
    // The same command again: refused before any write, naming --resume and --overwrite.
    pretrain(&run, &[]).refused().says("--resume").says("--overwrite");
    assert!(snapshot(&run) == before, "a refused run changed the directory");
    // --steps 0 over it is refused too (nothing written).
    let mut a = vec!["pretrain", "--out", s(&run), "--steps", "0"];
    a.extend(TINY);
    electra(&a).refused().says("--resume");
    assert!(snapshot(&run) == before);
    // A directory of the user's own files is not a run: a new run goes in beside them.
    let mine = d.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"keep me").unwrap();
    pretrain(&mine, &[]).ok();
    assert_eq!(std::fs::read(mine.join("notes.txt")).unwrap(), b"keep me");
    // --overwrite starts a new run there (a different seed: different weights).
    pretrain(&run, &["--overwrite", "--seed", "5"]).ok();
    let ckpt = |r: &Path| std::fs::read(r.join("checkpoint/trainer.safetensors")).unwrap();
    let old = before.iter().find(|(p, _)| p.ends_with("checkpoint/trainer.safetensors")).unwrap();
    assert!(ckpt(&run) != old.1, "--overwrite did not start a new run");
    // --overwrite and --resume together: a usage error.
    electra(&["pretrain", "--resume", s(&run), "--overwrite"]).refused();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn resume_refuses_flags_that_contradict_the_checkpoint_and_takes_the_rest_from_it() {
    let d = temp("resume");
    let run = d.join("run");
    pretrain(&run, &[]).ok();
    let before = snapshot(&run);
    let corpus = d.join("other.txt");
    std::fs::write(&corpus, "some other text\n").unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["--batch-size", "4"], "--batch-size 4 (the checkpoint holds 2)"),
        (&["--seq-len", "32"], "--seq-len 32 (the checkpoint holds 16)"),
        (&["--learning-rate", "0.5"], "(the checkpoint holds 0.001)"),
        (&["--corpus", s(&corpus)], "(the checkpoint holds the bundled corpus)"),
        (&["--seed", "9"], "--seed 9 (the checkpoint holds 0)"),
        (&["--objective", "mlm"], "--objective mlm (the checkpoint holds electra)"),
        (&["--preset", "small"], "--preset small (the checkpoint holds tiny)"),
        (&["--temperature", "1.5"], "--temperature 1.5 (the checkpoint holds 3)"),
        (&["--eval-batches", "3"], "--eval-batches 3 (the checkpoint holds 1)"),
    ];
    for (flags, needle) in cases {
        let mut a = vec!["pretrain", "--resume", s(&run), "--steps", "2"];
        a.extend(flags);
        electra(&a).refused().says(needle);
        assert!(snapshot(&run) == before, "{flags:?}: a refused resume changed the run");
    }
    // Several at once: each named.
    electra(&["pretrain", "--resume", s(&run), "--batch-size", "3", "--seed", "4"])
        .refused()
        .says("--batch-size 3 (the checkpoint holds 2)")
        .says("--seed 4 (the checkpoint holds 0)");
    // --out and --resume naming different directories.
    electra(&["pretrain", "--out", s(&d.join("elsewhere")), "--resume", s(&run)]).refused().says("different");
    // A total below the checkpoint's step.
    electra(&["pretrain", "--resume", s(&run), "--steps", "0"]).refused().says("checkpoint's step 1");
    // The same values as the checkpoint are no conflict; flags left out come from it.
    electra(&["pretrain", "--resume", s(&run), "--steps", "2", "--batch-size", "2", "--threads", "1"]).ok();
    let args: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!((args["steps"].as_u64(), args["seq_len"].as_u64()), (Some(2), Some(16)));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn steps_0_is_a_dry_run_that_writes_nothing() {
    let d = temp("dry");
    let run = d.join("run");
    let mut a = vec!["pretrain", "--out", s(&run), "--steps", "0"];
    a.extend(TINY);
    electra(&a).ok().says("parameters").says("nothing was written");
    assert!(!run.exists(), "--steps 0 wrote {}", run.display());
    // The dry run still checks: a bad corpus is refused.
    let mut b = a.clone();
    b.extend(["--corpus", "/nonexistent/corpus.txt"]);
    electra(&b).refused();
    assert!(!run.exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn finetune_and_quantize_outputs_that_cannot_be_saved_fail_before_the_work() {
    let f = fixture();
    let d = temp("out");
    let file = d.join("a-file");
    std::fs::write(&file, b"user data").unwrap();
    let under_file = file.join("sub");
    for out in [".", "..", "/", s(&file), s(&under_file), "/proc/electra-out", ""] {
        let t0 = Instant::now();
        let o = electra(&[
            "finetune",
            "--model",
            s(&f.disc),
            "--train",
            s(&f.train),
            "--out",
            out,
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--seq-len",
            "16",
            "--threads",
            "1",
        ]);
        o.refused();
        assert!(!o.stderr.contains("epoch 1"), "--out {out:?}: trained before failing: {}", o.stderr);
        assert!(t0.elapsed() < Duration::from_secs(10));
        electra(&["quantize", "--model", s(&f.cls), "--out", out]).refused();
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"user data");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn files_the_cli_reads_must_be_regular_bounded_and_short_lined() {
    let f = fixture();
    // A directory without text files (the fixture's own holds vocab.txt files: a corpus).
    let empty_dir = f.dir.join("empty-dir");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let (fifo, long, dir) = (s(&f.fifo), s(&f.long_line), s(&empty_dir));
    let (disc, cls, train) = (s(&f.disc), s(&f.cls), s(&f.train));
    let ft = |t: &str, e: Option<&str>| {
        let mut a = vec!["finetune", "--model", disc, "--train", t, "--out", "/tmp/electra-cli-never", "--epochs", "1"];
        if let Some(e) = e {
            a.extend(["--eval", e]);
        }
        electra(&a)
    };
    for bad in [fifo, dir, "/dev/zero", "/nonexistent.tsv"] {
        ft(bad, None).refused();
        ft(train, Some(bad)).refused();
        electra(&["predict", "--model", cls, "--input", bad]).refused();
        let mut a = vec!["pretrain", "--out", "/tmp/electra-cli-never", "--steps", "0", "--corpus", bad];
        a.extend(TINY);
        electra(&a).refused();
        electra(&["pretrain", "--out", "/tmp/electra-cli-never", "--steps", "0", "--vocab", bad]).refused();
    }
    ft(fifo, None).says("regular file");
    ft(long, None).refused().says("longer than the limit");
    electra(&["predict", "--model", cls, "--input", long]).refused().says("longer than the limit");
    // Endless stdin with no newline: an error at the line cap, not an allocation abort.
    let zero = std::fs::File::open("/dev/zero").unwrap();
    electra_with(&["embed", "--model", cls], Stdio::from(zero)).refused().says("longer than the limit");
    let long_in = std::fs::File::open(&f.long_line).unwrap();
    electra_with(&["embed", "--model", cls], Stdio::from(long_in)).refused().says("longer than the limit");
    // --match-flops and --resume read JSON files of a run: a FIFO there is refused.
    let fake = f.dir.join("fake-run");
    std::fs::create_dir_all(&fake).unwrap();
    let _ = std::fs::remove_file(fake.join("summary.json"));
    mkfifo(&fake.join("summary.json"));
    let mut a = vec!["pretrain", "--out", "/tmp/electra-cli-never", "--match-flops", s(&fake)];
    a.extend(TINY);
    electra(&a).refused().says("regular file");
    assert!(!Path::new("/tmp/electra-cli-never").exists());
}

/// xorshift64: the generated combinations are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Generated combinations of hostile numbers and paths over every subcommand: each ends with a
/// status of 0, 1 or 2 (a message unless 0) within the time limit, never a panic or a signal.
/// Valid combinations stay cheap (a dry run, one epoch, one repetition).
#[test]
fn generated_hostile_argument_combinations_fail_cleanly() {
    let f = fixture();
    let d = temp("fuzz");
    let empty = d.join("empty.tsv");
    std::fs::write(&empty, b"").unwrap();
    let (disc, cls, train) = (s(&f.disc).to_string(), s(&f.cls).to_string(), s(&f.train).to_string());
    let numbers = [
        "0",
        "-1",
        "-0",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e309",
        "1e-45",
        "abc",
        "",
        " 3",
        "0x10",
        "1.5",
        "99999999999999999999999",
        "18446744073709551615",
        "4294967297",
        "1e30",
        "-1e30",
        "2",
    ];
    let paths = [
        s(&f.fifo).to_string(),
        s(&f.dir).to_string(),
        "/dev/zero".into(),
        "/dev/null".into(),
        "/nonexistent/x".into(),
        s(&empty).to_string(),
        s(&f.long_line).to_string(),
        String::new(),
    ];
    // (subcommand with cheap valid settings, numeric flags, path flags). Step and epoch
    // counts, whose large valid values mean long runs, get no large valid values below.
    type Spec = (Vec<String>, Vec<&'static str>, Vec<&'static str>);
    let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let specs: Vec<Spec> = vec![
        (
            v(&["pretrain", "--steps", "0", "--batch-size", "2", "--seq-len", "16", "--eval-batches", "1"]),
            vec![
                "--steps",
                "--batch-size",
                "--seq-len",
                "--threads",
                "--learning-rate",
                "--warmup-steps",
                "--temperature",
                "--eval-every",
                "--eval-batches",
                "--save-every",
                "--log-every",
                "--accumulate-steps",
                "--collective-timeout",
                "--generator-fraction",
                "--seed",
            ],
            vec!["--corpus", "--vocab", "--init", "--match-flops", "--resume", "--preset"],
        ),
        (
            v(&[
                "finetune",
                "--model",
                &disc,
                "--train",
                &train,
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--seq-len",
                "16",
            ]),
            vec![
                "--epochs",
                "--batch-size",
                "--seq-len",
                "--learning-rate",
                "--layer-decay",
                "--weight-decay",
                "--threads",
                "--seed",
            ],
            vec!["--train", "--eval", "--model"],
        ),
        (v(&["fill-mask", "--model", s(&f.dir.join("run/final")), "the [MASK] sea"]), vec!["--top-k"], vec!["--model"]),
        (v(&["predict", "--model", &cls]), vec![], vec!["--input", "--model"]),
        (
            v(&["bench", "train", "--preset", "tiny", "--batch-size", "1", "--seq-len", "8", "--reps", "1"]),
            vec!["--batch-size", "--seq-len", "--threads", "--reps"],
            vec!["--model", "--save-model"],
        ),
    ];
    let long_runs = ["--steps", "--epochs", "--reps", "--warmup-steps"];
    let mut rng = Rng(0x00c1_1f22_0bad_5eed);
    let t0 = Instant::now();
    let mut codes = std::collections::BTreeMap::new();
    for case in 0..300 {
        let (base, nums, files) = &specs[case % specs.len()];
        let mut args = base.clone();
        let out_dir = d.join(format!("out{case}"));
        match args[0].as_str() {
            "pretrain" | "finetune" => args.extend(["--out".into(), s(&out_dir).into()]),
            _ => {}
        }
        if args[0] == "predict" && rng.below(2) == 0 {
            args.push("some text".into());
        }
        for _ in 0..1 + rng.below(3) {
            let use_file = !files.is_empty() && (nums.is_empty() || rng.below(3) == 0);
            let (flag, value) = if use_file {
                (files[rng.below(files.len())], paths[rng.below(paths.len())].clone())
            } else {
                let flag = nums[rng.below(nums.len())];
                let mut value = numbers[rng.below(numbers.len())];
                // A huge valid count is a long run, not a hostile input.
                if long_runs.contains(&flag) && value.parse::<u64>().is_ok_and(|x| x > 2) {
                    value = "-5";
                }
                (flag, value.to_string())
            };
            // Replace the flag if the base already has it (clap refuses a repeat).
            if let Some(i) = args.iter().position(|a| a == flag) {
                args[i + 1] = value;
                continue;
            }
            args.push(flag.into());
            args.push(value);
        }
        if args[0] == "predict" && !args.iter().any(|a| a == "--input" || a == "some text") {
            args.push("some text".into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = electra(&refs);
        o.sane();
        if o.code != Some(0) {
            o.refused();
        }
        *codes.entry(o.code.unwrap()).or_insert(0) += 1;
    }
    eprintln!("generated combinations in {:.1} s, by exit status: {codes:?}", t0.elapsed().as_secs_f64());
    // The combinations reach past the parser: some run, some are refused by the checks after it.
    assert!(codes.contains_key(&0) && codes.contains_key(&1) && codes.contains_key(&2), "{codes:?}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The numeric flags named in the issue: zero, negative and non-finite values are usage errors
/// (status 2, the flag named) before anything runs.
#[test]
fn numeric_flags_are_checked_before_anything_runs() {
    let cases: [&[&str]; 18] = [
        &["finetune", "--model", "m", "--train", "t", "--out", "o", "--batch-size", "0"],
        &["finetune", "--model", "m", "--train", "t", "--out", "o", "--epochs", "0"],
        &["finetune", "--model", "m", "--train", "t", "--out", "o", "--seq-len", "1"],
        &["finetune", "--model", "m", "--train", "t", "--out", "o", "--learning-rate", "nan"],
        &["finetune", "--model", "m", "--train", "t", "--out", "o", "--layer-decay", "0"],
        &["bench", "train", "--reps", "0"],
        &["bench", "infer", "--batch-size", "-3"],
        &["bench", "infer", "--threads", "100000"],
        &["pretrain", "--out", "o", "--batch-size", "0"],
        &["pretrain", "--out", "o", "--learning-rate", "0"],
        &["pretrain", "--out", "o", "--temperature", "-1"],
        &["pretrain", "--out", "o", "--log-every", "0"],
        &["pretrain", "--out", "o", "--accumulate-steps", "0"],
        &["pretrain", "--out", "o", "--dropout", "1.5"],
        &["pretrain", "--out", "o", "--dropout", "maybe"],
        &["finetune", "--model", "m", "--train", "t", "--out", "o", "--dropout", "-0.1"],
        &["finetune", "--model", "m", "--train", "t", "--out", "o", "--pool", "max"],
        &["fill-mask", "--model", "m", "--top-k", "0", "x [MASK]"],
    ];
    for args in cases {
        let o = electra(args);
        o.refused();
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        let flag = args.iter().rev().find(|a| a.starts_with("--") && a.len() > 2).unwrap();
        let flag = flag.split('=').next().unwrap();
        assert!(o.stderr.contains(flag), "{args:?}: {}", o.stderr);
    }
}

/// With --probe-train/--probe-eval every evaluation logs the representation statistics and the
/// probes' accuracy (step 0's is the random-init baseline); one file without the other is a
/// usage error.
#[test]
fn probes_are_logged_at_each_evaluation() {
    let dir = temp("probe");
    let (train, eval) = (dir.with_extension("train.tsv"), dir.with_extension("eval.tsv"));
    let rows = |n: usize| {
        (0..n)
            .map(|i| if i % 2 == 0 { format!("good\tthe whale was {i}\n") } else { format!("bad\tcall me {i}\n") })
            .collect::<String>()
    };
    std::fs::write(&train, rows(40)).unwrap();
    std::fs::write(&eval, rows(10)).unwrap();
    pretrain(&dir, &["--probe-train", s(&train)]).refused().says("--probe-eval");
    let _ = std::fs::remove_dir_all(&dir);
    pretrain(&dir, &["--probe-train", s(&train), "--probe-eval", s(&eval), "--dropout", "0.2"]).ok();
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let evals: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("eval_cls_cosine").is_some())
        .collect();
    assert_eq!(evals.len(), 2, "step 0 and the end: {metrics}");
    for v in &evals {
        for key in ["probe_mean_accuracy", "probe_cls_accuracy", "eval_cls_cosine", "eval_top_direction_share"] {
            let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"));
            assert!((-1.0..=1.0).contains(&x), "{key} = {x}");
        }
        let entropy = v["eval_attention_entropy"].as_array().unwrap();
        assert_eq!(entropy.len(), 2, "one entropy per layer: {v}");
        assert!(entropy.iter().all(|h| h.as_f64().unwrap() > 0.0));
    }
    assert!(std::fs::read_to_string(dir.join("curves.svg")).unwrap().contains("probe mean-pooled"));
    for p in [&dir, &train, &eval] {
        let _ = std::fs::remove_dir_all(p);
        let _ = std::fs::remove_file(p);
    }
}

/// `--simd` takes the library's values (a usage error otherwise); `ELECTRA_SIMD` is an override
/// the flag wins over, and a value outside the set is an error naming the variable.
#[test]
fn simd_flag_and_its_environment_override() {
    let o = electra(&["--simd", "avx3", "bench", "infer"]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    o.says("--simd").says("avx3");
    let bench = ["bench", "infer", "--preset", "tiny", "--batch-size", "1", "--seq-len", "8", "--reps", "1"];
    let run = |simd: Option<&str>, env: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_electra"));
        if let Some(s) = simd {
            c.args(["--simd", s]);
        }
        c.args(bench).env_remove("ELECTRA_SIMD").stdout(Stdio::null());
        if let Some(v) = env {
            c.env("ELECTRA_SIMD", v);
        }
        let out = c.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(None, Some("bogus"));
    assert!(code == Some(1) && err.contains("ELECTRA_SIMD") && err.contains("bogus"), "{code:?}: {err}");
    for (simd, env) in [(Some("scalar"), Some("bogus")), (None, Some("avx2")), (Some("neon"), None)] {
        let (code, err) = run(simd, env);
        assert_eq!(code, Some(0), "--simd {simd:?}, ELECTRA_SIMD={env:?}: {err}");
    }
}

/// stdout's JSON lines of a successful `electra ARGS`.
fn json_lines(args: &[&str]) -> Vec<serde_json::Value> {
    let o = electra(args);
    o.ok();
    o.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {e}: {l}"))).collect()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Each embedding of `a` equals `b`'s, text for text, to rounding.
fn same_embeddings(a: &[serde_json::Value], b: &[serde_json::Value], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x["text"], y["text"], "{what}");
        let (u, v) = (floats(&x["embedding"]), floats(&y["embedding"]));
        assert_eq!(u.len(), v.len());
        for (p, q) in u.iter().zip(&v) {
            assert!((p - q).abs() <= 1e-6 * (1.0 + p.abs()), "{what}: {p} vs {q} for {}", x["text"]);
        }
    }
}

/// The text commands: `embed` in batches equals one text at a time and `--input` equals the
/// arguments; `tokenize` gives the tokens `embed` reads, with byte offsets that slice the text;
/// the `--json` outputs parse.
#[test]
fn text_commands_batch_tokenize_and_print_json() {
    let f = fixture();
    let run = f.dir.join("run/final");
    let (m, cls) = (s(&run), s(&f.cls));
    let d = temp("text");
    let texts = [
        "Call me Ishmael.",
        "",
        "Some years ago, never mind how long precisely, having little or no money in my purse",
        "Naïve café whale—the 日本語 sea",
        "the sea",
    ];
    let input = d.join("texts.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    let mut args = vec!["embed", "--model", m, "--threads", "1"];
    args.extend(texts);
    let by_args = json_lines(&args);
    assert_eq!(by_args.len(), texts.len());
    let by_file = json_lines(&["embed", "--model", m, "--threads", "1", "--input", s(&input)]);
    same_embeddings(&by_args, &by_file, "--input vs arguments");
    let stdin = std::fs::File::open(&input).unwrap();
    let o = electra_with(&["embed", "--model", m, "--threads", "1"], Stdio::from(stdin));
    o.ok();
    let by_stdin: Vec<serde_json::Value> = o.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    same_embeddings(&by_args, &by_stdin, "stdin vs arguments");
    for pool in ["mean", "cls"] {
        let one = json_lines(&["embed", "--model", m, "--pool", pool, "--batch-size", "1", "--input", s(&input)]);
        let all = json_lines(&["embed", "--model", m, "--pool", pool, "--input", s(&input)]);
        same_embeddings(&one, &all, &format!("--pool {pool} --batch-size 1 vs default"));
    }
    for v in json_lines(&["embed", "--model", m, "--normalize", "--input", s(&input)]) {
        let norm = floats(&v["embedding"]).iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "--normalize: norm {norm}");
    }

    // tokenize: byte offsets slice each token's characters out of the text (BERT-uncased
    // lowercases and strips accents), ids are what embed reads.
    let line = texts[3];
    let t = &json_lines(&["tokenize", "--model", m, line])[0];
    assert_eq!(t["text"], line);
    let ids = floats(&t["ids"]);
    let tokens: Vec<&str> = t["tokens"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    let offsets: Vec<Vec<f64>> = t["offsets"].as_array().unwrap().iter().map(floats).collect();
    assert_eq!(
        (ids.len(), tokens.len(), offsets.len(), floats(&t["type_ids"]).len()),
        (ids.len(), ids.len(), ids.len(), ids.len())
    );
    assert_eq!((tokens[0], tokens[tokens.len() - 1]), ("[CLS]", "[SEP]"));
    let fold = |c: char| match c {
        'ï' => 'i',
        'é' => 'e',
        c => c.to_lowercase().next().unwrap(),
    };
    for (tok, o) in tokens.iter().zip(&offsets).skip(1).take(tokens.len() - 2) {
        let piece = line.get(o[0] as usize..o[1] as usize).unwrap_or_else(|| panic!("{tok}: {o:?} splits a character"));
        assert!(!piece.is_empty(), "{tok}: empty span");
        if *tok != "[UNK]" {
            assert_eq!(piece.chars().map(fold).collect::<String>(), tok.trim_start_matches("##"), "{o:?}");
        }
    }
    // The same tokens as embed: the text cut after a whole word embeds as the full text cut to
    // that many tokens (--max-length), and the file's lines tokenize one JSON line each.
    let k = (1..tokens.len() - 2).rev().find(|&i| !tokens[i + 1].starts_with("##") && i > 2).unwrap();
    let prefix = &line[..offsets[k][1] as usize];
    let cut = (k + 2).to_string();
    let a = json_lines(&["embed", "--model", m, prefix]);
    let b = json_lines(&["embed", "--model", m, "--max-length", &cut, line]);
    let (u, v) = (floats(&a[0]["embedding"]), floats(&b[0]["embedding"]));
    assert!(u.iter().zip(&v).all(|(p, q)| (p - q).abs() <= 1e-5 * (1.0 + p.abs())), "{prefix:?} vs --max-length {cut}");
    assert_eq!(json_lines(&["tokenize", "--model", m, "--input", s(&input)]).len(), texts.len());
    let vocab = run.join("discriminator/vocab.txt");
    let from_vocab =
        if vocab.exists() { json_lines(&["tokenize", "--model", s(&vocab), line]) } else { vec![t.clone()] };
    assert_eq!(from_vocab[0]["ids"], t["ids"]);
    // Pairs: arguments two at a time, or a<TAB>b lines; an odd count is refused.
    let p = &json_lines(&["tokenize", "--model", m, "--pair", "the sea", "a whale"])[0];
    assert_eq!((p["text"].as_str(), p["text_pair"].as_str()), (Some("the sea"), Some("a whale")));
    assert_eq!(floats(&p["type_ids"]).iter().filter(|&&x| x == 1.0).count(), 3, "{p}");
    let pairs = d.join("pairs.tsv");
    std::fs::write(&pairs, "the sea\ta whale\n").unwrap();
    assert_eq!(json_lines(&["tokenize", "--model", m, "--pair", "--input", s(&pairs)])[0]["ids"], p["ids"]);
    electra(&["tokenize", "--model", m, "--pair", "one", "two", "three"]).refused().says("--pair");
    electra(&["tokenize", "--model", m, "--pair", "--input", s(&input)]).refused().says("TAB");

    // --json outputs.
    let pj = json_lines(&["predict", "--model", cls, "--json", "a fine day"]);
    let labels = pj[0]["labels"].as_array().unwrap();
    assert!(labels.contains(&pj[0]["label"]) && floats(&pj[0]["probs"]).len() == labels.len(), "{}", pj[0]);
    let p1 = json_lines(&["predict", "--model", cls, "--input", s(&input), "--batch-size", "1", "--threads", "1"]);
    let pn = json_lines(&["predict", "--model", cls, "--input", s(&input)]);
    assert_eq!(p1.len(), texts.len());
    for (x, y) in p1.iter().zip(&pn) {
        assert_eq!(x["label"], y["label"]);
        assert!(floats(&x["probs"]).iter().zip(floats(&y["probs"])).all(|(p, q)| (p - q).abs() < 1e-6));
    }
    let fm = json_lines(&["fill-mask", "--model", m, "--json", "--top-k", "3", "the [MASK] sat on the [MASK]"]);
    let masks = fm[0]["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 2);
    assert!(masks.iter().all(|c| c.as_array().unwrap().len() == 3 && c[0]["probability"].as_f64().unwrap() > 0.0));
    let det = json_lines(&["detect", "--model", m, "--json", line]);
    for w in det[0].as_array().unwrap() {
        let (a, b) = (w["start"].as_u64().unwrap() as usize, w["end"].as_u64().unwrap() as usize);
        assert_eq!(Some(w["token"].as_str().unwrap()), line.get(a..b), "{w}");
        assert!((0.0..=1.0).contains(&w["replaced_probability"].as_f64().unwrap()));
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Each subcommand takes only the flags it uses: a weights or device flag where it means
/// nothing is a usage error (status 2) and absent from that command's --help; before the
/// subcommand they are still accepted where the subcommand takes them.
#[test]
fn each_subcommand_takes_only_its_own_flags() {
    let refused: [&[&str]; 6] = [
        &["pretrain", "--out", "o", "--quantize", "int8"],
        &["--quantize", "int8", "pretrain", "--out", "o"],
        &["finetune", "--model", "m", "--train", "t", "--out", "o", "--quantize", "int8"],
        &["quantize", "--model", "m", "--out", "o", "--device", "cpu"],
        &["tokenize", "--model", "m", "--simd", "scalar", "x"],
        &["--quantize=int8", "quantize", "--model", "m", "--out", "o"],
    ];
    for args in refused {
        let o = electra(args);
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        o.says("unexpected argument");
    }
    let help = |cmd: &str| electra(&[cmd, "--help"]).ok().stdout.clone();
    for (cmd, has, lacks) in [
        ("pretrain", &["--device", "--simd"][..], &["--quantize"][..]),
        ("finetune", &["--device", "--simd"], &["--quantize"]),
        ("quantize", &[], &["--device", "--simd", "--quantize"]),
        ("tokenize", &["--pair", "--max-length"], &["--device", "--quantize", "--threads"]),
        ("embed", &["--quantize", "--threads", "--batch-size", "--input", "--normalize", "--pool"], &[]),
        ("predict", &["--quantize", "--threads", "--batch-size", "--json"], &[]),
        ("fill-mask", &["--quantize", "--threads", "--json"], &[]),
        ("detect", &["--quantize", "--threads", "--json"], &[]),
        ("bench", &["--quantize", "--device", "--simd"], &[]),
    ] {
        let h = help(cmd);
        for flag in has {
            assert!(h.contains(flag), "{cmd} --help lacks {flag}");
        }
        for flag in lacks {
            assert!(!h.contains(flag), "{cmd} --help offers {flag}");
        }
    }
    // Before the subcommand, as scripts write them.
    electra(&[
        "--device",
        "cpu",
        "--simd",
        "scalar",
        "bench",
        "infer",
        "--preset",
        "tiny",
        "--batch-size",
        "1",
        "--seq-len",
        "8",
        "--reps",
        "1",
    ])
    .ok();
}

/// The benchmark's fine-tuning row and its int8 product probe run and report what the table
/// reads: a step time, and the int8 products' share of the measured int8 peak.
#[test]
fn bench_finetune_and_int8_gemm_report() {
    let o = electra(&[
        "bench",
        "finetune",
        "--preset",
        "tiny",
        "--batch-size",
        "2",
        "--seq-len",
        "8",
        "--reps",
        "1",
        "--json",
    ]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["workload"], "finetune");
    assert!(v["median_seconds"].as_f64().unwrap() > 0.0 && v["gflops"].as_f64().unwrap() > 0.0, "{v}");
    let o = electra(&[
        "bench",
        "gemm",
        "--int8",
        "--preset",
        "tiny",
        "--batch-size",
        "1",
        "--seq-len",
        "16",
        "--threads",
        "1",
        "--json",
    ]);
    let err = &o.stderr;
    if o.code != Some(0) {
        // A CPU without an int8 dot-product instruction (scalar, NEON without dotprod) says so.
        assert!(err.contains("no dot-product instruction"), "{err}");
        return;
    }
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["quantize"], "int8");
    let (peak, share) = (v["int8_peak_gops"].as_f64().unwrap(), v["efficiency"].as_f64().unwrap());
    assert!(peak > 0.0 && share > 0.0 && share < 2.0, "{v}");
    assert!(v["products"].as_array().unwrap().len() >= 4, "{v}");
}
