//! `Session`: inference over a shared [`Model`] on one backend, owning its scratch buffers so
//! repeated calls do not allocate, and its own backend (on the CPU: its own worker pool), so
//! sessions with different devices or thread counts run side by side. A model may serve many
//! sessions on many threads; one session serves one thread at a time.

use crate::backend::{self, Backend, Device, Prepared, Weights};
pub use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::classifier::ClsHeadActs;
use crate::model::encoder::EncoderActs;
use crate::model::heads::{DiscHeadActs, GenHeadActs};
use crate::model::Model;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where and how a session runs (JSON keys are the field names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionOptions {
    /// The device: `"cpu"` (default), `"cuda"` or `"cuda:N"`.
    pub device: Device,
    /// Worker threads on the host: 0 (default) the process-wide shared pool (its size set by
    /// `electra_set_default_threads`, else one per core), 1 the calling thread only (no worker
    /// thread), N ≥ 2 N workers (the shared pool when its size is N, else a pool of its own).
    /// Results do not depend on it.
    pub threads: usize,
    /// A pool of its own of `threads` workers (0: one per core) instead of the shared pool
    /// (default false; `threads` = 1 runs on the calling thread either way).
    pub own_pool: bool,
    /// Memory budget in bytes (0: none beyond the machine's memory). A call whose model plus
    /// activations for its batch would exceed it fails with [`Error::OutOfMemory`] before
    /// allocating.
    pub max_memory_bytes: u64,
    /// CPU: the widest kernels to run, `"best"` (default), `"avx512"`, `"avx2"`, `"neon"` or
    /// `"scalar"` (see [`backend::Simd`]; overrides `ELECTRA_SIMD`).
    pub simd: Option<backend::Simd>,
    /// CPU: f32 inference's matrix path, `"packed"` (default) or `"gemm"` (overrides
    /// `ELECTRA_F32_KERNEL`).
    pub f32_kernel: Option<backend::F32Path>,
    /// CUDA: TF32 tensor-core matrix products (default false; overrides `ELECTRA_CUDA_TF32`).
    pub tf32: Option<bool>,
}

impl SessionOptions {
    /// Parses a JSON object (`None` or empty: defaults), rejecting unknown keys and bad values.
    pub fn from_json(json: Option<&str>) -> Result<Self> {
        let o: SessionOptions = match json.map(str::trim).filter(|s| !s.is_empty()) {
            None => Self::default(),
            Some(s) => crate::options::parse_json(s)?,
        };
        backend::check_threads(o.threads)?;
        Ok(o)
    }

    /// What the session's backend opens with.
    pub fn backend_options(&self) -> backend::BackendOptions {
        let (threads, own_pool, simd, f32_kernel, tf32) =
            (self.threads, self.own_pool, self.simd, self.f32_kernel, self.tf32);
        backend::BackendOptions { threads, own_pool, simd, f32_kernel, tf32 }
    }
}

/// Inference state over a shared model.
pub struct Session {
    model: Arc<Model>,
    be: Arc<dyn Backend>,
    prepared: Option<Arc<Prepared>>,
    /// The discriminator's (or the classifier's) encoder activations.
    acts: EncoderActs,
    gen_acts: EncoderActs,
    disc_head: DiscHeadActs,
    gen_head: GenHeadActs,
    cls_head: ClsHeadActs,
    /// `max_memory_bytes` of the options (0: the machine's memory).
    budget: u64,
}

fn check_out(out: &[f32], needed: usize) -> Result<()> {
    if out.len() < needed {
        return Err(Error::BufferTooSmall { needed, got: out.len() });
    }
    Ok(())
}

/// Copies a finished output into the caller's `out`, or refuses it with [`Error::NonFinite`],
/// writing nothing, when any value is NaN or infinite: OK must mean usable numbers. `per` values
/// belong to one position of a sequence of `seq_len` (`None`: to one sequence).
fn deliver(be: &dyn Backend, src: &backend::Buf, out: &mut [f32], seq_len: Option<usize>, per: usize) -> Result<()> {
    let host = backend::to_host(be, src, out.len())?;
    if let Some(i) = first_non_finite(&host) {
        let row = i / per.max(1);
        let at = match seq_len {
            Some(t) => format!("sequence {}, position {}", row / t.max(1), row % t.max(1)),
            None => format!("sequence {row}"),
        };
        return Err(Error::NonFinite(format!(
            "the model produced {} for {at}: its weights may be corrupt (nothing was written to the output)",
            host[i]
        )));
    }
    out.copy_from_slice(&host);
    Ok(())
}

/// The index of the first NaN or infinity in `x`. Scans in blocks without early exit inside a
/// block, so the common all-finite case vectorises.
fn first_non_finite(x: &[f32]) -> Option<usize> {
    const BLOCK: usize = 1024;
    let block = x.chunks(BLOCK).position(|c| !c.iter().fold(true, |ok, v| ok & v.is_finite()))?;
    let start = block * BLOCK;
    x[start..].iter().position(|v| !v.is_finite()).map(|i| start + i)
}

/// The weights a session reads: the backend's device copy when it has one, else the model's
/// host memory, plus the prepared Linear weights.
fn weights<'a>(be: &dyn Backend, model: &'a Model, prepared: &'a Prepared) -> Result<Weights<'a>> {
    let flat = be.flat_weights(prepared, model.params.values())?;
    Ok(Weights { flat, prepared: Some(prepared), int8: model.quant.is_some() })
}

/// The encoder whose states `hidden_states` returns: the discriminator's, else a classifier's.
fn encoder_for_hidden_states(
    model: &Model,
) -> Result<(&crate::config::ElectraConfig, &crate::model::encoder::Encoder)> {
    match (model.disc(), model.cls()) {
        (Some(d), _) => Ok((&d.config, &d.encoder)),
        (None, Some(c)) => Ok((&c.config, &c.encoder)),
        (None, None) => Err(Error::Unsupported("the model has no discriminator or classifier encoder".into())),
    }
}

/// The encoder [`Session::representations`] looks at: the discriminator's, a classifier's, else
/// the generator's (a masked-LM model alone).
fn probe_encoder(model: &Model) -> Result<(&crate::config::ElectraConfig, &crate::model::encoder::Encoder)> {
    match (model.disc(), model.cls(), model.gen()) {
        (Some(d), _, _) => Ok((&d.config, &d.encoder)),
        (None, Some(c), _) => Ok((&c.config, &c.encoder)),
        (None, None, Some(g)) => Ok((&g.config, &g.encoder)),
        _ => Err(Error::Unsupported("the model has no encoder".into())),
    }
}

/// See [`Session::representations`].
#[derive(Clone, Debug, PartialEq)]
pub struct Representations {
    /// Last hidden states `[B, T, H]`.
    pub hidden: Vec<f32>,
    /// Mean attention entropy (nats) per layer, over real query tokens and heads.
    pub entropy: Vec<f64>,
}

impl Session {
    /// A session over `model` on the CPU with one worker thread per core.
    pub fn new(model: Arc<Model>) -> Result<Self> {
        Self::with_threads(model, 0)
    }

    /// A session over `model` on the CPU, whose computations run on its own pool of `threads`
    /// workers (0: one per core). Results do not depend on the thread count.
    pub fn with_threads(model: Arc<Model>, threads: usize) -> Result<Self> {
        Self::with_options(model, &SessionOptions { threads, ..Default::default() })
    }

    /// A session over `model` on `opts.device`.
    pub fn with_options(model: Arc<Model>, opts: &SessionOptions) -> Result<Self> {
        let mut s = Self::on(model, backend::open(opts.device, &opts.backend_options())?);
        s.budget = opts.max_memory_bytes;
        Ok(s)
    }

    /// Fails with [`Error::OutOfMemory`] when the model's weights (and their prepared copy) plus
    /// one call's activations for `batch` exceed the budget or the machine, before the call
    /// allocates anything.
    fn check_memory(&self, cfg: &crate::config::ElectraConfig, batch: &Batch) -> Result<()> {
        let overflow = || Error::OutOfMemory("a session call's size overflows".into());
        let weights = self.model.num_parameters().checked_mul(8).ok_or_else(overflow)?;
        let acts = crate::limits::activation_bytes(cfg, batch.batch, batch.seq_len, false)?;
        let what = format!("a session call on {} x {} tokens", batch.batch, batch.seq_len);
        crate::limits::check(weights.checked_add(acts).ok_or_else(overflow)?, self.budget, &what)
    }

    /// The backend in words: its device, its kernels (on the CPU, the variant of its kernel
    /// table) and its threads.
    pub fn describe(&self) -> String {
        self.be.describe()
    }

    /// A session over `model` on an open backend.
    pub fn on(model: Arc<Model>, be: Arc<dyn Backend>) -> Self {
        Session {
            model,
            be,
            prepared: None,
            acts: EncoderActs::new(false),
            gen_acts: EncoderActs::new(false),
            disc_head: DiscHeadActs::default(),
            gen_head: GenHeadActs::default(),
            cls_head: ClsHeadActs::default(),
            budget: 0,
        }
    }

    /// Worker threads of this session's backend.
    pub fn threads(&self) -> usize {
        self.be.threads()
    }

    /// The backend this session runs on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.be
    }

    /// The model this session runs.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The model's weights in this backend's inference form (built by the first call of any of
    /// the model's sessions on this device).
    fn prepared(&mut self) -> Result<Arc<Prepared>> {
        if let Some(p) = &self.prepared {
            return Ok(p.clone());
        }
        let p = self.model.prepared(&*self.be)?;
        self.prepared = Some(p.clone());
        Ok(p)
    }

    /// Runs `f` on this session's backend with the model, its weights and the session's buffers.
    fn run<R: Send>(
        &mut self,
        f: impl FnOnce(&dyn Backend, &Model, &Weights, &mut Self) -> Result<R> + Send,
    ) -> Result<R> {
        let (be, model, prepared) = (self.be.clone(), self.model.clone(), self.prepared()?);
        backend::run(&*be, || f(&*be, &model, &weights(&*be, &model, &prepared)?, self))
    }

    /// Raw replaced-token logits, `[B, T]` into `out[..B·T]` (logit > 0: "replaced").
    pub fn discriminate(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let n = batch.tokens()?;
        check_out(out, n)?;
        self.check_memory(self.model.input_config(), batch)?;
        self.run(|be, model, w, s| {
            let d = model.disc().ok_or_else(|| Error::Unsupported("the model has no discriminator".into()))?;
            batch.validate(&d.config)?;
            d.encoder.forward(be, w, &mut s.acts, batch)?;
            d.head.forward(be, w, &mut s.disc_head, s.acts.output(&d.encoder), n, batch.seq_len)?;
            deliver(be, &s.disc_head.logits, &mut out[..n], Some(batch.seq_len), 1)
        })
    }

    /// The last hidden states of the discriminator's encoder (a classifier's when the model is
    /// one), `[B, T, H]` into `out[..B·T·H]`.
    pub fn hidden_states(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let n = batch.tokens()?;
        let (cfg, _) = encoder_for_hidden_states(&self.model)?;
        let len = n.checked_mul(cfg.hidden_size).ok_or_else(|| Error::arg("output size overflows"))?;
        check_out(out, len)?;
        batch.validate(cfg)?;
        self.check_memory(cfg, batch)?;
        self.run(|be, model, w, s| {
            let (cfg, enc) = encoder_for_hidden_states(model)?;
            enc.forward(be, w, &mut s.acts, batch)?;
            deliver(be, s.acts.output(enc), &mut out[..len], Some(batch.seq_len), cfg.hidden_size)
        })
    }

    /// What a probe of pre-training looks at, from one forward of the encoder that represents
    /// text (the discriminator's, a classifier's, else the masked-LM model's) on the checkpoint
    /// weights: its last hidden states `[B, T, H]` and, per layer, the mean entropy (nats) of the
    /// attention distributions of real query tokens over all heads. Keeps every layer's
    /// probabilities for the call (the memory of a training forward).
    pub fn representations(&mut self, batch: &Batch) -> Result<Representations> {
        let n = batch.tokens()?;
        let cfg = probe_encoder(&self.model)?.0.clone();
        batch.validate(&cfg)?;
        let need = crate::limits::activation_bytes(&cfg, batch.batch, batch.seq_len, true)?;
        crate::limits::check(need, self.budget, "a probe forward")?;
        self.run(|be, model, w, _| {
            let (_, enc) = probe_encoder(model)?;
            let mut acts = EncoderActs { want_probs: true, ..EncoderActs::new(true) };
            enc.forward(be, &Weights::flat(w.flat), &mut acts, batch)?;
            let mut hidden = vec![0.0; n * enc.hidden];
            deliver(be, acts.output(enc), &mut hidden, Some(batch.seq_len), enc.hidden)?;
            let (b, t, nh) = (batch.batch, batch.seq_len, enc.heads);
            let real = |i: usize| batch.attention_mask.is_none_or(|m| m[i] != 0);
            let mut entropy = Vec::with_capacity(enc.layers.len());
            for la in &acts.layers[..enc.layers.len()] {
                let p = backend::to_host(be, &la.probs, b * nh * t * t)?;
                let (mut sum, mut rows) = (0.0f64, 0usize);
                for (r, row) in p.chunks_exact(t).enumerate() {
                    // Row r is query r % T of batch row r / (NH·T).
                    if real((r / (nh * t)) * t + r % t) {
                        sum -= row.iter().filter(|&&x| x > 0.0).map(|&x| x as f64 * (x as f64).ln()).sum::<f64>();
                        rows += 1;
                    }
                }
                entropy.push(sum / rows.max(1) as f64);
            }
            Ok(Representations { hidden, entropy })
        })
    }

    /// The generator's vocabulary logits, `[B, T, V]` into `out[..B·T·V]`.
    pub fn generator_logits(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let n = batch.tokens()?;
        let g = self.model.gen().ok_or_else(|| Error::Unsupported("the model has no generator".into()))?;
        let len = n.checked_mul(g.config.vocab_size).ok_or_else(|| Error::arg("output size overflows"))?;
        check_out(out, len)?;
        batch.validate(&g.config)?;
        self.check_memory(&g.config, batch)?;
        self.run(|be, model, w, s| {
            let g = model.gen().ok_or_else(|| Error::Unsupported("the model has no generator".into()))?;
            g.encoder.forward(be, w, &mut s.gen_acts, batch)?;
            g.head.forward(be, w, &mut s.gen_head, s.gen_acts.output(&g.encoder), n)?;
            deliver(be, &s.gen_head.logits, &mut out[..len], Some(batch.seq_len), g.config.vocab_size)
        })
    }

    /// Replaced-token logits as an owned `[B, T]` array.
    pub fn discriminate_array(&mut self, batch: &Batch) -> Result<ndarray::Array2<f32>> {
        let n = batch.tokens()?;
        if batch.input_ids.len() != n {
            let expected = vec![batch.batch, batch.seq_len];
            return Err(Error::Shape { what: "input_ids".into(), expected, got: vec![batch.input_ids.len()] });
        }
        let mut out = crate::alloc::try_vec(n, 0.0, "replaced-token logits")?;
        self.discriminate(batch, &mut out)?;
        ndarray::Array2::from_shape_vec((batch.batch, batch.seq_len), out).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Sequence-classification logits, `[B, labels]` into `out[..B·labels]` (a model with a
    /// classification head: `ElectraForSequenceClassification`).
    pub fn classify(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let c = self.model.cls().ok_or_else(|| Error::Unsupported("the model has no classification head".into()))?;
        let l = c.num_labels;
        batch.tokens()?;
        let len = batch.batch.checked_mul(l).ok_or_else(|| Error::arg("output size overflows"))?;
        check_out(out, len)?;
        batch.validate(&c.config)?;
        self.check_memory(&c.config, batch)?;
        self.run(|be, model, w, s| {
            let c = model.cls().ok_or_else(|| Error::Unsupported("the model has no classification head".into()))?;
            let (b, t) = (batch.batch, batch.seq_len);
            c.encoder.forward(be, w, &mut s.acts, batch)?;
            c.head.forward(be, w, &mut s.cls_head, s.acts.pooled(&c.encoder, b, t))?;
            deliver(be, &s.cls_head.logits, &mut out[..len], None, l)
        })
    }
}
