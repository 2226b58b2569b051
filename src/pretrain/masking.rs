//! Dynamic masking, as the original ELECTRA code does it (with one deliberate difference:
//! positions are drawn without replacement). It runs on the host from the trainer's RNG, so the
//! masked positions are the same whatever backend trains; the generator's samples are drawn by
//! [`crate::backend::Backend::gumbel_argmax`] from the same stream.

use super::options::TrainOptions;
use crate::batch::Batch;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The masked positions of one batch and the generator's input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Masking {
    /// Flat indices `b·T + t` of the chosen positions, row by row.
    pub positions: Vec<usize>,
    /// Input ids with [MASK] at 85% of the chosen positions (`[B, T]`).
    pub generator_input: Vec<i32>,
}

/// Round half to even, as `tf.round`.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// How [`mask_batch`] chooses positions.
#[derive(Clone, Copy, Debug)]
pub struct MaskRule<'a> {
    /// Share of a row's real tokens to mask.
    pub prob: f64,
    /// Most positions per row (capped at the row's length).
    pub budget: usize,
    /// The [MASK] id.
    pub mask_id: i32,
    /// Ids never masked.
    pub special: &'a [i32],
}

impl<'a> MaskRule<'a> {
    /// The rule of a trainer's options.
    pub fn of(opts: &'a TrainOptions) -> Self {
        MaskRule {
            prob: opts.mask_prob,
            budget: opts.max_predictions(),
            mask_id: opts.mask_token_id,
            special: &opts.special_token_ids,
        }
    }
}

/// Chooses, per row, k = max(1, min(budget, round(mask_prob·real tokens))) distinct positions
/// among real, non-special tokens, and replaces each by [MASK] with probability 0.85 (kept
/// otherwise; no random-token swap). The original draws positions *with* replacement and
/// averages colliding ids when it scatters the samples back; we draw without replacement on
/// purpose, so every masked slot is a distinct token.
pub fn mask_batch(rng: &mut ChaCha8Rng, batch: &Batch, rule: &MaskRule) -> Masking {
    let (ids, attention_mask, b, t) = (batch.input_ids, batch.attention_mask, batch.batch, batch.seq_len);
    let (mask_prob, budget, mask_id, special) = (rule.prob, rule.budget.min(t), rule.mask_id, rule.special);
    let mut out = Masking { positions: Vec::new(), generator_input: ids[..b * t].to_vec() };
    let mut cand = Vec::with_capacity(t);
    for r in 0..b {
        let row = r * t..(r + 1) * t;
        let real = |i: usize| attention_mask.is_none_or(|m| m[i] != 0);
        let num_tokens = row.clone().filter(|&i| real(i)).count();
        cand.clear();
        cand.extend(row.filter(|&i| real(i) && !special.contains(&ids[i])));
        let k = (round_half_even(num_tokens as f64 * mask_prob) as usize).clamp(1, budget.max(1)).min(cand.len());
        // Partial Fisher–Yates: the first k entries become a uniform sample without replacement.
        for j in 0..k {
            let pick = rng.random_range(j..cand.len());
            cand.swap(j, pick);
        }
        let chosen = &mut cand[..k];
        chosen.sort_unstable();
        for &p in chosen.iter() {
            if rng.random::<f32>() < 0.85 {
                out.generator_input[p] = mask_id;
            }
            out.positions.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn masks_distinct_real_nonspecial_positions() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (b, t) = (4, 40);
        let ids: Vec<i32> = (0..b * t).map(|i| if i % t == 0 { 101 } else { 1000 + i as i32 }).collect();
        let mask: Vec<i32> = (0..b * t).map(|i| (i % t < 30) as i32).collect();
        let batch = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: None, batch: b, seq_len: t };
        let rule = MaskRule { prob: 0.15, budget: 6, mask_id: 103, special: &[0, 101, 102, 103] };
        let m = mask_batch(&mut rng, &batch, &rule);
        assert_eq!(m.positions.len(), b * 4); // round(30·0.15) = round(4.5) = 4 (half to even)
        for w in m.positions.windows(2) {
            assert!(w[0] != w[1]);
        }
        for &p in &m.positions {
            assert!(p % t != 0 && mask[p] == 1);
        }
        let masked = m.positions.iter().filter(|&&p| m.generator_input[p] == 103).count();
        assert!(masked > 0 && masked <= m.positions.len());
        let mut rng2 = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(m, mask_batch(&mut rng2, &batch, &rule));
    }

    #[test]
    fn tf_rounding() {
        assert_eq!(round_half_even(4.5), 4.0);
        assert_eq!(round_half_even(5.5), 6.0);
        assert_eq!(round_half_even(2.4), 2.0);
    }
}
