//! Data-parallel training across processes: the [`Collective`] seam (a sum all-reduce over
//! `f32` buffers, and who this rank is), the engines behind it, and the small protocols the
//! trainer builds on it (failure flags, gathering every rank's state for a checkpoint).
//!
//! We do not write a cluster layer: ranks run on an engine people already operate.
//! - [`Local`]: one process (world size 1), every call a no-op.
//! - `mpi::Mpi` (feature `mpi`): `MPI_COMM_WORLD` of the system's MPI, launched by `mpirun`.
//! - A host-supplied collective: the C ABI's `electra_trainer_set_allreduce` wraps a C callback
//!   (MPI, Gloo, Horovod, NCCL through host memory: whatever the host already runs); Rust users
//!   implement the trait.
//!
//! Every rank must make the same sequence of collective calls. The trainer keeps it so even when a
//! step fails on one rank: the failing rank still enters each collective of the step, with a
//! failure flag in its slot, so the others return [`Error::Distributed`] at once instead of
//! waiting for a partner that left (see `pretrain::trainer`).
//!
//! Device buffers: [`Collective::all_reduce_buf`] takes a backend buffer. Its default stages
//! device memory through the host; an engine that reduces device memory itself (NCCL) overrides
//! it, and the trainer does not change.

#[cfg(feature = "mpi")]
pub mod mpi;
mod threads;

pub use threads::ThreadGroup;

use crate::backend::{Backend, Buf};
use crate::error::{Error, Result};
use std::sync::Arc;

/// How a trainer's ranks talk to each other.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..world_size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world_size(&self) -> usize;
    /// Replaces `data` on every rank by the element-wise sum over all ranks. Every rank must get
    /// the same bits back (the trainer relies on it to keep the ranks' weights identical).
    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()>;
    /// One line for logs ("mpi: rank 1 of 4").
    fn describe(&self) -> String;
    /// [`Self::all_reduce_sum`] over the first `len` elements of a backend buffer: in place on
    /// host memory, staged through `staging` for device memory.
    fn all_reduce_buf(&self, be: &dyn Backend, buf: &mut Buf, len: usize, staging: &mut Vec<f32>) -> Result<()> {
        if let Some(host) = buf.host_mut() {
            let have = host.len();
            let data = host
                .get_mut(..len)
                .ok_or_else(|| Error::Internal(format!("all-reduce of {len} elements over a buffer of {have}")))?;
            return self.all_reduce_sum(data);
        }
        crate::alloc::try_resize(staging, len, 0.0, "all-reduce staging buffer")?;
        be.download(buf.mem(), staging)?;
        self.all_reduce_sum(staging)?;
        be.upload(buf, staging)
    }
}

/// One process: nothing to reduce.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl Collective for Local {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _data: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "local: 1 rank".into()
    }
}

/// The collective a trainer uses when none was set.
pub fn local() -> Arc<dyn Collective> {
    Arc::new(Local)
}

/// What a rank contributes to a step's status exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RankStatus {
    /// Ready to go on.
    Ok,
    /// This rank's step was cancelled (every rank then returns [`Error::Cancelled`]).
    Cancelled,
    /// This rank's step failed.
    Failed,
}

impl RankStatus {
    fn code(self) -> f32 {
        match self {
            RankStatus::Ok => 0.0,
            RankStatus::Cancelled => 1.0,
            RankStatus::Failed => 2.0,
        }
    }
}

/// Exchanges every rank's status together with `sums` (summed over ranks, in place) in one
/// collective. The outer error is the collective's own failure; the inner one, on every rank,
/// says that some rank failed (naming it; the failing rank returns its own error instead) or was
/// cancelled.
pub(crate) fn exchange(c: &dyn Collective, mine: RankStatus, sums: &mut [f32], what: &str) -> Result<Result<()>> {
    let (rank, world) = (c.rank(), c.world_size());
    if world == 1 {
        return Ok(status_error(&[mine.code()], rank, what));
    }
    let mut buf = vec![0.0f32; world + sums.len()];
    buf[rank] = mine.code();
    buf[world..].copy_from_slice(sums);
    c.all_reduce_sum(&mut buf)?;
    sums.copy_from_slice(&buf[world..]);
    Ok(status_error(&buf[..world], rank, what))
}

fn status_error(codes: &[f32], rank: usize, what: &str) -> Result<()> {
    let failed: Vec<usize> = (0..codes.len()).filter(|&r| codes[r] == RankStatus::Failed.code()).collect();
    // A code that is none of ours (a collective that returned garbage) counts as a failure.
    let garbage = codes.iter().any(|&x| x != 0.0 && x != 1.0 && x != 2.0);
    if !failed.is_empty() || garbage {
        let others: Vec<String> = failed.iter().filter(|&&r| r != rank).map(|r| r.to_string()).collect();
        return Err(Error::Distributed(if garbage {
            format!("{what}: the all-reduce returned an invalid status word; nothing was updated")
        } else if others.is_empty() {
            format!("{what} failed on this rank ({rank})")
        } else {
            format!(
                "{what} failed on rank {} of {}; nothing was updated on any rank (see that rank's error)",
                others.join(", "),
                codes.len()
            )
        }));
    }
    if codes.iter().any(|&x| x == RankStatus::Cancelled.code()) {
        return Err(Error::Cancelled);
    }
    Ok(())
}

/// Every rank's `mine`, in rank order, on every rank: two sum all-reduces (the lengths, then
/// the bytes, each rank's in its own region of a zeroed buffer; bytes and lengths below 2^24
/// are exact in f32). For checkpoint state, not for bulk data.
pub(crate) fn all_gather_bytes(c: &dyn Collective, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
    let (rank, world) = (c.rank(), c.world_size());
    if world == 1 {
        return Ok(vec![mine.to_vec()]);
    }
    const MAX: usize = 1 << 24;
    if mine.len() >= MAX {
        return Err(Error::Distributed(format!("rank {rank}'s state is {} bytes, more than {MAX}", mine.len())));
    }
    let mut lens = vec![0.0f32; world];
    lens[rank] = mine.len() as f32;
    c.all_reduce_sum(&mut lens)?;
    if lens.iter().any(|&l| !(0.0..MAX as f32).contains(&l) || l.fract() != 0.0) {
        return Err(Error::Distributed("the all-reduce returned invalid state lengths".into()));
    }
    let lens: Vec<usize> = lens.iter().map(|&l| l as usize).collect();
    let total: usize = lens.iter().sum();
    let start: usize = lens[..rank].iter().sum();
    let mut buf = crate::alloc::try_vec(total, 0.0f32, "gathered rank state")?;
    for (d, &b) in buf[start..start + mine.len()].iter_mut().zip(mine) {
        *d = b as f32;
    }
    c.all_reduce_sum(&mut buf)?;
    let mut out = Vec::with_capacity(world);
    let mut at = 0;
    for &l in &lens {
        let mut v = Vec::with_capacity(l);
        for &x in &buf[at..at + l] {
            if !(0.0..256.0).contains(&x) || x.fract() != 0.0 {
                return Err(Error::Distributed("the all-reduce returned invalid state bytes".into()));
            }
            v.push(x as u8);
        }
        out.push(v);
        at += l;
    }
    Ok(out)
}

/// A 64-bit fingerprint of `data`'s bits (for checking that ranks hold the same weights).
pub(crate) fn fingerprint(data: &[f32]) -> u64 {
    // FNV-1a over 32-bit words: order-sensitive, and fast enough for a check per checkpoint.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in data {
        h ^= x.to_bits() as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<R: Send>(n: usize, f: impl Fn(&dyn Collective) -> R + Sync) -> Vec<R> {
        let ranks = ThreadGroup::ranks(n);
        std::thread::scope(|s| {
            let hs: Vec<_> = ranks.iter().map(|c| s.spawn(|| f(&**c))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn gather_returns_every_ranks_bytes_in_rank_order() {
        let out = run(3, |c| all_gather_bytes(c, &vec![c.rank() as u8 * 100; c.rank() * 2 + 1]).unwrap());
        for got in out {
            assert_eq!(got, vec![vec![0u8], vec![100; 3], vec![200; 5]]);
        }
    }

    #[test]
    fn one_failing_rank_fails_every_rank_and_cancel_cancels_all() {
        let out = run(3, |c| {
            let mut sums = [c.rank() as f32];
            let st = if c.rank() == 1 { RankStatus::Failed } else { RankStatus::Ok };
            (exchange(c, st, &mut sums, "step 1").unwrap().unwrap_err().to_string(), sums[0])
        });
        assert!(out[0].0.contains("failed on rank 1 of 3"), "{}", out[0].0);
        assert!(out[1].0.contains("failed on this rank (1)"), "{}", out[1].0);
        assert!(out.iter().all(|o| o.1 == 3.0));
        let out = run(2, |c| {
            let st = if c.rank() == 0 { RankStatus::Cancelled } else { RankStatus::Ok };
            exchange(c, st, &mut [], "step").unwrap().unwrap_err()
        });
        assert!(out.iter().all(|e| matches!(e, Error::Cancelled)));
        assert!(run(2, |c| exchange(c, RankStatus::Ok, &mut [], "step").unwrap().is_ok()).iter().all(|&ok| ok));
    }

    #[test]
    fn thread_ranks_sum_in_rank_order() {
        // 1e8 + 1 - 1e8 depends on the order: rank order gives 0 on every rank.
        let vals = [1e8f32, 1.0, -1e8];
        let out = run(3, |c| {
            let mut x = [vals[c.rank()], c.rank() as f32];
            c.all_reduce_sum(&mut x).unwrap();
            x
        });
        assert!(out.iter().all(|x| *x == [0.0, 3.0]), "{out:?}");
    }
}
