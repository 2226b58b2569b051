//! Gumbel-max sampling of the generator's replacements, as the original ELECTRA code draws them.

use crate::backend::keystream::{uniform_f32, Words, WORD_BLOCK};
use crate::backend::KeystreamAt;
#[cfg(test)]
use rand::Rng;
#[cfg(test)]
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
        let mut rng = Words::at(KeystreamAt { word_pos: at.word_pos + (first * v) as u64, ..at });
        for (k, o) in rows.iter_mut().enumerate() {
            let r = first + k;
            *o = row_argmax(&mut rng, &logits[r * v..(r + 1) * v], temperature) as i32;
        }
    });
}

/// The Gumbel-max sample of one row, drawing its `row.len()` uniforms from `rng` in order: the
/// same index as [`row_argmax_reference`], which takes two logarithms per column, while this
/// takes them only for the columns that could still win.
///
/// Why that is exact: with u = w·2⁻²⁴ from word w, 1 − u = k·2⁻²⁴ for the integer k = 2²⁴ −
/// (w >> 8) ≥ 1, and g = −ln(−ln(u + 1e−9) + 1e−9) ≤ −ln(1 − u) + ε (as −ln u ≥ 1 − u), which is
/// at most (24 − ⌊log₂ k⌋)·ln 2: an integer count of leading zeros. With a margin far above
/// every rounding involved, `x/τ + bound` is at least the score the reference computes, and
/// rounding is monotone, so a column whose bound is below the best score so far cannot beat it
/// (the reference keeps the first strict maximum; NaN bounds are never skipped).
fn row_argmax(rng: &mut Words, row: &[f32], temperature: f32) -> usize {
    const MARGIN: f32 = 1e-2;
    let mut words = [0u32; WORD_BLOCK];
    let mut bound = [0f32; WORD_BLOCK];
    let (mut best, mut arg) = (f32::NEG_INFINITY, 0usize);
    for (b, xs) in row.chunks(WORD_BLOCK).enumerate() {
        let (words, bound) = (&mut words[..xs.len()], &mut bound[..xs.len()]);
        rng.fill(words);
        for ((ub, &w), &x) in bound.iter_mut().zip(words.iter()).zip(xs) {
            let k = (1u32 << 24) - (w >> 8);
            *ub = x / temperature + ((k.leading_zeros() - 7) as f32 * std::f32::consts::LN_2 + MARGIN);
        }
        for (j, (&ub, (&w, &x))) in bound.iter().zip(words.iter().zip(xs)).enumerate() {
            if ub < best {
                continue;
            }
            let s = x / temperature + gumbel(uniform_f32(w));
            if s > best {
                best = s;
                arg = b * WORD_BLOCK + j;
            }
        }
    }
    arg
}

/// The Gumbel noise of one uniform, as the original code computes it.
#[inline(always)]
fn gumbel(u: f32) -> f32 {
    -(-(u + 1e-9).ln() + 1e-9).ln()
}

/// The plain Gumbel-max scan (every column's noise computed): what [`row_argmax`] must equal.
#[cfg(test)]
fn row_argmax_reference(rng: &mut ChaCha8Rng, row: &[f32], temperature: f32) -> usize {
    let (mut best, mut arg) = (f32::NEG_INFINITY, 0usize);
    for (j, &x) in row.iter().enumerate() {
        let u: f32 = rng.random();
        let s = x / temperature + gumbel(u);
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

    /// The pruned scan picks what the full scan picks, over logits flat and peaked, huge and
    /// tiny, with ties, infinities and NaN, at temperatures from 0.1 to 10, and leaves the
    /// stream at the same word.
    #[test]
    fn pruned_scan_equals_the_full_scan() {
        let mut data = ChaCha8Rng::seed_from_u64(21);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for case in 0..400 {
            let v = [1usize, 2, 255, 256, 257, 1000, 30522][case % 7];
            let spread = [0.0f32, 1e-3, 1.0, 5.0, 30.0, 1e4][(case / 7) % 6];
            let t = [0.1f32, 1.0, 3.0, 10.0][(case / 42) % 4];
            let mut row: Vec<f32> = (0..v).map(|_| (data.random::<f32>() - 0.5) * spread).collect();
            match case % 5 {
                1 => row.iter_mut().step_by(3).for_each(|x| *x = f32::NEG_INFINITY),
                2 if v > 2 => row[v / 2] = f32::NAN,
                3 => row.iter_mut().for_each(|x| *x = (*x * 4.0).round()),
                _ => {}
            }
            let mut a = Words::at(KeystreamAt::of(&rng).unwrap());
            let want = row_argmax_reference(&mut rng, &row, t);
            assert_eq!(row_argmax(&mut a, &row, t), want, "case {case}: v {v}, spread {spread}, t {t}");
            // Both stand at the same word after the row.
            let mut next = [0u32];
            a.fill(&mut next);
            assert_eq!(next[0], rand::RngCore::next_u32(&mut rng));
        }
    }

    /// The bound the pruned scan uses is above the noise for every one of the 2²⁴ uniforms.
    #[test]
    fn noise_bound_holds_for_every_uniform() {
        for top in 0u32..1 << 24 {
            let k = (1u32 << 24) - top;
            let bound = (k.leading_zeros() - 7) as f32 * std::f32::consts::LN_2;
            let g = gumbel(uniform_f32(top << 8));
            assert!(g <= bound + 1e-3, "u = {top}·2^-24: noise {g} above its bound {bound}");
        }
    }

    /// Rows split over threads draw exactly what one generator drawing row by row would.
    #[test]
    fn rows_in_parallel_draw_the_sequential_uniforms() {
        let (m, v) = (13, 257);
        let logits: Vec<f32> = (0..m * v).map(|i| ((i * 7919) % 1000) as f32 / 300.0).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        rng.set_stream(5);
        let at = KeystreamAt::of(&rng).unwrap();
        let want: Vec<i32> =
            (0..m).map(|r| row_argmax_reference(&mut rng, &logits[r * v..(r + 1) * v], 0.7) as i32).collect();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut got = Vec::new();
            pool.install(|| gumbel_argmax(at, &logits, m, v, 0.7, &mut got));
            assert_eq!(got, want, "{threads} threads");
        }
    }
}
