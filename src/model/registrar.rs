//! The registrar that names the model's tensors exactly as `transformers` does, and one encoder
//! layer's parameter view (the plain descriptors it is made of are in [`crate::layers`]).

use crate::layers::{LayerNorm, Linear, PostLn};
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

impl EncoderLayer {
    /// The attention block's output: `LN(dense_o(ctx) + x)`.
    pub fn attn_out(&self) -> PostLn {
        PostLn { dense: self.o, ln: self.attn_ln }
    }

    /// The feed-forward block's output: `LN(dense_out(ff_act) + x1)`.
    pub fn ffn_out(&self) -> PostLn {
        PostLn { dense: self.out, ln: self.out_ln }
    }
}
