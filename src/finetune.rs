//! Fine-tuning a sequence classifier (HF `ElectraForSequenceClassification`) with the original
//! recipe: AdamW without bias correction, layer-wise learning-rate decay, warm-up × linear decay,
//! global-norm clipping, cross-entropy on the [CLS] state.

use crate::backend::{self, Backend, Buf, Device, LossScale, Weights};
use crate::batch::Batch;
use crate::config::Pooling;
use crate::error::{Error, Result};
use crate::model::classifier::{
    check_given_labels, label_names, set_labels, Classifier, ClsHeadActs, ClsHeadGrads, LabelSet,
};
use crate::model::encoder::{dropout_key, EncoderActs, EncoderGrads, TowerDropout};
use crate::model::{Backprop, Model, Towers};
use crate::optim::{self, Trained};
use crate::params::{ParamId, ParamStore, ParamTable};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// Fine-tuning options (JSON keys are the field names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneOptions {
    /// Peak learning rate. Unset (the default): by the encoder's width, the paper's choices
    /// ([`default_learning_rate`]: 3e-4 up to width 256, ELECTRA-Small's; 1e-4 up to 768, Base's;
    /// 5e-5 above, Large's).
    pub learning_rate: Option<f32>,
    /// Warm-up steps (0).
    pub warmup_steps: u64,
    /// Steps over which the learning rate decays to 0 (0: no decay).
    pub total_steps: u64,
    /// Decoupled weight decay (0.01), not on LayerNorm and biases.
    pub weight_decay: f32,
    /// Layer-wise learning-rate decay (0.8; 1 disables).
    pub layerwise_lr_decay: f32,
    /// Adam ε (1e-6).
    pub adam_epsilon: f32,
    /// Bias-corrected Adam moments (false).
    pub bias_correction: bool,
    /// Global gradient-norm clip (1.0).
    pub max_grad_norm: f32,
    /// Seed of the head's initialisation (0).
    pub seed: u64,
    /// Worker threads on the host: 0 (default) the process-wide shared pool (its size set by
    /// `electra_set_default_threads`, else one per core), 1 the calling thread only (no worker
    /// thread), N ≥ 2 N workers (the shared pool when its size is N, else a pool of its own).
    /// Results do not depend on it.
    pub threads: usize,
    /// A pool of its own of `threads` workers (0: one per core) instead of the shared pool
    /// (default false; `threads` = 1 runs on the calling thread either way).
    pub own_pool: bool,
    /// The device: "cpu" (default), "cuda" or "cuda:N".
    pub device: Device,
    /// Memory budget in bytes (0: none beyond the machine's memory). Creation fails with
    /// [`Error::OutOfMemory`] when weights, gradients and Adam moments would exceed it, and a
    /// step when those plus the batch's activations would, before anything is allocated.
    pub max_memory_bytes: u64,
    /// CPU: the widest kernels to run, "best" (default), "avx512", "avx2", "neon" or "scalar"
    /// (see [`backend::Simd`]; overrides `ELECTRA_SIMD`). Results are the same bits under every cap.
    pub simd: Option<backend::Simd>,
    /// CUDA: TF32 tensor-core matrix products (default false; overrides `ELECTRA_CUDA_TF32`).
    pub tf32: Option<bool>,
    /// Dropout in training: `true` (default) applies config.json's probabilities as HF does
    /// (`hidden_dropout_prob`, `attention_probs_dropout_prob`, and `classifier_dropout` or else
    /// `hidden_dropout_prob` in the head), `false` none, a number p all of them at p. Masks come
    /// from `seed` and the step: the same for any thread count and on every backend.
    pub dropout: crate::options::DropoutSetting,
    /// What the head reads: `"cls"` (the first token's state, HF `ElectraForSequenceClassification`)
    /// or `"mean"` (the mean over the non-padding tokens, saved as `"classifier_pooling": "mean"`
    /// in config.json). Unset (the default): a classifier's own pooling, `"cls"` for a new head.
    /// Continuing a classifier with the other pooling is an error.
    pub pool: Option<Pooling>,
}

impl Default for FinetuneOptions {
    fn default() -> Self {
        FinetuneOptions {
            learning_rate: None,
            warmup_steps: 0,
            total_steps: 0,
            weight_decay: 0.01,
            layerwise_lr_decay: 0.8,
            adam_epsilon: 1e-6,
            bias_correction: false,
            max_grad_norm: 1.0,
            seed: 0,
            threads: 0,
            own_pool: false,
            device: Device::Cpu,
            max_memory_bytes: 0,
            simd: None,
            tf32: None,
            dropout: Default::default(),
            pool: None,
        }
    }
}

impl FinetuneOptions {
    /// Parses a JSON object (`None`: defaults), rejecting unknown keys and bad values.
    pub fn from_json(json: Option<&str>) -> Result<Self> {
        let o: FinetuneOptions = match json.map(str::trim).filter(|s| !s.is_empty()) {
            None => Self::default(),
            Some(s) => crate::options::parse_json(s)?,
        };
        o.validate()?;
        Ok(o)
    }

    /// Checks ranges (also for options built in Rust); the message names the offending key.
    pub fn validate(&self) -> Result<()> {
        // learning_rate, weight_decay, adam_epsilon, max_grad_norm (an unset rate is a valid one).
        self.adamw(MIN_DEFAULT_LR).validate()?;
        if !(self.layerwise_lr_decay > 0.0 && self.layerwise_lr_decay <= 1.0) {
            return Err(Error::arg(format!(
                "options: layerwise_lr_decay = {} must be in (0, 1]",
                self.layerwise_lr_decay
            )));
        }
        self.dropout.probabilities((0.0, 0.0), "options")?;
        backend::check_threads(self.threads)
    }

    /// What the fine-tuner's backend opens with.
    pub fn backend_options(&self) -> backend::BackendOptions {
        let (threads, own_pool, simd, tf32) = (self.threads, self.own_pool, self.simd, self.tf32);
        backend::BackendOptions { threads, own_pool, simd, f32_kernel: None, tf32 }
    }

    fn adamw(&self, default_lr: f32) -> optim::AdamWConfig {
        optim::AdamWConfig {
            learning_rate: self.learning_rate.unwrap_or(default_lr),
            epsilon: self.adam_epsilon,
            weight_decay: self.weight_decay,
            bias_correction: self.bias_correction,
            warmup_steps: self.warmup_steps,
            total_steps: self.total_steps,
            max_grad_norm: self.max_grad_norm,
            ..Default::default()
        }
    }
}

/// The smallest of [`default_learning_rate`]'s rates.
const MIN_DEFAULT_LR: f32 = 5e-5;

/// The peak learning rate an encoder of width `hidden` fine-tunes at when none is given: the
/// paper's per size (ELECTRA-Small, width 256: 3e-4; Base, 768: 1e-4; Large, 1024: 5e-5), and
/// Small's for narrower encoders. Measured on the tiny preset (width 128, 800 Rotten Tomatoes
/// sentences, 10 epochs): 3e-4 learns from random weights where the earlier 1e-4 stayed at chance,
/// and 1e-3 diverged in some runs (docs/REPLICATION.md).
pub fn default_learning_rate(hidden: usize) -> f32 {
    match hidden {
        0..=256 => 3e-4,
        257..=768 => 1e-4,
        _ => MIN_DEFAULT_LR,
    }
}

/// A classifier is continued with the pooling its head was trained with.
fn check_pool(want: Option<Pooling>, own: Pooling, dir: &Path) -> Result<()> {
    match want {
        Some(p) if p != own => Err(Error::arg(format!(
            "pool {}: {} is a classifier whose head pools {} (its config.json's classifier_pooling); continue it \
             with that pooling, or fine-tune a new head from its encoder",
            p.as_str(),
            dir.display(),
            own.as_str()
        ))),
        _ => Ok(()),
    }
}

/// What one fine-tuning step measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FinetuneStats {
    /// Updates applied so far.
    pub step: u64,
    /// Mean cross-entropy.
    pub loss: f32,
    /// Share of rows whose top logit is the label.
    pub accuracy: f32,
    /// Learning rate of this update (before layer-wise scaling).
    pub learning_rate: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

/// A classifier being fine-tuned: its weights, gradients and Adam moments on the backend's
/// device.
pub struct FineTuner {
    /// Options.
    pub opts: FinetuneOptions,
    /// Updates applied.
    pub step: u64,
    cls: Classifier,
    params: Trained,
    acts: EncoderActs,
    enc_grads: EncoderGrads,
    head: ClsHeadActs,
    head_grads: ClsHeadGrads,
    d_hidden: Buf,
    labels: Buf<i32>,
    label_set: LabelSet,
    /// The tokenizer beside the source model (saved with the classifier by [`Self::save`]).
    pub tokenizer: crate::data::tokenizer::AttachedTokenizer,
}

impl FineTuner {
    /// Starts from `dir`: a classifier directory (continues it), or any model with a
    /// discriminator (its encoder is copied; a fresh head for `labels` is initialised from
    /// `opts.seed`, label `i` getting id `i`).
    ///
    /// A classifier's labels and their ids come from its config.json `id2label` (HF's
    /// `{"0": "neg", ...}`) and are kept: `labels` may be empty, list them in any order, or add
    /// new ones, which get the next ids in the order given; the head then grows by one row per
    /// new label, initialised as a fresh head's would be, and the old rows are kept. See
    /// [`FineTuner::labels`] for the result. Labels are bounded by [`crate::limits::MAX_LABELS`]
    /// and [`crate::limits::MAX_LABEL_BYTES`]; every check runs before the model is read.
    pub fn new(dir: &Path, labels: &[String], opts: FinetuneOptions) -> Result<Self> {
        check_given_labels(labels)?;
        Self::open(dir, opts, |existing| LabelSet::new(existing, labels))
    }

    /// As [`FineTuner::new`], with labels given by number (the C ABI's form): a fresh head gets
    /// `LABEL_0` .. `LABEL_{n-1}`; a classifier is continued with its own labels when `n` is 0
    /// or its label count, and grows to `n` labels (the new ones named `LABEL_i` after their
    /// id `i`) when `n` is larger; a smaller `n` is an error.
    pub fn with_label_count(dir: &Path, n: usize, opts: FinetuneOptions) -> Result<Self> {
        if n > crate::limits::MAX_LABELS {
            return Err(Error::arg(format!(
                "num_labels {n}: a classifier has at most {} labels",
                crate::limits::MAX_LABELS
            )));
        }
        let names = |ids: std::ops::Range<usize>| ids.map(|i| format!("LABEL_{i}")).collect::<Vec<_>>();
        Self::open(dir, opts, |existing| match existing {
            None => LabelSet::new(None, &names(0..n)),
            Some(e) if n == 0 || n >= e.len() => {
                let new = names(e.len()..n.max(e.len()));
                LabelSet::new(Some(e), &new)
            }
            Some(e) => Err(Error::arg(format!(
                "{} is a classifier with {} labels; {n} were asked for (pass 0 or its count to continue it, a \
                 larger number to add labels)",
                dir.display(),
                e.len()
            ))),
        })
    }

    /// Reads `dir` and builds the classifier for the labels `make` returns from the existing ones
    /// (`None`: `dir` is no classifier).
    fn open(
        dir: &Path,
        opts: FinetuneOptions,
        make: impl FnOnce(Option<Vec<String>>) -> Result<LabelSet>,
    ) -> Result<Self> {
        opts.validate()?;
        let mut loaded = crate::hf::load(dir)?;
        loaded.require_f32("fine-tuning")?;
        let tokenizer = crate::text::tokenizer_beside(&loaded, dir);
        let existing = loaded.cls().map(|c| label_names(&c.config));
        let labels = make(existing)?;
        let src = match &loaded.towers {
            Towers::Pair { disc, .. } | Towers::Discriminator(disc) => (&disc.config, &disc.names),
            // A lone masked-LM model (the mlm objective's output) has the same encoder.
            Towers::Generator(g) => (&g.config, &g.names),
            Towers::Classifier(c) => (&c.config, &c.names),
        };
        let (mut cfg, src_names) = (src.0.clone(), src.1.clone());
        set_labels(&mut cfg, labels.names());
        let own = cfg.classifier_pooling()?;
        if loaded.cls().is_some() {
            check_pool(opts.pool, own, dir)?;
        }
        cfg.set_classifier_pooling(opts.pool.unwrap_or(own));
        // What save() will write must load again: checked now, not after training.
        let bytes = cfg.to_json_string().len() as u64;
        if bytes > crate::io::read::MAX_CONFIG_BYTES {
            return Err(Error::arg(format!(
                "the classifier's config.json would be {bytes} bytes, more than the {} the loader reads (too many \
                 or too long labels)",
                crate::io::read::MAX_CONFIG_BYTES
            )));
        }
        let model = match &mut loaded.towers {
            Towers::Classifier(c) if c.num_labels == labels.len() => {
                // Same head: only id2label / label2id are rewritten (consistent, HF's layout).
                c.config = cfg;
                loaded
            }
            _ => {
                let from_classifier = loaded.cls().is_some();
                let mut m = Model::new_classifier(cfg)?;
                // Fresh values for everything; the copy below overwrites what `dir` has.
                m.init_weights(opts.seed)?;
                let dst: HashMap<&str, ParamId> =
                    m.cls().map(|c| c.names.iter().map(|(n, id)| (n.as_str(), *id)).collect()).unwrap_or_default();
                let mut copies = Vec::new();
                for (hf, id) in &src_names {
                    let keep = hf.starts_with("electra.") || (from_classifier && hf.starts_with("classifier."));
                    if !keep {
                        continue;
                    }
                    let to = *dst
                        .get(hf.as_str())
                        .ok_or_else(|| Error::Internal(format!("{hf} is missing from the classifier's layout")))?;
                    copies.push((*id, to, hf.clone()));
                }
                for (from, to, hf) in copies {
                    let v = loaded.params.get(from);
                    let w = m.params.get_mut(to);
                    // A grown head: out_proj is [labels, H] row-major (and its bias [labels]), so
                    // the old labels' rows are its prefix; the new rows keep their fresh values.
                    if v.len() > w.len() || (v.len() < w.len() && !hf.starts_with("classifier.out_proj.")) {
                        return Err(Error::Internal(format!("{hf}: {} values do not fit {}", v.len(), w.len())));
                    }
                    w[..v.len()].copy_from_slice(v);
                }
                m
            }
        };
        let mut model = model;
        model.tokenizer = tokenizer;
        Self::from_model(model, opts)
    }

    /// Fine-tunes an in-memory classifier, on `opts.device` (its tokenizer, if any, is saved
    /// with it).
    pub fn from_model(model: Model, opts: FinetuneOptions) -> Result<Self> {
        opts.validate()?;
        model.require_f32("fine-tuning")?;
        let Model { params: ParamStore { mut table, data, .. }, towers, tokenizer, .. } = model;
        let Towers::Classifier(cls) = towers else {
            return Err(Error::arg("the model has no classification head"));
        };
        check_pool(opts.pool, cls.head.pool, Path::new("the model"))?;
        // A config's dropout out of range fails here, not at the first step.
        for probs in [cls.config.dropout_probs(), cls.config.classifier_dropout_probs()] {
            opts.dropout.probabilities(probs, "config.json")?;
        }
        let label_set = LabelSet::new(Some(label_names(&cls.config)), &[])?;
        if label_set.len() != cls.num_labels {
            return Err(Error::Internal(format!("{} label names for {} labels", label_set.len(), cls.num_labels)));
        }
        optim::set_layerwise_lr_decay(&mut table, "classifier", cls.config.num_hidden_layers, opts.layerwise_lr_decay);
        // The rate used is the one reported back (`opts` is public).
        let mut opts = opts;
        let lr = opts.learning_rate.unwrap_or(default_learning_rate(cls.config.hidden_size));
        opts.learning_rate = Some(lr);
        let state = crate::limits::training_bytes(table.numel())?;
        crate::limits::check(state, opts.max_memory_bytes, "the fine-tuner's weights, gradients and Adam moments")?;
        let adamw = opts.adamw(lr);
        let params = Trained::new(backend::open(opts.device, &opts.backend_options())?, table, data, adamw)?;
        Ok(FineTuner {
            opts,
            step: 0,
            cls,
            params,
            acts: EncoderActs::new(true),
            enc_grads: EncoderGrads::default(),
            head: ClsHeadActs::default(),
            head_grads: ClsHeadGrads::default(),
            d_hidden: Buf::default(),
            labels: Buf::default(),
            label_set,
            tokenizer,
        })
    }

    /// Number of labels.
    pub fn num_labels(&self) -> usize {
        self.cls.num_labels
    }

    /// Label names in id order (what `id2label` says, and what [`Self::save`] writes).
    pub fn labels(&self) -> &[String] {
        self.label_set.names()
    }

    /// The id of a label name (the row of the head's output), in O(1).
    pub fn label_id(&self, name: &str) -> Option<usize> {
        self.label_set.id(name)
    }

    /// The classifier (config and parameter spans).
    pub fn classifier(&self) -> &Classifier {
        &self.cls
    }

    /// The parameter layout (names, shapes, offsets, learning-rate scales).
    pub fn params(&self) -> &ParamTable {
        &self.params.table
    }

    /// The current weights in the layout of [`Self::params`].
    pub fn weights(&self) -> Result<Cow<'_, [f32]>> {
        self.params.weights()
    }

    /// Replaces every weight (in the layout of [`Self::params`]).
    pub fn set_weights(&mut self, values: &[f32]) -> Result<()> {
        self.params.set_weights(values)
    }

    /// The Adam moments, in the layout of [`Self::params`].
    pub fn moments(&self) -> Result<optim::Moments<'_>> {
        self.params.moments()
    }

    /// Replaces the Adam moments (each slice holds every tensor's values).
    pub fn set_moments(&mut self, m: &[f32], v: &[f32]) -> Result<()> {
        self.params.set_moments(m, v)
    }

    /// The gradients of the last [`Self::forward_backward`].
    pub fn grads(&self) -> Result<Cow<'_, [f32]>> {
        self.params.grads()
    }

    /// A snapshot of the classifier with the current weights, in host memory.
    pub fn model(&self) -> Result<Model> {
        self.params.snapshot(Towers::Classifier(self.cls.clone()))
    }

    /// Loss and gradients (into the gradient buffer) for a batch with one label per row.
    pub fn forward_backward(&mut self, batch: &Batch, labels: &[i32]) -> Result<FinetuneStats> {
        batch.validate(&self.cls.config)?;
        let need = crate::limits::training_bytes(self.params.table.numel())?
            .checked_add(crate::limits::activation_bytes(&self.cls.config, batch.batch, batch.seq_len, true)?)
            .ok_or_else(|| Error::OutOfMemory("a fine-tuning step's size overflows".into()))?;
        let what = format!("a fine-tuning step of {} x {} tokens", batch.batch, batch.seq_len);
        crate::limits::check(need, self.opts.max_memory_bytes, &what)?;
        let (b, l) = (batch.batch, self.cls.num_labels);
        if labels.len() != b {
            return Err(Error::Shape { what: "labels".into(), expected: vec![b], got: vec![labels.len()] });
        }
        if let Some(bad) = labels.iter().find(|&&y| y < 0 || y as usize >= l) {
            return Err(Error::arg(format!("label {bad} is outside [0, {l})")));
        }
        let be = self.params.be.clone();
        backend::run(&*be, || self.forward_backward_on(&*be, batch, labels))
    }

    fn forward_backward_on(&mut self, be: &dyn Backend, batch: &Batch, labels: &[i32]) -> Result<FinetuneStats> {
        self.params.zero_grads()?;
        let FineTuner { cls: c, params, acts, enc_grads, head, head_grads, d_hidden, labels: y, opts, step, .. } = self;
        let (weights, grads) = (&params.weights, &mut params.grads);
        let (b, t, l) = (batch.batch, batch.seq_len, c.num_labels);
        let w = Weights::flat(weights.mem());
        // One stream per step; the head's sites are apart from the encoder's.
        let (key, stream) = (dropout_key(opts.seed), *step);
        acts.dropout = TowerDropout::of(opts.dropout, c.config.dropout_probs(), key, stream)?;
        head.dropout = TowerDropout::of(opts.dropout, c.config.classifier_dropout_probs(), key, stream)?;
        c.encoder.forward(be, &w, acts, batch)?;
        c.head.forward(be, &w, head, acts.pooled(&c.encoder, b, t))?;
        be.upload_ids(y, labels)?;
        // The logits become d(loss)/d(logits).
        let k = LossScale { scale: 1.0, denom: backend::mean_denominator(b) };
        let ce = be.cross_entropy(&mut head.logits, y, b, l, k)?;
        if !ce.loss.is_finite() {
            return Err(Error::NonFinite(format!("loss is {}", ce.loss)));
        }
        be.ensure(d_hidden, b * t * c.config.hidden_size)?;
        let mut bp = Backprop::new(be, w.flat, grads);
        c.head.backward(&mut bp, head, head_grads, &head.logits, d_hidden, acts.mask.as_ref())?;
        c.encoder.backward(&mut bp, acts, enc_grads, d_hidden)?;
        Ok(FinetuneStats { loss: ce.loss, accuracy: ce.correct as f32 / b as f32, ..Default::default() })
    }

    /// One step: forward, backward, clip, AdamW with layer-wise learning rates. Bad input and
    /// non-finite values leave the weights untouched.
    pub fn train_step(&mut self, batch: &Batch, labels: &[i32]) -> Result<FinetuneStats> {
        let mut s = self.forward_backward(batch, labels)?;
        let u = self.params.update(self.step)?;
        self.step += 1;
        s.step = self.step;
        s.learning_rate = u.learning_rate;
        s.grad_norm = u.grad_norm;
        Ok(s)
    }

    /// Saves the classifier as an HF `ElectraForSequenceClassification` directory, committed as
    /// one unit; non-finite weights are [`Error::NonFinite`] and leave `dir` as it was.
    /// The tokenizer beside the source model, when it had a readable one, is saved with it.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_with(dir, |d| match &self.tokenizer {
            crate::data::tokenizer::AttachedTokenizer::Loaded(t) => t.save(d),
            _ => Ok(()),
        })
    }

    /// The classifier's `max_position_embeddings`: the longest row a step takes.
    pub fn max_positions(&self) -> usize {
        self.cls.config.max_position_embeddings
    }

    /// [`Self::save`], with `extra` writing more files (a tokenizer, a report) into the new
    /// version, so that they are committed with it as one unit.
    pub fn save_with(&self, dir: &Path, extra: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        crate::io::atomic::check_path(dir, "classifier directory")?;
        let towers = Towers::Classifier(self.cls.clone());
        crate::hf::save_towers_with(&towers, &self.params.table, &self.weights()?, dir, extra)
    }
}
