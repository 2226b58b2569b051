//! Compute devices: which kinds this library can use, and how many of each. Handles pick one
//! through their options (`"device": "cpu"`, `"cuda"` or `"cuda:N"`).

use super::guard;
use super::status::*;
use crate::backend::{device_count, DeviceKind};
use crate::error::Error;

/// A kind of compute device (`ELECTRA_DEVICE_*`).
pub type electra_device_kind = i32;

/// The host CPU (always present).
pub const ELECTRA_DEVICE_CPU: electra_device_kind = 0;
/// NVIDIA GPUs through CUDA (needs a library built with the `cuda` feature and a driver).
pub const ELECTRA_DEVICE_CUDA: electra_device_kind = 1;

/// Writes to `*count` how many devices of `kind` this library can use: 1 for
/// `ELECTRA_DEVICE_CPU`, the driver's device count for `ELECTRA_DEVICE_CUDA`. When the library
/// was built without CUDA or the CUDA driver cannot be loaded, returns `ELECTRA_ERR_CUDA` with a
/// message saying which; `*count` is 0 on every error, so a host may also just read it.
///
/// # Safety
/// `count` must be NULL (an error) or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn electra_device_count(kind: electra_device_kind, count: *mut usize) -> electra_status {
    guard(|| {
        if count.is_null() {
            return Err(Error::NullPointer("count"));
        }
        // SAFETY: `count` is non-NULL and, by the contract, valid for a write.
        unsafe { *count = 0 };
        let kind = match kind {
            ELECTRA_DEVICE_CPU => DeviceKind::Cpu,
            ELECTRA_DEVICE_CUDA => DeviceKind::Cuda,
            other => return Err(Error::arg(format!("unknown device kind {other} (ELECTRA_DEVICE_CPU or _CUDA)"))),
        };
        let n = device_count(kind)?;
        // SAFETY: as above.
        unsafe { *count = n };
        Ok(())
    })
}
