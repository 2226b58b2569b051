//! Stand-in for the CUDA backend when the `cuda` feature is off: same API, every call fails
//! with [`Error::Cuda`], so callers need no `#[cfg]`.

use crate::error::{Error, Result};

/// Number of usable CUDA devices (always an error without the feature).
pub fn device_count() -> Result<usize> {
    Err(Error::Cuda("electra was built without the `cuda` feature".into()))
}
