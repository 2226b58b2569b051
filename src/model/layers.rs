//! Parameter views of the HF modules (Linear, LayerNorm, embeddings, one encoder layer) and the
//! registrar that names them exactly as `transformers` does.

use crate::params::{ParamId, ParamStore, Span};

/// Registers tensors under `<scope>.<HF name>` and records the HF name of each, so a tower can be
/// written back to (and read from) an HF checkpoint with the same keys.
pub struct Registrar<'a> {
    /// Where tensors are allocated.
    pub store: &'a mut ParamStore,
    /// Scope prefix, e.g. `discriminator`.
    pub scope: &'a str,
    /// (HF name, id) pairs in HF order, for checkpoint I/O.
    pub names: &'a mut Vec<(String, ParamId)>,
}

impl Registrar<'_> {
    /// Adds a new tensor named `hf` in this scope and returns its id.
    pub fn add_id(&mut self, hf: &str, shape: &[usize]) -> ParamId {
        let id = self.store.add(format!("{}.{hf}", self.scope), shape);
        self.names.push((hf.to_string(), id));
        id
    }

    /// Adds a new tensor named `hf` in this scope and returns its span.
    pub fn add(&mut self, hf: &str, shape: &[usize]) -> Span {
        let id = self.add_id(hf, shape);
        self.store.span(id)
    }

    /// Lists an existing tensor (shared or tied) under the HF name `hf` in this scope.
    pub fn alias(&mut self, hf: &str, id: ParamId) -> Span {
        self.names.push((hf.to_string(), id));
        self.store.span(id)
    }

    /// A Linear layer `prefix.{weight,bias}` of shape `[dout, din]`.
    pub fn linear(&mut self, prefix: &str, din: usize, dout: usize) -> Linear {
        Linear {
            w: self.add(&format!("{prefix}.weight"), &[dout, din]),
            b: self.add(&format!("{prefix}.bias"), &[dout]),
            din,
            dout,
        }
    }

    /// A LayerNorm `prefix.{weight,bias}` of width `dim`.
    pub fn layer_norm(&mut self, prefix: &str, dim: usize, eps: f64) -> LayerNorm {
        LayerNorm {
            g: self.add(&format!("{prefix}.weight"), &[dim]),
            b: self.add(&format!("{prefix}.bias"), &[dim]),
            dim,
            eps,
        }
    }
}

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

/// One BERT post-LN encoder layer (HF `ElectraLayer`).
#[derive(Clone, Copy, Debug)]
pub struct EncoderLayer {
    /// attention.self.query
    pub q: Linear,
    /// attention.self.key
    pub k: Linear,
    /// attention.self.value
    pub v: Linear,
    /// attention.output.dense
    pub o: Linear,
    /// attention.output.LayerNorm
    pub attn_ln: LayerNorm,
    /// intermediate.dense
    pub inter: Linear,
    /// output.dense
    pub out: Linear,
    /// output.LayerNorm
    pub out_ln: LayerNorm,
}
