//! Gumbel-max sampling of the generator's replacements, as the original ELECTRA code draws them.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Gumbel-max sampling from softmax(logits / temperature) for `m` rows of `v` logits:
/// argmax(logits/τ + g), g = −log(−log(u + 1e−9) + 1e−9), u ~ U[0, 1) drawn row by row, column
/// by column from `rng`, as the original.
pub fn gumbel_argmax(rng: &mut ChaCha8Rng, logits: &[f32], m: usize, v: usize, temperature: f32, out: &mut Vec<i32>) {
    out.clear();
    for r in 0..m {
        let row = &logits[r * v..(r + 1) * v];
        let (mut best, mut arg) = (f32::NEG_INFINITY, 0usize);
        for (j, &x) in row.iter().enumerate() {
            let u: f32 = rng.random();
            let g = -(-(u + 1e-9).ln() + 1e-9).ln();
            let s = x / temperature + g;
            if s > best {
                best = s;
                arg = j;
            }
        }
        out.push(arg as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn gumbel_follows_the_softmax() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let logits = [0.0f32, (3.0f32).ln(), f32::NEG_INFINITY];
        let mut counts = [0usize; 3];
        let mut out = Vec::new();
        for _ in 0..20000 {
            gumbel_argmax(&mut rng, &logits, 1, 3, 1.0, &mut out);
            counts[out[0] as usize] += 1;
        }
        let p1 = counts[1] as f64 / 20000.0;
        assert!((p1 - 0.75).abs() < 0.02, "{counts:?}");
        assert_eq!(counts[2], 0);
    }
}
