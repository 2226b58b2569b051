//! Plain descriptors of the model's layers, shared by the model (which lays them out and names
//! them) and the backends (whose kernels take them): where each tensor sits in the flat parameter
//! layout ([`Span`]), the HF modules [`Linear`], [`LayerNorm`] and [`Embeddings`], the
//! [`Activation`] functions, and the int8 weight format ([`int8`]). Nothing here imports the model
//! or a backend, so both can depend on it.

pub mod activation;
pub mod int8;

pub use crate::params::Span;
pub use activation::Activation;

/// `torch.nn.Linear`: weight `[dout, din]`, bias `[dout]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// Weight span.
    pub w: Span,
    /// Bias span.
    pub b: Span,
    /// Input width.
    pub din: usize,
    /// Output width.
    pub dout: usize,
}

/// `torch.nn.LayerNorm` over the last dimension.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    /// Gain (HF `weight`).
    pub g: Span,
    /// Shift (HF `bias`).
    pub b: Span,
    /// Width.
    pub dim: usize,
    /// Epsilon.
    pub eps: f64,
}

/// BERT's post-LN block output: a Linear, then LayerNorm of its output plus the residual (HF
/// `ElectraSelfOutput`, `ElectraOutput`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PostLn {
    /// The dense layer.
    pub dense: Linear,
    /// The LayerNorm after the residual.
    pub ln: LayerNorm,
}

/// HF `ElectraEmbeddings`: word, position and token-type tables of width E (= `ln.dim`), then
/// LayerNorm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Embeddings {
    /// `[V, E]`.
    pub word: Span,
    /// `[T_max, E]`.
    pub pos: Span,
    /// `[types, E]`.
    pub typ: Span,
    /// LayerNorm(E).
    pub ln: LayerNorm,
    /// The [PAD] id: its word row gets no gradient from the lookup (HF `padding_idx`).
    pub pad_id: usize,
}
