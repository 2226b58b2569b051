//! The one FFI handle type behind every opaque `electra_x *`, and the lock shared by the kinds a
//! single thread uses at a time.
//!
//! The public type C sees stays zero-sized and without `repr(C)`,
//! `pub struct electra_x { _opaque: [u8; 0] }`, so cbindgen emits an opaque
//! `typedef struct electra_x electra_x;` (`repr(C)` on it would print its Rust fields into the
//! header). The allocation behind an `electra_x *` is a [`Handle`] of that kind's
//! [`FfiHandle::Value`], reached by casting the pointer; each kind implements [`FfiHandle`] to
//! name its tag, its value and its messages.

use crate::error::{Error, Result};
use std::sync::{Mutex, MutexGuard, TryLockError};

/// What every `electra_x *` points to: `repr(C)` keeps the `u64` tag at offset 0, whatever `T`
/// is, so [`check`] can read it without knowing the kind the pointer really has.
#[repr(C)]
pub(crate) struct Handle<T> {
    magic: u64,
    value: T,
}

/// One kind of opaque handle, implemented by its public zero-sized type (`electra_model`, ...).
/// `publish`, `get` and `free` are the only ways the FFI layer makes, reads and frees handles.
pub(crate) trait FfiHandle: Sized {
    /// What the handle owns.
    type Value: 'static;
    /// The tag at offset 0 of a live handle of this kind: eight ASCII letters, distinct per kind.
    const MAGIC: u64;
    /// The `ELECTRA_ERR_INVALID_HANDLE` message for NULL, e.g. "electra_model is NULL".
    const NULL: &'static str;
    /// The message for a pointer without this kind's tag, e.g. "not a live electra_model".
    const DEAD: &'static str;

    /// Moves `value` to the heap as a live handle; the pointer is released by [`FfiHandle::free`].
    fn publish(value: Self::Value) -> *mut Self {
        Box::into_raw(Box::new(Handle { magic: Self::MAGIC, value })).cast()
    }

    /// The value behind a handle pointer, or `ELECTRA_ERR_INVALID_HANDLE` for NULL and for a
    /// pointer that does not carry this kind's tag (best effort, see [`check`]).
    ///
    /// # Safety
    /// `p` must be NULL or point to at least 8 readable bytes; when it is a live handle of this
    /// kind, it must stay live (not freed) for `'a`.
    unsafe fn get<'a>(p: *const Self) -> Result<&'a Self::Value> {
        // SAFETY: `check` needs `p` NULL or pointing to 8 readable bytes, which this function's
        // contract gives.
        let h = unsafe { check(p)? };
        // SAFETY: `check` found this kind's tag, so `p` came from `publish::<Self>` (as far as the
        // best-effort check can tell) and points to a live `Handle<Self::Value>`, which the
        // caller keeps alive for `'a`; the value is only ever shared, never moved out.
        Ok(unsafe { &(*h).value })
    }

    /// Frees a handle from [`FfiHandle::publish`]: zeroes its tag, so a later use of the stale
    /// pointer is caught while the memory is not reused, then drops the value. NULL and pointers
    /// without this kind's tag are ignored.
    ///
    /// # Safety
    /// `p` must be NULL or point to at least 8 readable bytes; a live handle must not be in use
    /// by another thread (nothing may hold a reference from [`FfiHandle::get`]).
    unsafe fn free(p: *mut Self) {
        // SAFETY: `check` needs `p` NULL or pointing to 8 readable bytes, which this function's
        // contract gives.
        if let Ok(h) = unsafe { check(p) } {
            let h = h.cast_mut();
            // SAFETY: the tag says `h` is a live `Box<Handle<Self::Value>>` from `publish` that no
            // other thread uses (the contract); it is dropped exactly once, here, and its tag is
            // cleared first so the best-effort check rejects the stale pointer afterwards.
            unsafe {
                (*h).magic = 0;
                drop(Box::from_raw(h));
            }
        }
    }
}

/// Checks that `p` is a live handle of kind `K`, best effort against stale or foreign pointers:
/// it reads the 8-byte tag at offset 0, which every [`Handle`] has whatever kind it really is.
/// This is the one place handle pointers are validated.
///
/// # Safety
/// `p` must be NULL or point to at least 8 readable bytes.
unsafe fn check<K: FfiHandle>(p: *const K) -> Result<*const Handle<K::Value>> {
    if p.is_null() {
        return Err(Error::InvalidHandle(K::NULL));
    }
    if !(p as usize).is_multiple_of(std::mem::align_of::<u64>()) {
        return Err(Error::InvalidHandle(K::DEAD));
    }
    // SAFETY: `p` is non-NULL, 8-aligned and (the contract) points to 8 readable bytes.
    if unsafe { p.cast::<u64>().read() } != K::MAGIC {
        return Err(Error::InvalidHandle(K::DEAD));
    }
    Ok(p.cast())
}

/// Locks the state of a handle used by one thread at a time (a session, trainer or fine-tuner;
/// `what` names it). The lock turns a host's accidental concurrent use into a clear
/// `ELECTRA_ERR_INVALID_ARGUMENT` instead of a data race. A lock poisoned by a panic in an
/// earlier call (already reported as `ELECTRA_ERR_PANIC`) is cleared and this call fails with
/// `ELECTRA_ERR_INTERNAL`, so the caller may retry or free the handle.
pub(crate) fn lock<'a, T>(m: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>> {
    m.try_lock().map_err(|e| match e {
        TryLockError::WouldBlock => {
            Error::arg(format!("the {what} is in use by another thread (a {what} serves one thread at a time)"))
        }
        TryLockError::Poisoned(p) => {
            m.clear_poison();
            drop(p.into_inner());
            Error::Internal(format!("the {what} was poisoned by an earlier panic; retry"))
        }
    })
}
