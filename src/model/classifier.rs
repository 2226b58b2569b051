//! Sequence classification (HF `ElectraForSequenceClassification`): the encoder's [CLS] state →
//! `classifier.dense` (H→H) → GELU → `classifier.out_proj` (H→labels).

use super::encoder::Encoder;
use super::layers::{Linear, Registrar};
use crate::backend::{Activation, Backend, Buf, InputGrad, Mem, Weights};
use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::params::ParamId;

/// HF `ElectraClassificationHead` (dropout is a no-op at inference and not applied in training).
#[derive(Clone, Debug)]
pub struct ClsHead {
    /// `classifier.dense`.
    pub dense: Linear,
    /// `classifier.out_proj`.
    pub out_proj: Linear,
}

/// Activations of the classification head, kept for its backward.
#[derive(Default, Debug)]
pub struct ClsHeadActs {
    /// Row index of each sequence's [CLS] token, `b·T` `[B]`.
    pub rows: Buf<i32>,
    /// [CLS] hidden states `[B, H]`.
    pub cls: Buf,
    /// dense output `[B, H]`.
    pub pre: Buf,
    /// After GELU `[B, H]`.
    pub act: Buf,
    /// Logits `[B, labels]`.
    pub logits: Buf,
}

/// Scratch of the classification head's backward.
#[derive(Default, Debug)]
pub struct ClsHeadGrads {
    /// Gradient of the GELU output `[B, H]`.
    pub d_act: Buf,
    /// Gradient of the dense output `[B, H]`.
    pub d_pre: Buf,
    /// Gradient of the [CLS] states `[B, H]`.
    pub d_cls: Buf,
}

impl ClsHead {
    /// Registers `classifier.*`.
    pub fn register(reg: &mut Registrar, hidden: usize, num_labels: usize) -> Self {
        ClsHead {
            dense: reg.linear("classifier.dense", hidden, hidden),
            out_proj: reg.linear("classifier.out_proj", hidden, num_labels),
        }
    }

    /// Logits for the first token of each of `b` rows of `t` hidden states `[B·T, H]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        be: &dyn Backend,
        w: &Weights,
        acts: &mut ClsHeadActs,
        hidden: &Buf,
        b: usize,
        t: usize,
    ) -> Result<()> {
        let (h, l) = (self.dense.din, self.out_proj.dout);
        for (v, n) in
            [(&mut acts.cls, b * h), (&mut acts.pre, b * h), (&mut acts.act, b * h), (&mut acts.logits, b * l)]
        {
            be.ensure(v, n)?;
        }
        let rows = (0..b)
            .map(|r| i32::try_from(r * t))
            .collect::<std::result::Result<Vec<i32>, _>>()
            .map_err(|_| Error::arg(format!("batch {b} x seq_len {t} is too large for the classifier")))?;
        be.upload_ids(&mut acts.rows, &rows)?;
        be.gather_rows(&mut acts.cls, hidden, &acts.rows, b, h)?;
        be.linear(&mut acts.pre, &acts.cls, w, &self.dense, b)?;
        be.activation(&mut acts.act, &acts.pre, b * h, Activation::Gelu)?;
        be.linear(&mut acts.logits, &acts.act, w, &self.out_proj, b)
    }

    /// Backward from `d_logits` `[B, labels]`: head gradients accumulate into `g`; `d_hidden`
    /// `[B·T, H]` is assigned (zero except at the [CLS] rows).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        be: &dyn Backend,
        w: Mem,
        g: &mut Buf,
        acts: &ClsHeadActs,
        gs: &mut ClsHeadGrads,
        d_logits: &Buf,
        d_hidden: &mut Buf,
        b: usize,
        t: usize,
    ) -> Result<()> {
        let h = self.dense.din;
        for v in [&mut gs.d_act, &mut gs.d_pre, &mut gs.d_cls] {
            be.ensure(v, b * h)?;
        }
        be.linear_backward(InputGrad::Set(&mut gs.d_act), g, d_logits, &acts.act, w, &self.out_proj, b)?;
        be.activation_backward(&mut gs.d_pre, &gs.d_act, &acts.pre, b * h, Activation::Gelu)?;
        be.linear_backward(InputGrad::Set(&mut gs.d_cls), g, &gs.d_pre, &acts.cls, w, &self.dense, b)?;
        be.fill(d_hidden, b * t * h, 0.0)?;
        be.scatter_rows(d_hidden, &gs.d_cls, &acts.rows, b, h, false)
    }
}

/// An encoder with a classification head.
#[derive(Clone, Debug)]
pub struct Classifier {
    /// Its config.json (with `id2label`).
    pub config: ElectraConfig,
    /// `electra.*`.
    pub encoder: Encoder,
    /// `classifier.*`.
    pub head: ClsHead,
    /// Number of labels.
    pub num_labels: usize,
    /// (HF name, id) of every tensor of its checkpoint.
    pub names: Vec<(String, ParamId)>,
}

/// Number of labels a classification config declares (`num_labels`, else `id2label`).
pub fn num_labels(cfg: &ElectraConfig) -> Result<usize> {
    let n = match (cfg.extra.get("num_labels"), cfg.extra.get("id2label")) {
        (Some(v), _) => v.as_u64().map(|x| x as usize),
        (None, Some(serde_json::Value::Object(m))) => Some(m.len()),
        _ => Some(2), // HF's default
    };
    match n {
        Some(n) if (1..=crate::config::MAX_DIM).contains(&n) => Ok(n),
        _ => Err(Error::Config(format!(
            "num_labels / id2label must name between 1 and {} labels",
            crate::config::MAX_DIM
        ))),
    }
}

/// Sets `id2label` / `label2id` (and drops `num_labels`) so HF reads `labels.len()` labels.
pub fn set_labels(cfg: &mut ElectraConfig, labels: &[String]) {
    let id2label: serde_json::Map<String, serde_json::Value> =
        labels.iter().enumerate().map(|(i, l)| (i.to_string(), serde_json::Value::from(l.clone()))).collect();
    let label2id: serde_json::Map<String, serde_json::Value> =
        labels.iter().enumerate().map(|(i, l)| (l.clone(), serde_json::Value::from(i))).collect();
    cfg.extra.remove("num_labels");
    cfg.extra.insert("id2label".into(), id2label.into());
    cfg.extra.insert("label2id".into(), label2id.into());
    cfg.architectures = vec!["ElectraForSequenceClassification".into()];
}

/// Label names in id order (`LABEL_i` where the config names none).
pub fn label_names(cfg: &ElectraConfig) -> Vec<String> {
    let n = num_labels(cfg).unwrap_or(2);
    let map = cfg.extra.get("id2label").and_then(|v| v.as_object());
    (0..n)
        .map(|i| {
            map.and_then(|m| m.get(&i.to_string()))
                .and_then(|v| v.as_str())
                .map_or(format!("LABEL_{i}"), str::to_string)
        })
        .collect()
}
