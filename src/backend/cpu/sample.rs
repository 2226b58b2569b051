//! Gumbel-max sampling of the generator's replacements, as the original ELECTRA code draws them.

use crate::backend::KeystreamAt;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Rows per task: one row of a 30k vocabulary is ~60k logarithms, so a few rows per task keep
/// the hand-offs negligible while a step's few hundred rows still spread over every worker.
const ROWS_PER_TASK: usize = 4;

/// Gumbel-max sampling from softmax(logits / temperature) for `m` rows of `v` logits into
/// `out[..m]`: argmax(logits/τ + g), g = −log(−log(u + 1e−9) + 1e−9), with the uniforms of row
/// `r`, column `j` taken from keystream word `at.word_pos + r·v + j`: the words one generator
/// drawing row by row, column by column (as the original) would give them, so the rows can be
/// split over threads and the samples stay the same for any thread count.
pub fn gumbel_argmax(at: KeystreamAt, logits: &[f32], m: usize, v: usize, temperature: f32, out: &mut Vec<i32>) {
    out.clear();
    out.resize(m, 0);
    super::par::chunks_mut(&mut out[..], ROWS_PER_TASK, |c, rows| {
        let first = c * ROWS_PER_TASK;
        // Each f32 draw reads exactly one 32-bit word, so row `first` starts first·v words on.
        let mut rng = KeystreamAt { word_pos: at.word_pos + (first * v) as u64, ..at }.rng();
        for (k, o) in rows.iter_mut().enumerate() {
            let r = first + k;
            *o = row_argmax(&mut rng, &logits[r * v..(r + 1) * v], temperature) as i32;
        }
    });
}

/// The Gumbel-max sample of one row, drawing its `row.len()` uniforms from `rng` in order.
fn row_argmax(rng: &mut ChaCha8Rng, row: &[f32], temperature: f32) -> usize {
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
    arg
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
            let at = crate::backend::keystream::take(&mut rng, 3).unwrap();
            gumbel_argmax(at, &logits, 1, 3, 1.0, &mut out);
            counts[out[0] as usize] += 1;
        }
        let p1 = counts[1] as f64 / 20000.0;
        assert!((p1 - 0.75).abs() < 0.02, "{counts:?}");
        assert_eq!(counts[2], 0);
    }

    /// Rows split over threads draw exactly what one generator drawing row by row would.
    #[test]
    fn rows_in_parallel_draw_the_sequential_uniforms() {
        let (m, v) = (13, 257);
        let logits: Vec<f32> = (0..m * v).map(|i| ((i * 7919) % 1000) as f32 / 300.0).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        rng.set_stream(5);
        let at = KeystreamAt::of(&rng).unwrap();
        let want: Vec<i32> = (0..m).map(|r| row_argmax(&mut rng, &logits[r * v..(r + 1) * v], 0.7) as i32).collect();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut got = Vec::new();
            pool.install(|| gumbel_argmax(at, &logits, m, v, 0.7, &mut got));
            assert_eq!(got, want, "{threads} threads");
        }
    }
}
