//! `Batch`: the input of inference, pre-training and fine-tuning alike — token ids `[B, T]` with
//! an optional attention mask and token types, borrowed from the caller, and its validation
//! against a model's config.

use crate::config::ElectraConfig;
use crate::error::{Error, Result};

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
