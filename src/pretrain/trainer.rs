//! `Trainer`: one pre-training step, top to bottom — mask, generator forward, sample, corrupt,
//! discriminator forward, joint loss, both backwards, clip, AdamW — on any backend, with buffers
//! reused across steps and seeded randomness drawn on the host.

use super::contrast::{ClsContrast, ContrastWork};
use super::corrupt::{Corruption, Draw, MaskedLogits};
use super::disentangled::Ties;
use super::masking::{mask_batch, MaskRule, Masking};
use super::options::{Distributed, EmbeddingSharing, Objective, TrainOptions};
use crate::backend::{self, mean_denominator, Backend, Buf, LossScale, LossSum, Weights};
use crate::batch::Batch;
use crate::config::ElectraConfig;
use crate::distributed::{self, Collective, RankStatus};
use crate::error::{Error, Result};
use crate::model::encoder::{dropout_key, EncoderActs, EncoderGrads, TowerDropout};
use crate::model::heads::{DiscHeadActs, DiscHeadGrads, GenHead, GenHeadActs, GenHeadGrads};
use crate::model::{Backprop, Discriminator, Generator, Model, Towers};
use crate::optim::{Moments, Trained};
use crate::params::{ParamStore, ParamTable};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one step measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Steps completed after this one.
    pub step: u64,
    /// gen_weight·mlm_loss + disc_weight·disc_loss + disc_mlm_weight·disc_mlm_loss +
    /// cls_contrast_weight·cls_contrast_loss.
    pub loss: f32,
    /// Generator (or MLM model) cross-entropy at the masked positions.
    pub mlm_loss: f32,
    /// Discriminator BCE over real tokens (0 for the mlm objective).
    pub disc_loss: f32,
    /// Share of real tokens the discriminator labels correctly (0 for mlm).
    pub disc_accuracy: f32,
    /// Share of masked positions whose top generator prediction is the original token.
    pub mlm_accuracy: f32,
    /// The discriminator's masked-LM cross-entropy (the hybrid objective; 0 when
    /// `disc_mlm_weight` is 0).
    pub disc_mlm_loss: f32,
    /// Share of masked positions whose original token the discriminator's masked-LM head ranks
    /// first (0 when `disc_mlm_weight` is 0).
    pub disc_mlm_accuracy: f32,
    /// The sequence-level [CLS] loss per sequence (0 when `cls_contrast_weight` is 0).
    pub cls_contrast_loss: f32,
    /// Share of sequences whose discriminator [CLS] finds its generator partner first among
    /// its micro-batch's (0 when `cls_contrast_weight` is 0).
    pub cls_contrast_accuracy: f32,
    /// Sequences in the step (those with a real first token).
    pub sequences: usize,
    /// Learning rate used by this step's update.
    pub learning_rate: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Real (non-padding) tokens in the batch.
    pub tokens: usize,
    /// Masked positions (where the generator or MLM model was trained).
    pub masked: usize,
    /// Seconds in this step's gradient all-reduce (0 for one process): the transfer, as the
    /// ranks arrive at it together.
    pub allreduce_seconds: f32,
    /// Seconds in all of this step's collectives, waiting for slower ranks included.
    pub collective_seconds: f32,
}

/// The masking and sampling stream of micro-batch `index` of a step, counted over all ranks
/// (rank·k + j for micro-batch j of k on rank r). Stream 0 is the seed's own, so one process
/// with one micro-batch draws exactly as it always has.
pub fn stream_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    if index != 0 {
        r.set_stream(index);
    }
    r
}

/// What one rank carries from step to step besides the weights (in checkpoints: every rank's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RankState {
    /// Its micro-batches' streams.
    pub rngs: Vec<ChaCha8Rng>,
    /// Its data pipeline's cursor.
    pub data_cursor: Option<serde_json::Value>,
}

/// Loss sums of this rank's micro-batches, before they are summed over the ranks.
#[derive(Clone, Copy, Debug, Default)]
struct Partial {
    mlm_loss: f32,
    disc_loss: f32,
    mlm_correct: usize,
    disc_correct: usize,
    disc_mlm_loss: f32,
    disc_mlm_correct: usize,
    contrast_loss: f32,
    contrast_correct: usize,
}

/// A step's loss sums and correct counts, as the ranks sum them: `[mlm, disc, mlm right, disc
/// right, disc mlm, disc mlm right, [CLS] contrast, [CLS] contrast right]`.
type Sums = [f32; 8];

impl std::ops::AddAssign for Partial {
    fn add_assign(&mut self, p: Partial) {
        self.mlm_loss += p.mlm_loss;
        self.disc_loss += p.disc_loss;
        self.mlm_correct += p.mlm_correct;
        self.disc_correct += p.disc_correct;
        self.disc_mlm_loss += p.disc_mlm_loss;
        self.disc_mlm_correct += p.disc_mlm_correct;
        self.contrast_loss += p.contrast_loss;
        self.contrast_correct += p.contrast_correct;
    }
}

impl Partial {
    fn sums(&self) -> Sums {
        [
            self.mlm_loss,
            self.disc_loss,
            self.mlm_correct as f32,
            self.disc_correct as f32,
            self.disc_mlm_loss,
            self.disc_mlm_correct as f32,
            self.contrast_loss,
            self.contrast_correct as f32,
        ]
    }
}

/// A step's micro-batches (rows of the rank's batch) and their masks.
struct Plan<'b> {
    micro: Vec<Batch<'b>>,
    maskings: Vec<Masking>,
    /// Real tokens of the whole batch.
    tokens: usize,
    /// Sequences of the whole batch with a real first token.
    sequences: usize,
}

impl Plan<'_> {
    /// Masked positions, real tokens and sequences, as the ranks sum them.
    fn counts(&self) -> [f32; 3] {
        let masked = self.maskings.iter().map(|m| m.positions.len()).sum::<usize>();
        [masked as f32, self.tokens as f32, self.sequences as f32]
    }
}

/// The step's masked positions, real tokens and sequences, over every rank: the denominators of
/// its mean losses.
#[derive(Clone, Copy, Debug)]
struct Counts {
    masked: usize,
    tokens: usize,
    sequences: usize,
}

/// The denominators of a step's mean losses: over masked positions, real tokens and sequences.
#[derive(Clone, Copy, Debug)]
struct Denominators {
    masked: f64,
    tokens: f64,
    sequences: f64,
}

impl Counts {
    fn denominators(self) -> Denominators {
        Denominators {
            masked: mean_denominator(self.masked),
            tokens: mean_denominator(self.tokens),
            sequences: mean_denominator(self.sequences),
        }
    }
}

/// One step's exchanges with the other ranks (for one process a local collective).
struct Rounds<'c> {
    c: &'c dyn Collective,
    /// "step N", for errors.
    what: String,
    /// Time in the agreements, waiting for slower ranks included.
    waited: Duration,
    /// Time in the gradients' all-reduce.
    reduced: Duration,
}

impl<'c> Rounds<'c> {
    fn new(c: &'c dyn Collective, step: u64) -> Self {
        Rounds { c, what: format!("step {}", step.saturating_add(1)), waited: Duration::ZERO, reduced: Duration::ZERO }
    }

    /// The counts summed over the ranks, refused when a sum is no count an f32 holds exactly.
    fn counts(&self, [masked, tokens, sequences]: [f32; 3]) -> Result<Counts> {
        if [masked, tokens, sequences].iter().any(|&x| !(0.0..16_777_216.0).contains(&x) || x.fract() != 0.0) {
            return Err(Error::Distributed(format!(
                "{}: the ranks' token counts ({masked}, {tokens}, {sequences}) are out of range",
                self.what
            )));
        }
        Ok(Counts { masked: masked as usize, tokens: tokens as usize, sequences: sequences as usize })
    }
}

/// The towers a step trains: the generator (or MLM model), and the discriminator for the
/// electra objective.
#[derive(Clone, Copy)]
struct Pair<'m> {
    gen: &'m Generator,
    disc: Option<&'m Discriminator>,
    /// The discriminator's masked-LM head (the hybrid objective).
    disc_mlm: Option<&'m GenHead>,
    /// The sequence-level [CLS] loss.
    contrast: Option<&'m ClsContrast>,
}

impl<'m> Pair<'m> {
    fn of(
        towers: &'m Towers,
        objective: Objective,
        disc_mlm: Option<&'m GenHead>,
        contrast: Option<&'m ClsContrast>,
    ) -> Result<Self> {
        match (objective, towers) {
            (Objective::Electra, Towers::Pair { disc, gen, .. }) => {
                Ok(Pair { gen, disc: Some(disc), disc_mlm, contrast })
            }
            (Objective::Mlm, Towers::Pair { gen, .. } | Towers::Generator(gen)) => {
                Ok(Pair { gen, disc: None, disc_mlm: None, contrast: None })
            }
            _ => Err(Error::Internal("the trainer's model does not fit its objective".into())),
        }
    }
}

/// Makes `opts.max_seq_len` fit a model with `positions` positions: the default (128) is
/// lowered to `positions`; any other value that does not fit is an error saying what to set.
fn fit_max_seq_len(opts: &mut TrainOptions, positions: usize) -> Result<()> {
    if opts.max_seq_len <= positions {
        return Ok(());
    }
    if opts.max_seq_len == super::options::DEFAULT_MAX_SEQ_LEN {
        opts.max_seq_len = positions;
        return Ok(());
    }
    Err(Error::arg(format!(
        "options: max_seq_len {} exceeds the model's max_position_embeddings {positions}; \
         set \"max_seq_len\" to at most {positions} (or leave it out to use {positions})",
        opts.max_seq_len
    )))
}

/// How replaced-token detection is scored: the loss's weight, the label smoothing ε (targets
/// ε/2 and 1 − ε/2) and the denominator of its mean.
#[derive(Clone, Copy)]
struct RtdLoss {
    weight: f32,
    smoothing: f32,
    denom: f64,
}

/// Buffers reused by every step, on the trainer's device unless said otherwise.
#[derive(Default)]
struct Workspace {
    gen_acts: EncoderActs,
    disc_acts: EncoderActs,
    gen_grads: EncoderGrads,
    disc_grads: EncoderGrads,
    gen_head: GenHeadActs,
    disc_head: DiscHeadActs,
    gen_head_grads: GenHeadGrads,
    disc_head_grads: DiscHeadGrads,
    /// Masked positions (flat indices) and the original ids there `[M]`.
    positions: Buf<i32>,
    targets: Buf<i32>,
    /// Generator hidden states at the masked positions `[M, Hg]`, and their gradient.
    gathered: Buf,
    d_gathered: Buf,
    d_gen_hidden: Buf,
    d_disc_hidden: Buf,
    d_disc_logits: Buf,
    /// The discriminator's masked-LM head (hybrid objective): its activations and scratch, the
    /// discriminator's states at the masked positions `[M, H]` and their gradient.
    disc_mlm: GenHeadActs,
    disc_mlm_grads: GenHeadGrads,
    disc_gathered: Buf,
    d_disc_gathered: Buf,
    /// The sequence-level [CLS] loss's buffers.
    contrast: ContrastWork,
    /// Replaced (1) or original (0) per token, and the loss weight per token (the mask) `[N]`.
    labels: Buf,
    weights: Buf,
    /// Gradients of micro-batches after the first, before they are added to the step's: each
    /// micro-batch's gradient is computed alone and the sum runs in micro-batch order, so one
    /// rank with k micro-batches gives the bits of k ranks with one each.
    micro_grads: Buf,
    /// Host scratch: positions and targets before upload, the loss weights.
    host_positions: Vec<i32>,
    host_targets: Vec<i32>,
    host_weights: Vec<f32>,
    /// The discriminator's smoothed labels.
    host_labels: Vec<f32>,
    /// The discriminator's input and labels (host).
    corruption: Corruption,
}

impl Workspace {
    /// Generator (or MLM model) forward on the masked input, its head only at the masked
    /// positions: the logits `[M, V]` land in `gen_head`.
    fn generator_forward(
        &mut self,
        be: &dyn Backend,
        w: &Weights,
        gen: &Generator,
        batch: &Batch,
        masking: &Masking,
    ) -> Result<()> {
        let (b, t) = (batch.batch, batch.seq_len);
        let n = b * t;
        let hg = gen.config.hidden_size;
        let m = masking.positions.len();
        if masking.generator_input.len() != n {
            return Err(Error::Shape {
                what: "generator input".into(),
                expected: vec![b, t],
                got: vec![masking.generator_input.len()],
            });
        }
        gen.encoder.forward(be, w, &mut self.gen_acts, &Batch { input_ids: &masking.generator_input, ..*batch })?;
        self.host_positions.clear();
        self.host_targets.clear();
        for &p in &masking.positions {
            let (Some(&id), Ok(p32)) = (batch.input_ids.get(p), i32::try_from(p)) else {
                return Err(Error::arg(format!("masked position {p} is outside the batch ({n} tokens)")));
            };
            self.host_positions.push(p32);
            self.host_targets.push(id);
        }
        be.upload_ids(&mut self.positions, &self.host_positions)?;
        be.upload_ids(&mut self.targets, &self.host_targets)?;
        be.ensure(&mut self.gathered, m * hg)?;
        be.gather_rows(&mut self.gathered, self.gen_acts.output(&gen.encoder), &self.positions, m, hg)?;
        gen.head.forward(be, w, &mut self.gen_head, &self.gathered, m)
    }

    /// The generator's cross-entropy at the masked positions (times `weight`, over `denom`).
    /// The logits buffer becomes d(loss)/d(logits): no second [M, V] buffer.
    fn generator_loss(&mut self, be: &dyn Backend, gen: &Generator, weight: f32, denom: f64) -> Result<LossSum> {
        let (m, v) = (self.host_positions.len(), gen.config.vocab_size);
        be.cross_entropy(&mut self.gen_head.logits, &self.targets, m, v, LossScale { scale: weight, denom })
    }

    /// Discriminator forward on the corrupted ids, and its BCE over real tokens as `loss` says,
    /// whose gradient lands in `d_disc_logits`.
    fn discriminator_forward(
        &mut self,
        be: &dyn Backend,
        w: &Weights,
        disc: &Discriminator,
        batch: &Batch,
        loss: RtdLoss,
    ) -> Result<LossSum> {
        let (b, t) = (batch.batch, batch.seq_len);
        let n = b * t;
        // Each token's loss weight: its attention mask.
        self.host_weights.clear();
        match batch.attention_mask {
            Some(m) => self.host_weights.extend(m[..n].iter().map(|&x| x as f32)),
            None => self.host_weights.resize(n, 1.0),
        }
        if loss.smoothing > 0.0 {
            let (keep, floor) = (1.0 - loss.smoothing, 0.5 * loss.smoothing);
            self.host_labels.clear();
            self.host_labels.extend(self.corruption.labels.iter().map(|&y| y * keep + floor));
            be.upload(&mut self.labels, &self.host_labels)?;
        } else {
            be.upload(&mut self.labels, &self.corruption.labels)?;
        }
        be.upload(&mut self.weights, &self.host_weights)?;
        disc.encoder.forward(be, w, &mut self.disc_acts, &Batch { input_ids: &self.corruption.ids, ..*batch })?;
        disc.head.forward(be, w, &mut self.disc_head, self.disc_acts.output(&disc.encoder), n, t)?;
        be.ensure(&mut self.d_disc_logits, n)?;
        be.binary_cross_entropy(
            &mut self.d_disc_logits,
            &self.disc_head.logits,
            &self.labels,
            &self.weights,
            n,
            LossScale { scale: loss.weight, denom: loss.denom },
        )
    }

    /// The discriminator's masked-LM head at the masked positions of its last forward, and its
    /// cross-entropy against the original ids (times `weight`, over `denom`); the logits buffer
    /// becomes its gradient.
    fn disc_mlm_forward(
        &mut self,
        be: &dyn Backend,
        w: &Weights,
        disc: &Discriminator,
        head: &GenHead,
        weight: f32,
        denom: f64,
    ) -> Result<LossSum> {
        let (h, m) = (disc.config.hidden_size, self.host_positions.len());
        be.ensure(&mut self.disc_gathered, m * h)?;
        be.gather_rows(&mut self.disc_gathered, self.disc_acts.output(&disc.encoder), &self.positions, m, h)?;
        head.forward(be, w, &mut self.disc_mlm, &self.disc_gathered, m)?;
        let v = head.vocab;
        be.cross_entropy(&mut self.disc_mlm.logits, &self.targets, m, v, LossScale { scale: weight, denom })
    }

    /// Both backwards from the losses' gradients, into `grads` (accumulating): the
    /// discriminator's, then the generator's head at the masked rows, scattered back into the
    /// sequence, and its encoder. `n` tokens.
    fn backward(&mut self, be: &dyn Backend, w: &Weights, grads: &mut Buf, pair: Pair, n: usize) -> Result<()> {
        // The generator's gradient starts at zero: the [CLS] loss adds to it before its head does.
        let hg = pair.gen.config.hidden_size;
        be.ensure(&mut self.d_gen_hidden, n * hg)?;
        be.fill(&mut self.d_gen_hidden, n * hg, 0.0)?;
        if let Some(disc) = pair.disc {
            let h = disc.config.hidden_size;
            be.ensure(&mut self.d_disc_hidden, n * h)?;
            disc.head.backward(
                &mut Backprop::new(be, w.flat, grads),
                &self.disc_head,
                &mut self.disc_head_grads,
                self.disc_acts.output(&disc.encoder),
                &self.d_disc_logits,
                &mut self.d_disc_hidden,
            )?;
            if let Some(head) = pair.disc_mlm {
                let m = self.host_positions.len();
                be.ensure(&mut self.d_disc_gathered, m * h)?;
                head.backward(
                    &mut Backprop::new(be, w.flat, grads),
                    &self.disc_mlm,
                    &mut self.disc_mlm_grads,
                    &self.disc_gathered,
                    &self.disc_mlm.logits,
                    &mut self.d_disc_gathered,
                )?;
                // Masked positions are distinct: each adds to one row.
                be.scatter_rows(&mut self.d_disc_hidden, &self.d_disc_gathered, &self.positions, m, h, true)?;
            }
            if let Some(c) = pair.contrast {
                let bp = &mut Backprop::new(be, w.flat, grads);
                c.backward(bp, &mut self.contrast, &mut self.d_disc_hidden, &mut self.d_gen_hidden)?;
            }
            let bp = &mut Backprop::new(be, w.flat, grads);
            disc.encoder.backward(bp, &self.disc_acts, &mut self.disc_grads, &self.d_disc_hidden)?;
        }
        let gen = pair.gen;
        let m = self.host_positions.len();
        be.ensure(&mut self.d_gathered, m * hg)?;
        gen.head.backward(
            &mut Backprop::new(be, w.flat, grads),
            &self.gen_head,
            &mut self.gen_head_grads,
            &self.gathered,
            &self.gen_head.logits,
            &mut self.d_gathered,
        )?;
        be.scatter_rows(&mut self.d_gen_hidden, &self.d_gathered, &self.positions, m, hg, true)?;
        gen.encoder.backward(
            &mut Backprop::new(be, w.flat, grads),
            &self.gen_acts,
            &mut self.gen_grads,
            &self.d_gen_hidden,
        )
    }
}

/// Pre-training state: the backend, the weights, gradients and Adam moments on its device, the
/// step, the RNG and the options.
pub struct Trainer {
    /// Options it was created with.
    pub opts: TrainOptions,
    /// Updates applied so far.
    pub step: u64,
    /// The masking and sampling streams of this rank's micro-batches
    /// ([`TrainOptions::accumulate_steps`] of them; see [`stream_rng`]).
    pub rngs: Vec<ChaCha8Rng>,
    /// Opaque data-pipeline cursor stored with checkpoints (set by the caller).
    pub data_cursor: Option<serde_json::Value>,
    towers: Towers,
    /// The discriminator's masked-LM head when `disc_mlm_weight` > 0 (see [`super::hybrid`]).
    disc_mlm: Option<GenHead>,
    /// The sequence-level [CLS] loss when `cls_contrast_weight` > 0 (see [`super::contrast`]).
    contrast: Option<ClsContrast>,
    /// The disentangled embedding tables (see [`super::disentangled`]).
    ties: Option<Ties>,
    params: Trained,
    cancel: Arc<AtomicBool>,
    ws: Workspace,
    /// The ranks' all-reduce; `None` for one process (or until a host sets one).
    collective: Option<Arc<dyn Collective>>,
    /// Every rank's state read from a checkpoint of a multi-rank run, until the collective says
    /// which rank this process is.
    pub(crate) resumed_ranks: Option<Vec<RankState>>,
    /// A collective failed mid-step: the ranks may disagree, so no further step runs.
    broken: Option<String>,
    /// Host copy of the gradients for an engine that reduces host memory, on a device backend.
    staging: Vec<f32>,
}

/// Whether a new pair shares its embedding tables (full sharing, the default).
fn full_sharing(opts: &TrainOptions) -> bool {
    matches!(opts.embedding_sharing, None | Some(EmbeddingSharing::Full))
}

fn disentangled(opts: &TrainOptions) -> bool {
    opts.embedding_sharing == Some(EmbeddingSharing::Disentangled)
}

/// Refuses a pair whose generator does not fit its discriminator: both read the same batch (ids,
/// positions, token types) and the discriminator reads the generator's samples, so vocabulary,
/// positions and token types must agree, and shared embedding tables must have one shape.
/// Caught here, at creation, instead of failing every step.
fn check_pair(d: &ElectraConfig, g: &ElectraConfig, shared: bool) -> Result<()> {
    let mut keys = vec![
        ("vocab_size", d.vocab_size, g.vocab_size),
        ("max_position_embeddings", d.max_position_embeddings, g.max_position_embeddings),
        ("type_vocab_size", d.type_vocab_size, g.type_vocab_size),
    ];
    if shared {
        keys.push(("embedding_size", d.embedding_size, g.embedding_size));
        keys.push(("pad_token_id", d.pad_token_id, g.pad_token_id));
    }
    let bad: Vec<String> = keys
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(k, a, b)| format!("{k} {b} in the generator, {a} in the discriminator"))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the generator does not fit the discriminator: {} (a pair must agree on these{})",
        bad.join(", "),
        if shared { ", and on the embedding tables it shares" } else { "" }
    )))
}

impl Trainer {
    /// A trainer over an existing model (already initialised or loaded), on `opts.device`; with
    /// `distributed: "mpi"` every rank must make it (it joins the MPI world).
    pub fn from_model(model: Model, opts: TrainOptions) -> Result<Self> {
        let mut t = Self::from_model_local(model, opts)?;
        t.join_configured_engine()?;
        Ok(t)
    }

    /// [`Self::from_model`] without joining an engine (resume joins after restoring the state).
    pub(crate) fn from_model_local(mut model: Model, mut opts: TrainOptions) -> Result<Self> {
        opts.validate()?;
        model.require_f32("pre-training")?;
        match (opts.objective, &model.towers) {
            (Objective::Electra, Towers::Pair { .. })
            | (Objective::Mlm, Towers::Pair { .. } | Towers::Generator(_)) => {}
            (Objective::Electra, _) => {
                return Err(Error::arg("the electra objective needs a generator and a discriminator"))
            }
            (Objective::Mlm, _) => return Err(Error::arg("the mlm objective needs a masked-LM model")),
        }
        if let Towers::Pair { disc, gen, shared_embeddings } = &model.towers {
            check_pair(&disc.config, &gen.config, *shared_embeddings)?;
            // Disentangled sharing runs on separate tables, as "none".
            if let Some(want) = opts.embedding_sharing.filter(|s| (*s == EmbeddingSharing::Full) != *shared_embeddings)
            {
                let has = if *shared_embeddings { "shares" } else { "does not share" };
                return Err(Error::arg(format!(
                    "options: embedding_sharing \"{}\", but the model's generator {has} the discriminator's \
                     embeddings",
                    want.as_str()
                )));
            }
        }
        if let Some(want) = opts.rtd_head {
            let has = match model.towers.disc() {
                Some(d) => d.config.rtd_head()?,
                None => return Err(Error::arg("options: rtd_head needs a discriminator (the electra objective)")),
            };
            if has != want {
                return Err(Error::arg(format!(
                    "options: rtd_head \"{}\", but the model's discriminator has the \"{}\" head (the head is chosen \
                     when a pair is made from a preset, a config or a discriminator)",
                    want.as_str(),
                    has.as_str()
                )));
            }
        }
        if let Some(want) = opts.tie_generator_output {
            if model.towers.gen().is_some_and(|g| g.config.tie_word_embeddings != want) {
                let has = if want { "its own" } else { "tied" };
                return Err(Error::arg(format!(
                    "options: tie_generator_output {want}, but the model's masked-LM head has {has} output weights \
                     (chosen when a model is made from a preset, a config or a discriminator)"
                )));
            }
        }
        // A config's dropout out of range fails here, not at the first step.
        for c in [model.towers.disc().map(|d| &d.config), model.towers.gen().map(|g| &g.config)].into_iter().flatten() {
            opts.dropout.probabilities(c.dropout_probs(), "config.json")?;
        }
        let cfg = model.input_config();
        fit_max_seq_len(&mut opts, cfg.max_position_embeddings)?;
        if let Some(v) = opts.vocab_size {
            if v != cfg.vocab_size {
                return Err(Error::arg(format!("options: vocab_size {v} differs from the model's {}", cfg.vocab_size)));
            }
        }
        let vocab = cfg.vocab_size as i32;
        if opts.mask_token_id >= vocab {
            return Err(Error::arg(format!(
                "options: mask_token_id {} is outside the vocabulary ({vocab})",
                opts.mask_token_id
            )));
        }
        let disc_mlm =
            (opts.disc_mlm_weight > 0.0).then(|| super::hybrid::attach(&mut model, opts.seed)).transpose()?;
        let contrast = (opts.cls_contrast_weight > 0.0)
            .then(|| super::contrast::attach(&mut model, opts.seed, opts.cls_contrast_temperature))
            .transpose()?;
        let ties = (opts.embedding_sharing == Some(EmbeddingSharing::Disentangled))
            .then(|| super::disentangled::attach(&mut model))
            .transpose()?;
        // Weights (already allocated: the model), plus gradients and moments, before any of
        // the latter is allocated.
        let state = crate::limits::training_bytes(model.num_parameters())?;
        crate::limits::check(state, opts.max_memory_bytes, "the trainer's weights, gradients and Adam moments")?;
        let be = backend::open(opts.device, &opts.backend_options())?;
        let Model { params: ParamStore { table, data, .. }, towers, .. } = model;
        let params = Trained::new(be, table, data, opts.adamw())?;
        let k = opts.accumulate_steps as u64;
        let first = opts.rank as u64 * k;
        Ok(Trainer {
            step: 0,
            rngs: (first..first + k).map(|i| stream_rng(opts.seed, i)).collect(),
            data_cursor: None,
            cancel: Arc::new(AtomicBool::new(false)),
            ws: Workspace { gen_acts: EncoderActs::new(true), disc_acts: EncoderActs::new(true), ..Default::default() },
            towers,
            disc_mlm,
            contrast,
            ties,
            params,
            opts,
            collective: None,
            resumed_ranks: None,
            broken: None,
            staging: Vec::new(),
        })
    }

    /// Joins the engine the options name (MPI), if any.
    pub(crate) fn join_configured_engine(&mut self) -> Result<()> {
        match self.opts.distributed {
            Distributed::None => Ok(()),
            #[cfg(feature = "mpi")]
            Distributed::Mpi => {
                let mpi = crate::distributed::mpi::Mpi::world(self.opts.collective_timeout_s)?;
                self.attach(mpi)
            }
            #[cfg(not(feature = "mpi"))]
            Distributed::Mpi => Err(Error::Unsupported(
                "distributed \"mpi\": this build of electra has no MPI support (build with --features mpi)".into(),
            )),
        }
    }

    /// Connects this trainer to the other ranks of a data-parallel run through `c`, whose rank
    /// and world size it takes (options `rank`/`world_size` must be left out or agree). A
    /// collective call: every rank calls it, before its first step (or right after resuming).
    /// It checks that the ranks are distinct, agree on the world size, and hold the same
    /// options, step and weights; after a resume it picks this rank's RNG streams and data
    /// cursor from the checkpoint.
    pub fn set_collective(&mut self, c: Arc<dyn Collective>) -> Result<()> {
        if self.opts.distributed == Distributed::Mpi {
            return Err(Error::arg("this trainer runs on MPI (distributed \"mpi\"); it takes no other collective"));
        }
        self.attach(c)
    }

    fn attach(&mut self, c: Arc<dyn Collective>) -> Result<()> {
        let (rank, world) = (c.rank(), c.world_size());
        if world == 0 || rank >= world {
            return Err(Error::Distributed(format!("the collective says rank {rank} of {world}")));
        }
        // Every rank reads the same checkpoint, so all refuse a different world alike, before
        // any collective call.
        if let Some(n) = self.resumed_ranks.as_ref().map(Vec::len).filter(|&n| n != world) {
            return Err(Error::arg(format!(
                "the checkpoint was written by a run of {n} ranks; resume it with {n} ranks, not {world} \
                 (to change the number of ranks, export the model and start a new run from it)"
            )));
        }
        let mpi = self.opts.distributed == Distributed::Mpi;
        if !mpi
            && (self.opts.world_size, self.opts.rank) != (1, 0)
            && (self.opts.world_size, self.opts.rank) != (world, rank)
        {
            return Err(Error::arg(format!(
                "options say rank {} of {}, the collective rank {rank} of {world}",
                self.opts.rank, self.opts.world_size
            )));
        }
        if self.step > 0 && self.resumed_ranks.is_none() && world > 1 && self.collective.is_none() {
            return Err(Error::arg(format!(
                "the collective must be set before the first step (this trainer is at step {})",
                self.step
            )));
        }
        // Who is who, and whether every rank starts from the same point: one gather.
        let me = format!(
            "{rank} {world} {} {:016x} {:016x}",
            self.step,
            distributed::fingerprint(&self.weights()?),
            self.options_fingerprint()
        );
        let all = distributed::all_gather_bytes(&*c, me.as_bytes())?;
        for (r, theirs) in all.iter().enumerate() {
            let theirs = String::from_utf8_lossy(theirs);
            let f: Vec<&str> = theirs.split(' ').collect();
            let mine: Vec<&str> = me.split(' ').collect();
            if f.len() != 5 || f[0] != r.to_string() || f[1] != mine[1] {
                return Err(Error::Distributed(format!(
                    "the ranks do not agree who is who: position {r} holds \"{theirs}\" (rank, world size, ...); \
                     every rank needs a distinct rank in 0..{world}"
                )));
            }
            for (i, what) in [(2, "step"), (3, "weights"), (4, "options")] {
                if f[i] != mine[i] {
                    return Err(Error::Distributed(format!(
                        "rank {r}'s {what} differ from rank {rank}'s: every rank must start from the same model, \
                         options and step (same seed or checkpoint)"
                    )));
                }
            }
        }
        let k = self.opts.accumulate_steps;
        match self.resumed_ranks.take() {
            Some(ranks) => {
                let RankState { rngs, data_cursor } = ranks[rank].clone();
                self.rngs = rngs;
                self.data_cursor = data_cursor;
            }
            None if self.step == 0 => {
                let first = (rank * k) as u64;
                self.rngs = (first..first + k as u64).map(|i| stream_rng(self.opts.seed, i)).collect();
            }
            None => {}
        }
        if !mpi {
            self.opts.rank = rank;
            self.opts.world_size = world;
        }
        self.collective = Some(c);
        Ok(())
    }

    /// The options' fingerprint without what differs between ranks.
    fn options_fingerprint(&self) -> u64 {
        let mut o = self.opts.clone();
        (o.rank, o.threads, o.device, o.max_memory_bytes) = (0, 0, backend::Device::Cpu, 0);
        let json = serde_json::to_string(&o).unwrap_or_default();
        distributed::fingerprint(&json.bytes().map(|b| b as f32).collect::<Vec<_>>())
    }

    /// The collective set (or joined), if any.
    pub fn collective(&self) -> Option<Arc<dyn Collective>> {
        self.collective.clone()
    }

    /// This rank and the number of ranks (0 of 1 for one process).
    pub fn rank(&self) -> (usize, usize) {
        self.collective.as_ref().map_or((self.opts.rank, self.opts.world_size), |c| (c.rank(), c.world_size()))
    }

    /// The collective of this step: the one set, or none for one process.
    fn step_collective(&self) -> Result<Arc<dyn Collective>> {
        if let Some(why) = &self.broken {
            return Err(Error::Distributed(format!(
                "an earlier collective failed ({why}); the ranks may disagree, so this trainer takes no more steps \
                 (resume from the last checkpoint)"
            )));
        }
        if let Some(c) = &self.collective {
            return Ok(c.clone());
        }
        if let Some(r) = &self.resumed_ranks {
            return Err(Error::arg(format!(
                "the checkpoint was written by a run of {} ranks: resume it on {} ranks and set their collective",
                r.len(),
                r.len()
            )));
        }
        if self.opts.world_size > 1 {
            return Err(Error::arg(format!(
                "world_size {} needs the ranks' all-reduce: call electra_trainer_set_allreduce (Trainer::set_collective) \
                 on every rank first",
                self.opts.world_size
            )));
        }
        Ok(distributed::local())
    }

    /// A trainer from a preset name (`tiny`, `small`, `base`, `large`), a discriminator
    /// `config.json` (fresh weights, any size), or a directory: the pair
    /// layout, or a lone discriminator whose generator is built by the size rule (fresh
    /// weights, sharing the discriminator's embeddings). For the mlm objective a directory must
    /// hold an ElectraForMaskedLM model.
    pub fn new(init: &str, opts: TrainOptions) -> Result<Self> {
        opts.validate()?;
        let is_config = init.ends_with(".json") && Path::new(init).is_file();
        let model = if crate::config::PRESETS.contains(&init) || is_config {
            // A fresh model: a preset, or a discriminator config.json of any size.
            let (mut d, paper_frac) = if is_config {
                (ElectraConfig::from_file(Path::new(init))?, 0.25)
            } else {
                (ElectraConfig::preset(init)?, ElectraConfig::paper_generator_fraction(init))
            };
            if let Some(v) = opts.vocab_size {
                d.vocab_size = v;
            }
            if let Some(h) = opts.rtd_head {
                d.set_rtd_head(h);
            }
            d.max_position_embeddings = d.max_position_embeddings.max(opts.max_seq_len);
            let frac = opts.generator_hidden_fraction.unwrap_or(paper_frac);
            let (disc, mut gen) = match opts.objective {
                Objective::Electra => {
                    let g = d.generator_config(frac)?;
                    (Some(d), g)
                }
                Objective::Mlm => {
                    let mut g = d;
                    g.architectures = vec!["ElectraForMaskedLM".into()];
                    (None, g)
                }
            };
            if let Some(tie) = opts.tie_generator_output {
                gen.tie_word_embeddings = tie;
            }
            // The whole training state, from the configs, before the weights are allocated.
            for c in disc.iter().chain([&gen]) {
                c.validate()?;
            }
            let towers: Vec<&ElectraConfig> = disc.iter().chain([&gen]).collect();
            let state = crate::limits::training_bytes(crate::limits::model_bytes(&towers)? / 4)?;
            crate::limits::check(state, opts.max_memory_bytes, "the trainer's weights, gradients and Adam moments")?;
            let share = disc.is_some() && full_sharing(&opts);
            let mut m = Model::new(disc, Some(gen), share)?;
            m.init_weights(opts.seed)?;
            if disentangled(&opts) && m.towers.disc().is_some() {
                super::disentangled::start_equal(&mut m)?;
            }
            m
        } else {
            if !Path::new(init).exists() {
                return Err(Error::arg(format!(
                    "init {init:?} is neither a preset ({}) nor an existing model directory",
                    crate::config::PRESETS.join(", ")
                )));
            }
            let loaded = crate::hf::load(Path::new(init))?;
            match (opts.objective, &loaded.towers) {
                (Objective::Electra, Towers::Discriminator(d)) => {
                    let frac = opts.generator_hidden_fraction.unwrap_or(0.25);
                    let mut gcfg = d.config.generator_config(frac)?;
                    if let Some(tie) = opts.tie_generator_output {
                        gcfg.tie_word_embeddings = tie;
                    }
                    let share = full_sharing(&opts);
                    let mut dcfg = d.config.clone();
                    if let Some(h) = opts.rtd_head {
                        dcfg.set_rtd_head(h);
                    }
                    let mut m = Model::new(Some(dcfg), Some(gcfg), share)?;
                    m.init_weights(opts.seed)?;
                    for info in loaded.params.infos() {
                        // A [CLS]-aware discriminator continued with rtd_head "plain" leaves its
                        // head's LayerNorm behind.
                        if m.params.id(&info.name).is_none()
                            && info.name.contains("discriminator_predictions.LayerNorm")
                        {
                            continue;
                        }
                        let id = m.params.id(&info.name).ok_or_else(|| {
                            Error::Internal(format!("{} is missing from the new pair's layout", info.name))
                        })?;
                        m.params.get_mut(id).copy_from_slice(&loaded.params.data[info.offset..info.offset + info.len]);
                    }
                    if disentangled(&opts) {
                        super::disentangled::start_equal(&mut m)?;
                    }
                    m
                }
                (Objective::Mlm, Towers::Discriminator(_) | Towers::Classifier(_)) => {
                    return Err(Error::arg(
                        "the mlm objective needs an ElectraForMaskedLM directory, not a discriminator",
                    ))
                }
                _ => loaded,
            }
        };
        Self::from_model(model, opts)
    }

    /// A flag that makes the running or next step return [`Error::Cancelled`]; settable from
    /// any thread.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.swap(false, Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    /// The backend the trainer runs on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.params.be
    }

    /// What the model holds (configs and the layers' parameter spans).
    pub fn towers(&self) -> &Towers {
        &self.towers
    }

    /// The parameter layout (names, shapes, offsets) of [`Self::weights`], [`Self::grads`] and
    /// the moments.
    pub fn params(&self) -> &ParamTable {
        &self.params.table
    }

    /// The current weights, in the layout of [`Self::params`] (borrowed on the CPU, copied from
    /// a device).
    pub fn weights(&self) -> Result<Cow<'_, [f32]>> {
        self.params.weights()
    }

    /// The gradients of the last [`Self::forward_backward`] (clipped by the update, if one ran).
    pub fn grads(&self) -> Result<Cow<'_, [f32]>> {
        self.params.grads()
    }

    /// The Adam moments.
    pub fn moments(&self) -> Result<Moments<'_>> {
        self.params.moments()
    }

    /// Replaces every weight (same layout as [`Self::weights`]); step, RNG and moments are kept.
    pub fn set_weights(&mut self, values: &[f32]) -> Result<()> {
        self.params.set_weights(values)
    }

    /// Replaces the Adam moments (from a checkpoint).
    pub fn set_moments(&mut self, m: &[f32], v: &[f32]) -> Result<()> {
        self.params.set_moments(m, v)
    }

    /// A snapshot of the model with the current weights, in host memory (later steps do not
    /// change it).
    pub fn model(&self) -> Result<Model> {
        self.params.snapshot(self.towers.clone())
    }

    /// Validates a batch against the model and options.
    pub fn validate_batch(&self, batch: &Batch) -> Result<usize> {
        let n = batch.validate(self.towers.input_config())?;
        if batch.seq_len > self.opts.max_seq_len {
            return Err(Error::arg(format!(
                "seq_len {} exceeds the trainer's max_seq_len {}",
                batch.seq_len, self.opts.max_seq_len
            )));
        }
        self.check_step_memory(batch.batch, batch.seq_len)?;
        Ok(n)
    }

    /// Fails with [`Error::OutOfMemory`] when the training state plus one step's activations for
    /// `batch` × `seq_len` exceed the budget (or the machine), before the step allocates.
    pub fn check_step_memory(&self, batch: usize, seq_len: usize) -> Result<()> {
        let mut need = crate::limits::training_bytes(self.params.table.numel())?;
        for enc in [self.towers.disc().map(|d| &d.config), self.towers.gen().map(|g| &g.config)].into_iter().flatten() {
            let acts = crate::limits::activation_bytes(enc, batch, seq_len, true)?;
            need =
                need.checked_add(acts).ok_or_else(|| Error::OutOfMemory("a training step's size overflows".into()))?;
        }
        if let (Some(head), Some(d)) = (&self.disc_mlm, self.towers.disc()) {
            // Gathered states and their gradient [M, H], the head's four [M, E] buffers and its
            // logits [M, V], for at most max_predictions masked positions per row.
            let rows = batch.saturating_mul(self.opts.max_predictions());
            let per_row = 2 * d.config.hidden_size + 6 * head.dense.dout + head.vocab;
            let bytes = rows.saturating_mul(per_row).saturating_mul(4);
            need = need.saturating_add(bytes);
        }
        crate::limits::check(
            need,
            self.opts.max_memory_bytes,
            &format!("a training step of {batch} x {seq_len} tokens"),
        )
    }

    /// Matrix-product FLOPs of one step over `n` real tokens of `t`-long rows with `masked`
    /// masked positions ([`super::flops::train_step_flops`], plus the hybrid head's).
    pub fn step_flops(&self, n: usize, t: usize, masked: usize) -> f64 {
        let head = self
            .disc_mlm
            .as_ref()
            .map_or(0.0, |h| 3.0 * super::flops::mlm_head_flops(h.dense.din, h.dense.dout, h.vocab, masked));
        super::flops::train_step_flops(&self.towers, n, t, masked) + head
    }

    /// Draws masked positions for `batch` from the first micro-batch's stream.
    pub fn mask(&mut self, batch: &Batch) -> Masking {
        self.mask_with(0, batch)
    }

    fn mask_with(&mut self, j: usize, batch: &Batch) -> Masking {
        mask_batch(&mut self.rngs[j], batch, &MaskRule::of(&self.opts))
    }

    /// One full step: mask, sample, forward, backward, clip, update. Bad input, cancellation
    /// and non-finite losses or gradients leave the trainer exactly as it was.
    ///
    /// With [`TrainOptions::accumulate_steps`] = k the batch's rows run as k micro-batches (B
    /// must be a multiple of k); with several ranks every rank calls it on its own batch, and
    /// the gradients are summed over micro-batches and ranks before one clip and one update on
    /// the global norm, so every rank holds the same weights after every step. A failure or
    /// cancellation on any rank fails the step on all of them, changing nothing anywhere.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepStats> {
        let c = self.step_collective()?;
        let rngs_before = self.rngs.clone();
        let result = self.train_step_on(&*c, batch);
        if result.is_err() {
            self.rngs = rngs_before;
        }
        result
    }

    /// The step on this rank: the masks, the forward and backward of every micro-batch, the
    /// gradients reduced over the ranks, the update. The first two end in the ranks' agreement
    /// ([`Self::agreed`]), so a failure on any rank stops every rank before the update.
    fn train_step_on(&mut self, c: &dyn Collective, batch: &Batch) -> Result<StepStats> {
        let mut ranks = Rounds::new(c, self.step);
        let (plan, counts) = self.agreed(&mut ranks, |t| t.plan(batch), Plan::counts)?;
        let counts = ranks.counts(counts)?;
        let (_, sums) = self.agreed(&mut ranks, |t| t.forward_backward_all(&plan, counts), Partial::sums)?;
        self.reduce(&mut ranks)?;
        self.update(sums, counts, &ranks)
    }

    /// The ranks' agreement on one phase of a step: this rank runs `phase`, then every rank
    /// reports whether its phase succeeded, with the numbers (`shared`) to sum over the ranks.
    /// All go on with the sums when all succeeded; otherwise all fail (with this rank's own
    /// error, if it has one), so no rank gets further than a failed one.
    fn agreed<T, const N: usize>(
        &mut self,
        ranks: &mut Rounds,
        phase: impl FnOnce(&mut Self) -> Result<T>,
        shared: impl FnOnce(&T) -> [f32; N],
    ) -> Result<(T, [f32; N])> {
        let local = phase(self);
        let mut sums = local.as_ref().map_or([0.0; N], shared);
        let t0 = Instant::now();
        let agreed = self.collective_call(ranks.c, status_of(&local), &mut sums, &ranks.what);
        ranks.waited += t0.elapsed();
        let value = local?;
        agreed?;
        Ok((value, sums))
    }

    /// This rank's micro-batches and their masks, each micro-batch from its own stream.
    fn plan<'b>(&mut self, batch: &Batch<'b>) -> Result<Plan<'b>> {
        let k = self.opts.accumulate_steps;
        self.validate_batch(batch)?;
        if !batch.batch.is_multiple_of(k) {
            return Err(Error::arg(format!(
                "batch {} is not a multiple of accumulate_steps {k} (micro-batches have equal rows)",
                batch.batch
            )));
        }
        self.check_cancel()?;
        let micro: Vec<Batch> = (0..k).map(|j| micro_batch(batch, j, k)).collect();
        let maskings: Vec<Masking> = micro.iter().enumerate().map(|(j, mb)| self.mask_with(j, mb)).collect();
        Ok(Plan { micro, maskings, tokens: real_tokens(batch), sequences: real_sequences(batch) })
    }

    /// Forward and backward of every micro-batch of `plan`, with the step's counts (over every
    /// rank) as the denominators of its mean losses; the gradients add up in micro-batch order.
    fn forward_backward_all(&mut self, plan: &Plan, counts: Counts) -> Result<Partial> {
        let denoms = counts.denominators();
        self.params.zero_grads()?;
        let mut sum = Partial::default();
        let numel = self.params.table.numel();
        if plan.micro.len() > 1 {
            let be = self.params.be.clone();
            be.ensure(&mut self.ws.micro_grads, numel)?;
        }
        for (j, (mb, masking)) in plan.micro.iter().zip(&plan.maskings).enumerate() {
            self.check_cancel()?;
            let p = if j == 0 {
                self.forward_backward_validated(mb, masking, None, j, denoms)?
            } else {
                // This micro-batch's gradient alone, then added to the step's.
                let be = self.params.be.clone();
                std::mem::swap(&mut self.params.grads, &mut self.ws.micro_grads);
                let p = be
                    .fill(&mut self.params.grads, numel, 0.0)
                    .and_then(|()| self.forward_backward_validated(mb, masking, None, j, denoms));
                std::mem::swap(&mut self.params.grads, &mut self.ws.micro_grads);
                let p = p?;
                be.add(&mut self.params.grads, &self.ws.micro_grads, numel)?;
                p
            };
            sum += p;
        }
        self.check_cancel()?;
        Ok(sum)
    }

    /// The gradients summed over the ranks (identical bits on every rank), so that every rank
    /// makes the same clip and update.
    fn reduce(&mut self, ranks: &mut Rounds) -> Result<()> {
        if ranks.c.world_size() <= 1 {
            return Ok(());
        }
        let t0 = Instant::now();
        let n = self.params.table.numel();
        let be = self.params.be.clone();
        if let Err(e) = ranks.c.all_reduce_buf(&*be, &mut self.params.grads, n, &mut self.staging) {
            self.broken = Some(e.to_string());
            return Err(e);
        }
        ranks.reduced = t0.elapsed();
        Ok(())
    }

    /// The step's statistics from the loss sums over the ranks, then the clip and update.
    fn update(&mut self, sums: Sums, counts: Counts, ranks: &Rounds) -> Result<StepStats> {
        let mut stats = self.step_stats(sums, counts);
        // Exactly 0 for one process, so its stats stay equal run to run.
        if ranks.c.world_size() > 1 {
            stats.allreduce_seconds = ranks.reduced.as_secs_f32();
            stats.collective_seconds = (ranks.waited + ranks.reduced).as_secs_f32();
        }
        self.apply_update(&mut stats)?;
        Ok(stats)
    }

    /// [`distributed::exchange`], marking the trainer broken when the collective itself fails
    /// (as opposed to a rank reporting a failure through it).
    fn collective_call(&mut self, c: &dyn Collective, mine: RankStatus, sums: &mut [f32], what: &str) -> Result<()> {
        distributed::exchange(c, mine, sums, what).unwrap_or_else(|e| {
            self.broken = Some(e.to_string());
            Err(e)
        })
    }

    /// Forward and backward for given masked positions; with `sampled` the generator's samples
    /// are replaced by these ids (one per masked position), for tests against fixed draws.
    /// Gradients land in the trainer's gradient buffer (zeroed first; see [`Self::grads`]).
    /// Samples are drawn from the first micro-batch's stream; the means are over this batch.
    pub fn forward_backward(&mut self, batch: &Batch, masking: &Masking, sampled: Option<&[i32]>) -> Result<StepStats> {
        self.validate_batch(batch)?;
        self.params.zero_grads()?;
        let counts =
            Counts { masked: masking.positions.len(), tokens: real_tokens(batch), sequences: real_sequences(batch) };
        let p = self.forward_backward_validated(batch, masking, sampled, 0, counts.denominators())?;
        Ok(self.step_stats(p.sums(), counts))
    }

    /// A step's statistics from its loss sums and correct counts ([`Sums`]) over its masked
    /// positions, real tokens and sequences (`counts`, the step's over every rank).
    fn step_stats(
        &self,
        [mlm_loss, disc_loss, mlm_right, disc_right, disc_mlm_loss, disc_mlm_right, contrast_loss, contrast_right]: Sums,
        Counts { masked, tokens, sequences }: Counts,
    ) -> StepStats {
        let mut stats = StepStats {
            mlm_loss,
            disc_loss,
            loss: self.opts.gen_weight * mlm_loss,
            mlm_accuracy: if masked > 0 { mlm_right / masked as f32 } else { 0.0 },
            tokens,
            masked,
            sequences,
            ..Default::default()
        };
        if self.opts.objective == Objective::Electra {
            stats.loss += self.opts.disc_weight * disc_loss;
            stats.disc_accuracy = disc_right / tokens.max(1) as f32;
        }
        if self.disc_mlm.is_some() {
            stats.disc_mlm_loss = disc_mlm_loss;
            stats.loss += self.opts.disc_mlm_weight * disc_mlm_loss;
            stats.disc_mlm_accuracy = if masked > 0 { disc_mlm_right / masked as f32 } else { 0.0 };
        }
        if self.contrast.is_some() {
            stats.cls_contrast_loss = contrast_loss;
            stats.loss += self.opts.cls_contrast_weight * contrast_loss;
            stats.cls_contrast_accuracy = contrast_right / sequences.max(1) as f32;
        }
        stats
    }

    /// Forward and backward of one micro-batch (already validated), sampling from stream `j`,
    /// with the step's loss denominators; gradients accumulate.
    fn forward_backward_validated(
        &mut self,
        batch: &Batch,
        masking: &Masking,
        sampled: Option<&[i32]>,
        j: usize,
        denoms: Denominators,
    ) -> Result<Partial> {
        let be = self.params.be.clone();
        backend::run(&*be, || self.forward_backward_on(&*be, batch, masking, sampled, j, denoms))
    }

    /// The generator pass, the corruption, the discriminator pass, the loss check, the backwards.
    fn forward_backward_on(
        &mut self,
        be: &dyn Backend,
        batch: &Batch,
        masking: &Masking,
        sampled: Option<&[i32]>,
        j: usize,
        denoms: Denominators,
    ) -> Result<Partial> {
        let streams = self.dropout_streams(j);
        let Trainer { towers, disc_mlm, contrast, params, ws, rngs, opts, .. } = self;
        let pair = Pair::of(towers, opts.objective, disc_mlm.as_ref(), contrast.as_ref())?;
        let key = dropout_key(opts.seed);
        ws.gen_acts.dropout = TowerDropout::of(opts.dropout, pair.gen.config.dropout_probs(), key, streams[0])?;
        if let Some(disc) = pair.disc {
            ws.disc_acts.dropout = TowerDropout::of(opts.dropout, disc.config.dropout_probs(), key, streams[1])?;
        }
        let w = Weights::flat(params.weights.mem());
        let n = batch.batch * batch.seq_len;
        ws.generator_forward(be, &w, pair.gen, batch, masking)?;
        if pair.disc.is_some() {
            // Before the loss overwrites the logits with their gradient.
            let draw = match sampled {
                Some(ids) => Draw::Given(ids),
                None => Draw::Gumbel { rng: &mut rngs[j], temperature: opts.temperature },
            };
            let logits = MaskedLogits { be, logits: &ws.gen_head.logits, vocab: pair.gen.config.vocab_size };
            ws.corruption.build(logits, draw, &batch.input_ids[..n], &masking.positions)?;
        }
        let mlm = ws.generator_loss(be, pair.gen, opts.gen_weight, denoms.masked)?;
        let mut part = Partial { mlm_loss: mlm.loss, mlm_correct: mlm.correct, ..Default::default() };
        let mut loss = opts.gen_weight * mlm.loss;
        if let Some(disc) = pair.disc {
            let rtd = RtdLoss { weight: opts.disc_weight, smoothing: opts.disc_label_smoothing, denom: denoms.tokens };
            let bce = ws.discriminator_forward(be, &w, disc, batch, rtd)?;
            part.disc_loss = bce.loss;
            part.disc_correct = bce.correct;
            loss += opts.disc_weight * bce.loss;
            if let Some(head) = pair.disc_mlm {
                let dm = ws.disc_mlm_forward(be, &w, disc, head, opts.disc_mlm_weight, denoms.masked)?;
                part.disc_mlm_loss = dm.loss;
                part.disc_mlm_correct = dm.correct;
                loss += opts.disc_mlm_weight * dm.loss;
            }
            if let Some(c) = pair.contrast {
                let (dh, gh) = (ws.disc_acts.output(&disc.encoder), ws.gen_acts.output(&pair.gen.encoder));
                let weight = opts.cls_contrast_weight;
                let cl = c.forward(be, &w, &mut ws.contrast, dh, gh, batch, weight, denoms.sequences)?;
                part.contrast_loss = cl.loss;
                part.contrast_correct = cl.correct;
                loss += weight * cl.loss;
            }
            if !loss.is_finite() {
                return Err(Error::NonFinite(format!(
                    "loss is {loss} (mlm {}, disc {}, disc mlm {}, [CLS] contrast {})",
                    mlm.loss, bce.loss, part.disc_mlm_loss, part.contrast_loss
                )));
            }
        } else if !loss.is_finite() {
            return Err(Error::NonFinite(format!("loss is {loss}")));
        }
        ws.backward(be, &w, &mut params.grads, pair, n)?;
        Ok(part)
    }

    /// The dropout streams of micro-batch `j` of this step, generator's and discriminator's: one
    /// pair per micro-batch of every rank and step (as [`stream_rng`] counts them), so masks never
    /// repeat, and a resumed run, any thread count and any backend draw the same ones.
    fn dropout_streams(&self, j: usize) -> [u64; 2] {
        let (rank, world) = self.rank();
        let k = self.opts.accumulate_steps as u64;
        let unit = self.step.wrapping_mul(world as u64 * k).wrapping_add(rank as u64 * k + j as u64);
        [unit.wrapping_mul(2), unit.wrapping_mul(2) | 1]
    }

    /// Clips the gradients and applies one AdamW update; refuses (changing nothing) when a
    /// gradient is not finite.
    pub fn apply_update(&mut self, stats: &mut StepStats) -> Result<()> {
        // Checked before the update, so a step counter at its end changes nothing (no wrap to 0).
        let next = self
            .step
            .checked_add(1)
            .ok_or_else(|| Error::arg(format!("step counter {} cannot be incremented", self.step)))?;
        // `opts` is public: a schedule extended after creation (--match-flops, a resume to more
        // steps) must reach the optimizer, or the added steps would run at learning rate 0.
        self.params.set_config(self.opts.adamw())?;
        if let Some(t) = &self.ties {
            t.move_grads(&*self.params.be, &mut self.params.grads)?;
        }
        let u = self.params.update(self.step)?;
        if let Some(t) = &self.ties {
            self.params.sum_weights(|be, w| t.refold(be, w))?;
        }
        self.step = next;
        stats.step = self.step;
        stats.learning_rate = u.learning_rate;
        stats.grad_norm = u.grad_norm;
        Ok(())
    }

    /// Writes the model in the pair layout (`dir/discriminator`, `dir/generator`), loadable by
    /// `transformers` and by [`crate::hf::load`], committed as one unit (never a new
    /// discriminator beside an old generator). Non-finite weights are [`Error::NonFinite`].
    pub fn export(&self, dir: &Path) -> Result<()> {
        self.export_with(dir, |_| Ok(()))
    }

    /// [`Self::export`], with `extra` writing more files (a tokenizer) into the new version
    /// before it is committed.
    pub fn export_with(&self, dir: &Path, extra: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        crate::io::atomic::check_path(dir, "export directory")?;
        crate::hf::save_towers_with(&self.towers, &self.params.table, &self.weights()?, dir, extra)
    }
}

/// Rows `[j·B/k, (j+1)·B/k)` of `batch` (B a multiple of k).
fn micro_batch<'a>(batch: &Batch<'a>, j: usize, k: usize) -> Batch<'a> {
    let rows = batch.batch / k;
    let r = j * rows * batch.seq_len..(j + 1) * rows * batch.seq_len;
    Batch {
        input_ids: &batch.input_ids[r.clone()],
        attention_mask: batch.attention_mask.map(|m| &m[r.clone()]),
        token_type_ids: batch.token_type_ids.map(|t| &t[r]),
        batch: rows,
        seq_len: batch.seq_len,
    }
}

/// Real (unmasked-out) tokens of a batch: the denominator of the discriminator's mean loss.
fn real_tokens(batch: &Batch) -> usize {
    batch.attention_mask.map_or(batch.input_ids.len(), |m| m.iter().filter(|&&x| x != 0).count())
}

/// Sequences whose first token is real (the [CLS] loss's rows).
fn real_sequences(batch: &Batch) -> usize {
    super::contrast::real_rows(batch).count()
}

/// What a rank reports to the others about a phase of its step.
pub(crate) fn status_of<T>(r: &Result<T>) -> RankStatus {
    match r {
        Ok(_) => RankStatus::Ok,
        Err(Error::Cancelled) => RankStatus::Cancelled,
        Err(_) => RankStatus::Failed,
    }
}
