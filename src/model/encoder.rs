//! The ELECTRA encoder tower (HF `ElectraModel`): embeddings, optional projection E→H, and L
//! post-LN transformer layers. Forward writes every activation the backward needs into
//! [`EncoderActs`]; inference keeps only two layers' worth and ping-pongs between them.

use super::layers::{Embeddings, EncoderLayer, Registrar};
use crate::config::{Activation, ElectraConfig};
use crate::model::layers::Linear;
use crate::ops::activation::activation_forward;
use crate::ops::attention::{attention_forward, key_mask};
use crate::ops::embedding::embedding_forward;
use crate::ops::layer_norm::layer_norm_forward;
use crate::ops::matmul::linear_forward;

/// Shape letters: B batch, T sequence, N = B·T tokens, E embedding width, H hidden width,
/// NH heads, HD head width, I feed-forward width, V vocabulary.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// Embedding tables (possibly shared with the other tower).
    pub emb: Embeddings,
    /// `embeddings_project` (E→H), present when E ≠ H.
    pub proj: Option<Linear>,
    /// The layers.
    pub layers: Vec<EncoderLayer>,
    /// H.
    pub hidden: usize,
    /// E.
    pub emb_dim: usize,
    /// NH.
    pub heads: usize,
    /// I.
    pub inter: usize,
    /// Feed-forward activation.
    pub act: Activation,
    /// The [PAD] id (no lookup gradient into its row).
    pub pad_id: usize,
}

impl Encoder {
    /// Registers the tower's tensors with HF names (`electra.…`). `shared` reuses another tower's
    /// embeddings (the original code's generator/discriminator sharing).
    pub fn register(reg: &mut Registrar, cfg: &ElectraConfig, shared: Option<(&Embeddings, &[(String, crate::params::ParamId)])>) -> Self {
        let (e, h) = (cfg.embedding_size, cfg.hidden_size);
        let emb = match shared {
            Some((emb, names)) => {
                for (hf, id) in names.iter().filter(|(n, _)| n.starts_with("electra.embeddings.")) {
                    reg.alias(hf, *id);
                }
                *emb
            }
            None => Embeddings {
                word: reg.add("electra.embeddings.word_embeddings.weight", &[cfg.vocab_size, e]),
                pos: reg.add("electra.embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, e]),
                typ: reg.add("electra.embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, e]),
                ln: reg.layer_norm("electra.embeddings.LayerNorm", e, cfg.layer_norm_eps),
            },
        };
        let proj = (e != h).then(|| reg.linear("electra.embeddings_project", e, h));
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = format!("electra.encoder.layer.{i}");
                EncoderLayer {
                    q: reg.linear(&format!("{p}.attention.self.query"), h, h),
                    k: reg.linear(&format!("{p}.attention.self.key"), h, h),
                    v: reg.linear(&format!("{p}.attention.self.value"), h, h),
                    o: reg.linear(&format!("{p}.attention.output.dense"), h, h),
                    attn_ln: reg.layer_norm(&format!("{p}.attention.output.LayerNorm"), h, cfg.layer_norm_eps),
                    inter: reg.linear(&format!("{p}.intermediate.dense"), h, cfg.intermediate_size),
                    out: reg.linear(&format!("{p}.output.dense"), cfg.intermediate_size, h),
                    out_ln: reg.layer_norm(&format!("{p}.output.LayerNorm"), h, cfg.layer_norm_eps),
                }
            })
            .collect();
        Encoder {
            emb,
            proj,
            layers,
            hidden: h,
            emb_dim: e,
            heads: cfg.num_attention_heads,
            inter: cfg.intermediate_size,
            act: cfg.activation(),
            pad_id: cfg.pad_token_id,
        }
    }
}

/// Activations of one layer, kept for its backward. All `[N, ·]` row-major.
#[derive(Default, Debug)]
pub struct LayerActs {
    /// Query, key, value `[N, H]`.
    pub q: Vec<f32>,
    /// Keys `[N, H]`.
    pub k: Vec<f32>,
    /// Values `[N, H]`.
    pub v: Vec<f32>,
    /// Softmax probabilities `[B, NH, T, T]`.
    pub probs: Vec<f32>,
    /// Attention context before the output projection `[N, H]`.
    pub ctx: Vec<f32>,
    /// Input of the attention LayerNorm: dense(ctx) + x `[N, H]`.
    pub ln1_in: Vec<f32>,
    /// Its mean `[N]`.
    pub ln1_mean: Vec<f32>,
    /// Its 1/std `[N]`.
    pub ln1_rstd: Vec<f32>,
    /// Attention block output `[N, H]`.
    pub x1: Vec<f32>,
    /// Feed-forward pre-activation `[N, I]`.
    pub ff_pre: Vec<f32>,
    /// Feed-forward activation `[N, I]`.
    pub ff_act: Vec<f32>,
    /// Input of the output LayerNorm: dense(ff_act) + x1 `[N, H]`.
    pub ln2_in: Vec<f32>,
    /// Its mean `[N]`.
    pub ln2_mean: Vec<f32>,
    /// Its 1/std `[N]`.
    pub ln2_rstd: Vec<f32>,
    /// Layer output `[N, H]`.
    pub out: Vec<f32>,
}

/// Every activation of one encoder forward. Buffers only grow, so steady-state calls allocate
/// nothing.
#[derive(Default, Debug)]
pub struct EncoderActs {
    /// B of the last forward.
    pub b: usize,
    /// T of the last forward.
    pub t: usize,
    /// Additive key mask `[N]` (0 or f32::MIN).
    pub mask_add: Vec<f32>,
    /// word + type + position `[N, E]` (the embedding LayerNorm's input).
    pub emb_sum: Vec<f32>,
    /// Its mean `[N]`.
    pub emb_mean: Vec<f32>,
    /// Its 1/std `[N]`.
    pub emb_rstd: Vec<f32>,
    /// Embedding output `[N, E]`.
    pub emb_out: Vec<f32>,
    /// Projection output `[N, H]` (when E ≠ H).
    pub proj_out: Vec<f32>,
    /// Per-layer activations: L of them when training, two (reused) for inference.
    pub layers: Vec<LayerActs>,
    /// Whether every layer's activations are kept.
    pub keep_all: bool,
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

impl EncoderActs {
    /// Buffers for `enc`; `keep_all` keeps each layer's activations for a backward pass.
    pub fn new(keep_all: bool) -> Self {
        EncoderActs { keep_all, ..Default::default() }
    }

    fn reserve(&mut self, enc: &Encoder, b: usize, t: usize) {
        let n = b * t;
        let (e, h, i, nh) = (enc.emb_dim, enc.hidden, enc.inter, enc.heads);
        self.b = b;
        self.t = t;
        for (v, len) in [
            (&mut self.mask_add, n),
            (&mut self.emb_sum, n * e),
            (&mut self.emb_mean, n),
            (&mut self.emb_rstd, n),
            (&mut self.emb_out, n * e),
        ] {
            grow(v, len);
        }
        if enc.proj.is_some() {
            grow(&mut self.proj_out, n * h);
        }
        let want = if self.keep_all { enc.layers.len() } else { enc.layers.len().min(2) };
        self.layers.resize_with(want.max(self.layers.len()), LayerActs::default);
        for la in &mut self.layers[..want] {
            for v in [&mut la.q, &mut la.k, &mut la.v, &mut la.ctx, &mut la.ln1_in, &mut la.x1, &mut la.ln2_in, &mut la.out] {
                grow(v, n * h);
            }
            for v in [&mut la.ln1_mean, &mut la.ln1_rstd, &mut la.ln2_mean, &mut la.ln2_rstd] {
                grow(v, n);
            }
            grow(&mut la.ff_pre, n * i);
            grow(&mut la.ff_act, n * i);
            grow(&mut la.probs, b * nh * t * t);
        }
    }

    /// Index of layer `l`'s activations.
    pub fn slot(&self, l: usize) -> usize {
        if self.keep_all {
            l
        } else {
            l % 2
        }
    }

    /// The encoder's input to layer 0: the projection output, or the embeddings when E = H.
    pub fn layer0_input<'a>(&'a self, enc: &Encoder) -> &'a [f32] {
        if enc.proj.is_some() {
            &self.proj_out
        } else {
            &self.emb_out
        }
    }

    /// Final hidden states `[N, H]` after a forward.
    pub fn output(&self, enc: &Encoder) -> &[f32] {
        let n = self.b * self.t * enc.hidden;
        match enc.layers.len() {
            0 => &self.layer0_input(enc)[..n],
            l => &self.layers[self.slot(l - 1)].out[..n],
        }
    }
}

impl Encoder {
    /// Forward over `ids`/`types` `[B, T]` with an optional 0/1 attention mask. Inputs must be
    /// validated by the caller (ids < V, types < type_vocab_size, T ≤ T_max).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        w: &[f32],
        acts: &mut EncoderActs,
        ids: &[i32],
        types: Option<&[i32]>,
        mask: Option<&[i32]>,
        b: usize,
        t: usize,
    ) {
        acts.reserve(self, b, t);
        let n = b * t;
        let (e, h) = (self.emb_dim, self.hidden);
        key_mask(&mut acts.mask_add, mask, n);
        embedding_forward(&mut acts.emb_sum, ids, types, self.emb.word.of(w), self.emb.pos.of(w), self.emb.typ.of(w), b, t, e);
        let ln = &self.emb.ln;
        layer_norm_forward(&mut acts.emb_out, &mut acts.emb_mean, &mut acts.emb_rstd, &acts.emb_sum, ln.g.of(w), ln.b.of(w), n, e, ln.eps);
        if let Some(p) = &self.proj {
            linear_forward(&mut acts.proj_out, &acts.emb_out, p.w.of(w), Some(p.b.of(w)), n, e, h);
        }
        for l in 0..self.layers.len() {
            let cur = acts.slot(l);
            // Borrow the previous layer's output (or the embeddings) next to this layer's buffers.
            let (x, la): (&[f32], &mut LayerActs) = if l == 0 {
                let input: &[f32] = if self.proj.is_some() { &acts.proj_out } else { &acts.emb_out };
                (input, &mut acts.layers[cur])
            } else {
                let prev = acts.slot(l - 1);
                if prev < cur {
                    let (lo, hi) = acts.layers.split_at_mut(cur);
                    (&lo[prev].out, &mut hi[0])
                } else {
                    let (lo, hi) = acts.layers.split_at_mut(prev);
                    (&hi[0].out, &mut lo[cur])
                }
            };
            self.layer_forward(l, w, la, x, &acts.mask_add, b, t);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_forward(&self, l: usize, w: &[f32], la: &mut LayerActs, x: &[f32], mask_add: &[f32], b: usize, t: usize) {
        let ly = &self.layers[l];
        let (n, h, i) = (b * t, self.hidden, self.inter);
        let x = &x[..n * h];
        linear_forward(&mut la.q, x, ly.q.w.of(w), Some(ly.q.b.of(w)), n, h, h);
        linear_forward(&mut la.k, x, ly.k.w.of(w), Some(ly.k.b.of(w)), n, h, h);
        linear_forward(&mut la.v, x, ly.v.w.of(w), Some(ly.v.b.of(w)), n, h, h);
        attention_forward(&mut la.ctx, &mut la.probs, &la.q, &la.k, &la.v, mask_add, b, t, self.heads, h / self.heads);
        linear_forward(&mut la.ln1_in, &la.ctx, ly.o.w.of(w), Some(ly.o.b.of(w)), n, h, h);
        add_in_place(&mut la.ln1_in[..n * h], x);
        let g = &ly.attn_ln;
        layer_norm_forward(&mut la.x1, &mut la.ln1_mean, &mut la.ln1_rstd, &la.ln1_in, g.g.of(w), g.b.of(w), n, h, g.eps);
        linear_forward(&mut la.ff_pre, &la.x1, ly.inter.w.of(w), Some(ly.inter.b.of(w)), n, h, i);
        activation_forward(&mut la.ff_act[..n * i], &la.ff_pre[..n * i], self.act);
        linear_forward(&mut la.ln2_in, &la.ff_act, ly.out.w.of(w), Some(ly.out.b.of(w)), n, i, h);
        add_in_place(&mut la.ln2_in[..n * h], &la.x1[..n * h]);
        let g = &ly.out_ln;
        layer_norm_forward(&mut la.out, &mut la.ln2_mean, &mut la.ln2_rstd, &la.ln2_in, g.g.of(w), g.b.of(w), n, h, g.eps);
    }
}

/// `a += b`.
pub fn add_in_place(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
