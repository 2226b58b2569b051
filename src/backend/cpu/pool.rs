//! Where a CPU backend's work runs, and what travels with it.
//!
//! A backend runs on one of three [`Pool`]s: inline on the calling thread (`threads` = 1: no
//! worker thread at all), the process-wide shared pool (the default), or a rayon pool of its own.
//! Several backends share the shared pool, each with its own kernel cap and its own C ABI state,
//! so what a call needs on every thread that works for it travels with the call as a [`Ctx`]:
//! [`Ctx::enter`] sets it on the thread that runs the call, and every parallel split of
//! `par.rs` captures it and sets it again inside each task, on whichever worker runs the task
//! (restoring that worker's previous context after, since a worker waiting on its own tasks may
//! run another call's meanwhile).
//!
//! The shared pool's size is set once per process ([`set_shared_threads`], the C ABI's
//! `electra_set_default_threads`), before it starts; 0 or nothing set means one per core. After
//! `fork()` the child has none of the parent's workers, so the shared pool is keyed by process id:
//! the first backend opened in a child starts a fresh one there.

use super::kernels::CpuKernels;
use super::simd::Isa;
use crate::error::{Error, Result};
use std::cell::Cell;
use std::sync::{Arc, Mutex};

/// Where a backend's work runs.
#[derive(Clone)]
pub enum Pool {
    /// On the calling thread; parallel splits run their parts one after another, in order.
    Inline,
    /// The process-wide shared pool.
    Shared(Arc<rayon::ThreadPool>),
    /// A pool of the backend's own.
    Own(Arc<rayon::ThreadPool>),
}

impl Pool {
    /// The pool a backend asking for `threads` (0: the shared pool's size) and, with `own`, a
    /// pool of its own gets. `threads` = 1 runs inline. With `own`, a new pool of `threads`
    /// workers (0: one per core; inline where that is one). Otherwise the shared pool when
    /// `threads` is 0 or equals the shared pool's size (inline where that size is 1), else a new
    /// pool of `threads` workers: a count asked for is the count a backend gets.
    pub fn open(threads: usize, own: bool) -> Result<Pool> {
        if threads == 1 {
            return Ok(Pool::Inline);
        }
        if own {
            let n = resolve(threads);
            return if n == 1 { Ok(Pool::Inline) } else { build(n, "electra").map(|p| Pool::Own(Arc::new(p))) };
        }
        let mut s = state();
        let size = fixed(&s).unwrap_or_else(|| resolve(s.request));
        if threads == 0 || threads == size {
            // From now on the size is fixed, also when it is 1 and no pool starts.
            s.fixed = Some((std::process::id(), size));
            if size == 1 {
                return Ok(Pool::Inline);
            }
            return shared(&mut s, size).map(Pool::Shared);
        }
        drop(s);
        build(threads, "electra").map(|p| Pool::Own(Arc::new(p)))
    }

    /// Worker threads the work is split over (1 inline).
    pub fn threads(&self) -> usize {
        match self {
            Pool::Inline => 1,
            Pool::Shared(p) | Pool::Own(p) => p.current_num_threads(),
        }
    }

    /// Which kind, in words ("inline", "shared", "own").
    pub fn kind(&self) -> &'static str {
        match self {
            Pool::Inline => "inline",
            Pool::Shared(_) => "shared",
            Pool::Own(_) => "own",
        }
    }

    /// Runs `f` with `ctx` current, on this pool (inline: on the calling thread).
    pub fn run(&self, ctx: Ctx, f: &mut (dyn FnMut() + Send)) {
        match self {
            Pool::Inline => ctx.enter(f),
            Pool::Shared(p) | Pool::Own(p) => p.install(|| ctx.enter(f)),
        }
    }
}

/// What every thread working for one call needs: the kernels to run, how far to split, and
/// whether the call came through the C ABI (a panic on a worker then stays off stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// The elementwise kernels' variant (never above what the CPU runs).
    pub isa: Isa,
    /// The pool's threads (1: run every split inline).
    pub threads: usize,
    /// The call is a C ABI call.
    pub ffi: bool,
}

thread_local! {
    /// The context of the call this thread is working for (`None`: none of ours).
    static CTX: Cell<Option<Ctx>> = const { Cell::new(None) };
}

impl Ctx {
    /// A context for `threads` workers running `isa` (clamped to what the CPU runs).
    pub fn new(isa: Isa, threads: usize, ffi: bool) -> Ctx {
        Ctx { isa: isa.min(CpuKernels::best().isa), threads: threads.max(1), ffi }
    }

    /// The context of the call this thread works for, if any.
    pub fn current() -> Option<Ctx> {
        CTX.with(Cell::get)
    }

    /// Runs `f` with this context current on this thread, restoring the previous one after
    /// (also when `f` panics).
    pub fn enter<R>(self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Ctx>, bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                CTX.with(|c| c.set(self.0));
                crate::panic::set_worker_quiet(self.1);
            }
        }
        let quiet = crate::panic::set_worker_quiet(self.ffi);
        let _restore = Restore(CTX.with(|c| c.replace(Some(self))), quiet);
        f()
    }
}

/// The shared pool's state: the size asked for (0: one per core), the size in use with the
/// process that first used it (a backend opened on it, or inline when the size is 1), and the
/// pool with the process that started it.
struct SharedState {
    request: usize,
    fixed: Option<(u32, usize)>,
    pool: Option<(u32, Arc<rayon::ThreadPool>)>,
}

static SHARED: Mutex<SharedState> = Mutex::new(SharedState { request: 0, fixed: None, pool: None });

fn state() -> std::sync::MutexGuard<'static, SharedState> {
    // The state is two plain fields, valid after any panic.
    SHARED.lock().unwrap_or_else(|e| e.into_inner())
}

/// One per core for 0 (as rayon counts: `RAYON_NUM_THREADS` when set to a positive number, else
/// the available parallelism), else `n`.
pub fn resolve(n: usize) -> usize {
    if n > 0 {
        return n;
    }
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&v| v > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// The running shared pool of this process, if it started.
fn running(s: &SharedState) -> Option<&Arc<rayon::ThreadPool>> {
    s.pool.as_ref().filter(|(pid, _)| *pid == std::process::id()).map(|(_, p)| p)
}

/// The size handles of this process use the shared pool with, once one did.
fn fixed(s: &SharedState) -> Option<usize> {
    s.fixed.filter(|(pid, _)| *pid == std::process::id()).map(|(_, n)| n)
}

/// Sets the shared pool's size (0: one per core). Before a backend uses the shared pool, any
/// size (the last call wins); after, only the size in use. `n` above
/// [`crate::backend::MAX_THREADS`] is an error.
pub fn set_shared_threads(n: usize) -> Result<()> {
    crate::backend::check_threads(n)?;
    let mut s = state();
    if let Some(have) = fixed(&s) {
        let want = resolve(n);
        if have != want {
            return Err(Error::arg(format!(
                "the shared thread pool's size is already {have}, in use, so it cannot be resized to {want}{}: set \
                 it before the first session, trainer or fine-tuner that uses it, or give handles that need \
                 another count \"threads\" (or \"own_pool\": true for a pool of their own)",
                if n == 0 { " (one per core)" } else { "" }
            )));
        }
    }
    s.request = n;
    Ok(())
}

/// The shared pool's size: the size in use, else what it would start with.
pub fn shared_threads() -> usize {
    let s = state();
    fixed(&s).unwrap_or_else(|| resolve(s.request))
}

/// Whether this process's shared pool has started.
pub fn shared_started() -> bool {
    running(&state()).is_some()
}

/// The shared pool of `size` threads, started on first use (again in a child after `fork()`).
fn shared(s: &mut SharedState, size: usize) -> Result<Arc<rayon::ThreadPool>> {
    if let Some(p) = running(s) {
        return Ok(p.clone());
    }
    let pool = Arc::new(build(size, "electra-shared")?);
    // A parent's pool left in a child after fork(): its threads are in the parent, so it is not
    // torn down here; the child's copy of its memory is left to the process's exit.
    if let Some((_, old)) = s.pool.replace((std::process::id(), pool.clone())) {
        std::mem::forget(old);
    }
    Ok(pool)
}

fn build(threads: usize, name: &'static str) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(move |i| format!("{name}-{i}")).build().map_err(
        |e| {
            Error::Internal(format!(
                "could not start {threads} worker threads: {e}; set \"threads\" lower or free resources"
            ))
        },
    )
}
