//! Replaced-token corruption, one code path for training and held-out evaluation: replacements
//! for the masked positions, drawn by the backend from the generator's logits, make the
//! discriminator's input and its labels.

use crate::backend::{keystream, Backend, Buf};
use crate::error::{Error, Result};
use rand_chacha::ChaCha8Rng;

/// Where the replacements come from.
pub(crate) enum Draw<'a> {
    /// Gumbel-max samples from softmax(logits / `temperature`), from `rng`'s stream.
    Gumbel { rng: &'a mut ChaCha8Rng, temperature: f32 },
    /// These ids, one per masked position (tests against fixed draws).
    Given(&'a [i32]),
}

/// The generator's logits at the masked positions, `[M, V]` on `be`.
pub(crate) struct MaskedLogits<'a> {
    pub be: &'a dyn Backend,
    pub logits: &'a Buf,
    pub vocab: usize,
}

/// The discriminator's input and labels, and the replacements that made them (host memory,
/// reused from batch to batch).
#[derive(Default)]
pub(crate) struct Corruption {
    /// One id per masked position.
    pub sampled: Vec<i32>,
    /// The original ids with the replacements at the masked positions `[N]`.
    pub ids: Vec<i32>,
    /// 1 where the id differs from the original, else 0 `[N]`: a replacement that draws the
    /// original id is no replacement.
    pub labels: Vec<f32>,
}

impl Corruption {
    /// Draws a replacement for each of `positions` (flat indices into `original`) and builds
    /// the discriminator's input and labels. No gradient flows through the draw.
    pub(crate) fn build(
        &mut self,
        from: MaskedLogits,
        draw: Draw,
        original: &[i32],
        positions: &[usize],
    ) -> Result<()> {
        let m = positions.len();
        match draw {
            Draw::Given(ids) => {
                if ids.len() != m {
                    return Err(Error::Shape { what: "sampled ids".into(), expected: vec![m], got: vec![ids.len()] });
                }
                self.sampled.clear();
                self.sampled.extend_from_slice(ids);
            }
            Draw::Gumbel { rng, temperature } => {
                let at = keystream::take(rng, (m as u64) * (from.vocab as u64))?;
                from.be.gumbel_argmax(&mut self.sampled, from.logits, m, from.vocab, temperature, at)?
            }
        }
        self.ids.clear();
        self.ids.extend_from_slice(original);
        for (&p, &s) in positions.iter().zip(&self.sampled) {
            let Some(id) = self.ids.get_mut(p) else {
                return Err(Error::arg(format!(
                    "masked position {p} is outside the batch ({} tokens)",
                    original.len()
                )));
            };
            *id = s;
        }
        self.labels.clear();
        self.labels.extend(self.ids.iter().zip(original).map(|(a, b)| (a != b) as i32 as f32));
        Ok(())
    }
}
