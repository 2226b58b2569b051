//! `Trainer`: one pre-training step, top to bottom — mask, generator forward, sample, corrupt,
//! discriminator forward, joint loss, both backwards, clip, AdamW — on any backend, with buffers
//! reused across steps and seeded randomness drawn on the host.

use super::masking::{mask_batch, Masking};
use super::options::{Objective, TrainOptions};
use crate::backend::{self, Backend, Buf, Weights};
use crate::batch::Batch;
use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::model::encoder::{EncoderActs, EncoderGrads};
use crate::model::heads::{DiscHeadActs, DiscHeadGrads, GenHeadActs, GenHeadGrads};
use crate::model::{Discriminator, Generator, Model, Towers};
use crate::optim::{Moments, Trained};
use crate::params::{ParamStore, ParamTable};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What one step measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Steps completed after this one.
    pub step: u64,
    /// gen_weight·mlm_loss + disc_weight·disc_loss.
    pub loss: f32,
    /// Generator (or MLM model) cross-entropy at the masked positions.
    pub mlm_loss: f32,
    /// Discriminator BCE over real tokens (0 for the mlm objective).
    pub disc_loss: f32,
    /// Share of real tokens the discriminator labels correctly (0 for mlm).
    pub disc_accuracy: f32,
    /// Share of masked positions whose top generator prediction is the original token.
    pub mlm_accuracy: f32,
    /// Learning rate used by this step's update.
    pub learning_rate: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Real (non-padding) tokens in the batch.
    pub tokens: usize,
    /// Masked positions (where the generator or MLM model was trained).
    pub masked: usize,
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
    /// Replaced (1) or original (0) per token, and the loss weight per token (the mask) `[N]`.
    labels: Buf,
    weights: Buf,
    /// Host scratch: positions and targets before upload, the samples, the corrupted ids.
    host_positions: Vec<i32>,
    host_targets: Vec<i32>,
    host_labels: Vec<f32>,
    host_weights: Vec<f32>,
    sampled: Vec<i32>,
    corrupted: Vec<i32>,
}

/// Pre-training state: the backend, the weights, gradients and Adam moments on its device, the
/// step, the RNG and the options.
pub struct Trainer {
    /// Options it was created with.
    pub opts: TrainOptions,
    /// Updates applied so far.
    pub step: u64,
    /// The masking and sampling stream.
    pub rng: ChaCha8Rng,
    /// Opaque data-pipeline cursor stored with checkpoints (set by the caller).
    pub data_cursor: Option<serde_json::Value>,
    towers: Towers,
    params: Trained,
    cancel: Arc<AtomicBool>,
    ws: Workspace,
}

impl Trainer {
    /// A trainer over an existing model (already initialised or loaded), on `opts.device`.
    pub fn from_model(model: Model, mut opts: TrainOptions) -> Result<Self> {
        opts.validate()?;
        match (opts.objective, &model.towers) {
            (Objective::Electra, Towers::Pair { .. })
            | (Objective::Mlm, Towers::Pair { .. } | Towers::Generator(_)) => {}
            (Objective::Electra, _) => {
                return Err(Error::arg("the electra objective needs a generator and a discriminator"))
            }
            (Objective::Mlm, _) => return Err(Error::arg("the mlm objective needs a masked-LM model")),
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
        // Weights (already allocated: the model), plus gradients and moments, before any of
        // the latter is allocated.
        let state = crate::limits::training_bytes(model.num_parameters())?;
        crate::limits::check(state, opts.max_memory_bytes, "the trainer's weights, gradients and Adam moments")?;
        let be = backend::open(opts.device, opts.threads)?;
        let Model { params: ParamStore { table, data }, towers, .. } = model;
        let params = Trained::new(be, table, data, opts.adamw())?;
        Ok(Trainer {
            step: 0,
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            data_cursor: None,
            cancel: Arc::new(AtomicBool::new(false)),
            ws: Workspace { gen_acts: EncoderActs::new(true), disc_acts: EncoderActs::new(true), ..Default::default() },
            towers,
            params,
            opts,
        })
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
            d.max_position_embeddings = d.max_position_embeddings.max(opts.max_seq_len);
            let frac = opts.generator_hidden_fraction.unwrap_or(paper_frac);
            let (disc, gen) = match opts.objective {
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
            // The whole training state, from the configs, before the weights are allocated.
            for c in disc.iter().chain([&gen]) {
                c.validate()?;
            }
            let towers: Vec<&ElectraConfig> = disc.iter().chain([&gen]).collect();
            let state = crate::limits::training_bytes(crate::limits::model_bytes(&towers)? / 4)?;
            crate::limits::check(state, opts.max_memory_bytes, "the trainer's weights, gradients and Adam moments")?;
            let share = disc.is_some();
            let mut m = Model::new(disc, Some(gen), share)?;
            m.init_weights(opts.seed)?;
            m
        } else {
            if !Path::new(init).exists() {
                return Err(Error::arg(format!(
                    "init {init:?} is neither a preset ({}) nor an existing model directory",
                    crate::config::PRESETS.join(", ")
                )));
            }
            let loaded = crate::io::hf::load(Path::new(init))?;
            match (opts.objective, &loaded.towers) {
                (Objective::Electra, Towers::Discriminator(d)) => {
                    let frac = opts.generator_hidden_fraction.unwrap_or(0.25);
                    let gcfg = d.config.generator_config(frac)?;
                    let mut m = Model::new(Some(d.config.clone()), Some(gcfg), true)?;
                    m.init_weights(opts.seed)?;
                    for info in loaded.params.infos() {
                        let id = m.params.id(&info.name).ok_or_else(|| {
                            Error::Internal(format!("{} is missing from the new pair's layout", info.name))
                        })?;
                        m.params.get_mut(id).copy_from_slice(&loaded.params.data[info.offset..info.offset + info.len]);
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
        crate::limits::check(
            need,
            self.opts.max_memory_bytes,
            &format!("a training step of {batch} x {seq_len} tokens"),
        )
    }

    /// Draws this step's masked positions from the trainer's RNG.
    pub fn mask(&mut self, batch: &Batch) -> Masking {
        mask_batch(
            &mut self.rng,
            batch.input_ids,
            batch.attention_mask,
            batch.batch,
            batch.seq_len,
            self.opts.mask_prob,
            self.opts.max_predictions().min(batch.seq_len),
            self.opts.mask_token_id,
            &self.opts.special_token_ids,
        )
    }

    /// One full step: mask, sample, forward, backward, clip, update. Bad input, cancellation
    /// and non-finite losses or gradients leave the trainer exactly as it was.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepStats> {
        self.validate_batch(batch)?;
        self.check_cancel()?;
        let rng_before = self.rng.clone();
        let result = (|| {
            let masking = self.mask(batch);
            let mut stats = self.forward_backward_validated(batch, &masking, None)?;
            self.check_cancel()?;
            self.apply_update(&mut stats)?;
            Ok(stats)
        })();
        if result.is_err() {
            self.rng = rng_before;
        }
        result
    }

    /// Forward and backward for given masked positions; with `sampled` the generator's samples
    /// are replaced by these ids (one per masked position), for tests against fixed draws.
    /// Gradients land in the trainer's gradient buffer (zeroed first; see [`Self::grads`]).
    pub fn forward_backward(&mut self, batch: &Batch, masking: &Masking, sampled: Option<&[i32]>) -> Result<StepStats> {
        self.validate_batch(batch)?;
        self.forward_backward_validated(batch, masking, sampled)
    }

    /// [`Self::forward_backward`] on a batch already validated (train_step validates it once).
    fn forward_backward_validated(
        &mut self,
        batch: &Batch,
        masking: &Masking,
        sampled: Option<&[i32]>,
    ) -> Result<StepStats> {
        let be = self.params.be.clone();
        backend::run(&*be, || self.forward_backward_on(&*be, batch, masking, sampled))
    }

    fn forward_backward_on(
        &mut self,
        be: &dyn Backend,
        batch: &Batch,
        masking: &Masking,
        sampled: Option<&[i32]>,
    ) -> Result<StepStats> {
        self.params.zero_grads()?;
        let Trainer { towers, params, ws, rng, opts, .. } = self;
        let (weights, grads) = (&params.weights, &mut params.grads);
        let (gen, disc): (&Generator, Option<&Discriminator>) = match (opts.objective, &*towers) {
            (Objective::Electra, Towers::Pair { disc, gen, .. }) => (gen, Some(disc)),
            (Objective::Mlm, Towers::Pair { gen, .. } | Towers::Generator(gen)) => (gen, None),
            _ => return Err(Error::Internal("the trainer's model does not fit its objective".into())),
        };
        let (b, t) = (batch.batch, batch.seq_len);
        let n = b * t;
        let w = Weights::flat(weights.mem());
        let mut stats = StepStats::default();
        ws.host_weights.clear();
        match batch.attention_mask {
            Some(m) => ws.host_weights.extend(m[..n].iter().map(|&x| x as f32)),
            None => ws.host_weights.resize(n, 1.0),
        }
        stats.tokens = ws.host_weights.iter().filter(|&&x| x > 0.0).count();
        let (types, mask) = (batch.token_type_ids, batch.attention_mask);

        // Generator (or MLM model): forward on the masked input, head only at masked positions.
        let (hg, v) = (gen.config.hidden_size, gen.config.vocab_size);
        let m = masking.positions.len();
        stats.masked = m;
        if masking.generator_input.len() != n {
            return Err(Error::Shape {
                what: "generator input".into(),
                expected: vec![b, t],
                got: vec![masking.generator_input.len()],
            });
        }
        gen.encoder.forward(be, &w, &mut ws.gen_acts, &masking.generator_input, types, mask, b, t)?;
        ws.host_positions.clear();
        ws.host_targets.clear();
        for &p in &masking.positions {
            let (Some(&id), Ok(p32)) = (batch.input_ids.get(p), i32::try_from(p)) else {
                return Err(Error::arg(format!("masked position {p} is outside the batch ({n} tokens)")));
            };
            ws.host_positions.push(p32);
            ws.host_targets.push(id);
        }
        be.upload_ids(&mut ws.positions, &ws.host_positions)?;
        be.upload_ids(&mut ws.targets, &ws.host_targets)?;
        be.ensure(&mut ws.gathered, m * hg)?;
        be.gather_rows(&mut ws.gathered, ws.gen_acts.output(&gen.encoder), &ws.positions, m, hg)?;
        gen.head.forward(be, &w, &mut ws.gen_head, &ws.gathered, m)?;
        if disc.is_some() {
            // Sample replacements (no gradient flows through the sample) before the loss
            // overwrites the logits with their gradient.
            match sampled {
                Some(s) => {
                    if s.len() != m {
                        return Err(Error::Shape { what: "sampled ids".into(), expected: vec![m], got: vec![s.len()] });
                    }
                    ws.sampled.clear();
                    ws.sampled.extend_from_slice(s);
                }
                None => be.gumbel_argmax(&ws.gen_head.logits, m, v, opts.temperature, rng, &mut ws.sampled)?,
            }
        }
        // The logits buffer becomes d(loss)/d(logits): no second [M, V] buffer.
        let mlm = be.cross_entropy(&mut ws.gen_head.logits, &ws.targets, m, v, opts.gen_weight)?;
        stats.mlm_loss = mlm.loss;
        stats.mlm_accuracy = if m > 0 { mlm.correct as f32 / m as f32 } else { 0.0 };
        stats.loss = opts.gen_weight * mlm.loss;

        if let Some(disc) = disc {
            ws.corrupted.clear();
            ws.corrupted.extend_from_slice(&batch.input_ids[..n]);
            for (&p, &s) in masking.positions.iter().zip(&ws.sampled) {
                ws.corrupted[p] = s;
            }
            ws.host_labels.clear();
            ws.host_labels.extend(ws.corrupted.iter().zip(batch.input_ids).map(|(a, b)| (a != b) as i32 as f32));
            be.upload(&mut ws.labels, &ws.host_labels)?;
            be.upload(&mut ws.weights, &ws.host_weights)?;

            let h = disc.config.hidden_size;
            disc.encoder.forward(be, &w, &mut ws.disc_acts, &ws.corrupted, types, mask, b, t)?;
            let disc_hidden = ws.disc_acts.output(&disc.encoder);
            disc.head.forward(be, &w, &mut ws.disc_head, disc_hidden, n)?;
            be.ensure(&mut ws.d_disc_logits, n)?;
            let bce = be.binary_cross_entropy(
                &mut ws.d_disc_logits,
                &ws.disc_head.logits,
                &ws.labels,
                &ws.weights,
                n,
                opts.disc_weight,
            )?;
            stats.disc_loss = bce.loss;
            stats.disc_accuracy = bce.correct as f32 / stats.tokens.max(1) as f32;
            stats.loss += opts.disc_weight * bce.loss;
            if !stats.loss.is_finite() {
                return Err(Error::NonFinite(format!("loss is {} (mlm {}, disc {})", stats.loss, mlm.loss, bce.loss)));
            }
            // Discriminator backward.
            be.ensure(&mut ws.d_disc_hidden, n * h)?;
            disc.head.backward(
                be,
                w.flat,
                grads,
                &ws.disc_head,
                &mut ws.disc_head_grads,
                disc_hidden,
                &ws.d_disc_logits,
                &mut ws.d_disc_hidden,
                n,
            )?;
            disc.encoder.backward(be, w.flat, grads, &ws.disc_acts, &mut ws.disc_grads, &ws.d_disc_hidden)?;
        } else if !stats.loss.is_finite() {
            return Err(Error::NonFinite(format!("loss is {}", stats.loss)));
        }

        // Generator backward: head at the masked rows, scattered back into the sequence.
        be.ensure(&mut ws.d_gathered, m * hg)?;
        gen.head.backward(
            be,
            w.flat,
            grads,
            &ws.gen_head,
            &mut ws.gen_head_grads,
            &ws.gathered,
            &ws.gen_head.logits,
            &mut ws.d_gathered,
            m,
        )?;
        be.ensure(&mut ws.d_gen_hidden, n * hg)?;
        be.fill(&mut ws.d_gen_hidden, n * hg, 0.0)?;
        be.scatter_rows(&mut ws.d_gen_hidden, &ws.d_gathered, &ws.positions, m, hg, true)?;
        gen.encoder.backward(be, w.flat, grads, &ws.gen_acts, &mut ws.gen_grads, &ws.d_gen_hidden)?;
        Ok(stats)
    }

    /// Clips the gradients and applies one AdamW update; refuses (changing nothing) when a
    /// gradient is not finite.
    pub fn apply_update(&mut self, stats: &mut StepStats) -> Result<()> {
        // Checked before the update, so a step counter at its end changes nothing (no wrap to 0).
        let next = self
            .step
            .checked_add(1)
            .ok_or_else(|| Error::arg(format!("step counter {} cannot be incremented", self.step)))?;
        let u = self.params.update(self.step)?;
        self.step = next;
        stats.step = self.step;
        stats.learning_rate = u.learning_rate;
        stats.grad_norm = u.grad_norm;
        Ok(())
    }

    /// Writes the model in the pair layout (`dir/discriminator`, `dir/generator`), loadable by
    /// `transformers` and by [`crate::io::hf::load`], committed as one unit (never a new
    /// discriminator beside an old generator). Non-finite weights are [`Error::NonFinite`].
    pub fn export(&self, dir: &Path) -> Result<()> {
        self.export_with(dir, |_| Ok(()))
    }

    /// [`Self::export`], with `extra` writing more files (a tokenizer) into the new version
    /// before it is committed.
    pub fn export_with(&self, dir: &Path, extra: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        crate::io::atomic::check_path(dir, "export directory")?;
        crate::io::hf::save_towers_with(&self.towers, &self.params.table, &self.weights()?, dir, extra)
    }
}
