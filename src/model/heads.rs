//! The two pre-training heads, each forward beside its backward: the discriminator's per-token
//! "replaced" logit (HF `ElectraDiscriminatorPredictions`) and the generator's masked-LM head
//! (HF `ElectraGeneratorPredictions` + `generator_lm_head`, output tied to the word embeddings).

use super::registrar::Registrar;
use super::Backprop;
use crate::backend::{Activated, Activation, Backend, Buf, InputGrad, LnSaved, LnStats, RowGroups, Weights};
use crate::config::{ElectraConfig, RtdHead};
use crate::error::{Error, Result};
use crate::layers::{LayerNorm, Linear};
use crate::params::{ParamId, Span};

/// dense(H→H) → hidden_act → dense_prediction(H→1), on each token's state, or with
/// `rtd_head: "cls"` on `LayerNorm(h_[CLS] + h_i)` (DeBERTa's RTD head; see
/// [`crate::config::RtdHead`]).
#[derive(Clone, Debug)]
pub struct DiscHead {
    /// `discriminator_predictions.dense`.
    pub dense: Linear,
    /// `discriminator_predictions.dense_prediction`.
    pub pred: Linear,
    /// The config's hidden_act.
    pub act: Activation,
    /// `discriminator_predictions.LayerNorm` of the [CLS]-aware head.
    pub cls_ln: Option<LayerNorm>,
}

/// Activations of the discriminator head, kept for its backward.
#[derive(Default, Debug)]
pub struct DiscHeadActs {
    /// M of the last forward.
    pub m: usize,
    /// dense output before the activation `[M, H]`.
    pub pre: Buf,
    /// After the activation `[M, H]`.
    pub act: Buf,
    /// One logit per row `[M]`.
    pub logits: Buf,
    /// [CLS]-aware head: `h_[CLS] + h_i` `[M, H]`.
    pub mixed: Buf,
    /// Its LayerNorm statistics `[M]` each.
    pub stats: LnStats,
    /// The LayerNorm output, the dense layer's input `[M, H]`.
    pub normed: Buf,
    /// Each row's [CLS] row `[M]`.
    pub cls_rows: Buf<i32>,
    /// Each sequence's first row `[B]`.
    pub first_rows: Buf<i32>,
    /// (B, T) the two row lists are for.
    pub rows_of: (usize, usize),
}

/// Scratch of the discriminator head's backward.
#[derive(Default, Debug)]
pub struct DiscHeadGrads {
    /// Gradient of the dense output before the activation `[M, H]`.
    pub d_pre: Buf,
    /// [CLS]-aware head: gradient of the LayerNorm output `[M, H]`.
    pub d_normed: Buf,
    /// The per-sequence sum of the mix's gradient `[B, H]`: what flows to the [CLS] state.
    pub d_cls: Buf,
}

impl DiscHead {
    /// Registers `discriminator_predictions.*`.
    pub fn register(reg: &mut Registrar, cfg: &ElectraConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let dense = reg.linear("discriminator_predictions.dense", h, h);
        let pred = reg.linear("discriminator_predictions.dense_prediction", h, 1);
        let cls_ln = (cfg.rtd_head()? == RtdHead::Cls)
            .then(|| reg.layer_norm("discriminator_predictions.LayerNorm", h, cfg.layer_norm_eps));
        Ok(DiscHead { dense, pred, act: cfg.activation()?, cls_ln })
    }

    /// Logits for `m` rows of hidden states, sequences of `seq_len` rows (whose first is [CLS]);
    /// result in `acts.logits[..m]`.
    pub fn forward(
        &self,
        be: &dyn Backend,
        w: &Weights,
        acts: &mut DiscHeadActs,
        hidden: &Buf,
        m: usize,
        seq_len: usize,
    ) -> Result<()> {
        let h = self.dense.din;
        be.ensure(&mut acts.pre, m * h)?;
        be.ensure(&mut acts.act, m * h)?;
        be.ensure(&mut acts.logits, m)?;
        acts.m = m;
        let input = match &self.cls_ln {
            None => hidden,
            Some(ln) => {
                if seq_len == 0 || !m.is_multiple_of(seq_len) {
                    return Err(Error::Internal(format!("{m} rows are not sequences of {seq_len}")));
                }
                let b = m / seq_len;
                if acts.rows_of != (b, seq_len) {
                    let first: Vec<i32> = (0..b).map(|i| (i * seq_len) as i32).collect();
                    let cls: Vec<i32> = first.iter().flat_map(|&f| std::iter::repeat_n(f, seq_len)).collect();
                    be.upload_ids(&mut acts.cls_rows, &cls)?;
                    be.upload_ids(&mut acts.first_rows, &first)?;
                    acts.rows_of = (b, seq_len);
                }
                for (buf, len) in [(&mut acts.mixed, m * h), (&mut acts.normed, m * h)] {
                    be.ensure(buf, len)?;
                }
                be.ensure(&mut acts.stats.mean, m)?;
                be.ensure(&mut acts.stats.rstd, m)?;
                be.gather_rows(&mut acts.mixed, hidden, &acts.cls_rows, m, h)?;
                be.add(&mut acts.mixed, hidden, m * h)?;
                be.layer_norm(&mut acts.normed, &mut acts.stats, &acts.mixed, w.flat, ln, m)?;
                &acts.normed
            }
        };
        be.linear_act(Activated { pre: &mut acts.pre, act: &mut acts.act, f: self.act }, input, w, &self.dense, m)?;
        be.linear(&mut acts.logits, &acts.act, w, &self.pred, m)
    }

    /// Backward of the last [`DiscHead::forward`], on `hidden`, from `d_logits` `[M]`:
    /// accumulates head gradients into `bp`'s and assigns `d_hidden` `[M, H]`.
    pub fn backward(
        &self,
        bp: &mut Backprop,
        acts: &DiscHeadActs,
        gs: &mut DiscHeadGrads,
        hidden: &Buf,
        d_logits: &Buf,
        d_hidden: &mut Buf,
    ) -> Result<()> {
        let (be, p, m) = (bp.be, &mut bp.params, acts.m);
        let h = self.dense.din;
        be.ensure(&mut gs.d_pre, m * h)?;
        let x = Activated { pre: &acts.pre, act: &acts.act, f: self.act };
        be.linear_act_backward(&mut gs.d_pre, p, d_logits, x, &self.pred, m)?;
        let Some(ln) = &self.cls_ln else {
            return be.linear_backward(InputGrad::Set(d_hidden), p, &gs.d_pre, hidden, &self.dense, m);
        };
        be.ensure(&mut gs.d_normed, m * h)?;
        be.linear_backward(InputGrad::Set(&mut gs.d_normed), p, &gs.d_pre, &acts.normed, &self.dense, m)?;
        let saved = LnSaved { x: &acts.mixed, stats: &acts.stats };
        be.layer_norm_backward(d_hidden, p, &gs.d_normed, saved, ln, m)?;
        // h_[CLS] of sequence b is in every row of b: it gets the sum of their gradients (the
        // rows' mean times T; padded rows carry no loss, so their gradient is 0).
        let (b, t) = acts.rows_of;
        be.ensure(&mut gs.d_cls, b * h)?;
        be.mean_rows(&mut gs.d_cls, d_hidden, RowGroups { mask: None, groups: b, rows: t, width: h })?;
        be.scale(&mut gs.d_cls, b * h, t as f32)?;
        be.scatter_rows(d_hidden, &gs.d_cls, &acts.first_rows, b, h, true)
    }
}

/// dense(Hg→E) → GELU (erf, fixed in HF whatever hidden_act says) → LayerNorm(E) → ·Wᵀ + bias.
#[derive(Clone, Debug)]
pub struct GenHead {
    /// `generator_predictions.dense`.
    pub dense: Linear,
    /// `generator_predictions.LayerNorm`.
    pub ln: LayerNorm,
    /// `generator_lm_head.weight` `[V, E]`: the word embedding table when tied.
    pub lm_w: Span,
    /// The id of the output projection weight (equal to the word embeddings' id when tied).
    pub lm_w_id: ParamId,
    /// `generator_lm_head.bias` `[V]`.
    pub lm_b: Span,
    /// V.
    pub vocab: usize,
}

/// Activations of the generator head, kept for its backward.
#[derive(Default, Debug)]
pub struct GenHeadActs {
    /// M of the last forward.
    pub m: usize,
    /// dense output `[M, E]`.
    pub pre: Buf,
    /// After GELU `[M, E]`.
    pub act: Buf,
    /// LayerNorm statistics `[M]` each.
    pub stats: LnStats,
    /// LayerNorm output `[M, E]`.
    pub normed: Buf,
    /// Vocabulary logits `[M, V]`.
    pub logits: Buf,
}

/// Scratch of the generator head's backward.
#[derive(Default, Debug)]
pub struct GenHeadGrads {
    /// Gradient of the LayerNorm output, then of the dense output `[M, E]`.
    pub d_normed: Buf,
    /// Gradient of the GELU output `[M, E]`.
    pub d_act: Buf,
}

impl GenHead {
    /// Registers `generator_predictions.*` and `generator_lm_head.bias`; `tied_word` is the word
    /// embedding table when the output projection is tied to it, else a new weight is made.
    pub fn register(reg: &mut Registrar, cfg: &ElectraConfig, tied_word: Option<ParamId>) -> Self {
        let (h, e, v) = (cfg.hidden_size, cfg.embedding_size, cfg.vocab_size);
        let dense = reg.linear("generator_predictions.dense", h, e);
        let ln = reg.layer_norm("generator_predictions.LayerNorm", e, cfg.layer_norm_eps);
        let lm_w_id = match tied_word {
            Some(id) => id,
            None => reg.add_id("generator_lm_head.weight", &[v, e]),
        };
        let lm_w = reg.store.span(lm_w_id);
        let lm_b = reg.add("generator_lm_head.bias", &[v]);
        GenHead { dense, ln, lm_w, lm_w_id, lm_b, vocab: v }
    }

    /// The output projection as a Linear layer `[V, E]`.
    pub fn lm(&self) -> Linear {
        Linear { w: self.lm_w, b: self.lm_b, din: self.dense.dout, dout: self.vocab }
    }

    /// Vocabulary logits for `m` rows of generator hidden states; result in `acts.logits[..m·V]`.
    pub fn forward(&self, be: &dyn Backend, w: &Weights, acts: &mut GenHeadActs, hidden: &Buf, m: usize) -> Result<()> {
        let (e, v) = (self.dense.dout, self.vocab);
        for (buf, len) in [
            (&mut acts.pre, m * e),
            (&mut acts.act, m * e),
            (&mut acts.normed, m * e),
            (&mut acts.stats.mean, m),
            (&mut acts.stats.rstd, m),
            (&mut acts.logits, m * v),
        ] {
            be.ensure(buf, len)?;
        }
        acts.m = m;
        let y = Activated { pre: &mut acts.pre, act: &mut acts.act, f: Activation::Gelu };
        be.linear_act(y, hidden, w, &self.dense, m)?;
        be.layer_norm(&mut acts.normed, &mut acts.stats, &acts.act, w.flat, &self.ln, m)?;
        be.linear(&mut acts.logits, &acts.normed, w, &self.lm(), m)
    }

    /// Backward of the last [`GenHead::forward`], on `hidden`, from `d_logits` `[M, V]`:
    /// accumulates head gradients into `bp`'s (the output projection's into the word embeddings
    /// when tied) and assigns `d_hidden` `[M, Hg]`.
    pub fn backward(
        &self,
        bp: &mut Backprop,
        acts: &GenHeadActs,
        gs: &mut GenHeadGrads,
        hidden: &Buf,
        d_logits: &Buf,
        d_hidden: &mut Buf,
    ) -> Result<()> {
        let (be, p, m) = (bp.be, &mut bp.params, acts.m);
        let e = self.dense.dout;
        be.ensure(&mut gs.d_normed, m * e)?;
        be.ensure(&mut gs.d_act, m * e)?;
        be.linear_backward(InputGrad::Set(&mut gs.d_normed), p, d_logits, &acts.normed, &self.lm(), m)?;
        let saved = LnSaved { x: &acts.act, stats: &acts.stats };
        be.layer_norm_backward(&mut gs.d_act, p, &gs.d_normed, saved, &self.ln, m)?;
        // The dense output's gradient overwrites d_normed (no longer needed).
        be.activation_backward(&mut gs.d_normed, &gs.d_act, &acts.pre, m * e, Activation::Gelu)?;
        be.linear_backward(InputGrad::Set(d_hidden), p, &gs.d_normed, hidden, &self.dense, m)
    }
}
