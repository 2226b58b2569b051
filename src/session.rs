//! `Session`: inference over a shared [`Model`], owning its scratch buffers so repeated calls do
//! not allocate, and its own worker pool, so sessions with different thread counts can run side
//! by side. A model may serve many sessions on many threads; one session serves one thread at a
//! time.

use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::model::encoder::EncoderActs;
use crate::model::heads::{DiscHeadActs, GenHeadActs};
use crate::model::Model;
use std::sync::Arc;

/// A batch of token ids `[B, T]` with optional attention mask and token types, row-major.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Token ids, `B·T`.
    pub input_ids: &'a [i32],
    /// 1 = attend, 0 = padding; `None` means all ones.
    pub attention_mask: Option<&'a [i32]>,
    /// Segment ids; `None` means all zeros.
    pub token_type_ids: Option<&'a [i32]>,
    /// B.
    pub batch: usize,
    /// T.
    pub seq_len: usize,
}

impl<'a> Batch<'a> {
    /// A batch of `batch` rows of `seq_len` ids, without mask or types.
    pub fn new(input_ids: &'a [i32], batch: usize, seq_len: usize) -> Self {
        Batch { input_ids, attention_mask: None, token_type_ids: None, batch, seq_len }
    }

    /// B·T, checked for overflow and emptiness.
    pub fn tokens(&self) -> Result<usize> {
        if self.batch == 0 || self.seq_len == 0 {
            return Err(Error::arg(format!("empty batch: batch {} x seq_len {}", self.batch, self.seq_len)));
        }
        self.batch
            .checked_mul(self.seq_len)
            .ok_or_else(|| Error::arg(format!("batch {} x seq_len {} overflows", self.batch, self.seq_len)))
    }

    /// Checks lengths and ranges against a model config: ids < vocab_size, types <
    /// type_vocab_size, mask ∈ {0, 1}, seq_len ≤ max_position_embeddings.
    pub fn validate(&self, cfg: &ElectraConfig) -> Result<usize> {
        let n = self.tokens()?;
        if self.seq_len > cfg.max_position_embeddings {
            return Err(Error::arg(format!(
                "seq_len {} exceeds max_position_embeddings {}",
                self.seq_len, cfg.max_position_embeddings
            )));
        }
        let check_len = |name: &str, len: usize| {
            if len != n {
                Err(Error::Shape { what: name.to_string(), expected: vec![self.batch, self.seq_len], got: vec![len] })
            } else {
                Ok(())
            }
        };
        check_len("input_ids", self.input_ids.len())?;
        if let Some((i, &id)) =
            self.input_ids.iter().enumerate().find(|(_, &id)| id < 0 || id as usize >= cfg.vocab_size)
        {
            return Err(Error::arg(format!("input_ids[{i}] = {id} is outside the vocabulary [0, {})", cfg.vocab_size)));
        }
        if let Some(m) = self.attention_mask {
            check_len("attention_mask", m.len())?;
            if let Some((i, &v)) = m.iter().enumerate().find(|(_, &v)| v != 0 && v != 1) {
                return Err(Error::arg(format!("attention_mask[{i}] = {v}: must be 0 or 1")));
            }
        }
        if let Some(t) = self.token_type_ids {
            check_len("token_type_ids", t.len())?;
            if let Some((i, &v)) = t.iter().enumerate().find(|(_, &v)| v < 0 || v as usize >= cfg.type_vocab_size) {
                return Err(Error::arg(format!(
                    "token_type_ids[{i}] = {v} is outside [0, {}) (type_vocab_size)",
                    cfg.type_vocab_size
                )));
            }
        }
        Ok(n)
    }
}

/// Inference state over a shared model.
pub struct Session {
    model: Arc<Model>,
    pool: Arc<rayon::ThreadPool>,
    disc_acts: EncoderActs,
    gen_acts: EncoderActs,
    disc_head: DiscHeadActs,
    gen_head: GenHeadActs,
    cls_head: crate::model::classifier::ClsHeadActs,
}

fn check_out(out: &[f32], needed: usize) -> Result<()> {
    if out.len() < needed {
        return Err(Error::BufferTooSmall { needed, got: out.len() });
    }
    Ok(())
}

impl Session {
    /// A session over `model` with one worker thread per core.
    pub fn new(model: Arc<Model>) -> Self {
        Self::with_threads(model, 0).expect("a thread pool with the default size")
    }

    /// A session over `model` whose computations run on its own pool of `threads` workers
    /// (0: one per core). Results do not depend on the thread count.
    pub fn with_threads(model: Arc<Model>, threads: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("electra-session-{i}"))
            .build()
            .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
        Ok(Session {
            pool: Arc::new(pool),
            model,
            disc_acts: EncoderActs::new(false),
            gen_acts: EncoderActs::new(false),
            disc_head: DiscHeadActs::default(),
            gen_head: GenHeadActs::default(),
            cls_head: Default::default(),
        })
    }

    /// Worker threads of this session's pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The model this session runs.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    fn run_disc(&mut self, batch: &Batch) -> Result<usize> {
        let d = self.model.disc.as_ref().ok_or_else(|| Error::Unsupported("the model has no discriminator".into()))?;
        let n = batch.validate(&d.config)?;
        d.encoder.forward_with(
            &self.model.params.data,
            Some(self.model.inout_weights()),
            &mut self.disc_acts,
            batch.input_ids,
            batch.token_type_ids,
            batch.attention_mask,
            batch.batch,
            batch.seq_len,
        );
        Ok(n)
    }

    /// Raw replaced-token logits, `[B, T]` into `out[..B·T]` (logit > 0: "replaced").
    pub fn discriminate(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let pool = self.pool.clone();
        pool.install(|| self.discriminate_inner(batch, out))
    }

    fn discriminate_inner(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let n = batch.tokens()?;
        check_out(out, n)?;
        self.run_disc(batch)?;
        let d = self.model.disc.as_ref().expect("checked");
        let hidden = self.disc_acts.output(&d.encoder);
        d.head.forward(&self.model.params.data, &mut self.disc_head, hidden, n);
        out[..n].copy_from_slice(&self.disc_head.logits[..n]);
        Ok(())
    }

    /// The discriminator's last hidden states, `[B, T, H]` into `out[..B·T·H]`.
    pub fn hidden_states(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let pool = self.pool.clone();
        pool.install(|| self.hidden_states_inner(batch, out))
    }

    fn hidden_states_inner(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let n = batch.tokens()?;
        // The discriminator's encoder, or a fine-tuned classifier's.
        let model = self.model.clone();
        let (cfg, enc) = match (&model.disc, &model.cls) {
            (Some(d), _) => (&d.config, &d.encoder),
            (None, Some(c)) => (&c.config, &c.encoder),
            (None, None) => {
                return Err(Error::Unsupported("the model has no discriminator or classifier encoder".into()))
            }
        };
        let h = cfg.hidden_size;
        check_out(out, n.checked_mul(h).ok_or_else(|| Error::arg("output size overflows"))?)?;
        batch.validate(cfg)?;
        let w = &model.params.data;
        enc.forward(
            w,
            &mut self.disc_acts,
            batch.input_ids,
            batch.token_type_ids,
            batch.attention_mask,
            batch.batch,
            batch.seq_len,
        );
        out[..n * h].copy_from_slice(&self.disc_acts.output(enc)[..n * h]);
        Ok(())
    }

    /// The generator's vocabulary logits, `[B, T, V]` into `out[..B·T·V]`.
    pub fn generator_logits(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let pool = self.pool.clone();
        pool.install(|| self.generator_logits_inner(batch, out))
    }

    fn generator_logits_inner(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let n = batch.tokens()?;
        let g = self.model.gen.as_ref().ok_or_else(|| Error::Unsupported("the model has no generator".into()))?;
        let v = g.config.vocab_size;
        check_out(out, n.checked_mul(v).ok_or_else(|| Error::arg("output size overflows"))?)?;
        batch.validate(&g.config)?;
        let w = &self.model.params.data;
        g.encoder.forward_with(
            w,
            Some(self.model.inout_weights()),
            &mut self.gen_acts,
            batch.input_ids,
            batch.token_type_ids,
            batch.attention_mask,
            batch.batch,
            batch.seq_len,
        );
        g.head.forward(w, &mut self.gen_head, self.gen_acts.output(&g.encoder), n);
        out[..n * v].copy_from_slice(&self.gen_head.logits[..n * v]);
        Ok(())
    }

    /// Replaced-token logits as an owned `[B, T]` array.
    pub fn discriminate_array(&mut self, batch: &Batch) -> Result<ndarray::Array2<f32>> {
        let mut out = vec![0.0; batch.tokens()?];
        self.discriminate(batch, &mut out)?;
        ndarray::Array2::from_shape_vec((batch.batch, batch.seq_len), out).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Sequence-classification logits, `[B, labels]` into `out[..B·labels]` (a model with a
    /// classification head: `ElectraForSequenceClassification`).
    pub fn classify(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let pool = self.pool.clone();
        pool.install(|| self.classify_inner(batch, out))
    }

    fn classify_inner(&mut self, batch: &Batch, out: &mut [f32]) -> Result<()> {
        let c =
            self.model.cls.as_ref().ok_or_else(|| Error::Unsupported("the model has no classification head".into()))?;
        let l = c.num_labels;
        batch.tokens()?;
        check_out(out, batch.batch.checked_mul(l).ok_or_else(|| Error::arg("output size overflows"))?)?;
        batch.validate(&c.config)?;
        let w = &self.model.params.data;
        let (b, t) = (batch.batch, batch.seq_len);
        let inout = Some(self.model.inout_weights());
        c.encoder.forward_with(
            w,
            inout,
            &mut self.disc_acts,
            batch.input_ids,
            batch.token_type_ids,
            batch.attention_mask,
            b,
            t,
        );
        c.head.forward(w, &mut self.cls_head, self.disc_acts.output(&c.encoder), b, t);
        out[..b * l].copy_from_slice(&self.cls_head.logits[..b * l]);
        Ok(())
    }
}
