//! CUDA backend (feature `cuda`): cudarc loads the driver at run time, so this compiles and
//! links on machines with no toolkit and no GPU; calls fail cleanly there.
//!
//! Today this reports devices only. The kernels (cuBLAS products, NVRTC-compiled elementwise
//! kernels) implement [`Backend`] in this folder; until they do, opening a device is a clear
//! [`Error::Cuda`], and the conformance suite reports its CUDA cases as not run.

use super::Backend;
use crate::error::{Error, Result};
use std::sync::Arc;

/// Number of usable CUDA devices; an error when no driver can be loaded.
pub fn device_count() -> Result<usize> {
    // cudarc panics when the driver library cannot be loaded; that is an error here.
    let n = std::panic::catch_unwind(cudarc::driver::CudaContext::device_count)
        .map_err(|_| Error::Cuda("the CUDA driver library (libcuda.so) could not be loaded".into()))?
        .map_err(|e| Error::Cuda(format!("{e:?}")))?;
    Ok(n as usize)
}

/// Opens CUDA device `ordinal`.
pub fn open(ordinal: usize) -> Result<Arc<dyn Backend>> {
    let n = device_count()?;
    if ordinal >= n {
        return Err(Error::Cuda(format!("no CUDA device {ordinal}: {n} present")));
    }
    Err(Error::Cuda(format!(
        "CUDA device {ordinal} is present, but this build of electra has no CUDA kernels yet; use \"cpu\""
    )))
}
