//! The ELECTRA encoder tower (HF `ElectraModel`): embeddings, optional projection E→H, and L
//! post-LN transformer layers. Forward writes every activation the backward needs into
//! [`EncoderActs`]; inference keeps only two layers' worth and ping-pongs between them.

use super::layers::{Embeddings, EncoderLayer, Registrar};
use crate::config::{Activation, ElectraConfig};
use crate::model::layers::Linear;
use crate::ops::attention::{attention_forward, key_mask};
use crate::ops::embedding::embedding_forward;
use crate::ops::layer_norm::layer_norm_forward;
use crate::ops::matmul::{
    linear_act_forward, linear_forward, linear_residual_layer_norm_forward, transpose_weight, Weight,
};

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
    pub fn register(
        reg: &mut Registrar,
        cfg: &ElectraConfig,
        shared: Option<(&Embeddings, &[(String, crate::params::ParamId)])>,
    ) -> Self {
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
    /// Feed-forward activation `[N, I]` of the layer being computed: not kept per layer (the
    /// backward recomputes it from the pre-activation), which saves L·N·I floats.
    pub ff_act: Vec<f32>,
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
        grow(&mut self.ff_act, n * i);
        let want = if self.keep_all { enc.layers.len() } else { enc.layers.len().min(2) };
        self.layers.resize_with(want.max(self.layers.len()), LayerActs::default);
        for la in &mut self.layers[..want] {
            for v in
                [&mut la.q, &mut la.k, &mut la.v, &mut la.ctx, &mut la.ln1_in, &mut la.x1, &mut la.ln2_in, &mut la.out]
            {
                grow(v, n * h);
            }
            for v in [&mut la.ln1_mean, &mut la.ln1_rstd, &mut la.ln2_mean, &mut la.ln2_rstd] {
                grow(v, n);
            }
            grow(&mut la.ff_pre, n * i);
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
        self.forward_with(w, None, acts, ids, types, mask, b, t)
    }

    /// Every Linear weight of this tower (the projection and each layer's six), for
    /// [`Self::transpose_linears`].
    pub fn linears(&self) -> impl Iterator<Item = &Linear> + '_ {
        self.proj.iter().chain(self.layers.iter().flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.inter, &l.out]))
    }

    /// Writes into `dst` (a copy of the flat parameters) the `[in, out]` transpose of each of
    /// this tower's Linear weights, at the weight's own offset: the `inout` argument of
    /// [`Self::forward_with`].
    pub fn transpose_linears(&self, w: &[f32], dst: &mut [f32]) {
        for l in self.linears() {
            transpose_weight(l.w.of_mut(dst), l.w.of(w), l.dout, l.din);
        }
    }

    /// [`Self::forward`], reading the Linear weights from `inout` (see
    /// [`Self::transpose_linears`]) when given: faster for inference, same results.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_with(
        &self,
        w: &[f32],
        inout: Option<&[f32]>,
        acts: &mut EncoderActs,
        ids: &[i32],
        types: Option<&[i32]>,
        mask: Option<&[i32]>,
        b: usize,
        t: usize,
    ) {
        let lw = |l: &Linear| -> Weight { inout.map_or(Weight::OutIn(l.w.of(w)), |t| Weight::InOut(l.w.of(t))) };
        acts.reserve(self, b, t);
        let n = b * t;
        let (e, h) = (self.emb_dim, self.hidden);
        key_mask(&mut acts.mask_add, mask, n);
        embedding_forward(
            &mut acts.emb_sum,
            ids,
            types,
            self.emb.word.of(w),
            self.emb.pos.of(w),
            self.emb.typ.of(w),
            b,
            t,
            e,
        );
        let ln = &self.emb.ln;
        layer_norm_forward(
            &mut acts.emb_out,
            &mut acts.emb_mean,
            &mut acts.emb_rstd,
            &acts.emb_sum,
            ln.g.of(w),
            ln.b.of(w),
            n,
            e,
            ln.eps,
        );
        if let Some(p) = &self.proj {
            linear_forward(&mut acts.proj_out, &acts.emb_out, lw(p), Some(p.b.of(w)), n, e, h);
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
            self.layer_forward(l, w, &lw, la, &mut acts.ff_act, x, &acts.mask_add, b, t);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_forward<'w>(
        &self,
        l: usize,
        w: &[f32],
        lw: &impl Fn(&Linear) -> Weight<'w>,
        la: &mut LayerActs,
        ff_act: &mut [f32],
        x: &[f32],
        mask_add: &[f32],
        b: usize,
        t: usize,
    ) {
        let ly = &self.layers[l];
        let (n, h, i) = (b * t, self.hidden, self.inter);
        let x = &x[..n * h];
        linear_forward(&mut la.q, x, lw(&ly.q), Some(ly.q.b.of(w)), n, h, h);
        linear_forward(&mut la.k, x, lw(&ly.k), Some(ly.k.b.of(w)), n, h, h);
        linear_forward(&mut la.v, x, lw(&ly.v), Some(ly.v.b.of(w)), n, h, h);
        attention_forward(&mut la.ctx, &mut la.probs, &la.q, &la.k, &la.v, mask_add, b, t, self.heads, h / self.heads);
        // x1 = LN1(dense_o(ctx) + x), fused per row block.
        let g = &ly.attn_ln;
        linear_residual_layer_norm_forward(
            &mut la.ln1_in,
            &mut la.x1,
            &mut la.ln1_mean,
            &mut la.ln1_rstd,
            &la.ctx,
            lw(&ly.o),
            ly.o.b.of(w),
            x,
            (g.g.of(w), g.b.of(w), g.eps),
            n,
            h,
            h,
        );
        // ff_act = act(dense_inter(x1)), bias and activation fused.
        linear_act_forward(&mut la.ff_pre, ff_act, &la.x1, lw(&ly.inter), ly.inter.b.of(w), n, h, i, self.act);
        // out = LN2(dense_out(ff_act) + x1).
        let g = &ly.out_ln;
        linear_residual_layer_norm_forward(
            &mut la.ln2_in,
            &mut la.out,
            &mut la.ln2_mean,
            &mut la.ln2_rstd,
            ff_act,
            lw(&ly.out),
            ly.out.b.of(w),
            &la.x1,
            (g.g.of(w), g.b.of(w), g.eps),
            n,
            i,
            h,
        );
    }
}

/// `a += b`.
pub fn add_in_place(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Scratch for one encoder backward, reused across layers and steps.
#[derive(Default, Debug)]
pub struct EncoderGrads {
    /// Gradient flowing down the residual stream `[N, H]` (ping).
    pub d_res: Vec<f32>,
    /// Gradient of the attention block output x1 (the output LayerNorm's input) `[N, H]`.
    pub d_x1: Vec<f32>,
    /// Feed-forward pre-activation gradient `[N, I]`.
    pub d_ff_pre: Vec<f32>,
    /// The feed-forward activation recomputed for the layer being differentiated `[N, I]`.
    pub ff_act: Vec<f32>,
    /// Context gradient `[N, H]`.
    pub d_ctx: Vec<f32>,
    /// Query/key/value gradients `[N, H]`.
    pub dq: Vec<f32>,
    /// `[N, H]`.
    pub dk: Vec<f32>,
    /// `[N, H]`.
    pub dv: Vec<f32>,
    /// Attention scratch `[B, NH, T, T]`.
    pub d_scores: Vec<f32>,
    /// Embedding-output gradient `[N, E]`.
    pub d_emb: Vec<f32>,
    /// Embedding-sum gradient `[N, E]`.
    pub d_emb_sum: Vec<f32>,
}

impl Encoder {
    /// Backward of [`Encoder::forward`] (which must have run with `keep_all` activations) from
    /// `d_out`, the gradient of the final hidden states `[N, H]`. Parameter gradients accumulate
    /// into `g` (same layout as the weights `w`), including the embedding tables.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &[f32],
        g: &mut [f32],
        acts: &EncoderActs,
        gs: &mut EncoderGrads,
        d_out: &[f32],
        ids: &[i32],
        types: Option<&[i32]>,
    ) {
        assert!(acts.keep_all, "backward needs every layer's activations");
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
            grow(v, len);
        }
        gs.d_res[..n * h].copy_from_slice(&d_out[..n * h]);
        for l in (0..self.layers.len()).rev() {
            let x: &[f32] = if l == 0 { acts.layer0_input(self) } else { &acts.layers[l - 1].out };
            self.layer_backward(l, w, g, &acts.layers[l], x, gs, b, t);
        }
        // gs.d_res now holds the gradient of layer 0's input.
        let d_emb_out: &[f32] = if let Some(p) = &self.proj {
            crate::ops::matmul::linear_backward(
                Some(&mut gs.d_emb),
                p.w.of_mut(g),
                None,
                &gs.d_res,
                &acts.emb_out,
                p.w.of(w),
                n,
                e,
                h,
                false,
            );
            crate::ops::matmul::bias_grad(p.b.of_mut(g), &gs.d_res[..n * h], n, h);
            &gs.d_emb
        } else {
            &gs.d_res
        };
        let ln = &self.emb.ln;
        {
            let (dg, db) = two_spans(g, ln.g, ln.b);
            crate::ops::layer_norm::layer_norm_backward(
                &mut gs.d_emb_sum,
                dg,
                db,
                d_emb_out,
                &acts.emb_sum,
                ln.g.of(w),
                &acts.emb_mean,
                &acts.emb_rstd,
                n,
                e,
                false,
            );
        }
        let (dword, dpos, dtyp) = three_spans(g, self.emb.word, self.emb.pos, self.emb.typ);
        crate::ops::embedding::embedding_backward(
            dword,
            dpos,
            dtyp,
            &gs.d_emb_sum,
            ids,
            types,
            b,
            t,
            e,
            Some(self.pad_id),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_backward(
        &self,
        l: usize,
        w: &[f32],
        g: &mut [f32],
        la: &LayerActs,
        x: &[f32],
        gs: &mut EncoderGrads,
        b: usize,
        t: usize,
    ) {
        use crate::ops::activation::activation_forward;
        use crate::ops::attention::attention_backward;
        use crate::ops::layer_norm::layer_norm_backward;
        use crate::ops::matmul::linear_backward_through_act;
        let ly = &self.layers[l];
        let (n, h, i) = (b * t, self.hidden, self.inter);
        // out = LN2(ln2_in), ln2_in = dense_out(ff_act) + x1: d_x1 = ∂/∂ln2_in, which is both
        // dense_out's output gradient and (through the residual) part of x1's.
        {
            let (dg, db) = two_spans(g, ly.out_ln.g, ly.out_ln.b);
            layer_norm_backward(
                &mut gs.d_x1,
                dg,
                db,
                &gs.d_res,
                &la.ln2_in,
                ly.out_ln.g.of(w),
                &la.ln2_mean,
                &la.ln2_rstd,
                n,
                h,
                false,
            );
        }
        // The forward did not keep the activation: recompute it (bit-identical) from ff_pre.
        activation_forward(&mut gs.ff_act[..n * i], &la.ff_pre[..n * i], self.act);
        {
            let (dw, db) = two_spans(g, ly.out.w, ly.out.b);
            linear_backward_through_act(
                &mut gs.d_ff_pre,
                dw,
                db,
                &gs.d_x1,
                &gs.ff_act,
                &la.ff_pre,
                ly.out.w.of(w),
                n,
                i,
                h,
                self.act,
            );
        }
        lin_back(Some(&mut gs.d_x1), g, &ly.inter, &gs.d_ff_pre, &la.x1, w, n, true);
        // x1 = LN1(ln1_in), ln1_in = dense_o(ctx) + x: d_res = ∂/∂ln1_in, likewise.
        {
            let (dg, db) = two_spans(g, ly.attn_ln.g, ly.attn_ln.b);
            layer_norm_backward(
                &mut gs.d_res,
                dg,
                db,
                &gs.d_x1,
                &la.ln1_in,
                ly.attn_ln.g.of(w),
                &la.ln1_mean,
                &la.ln1_rstd,
                n,
                h,
                false,
            );
        }
        lin_back(Some(&mut gs.d_ctx), g, &ly.o, &gs.d_res, &la.ctx, w, n, false);
        attention_backward(
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
            self.heads,
            h / self.heads,
        );
        lin_back(Some(&mut gs.d_res), g, &ly.q, &gs.dq, x, w, n, true);
        lin_back(Some(&mut gs.d_res), g, &ly.k, &gs.dk, x, w, n, true);
        lin_back(Some(&mut gs.d_res), g, &ly.v, &gs.dv, x, w, n, true);
    }
}

/// Linear backward through the layer's spans: dW, db accumulate; dx assigned or accumulated.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lin_back(
    dx: Option<&mut [f32]>,
    g: &mut [f32],
    lin: &Linear,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    n: usize,
    acc: bool,
) {
    let (dw, db) = two_spans(g, lin.w, lin.b);
    crate::ops::matmul::linear_backward(dx, dw, Some(db), dy, x, lin.w.of(w), n, lin.din, lin.dout, acc);
}

/// Two disjoint tensors of one flat buffer, mutably.
pub(crate) fn two_spans(g: &mut [f32], a: crate::params::Span, b: crate::params::Span) -> (&mut [f32], &mut [f32]) {
    assert!(a.off + a.len <= b.off || b.off + b.len <= a.off, "overlapping spans");
    if a.off < b.off {
        let (lo, hi) = g.split_at_mut(b.off);
        (&mut lo[a.off..a.off + a.len], &mut hi[..b.len])
    } else {
        let (lo, hi) = g.split_at_mut(a.off);
        (&mut hi[..a.len], &mut lo[b.off..b.off + b.len])
    }
}

fn three_spans(
    g: &mut [f32],
    a: crate::params::Span,
    b: crate::params::Span,
    c: crate::params::Span,
) -> (&mut [f32], &mut [f32], &mut [f32]) {
    let base = g.as_mut_ptr();
    let total = g.len();
    for s in [a, b, c] {
        assert!(s.off + s.len <= total);
    }
    for (x, y) in [(a, b), (a, c), (b, c)] {
        assert!(x.off + x.len <= y.off || y.off + y.len <= x.off, "overlapping spans");
    }
    // SAFETY: the three ranges are in bounds and pairwise disjoint (checked above).
    unsafe {
        (
            std::slice::from_raw_parts_mut(base.add(a.off), a.len),
            std::slice::from_raw_parts_mut(base.add(b.off), b.len),
            std::slice::from_raw_parts_mut(base.add(c.off), c.len),
        )
    }
}
