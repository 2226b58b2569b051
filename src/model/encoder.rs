//! The ELECTRA encoder tower (HF `ElectraModel`): embeddings, optional projection E→H, and L
//! post-LN transformer layers, each layer's forward beside its backward, over any
//! [`Backend`]. The forward writes every activation the backward needs into [`EncoderActs`];
//! inference keeps only two layers' worth and ping-pongs between them.

use super::registrar::{EncoderLayer, Registrar};
use super::Backprop;
use crate::backend::{
    Activated, Activation, AttentionSaved, AttentionShape, Backend, Buf, Dropout, FeedForward, InputGrad, KeystreamAt,
    LnSaved, LnStats, Qkv, ResidualLn, Tokens, Weights,
};
use crate::batch::Batch;
use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::layers::{Embeddings, Linear};
use crate::params::ParamId;

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
}

impl Encoder {
    /// Registers the tower's tensors with HF names (`electra.…`). `shared` reuses another tower's
    /// embeddings (the original code's generator/discriminator sharing).
    pub fn register(
        reg: &mut Registrar,
        cfg: &ElectraConfig,
        shared: Option<(&Embeddings, &[(String, ParamId)])>,
    ) -> Result<Self> {
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
                pad_id: cfg.pad_token_id,
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
        Ok(Encoder {
            emb,
            proj,
            layers,
            hidden: h,
            emb_dim: e,
            heads: cfg.num_attention_heads,
            inter: cfg.intermediate_size,
            act: cfg.activation()?,
        })
    }

    /// Every Linear weight of this tower (the projection and each layer's six).
    pub fn linears(&self) -> impl Iterator<Item = &Linear> + '_ {
        self.proj.iter().chain(self.layers.iter().flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.inter, &l.out]))
    }
}

/// The dropout of one tower's training forward, as HF applies it: `hidden` after the embeddings'
/// LayerNorm, the attention output projection and the feed-forward output projection (before
/// each residual add), `attention` on the attention probabilities. Each site reads its own part
/// of one keystream (site s at word s·2⁴⁰), so a step's masks depend only on the key and stream
/// the trainer chose for it, never on threads or backend, and the backward re-derives them.
///
/// The default drops nothing (as in eval). The probabilities are kept as the masks' integer
/// thresholds, computed once: a site's mask is then a plain copy, with no floating-point work
/// on a value that may not be in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TowerDropout {
    /// `hidden_dropout_prob` as a [`Dropout::threshold`] (0: none).
    pub hidden: u32,
    /// `attention_probs_dropout_prob`, likewise.
    pub attention: u32,
    /// The keystream (its word position is ignored: the sites set it).
    pub at: KeystreamAt,
}

impl TowerDropout {
    /// Whether any site drops.
    pub fn is_active(&self) -> bool {
        self.hidden > 0 || self.attention > 0
    }

    /// Site `s`'s mask of threshold `threshold` (none when 0).
    pub fn site(&self, threshold: u32, s: u64) -> Option<Dropout> {
        (threshold > 0).then_some(Dropout { threshold, at: KeystreamAt { word_pos: s << 40, ..self.at } })
    }

    fn embeddings(&self) -> Option<Dropout> {
        self.site(self.hidden, 0)
    }

    fn attention_probs(&self, layer: usize) -> Option<Dropout> {
        self.site(self.attention, 1 + 3 * layer as u64)
    }

    fn attention_output(&self, layer: usize) -> Option<Dropout> {
        self.site(self.hidden, 2 + 3 * layer as u64)
    }

    fn ffn_output(&self, layer: usize) -> Option<Dropout> {
        self.site(self.hidden, 3 + 3 * layer as u64)
    }
}

impl TowerDropout {
    /// The dropout `setting` gives a tower whose config says `(hidden, attention)` probabilities
    /// (none when both come out 0), its masks read from stream `stream` of the run's dropout key
    /// (see [`dropout_key`]).
    pub fn of(setting: crate::options::DropoutSetting, config: (f32, f32), key: [u32; 8], stream: u64) -> Result<Self> {
        let (hidden, attention) = setting.probabilities(config, "dropout")?;
        let at = KeystreamAt { key, stream, word_pos: 0 };
        Ok(TowerDropout { hidden: Dropout::threshold_of(hidden), attention: Dropout::threshold_of(attention), at })
    }
}

/// The key of a run's dropout masks, from its seed: apart from the masking and sampling
/// generators (which key on the seed itself), so turning dropout on changes no mask or sample.
pub fn dropout_key(seed: u64) -> [u32; 8] {
    use rand::SeedableRng;
    let rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6472_6f70_6f75_7421); // "dropout!"
    KeystreamAt::of(&rng).map_or([0; 8], |at| at.key)
}

/// Sites past every layer's, for the heads that drop too (the classifier's two).
///
/// cbindgen:ignore
pub const HEAD_SITES: u64 = 1 << 23;

/// Activations of one layer, kept for its backward. All `[N, ·]` row-major. The two LayerNorms'
/// outputs are not among them: the backward recomputes each from its kept input and statistics
/// (the same arithmetic, so the same bits), which saves two `[N, H]` per layer.
#[derive(Default, Debug)]
pub struct LayerActs {
    /// Queries `[N, H]` (empty in a `lean` forward, as the keys, values and context).
    pub q: Buf,
    /// Keys `[N, H]`.
    pub k: Buf,
    /// Values `[N, H]`.
    pub v: Buf,
    /// Softmax probabilities `[B, NH, T, T]`.
    pub probs: Buf,
    /// Attention context before the output projection `[N, H]`.
    pub ctx: Buf,
    /// Input of the attention LayerNorm: dense(ctx) + x `[N, H]`.
    pub ln1_in: Buf,
    /// Its statistics.
    pub ln1: LnStats,
    /// Feed-forward pre-activation `[N, I]`.
    pub ff_pre: Buf,
    /// Input of the output LayerNorm: dense(ff_act) + x1 `[N, H]`.
    pub ln2_in: Buf,
    /// Its statistics.
    pub ln2: LnStats,
}

/// Every activation of one encoder forward, and the inputs it ran on (the backward scatters
/// into the embedding rows of those ids). Buffers only grow, so steady-state calls allocate
/// nothing.
#[derive(Default, Debug)]
pub struct EncoderActs {
    /// B of the last forward.
    pub b: usize,
    /// T of the last forward.
    pub t: usize,
    /// The input ids `[N]`, on the backend's device.
    pub ids: Buf<i32>,
    /// The token types `[N]`, when given.
    pub types: Option<Buf<i32>>,
    /// The attention mask `[N]`, when given.
    pub mask: Option<Buf<i32>>,
    /// Additive key mask `[N]` (0 or f32::MIN).
    pub mask_add: Buf,
    /// word + type + position `[N, E]` (the embedding LayerNorm's input).
    pub emb_sum: Buf,
    /// Its statistics.
    pub emb_ln: LnStats,
    /// Embedding output `[N, E]`.
    pub emb_out: Buf,
    /// Projection output `[N, H]` (when E ≠ H).
    pub proj_out: Buf,
    /// Per-layer activations: L of them when training, two (reused) for inference.
    pub layers: Vec<LayerActs>,
    /// The attention block output x1 `[N, H]` of the layer being computed.
    pub x1: Buf,
    /// Layer outputs `[N, H]`, alternating: layer l writes `outs[l % 2]` and reads the other
    /// (layer 0 reads the embeddings); the last layer's stays until the next forward.
    pub outs: [Buf; 2],
    /// Whether every layer's activations are kept.
    pub keep_all: bool,
    /// Whether the attention probabilities `[B, NH, T, T]` of each layer are kept: on a backend
    /// that does not [`Backend::attention_recomputes`] (its attention writes them in every
    /// forward and its backward reads them), or where a caller reads them (the attention-entropy
    /// probe). Set by `reserve`.
    pub keep_probs: bool,
    /// Keep the probabilities whatever the backend (for a caller that reads them).
    pub want_probs: bool,
    /// A training forward on a backend that recomputes attention: no layer keeps its queries,
    /// keys, values or context either (the backward recomputes them from the layer's input: one
    /// more Q/K/V product and attention forward per layer); they go to `q`, `k`, `v` and `ctx`,
    /// shared. Set by `reserve`.
    pub lean: bool,
    /// The current layer's queries `[N, H]` when `lean`.
    pub q: Buf,
    /// Its keys `[N, H]` when `lean`.
    pub k: Buf,
    /// Its values `[N, H]` when `lean`.
    pub v: Buf,
    /// Its attention context `[N, H]` when `lean`.
    pub ctx: Buf,
    /// Feed-forward activation `[N, I]` of the layer being computed: not kept per layer (the
    /// backward recomputes it from the pre-activation), which saves L·N·I floats.
    pub ff_act: Buf,
    /// Dropout of the next forward (training only; set by the trainer before each forward, and
    /// read again by the backward to rebuild the same masks). The default: the network as in eval.
    pub dropout: TowerDropout,
}

/// Uploads an optional host input into an optional device buffer.
fn upload_opt(be: &dyn Backend, dst: &mut Option<Buf<i32>>, src: Option<&[i32]>) -> Result<()> {
    match src {
        Some(s) => be.upload_ids(dst.get_or_insert_with(Buf::default), s),
        None => {
            *dst = None;
            Ok(())
        }
    }
}

impl EncoderActs {
    /// Buffers for an encoder; `keep_all` keeps each layer's activations for a backward pass.
    pub fn new(keep_all: bool) -> Self {
        EncoderActs { keep_all, ..Default::default() }
    }

    fn reserve(&mut self, be: &dyn Backend, enc: &Encoder, b: usize, t: usize) -> Result<()> {
        let n = b * t;
        let (e, h, i, nh) = (enc.emb_dim, enc.hidden, enc.inter, enc.heads);
        self.b = b;
        self.t = t;
        for (v, len) in [
            (&mut self.mask_add, n),
            (&mut self.emb_sum, n * e),
            (&mut self.emb_ln.mean, n),
            (&mut self.emb_ln.rstd, n),
            (&mut self.emb_out, n * e),
        ] {
            be.ensure(v, len)?;
        }
        if enc.proj.is_some() {
            be.ensure(&mut self.proj_out, n * h)?;
        }
        if !enc.layers.is_empty() {
            be.ensure(&mut self.x1, n * h)?;
            be.ensure(&mut self.outs[0], n * h)?;
        }
        if enc.layers.len() > 1 {
            be.ensure(&mut self.outs[1], n * h)?;
        }
        if self.keep_all {
            be.ensure(&mut self.ff_act, n * i)?;
        }
        let want = if self.keep_all { enc.layers.len() } else { enc.layers.len().min(2) };
        // A backend that recomputes them in the backward needs none (and its attention works
        // without them, in inference too); one that does not writes them in every forward.
        self.keep_probs = self.want_probs || !be.attention_recomputes();
        self.lean = self.keep_all && !self.keep_probs;
        let own = if self.lean { 0 } else { n * h };
        if self.lean {
            for v in [&mut self.q, &mut self.k, &mut self.v, &mut self.ctx] {
                be.ensure(v, n * h)?;
            }
        }
        self.layers.resize_with(want.max(self.layers.len()), LayerActs::default);
        for la in &mut self.layers[..want] {
            for v in [&mut la.ln1_in, &mut la.ln2_in] {
                be.ensure(v, n * h)?;
            }
            // Inference grows queries, keys and values only where its attention is not fused.
            let qkv = if self.keep_all { own } else { 0 };
            for v in [&mut la.q, &mut la.k, &mut la.v] {
                be.ensure(v, qkv)?;
            }
            be.ensure(&mut la.ctx, own)?;
            for v in [&mut la.ln1.mean, &mut la.ln1.rstd, &mut la.ln2.mean, &mut la.ln2.rstd] {
                be.ensure(v, n)?;
            }
            // Inference grows these only where its feed-forward is not fused (see `forward`).
            if self.keep_all {
                be.ensure(&mut la.ff_pre, n * i)?;
            }
            be.ensure(&mut la.probs, if self.keep_probs { b * nh * t * t } else { 0 })?;
        }
        Ok(())
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
    pub fn layer0_input<'a>(&'a self, enc: &Encoder) -> &'a Buf {
        if enc.proj.is_some() {
            &self.proj_out
        } else {
            &self.emb_out
        }
    }

    /// The ids and types of the last forward, as the backend holds them.
    fn tokens(&self) -> Tokens<'_> {
        Tokens { ids: &self.ids, types: self.types.as_ref(), b: self.b, t: self.t }
    }

    /// Final hidden states `[N, H]` after a forward (the buffer may be longer).
    pub fn output(&self, enc: &Encoder) -> &Buf {
        match enc.layers.len() {
            0 => self.layer0_input(enc),
            l => &self.outs[(l - 1) % 2],
        }
    }

    /// What a classification head reads after a forward of `b` rows of `t`: the final states
    /// and the batch's attention mask.
    pub fn pooled(&self, enc: &Encoder, b: usize, t: usize) -> super::classifier::Pooled<'_> {
        super::classifier::Pooled { hidden: self.output(enc), mask: self.mask.as_ref(), b, t }
    }
}

impl Encoder {
    /// Forward over a host batch `[B, T]` (ids, optional types and 0/1 attention mask, uploaded
    /// into `acts`). Inputs must be validated by the caller (ids < V, types < type_vocab_size,
    /// T ≤ T_max); the backend rejects ids outside the tables.
    pub fn forward(&self, be: &dyn Backend, w: &Weights, acts: &mut EncoderActs, x: &Batch) -> Result<()> {
        let (b, t) = (x.batch, x.seq_len);
        let n = b * t;
        fn cut<'a>(x: &'a [i32], what: &str, b: usize, t: usize) -> Result<&'a [i32]> {
            x.get(..b * t).ok_or_else(|| Error::Shape { what: what.into(), expected: vec![b, t], got: vec![x.len()] })
        }
        acts.reserve(be, self, b, t)?;
        be.upload_ids(&mut acts.ids, cut(x.input_ids, "input_ids", b, t)?)?;
        upload_opt(be, &mut acts.types, x.token_type_ids.map(|y| cut(y, "token_type_ids", b, t)).transpose()?)?;
        upload_opt(be, &mut acts.mask, x.attention_mask.map(|y| cut(y, "attention_mask", b, t)).transpose()?)?;
        be.key_mask(&mut acts.mask_add, acts.mask.as_ref(), n)?;
        let tokens = Tokens { ids: &acts.ids, types: acts.types.as_ref(), b, t };
        be.embedding(&mut acts.emb_sum, tokens, w, &self.emb)?;
        be.layer_norm(&mut acts.emb_out, &mut acts.emb_ln, &acts.emb_sum, w.flat, &self.emb.ln, n)?;
        let (drop, keep_all) = (acts.dropout, acts.keep_all);
        if let Some(d) = drop.embeddings() {
            be.dropout(&mut acts.emb_out, n * self.emb_dim, d)?;
        }
        if let Some(p) = &self.proj {
            be.linear(&mut acts.proj_out, &acts.emb_out, w, p, n)?;
        }
        for l in 0..self.layers.len() {
            let shape = AttentionShape {
                keep_probs: acts.keep_probs,
                int8: w.int8 && !acts.keep_probs,
                ..self.attention_shape(b, t, drop, l)
            };
            let cur = acts.slot(l);
            // This layer's buffers beside its input: the embeddings (or their projection), else
            // the previous layer's output.
            let EncoderActs { layers, x1, outs, ff_act, proj_out, emb_out, mask_add, lean, q, k, v, ctx, .. } =
                &mut *acts;
            let [even, odd] = outs;
            let (x, out): (&Buf, &mut Buf) = match (l, l % 2) {
                (0, _) => (if self.proj.is_some() { proj_out } else { emb_out }, even),
                (_, 0) => (odd, even),
                _ => (even, odd),
            };
            let la = &mut layers[cur];
            let ly = &self.layers[l];
            let (q, k, v, ctx) = if *lean { (q, k, v, ctx) } else { (&mut la.q, &mut la.k, &mut la.v, &mut la.ctx) };
            let qkv = Qkv { q: &mut *q, k: &mut *k, v: &mut *v };
            let lin = Qkv { q: &ly.q, k: &ly.k, v: &ly.v };
            be.self_attention((&mut *ctx, &mut la.probs), qkv, x, w, (lin, mask_add), shape)?;
            // x1 = LN1(drop(dense_o(ctx)) + x), fused per row block without dropout.
            let y = ResidualLn { sum: &mut la.ln1_in, out: x1, stats: &mut la.ln1 };
            residual_block(be, y, (ctx, x), w, (&ly.attn_out(), n), drop.attention_output(l))?;
            let scratch = Activated { pre: &mut la.ff_pre, act: &mut *ff_act, f: self.act };
            let y = ResidualLn { sum: &mut la.ln2_in, out, stats: &mut la.ln2 };
            let ffn_out = ly.ffn_out();
            match drop.ffn_output(l) {
                // Inference: the block in one call (a backend may fuse its two products).
                None if !keep_all => {
                    be.feed_forward(y, x1, w, FeedForward { inter: &ly.inter, out: &ffn_out }, scratch, n)?
                }
                drop => {
                    // ff_act = act(dense_inter(x1)), bias and activation fused; kept for the backward.
                    be.ensure(&mut *scratch.pre, n * self.inter)?;
                    be.ensure(&mut *scratch.act, n * self.inter)?;
                    be.linear_act(scratch, x1, w, &ly.inter, n)?;
                    // out = LN2(drop(dense_out(ff_act)) + x1).
                    residual_block(be, y, (ff_act, x1), w, (&ffn_out, n), drop)?;
                }
            }
        }
        Ok(())
    }

    /// The attention dimensions of a `[B, T]` batch, with layer `l`'s dropout when training.
    fn attention_shape(&self, b: usize, t: usize, drop: TowerDropout, l: usize) -> AttentionShape {
        AttentionShape {
            dropout: drop.attention_probs(l),
            ..AttentionShape::new(b, t, self.heads, self.hidden / self.heads)
        }
    }
}

/// BERT's post-LN block output `y.out = LN(drop(x·Wᵀ + b) + residual)`: the backend's fused
/// kernel without dropout; with it, the product, the mask, the residual add and the LayerNorm
/// one after the other (the same arithmetic, with the mask between).
fn residual_block(
    be: &dyn Backend,
    y: ResidualLn,
    (x, residual): (&Buf, &Buf),
    w: &Weights,
    (block, n): (&crate::layers::PostLn, usize),
    drop: Option<Dropout>,
) -> Result<()> {
    let Some(d) = drop else {
        return be.linear_residual_layer_norm(y, x, residual, w, block, n);
    };
    let h = block.dense.dout;
    be.linear(y.sum, x, w, &block.dense, n)?;
    be.dropout(y.sum, n * h, d)?;
    be.add(y.sum, residual, n * h)?;
    be.layer_norm(y.out, y.stats, y.sum, w.flat, &block.ln, n)
}

/// Scratch for one encoder backward, reused across layers and steps.
#[derive(Default, Debug)]
pub struct EncoderGrads {
    /// Gradient flowing down the residual stream `[N, H]`.
    pub d_res: Buf,
    /// Gradient of the attention block output x1 (the output LayerNorm's input) `[N, H]`.
    pub d_x1: Buf,
    /// Feed-forward pre-activation gradient `[N, I]`.
    pub d_ff_pre: Buf,
    /// The feed-forward activation recomputed for the layer being differentiated `[N, I]`.
    pub ff_act: Buf,
    /// Its attention block output x1, recomputed from the kept LayerNorm input `[N, H]`.
    pub x1: Buf,
    /// Its input (the previous layer's output), likewise recomputed `[N, H]`.
    pub x: Buf,
    /// The statistics those recomputations write (equal to the kept ones) `[N]`.
    pub stats: LnStats,
    /// Its queries, recomputed where the forward was `lean` `[N, H]`.
    pub q: Buf,
    /// Its keys, likewise `[N, H]`.
    pub k: Buf,
    /// Its values, likewise `[N, H]`.
    pub v: Buf,
    /// Its attention context, likewise `[N, H]`.
    pub ctx: Buf,
    /// The probabilities such a recomputation does not keep (empty).
    pub no_probs: Buf,
    /// Context gradient `[N, H]`.
    pub d_ctx: Buf,
    /// Query gradient `[N, H]`.
    pub dq: Buf,
    /// Key gradient `[N, H]`.
    pub dk: Buf,
    /// Value gradient `[N, H]`.
    pub dv: Buf,
    /// Attention scratch `[B, NH, T, T]` (where the probabilities are kept).
    pub d_scores: Buf,
    /// Embedding-output gradient `[N, E]`.
    pub d_emb: Buf,
    /// Embedding-sum gradient `[N, E]`.
    pub d_emb_sum: Buf,
    /// A dropped projection's output gradient `[N, H]` (the masked copy of the residual's).
    pub d_drop: Buf,
}

impl Encoder {
    /// Backward of [`Encoder::forward`] (which must have run with `keep_all` activations) from
    /// `d_out`, the gradient of the final hidden states `[N, H]`. Parameter gradients accumulate
    /// into `bp`'s gradients (same layout as its weights), including the embedding tables.
    pub fn backward(&self, bp: &mut Backprop, acts: &EncoderActs, gs: &mut EncoderGrads, d_out: &Buf) -> Result<()> {
        if !acts.keep_all {
            return Err(Error::Internal("the encoder backward needs every layer's activations (keep_all)".into()));
        }
        let be = bp.be;
        let (b, t) = (acts.b, acts.t);
        let n = b * t;
        let (e, h, i) = (self.emb_dim, self.hidden, self.inter);
        for (v, len) in [
            (&mut gs.d_res, n * h),
            (&mut gs.d_x1, n * h),
            (&mut gs.d_ctx, n * h),
            (&mut gs.dq, n * h),
            (&mut gs.dk, n * h),
            (&mut gs.dv, n * h),
            (&mut gs.d_ff_pre, n * i),
            (&mut gs.ff_act, n * i),
            (&mut gs.x1, n * h),
            (&mut gs.x, n * h),
            (&mut gs.q, if acts.lean { n * h } else { 0 }),
            (&mut gs.k, if acts.lean { n * h } else { 0 }),
            (&mut gs.v, if acts.lean { n * h } else { 0 }),
            (&mut gs.ctx, if acts.lean { n * h } else { 0 }),
            (&mut gs.stats.mean, n),
            (&mut gs.stats.rstd, n),
            (&mut gs.d_scores, if acts.keep_probs { b * self.heads * t * t } else { 0 }),
            (&mut gs.d_emb, n * e),
            (&mut gs.d_emb_sum, n * e),
            (&mut gs.d_drop, if acts.dropout.is_active() { n * h } else { 0 }),
        ] {
            be.ensure(v, len)?;
        }
        be.copy(&mut gs.d_res, d_out, n * h)?;
        let drop = acts.dropout;
        for l in (0..self.layers.len()).rev() {
            // The layer's input: the previous layer's output, recomputed into gs.x from its
            // LayerNorm's kept input (layer 0 reads the embeddings, which are kept).
            let x = if l == 0 {
                Some(acts.layer0_input(self))
            } else {
                let (prev, w) = (&acts.layers[l - 1], bp.params.w);
                be.layer_norm(&mut gs.x, &mut gs.stats, &prev.ln2_in, w, &self.layers[l - 1].out_ln, n)?;
                None
            };
            let shape = AttentionShape { keep_probs: acts.keep_probs, ..self.attention_shape(b, t, drop, l) };
            let la = &acts.layers[l];
            let masks = [drop.attention_output(l), drop.ffn_output(l)];
            self.layer_backward(bp, (&self.layers[l], masks), (la, &acts.mask_add, acts.lean), x, gs, shape)?;
        }
        let p = &mut bp.params;
        // gs.d_res now holds the gradient of layer 0's input.
        let d_emb_out = if let Some(proj) = &self.proj {
            be.linear_backward(InputGrad::Set(&mut gs.d_emb), p, &gs.d_res, &acts.emb_out, proj, n)?;
            &mut gs.d_emb
        } else {
            &mut gs.d_res
        };
        // Through the embeddings' dropout: the same mask on the gradient.
        if let Some(d) = drop.embeddings() {
            be.dropout(d_emb_out, n * e, d)?;
        }
        let d_emb_out = &*d_emb_out;
        let saved = LnSaved { x: &acts.emb_sum, stats: &acts.emb_ln };
        be.layer_norm_backward(&mut gs.d_emb_sum, p, d_emb_out, saved, &self.emb.ln, n)?;
        be.embedding_backward(p.grads, &gs.d_emb_sum, acts.tokens(), &self.emb)
    }

    /// One layer's backward; `masks` are the dropouts of its attention output and feed-forward
    /// output projections; `x` is its input, `None` where it was recomputed into `gs.x`.
    fn layer_backward(
        &self,
        bp: &mut Backprop,
        (ly, masks): (&EncoderLayer, [Option<Dropout>; 2]),
        (la, mask_add, lean): (&LayerActs, &Buf, bool),
        x: Option<&Buf>,
        gs: &mut EncoderGrads,
        shape: AttentionShape,
    ) -> Result<()> {
        let (be, p) = (bp.be, &mut bp.params);
        let x = x.unwrap_or(&gs.x);
        let (n, i) = (shape.b * shape.t, self.inter);
        // out = LN2(ln2_in), ln2_in = dense_out(ff_act) + x1: d_x1 = ∂/∂ln2_in, which is both
        // dense_out's output gradient and (through the residual) part of x1's.
        let saved = LnSaved { x: &la.ln2_in, stats: &la.ln2 };
        be.layer_norm_backward(&mut gs.d_x1, p, &gs.d_res, saved, &ly.out_ln, n)?;
        // The forward did not keep the activation: recompute it (bit-identical) from ff_pre.
        be.activation(&mut gs.ff_act, &la.ff_pre, n * i, self.act)?;
        let ff = Activated { pre: &la.ff_pre, act: &gs.ff_act, f: self.act };
        let dy = masked(be, &mut gs.d_drop, &gs.d_x1, masks[1], n * self.hidden)?;
        be.linear_act_backward(&mut gs.d_ff_pre, p, dy, ff, &ly.out, n)?;
        // Nor x1: recompute it (bit-identical) from the attention LayerNorm's input.
        be.layer_norm(&mut gs.x1, &mut gs.stats, &la.ln1_in, p.w, &ly.attn_ln, n)?;
        be.linear_backward(InputGrad::Add(&mut gs.d_x1), p, &gs.d_ff_pre, &gs.x1, &ly.inter, n)?;
        // x1 = LN1(ln1_in), ln1_in = dense_o(ctx) + x: d_res = ∂/∂ln1_in, likewise.
        let saved = LnSaved { x: &la.ln1_in, stats: &la.ln1 };
        be.layer_norm_backward(&mut gs.d_res, p, &gs.d_x1, saved, &ly.attn_ln, n)?;
        // A lean forward kept none of the queries, keys, values and context: recompute them (the
        // forward's own products and attention on the same input and dropout masks: the same bits).
        let (qkv, ctx) = if lean {
            let y = Qkv { q: &mut gs.q, k: &mut gs.k, v: &mut gs.v };
            be.linear_qkv(y, x, &Weights::flat(p.w), Qkv { q: &ly.q, k: &ly.k, v: &ly.v }, n)?;
            let qkv = Qkv { q: &gs.q, k: &gs.k, v: &gs.v };
            be.attention(&mut gs.ctx, &mut gs.no_probs, qkv, mask_add, shape)?;
            (qkv, &gs.ctx)
        } else {
            (Qkv { q: &la.q, k: &la.k, v: &la.v }, &la.ctx)
        };
        let dy = masked(be, &mut gs.d_drop, &gs.d_res, masks[0], n * self.hidden)?;
        be.linear_backward(InputGrad::Set(&mut gs.d_ctx), p, dy, ctx, &ly.o, n)?;
        let dqkv = Qkv { q: &mut gs.dq, k: &mut gs.dk, v: &mut gs.dv };
        let saved = AttentionSaved { probs: &la.probs, mask_add };
        be.attention_backward(dqkv, &mut gs.d_scores, &gs.d_ctx, saved, qkv, shape)?;
        be.linear_backward(InputGrad::Add(&mut gs.d_res), p, &gs.dq, x, &ly.q, n)?;
        be.linear_backward(InputGrad::Add(&mut gs.d_res), p, &gs.dk, x, &ly.k, n)?;
        be.linear_backward(InputGrad::Add(&mut gs.d_res), p, &gs.dv, x, &ly.v, n)
    }
}

/// The gradient of a dropped projection's output: `dy` itself without dropout, else `dy` through
/// the mask, in `scratch` (the residual keeps the unmasked `dy`).
fn masked<'a>(
    be: &dyn Backend,
    scratch: &'a mut Buf,
    dy: &'a Buf,
    mask: Option<Dropout>,
    len: usize,
) -> Result<&'a Buf> {
    let Some(d) = mask else { return Ok(dy) };
    be.copy(scratch, dy, len)?;
    be.dropout(scratch, len, d)?;
    Ok(scratch)
}
