//! `TrainOptions`: every knob of pre-training, read from a JSON object whose unknown keys and
//! bad values are errors that name them.

use crate::backend::Device;
use crate::error::{Error, Result};
use crate::optim::AdamWConfig;
use serde::{Deserialize, Serialize};

/// Which pre-training objective to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Generator MLM + λ·replaced-token detection (the paper).
    #[default]
    Electra,
    /// BERT-style masked LM on a discriminator-sized model alone (the baseline).
    Mlm,
}

/// Whether the generator and the discriminator share their embeddings (word, position and type
/// tables and the embedding LayerNorm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingSharing {
    /// One set of tables for both, trained by both losses (the paper's, and the default).
    #[default]
    Full,
    /// Each tower its own tables: the generator's (tied to its output layer) learn from the
    /// masked-LM loss alone, the discriminator's from replaced-token detection alone.
    None,
    /// DeBERTa-V3's gradient-disentangled sharing: the discriminator's tables are the
    /// generator's plus a delta of its own that alone learns from replaced-token detection
    /// (see [`super::disentangled`]); exported folded, as plain HF tables.
    Disentangled,
}

impl EmbeddingSharing {
    /// The options' spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddingSharing::Full => "full",
            EmbeddingSharing::None => "none",
            EmbeddingSharing::Disentangled => "disentangled",
        }
    }
}

/// Which engine connects the ranks of a data-parallel run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Distributed {
    /// One process, or ranks connected by a collective the host sets
    /// ([`crate::pretrain::Trainer::set_collective`], `electra_trainer_set_allreduce`).
    #[default]
    None,
    /// `MPI_COMM_WORLD` of the system's MPI (feature `mpi`; launch with `mpirun`).
    Mpi,
}

/// Pre-training options. JSON keys are the field names; every field has the original
/// ELECTRA-Small default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainOptions {
    /// Peak learning rate (5e-4).
    pub learning_rate: f32,
    /// Linear warm-up steps (10000).
    pub warmup_steps: u64,
    /// Steps over which the learning rate decays linearly to 0 (1000000; 0: no decay).
    pub total_steps: u64,
    /// Decoupled weight decay, not applied to LayerNorm and biases (0.01).
    pub weight_decay: f32,
    /// Adam ε (1e-6).
    pub adam_epsilon: f32,
    /// Adam β1 (0.9).
    pub adam_beta1: f32,
    /// Adam β2 (0.999).
    pub adam_beta2: f32,
    /// Bias-corrected moments (false, as the original).
    pub bias_correction: bool,
    /// Global gradient-norm clip (1.0; 0 disables).
    pub max_grad_norm: f32,
    /// Share of real tokens masked per example (0.15).
    pub mask_prob: f64,
    /// Weight of the generator's MLM loss (1).
    pub gen_weight: f32,
    /// Weight λ of the discriminator's loss (50).
    pub disc_weight: f32,
    /// Sampling temperature of the generator (1).
    pub temperature: f32,
    /// Weight of the discriminator's masked-LM term (0: off, the paper's objective). Above 0 the
    /// discriminator also predicts the original token at every masked position from its own
    /// states over the corrupted input, through a head of the generator head's shape tied to its
    /// word embeddings (see [`super::hybrid`]); the exported discriminator is unchanged.
    pub disc_mlm_weight: f32,
    /// Label smoothing ε of replaced-token detection (0: off, the paper's): the targets become
    /// ε/2 for an original token and 1 − ε/2 for a replaced one.
    pub disc_label_smoothing: f32,
    /// Weight of the sequence-level loss on [CLS] (0: off, the paper's objective). Above 0 each
    /// sequence's [CLS] state in the discriminator and in the generator, projected and
    /// normalised, must find each other among the micro-batch's sequences (COCO-LM's sequence
    /// contrastive loss with the generator's pass as the second view; see
    /// [`super::contrast`]); the projections are kept in checkpoints, not in the exported models.
    pub cls_contrast_weight: f32,
    /// Temperature τ of that loss's softmax over cosines (0.1).
    pub cls_contrast_temperature: f32,
    /// "electra" or "mlm".
    pub objective: Objective,
    /// Generator hidden size as a fraction of the discriminator's (paper: 1/4; 1/3 for base).
    pub generator_hidden_fraction: Option<f64>,
    /// Vocabulary size for a preset (its default: 30522, BERT uncased).
    pub vocab_size: Option<usize>,
    /// Longest sequence a batch may have (128); also sets the masking budget. The default, 128,
    /// is lowered to the model's `max_position_embeddings` when the model has fewer positions.
    pub max_seq_len: usize,
    /// The [MASK] id (103).
    pub mask_token_id: i32,
    /// Ids never masked ([PAD] [UNK] [CLS] [SEP] [MASK] = 0, 100, 101, 102, 103).
    pub special_token_ids: Vec<i32>,
    /// Seed of initialisation, masking and sampling (0).
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
    /// Micro-batches per step on each rank (1): a step's batch of B rows runs as `k` forward and
    /// backward passes of B/k rows whose gradients add up, so memory holds B/k rows' activations.
    /// One rank with `k` micro-batches and `k` ranks with one give the same step.
    pub accumulate_steps: usize,
    /// The engine between ranks: "none" (default) or "mpi".
    pub distributed: Distributed,
    /// This process's rank when the host supplies the all-reduce (0); MPI ranks come from MPI.
    pub rank: usize,
    /// Ranks of a run whose host supplies the all-reduce (1); MPI's comes from MPI.
    pub world_size: usize,
    /// Seconds an MPI collective may wait for the other ranks before the step fails with
    /// [`Error::Distributed`] (600): a rank that hangs ends the run in bounded time.
    pub collective_timeout_s: f64,
    /// CPU: the widest kernels to run, "best" (default), "avx512", "avx2", "neon" or "scalar"
    /// (see [`crate::backend::Simd`]; overrides `ELECTRA_SIMD`). Results are the same bits under
    /// every cap.
    pub simd: Option<crate::backend::Simd>,
    /// CUDA: TF32 tensor-core matrix products (default false; overrides `ELECTRA_CUDA_TF32`).
    pub tf32: Option<bool>,
    /// Dropout in training: `true` (default) applies each tower's config.json probabilities
    /// (`hidden_dropout_prob`, `attention_probs_dropout_prob`) as HF does, `false` none, a
    /// number p both at p. Masks are counter-based: the same for any thread count, on resume
    /// and on every backend.
    pub dropout: crate::options::DropoutSetting,
    /// `"full"` (the paper's sharing), `"disentangled"` (DeBERTa-V3's: the discriminator's
    /// tables are the generator's plus a delta trained by detection alone) or `"none"`
    /// (separate tables). Unset (the default): full for a pair built from a preset or a
    /// discriminator, and what a loaded pair's files hold (which a set value must then agree
    /// with: a pair with separate tables may be continued as disentangled).
    pub embedding_sharing: Option<EmbeddingSharing>,
    /// The discriminator's detection head: `"plain"` (HF's) or `"cls"` (`LayerNorm(h_[CLS] +
    /// h_i)`, DeBERTa's; see [`crate::RtdHead`]). Unset (the default): plain for a pair built
    /// from a preset, config or discriminator without it, and what a loaded model holds (which a
    /// set value must then agree with).
    pub rtd_head: Option<crate::RtdHead>,
    /// Whether the masked-LM head's output weights are the word embedding table (`true`, the
    /// paper's and BERT's; HF `tie_word_embeddings`) or a `[V, E]` matrix of its own (`false`,
    /// saved as `generator_lm_head.weight` with `"tie_word_embeddings": false` in the generator's
    /// config.json, which HF loads as is). Untied, the softmax's push on every entry it does not
    /// predict stays out of the shared embeddings, where Adam otherwise moves rare entries
    /// together (docs/REPLICATION.md). Unset (the default): tied for a model built from a preset,
    /// config or discriminator, and what a loaded model holds (which a set value must then agree
    /// with).
    pub tie_generator_output: Option<bool>,
}

/// The default of [`TrainOptions::max_seq_len`].
///
/// cbindgen:ignore
pub const DEFAULT_MAX_SEQ_LEN: usize = 128;

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            learning_rate: 5e-4,
            warmup_steps: 10_000,
            total_steps: 1_000_000,
            weight_decay: 0.01,
            adam_epsilon: 1e-6,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            bias_correction: false,
            max_grad_norm: 1.0,
            mask_prob: 0.15,
            gen_weight: 1.0,
            disc_weight: 50.0,
            temperature: 1.0,
            disc_mlm_weight: 0.0,
            disc_label_smoothing: 0.0,
            cls_contrast_weight: 0.0,
            cls_contrast_temperature: 0.1,
            objective: Objective::Electra,
            generator_hidden_fraction: None,
            vocab_size: None,
            max_seq_len: DEFAULT_MAX_SEQ_LEN,
            mask_token_id: 103,
            special_token_ids: vec![0, 100, 101, 102, 103],
            seed: 0,
            threads: 0,
            own_pool: false,
            device: Device::Cpu,
            max_memory_bytes: 0,
            accumulate_steps: 1,
            distributed: Distributed::None,
            rank: 0,
            world_size: 1,
            collective_timeout_s: 600.0,
            simd: None,
            tf32: None,
            dropout: Default::default(),
            embedding_sharing: None,
            rtd_head: None,
            tie_generator_output: None,
        }
    }
}

impl TrainOptions {
    /// Parses a JSON object (`None` or empty: all defaults) and validates it.
    pub fn from_json(json: Option<&str>) -> Result<Self> {
        let o: TrainOptions = match json.map(str::trim).filter(|s| !s.is_empty()) {
            None => TrainOptions::default(),
            Some(s) => crate::options::parse_json(s)?,
        };
        o.validate()?;
        Ok(o)
    }

    /// What the trainer's backend opens with.
    pub fn backend_options(&self) -> crate::backend::BackendOptions {
        let (threads, own_pool, simd, tf32) = (self.threads, self.own_pool, self.simd, self.tf32);
        crate::backend::BackendOptions { threads, own_pool, simd, f32_kernel: None, tf32 }
    }

    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, v: String| Err(Error::arg(format!("options: {k} = {v} is out of range")));
        let finite_nonneg = |x: f32| x.is_finite() && x >= 0.0;
        // learning_rate, weight_decay, adam_epsilon, adam_beta1/2, max_grad_norm.
        self.adamw().validate()?;
        if !(self.mask_prob > 0.0 && self.mask_prob < 1.0) {
            return bad("mask_prob", self.mask_prob.to_string());
        }
        let weights = [("gen_weight", self.gen_weight), ("disc_weight", self.disc_weight)];
        let heads = [("disc_mlm_weight", self.disc_mlm_weight), ("cls_contrast_weight", self.cls_contrast_weight)];
        for (k, w) in weights.into_iter().chain(heads) {
            if !finite_nonneg(w) {
                return bad(k, w.to_string());
            }
        }
        if self.disc_mlm_weight > 0.0 && self.objective == Objective::Mlm {
            return Err(Error::arg("options: disc_mlm_weight needs the electra objective (there is no discriminator)"));
        }
        if self.cls_contrast_weight > 0.0 && self.objective == Objective::Mlm {
            return Err(Error::arg(
                "options: cls_contrast_weight needs the electra objective (its second view is the generator's)",
            ));
        }
        if !(self.cls_contrast_temperature.is_finite() && self.cls_contrast_temperature >= 0.01) {
            return bad("cls_contrast_temperature", self.cls_contrast_temperature.to_string());
        }
        if !(0.0..1.0).contains(&self.disc_label_smoothing) {
            return bad("disc_label_smoothing", self.disc_label_smoothing.to_string());
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad("temperature", self.temperature.to_string());
        }
        self.dropout.probabilities((0.0, 0.0), "options")?;
        if let Some(f) = self.generator_hidden_fraction {
            if !(f > 0.0 && f <= 1.0) {
                return bad("generator_hidden_fraction", f.to_string());
            }
        }
        if let Some(v) = self.vocab_size.filter(|&v| v == 0 || v > crate::config::MAX_DIM) {
            return bad("vocab_size", v.to_string());
        }
        if self.max_seq_len < 2 || self.max_seq_len > crate::config::MAX_DIM {
            return bad("max_seq_len", self.max_seq_len.to_string());
        }
        if self.mask_token_id < 0 {
            return bad("mask_token_id", self.mask_token_id.to_string());
        }
        if let Some(s) = self.special_token_ids.iter().find(|&&s| s < 0) {
            return bad("special_token_ids", s.to_string());
        }
        if self.accumulate_steps == 0 || self.accumulate_steps > 1 << 16 {
            return bad("accumulate_steps", self.accumulate_steps.to_string());
        }
        if self.world_size == 0 || self.world_size > 1 << 20 {
            return bad("world_size", self.world_size.to_string());
        }
        if self.rank >= self.world_size {
            return Err(Error::arg(format!(
                "options: rank {} is out of range for world_size {}",
                self.rank, self.world_size
            )));
        }
        if self.distributed == Distributed::Mpi && (self.rank != 0 || self.world_size != 1) {
            return Err(Error::arg(
                "options: rank and world_size come from MPI when distributed is \"mpi\"; leave them out",
            ));
        }
        if !(self.collective_timeout_s.is_finite() && self.collective_timeout_s > 0.0) {
            return bad("collective_timeout_s", self.collective_timeout_s.to_string());
        }
        crate::backend::check_threads(self.threads)
    }

    /// The optimizer part.
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            learning_rate: self.learning_rate,
            beta1: self.adam_beta1,
            beta2: self.adam_beta2,
            epsilon: self.adam_epsilon,
            weight_decay: self.weight_decay,
            bias_correction: self.bias_correction,
            warmup_steps: self.warmup_steps,
            total_steps: self.total_steps,
            max_grad_norm: self.max_grad_norm,
        }
    }

    /// Masked positions per example at most: int((mask_prob + 0.005)·max_seq_len), as the original.
    pub fn max_predictions(&self) -> usize {
        (((self.mask_prob + 0.005) * self.max_seq_len as f64) as usize).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = TrainOptions::from_json(Some(r#"{"learning_rat": 1e-3}"#)).unwrap_err().to_string();
        assert!(e.contains("learning_rat"), "{e}");
        let e = TrainOptions::from_json(Some(r#"{"mask_prob": 1.5}"#)).unwrap_err().to_string();
        assert!(e.contains("mask_prob"), "{e}");
        let e = TrainOptions::from_json(Some(r#"{"objective": "gan"}"#)).unwrap_err().to_string();
        assert!(e.contains("gan") && e.contains("objective"), "{e}");
        let e = TrainOptions::from_json(Some(r#"{"seed": "x"}"#)).unwrap_err().to_string();
        assert!(e.contains("\"seed\""), "{e}");
        assert!(TrainOptions::from_json(Some("[1]")).is_err());
        let o = TrainOptions::from_json(Some(r#"{"objective": "mlm", "seed": 7}"#)).unwrap();
        assert_eq!((o.objective, o.seed, o.disc_weight), (Objective::Mlm, 7, 50.0));
        assert_eq!(TrainOptions::default().max_predictions(), 19);
        let o = TrainOptions::from_json(Some(r#"{"device": "cuda:1"}"#)).unwrap();
        assert_eq!(o.device, Device::Cuda(1));
        let e = TrainOptions::from_json(Some(r#"{"device": "tpu"}"#)).unwrap_err().to_string();
        assert!(e.contains("device") && e.contains("tpu"), "{e}");
    }
}
