//! Stateless kernels over flat `f32` slices, each op's forward beside its backward.
//!
//! Conventions (after llm.c): outputs first, then inputs, then dimensions. Parameter gradients
//! accumulate (`+=`); activation gradients are assigned unless a flag says the destination is a
//! residual stream that already holds a gradient.

pub mod activation;
pub mod attention;
pub mod embedding;
pub mod layer_norm;
pub mod loss;
pub mod matmul;
pub mod par;
pub mod simd;
