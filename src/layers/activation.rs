//! The activation functions HF's `ACT2FN` can name that the kernels implement. The enum is part
//! of the compute seam (the fused Linear + activation kernels take it); each backend implements
//! the formulas (the CPU's are in `backend/cpu/activation.rs`).

use crate::error::{Error, Result};

/// The activation functions HF's `ACT2FN` can name that we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, x·Φ(x) with erf (HF "gelu"; ELECTRA's default).
    Gelu,
    /// Tanh approximation of GELU (HF "gelu_new", "gelu_pytorch_tanh").
    GeluTanh,
    /// HF "gelu_fast": the tanh approximation written as x·0.79788456·(1 + 0.044715·x²).
    GeluFast,
    /// x·sigmoid(1.702·x) (HF "quick_gelu").
    QuickGelu,
    /// max(0, x).
    Relu,
    /// x·sigmoid(x) (HF "silu" and "swish").
    Silu,
    /// tanh(x).
    Tanh,
    /// sigmoid(x).
    Sigmoid,
    /// The identity (HF "linear").
    Linear,
}

impl Activation {
    /// Every activation, in declaration order (for tests and tools that sweep them).
    ///
    /// cbindgen:ignore
    pub const ALL: [Activation; 9] = [
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::GeluFast,
        Activation::QuickGelu,
        Activation::Relu,
        Activation::Silu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Linear,
    ];

    /// Parses an HF `hidden_act` name.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "gelu_fast" => Activation::GeluFast,
            "quick_gelu" => Activation::QuickGelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "linear" => Activation::Linear,
            other => {
                return Err(Error::Config(format!(
                    "unknown hidden_act {other:?} (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, \
                     quick_gelu, relu, silu, swish, tanh, sigmoid, linear)"
                )))
            }
        })
    }
}
