//! Whether pre-training is teaching the encoder anything a downstream task can use, measured
//! while it runs (`electra pretrain` at every `--eval-every`, beside the held-out AUC):
//!
//! - **[CLS] cosine**: the mean pairwise cosine of the final [CLS] states of held-out rows. Near 1
//!   the encoder gives every text the same [CLS] state (a collapse: a [CLS] head cannot learn);
//!   random init sits near 0.9 for small models, so watch it fall or rise against step 0.
//! - **Attention entropy** per layer (nats): near 0 the heads attend one-hot (seen in a collapsed
//!   run); ln(T) is uniform attention.
//! - **Top-direction share** of the final token states: the share of their variance (about the
//!   mean) along the first principal direction. Random init spreads it (0.07-0.23 for the tiny
//!   preset); a tiny discriminator pre-trained for minutes puts 0.55 to 1.0 of it on one direction
//!   that tracks token frequency, and such an encoder fine-tunes worse than random weights
//!   (docs/REPLICATION.md).
//! - **Linear probes**: a multinomial logistic regression on frozen features of labelled texts
//!   (mean-pooled states and the [CLS] state), trained on one file and scored on another. A probe
//!   rather than a fine-tune: it measures what the frozen representation already encodes, runs in
//!   seconds at every evaluation, is deterministic (full-batch, zero init, no sampling) and has no
//!   learning-rate interplay with the encoder; the full fine-tune (`electra finetune`) stays the
//!   downstream truth. Step 0's probe is the random-init baseline the later ones must beat.

use crate::data::corpus::TokenBatch;
use crate::error::{Error, Result};
use crate::session::{Batch, Session};

/// Held-out statistics of the representations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepresentationStats {
    /// Mean pairwise cosine of the final [CLS] (first-token) states.
    pub cls_cosine: f64,
    /// Mean attention entropy per layer (nats).
    pub attention_entropy: Vec<f64>,
    /// Share of the final real-token states' variance along their first principal direction
    /// (at most [`ANISOTROPY_TOKENS`] tokens, in order).
    pub top_direction_share: f64,
}

/// Tokens [`RepresentationStats::top_direction_share`] reads at most.
///
/// cbindgen:ignore
pub const ANISOTROPY_TOKENS: usize = 4096;

/// [`RepresentationStats`] over held-out batches (rows whose first token is [CLS]).
pub fn representation_stats(s: &mut Session, batches: &[TokenBatch]) -> Result<RepresentationStats> {
    let (mut cls, mut tokens, mut dim) = (Vec::new(), Vec::new(), 0);
    let mut entropy: Vec<f64> = Vec::new();
    for held_out in batches {
        let r = s.representations(&held_out.as_model_input())?;
        let (b, t) = (held_out.batch, held_out.seq_len);
        dim = r.hidden.len() / (b * t).max(1);
        for row in 0..b {
            cls.extend_from_slice(&r.hidden[row * t * dim..(row * t + 1) * dim]);
        }
        for (state, &real) in r.hidden.chunks_exact(dim.max(1)).zip(&held_out.attention_mask) {
            if real != 0 && tokens.len() < ANISOTROPY_TOKENS * dim {
                tokens.extend(state.iter().map(|&v| v as f64));
            }
        }
        entropy.resize(r.entropy.len(), 0.0);
        for (e, x) in entropy.iter_mut().zip(&r.entropy) {
            *e += x / batches.len() as f64;
        }
    }
    Ok(RepresentationStats {
        cls_cosine: mean_pairwise_cosine(&cls, dim),
        attention_entropy: entropy,
        top_direction_share: top_direction_share(&mut tokens, dim),
    })
}

/// Share of the variance of the rows of `x` (`dim` wide; centred in place) along their first
/// principal direction: λ₁ / Σλ of their covariance, λ₁ by power iteration (deterministic start,
/// 100 rounds: the share converges far faster than the direction). 0 for fewer than two rows.
pub fn top_direction_share(x: &mut [f64], dim: usize) -> f64 {
    let n = x.len().checked_div(dim).unwrap_or(0);
    if n < 2 {
        return 0.0;
    }
    let mut mean = vec![0.0; dim];
    for row in x.chunks_exact(dim) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v / n as f64);
    }
    for row in x.chunks_exact_mut(dim) {
        row.iter_mut().zip(&mean).for_each(|(v, m)| *v -= m);
    }
    let total: f64 = x.iter().map(|v| v * v).sum();
    if total <= 0.0 {
        return 0.0;
    }
    // v ← Xᵀ(X v) / |…|; λ₁ = |X v|² for the unit v.
    let mut v: Vec<f64> = (0..dim).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
    let mut top = 0.0;
    for _ in 0..100 {
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        let mut next = vec![0.0; dim];
        top = 0.0;
        for row in x.chunks_exact(dim) {
            let p: f64 = row.iter().zip(&v).map(|(a, b)| a * b).sum();
            top += p * p;
            next.iter_mut().zip(row).for_each(|(n, a)| *n += p * a);
        }
        if next.iter().all(|&a| a == 0.0) {
            break;
        }
        v = next;
    }
    top / total
}

/// Mean cosine over all pairs of distinct rows of `x` (rows of `dim`): (|Σ uᵢ|² − n) / (n(n − 1))
/// for the unit vectors uᵢ, in O(n·dim). 0 for fewer than two rows; a zero row counts as 0.
pub fn mean_pairwise_cosine(x: &[f32], dim: usize) -> f64 {
    let n = x.len().checked_div(dim).unwrap_or(0);
    if n < 2 {
        return 0.0;
    }
    let mut sum = vec![0.0f64; dim];
    let mut units = 0.0;
    for row in x.chunks_exact(dim) {
        let norm = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        if norm > 0.0 {
            units += 1.0;
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += v as f64 / norm;
            }
        }
    }
    let total = sum.iter().map(|s| s * s).sum::<f64>();
    (total - units) / (n as f64 * (n as f64 - 1.0))
}

/// Labelled rows for a probe: token ids with [CLS] first and [SEP] last, each with its label.
#[derive(Clone, Debug, Default)]
pub struct LabelledRows {
    /// `(label, ids)`.
    pub rows: Vec<(usize, Vec<i32>)>,
    /// Number of labels.
    pub num_labels: usize,
}

/// Dev accuracy of the two probes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProbeAccuracy {
    /// On the mean of the final hidden states over real tokens.
    pub mean_pooled: f64,
    /// On the final [CLS] state.
    pub cls: f64,
}

/// Frozen features of rows: mean-pooled and [CLS] final states, `[rows, H]` each. One row per
/// forward, unpadded: a feature must not depend on which rows share its batch (padding and
/// batch shape change the rounding of a row's states, and a probe on standardised features can
/// read such noise).
fn features(s: &mut Session, data: &LabelledRows) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let (mut mean, mut cls, mut dim) = (Vec::new(), Vec::new(), 0);
    for (_, ids) in &data.rows {
        let t = ids.len();
        let batch = Batch { input_ids: ids, attention_mask: None, token_type_ids: None, batch: 1, seq_len: t };
        let r = s.representations(&batch)?;
        dim = r.hidden.len() / t.max(1);
        cls.extend(r.hidden[..dim].iter().map(|&v| v as f64));
        let mut m = vec![0.0f64; dim];
        for tok in r.hidden.chunks_exact(dim) {
            for (a, &v) in m.iter_mut().zip(tok) {
                *a += v as f64;
            }
        }
        mean.extend(m.iter().map(|a| a / t.max(1) as f64));
    }
    Ok((mean, cls, dim))
}

/// Trains both probes on `train` and scores them on `eval`.
pub fn linear_probes(s: &mut Session, train: &LabelledRows, eval: &LabelledRows) -> Result<ProbeAccuracy> {
    if train.rows.is_empty() || eval.rows.is_empty() || train.num_labels < 2 {
        return Err(Error::arg("a probe needs labelled training and evaluation rows of at least two labels"));
    }
    let labels = |d: &LabelledRows| d.rows.iter().map(|(y, _)| *y).collect::<Vec<_>>();
    let (ytr, yev) = (labels(train), labels(eval));
    let classes = train.num_labels.max(eval.num_labels);
    let (tr_mean, tr_cls, dim) = features(s, train)?;
    let (ev_mean, ev_cls, _) = features(s, eval)?;
    let mean_pooled = LogisticProbe::fit(&tr_mean, &ytr, dim, classes).accuracy(&ev_mean, &yev);
    let cls = LogisticProbe::fit(&tr_cls, &ytr, dim, classes).accuracy(&ev_cls, &yev);
    Ok(ProbeAccuracy { mean_pooled, cls })
}

/// Multinomial logistic regression on standardised features (the training rows' mean and
/// standard deviation per feature), L2-regularised, fitted by full-batch Adam from zero: no
/// randomness, so a probe of the same weights gives the same accuracy.
pub struct LogisticProbe {
    dim: usize,
    classes: usize,
    shift: Vec<f64>,
    scale: Vec<f64>,
    /// `[classes, dim + 1]`, the bias last.
    w: Vec<f64>,
}

impl LogisticProbe {
    const STEPS: usize = 300;
    const LR: f64 = 0.05;
    const L2: f64 = 1e-3;

    /// Fits rows `x` (`[n, dim]`) with labels `y` (< `classes`).
    pub fn fit(x: &[f64], y: &[usize], dim: usize, classes: usize) -> Self {
        let n = y.len();
        let mut shift = vec![0.0; dim];
        let mut scale = vec![0.0; dim];
        for row in x.chunks_exact(dim) {
            for (s, v) in shift.iter_mut().zip(row) {
                *s += v / n as f64;
            }
        }
        for row in x.chunks_exact(dim) {
            for ((q, v), m) in scale.iter_mut().zip(row).zip(&shift) {
                *q += (v - m) * (v - m) / n as f64;
            }
        }
        scale.iter_mut().for_each(|q| *q = 1.0 / q.sqrt().max(1e-6));
        let mut p = LogisticProbe { dim, classes, shift, scale, w: vec![0.0; classes * (dim + 1)] };
        let xs: Vec<Vec<f64>> = x.chunks_exact(dim).map(|r| p.standardise(r)).collect();
        let (mut m, mut v) = (vec![0.0; p.w.len()], vec![0.0; p.w.len()]);
        let mut probs = vec![0.0; classes];
        for step in 1..=Self::STEPS {
            let mut g: Vec<f64> = p.w.iter().map(|w| Self::L2 * w).collect();
            for (row, &label) in xs.iter().zip(y) {
                p.softmax(row, &mut probs);
                for (c, pc) in probs.iter().enumerate() {
                    let d = (pc - f64::from(u8::from(c == label))) / n as f64;
                    let gc = &mut g[c * (dim + 1)..(c + 1) * (dim + 1)];
                    for (gi, xi) in gc.iter_mut().zip(row) {
                        *gi += d * xi;
                    }
                    gc[dim] += d;
                }
            }
            let (b1, b2) = (0.9f64, 0.999f64);
            let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
            for i in 0..p.w.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                p.w[i] -= Self::LR * (m[i] / c1) / ((v[i] / c2).sqrt() + 1e-8);
            }
        }
        p
    }

    fn standardise(&self, row: &[f64]) -> Vec<f64> {
        row.iter().zip(&self.shift).zip(&self.scale).map(|((v, m), s)| (v - m) * s).collect()
    }

    fn softmax(&self, row: &[f64], out: &mut [f64]) {
        let d = self.dim;
        for (c, o) in out.iter_mut().enumerate() {
            let w = &self.w[c * (d + 1)..(c + 1) * (d + 1)];
            *o = w[d] + w[..d].iter().zip(row).map(|(a, b)| a * b).sum::<f64>();
        }
        let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = out
            .iter_mut()
            .map(|o| {
                *o = (*o - max).exp();
                *o
            })
            .sum();
        out.iter_mut().for_each(|o| *o /= z);
    }

    /// Share of rows whose most probable class is their label.
    pub fn accuracy(&self, x: &[f64], y: &[usize]) -> f64 {
        let mut probs = vec![0.0; self.classes];
        let right = x
            .chunks_exact(self.dim)
            .zip(y)
            .filter(|(row, &label)| {
                self.softmax(&self.standardise(row), &mut probs);
                let top = (0..self.classes).max_by(|&a, &b| probs[a].total_cmp(&probs[b])).unwrap_or(0);
                top == label
            })
            .count();
        right as f64 / y.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_direction_share_of_a_line_a_plane_and_a_cloud() {
        // Points on a line through (1, 2, 3): all variance on one direction.
        let mut line: Vec<f64> = (0..50).flat_map(|k| [k as f64, 2.0 * k as f64 + 1.0, 3.0 * k as f64 - 4.0]).collect();
        assert!((top_direction_share(&mut line, 3) - 1.0).abs() < 1e-9);
        // Two orthogonal directions with variances 4 : 1.
        let mut plane: Vec<f64> = (0..40)
            .flat_map(|k| {
                let (a, b) = if k % 2 == 0 { (2.0, 0.0) } else { (-2.0, 0.0) };
                let c = if k % 4 < 2 { 1.0 } else { -1.0 };
                [a + 5.0, b + c, 7.0]
            })
            .collect();
        assert!(
            (top_direction_share(&mut plane, 3) - 0.8).abs() < 1e-6,
            "{}",
            top_direction_share(&mut plane.clone(), 3)
        );
        // An isotropic cloud (the 8 corners of a cube): 1/3 per direction.
        let mut cube: Vec<f64> =
            (0..8).flat_map(|k| [(k & 1) as f64, ((k >> 1) & 1) as f64, (k >> 2) as f64]).collect();
        assert!((top_direction_share(&mut cube, 3) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(top_direction_share(&mut [1.0, 2.0], 2), 0.0);
    }

    #[test]
    fn cosine_of_identical_and_opposite_rows() {
        assert!((mean_pairwise_cosine(&[1.0, 2.0, 2.0, 4.0, 3.0, 6.0], 2) - 1.0).abs() < 1e-12);
        assert!((mean_pairwise_cosine(&[1.0, 0.0, -1.0, 0.0], 2) + 1.0).abs() < 1e-12);
        // Orthogonal rows: 0; against the O(n²) definition on a mixed set.
        assert!(mean_pairwise_cosine(&[1.0, 0.0, 0.0, 1.0], 2).abs() < 1e-12);
        let x = [0.3f32, -1.0, 2.0, 0.5, 0.1, 0.2, -0.7, 0.4, 1.5, 1.0, 1.0, -2.0];
        let rows: Vec<&[f32]> = x.chunks(3).collect();
        let cos = |a: &[f32], b: &[f32]| {
            let d: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let n = |v: &[f32]| v.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
            d / (n(a) * n(b))
        };
        let (mut s, mut k) = (0.0, 0);
        for i in 0..4 {
            for j in 0..4 {
                if i != j {
                    s += cos(rows[i], rows[j]);
                    k += 1;
                }
            }
        }
        assert!((mean_pairwise_cosine(&x, 3) - s / k as f64).abs() < 1e-12);
    }

    #[test]
    fn probe_separates_separable_classes_and_not_noise() {
        // Class = sign of feature 1 (feature 0 is noise): near 1 on held-out rows.
        let row = |i: usize| {
            [
                ((i * 37) % 11) as f64 - 5.0,
                if i.is_multiple_of(2) { 1.0 + (i % 5) as f64 } else { -1.0 - (i % 3) as f64 },
            ]
        };
        let (x, y): (Vec<f64>, Vec<usize>) =
            (0..200).map(|i| (row(i), i % 2)).fold((vec![], vec![]), |(mut x, mut y), (r, l)| {
                x.extend(r);
                y.push(l);
                (x, y)
            });
        let p = LogisticProbe::fit(&x[..300], &y[..150], 2, 2);
        assert!(p.accuracy(&x[300..], &y[150..]) > 0.95);
        // Labels independent of the features: about chance on held-out rows.
        let shuffled: Vec<usize> = (0..200).map(|i| (i * 7 / 3) % 2).collect();
        let p = LogisticProbe::fit(&x[..300], &shuffled[..150], 2, 2);
        let acc = p.accuracy(&x[300..], &shuffled[150..]);
        assert!(acc < 0.8, "{acc}");
    }
}
