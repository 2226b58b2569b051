//! `Trainer`: one pre-training step, top to bottom — mask, generator forward, sample, corrupt,
//! discriminator forward, joint loss, both backwards, clip, AdamW — with buffers reused across
//! steps and seeded randomness.

use super::masking::{gumbel_sample, mask_batch, Masking};
use super::options::{Objective, TrainOptions};
use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::model::encoder::{EncoderActs, EncoderGrads};
use crate::model::heads::{grow, DiscHeadActs, GenHeadActs};
use crate::model::Model;
use crate::ops::loss::{binary_cross_entropy, cross_entropy_in_place};
use crate::optim;
use crate::session::Batch;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
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

/// Buffers reused by every step.
#[derive(Default)]
struct Workspace {
    gen_acts: EncoderActs,
    disc_acts: EncoderActs,
    gen_grads: EncoderGrads,
    disc_grads: EncoderGrads,
    gen_head: GenHeadActs,
    disc_head: DiscHeadActs,
    gathered: Vec<f32>,
    d_gathered: Vec<f32>,
    d_gen_hidden: Vec<f32>,
    d_disc_hidden: Vec<f32>,
    d_disc_logits: Vec<f32>,
    head_scratch: Vec<f32>,
    targets: Vec<i32>,
    sampled: Vec<i32>,
    corrupted: Vec<i32>,
    labels: Vec<f32>,
    weights: Vec<f32>,
}

/// Pre-training state: model, gradients, Adam moments, step, RNG, options.
pub struct Trainer {
    /// The model being trained (generator + discriminator, or the MLM model alone).
    pub model: Model,
    /// Options it was created with.
    pub opts: TrainOptions,
    /// Gradients, in the parameter store's flat layout.
    pub grads: Vec<f32>,
    /// Adam first moments.
    pub adam_m: Vec<f32>,
    /// Adam second moments.
    pub adam_v: Vec<f32>,
    /// Updates applied so far.
    pub step: u64,
    /// The masking and sampling stream.
    pub rng: ChaCha8Rng,
    /// Opaque data-pipeline cursor stored with checkpoints (set by the caller).
    pub data_cursor: Option<serde_json::Value>,
    cancel: Arc<AtomicBool>,
    pool: Arc<rayon::ThreadPool>,
    ws: Workspace,
}

fn build_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("electra-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))
}

impl Trainer {
    /// A trainer over an existing model (already initialised or loaded).
    pub fn from_model(model: Model, opts: TrainOptions) -> Result<Self> {
        opts.validate()?;
        match opts.objective {
            Objective::Electra if model.disc.is_none() || model.gen.is_none() => {
                return Err(Error::arg("the electra objective needs a generator and a discriminator"))
            }
            Objective::Mlm if model.gen.is_none() => {
                return Err(Error::arg("the mlm objective needs a masked-LM model"))
            }
            _ => {}
        }
        let cfg = model.input_config();
        if opts.max_seq_len > cfg.max_position_embeddings {
            return Err(Error::arg(format!(
                "options: max_seq_len {} exceeds the model's max_position_embeddings {}",
                opts.max_seq_len, cfg.max_position_embeddings
            )));
        }
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
        let n = model.params.numel();
        Ok(Trainer {
            grads: vec![0.0; n],
            adam_m: vec![0.0; n],
            adam_v: vec![0.0; n],
            step: 0,
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            data_cursor: None,
            cancel: Arc::new(AtomicBool::new(false)),
            pool: build_pool(opts.threads)?,
            ws: Workspace { gen_acts: EncoderActs::new(true), disc_acts: EncoderActs::new(true), ..Default::default() },
            model,
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
            let mut m = match opts.objective {
                Objective::Electra => Model::new(Some(d.clone()), Some(d.generator_config(frac)?), true)?,
                Objective::Mlm => {
                    let mut g = d.clone();
                    g.architectures = vec!["ElectraForMaskedLM".into()];
                    Model::new(None, Some(g), false)?
                }
            };
            m.init_weights(opts.seed);
            m
        } else {
            if !Path::new(init).exists() {
                return Err(Error::arg(format!(
                    "init {init:?} is neither a preset ({}) nor an existing model directory",
                    crate::config::PRESETS.join(", ")
                )));
            }
            let loaded = crate::io::hf::load(Path::new(init))?;
            match (opts.objective, &loaded.disc, &loaded.gen) {
                (Objective::Electra, Some(d), None) => {
                    let frac = opts.generator_hidden_fraction.unwrap_or(0.25);
                    let gcfg = d.config.generator_config(frac)?;
                    let mut m = Model::new(Some(d.config.clone()), Some(gcfg), true)?;
                    m.init_weights(opts.seed);
                    for info in loaded.params.infos() {
                        let id = m.params.id(&info.name).expect("same discriminator layout");
                        m.params.get_mut(id).copy_from_slice(&loaded.params.data[info.offset..info.offset + info.len]);
                    }
                    m
                }
                (Objective::Mlm, Some(_), _) => {
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

    /// Validates a batch against the model and options.
    pub fn validate_batch(&self, batch: &Batch) -> Result<usize> {
        let n = batch.validate(self.model.input_config())?;
        if batch.seq_len > self.opts.max_seq_len {
            return Err(Error::arg(format!(
                "seq_len {} exceeds the trainer's max_seq_len {}",
                batch.seq_len, self.opts.max_seq_len
            )));
        }
        Ok(n)
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
            let mut stats = self.forward_backward(batch, &masking, None)?;
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
    /// Gradients land in `self.grads` (zeroed first).
    pub fn forward_backward(&mut self, batch: &Batch, masking: &Masking, sampled: Option<&[i32]>) -> Result<StepStats> {
        let pool = self.pool.clone();
        pool.install(|| self.forward_backward_inner(batch, masking, sampled))
    }

    fn forward_backward_inner(
        &mut self,
        batch: &Batch,
        masking: &Masking,
        sampled: Option<&[i32]>,
    ) -> Result<StepStats> {
        let (b, t) = (batch.batch, batch.seq_len);
        let n = b * t;
        let w = &self.model.params.data;
        let g = &mut self.grads;
        g.fill(0.0);
        let ws = &mut self.ws;
        let opts = &self.opts;
        let mut stats = StepStats::default();
        ws.weights.clear();
        match batch.attention_mask {
            Some(m) => ws.weights.extend(m.iter().map(|&x| x as f32)),
            None => ws.weights.resize(n, 1.0),
        }
        stats.tokens = ws.weights.iter().filter(|&&x| x > 0.0).count();

        // Generator (or MLM model): forward on the masked input, head only at masked positions.
        let gen = self.model.gen.as_ref().expect("checked at construction");
        let (hg, v) = (gen.config.hidden_size, gen.config.vocab_size);
        let m = masking.positions.len();
        stats.masked = m;
        gen.encoder.forward(
            w,
            &mut ws.gen_acts,
            &masking.generator_input,
            batch.token_type_ids,
            batch.attention_mask,
            b,
            t,
        );
        let gen_hidden = ws.gen_acts.output(&gen.encoder);
        ws.gathered.clear();
        ws.targets.clear();
        for &p in &masking.positions {
            ws.gathered.extend_from_slice(&gen_hidden[p * hg..(p + 1) * hg]);
            ws.targets.push(batch.input_ids[p]);
        }
        gen.head.forward(w, &mut ws.gen_head, &ws.gathered, m);
        if opts.objective == Objective::Electra {
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
                None => gumbel_sample(&mut self.rng, &ws.gen_head.logits, m, v, opts.temperature, &mut ws.sampled),
            }
        }
        // The logits buffer becomes d(loss)/d(logits): no second [M, V] buffer.
        let (mlm_loss, mlm_correct) =
            cross_entropy_in_place(&mut ws.gen_head.logits[..m * v], &ws.targets, m, v, opts.gen_weight);
        stats.mlm_loss = mlm_loss;
        stats.mlm_accuracy = if m > 0 { mlm_correct as f32 / m as f32 } else { 0.0 };
        stats.loss = opts.gen_weight * mlm_loss;

        if opts.objective == Objective::Electra {
            ws.corrupted.clear();
            ws.corrupted.extend_from_slice(&batch.input_ids[..n]);
            for (&p, &s) in masking.positions.iter().zip(&ws.sampled) {
                ws.corrupted[p] = s;
            }
            ws.labels.clear();
            ws.labels.extend(ws.corrupted.iter().zip(batch.input_ids).map(|(a, b)| (a != b) as i32 as f32));

            let disc = self.model.disc.as_ref().expect("checked at construction");
            let h = disc.config.hidden_size;
            disc.encoder.forward(w, &mut ws.disc_acts, &ws.corrupted, batch.token_type_ids, batch.attention_mask, b, t);
            let disc_hidden = ws.disc_acts.output(&disc.encoder);
            disc.head.forward(w, &mut ws.disc_head, disc_hidden, n);
            grow(&mut ws.d_disc_logits, n);
            let (disc_loss, correct) = binary_cross_entropy(
                &ws.disc_head.logits[..n],
                &ws.labels,
                &ws.weights,
                Some(&mut ws.d_disc_logits[..n]),
                opts.disc_weight,
            );
            stats.disc_loss = disc_loss;
            stats.disc_accuracy = correct as f32 / stats.tokens.max(1) as f32;
            stats.loss += opts.disc_weight * disc_loss;
            if !stats.loss.is_finite() {
                return Err(Error::NonFinite(format!("loss is {} (mlm {mlm_loss}, disc {disc_loss})", stats.loss)));
            }
            // Discriminator backward.
            grow(&mut ws.d_disc_hidden, n * h);
            disc.head.backward(
                w,
                g,
                &ws.disc_head,
                disc_hidden,
                &ws.d_disc_logits,
                &mut ws.d_disc_hidden,
                &mut ws.head_scratch,
                n,
            );
            disc.encoder.backward(
                w,
                g,
                &ws.disc_acts,
                &mut ws.disc_grads,
                &ws.d_disc_hidden,
                &ws.corrupted,
                batch.token_type_ids,
            );
        } else if !stats.loss.is_finite() {
            return Err(Error::NonFinite(format!("loss is {}", stats.loss)));
        }

        // Generator backward: head at the masked rows, scattered back into the sequence.
        grow(&mut ws.d_gathered, m * hg);
        gen.head.backward(
            w,
            g,
            &ws.gen_head,
            &ws.gathered,
            &ws.gen_head.logits,
            &mut ws.d_gathered,
            &mut ws.head_scratch,
            m,
        );
        grow(&mut ws.d_gen_hidden, n * hg);
        ws.d_gen_hidden[..n * hg].fill(0.0);
        for (k, &p) in masking.positions.iter().enumerate() {
            for (d, s) in ws.d_gen_hidden[p * hg..(p + 1) * hg].iter_mut().zip(&ws.d_gathered[k * hg..(k + 1) * hg]) {
                *d += s;
            }
        }
        gen.encoder.backward(
            w,
            g,
            &ws.gen_acts,
            &mut ws.gen_grads,
            &ws.d_gen_hidden,
            &masking.generator_input,
            batch.token_type_ids,
        );
        Ok(stats)
    }

    /// Clips the gradients in `self.grads` and applies one AdamW update; refuses (changing
    /// nothing) when a gradient is not finite.
    pub fn apply_update(&mut self, stats: &mut StepStats) -> Result<()> {
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
        stats.step = self.step;
        stats.learning_rate = lr;
        stats.grad_norm = norm;
        Ok(())
    }

    /// Writes the model in the pair layout (`dir/discriminator`, `dir/generator`), loadable by
    /// `transformers` and by [`crate::io::hf::load`].
    pub fn export(&self, dir: &Path) -> Result<()> {
        crate::io::hf::save_pair(&self.model, dir)
    }
}
