//! Stable status codes of the C ABI, and the mapping of [`Error`] onto them. Values are never
//! renumbered; new ones are appended.

use crate::error::Error;

/// Result of every fallible C call: 0 on success, one of the `ELECTRA_ERR_*` codes otherwise.
pub type electra_status = i32;

/// Success.
pub const ELECTRA_OK: electra_status = 0;
/// An argument is out of range or inconsistent (ids outside the vocabulary, empty batch,
/// bad options JSON, invalid config).
pub const ELECTRA_ERR_INVALID_ARGUMENT: electra_status = 1;
/// A required pointer argument was NULL.
pub const ELECTRA_ERR_NULL_POINTER: electra_status = 2;
/// A handle is NULL, already freed or of the wrong kind, or is a session, trainer or fine-tuner
/// created before `fork()` used in the child.
pub const ELECTRA_ERR_INVALID_HANDLE: electra_status = 3;
/// A file could not be read or written.
pub const ELECTRA_ERR_IO: electra_status = 4;
/// A file is corrupt, truncated, or lacks a tensor / has a wrong shape or dtype.
pub const ELECTRA_ERR_FORMAT: electra_status = 5;
/// Array lengths that must agree do not.
pub const ELECTRA_ERR_SHAPE: electra_status = 6;
/// An output buffer is smaller than the result; nothing was written.
pub const ELECTRA_ERR_BUFFER_TOO_SMALL: electra_status = 7;
/// An allocation failed.
pub const ELECTRA_ERR_OUT_OF_MEMORY: electra_status = 8;
/// The call was cancelled; state is consistent.
pub const ELECTRA_ERR_CANCELLED: electra_status = 9;
/// The model lacks what the call needs (e.g. generator logits from a lone discriminator).
pub const ELECTRA_ERR_UNSUPPORTED: electra_status = 10;
/// A loss or gradient was NaN or infinite; nothing was updated.
pub const ELECTRA_ERR_NUMERIC: electra_status = 11;
/// The CUDA backend failed or is not compiled in.
pub const ELECTRA_ERR_CUDA: electra_status = 12;
/// An internal invariant failed (a bug).
pub const ELECTRA_ERR_INTERNAL: electra_status = 13;
/// A panic was caught at the boundary (a bug); the handle involved should be freed.
pub const ELECTRA_ERR_PANIC: electra_status = 14;
/// Data-parallel training: another rank failed, the all-reduce failed or timed out, or the ranks
/// disagree; the step changed nothing on this rank.
pub const ELECTRA_ERR_DISTRIBUTED: electra_status = 15;

/// The stable C status code of an error. (A panic caught at the boundary has no [`Error`]:
/// `guard` reports it as `ELECTRA_ERR_PANIC` directly.)
pub(crate) fn status_of(e: &Error) -> electra_status {
    match e {
        Error::InvalidArgument(_) | Error::Config(_) => ELECTRA_ERR_INVALID_ARGUMENT,
        Error::NonFinite(_) => ELECTRA_ERR_NUMERIC,
        Error::NullPointer(_) => ELECTRA_ERR_NULL_POINTER,
        Error::InvalidHandle(_) => ELECTRA_ERR_INVALID_HANDLE,
        Error::Shape { .. } => ELECTRA_ERR_SHAPE,
        Error::BufferTooSmall { .. } => ELECTRA_ERR_BUFFER_TOO_SMALL,
        Error::Unsupported(_) => ELECTRA_ERR_UNSUPPORTED,
        Error::Io { .. } => ELECTRA_ERR_IO,
        Error::Format { .. } => ELECTRA_ERR_FORMAT,
        Error::Cancelled => ELECTRA_ERR_CANCELLED,
        Error::OutOfMemory(_) => ELECTRA_ERR_OUT_OF_MEMORY,
        Error::Cuda(_) => ELECTRA_ERR_CUDA,
        Error::Internal(_) => ELECTRA_ERR_INTERNAL,
        Error::Distributed(_) => ELECTRA_ERR_DISTRIBUTED,
    }
}

/// The static, NUL-terminated name of a status code (`electra_status_str`).
pub(crate) fn describe(s: electra_status) -> &'static str {
    match s {
        ELECTRA_OK => "ok\0",
        ELECTRA_ERR_INVALID_ARGUMENT => "invalid argument\0",
        ELECTRA_ERR_NULL_POINTER => "null pointer\0",
        ELECTRA_ERR_INVALID_HANDLE => "invalid handle\0",
        ELECTRA_ERR_IO => "I/O error\0",
        ELECTRA_ERR_FORMAT => "bad file format\0",
        ELECTRA_ERR_SHAPE => "shape mismatch\0",
        ELECTRA_ERR_BUFFER_TOO_SMALL => "buffer too small\0",
        ELECTRA_ERR_OUT_OF_MEMORY => "out of memory\0",
        ELECTRA_ERR_CANCELLED => "cancelled\0",
        ELECTRA_ERR_UNSUPPORTED => "unsupported\0",
        ELECTRA_ERR_NUMERIC => "non-finite value\0",
        ELECTRA_ERR_CUDA => "CUDA error\0",
        ELECTRA_ERR_INTERNAL => "internal error\0",
        ELECTRA_ERR_PANIC => "panic\0",
        ELECTRA_ERR_DISTRIBUTED => "distributed run failed\0",
        _ => "unknown status\0",
    }
}
