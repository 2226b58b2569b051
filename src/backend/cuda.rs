//! CUDA backend (feature `cuda`): cudarc loads the driver at run time, so this compiles and
//! links on machines with no toolkit and no GPU; calls fail cleanly there.

use crate::error::{Error, Result};

/// Number of usable CUDA devices; an error when no driver can be loaded.
pub fn device_count() -> Result<usize> {
    let n = std::panic::catch_unwind(cudarc::driver::CudaContext::device_count)
        .map_err(|_| Error::Cuda("the CUDA driver library could not be loaded".into()))?
        .map_err(|e| Error::Cuda(format!("{e:?}")))?;
    Ok(n as usize)
}
