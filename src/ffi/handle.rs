//! The one FFI handle type behind every opaque `electra_x *`: a registry of live handles, and the
//! lock shared by the kinds a single thread uses at a time.
//!
//! The public type C sees stays zero-sized and without `repr(C)`,
//! `pub struct electra_x { _opaque: [u8; 0] }`, so cbindgen emits an opaque
//! `typedef struct electra_x electra_x;` (`repr(C)` on it would print its Rust fields into the
//! header). An `electra_x *` is not an address: it encodes a 64-bit id that is never reused, and
//! the registry maps live ids to their kind and value. So a pointer is never dereferenced:
//! NULL, a freed handle (even when its old address was reused by the allocator), a handle of
//! another kind and a random integer are all `ELECTRA_ERR_INVALID_HANDLE`, found by a lookup.
//!
//! The registry holds each value as an `Arc`, and [`FfiHandle::get`] hands the call a clone, so
//! freeing a handle while another thread is inside a call on it is safe: the free unregisters it
//! at once (later calls fail with `ELECTRA_ERR_INVALID_HANDLE`) and the value is dropped when the
//! last call in flight returns.

use crate::error::{Error, Result};
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};

/// One live handle: its kind's tag, its value and the process that made it.
struct Entry {
    kind: u64,
    value: Arc<dyn Any + Send + Sync>,
    /// `std::process::id()` at creation: after `fork()` the child's copy of the registry names
    /// handles whose threads stayed in the parent (see [`FfiHandle::FORK_BOUND`]).
    pid: u32,
}

/// Live handles by id. One global map: a lookup is a hash and a short critical section, small
/// next to any call that does work.
fn registry() -> MutexGuard<'static, HashMap<u64, Entry>> {
    static REGISTRY: OnceLock<Mutex<HashMap<u64, Entry>>> = OnceLock::new();
    // Nothing panics while the map is locked (inserts, removes and clones only), so a poisoned
    // lock still guards a consistent map.
    REGISTRY.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Where handle values start. They must never be valid addresses (so a host that dereferences
/// one faults at once instead of reading someone's memory) and must be safe for garbage
/// collectors that scan pointer-typed values: Go throws on pointers below 4096 and on values
/// inside its heap arenas (around 0xc000000000 on linux/amd64). On 64-bit targets the values sit
/// in the non-canonical hole of the address space (bits 63..48 neither all 0 nor all 1), which no
/// OS maps; on 32-bit targets in the top quarter, kernel space on Linux and Windows.
#[cfg(target_pointer_width = "64")]
const BASE: u64 = 0xE1EC_0000_0000_0000;
#[cfg(not(target_pointer_width = "64"))]
const BASE: u64 = 0xC000_0000;
/// Ids are spaced by 16, so handle values stay 16-aligned like real allocations.
const SHIFT: u32 = 4;
/// Ids available: 2^44 on 64-bit targets (never exhausted), 2^26 on 32-bit ones.
#[cfg(target_pointer_width = "64")]
const MAX_ID: u64 = (1 << 44) - 1;
#[cfg(not(target_pointer_width = "64"))]
const MAX_ID: u64 = (1 << 26) - 1;

/// The next id; ids start at 1 and are never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The pointer value of handle `id`.
fn encode(id: u64) -> usize {
    (BASE + (id << SHIFT)) as usize
}

/// The id a pointer value encodes, or `None` for values no handle ever had.
fn decode(p: usize) -> Option<u64> {
    let off = (p as u64).checked_sub(BASE)?;
    let id = off >> SHIFT;
    (off & ((1 << SHIFT) - 1) == 0 && (1..=MAX_ID).contains(&id)).then_some(id)
}

/// One kind of opaque handle, implemented by its public zero-sized type (`electra_model`, ...).
/// `publish`, `get` and `free` are the only ways the FFI layer makes, reads and frees handles.
pub(crate) trait FfiHandle: Sized {
    /// What the handle owns.
    type Value: Send + Sync + 'static;
    /// The kind's tag in the registry: eight ASCII letters, distinct per kind.
    const MAGIC: u64;
    /// The `ELECTRA_ERR_INVALID_HANDLE` message for NULL, e.g. "electra_model is NULL".
    const NULL: &'static str;
    /// The message for a value that is no live handle (freed, never made, corrupted).
    const DEAD: &'static str;
    /// The message for a live handle of another kind.
    const WRONG: &'static str;
    /// Whether the value owns threads (a worker pool, a device context): such a handle made
    /// before `fork()` is unusable in the child, whose copy has none of them, so every call
    /// there is `ELECTRA_ERR_INVALID_HANDLE` (a pid compare per call) instead of a hang.
    const FORK_BOUND: bool = false;

    /// Registers `value` as a live handle; it is released by [`FfiHandle::free`].
    fn publish(value: Self::Value) -> Result<*mut Self> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if id > MAX_ID {
            return Err(Error::OutOfMemory(format!(
                "{} handle ids are used up in this process (ids are never reused)",
                MAX_ID
            )));
        }
        registry().insert(id, Entry { kind: Self::MAGIC, value: Arc::new(value), pid: std::process::id() });
        Ok(encode(id) as *mut Self)
    }

    /// The value behind a handle, shared for the duration of the call (a free meanwhile only
    /// unregisters it), or `ELECTRA_ERR_INVALID_HANDLE` for NULL, a freed handle, a handle of
    /// another kind and any other value. `p` is never dereferenced.
    fn get(p: *const Self) -> Result<Arc<Self::Value>> {
        if p.is_null() {
            return Err(Error::InvalidHandle(Self::NULL));
        }
        let id = decode(p as usize).ok_or(Error::InvalidHandle(Self::DEAD))?;
        let value = match registry().get(&id) {
            None => return Err(Error::InvalidHandle(Self::DEAD)),
            Some(e) if e.kind != Self::MAGIC => return Err(Error::InvalidHandle(Self::WRONG)),
            Some(e) if Self::FORK_BOUND && e.pid != std::process::id() => {
                return Err(Error::InvalidHandle(crate::backend::FORKED))
            }
            Some(e) => e.value.clone(),
        };
        // The kind matched, and every entry of this kind holds a `Self::Value`.
        value
            .downcast()
            .map_err(|_| Error::Internal(format!("a registry entry tagged {} holds another type (a bug)", Self::NULL)))
    }

    /// Unregisters a handle; its value is dropped now, or when the last call in flight on it
    /// returns. NULL, freed handles, handles of another kind and other values are ignored.
    fn free(p: *mut Self) {
        let Some(id) = decode(p as usize) else { return };
        let removed = {
            let mut reg = registry();
            match reg.get(&id) {
                Some(e) if e.kind == Self::MAGIC => reg.remove(&id),
                _ => None,
            }
        };
        match removed {
            // In a child after fork(): dropping would tear down a pool whose threads are in
            // the parent; the child's copy of the memory is left to the process's exit.
            Some(e) if Self::FORK_BOUND && e.pid != std::process::id() => std::mem::forget(e),
            // Dropped here, outside the registry lock: freeing a trainer may take a while.
            other => drop(other),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn ids_round_trip_and_other_values_do_not_decode() {
        for id in [1, 2, 1000, MAX_ID] {
            assert_eq!(decode(encode(id)), Some(id));
            assert!(encode(id) >= 4096);
        }
        for p in [0, 8, 4096, 0x00c0_0000_0000, encode(1) + 8, BASE as usize] {
            assert_eq!(decode(p), None, "{p:#x}");
        }
    }
}
