//! Compute backends. The CPU kernels in [`crate::ops`] are the reference; the CUDA backend
//! (feature `cuda`) implements the same operations on a GPU and is checked against them.

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_stub.rs"]
pub mod cuda;

/// Where a handle runs its kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU reference backend (the `gemm` crate + rayon).
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}
