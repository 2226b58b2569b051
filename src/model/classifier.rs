//! Sequence classification (HF `ElectraForSequenceClassification`): the encoder's [CLS] state (or
//! the masked mean of its states, [`Pooling::Mean`]) → `classifier.dense` (H→H) → GELU →
//! `classifier.out_proj` (H→labels).

use super::encoder::{Encoder, TowerDropout, HEAD_SITES};
use super::registrar::Registrar;
use super::Backprop;
use crate::backend::{Activation, Backend, Buf, InputGrad, RowGroups, Weights};
use crate::config::{ElectraConfig, Pooling};
use crate::error::{Error, Result};
use crate::layers::Linear;
use crate::limits::{MAX_LABELS, MAX_LABEL_BYTES};
use crate::params::ParamId;
use std::collections::{HashMap, HashSet};

/// HF `ElectraClassificationHead`: dropout, dense, GELU, dropout, out_proj (the dropouts only when
/// training with them, see [`ClsHeadActs::dropout`]).
#[derive(Clone, Debug)]
pub struct ClsHead {
    /// `classifier.dense`.
    pub dense: Linear,
    /// `classifier.out_proj`.
    pub out_proj: Linear,
    /// What the head reads: the [CLS] state or the masked mean (config.json's
    /// `classifier_pooling`).
    pub pool: Pooling,
}

/// Activations of the classification head, kept for its backward.
#[derive(Default, Debug)]
pub struct ClsHeadActs {
    /// B of the last forward.
    pub b: usize,
    /// T of the last forward.
    pub t: usize,
    /// Row index of each sequence's [CLS] token, `b·T` `[B]` ([`Pooling::Cls`]).
    pub rows: Buf<i32>,
    /// The pooled states `[B, H]`: [CLS]'s or the mean.
    pub cls: Buf,
    /// dense output `[B, H]`.
    pub pre: Buf,
    /// After GELU `[B, H]`.
    pub act: Buf,
    /// Logits `[B, labels]`.
    pub logits: Buf,
    /// Dropout of the next forward (its `hidden` probability, HF's `classifier_dropout`, on the
    /// [CLS] state and on the GELU output), read again by the backward. `None`: as in eval.
    pub dropout: TowerDropout,
}

impl ClsHeadActs {
    fn masks(&self) -> [Option<crate::backend::Dropout>; 2] {
        let d = self.dropout;
        let site = |s| d.site(d.hidden, s);
        [site(HEAD_SITES), site(HEAD_SITES + 1)]
    }
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
    pub fn register(reg: &mut Registrar, hidden: usize, num_labels: usize, pool: Pooling) -> Self {
        ClsHead {
            dense: reg.linear("classifier.dense", hidden, hidden),
            out_proj: reg.linear("classifier.out_proj", hidden, num_labels),
            pool,
        }
    }

    /// Logits for each of `b` rows of `t` hidden states `[B·T, H]`, from the first token's state
    /// or the mean over the tokens `mask` (the batch's attention mask, `None`: all) keeps.
    pub fn forward(&self, be: &dyn Backend, w: &Weights, acts: &mut ClsHeadActs, x: Pooled<'_>) -> Result<()> {
        let Pooled { hidden, mask, b, t } = x;
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
        (acts.b, acts.t) = (b, t);
        match self.pool {
            Pooling::Cls => {
                be.upload_ids(&mut acts.rows, &rows)?;
                be.gather_rows(&mut acts.cls, hidden, &acts.rows, b, h)?;
            }
            Pooling::Mean => be.mean_rows(&mut acts.cls, hidden, RowGroups { mask, groups: b, rows: t, width: h })?,
        }
        let [m1, m2] = acts.masks();
        if let Some(d) = m1 {
            be.dropout(&mut acts.cls, b * h, d)?;
        }
        be.linear(&mut acts.pre, &acts.cls, w, &self.dense, b)?;
        be.activation(&mut acts.act, &acts.pre, b * h, Activation::Gelu)?;
        if let Some(d) = m2 {
            be.dropout(&mut acts.act, b * h, d)?;
        }
        be.linear(&mut acts.logits, &acts.act, w, &self.out_proj, b)
    }

    /// Backward of the last [`ClsHead::forward`] from `d_logits` `[B, labels]`: head gradients
    /// accumulate into `bp`'s; `d_hidden` `[B·T, H]` is assigned (zero except at the [CLS] rows,
    /// or the kept tokens' rows when mean-pooled; `mask` is the forward's).
    pub fn backward(
        &self,
        bp: &mut Backprop,
        acts: &ClsHeadActs,
        gs: &mut ClsHeadGrads,
        d_logits: &Buf,
        d_hidden: &mut Buf,
        mask: Option<&Buf<i32>>,
    ) -> Result<()> {
        let (be, p) = (bp.be, &mut bp.params);
        let (h, b, t) = (self.dense.din, acts.b, acts.t);
        for v in [&mut gs.d_act, &mut gs.d_pre, &mut gs.d_cls] {
            be.ensure(v, b * h)?;
        }
        let [m1, m2] = acts.masks();
        be.linear_backward(InputGrad::Set(&mut gs.d_act), p, d_logits, &acts.act, &self.out_proj, b)?;
        if let Some(d) = m2 {
            be.dropout(&mut gs.d_act, b * h, d)?;
        }
        be.activation_backward(&mut gs.d_pre, &gs.d_act, &acts.pre, b * h, Activation::Gelu)?;
        be.linear_backward(InputGrad::Set(&mut gs.d_cls), p, &gs.d_pre, &acts.cls, &self.dense, b)?;
        if let Some(d) = m1 {
            be.dropout(&mut gs.d_cls, b * h, d)?;
        }
        match self.pool {
            Pooling::Cls => {
                be.fill(d_hidden, b * t * h, 0.0)?;
                be.scatter_rows(d_hidden, &gs.d_cls, &acts.rows, b, h, false)
            }
            Pooling::Mean => {
                be.mean_rows_backward(d_hidden, &gs.d_cls, RowGroups { mask, groups: b, rows: t, width: h })
            }
        }
    }
}

/// What [`ClsHead::forward`] reads: `b` rows of `t` hidden states `[B·T, H]` and the batch's
/// attention mask `[B·T]` on the device (`None`: every token).
#[derive(Clone, Copy)]
pub struct Pooled<'a> {
    /// The encoder's output.
    pub hidden: &'a Buf,
    /// The attention mask (mean pooling skips its 0s).
    pub mask: Option<&'a Buf<i32>>,
    /// B.
    pub b: usize,
    /// T.
    pub t: usize,
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

/// Label names in id order, from `id2label` (`LABEL_i` where the config names none).
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

/// Refuses a label name that is empty, longer than [`MAX_LABEL_BYTES`] bytes or holds a control
/// character (JSON would escape each into six bytes, and a TSV or CSV row cannot carry one).
pub fn check_label(name: &str) -> Result<()> {
    let shown = || name.chars().take(40).collect::<String>();
    if name.is_empty() {
        return Err(Error::arg("a label name is empty"));
    }
    if name.len() > MAX_LABEL_BYTES {
        return Err(Error::arg(format!(
            "label {:?}... is {} bytes long; label names are at most {MAX_LABEL_BYTES} bytes",
            shown(),
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::arg(format!("label {name:?} holds a control character")));
    }
    Ok(())
}

/// Checks labels a caller gives (before any model is read): at most [`MAX_LABELS`], each valid
/// ([`check_label`]), none twice.
pub fn check_given_labels(given: &[String]) -> Result<()> {
    if given.len() > MAX_LABELS {
        return Err(too_many(given.len()));
    }
    let mut seen = HashSet::with_capacity(given.len());
    for g in given {
        check_label(g)?;
        if !seen.insert(g.as_str()) {
            return Err(Error::arg(format!("label {g:?} is given twice")));
        }
    }
    Ok(())
}

fn too_many(n: usize) -> Error {
    Error::arg(format!("{n} labels: a classifier has at most {MAX_LABELS}"))
}

/// A classifier's labels: names in id order and the id of each name (O(1) lookups).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSet {
    names: Vec<String>,
    ids: HashMap<String, usize>,
}

impl LabelSet {
    /// The labels of a classifier continued from `existing` (its labels in id order, e.g.
    /// [`label_names`] of its config; `None` for a fresh head) with `given` (in the order given).
    /// Existing labels keep their ids; given names that are new get the next ids, in the order
    /// given. The result has 2 to [`MAX_LABELS`] labels, each valid ([`check_label`]).
    pub fn new(existing: Option<Vec<String>>, given: &[String]) -> Result<Self> {
        check_given_labels(given)?;
        let mut set = LabelSet::default();
        for (i, name) in existing.into_iter().flatten().enumerate() {
            check_label(&name).map_err(|e| Error::Config(format!("the classifier's id2label, id {i}: {e}")))?;
            if let Some(j) = set.ids.get(&name) {
                return Err(Error::Config(format!("the classifier's id2label names {name:?} twice (ids {j} and {i})")));
            }
            if set.names.len() == MAX_LABELS {
                return Err(Error::Config(format!("the classifier has more than {MAX_LABELS} labels")));
            }
            set.push(name);
        }
        let before = set.names.len();
        for g in given {
            if !set.ids.contains_key(g) {
                if set.names.len() == MAX_LABELS {
                    let new = given.iter().filter(|g| !set.ids.contains_key(*g)).count();
                    return Err(Error::arg(format!(
                        "{before} labels of the classifier and {} new ones: a classifier has at most {MAX_LABELS}",
                        new + set.names.len() - before
                    )));
                }
                set.push(g.clone());
            }
        }
        if set.names.len() < 2 {
            return Err(Error::arg(format!(
                "a classifier needs at least two labels ({} given: {:?})",
                set.names.len(),
                set.names
            )));
        }
        Ok(set)
    }

    fn push(&mut self, name: String) {
        self.ids.insert(name.clone(), self.names.len());
        self.names.push(name);
    }

    /// Names in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none (never, for a set [`LabelSet::new`] made).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The id of a label name.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.ids.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn existing_ids_are_kept_and_new_labels_appended() {
        let set = LabelSet::new(Some(s(&["pos", "neg"])), &s(&["neg", "meh", "pos"])).unwrap();
        assert_eq!(set.names(), s(&["pos", "neg", "meh"]));
        assert_eq!((set.id("pos"), set.id("neg"), set.id("meh"), set.id("x")), (Some(0), Some(1), Some(2), None));
        assert_eq!(LabelSet::new(None, &s(&["b", "a"])).unwrap().names(), s(&["b", "a"]));
        assert!(LabelSet::new(None, &s(&["a"])).is_err());
        assert!(LabelSet::new(None, &s(&["a", "b", "a"])).unwrap_err().to_string().contains("twice"));
        assert!(LabelSet::new(Some(s(&["a", "a"])), &[]).unwrap_err().to_string().contains("twice"));
        assert!(LabelSet::new(None, &s(&["a", "b\u{7}"])).unwrap_err().to_string().contains("control"));
        assert!(LabelSet::new(None, &s(&["a", ""])).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn label_limits_keep_config_json_under_the_loader_limit() {
        let long = "\"".repeat(MAX_LABEL_BYTES);
        assert!(check_label(&long).is_ok());
        assert!(check_label(&"x".repeat(MAX_LABEL_BYTES + 1)).is_err());
        // The largest classifier config the fine-tuner can write: every name at the length
        // limit and made of the character JSON escapes into two bytes.
        let labels: Vec<String> = (0..MAX_LABELS).map(|i| format!("{i:04}{}", &long[4..])).collect();
        let mut cfg = ElectraConfig::preset("large").unwrap();
        set_labels(&mut cfg, &labels);
        let n = cfg.to_json_string().len() as u64;
        assert!(n < crate::io::read::MAX_CONFIG_BYTES, "{n} bytes");
        let too_many: Vec<String> = (0..=MAX_LABELS).map(|i| i.to_string()).collect();
        assert!(LabelSet::new(None, &too_many).unwrap_err().to_string().contains("at most"));
        let existing: Vec<String> = (0..MAX_LABELS).map(|i| i.to_string()).collect();
        let e = LabelSet::new(Some(existing), &s(&["new"])).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
    }
}
