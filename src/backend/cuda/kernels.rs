//! The CUDA C kernels of the backend (the `.cu` files beside this one, one NVRTC program), their
//! names, and their compilation: NVRTC at first use for the device's architecture, cached per
//! process and architecture.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The whole program: the shared helpers, then one file per group of kernels.
pub const SOURCE: &str = concat!(
    include_str!("kernels/common.cuh"),
    include_str!("kernels/elementwise.cu"),
    include_str!("kernels/layer_norm.cu"),
    include_str!("kernels/attention.cu"),
    include_str!("kernels/embedding.cu"),
    include_str!("kernels/loss.cu"),
    include_str!("kernels/sample.cu"),
    include_str!("kernels/dropout.cu"),
    include_str!("kernels/optim.cu"),
);

macro_rules! kernel_table {
    ($($name:ident),* $(,)?) => {
        /// Every kernel entry point of [`SOURCE`].
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];

        /// The loaded kernels of one device.
        pub(super) struct Kernels {
            $(pub $name: cudarc::driver::CudaFunction,)*
        }

        impl Kernels {
            pub(super) fn load(module: &std::sync::Arc<cudarc::driver::CudaModule>) -> Result<Self> {
                Ok(Kernels {
                    $($name: module.load_function(stringify!($name)).map_err(|e| {
                        Error::Cuda(format!("kernel {}: {e:?}", stringify!($name)))
                    })?,)*
                })
            }
        }
    };
}

kernel_table!(
    bias_act,
    activation_fwd,
    activation_bwd,
    fill,
    scale,
    add,
    combine_spans,
    gather_rows,
    scatter_rows,
    mean_rows,
    mean_rows_bwd,
    layer_norm_fwd,
    bias_residual_layer_norm,
    layer_norm_bwd,
    key_mask,
    softmax_fwd,
    softmax_bwd,
    embedding_fwd,
    scatter_segments,
    position_grad,
    cross_entropy,
    bce,
    sum_squares,
    max_abs,
    adamw,
    gumbel_argmax,
    dropout,
);

/// NVRTC options: IEEE division and square root and no fast math, so results stay within the
/// seam's tolerance of the CPU; FMA contraction stays on (as cuBLAS and PyTorch use it).
fn options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--prec-div=true".into(),
        "--prec-sqrt=true".into(),
        "--ftz=false".into(),
    ]
}

/// Compiles [`SOURCE`] to PTX for a virtual architecture (`"compute_90"`), with the NVRTC log in
/// the error. Needs libnvrtc (see [`super::check_library`]).
pub fn compile_ptx(arch: &str) -> Result<String> {
    super::check_library(super::Library::Nvrtc)?;
    let opts = cudarc::nvrtc::CompileOptions { options: options(arch), ..Default::default() };
    let ptx = std::panic::catch_unwind(|| cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts))
        .map_err(|_| Error::Cuda("NVRTC panicked while compiling the kernels".into()))?
        .map_err(|e| match e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                Error::Cuda(format!("NVRTC could not compile the kernels for {arch}:\n{}", log.to_string_lossy()))
            }
            other => Error::Cuda(format!("NVRTC ({arch}): {other:?}")),
        })?;
    Ok(ptx.to_src())
}

/// [`compile_ptx`] once per process and architecture.
pub(super) fn ptx_for(arch: &str) -> Result<String> {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(arch) {
        return Ok(p.clone());
    }
    // Compiled outside the lock: two devices of different architectures compile side by side.
    let ptx = compile_ptx(arch)?;
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(arch.to_string(), ptx.clone());
    Ok(ptx)
}
