//! Stand-in for the CUDA backend when the `cuda` feature is off: the same functions, each
//! failing with [`Error::Cuda`], so callers need no `#[cfg]`.

use super::Backend;
use crate::error::{Error, Result};
use std::sync::Arc;

fn not_compiled() -> Error {
    Error::Cuda("electra was built without the `cuda` feature (rebuild with `--features cuda`)".into())
}

/// Number of usable CUDA devices (always an error without the feature).
pub fn device_count() -> Result<usize> {
    Err(not_compiled())
}

/// Opens CUDA device `ordinal` (always an error without the feature).
pub fn open(_ordinal: usize, _tf32: bool) -> Result<Arc<dyn Backend>> {
    Err(not_compiled())
}
