//! Held-out evaluation of a generator + discriminator pair: mask and corrupt with the training
//! code (from a fixed seed, so evaluations at different steps see the same positions), then
//! measure the discriminator's ROC AUC and accuracy on real tokens and the generator's MLM
//! accuracy.

use super::corrupt::{Corruption, Draw, MaskedLogits};
use super::masking::{mask_batch, MaskRule};
use super::options::TrainOptions;
use crate::backend::{self, Buf};
use crate::batch::Batch;
use crate::data::corpus::TokenBatch;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::session::{Session, SessionOptions};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Held-out metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EvalStats {
    /// ROC AUC of the replaced-token logits over real tokens (0.5 = chance); `None` for a
    /// masked-LM model alone (the mlm objective).
    pub disc_auc: Option<f64>,
    /// Share of real tokens labelled correctly (logit > 0 ⇔ replaced); `None` without a
    /// discriminator.
    pub disc_accuracy: Option<f64>,
    /// Share of masked positions whose top generator prediction is the original token.
    pub mlm_accuracy: f64,
    /// Real tokens scored.
    pub tokens: usize,
    /// Share of real tokens that were replaced.
    pub replaced_fraction: f64,
}

/// ROC AUC by the rank-sum (Mann–Whitney) formula, ties sharing their mean rank. `None` when
/// one class is absent.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos) = (0.0f64, 0usize);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += mean_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = scores.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64))
}

/// Evaluates `model` on held-out `batches` (on `opts.device`): the generator's (or MLM model's)
/// accuracy at masked positions, and with a discriminator its AUC and accuracy on the sampled
/// replacements (drawn by the session's backend from the generator's logits, as in training).
pub fn evaluate(model: Arc<Model>, opts: &TrainOptions, batches: &[TokenBatch], seed: u64) -> Result<EvalStats> {
    let Some(gen) = model.gen() else {
        return Err(Error::Unsupported("evaluation needs a generator (or masked-LM model)".into()));
    };
    let has_disc = model.disc().is_some();
    let v = gen.config.vocab_size;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = Session::with_options(
        model.clone(),
        &SessionOptions {
            device: opts.device,
            threads: opts.threads,
            own_pool: opts.own_pool,
            max_memory_bytes: opts.max_memory_bytes,
            simd: opts.simd,
            tf32: opts.tf32,
            ..Default::default()
        },
    )?;
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    let (mut mlm_right, mut mlm_total) = (0usize, 0usize);
    let be = s.backend().clone();
    let (mut rows_buf, mut corruption) = (Buf::default(), Corruption::default());
    let mut real_tokens = 0usize;
    for held_out in batches {
        let (b, t) = (held_out.batch, held_out.seq_len);
        let (ids, mask) = (&held_out.input_ids, &held_out.attention_mask);
        let batch = held_out.as_model_input();
        real_tokens += mask.iter().filter(|&&x| x != 0).count();
        let m = mask_batch(&mut rng, &batch, &MaskRule::of(opts));
        let mut logits = vec![0.0; b * t * v];
        let gen_batch = Batch { input_ids: &m.generator_input, ..batch };
        s.generator_logits(&gen_batch, &mut logits)?;
        let mut rows = Vec::with_capacity(m.positions.len() * v);
        for &p in &m.positions {
            let row = &logits[p * v..(p + 1) * v];
            let top =
                row.iter().enumerate().fold((0, f32::NEG_INFINITY), |a, (j, &x)| if x > a.1 { (j, x) } else { a }).0;
            mlm_right += (top as i32 == ids[p]) as usize;
            mlm_total += 1;
            rows.extend_from_slice(row);
        }
        if !has_disc {
            continue;
        }
        backend::run(&*be, || {
            be.upload(&mut rows_buf, &rows)?;
            let logits = MaskedLogits { be: &*be, logits: &rows_buf, vocab: v };
            let draw = Draw::Gumbel { rng: &mut rng, temperature: opts.temperature };
            corruption.build(logits, draw, ids, &m.positions)
        })?;
        let mut d = vec![0.0; b * t];
        s.discriminate(&Batch { input_ids: &corruption.ids, ..batch }, &mut d)?;
        for i in 0..b * t {
            if mask[i] != 0 {
                scores.push(d[i]);
                labels.push(corruption.labels[i] != 0.0);
            }
        }
    }
    let tokens = real_tokens;
    let correct = scores.iter().zip(&labels).filter(|(s, l)| (**s > 0.0) == **l).count();
    Ok(EvalStats {
        disc_auc: has_disc.then(|| roc_auc(&scores, &labels).unwrap_or(0.5)),
        disc_accuracy: has_disc.then(|| correct as f64 / tokens.max(1) as f64),
        mlm_accuracy: mlm_right as f64 / mlm_total.max(1) as f64,
        tokens,
        replaced_fraction: labels.iter().filter(|&&l| l).count() as f64 / tokens.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::roc_auc;

    #[test]
    fn auc_known_values() {
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
        assert_eq!(roc_auc(&[1.0, 1.0], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
    }

    /// Both objectives evaluate; only the electra one reports discriminator metrics.
    #[test]
    fn evaluates_both_objectives() {
        use crate::pretrain::{Objective, TrainOptions, Trainer};
        let (b, t) = (2, 16);
        let ids: Vec<i32> = (0..b * t).map(|i| if i % t == 0 { 2 } else { 5 + (i * 7 % 40) as i32 }).collect();
        let mask: Vec<i32> = (0..b * t).map(|i| (i % t < 12) as i32).collect();
        let batch = crate::data::corpus::TokenBatch {
            input_ids: ids,
            attention_mask: mask,
            token_type_ids: vec![0; b * t],
            batch: b,
            seq_len: t,
        };
        for objective in [Objective::Electra, Objective::Mlm] {
            let opts = TrainOptions {
                objective,
                vocab_size: Some(48),
                max_seq_len: t,
                mask_token_id: 4,
                special_token_ids: vec![0, 1, 2, 3, 4],
                threads: 1,
                ..Default::default()
            };
            let tr = Trainer::new("tiny", opts).unwrap();
            let e =
                super::evaluate(std::sync::Arc::new(tr.model().unwrap()), &tr.opts, std::slice::from_ref(&batch), 1)
                    .unwrap();
            assert_eq!(e.tokens, 24);
            assert!((0.0..=1.0).contains(&e.mlm_accuracy));
            assert_eq!(e.disc_auc.is_some(), objective == Objective::Electra);
            assert_eq!(e.disc_accuracy.is_some(), objective == Objective::Electra);
        }
    }
}
