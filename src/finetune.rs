//! Fine-tuning a sequence classifier (HF `ElectraForSequenceClassification`) with the original
//! recipe: AdamW without bias correction, layer-wise learning-rate decay, warm-up × linear decay,
//! global-norm clipping, cross-entropy on the [CLS] state.

use crate::error::{Error, Result};
use crate::model::classifier::{set_labels, ClsHeadActs};
use crate::model::encoder::{EncoderActs, EncoderGrads};
use crate::model::Model;
use crate::ops::loss::cross_entropy;
use crate::optim;
use crate::session::Batch;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Fine-tuning options (JSON keys are the field names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneOptions {
    /// Peak learning rate (1e-4, the original's default).
    pub learning_rate: f32,
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
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl Default for FinetuneOptions {
    fn default() -> Self {
        FinetuneOptions {
            learning_rate: 1e-4,
            warmup_steps: 0,
            total_steps: 0,
            weight_decay: 0.01,
            layerwise_lr_decay: 0.8,
            adam_epsilon: 1e-6,
            bias_correction: false,
            max_grad_norm: 1.0,
            seed: 0,
            threads: 0,
        }
    }
}

impl FinetuneOptions {
    /// Parses a JSON object (`None`: defaults), rejecting unknown keys and bad values.
    pub fn from_json(json: Option<&str>) -> Result<Self> {
        let o: FinetuneOptions = match json.map(str::trim).filter(|s| !s.is_empty()) {
            None => Self::default(),
            Some(s) => crate::pretrain::options::parse_json_options(s)?,
        };
        let ok = |x: f32| x.is_finite() && x >= 0.0;
        if !ok(o.learning_rate) || !ok(o.weight_decay) || !ok(o.max_grad_norm) {
            return Err(Error::arg("options: learning_rate, weight_decay and max_grad_norm must be finite and >= 0"));
        }
        if !(o.layerwise_lr_decay > 0.0 && o.layerwise_lr_decay <= 1.0) {
            return Err(Error::arg(format!(
                "options: layerwise_lr_decay = {} must be in (0, 1]",
                o.layerwise_lr_decay
            )));
        }
        if !(o.adam_epsilon.is_finite() && o.adam_epsilon > 0.0) {
            return Err(Error::arg(format!("options: adam_epsilon = {} must be positive", o.adam_epsilon)));
        }
        Ok(o)
    }

    fn adamw(&self) -> optim::AdamWConfig {
        optim::AdamWConfig {
            learning_rate: self.learning_rate,
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

/// A classifier being fine-tuned.
pub struct FineTuner {
    /// The classifier.
    pub model: Model,
    /// Options.
    pub opts: FinetuneOptions,
    /// Gradients (flat layout).
    pub grads: Vec<f32>,
    adam_m: Vec<f32>,
    adam_v: Vec<f32>,
    /// Updates applied.
    pub step: u64,
    acts: EncoderActs,
    enc_grads: EncoderGrads,
    head: ClsHeadActs,
    d_logits: Vec<f32>,
    d_hidden: Vec<f32>,
    scratch: Vec<f32>,
    pool: Arc<rayon::ThreadPool>,
}

impl FineTuner {
    /// Starts from `dir`: a classifier directory (continues it), or any model with a
    /// discriminator (its encoder is copied; a fresh head for `labels` is initialised from
    /// `opts.seed`). `labels` may be empty when `dir` already is a classifier.
    pub fn new(dir: &Path, labels: &[String], opts: FinetuneOptions) -> Result<Self> {
        let loaded = crate::io::hf::load(dir)?;
        let existing = loaded.cls.as_ref().map(|c| c.num_labels);
        let model = if let Some(n) = existing.filter(|_| loaded.disc.is_none()) {
            if !labels.is_empty() && labels.len() != n {
                return Err(Error::arg(format!(
                    "{} is a classifier with {n} labels; {} were asked for (pass none, or the same number, to \
                     continue it)",
                    dir.display(),
                    labels.len()
                )));
            }
            loaded
        } else {
            let src = loaded
                .disc
                .as_ref()
                .map(|d| (&d.config, &d.names))
                .or(loaded.cls.as_ref().map(|c| (&c.config, &c.names)))
                // A lone masked-LM model (the mlm objective's output) has the same encoder.
                .or(loaded.gen.as_ref().map(|g| (&g.config, &g.names)))
                .ok_or_else(|| Error::arg("fine-tuning needs a discriminator, classifier or masked-LM checkpoint"))?;
            if labels.len() < 2 {
                return Err(Error::arg("a classifier needs at least two labels"));
            }
            let mut cfg = src.0.clone();
            set_labels(&mut cfg, labels);
            let mut m = Model::new_classifier(cfg)?;
            m.init_weights(opts.seed);
            let dst = m.cls.as_ref().expect("classifier").names.clone();
            for (hf, id) in src.1.iter().filter(|(n, _)| n.starts_with("electra.")) {
                let to = dst.iter().find(|(n, _)| n == hf).expect("same encoder layout").1;
                let v = loaded.params.get(*id).to_vec();
                m.params.get_mut(to).copy_from_slice(&v);
            }
            m
        };
        Self::from_model(model, opts)
    }

    /// Fine-tunes an in-memory classifier.
    pub fn from_model(mut model: Model, opts: FinetuneOptions) -> Result<Self> {
        let layers = model
            .cls
            .as_ref()
            .ok_or_else(|| Error::arg("the model has no classification head"))?
            .config
            .num_hidden_layers;
        optim::set_layerwise_lr_decay(&mut model.params, "classifier", layers, opts.layerwise_lr_decay);
        let n = model.params.numel();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
        Ok(FineTuner {
            model,
            opts,
            grads: vec![0.0; n],
            adam_m: vec![0.0; n],
            adam_v: vec![0.0; n],
            step: 0,
            acts: EncoderActs::new(true),
            enc_grads: EncoderGrads::default(),
            head: ClsHeadActs::default(),
            d_logits: Vec::new(),
            d_hidden: Vec::new(),
            scratch: Vec::new(),
            pool: Arc::new(pool),
        })
    }

    /// Number of labels.
    pub fn num_labels(&self) -> usize {
        self.model.cls.as_ref().expect("classifier").num_labels
    }

    /// Loss and gradients (into `self.grads`) for a batch with one label per row.
    pub fn forward_backward(&mut self, batch: &Batch, labels: &[i32]) -> Result<FinetuneStats> {
        let c = self.model.cls.as_ref().expect("classifier");
        batch.validate(&c.config)?;
        let (b, t, l) = (batch.batch, batch.seq_len, c.num_labels);
        if labels.len() != b {
            return Err(Error::Shape { what: "labels".into(), expected: vec![b], got: vec![labels.len()] });
        }
        if let Some(bad) = labels.iter().find(|&&y| y < 0 || y as usize >= l) {
            return Err(Error::arg(format!("label {bad} is outside [0, {l})")));
        }
        let pool = self.pool.clone();
        pool.install(|| {
            let w = &self.model.params.data;
            let g = &mut self.grads;
            g.fill(0.0);
            c.encoder.forward(w, &mut self.acts, batch.input_ids, batch.token_type_ids, batch.attention_mask, b, t);
            c.head.forward(w, &mut self.head, self.acts.output(&c.encoder), b, t);
            self.d_logits.resize(b * l, 0.0);
            let (loss, correct) = cross_entropy(&self.head.logits, labels, b, l, Some(&mut self.d_logits), 1.0);
            if !loss.is_finite() {
                return Err(Error::NonFinite(format!("loss is {loss}")));
            }
            self.d_hidden.resize(b * t * c.config.hidden_size, 0.0);
            c.head.backward(w, g, &self.head, &self.d_logits, &mut self.d_hidden, &mut self.scratch, b, t);
            c.encoder.backward(
                w,
                g,
                &self.acts,
                &mut self.enc_grads,
                &self.d_hidden,
                batch.input_ids,
                batch.token_type_ids,
            );
            Ok(FinetuneStats { loss, accuracy: correct as f32 / b as f32, ..Default::default() })
        })
    }

    /// One step: forward, backward, clip, AdamW with layer-wise learning rates. Bad input and
    /// non-finite values leave the weights untouched.
    pub fn train_step(&mut self, batch: &Batch, labels: &[i32]) -> Result<FinetuneStats> {
        let mut s = self.forward_backward(batch, labels)?;
        let cfg = self.opts.adamw();
        let norm = optim::global_norm(&self.grads);
        if !norm.is_finite() {
            return Err(Error::NonFinite(format!("gradient norm is {norm}; the update was refused")));
        }
        let lr = optim::learning_rate(&cfg, self.step);
        optim::clip_global_norm(&mut self.grads, norm, cfg.max_grad_norm);
        optim::adamw_update(
            &cfg,
            &mut self.model.params,
            &self.grads,
            &mut self.adam_m,
            &mut self.adam_v,
            lr,
            self.step,
        );
        self.step += 1;
        s.step = self.step;
        s.learning_rate = lr;
        s.grad_norm = norm;
        Ok(s)
    }

    /// Saves the classifier as an HF `ElectraForSequenceClassification` directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::io::hf::save_dir(&self.model, crate::io::hf::Role::Classifier, dir)
    }
}
