//! Data-parallel pre-training through the collective seam, with ranks as threads of this process
//! (`distributed::ThreadGroup`): the same step as one process on the combined batch, the same
//! losses and weights as one process accumulating the ranks' micro-batches, reproducible, resume
//! bit-exact, and failures, NaNs and cancellation on one rank reaching every rank. The MPI
//! engine runs the same protocol under `mpirun` in tests/mpi.rs.

mod common;

use electra::distributed::{Collective, ThreadGroup};
use electra::pretrain::masking::{mask_batch, MaskRule, Masking};
use electra::pretrain::trainer::stream_rng;
use electra::pretrain::{ResumeOptions, TrainOptions, Trainer};
use electra::{Error, Result};
use std::sync::Arc;

use common::dist::*;

/// Runs `f(rank, collective)` on `n` threads, one rank each.
fn on_ranks<R: Send>(n: usize, f: impl Fn(usize, Arc<dyn Collective>) -> R + Sync) -> Vec<R> {
    let ranks = ThreadGroup::ranks(n);
    std::thread::scope(|s| {
        let hs: Vec<_> = ranks
            .into_iter()
            .enumerate()
            .map(|(r, c)| {
                s.spawn({
                    let f = &f;
                    move || f(r, c)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn two_ranks(o: &TrainOptions) -> Vec<(Vec<[f32; 3]>, Vec<f32>)> {
    on_ranks(2, |r, c| {
        let mut t = trainer(o.clone());
        t.set_collective(c).unwrap();
        let losses = run_rank(&mut t, r, 2, 0..STEPS);
        (losses, t.weights().unwrap().into_owned())
    })
}

#[test]
fn two_ranks_match_one_process_accumulating_their_micro_batches() {
    let ranks = two_ranks(&opts());
    assert_eq!(bits(&ranks[0].1), bits(&ranks[1].1), "the ranks' weights differ");
    assert_eq!(ranks[0].0, ranks[1].0, "the ranks report different losses");

    // One process, one thread... two threads: the CPU backend is bit-identical for any count.
    let mut one = trainer(TrainOptions { accumulate_steps: 2, threads: 2, ..opts() });
    let mut worst = 0.0f64;
    for s in 0..STEPS {
        let d = data(s, 2 * B);
        let st = one.train_step(&batch(&d, 0..2 * B)).unwrap();
        let got = [st.loss, st.mlm_loss, st.disc_loss];
        worst = worst.max(rel(&got, &ranks[0].0[s]));
    }
    let w = rel(&one.weights().unwrap(), &ranks[0].1);
    eprintln!("2 ranks vs 1 process x 2 micro-batches, {STEPS} steps: losses {worst:.2e}, weights {w:.2e}");
    assert!(worst <= 1e-5 && w <= 1e-5, "losses {worst:e}, weights {w:e}");
    // The same code path: micro-batch gradients are summed in the order ranks' are.
    assert_eq!(bits(&one.weights().unwrap()), bits(&ranks[0].1), "not bit-identical");
}

#[test]
fn two_ranks_are_reproducible() {
    let (a, b) = (two_ranks(&opts()), two_ranks(&opts()));
    assert_eq!(bits(&a[0].1), bits(&b[0].1));
    assert_eq!(a[0].0, b[0].0);
}

/// Micro-batches are the step of one process on the combined batch: with the same masks (the
/// micro-batches' streams) and a temperature low enough that sampling is the argmax, the
/// accumulated step's losses and clipped gradients are those of one pass over all rows. Without
/// dropout: its masks are drawn per micro-batch, so a combined pass draws others.
#[test]
fn micro_batches_make_the_step_of_the_combined_batch() {
    let dropout = electra::options::DropoutSetting::Config(false);
    let o = TrainOptions { temperature: 1e-6, max_grad_norm: 0.5, dropout, ..opts() };
    let d = data(0, 2 * B);
    let mut acc = trainer(TrainOptions { accumulate_steps: 2, ..o.clone() });
    let a = acc.train_step(&batch(&d, 0..2 * B)).unwrap();

    let mut whole = trainer(o.clone());
    let draw = |j: usize| -> Masking {
        let mut rng = stream_rng(o.seed, j as u64);
        mask_batch(&mut rng, &batch(&d, j * B..(j + 1) * B), &MaskRule::of(&o))
    };
    let (m0, m1) = (draw(0), draw(1));
    let combined = Masking {
        positions: m0.positions.iter().copied().chain(m1.positions.iter().map(|p| p + B * T)).collect(),
        generator_input: [m0.generator_input, m1.generator_input].concat(),
    };
    let mut w = whole.forward_backward(&batch(&d, 0..2 * B), &combined, None).unwrap();
    whole.apply_update(&mut w).unwrap();
    assert_eq!((a.masked, a.tokens), (w.masked, w.tokens));
    let l = rel(
        &[a.loss, a.mlm_loss, a.disc_loss, a.disc_accuracy, a.grad_norm],
        &[w.loss, w.mlm_loss, w.disc_loss, w.disc_accuracy, w.grad_norm],
    );
    let g = rel(&acc.grads().unwrap(), &whole.grads().unwrap());
    let p = rel(&acc.weights().unwrap(), &whole.weights().unwrap());
    eprintln!("2 micro-batches vs the combined batch: stats {l:.2e}, clipped gradients {g:.2e}, weights {p:.2e}");
    assert!(l <= 1e-5 && g <= 1e-4 && p <= 1e-5, "stats {l:e}, gradients {g:e}, weights {p:e}");
}

#[test]
fn resume_at_step_3_continues_bit_identically_and_needs_the_same_ranks() {
    let dir = tempfile("resume");
    let uninterrupted = two_ranks(&opts());
    on_ranks(2, |r, c| {
        let mut t = trainer(opts());
        t.set_collective(c).unwrap();
        run_rank(&mut t, r, 2, 0..3);
        t.data_cursor = Some(serde_json::json!({ "rank": r }));
        t.save(&dir).unwrap();
    });
    let resumed = on_ranks(2, |r, c| {
        let mut t = Trainer::resume_with(&dir, &ResumeOptions { rank: Some(r), ..Default::default() }).unwrap();
        t.set_collective(c).unwrap();
        assert_eq!(t.data_cursor, Some(serde_json::json!({ "rank": r })), "rank {r} got another rank's cursor");
        let losses = run_rank(&mut t, r, 2, 3..STEPS);
        (losses, t.weights().unwrap().into_owned())
    });
    for r in 0..2 {
        assert_eq!(resumed[r].0, uninterrupted[r].0[3..], "rank {r}: losses of steps 4-5");
        assert_eq!(bits(&resumed[r].1), bits(&uninterrupted[r].1), "rank {r}: weights after step 5");
    }
    // Another number of ranks is a clear error, alone or in a group of three.
    let mut alone = Trainer::resume(&dir).unwrap();
    let d = data(3, B);
    let e = alone.train_step(&batch(&d, 0..B)).unwrap_err();
    assert!(e.to_string().contains("written by a run of 2 ranks"), "{e}");
    // Every rank reads the same checkpoint, so each refuses a world of 3 before any collective.
    let mut t = Trainer::resume(&dir).unwrap();
    let e = t.set_collective(Arc::new(Pretend { rank: 1, world: 3 })).unwrap_err().to_string();
    assert!(e.contains("resume it with 2 ranks, not 3"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failing_rank_fails_the_step_everywhere_and_changes_nothing() {
    let out = on_ranks(2, |r, c| {
        let mut t = trainer(opts());
        t.set_collective(c).unwrap();
        run_rank(&mut t, r, 2, 0..1);
        let before = (bits(&t.weights().unwrap()), t.step, t.rngs.clone());
        let mut d = data(1, 2 * B);
        if r == 1 {
            d.0[B * T + 5] = 10_000; // outside the vocabulary, in rank 1's rows only
        }
        let e = t.train_step(&batch(&d, r * B..(r + 1) * B)).unwrap_err();
        assert_eq!(before, (bits(&t.weights().unwrap()), t.step, t.rngs.clone()), "rank {r} changed");
        // The next good step runs on both.
        run_rank(&mut t, r, 2, 1..2);
        (e, bits(&t.weights().unwrap()))
    });
    assert!(matches!(out[1].0, Error::InvalidArgument(_)), "{}", out[1].0);
    assert!(
        matches!(out[0].0, Error::Distributed(_)) && out[0].0.to_string().contains("failed on rank 1 of 2"),
        "{}",
        out[0].0
    );
    assert_eq!(out[0].1, out[1].1);
}

/// A collective that puts a NaN into rank 1's gradients once: a NaN on one rank is a NaN on all.
struct NanOnce {
    inner: Arc<dyn Collective>,
    numel: usize,
    armed: std::sync::atomic::AtomicBool,
}

impl Collective for NanOnce {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn world_size(&self) -> usize {
        self.inner.world_size()
    }
    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        if self.rank() == 1 && data.len() == self.numel && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            data[7] = f32::NAN;
        }
        self.inner.all_reduce_sum(data)
    }
    fn describe(&self) -> String {
        "nan once".into()
    }
}

#[test]
fn a_nan_on_one_rank_is_refused_by_every_rank() {
    let out = on_ranks(2, |r, c| {
        let mut t = trainer(opts());
        let numel = t.params().numel();
        t.set_collective(Arc::new(NanOnce { inner: c, numel, armed: false.into() })).unwrap();
        run_rank(&mut t, r, 2, 0..1);
        let before = (bits(&t.weights().unwrap()), bits(&t.moments().unwrap().m), t.step);
        let c = t.collective().unwrap();
        let nan: &NanOnce = unsafe { &*(Arc::as_ptr(&c) as *const NanOnce) };
        nan.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        let d = data(1, 2 * B);
        let e = t.train_step(&batch(&d, r * B..(r + 1) * B)).unwrap_err();
        assert_eq!(before, (bits(&t.weights().unwrap()), bits(&t.moments().unwrap().m), t.step), "rank {r} changed");
        e
    });
    assert!(out.iter().all(|e| matches!(e, Error::NonFinite(_))), "{out:?}");
}

#[test]
fn cancelling_one_rank_cancels_the_step_on_all() {
    let out = on_ranks(2, |r, c| {
        let mut t = trainer(opts());
        t.set_collective(c).unwrap();
        if r == 0 {
            t.cancel_flag().store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let d = data(0, 2 * B);
        let e = t.train_step(&batch(&d, r * B..(r + 1) * B)).unwrap_err();
        (e, t.step)
    });
    assert!(out.iter().all(|(e, step)| matches!(e, Error::Cancelled) && *step == 0), "{out:?}");
}

#[test]
fn ranks_that_start_apart_are_refused() {
    let errs = on_ranks(2, |r, c| {
        let mut t = trainer(TrainOptions { seed: 11, ..opts() });
        if r == 1 {
            t = Trainer::from_model(common::pair(common::TINY_DISC, true, 6), opts()).unwrap();
        }
        t.set_collective(c).unwrap_err().to_string()
    });
    assert!(errs.iter().all(|e| e.contains("weights differ")), "{errs:?}");
    let errs = on_ranks(2, |r, c| {
        let o = TrainOptions { learning_rate: if r == 0 { 1e-3 } else { 2e-3 }, ..opts() };
        trainer(o).set_collective(c).unwrap_err().to_string()
    });
    assert!(errs.iter().all(|e| e.contains("options differ")), "{errs:?}");
    // world_size 2 in the options and no collective: the step says what is missing.
    let mut t = trainer(TrainOptions { world_size: 2, rank: 1, ..opts() });
    let d = data(0, B);
    let e = t.train_step(&batch(&d, 0..B)).unwrap_err().to_string();
    assert!(e.contains("electra_trainer_set_allreduce"), "{e}");
}

/// A collective that claims a place in a world but never reduces.
struct Pretend {
    rank: usize,
    world: usize,
}

impl Collective for Pretend {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&self, _: &mut [f32]) -> Result<()> {
        Err(Error::Distributed("pretend: no other ranks".into()))
    }
    fn describe(&self) -> String {
        "pretend".into()
    }
}

fn tempfile(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("electra-distributed-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
