//! The ELECTRA encoder tower (HF `ElectraModel`): embeddings, optional projection E→H, and L
//! post-LN transformer layers, each layer's forward beside its backward, over any
//! [`Backend`]. The forward writes every activation the backward needs into [`EncoderActs`];
//! inference keeps only two layers' worth and ping-pongs between them.

use super::registrar::{EncoderLayer, Registrar};
use crate::backend::{Activation, Backend, Buf, InputGrad, Mem, Weights};
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

/// Activations of one layer, kept for its backward. All `[N, ·]` row-major.
#[derive(Default, Debug)]
pub struct LayerActs {
    /// Queries `[N, H]`.
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
    /// Its mean `[N]`.
    pub ln1_mean: Buf,
    /// Its 1/std `[N]`.
    pub ln1_rstd: Buf,
    /// Attention block output `[N, H]`.
    pub x1: Buf,
    /// Feed-forward pre-activation `[N, I]`.
    pub ff_pre: Buf,
    /// Input of the output LayerNorm: dense(ff_act) + x1 `[N, H]`.
    pub ln2_in: Buf,
    /// Its mean `[N]`.
    pub ln2_mean: Buf,
    /// Its 1/std `[N]`.
    pub ln2_rstd: Buf,
    /// Layer output `[N, H]`.
    pub out: Buf,
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
    /// Its mean `[N]`.
    pub emb_mean: Buf,
    /// Its 1/std `[N]`.
    pub emb_rstd: Buf,
    /// Embedding output `[N, E]`.
    pub emb_out: Buf,
    /// Projection output `[N, H]` (when E ≠ H).
    pub proj_out: Buf,
    /// Per-layer activations: L of them when training, two (reused) for inference.
    pub layers: Vec<LayerActs>,
    /// Whether every layer's activations are kept.
    pub keep_all: bool,
    /// Feed-forward activation `[N, I]` of the layer being computed: not kept per layer (the
    /// backward recomputes it from the pre-activation), which saves L·N·I floats.
    pub ff_act: Buf,
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
            (&mut self.emb_mean, n),
            (&mut self.emb_rstd, n),
            (&mut self.emb_out, n * e),
            (&mut self.ff_act, n * i),
        ] {
            be.ensure(v, len)?;
        }
        if enc.proj.is_some() {
            be.ensure(&mut self.proj_out, n * h)?;
        }
        let want = if self.keep_all { enc.layers.len() } else { enc.layers.len().min(2) };
        self.layers.resize_with(want.max(self.layers.len()), LayerActs::default);
        for la in &mut self.layers[..want] {
            for v in
                [&mut la.q, &mut la.k, &mut la.v, &mut la.ctx, &mut la.ln1_in, &mut la.x1, &mut la.ln2_in, &mut la.out]
            {
                be.ensure(v, n * h)?;
            }
            for v in [&mut la.ln1_mean, &mut la.ln1_rstd, &mut la.ln2_mean, &mut la.ln2_rstd] {
                be.ensure(v, n)?;
            }
            be.ensure(&mut la.ff_pre, n * i)?;
            be.ensure(&mut la.probs, b * nh * t * t)?;
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

    /// Final hidden states `[N, H]` after a forward (the buffer may be longer).
    pub fn output(&self, enc: &Encoder) -> &Buf {
        match enc.layers.len() {
            0 => self.layer0_input(enc),
            l => &self.layers[self.slot(l - 1)].out,
        }
    }
}

impl Encoder {
    /// Forward over host `ids`/`types` `[B, T]` with an optional 0/1 attention mask (uploaded
    /// into `acts`). Inputs must be validated by the caller (ids < V, types < type_vocab_size,
    /// T ≤ T_max); the backend rejects ids outside the tables.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        be: &dyn Backend,
        w: &Weights,
        acts: &mut EncoderActs,
        ids: &[i32],
        types: Option<&[i32]>,
        mask: Option<&[i32]>,
        b: usize,
        t: usize,
    ) -> Result<()> {
        let n = b * t;
        fn cut<'a>(x: &'a [i32], what: &str, b: usize, t: usize) -> Result<&'a [i32]> {
            x.get(..b * t).ok_or_else(|| Error::Shape { what: what.into(), expected: vec![b, t], got: vec![x.len()] })
        }
        acts.reserve(be, self, b, t)?;
        be.upload_ids(&mut acts.ids, cut(ids, "input_ids", b, t)?)?;
        upload_opt(be, &mut acts.types, types.map(|x| cut(x, "token_type_ids", b, t)).transpose()?)?;
        upload_opt(be, &mut acts.mask, mask.map(|x| cut(x, "attention_mask", b, t)).transpose()?)?;
        be.key_mask(&mut acts.mask_add, acts.mask.as_ref(), n)?;
        be.embedding(&mut acts.emb_sum, &acts.ids, acts.types.as_ref(), w, &self.emb, b, t)?;
        let ln = &self.emb.ln;
        be.layer_norm(&mut acts.emb_out, &mut acts.emb_mean, &mut acts.emb_rstd, &acts.emb_sum, w.flat, ln, n)?;
        if let Some(p) = &self.proj {
            be.linear(&mut acts.proj_out, &acts.emb_out, w, p, n)?;
        }
        for l in 0..self.layers.len() {
            let cur = acts.slot(l);
            // Borrow the previous layer's output (or the embeddings) next to this layer's buffers.
            let (x, la): (&Buf, &mut LayerActs) = if l == 0 {
                let input = if self.proj.is_some() { &acts.proj_out } else { &acts.emb_out };
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
            self.layer_forward(be, &self.layers[l], w, la, &mut acts.ff_act, x, &acts.mask_add, b, t)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_forward(
        &self,
        be: &dyn Backend,
        ly: &EncoderLayer,
        w: &Weights,
        la: &mut LayerActs,
        ff_act: &mut Buf,
        x: &Buf,
        mask_add: &Buf,
        b: usize,
        t: usize,
    ) -> Result<()> {
        let (n, h, nh) = (b * t, self.hidden, self.heads);
        be.linear(&mut la.q, x, w, &ly.q, n)?;
        be.linear(&mut la.k, x, w, &ly.k, n)?;
        be.linear(&mut la.v, x, w, &ly.v, n)?;
        be.attention(&mut la.ctx, &mut la.probs, &la.q, &la.k, &la.v, mask_add, b, t, nh, h / nh)?;
        // x1 = LN1(dense_o(ctx) + x), fused per row block.
        be.linear_residual_layer_norm(
            &mut la.ln1_in,
            &mut la.x1,
            &mut la.ln1_mean,
            &mut la.ln1_rstd,
            &la.ctx,
            w,
            &ly.o,
            x,
            &ly.attn_ln,
            n,
        )?;
        // ff_act = act(dense_inter(x1)), bias and activation fused.
        be.linear_act(&mut la.ff_pre, ff_act, &la.x1, w, &ly.inter, n, self.act)?;
        // out = LN2(dense_out(ff_act) + x1).
        be.linear_residual_layer_norm(
            &mut la.ln2_in,
            &mut la.out,
            &mut la.ln2_mean,
            &mut la.ln2_rstd,
            ff_act,
            w,
            &ly.out,
            &la.x1,
            &ly.out_ln,
            n,
        )
    }
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
    /// Context gradient `[N, H]`.
    pub d_ctx: Buf,
    /// Query gradient `[N, H]`.
    pub dq: Buf,
    /// Key gradient `[N, H]`.
    pub dk: Buf,
    /// Value gradient `[N, H]`.
    pub dv: Buf,
    /// Attention scratch `[B, NH, T, T]`.
    pub d_scores: Buf,
    /// Embedding-output gradient `[N, E]`.
    pub d_emb: Buf,
    /// Embedding-sum gradient `[N, E]`.
    pub d_emb_sum: Buf,
}

impl Encoder {
    /// Backward of [`Encoder::forward`] (which must have run with `keep_all` activations) from
    /// `d_out`, the gradient of the final hidden states `[N, H]`. Parameter gradients accumulate
    /// into `g` (same layout as the weights `w`), including the embedding tables.
    pub fn backward(
        &self,
        be: &dyn Backend,
        w: Mem,
        g: &mut Buf,
        acts: &EncoderActs,
        gs: &mut EncoderGrads,
        d_out: &Buf,
    ) -> Result<()> {
        if !acts.keep_all {
            return Err(Error::Internal("the encoder backward needs every layer's activations (keep_all)".into()));
        }
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
            (&mut gs.d_scores, b * self.heads * t * t),
            (&mut gs.d_emb, n * e),
            (&mut gs.d_emb_sum, n * e),
        ] {
            be.ensure(v, len)?;
        }
        be.copy(&mut gs.d_res, d_out, n * h)?;
        for l in (0..self.layers.len()).rev() {
            let x = if l == 0 { acts.layer0_input(self) } else { &acts.layers[l - 1].out };
            self.layer_backward(be, &self.layers[l], w, g, &acts.layers[l], x, gs, b, t)?;
        }
        // gs.d_res now holds the gradient of layer 0's input.
        let d_emb_out = if let Some(p) = &self.proj {
            be.linear_backward(InputGrad::Set(&mut gs.d_emb), g, &gs.d_res, &acts.emb_out, w, p, n)?;
            &gs.d_emb
        } else {
            &gs.d_res
        };
        let ln = &self.emb.ln;
        be.layer_norm_backward(
            &mut gs.d_emb_sum,
            g,
            d_emb_out,
            &acts.emb_sum,
            w,
            ln,
            &acts.emb_mean,
            &acts.emb_rstd,
            n,
        )?;
        be.embedding_backward(g, &gs.d_emb_sum, &acts.ids, acts.types.as_ref(), &self.emb, b, t)
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_backward(
        &self,
        be: &dyn Backend,
        ly: &EncoderLayer,
        w: Mem,
        g: &mut Buf,
        la: &LayerActs,
        x: &Buf,
        gs: &mut EncoderGrads,
        b: usize,
        t: usize,
    ) -> Result<()> {
        let (n, h, i, nh) = (b * t, self.hidden, self.inter, self.heads);
        // out = LN2(ln2_in), ln2_in = dense_out(ff_act) + x1: d_x1 = ∂/∂ln2_in, which is both
        // dense_out's output gradient and (through the residual) part of x1's.
        be.layer_norm_backward(&mut gs.d_x1, g, &gs.d_res, &la.ln2_in, w, &ly.out_ln, &la.ln2_mean, &la.ln2_rstd, n)?;
        // The forward did not keep the activation: recompute it (bit-identical) from ff_pre.
        be.activation(&mut gs.ff_act, &la.ff_pre, n * i, self.act)?;
        be.linear_act_backward(&mut gs.d_ff_pre, g, &gs.d_x1, &gs.ff_act, &la.ff_pre, w, &ly.out, n, self.act)?;
        be.linear_backward(InputGrad::Add(&mut gs.d_x1), g, &gs.d_ff_pre, &la.x1, w, &ly.inter, n)?;
        // x1 = LN1(ln1_in), ln1_in = dense_o(ctx) + x: d_res = ∂/∂ln1_in, likewise.
        be.layer_norm_backward(&mut gs.d_res, g, &gs.d_x1, &la.ln1_in, w, &ly.attn_ln, &la.ln1_mean, &la.ln1_rstd, n)?;
        be.linear_backward(InputGrad::Set(&mut gs.d_ctx), g, &gs.d_res, &la.ctx, w, &ly.o, n)?;
        be.attention_backward(
            &mut gs.dq,
            &mut gs.dk,
            &mut gs.dv,
            &mut gs.d_scores,
            &gs.d_ctx,
            &la.probs,
            &la.q,
            &la.k,
            &la.v,
            b,
            t,
            nh,
            h / nh,
        )?;
        be.linear_backward(InputGrad::Add(&mut gs.d_res), g, &gs.dq, x, w, &ly.q, n)?;
        be.linear_backward(InputGrad::Add(&mut gs.d_res), g, &gs.dk, x, w, &ly.k, n)?;
        be.linear_backward(InputGrad::Add(&mut gs.d_res), g, &gs.dv, x, w, &ly.v, n)
    }
}
