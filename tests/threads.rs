//! Results do not depend on the thread count: a training step (losses, every gradient, the
//! updated weights, with dropout on as config.json's 0.1 says) and inference are bit-identical
//! with 1, 2 and 3 worker threads, at shapes large enough that matrix products, row kernels,
//! column reductions and dropout masks are actually split; and the same whether a handle runs
//! inline on its calling thread (`threads` = 1), on the process-wide shared pool or on a pool of
//! its own, also while handles with different kernel caps share the pool.
//!
//! The shared pool of this test process has 3 threads ([`setup`], called first by every test);
//! what must be seen in a fresh process (threads started, the pool's size set once) runs in a
//! child: this binary again, running one test in a mode.

use electra::backend::cpu::kernels::{current_isa, CpuKernels};
use electra::backend::cpu::{par, pool};
use electra::backend::{self, BackendOptions, Device, Simd};
use electra::ffi::status::*;
use electra::ffi::threads::{electra_default_threads, electra_set_default_threads};
use electra::pretrain::{TrainOptions, Trainer};
use electra::session::{Batch, Session, SessionOptions};
use electra::{ElectraConfig, Model};
use std::process::Command;
use std::sync::{Arc, Mutex, Once};

const B: usize = 8;
const T: usize = 64;

/// The shared pool's size in this process.
const SHARED: usize = 3;

/// Sets the shared pool's size before any test starts it.
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| pool::set_shared_threads(SHARED).unwrap());
}

fn model() -> Model {
    let d = ElectraConfig::from_json_str(
        r#"{"vocab_size": 300, "embedding_size": 96, "hidden_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 512, "max_position_embeddings": 64,
            "architectures": ["ElectraForPreTraining"]}"#,
    )
    .unwrap();
    let g = d.generator_config(0.5).unwrap();
    let mut m = Model::new(Some(d), Some(g), true).unwrap();
    m.init_weights(3).unwrap();
    m
}

fn ids() -> (Vec<i32>, Vec<i32>) {
    let ids: Vec<i32> = (0..B * T).map(|i| 5 + ((i * 37 + i / 7) % 290) as i32).collect();
    let mask: Vec<i32> = (0..B * T).map(|i| (i % T < T - (i / T) * 3) as i32).collect();
    (ids, mask)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn training_step_is_identical_for_any_thread_count() {
    setup();
    let (ids, mask) = ids();
    let batch = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: None, batch: B, seq_len: T };
    let run_pool = |threads: usize, own_pool: bool, dropout: electra::options::DropoutSetting| {
        let opts = TrainOptions {
            dropout,
            own_pool,
            max_seq_len: T,
            warmup_steps: 0,
            seed: 9,
            threads,
            special_token_ids: vec![0, 1, 2, 3, 4],
            mask_token_id: 4,
            ..Default::default()
        };
        let mut tr = Trainer::from_model(model(), opts).unwrap();
        let s1 = tr.train_step(&batch).unwrap();
        let s2 = tr.train_step(&batch).unwrap();
        (s1, s2, bits(&tr.grads().unwrap()), bits(&tr.weights().unwrap()))
    };
    let run_with = |threads: usize, dropout| run_pool(threads, false, dropout);
    let run = |threads: usize| run_with(threads, Default::default());
    let one = run(1);
    // Dropout is on in these runs: without it the step differs.
    let off = run_with(1, electra::options::DropoutSetting::Config(false));
    assert!(one.2 != off.2, "dropout changed no gradient");
    for threads in [2, 3] {
        let other = run(threads);
        assert_eq!(one.0, other.0, "step 1 stats with {threads} threads");
        assert_eq!(one.1, other.1, "step 2 stats with {threads} threads");
        assert!(one.2 == other.2, "gradients differ with {threads} threads");
        assert!(one.3 == other.3, "weights differ with {threads} threads");
    }
    // The shared pool (threads 0 and its size), pools of their own (one per core, and 2 and 3).
    for (threads, own) in [(0, false), (SHARED, false), (0, true), (2, true), (SHARED, true)] {
        let other = run_pool(threads, own, Default::default());
        assert!(one == other, "training differs with threads {threads}, own_pool {own}");
    }
}

#[test]
fn inference_is_identical_for_any_thread_count() {
    setup();
    let (ids, mask) = ids();
    let model = Arc::new(model());
    let batch = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: None, batch: B, seq_len: T };
    let run = |threads: usize| {
        let mut s = Session::with_threads(model.clone(), threads).unwrap();
        assert_eq!(s.threads(), threads);
        let mut logits = vec![0.0; B * T];
        s.discriminate(&batch, &mut logits).unwrap();
        let mut gen = vec![0.0; B * T * 300];
        s.generator_logits(&batch, &mut gen).unwrap();
        (bits(&logits), bits(&gen))
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(one == run(threads), "inference differs with {threads} threads");
    }
}

/// Discriminator and generator logits of the standard batch through a session with `opts`.
fn infer(model: &Arc<Model>, opts: &SessionOptions) -> (Vec<u32>, Vec<u32>, String) {
    let (ids, mask) = ids();
    let batch = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: None, batch: B, seq_len: T };
    let mut s = Session::with_options(model.clone(), opts).unwrap();
    let mut logits = vec![0.0; B * T];
    s.discriminate(&batch, &mut logits).unwrap();
    let mut gen = vec![0.0; B * T * 300];
    s.generator_logits(&batch, &mut gen).unwrap();
    (bits(&logits), bits(&gen), s.describe())
}

#[test]
fn inline_shared_and_own_pools_give_the_same_bits() {
    setup();
    let model = Arc::new(model());
    let opts = |threads: usize, own_pool: bool| SessionOptions { threads, own_pool, ..Default::default() };
    let inline = infer(&model, &opts(1, false));
    assert!(inline.2.contains("1 threads (inline pool)"), "{}", inline.2);
    assert!(infer(&model, &opts(1, true)).2.contains("inline"), "threads 1 with own_pool is inline too");
    for (threads, own, kind, n) in [
        (0, false, "shared", SHARED),
        (SHARED, false, "shared", SHARED),
        (2, false, "own", 2),
        (SHARED, true, "own", SHARED),
        (0, true, "own", pool::resolve(0)),
    ] {
        let other = infer(&model, &opts(threads, own));
        let kind = if n == 1 { "inline" } else { kind };
        assert!(other.2.contains(&format!("{n} threads ({kind} pool)")), "threads {threads}, own {own}: {}", other.2);
        assert!(inline.0 == other.0 && inline.1 == other.1, "inference differs with threads {threads}, own {own}");
    }
}

#[test]
fn backends_with_different_caps_share_the_pool() {
    setup();
    // Every task of a split, on whichever worker runs it, runs its own backend's kernels, while
    // backends with other caps run on the same workers.
    let workers = Mutex::new(std::collections::HashSet::new());
    std::thread::scope(|scope| {
        for cap in [Simd::Scalar, Simd::Best, Simd::Avx2, Simd::Scalar] {
            let workers = &workers;
            scope.spawn(move || {
                let opts = BackendOptions { simd: Some(cap), ..Default::default() };
                let be = backend::open(Device::Cpu, &opts).unwrap();
                assert!(be.describe().contains("shared pool"), "{}", be.describe());
                let want = CpuKernels::best().with_cap(cap).isa;
                for _ in 0..100 {
                    let seen = Mutex::new(Vec::new());
                    backend::run(&*be, || {
                        par::for_each(48, |i| {
                            // Long enough that the other workers take part.
                            let mut x = i as f64;
                            for _ in 0..2000 {
                                x = std::hint::black_box(x * 1.000001 + 1.0);
                            }
                            seen.lock().unwrap().push((current_isa(), std::thread::current().id(), x > 0.0));
                        });
                        Ok(())
                    })
                    .unwrap();
                    let seen = seen.into_inner().unwrap();
                    assert_eq!(seen.len(), 48);
                    for (isa, id, _) in seen {
                        assert_eq!(isa, want, "a task of a {cap} backend ran {isa:?}");
                        workers.lock().unwrap().insert(id);
                    }
                }
            });
        }
    });
    assert!(workers.into_inner().unwrap().len() > 1, "the splits never ran on more than one worker");
    // And outside any call, the best kernels again.
    assert_eq!(current_isa(), CpuKernels::best().isa);
}

#[test]
fn sessions_with_different_caps_on_the_shared_pool_keep_their_results() {
    setup();
    let model = Arc::new(model());
    let opts = |simd| SessionOptions { simd: Some(simd), ..Default::default() };
    let caps = [Simd::Scalar, Simd::Best];
    let alone: Vec<_> = caps.iter().map(|&c| infer(&model, &opts(c))).collect();
    std::thread::scope(|scope| {
        for (cap, want) in caps.iter().zip(&alone) {
            let model = &model;
            scope.spawn(move || {
                for _ in 0..3 {
                    assert!(infer(model, &opts(*cap)) == *want, "{cap} session differs beside another cap");
                }
            });
        }
    });
}

// === In a fresh process ===

const MODE: &str = "ELECTRA_THREADS_TEST_MODE";

/// Runs `child` of this binary in a fresh process in `mode`; fails with its output on failure.
fn in_child(mode: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(MODE, mode)
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child {mode} failed: {text}");
    text
}

/// Threads of this process.
fn task_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn last_error() -> String {
    let mut buf = vec![0u8; 1024];
    // SAFETY: `buf` holds `buf.len()` writable bytes.
    let n = unsafe { electra::ffi::electra_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    String::from_utf8_lossy(&buf[..n.min(buf.len() - 1)]).into_owned()
}

fn default_threads() -> usize {
    let mut n = usize::MAX;
    // SAFETY: a valid pointer.
    assert_eq!(unsafe { electra_default_threads(&mut n) }, ELECTRA_OK);
    n
}

/// A discriminator call through a session with `opts` (the session is returned, alive).
fn call(model: &Arc<Model>, opts: &SessionOptions) -> Session {
    let (ids, mask) = ids();
    let batch = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: None, batch: B, seq_len: T };
    let mut s = Session::with_options(model.clone(), opts).unwrap();
    let mut logits = vec![0.0; B * T];
    s.discriminate(&batch, &mut logits).unwrap();
    s
}

/// The child's body: does nothing unless a parent set the mode.
#[test]
fn child() {
    let Ok(mode) = std::env::var(MODE) else { return };
    let model = Arc::new(model());
    match mode.as_str() {
        "inline" => {
            let before = task_count();
            let one = SessionOptions { threads: 1, ..Default::default() };
            let sessions: Vec<Session> = (0..8).map(|_| call(&model, &one)).collect();
            assert_eq!(sessions[0].threads(), 1);
            assert_eq!(task_count(), before, "threads: 1 started a thread");
            // Eight sessions on the shared pool of 2: two threads in all.
            assert_eq!(electra_set_default_threads(2), ELECTRA_OK);
            let shared: Vec<Session> = (0..8).map(|_| call(&model, &SessionOptions::default())).collect();
            let with_shared = task_count();
            assert_eq!(with_shared, before + 2, "8 sessions on a shared pool of 2");
            // Pools of their own, as every session had before the shared pool: one per core each.
            let own = SessionOptions { own_pool: true, ..Default::default() };
            let owners: Vec<Session> = (0..8).map(|_| call(&model, &own)).collect();
            let with_own = task_count();
            assert_eq!(with_own, with_shared + 8 * pool::resolve(0));
            println!(
                "threads: {before} at first; {before} with 8 inline sessions; {with_shared} with 8 more on the \
                 shared pool of 2; {with_own} with 8 more on pools of their own ({} cores)",
                pool::resolve(0)
            );
            drop((sessions, shared, owners));
        }
        "set" => {
            // Until the pool starts, the last size set wins; 0 is one per core.
            assert_eq!(electra_set_default_threads(4), ELECTRA_OK);
            assert_eq!(default_threads(), 4);
            assert_eq!(electra_set_default_threads(0), ELECTRA_OK);
            assert_eq!(default_threads(), pool::resolve(0));
            assert_eq!(electra_set_default_threads(1025), ELECTRA_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("1024"), "{}", last_error());
            assert_eq!(electra_set_default_threads(2), ELECTRA_OK);
            assert!(!pool::shared_started());
            let before = task_count();
            let s = call(&model, &SessionOptions::default());
            assert!(pool::shared_started());
            assert_eq!((s.threads(), task_count()), (2, before + 2));
            // Running: the same size is fine, another one is refused and nothing changes.
            assert_eq!(electra_set_default_threads(2), ELECTRA_OK);
            assert_eq!(electra_set_default_threads(3), ELECTRA_ERR_INVALID_ARGUMENT);
            let e = last_error();
            assert!(e.contains("size is already 2") && e.contains("resized to 3"), "{e}");
            let per_core = if pool::resolve(0) == 2 { ELECTRA_OK } else { ELECTRA_ERR_INVALID_ARGUMENT };
            assert_eq!(electra_set_default_threads(0), per_core);
            assert_eq!(default_threads(), 2);
            // A session asking for another count gets a pool of its own; the shared one stays.
            let own = call(&model, &SessionOptions { threads: 3, ..Default::default() });
            assert_eq!((own.threads(), task_count()), (3, before + 5));
            let again = call(&model, &SessionOptions { threads: 2, ..Default::default() });
            assert_eq!((again.threads(), task_count()), (2, before + 5));
        }
        "one" => {
            // A shared size of 1: handles on it run inline, and the size is fixed all the same.
            assert_eq!(electra_set_default_threads(1), ELECTRA_OK);
            let before = task_count();
            let s = call(&model, &SessionOptions::default());
            assert_eq!((s.threads(), task_count()), (1, before));
            assert!(!pool::shared_started());
            assert_eq!(electra_set_default_threads(2), ELECTRA_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("size is already 1"), "{}", last_error());
            assert_eq!(electra_set_default_threads(1), ELECTRA_OK);
        }
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn threads_1_starts_no_thread_and_sessions_share_one_pool() {
    let out = in_child("inline");
    println!("{out}");
}

#[test]
fn the_shared_pool_size_is_set_once() {
    in_child("set");
    in_child("one");
}
