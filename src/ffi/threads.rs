//! The process-wide CPU thread pool: its size, set once by the host.
//!
//! Sessions, trainers and fine-tuners on the CPU share one pool of worker threads unless their
//! options ask otherwise (`"threads": 1` runs on the calling thread with no worker thread;
//! `"own_pool": true`, or a `threads` count other than the shared pool's size, gives a handle a
//! pool of its own). The shared pool starts with the first handle that uses it.

use super::guard;
use super::status::*;
use crate::backend::cpu::pool;
use crate::error::Error;

/// Sets the size of the shared CPU thread pool: `n` worker threads, 0 = one per core (the
/// default; `RAYON_NUM_THREADS` when set). Call it before creating the first session, trainer or
/// fine-tuner with `threads` 0 (the default); until one uses the shared pool, a later call
/// replaces the size. From then on, a call with the size in use succeeds and any other size is
/// `ELECTRA_ERR_INVALID_ARGUMENT` (the message gives both sizes): the pool never resizes under
/// handles using it. With size 1, handles using the shared pool run on their calling thread and
/// no worker thread starts (and the size is fixed all the same). `n` above 1024 is `ELECTRA_ERR_INVALID_ARGUMENT`. After fork() the
/// child starts a pool of its own, of the size last set.
#[no_mangle]
pub extern "C" fn electra_set_default_threads(n: usize) -> electra_status {
    guard(|| pool::set_shared_threads(n))
}

/// Writes to `*out` the size of the shared CPU thread pool: the number of threads it runs, or
/// will start with (see `electra_set_default_threads`).
///
/// # Safety
/// `out` must be NULL (an error) or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn electra_default_threads(out: *mut usize) -> electra_status {
    guard(|| {
        if out.is_null() {
            return Err(Error::NullPointer("out"));
        }
        // SAFETY: `out` is non-NULL and, by the contract, valid for a write.
        unsafe { *out = pool::shared_threads() };
        Ok(())
    })
}
