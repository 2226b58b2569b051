//! Sequence classification (HF `ElectraForSequenceClassification`): the encoder's [CLS] state →
//! `classifier.dense` (H→H) → GELU → `classifier.out_proj` (H→labels).

use super::encoder::{lin_back, Encoder};
use super::heads::grow;
use super::layers::{Linear, Registrar};
use crate::config::{Activation, ElectraConfig};
use crate::error::{Error, Result};
use crate::ops::activation::{activation_backward, activation_forward};
use crate::ops::matmul::linear_forward;
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
    /// [CLS] hidden states `[B, H]`.
    pub cls: Vec<f32>,
    /// dense output `[B, H]`.
    pub pre: Vec<f32>,
    /// After GELU `[B, H]`.
    pub act: Vec<f32>,
    /// Logits `[B, labels]`.
    pub logits: Vec<f32>,
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
    pub fn forward(&self, w: &[f32], acts: &mut ClsHeadActs, hidden: &[f32], b: usize, t: usize) {
        let (h, l) = (self.dense.din, self.out_proj.dout);
        for (v, n) in
            [(&mut acts.cls, b * h), (&mut acts.pre, b * h), (&mut acts.act, b * h), (&mut acts.logits, b * l)]
        {
            grow(v, n);
        }
        for r in 0..b {
            acts.cls[r * h..(r + 1) * h].copy_from_slice(&hidden[r * t * h..r * t * h + h]);
        }
        linear_forward(&mut acts.pre, &acts.cls, self.dense.w.of(w), Some(self.dense.b.of(w)), b, h, h);
        activation_forward(&mut acts.act[..b * h], &acts.pre[..b * h], Activation::Gelu);
        linear_forward(&mut acts.logits, &acts.act, self.out_proj.w.of(w), Some(self.out_proj.b.of(w)), b, h, l);
    }

    /// Backward from `d_logits` `[B, labels]`: head gradients accumulate into `g`; `d_hidden`
    /// `[B·T, H]` is assigned (zero except at the [CLS] rows).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &[f32],
        g: &mut [f32],
        acts: &ClsHeadActs,
        d_logits: &[f32],
        d_hidden: &mut [f32],
        scratch: &mut Vec<f32>,
        b: usize,
        t: usize,
    ) {
        let h = self.dense.din;
        grow(scratch, 3 * b * h);
        let (d_act, rest) = scratch.split_at_mut(b * h);
        let (d_pre, d_cls) = rest.split_at_mut(b * h);
        lin_back(Some(d_act), g, &self.out_proj, d_logits, &acts.act, w, b, false);
        activation_backward(&mut d_pre[..b * h], &d_act[..b * h], &acts.pre[..b * h], Activation::Gelu);
        lin_back(Some(&mut d_cls[..b * h]), g, &self.dense, d_pre, &acts.cls, w, b, false);
        d_hidden[..b * t * h].fill(0.0);
        for r in 0..b {
            d_hidden[r * t * h..r * t * h + h].copy_from_slice(&d_cls[r * h..(r + 1) * h]);
        }
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
        Some(n) if n >= 1 => Ok(n),
        _ => Err(Error::Config("num_labels / id2label must name at least one label".into())),
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
