//! The two pre-training heads: the discriminator's per-token "replaced" logit
//! (HF `ElectraDiscriminatorPredictions`) and the generator's masked-LM head
//! (HF `ElectraGeneratorPredictions` + `generator_lm_head`, output tied to the word embeddings).

use super::layers::{LayerNorm, Linear, Registrar};
use crate::config::{Activation, ElectraConfig};
use crate::ops::layer_norm::layer_norm_forward;
use crate::ops::matmul::{linear_act_forward, linear_forward};
use crate::params::{ParamId, Span};

/// dense(H→H) → hidden_act → dense_prediction(H→1).
#[derive(Clone, Debug)]
pub struct DiscHead {
    /// `discriminator_predictions.dense`.
    pub dense: Linear,
    /// `discriminator_predictions.dense_prediction`.
    pub pred: Linear,
    /// The config's hidden_act.
    pub act: Activation,
}

/// Activations of the discriminator head, kept for its backward.
#[derive(Default, Debug)]
pub struct DiscHeadActs {
    /// dense output before the activation `[M, H]`.
    pub pre: Vec<f32>,
    /// After the activation `[M, H]`.
    pub act: Vec<f32>,
    /// One logit per row `[M]`.
    pub logits: Vec<f32>,
}

impl DiscHead {
    /// Registers `discriminator_predictions.*`.
    pub fn register(reg: &mut Registrar, cfg: &ElectraConfig) -> Self {
        let h = cfg.hidden_size;
        DiscHead {
            dense: reg.linear("discriminator_predictions.dense", h, h),
            pred: reg.linear("discriminator_predictions.dense_prediction", h, 1),
            act: cfg.activation(),
        }
    }

    /// Logits for `m` rows of hidden states; result in `acts.logits[..m]`.
    pub fn forward(&self, w: &[f32], acts: &mut DiscHeadActs, hidden: &[f32], m: usize) {
        let h = self.dense.din;
        grow(&mut acts.pre, m * h);
        grow(&mut acts.act, m * h);
        grow(&mut acts.logits, m);
        linear_act_forward(
            &mut acts.pre,
            &mut acts.act,
            hidden,
            self.dense.w.of(w),
            self.dense.b.of(w),
            m,
            h,
            h,
            self.act,
        );
        linear_forward(&mut acts.logits, &acts.act, self.pred.w.of(w), Some(self.pred.b.of(w)), m, h, 1);
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
    /// dense output `[M, E]`.
    pub pre: Vec<f32>,
    /// After GELU `[M, E]`.
    pub act: Vec<f32>,
    /// LayerNorm mean `[M]`.
    pub mean: Vec<f32>,
    /// LayerNorm 1/std `[M]`.
    pub rstd: Vec<f32>,
    /// LayerNorm output `[M, E]`.
    pub normed: Vec<f32>,
    /// Vocabulary logits `[M, V]`.
    pub logits: Vec<f32>,
}

impl GenHead {
    /// Registers `generator_predictions.*` and `generator_lm_head.bias`; `tied_word` is the word
    /// embedding table when the output projection is tied to it, else a new weight is made.
    pub fn register(reg: &mut Registrar, cfg: &ElectraConfig, tied_word: Option<ParamId>) -> Self {
        let (h, e, v) = (cfg.hidden_size, cfg.embedding_size, cfg.vocab_size);
        let dense = reg.linear("generator_predictions.dense", h, e);
        let ln = reg.layer_norm("generator_predictions.LayerNorm", e, cfg.layer_norm_eps);
        let (lm_w, lm_w_id) = match tied_word {
            Some(id) => (reg.store.span(id), id),
            None => {
                let s = reg.add("generator_lm_head.weight", &[v, e]);
                (s, reg.names.last().expect("just added").1)
            }
        };
        let lm_b = reg.add("generator_lm_head.bias", &[v]);
        GenHead { dense, ln, lm_w, lm_w_id, lm_b, vocab: v }
    }

    /// Vocabulary logits for `m` rows of generator hidden states; result in `acts.logits[..m·V]`.
    pub fn forward(&self, w: &[f32], acts: &mut GenHeadActs, hidden: &[f32], m: usize) {
        let (h, e, v) = (self.dense.din, self.dense.dout, self.vocab);
        for (buf, len) in [
            (&mut acts.pre, m * e),
            (&mut acts.act, m * e),
            (&mut acts.normed, m * e),
            (&mut acts.mean, m),
            (&mut acts.rstd, m),
            (&mut acts.logits, m * v),
        ] {
            grow(buf, len);
        }
        let (dw, db) = (self.dense.w.of(w), self.dense.b.of(w));
        linear_act_forward(&mut acts.pre, &mut acts.act, hidden, dw, db, m, h, e, Activation::Gelu);
        layer_norm_forward(
            &mut acts.normed,
            &mut acts.mean,
            &mut acts.rstd,
            &acts.act,
            self.ln.g.of(w),
            self.ln.b.of(w),
            m,
            e,
            self.ln.eps,
        );
        linear_forward(&mut acts.logits, &acts.normed, self.lm_w.of(w), Some(self.lm_b.of(w)), m, e, v);
    }
}

pub(crate) fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

impl DiscHead {
    /// Backward from `d_logits` `[M]`: accumulates head gradients into `g` and assigns
    /// `d_hidden` `[M, H]`. `scratch` must hold `M·H`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &[f32],
        g: &mut [f32],
        acts: &DiscHeadActs,
        hidden: &[f32],
        d_logits: &[f32],
        d_hidden: &mut [f32],
        scratch: &mut Vec<f32>,
        m: usize,
    ) {
        use crate::model::encoder::{lin_back, two_spans};
        let h = self.dense.din;
        grow(scratch, m * h);
        let d_pre = &mut scratch[..m * h];
        {
            let (dw, db) = two_spans(g, self.pred.w, self.pred.b);
            crate::ops::matmul::linear_backward_through_act(
                d_pre,
                dw,
                db,
                d_logits,
                &acts.act,
                &acts.pre,
                self.pred.w.of(w),
                m,
                h,
                1,
                self.act,
            );
        }
        lin_back(Some(d_hidden), g, &self.dense, d_pre, hidden, w, m, false);
    }
}

impl GenHead {
    /// Backward from `d_logits` `[M, V]`: accumulates head gradients into `g` (the output
    /// projection's into the word embeddings when tied) and assigns `d_hidden` `[M, Hg]`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &[f32],
        g: &mut [f32],
        acts: &GenHeadActs,
        hidden: &[f32],
        d_logits: &[f32],
        d_hidden: &mut [f32],
        scratch: &mut Vec<f32>,
        m: usize,
    ) {
        use crate::model::encoder::{lin_back, two_spans};
        let (e, v) = (self.dense.dout, self.vocab);
        grow(scratch, 2 * m * e);
        let (d_normed, d_act) = scratch.split_at_mut(m * e);
        let lm = Linear { w: self.lm_w, b: self.lm_b, din: e, dout: v };
        lin_back(Some(d_normed), g, &lm, d_logits, &acts.normed, w, m, false);
        {
            let (dg, db) = two_spans(g, self.ln.g, self.ln.b);
            crate::ops::layer_norm::layer_norm_backward(
                d_act,
                dg,
                db,
                d_normed,
                &acts.act,
                self.ln.g.of(w),
                &acts.mean,
                &acts.rstd,
                m,
                e,
                false,
            );
        }
        // d_pre overwrites d_normed (no longer needed).
        crate::ops::activation::activation_backward(
            &mut d_normed[..m * e],
            &d_act[..m * e],
            &acts.pre[..m * e],
            Activation::Gelu,
        );
        lin_back(Some(d_hidden), g, &self.dense, d_normed, hidden, w, m, false);
    }
}
