//! Ranks as threads of one process: a trainer per thread (later, per GPU of one machine),
//! reduced through shared memory, in rank order so every rank gets the same bits on every run.

use super::Collective;
use crate::error::{Error, Result};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};

struct Shared {
    n: usize,
    /// Each rank's contribution to the running all-reduce, then the sum (in slot 0).
    slots: Mutex<Vec<Vec<f32>>>,
    barrier: Barrier,
}

impl Shared {
    fn slots(&self) -> Result<MutexGuard<'_, Vec<Vec<f32>>>> {
        self.slots.lock().map_err(|_| Error::Distributed("a rank thread panicked inside an all-reduce".into()))
    }
}

/// A group of `n` in-process ranks; give one to each thread's trainer
/// ([`crate::pretrain::Trainer::set_collective`]). Every rank must call each all-reduce with the
/// same length; a rank that stops calling blocks the others (no timeout: threads of one process
/// fail together).
pub struct ThreadGroup {
    shared: Arc<Shared>,
    rank: usize,
}

impl ThreadGroup {
    /// `n` ranks, `0..n`, in order.
    // A group is only ever used through its ranks, so `new` hands out those.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(n: usize) -> Vec<Arc<dyn Collective>> {
        let shared = Arc::new(Shared { n, slots: Mutex::new(vec![Vec::new(); n]), barrier: Barrier::new(n) });
        (0..n).map(|rank| Arc::new(ThreadGroup { shared: shared.clone(), rank }) as Arc<dyn Collective>).collect()
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.n
    }

    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        let s = &*self.shared;
        {
            let mut slots = s.slots()?;
            slots[self.rank].clear();
            slots[self.rank].extend_from_slice(data);
        }
        // Everyone has deposited; the leader sums in rank order into slot 0.
        let mut bad = false;
        if s.barrier.wait().is_leader() {
            let mut slots = s.slots()?;
            let (first, rest) = slots.split_at_mut(1);
            for other in rest.iter() {
                if other.len() != first[0].len() {
                    bad = true;
                }
                for (a, b) in first[0].iter_mut().zip(other) {
                    *a += *b;
                }
            }
        }
        s.barrier.wait();
        {
            let slots = s.slots()?;
            if slots.iter().any(|v| v.len() != data.len()) {
                bad = true;
            }
            if !bad {
                data.copy_from_slice(&slots[0]);
            }
        }
        // Nobody deposits the next call's data before everyone has read this sum.
        s.barrier.wait();
        if bad {
            return Err(Error::Distributed("ranks called the all-reduce with different lengths".into()));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("threads: rank {} of {}", self.rank, self.shared.n)
    }
}
