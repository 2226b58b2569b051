//! Losses with their gradients: softmax cross-entropy (the generator's masked LM) and sigmoid
//! binary cross-entropy (the discriminator's replaced-token detection), both as weighted means
//! with the original code's `Σw + 1e-6` denominator. Cross-entropy rows run in parallel with
//! SIMD exponentials; per-row losses are summed in row order.

use super::simd;

/// Cross-entropy of `m` rows of `v` logits against `targets`, each row weighted equally:
/// `Σ CE / denom` (`denom` = `m + 1e-6` for this batch's mean; the whole step's count when the
/// batch is one of several micro-batches or ranks). Overwrites the logits with their gradient
/// `scale·(softmax − onehot)/denom` (no second `[m, v]` buffer) and returns (loss, number of
/// rows whose argmax equals the target).
pub fn cross_entropy_in_place(
    logits: &mut [f32],
    targets: &[i32],
    m: usize,
    v: usize,
    scale: f32,
    denom: f64,
) -> (f32, usize) {
    let k = (scale as f64 / denom) as f32;
    let targets = &targets[..m];
    let rows: Vec<(f64, bool)> = super::par::map_chunks(&mut logits[..m * v], v.max(1), |i, row| {
        let tgt = targets[i];
        let (loss, correct, lse) = row_loss(row, tgt as usize);
        simd::scaled_exp_inplace(row, lse as f32, k);
        row[tgt as usize] -= k;
        (loss, correct)
    });
    let total: f64 = rows.iter().map(|r| r.0).sum();
    ((total / denom) as f32, rows.iter().filter(|r| r.1).count())
}

/// (loss, argmax == target, log-sum-exp) of one row.
fn row_loss(row: &[f32], tgt: usize) -> (f64, bool, f64) {
    let max = simd::max(row);
    let arg = row.iter().position(|&x| x == max).unwrap_or(0);
    let lse = max as f64 + (simd::sum_exp(row, max) as f64).ln();
    (lse - row[tgt] as f64, arg == tgt, lse)
}

/// Weighted sigmoid BCE over `logits` with 0/1 `labels` and 0/1 `weights`: `Σ w·bce / denom`
/// (`denom` = `Σw + 1e-6` for this batch's mean, see [`crate::backend::mean_denominator`]). Writes
/// `dlogits = scale·w·(σ(x) − y)/denom` when given, and returns (loss, number of weighted tokens
/// classified correctly).
pub fn binary_cross_entropy(
    logits: &[f32],
    labels: &[f32],
    weights: &[f32],
    dlogits: Option<&mut [f32]>,
    scale: f32,
    denom: f64,
) -> (f32, usize) {
    let mut total = 0.0f64;
    let mut correct = 0;
    for (i, (&x, &y)) in logits.iter().zip(labels).enumerate() {
        let w = weights[i] as f64;
        let (xd, yd) = (x as f64, y as f64);
        // max(x, 0) − x·y + log(1 + e^−|x|): stable for any x.
        let l = xd.max(0.0) - xd * yd + (-xd.abs()).exp().ln_1p();
        total += w * l;
        if w > 0.0 && ((x > 0.0) == (y > 0.5)) {
            correct += 1;
        }
    }
    if let Some(d) = dlogits {
        for (i, g) in d.iter_mut().enumerate().take(logits.len()) {
            let s = 1.0 / (1.0 + (-(logits[i] as f64)).exp());
            *g = (scale as f64 * weights[i] as f64 * (s - labels[i] as f64) / denom) as f32;
        }
    }
    ((total / denom) as f32, correct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mean_denominator;

    fn fd_check(f: impl Fn(&[f32]) -> f32, x: &[f32], g: &[f32]) {
        for i in 0..x.len() {
            let mut a = x.to_vec();
            let mut b = x.to_vec();
            a[i] += 1e-3;
            b[i] -= 1e-3;
            let fd = (f(&a) - f(&b)) / 2e-3;
            assert!((fd - g[i]).abs() < 1e-3, "element {i}: fd {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn cross_entropy_gradient() {
        let logits: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin()).collect();
        let targets = [1, 3, 0];
        let mut g = logits.clone();
        let den = mean_denominator(3);
        cross_entropy_in_place(&mut g, &targets, 3, 4, 2.0, den);
        fd_check(|x| 2.0 * cross_entropy_in_place(&mut x.to_vec(), &targets, 3, 4, 1.0, den).0, &logits, &g);
    }

    #[test]
    fn bce_gradient() {
        let logits = [0.3f32, -1.2, 2.5, 0.0, -0.7];
        let labels = [1.0f32, 0.0, 0.0, 1.0, 1.0];
        let weights = [1.0f32, 1.0, 1.0, 0.0, 1.0];
        let mut g = vec![0.0; 5];
        let den = mean_denominator(4);
        binary_cross_entropy(&logits, &labels, &weights, Some(&mut g), 3.0, den);
        fd_check(|x| 3.0 * binary_cross_entropy(x, &labels, &weights, None, 1.0, den).0, &logits, &g);
        assert_eq!(g[3], 0.0);
    }
}
