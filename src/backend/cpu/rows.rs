//! Row gather and scatter: the generator head runs only at the masked positions, and the
//! classifier only at the [CLS] rows, so their inputs are gathered and their gradients scattered
//! back. Rows are few (M ≈ 15% of N, or B), so this runs on the calling thread. Beside them the
//! classifier's other pooling, the masked mean of each sequence's rows, and its backward (one
//! pass over B·T·H values, also on the calling thread).

use crate::error::{Error, Result};

fn row(r: i32, rows: usize, what: &str) -> Result<usize> {
    usize::try_from(r)
        .ok()
        .filter(|&r| r < rows)
        .ok_or_else(|| Error::Internal(format!("{what}: row {r} is outside [0, {rows})")))
}

/// `dst[i] = src[rows[i]]`, rows of `width`.
pub fn gather(dst: &mut [f32], src: &[f32], rows: &[i32], width: usize) -> Result<()> {
    let have = src.len() / width.max(1);
    for (d, &r) in dst.chunks_exact_mut(width.max(1)).zip(rows) {
        let r = row(r, have, "gather")?;
        d.copy_from_slice(&src[r * width..(r + 1) * width]);
    }
    Ok(())
}

/// `dst[rows[i]] = src[i]` (or `+=` with `accumulate`), rows of `width`.
pub fn scatter(dst: &mut [f32], src: &[f32], rows: &[i32], width: usize, accumulate: bool) -> Result<()> {
    let have = dst.len() / width.max(1);
    for (s, &r) in src.chunks_exact(width.max(1)).zip(rows) {
        let r = row(r, have, "scatter")?;
        let d = &mut dst[r * width..(r + 1) * width];
        if accumulate {
            for (d, s) in d.iter_mut().zip(s) {
                *d += s;
            }
        } else {
            d.copy_from_slice(s);
        }
    }
    Ok(())
}

/// Valid rows of group `g` of `t` (mask `None`: all), and their count as the divisor.
fn valid(mask: Option<&[i32]>, g: usize, t: usize) -> (impl Iterator<Item = bool> + '_, f32) {
    let m = mask.map(|m| &m[g * t..(g + 1) * t]);
    let count = m.map_or(t, |m| m.iter().filter(|&&v| v != 0).count());
    ((0..t).map(move |r| m.is_none_or(|m| m[r] != 0)), count as f32)
}

/// `dst[g] = Σ_r mask[g·t + r]·src[g·t + r] / Σ_r mask[g·t + r]` for `groups` groups of `t`
/// rows of `width`, summed in row order (the CUDA kernel's order); a group without a valid row
/// gives zeros.
pub fn mean(dst: &mut [f32], src: &[f32], mask: Option<&[i32]>, t: usize, width: usize) {
    for (g, d) in dst.chunks_exact_mut(width.max(1)).enumerate() {
        let (rows, count) = valid(mask, g, t);
        d.fill(0.0);
        for (r, keep) in rows.enumerate() {
            if keep {
                let s = &src[(g * t + r) * width..(g * t + r + 1) * width];
                d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
            }
        }
        if count > 0.0 {
            d.iter_mut().for_each(|d| *d /= count);
        }
    }
}

/// The backward of [`mean`]: `dsrc[g·t + r] = mask[g·t + r]·ddst[g] / Σ_r mask[g·t + r]`.
pub fn mean_backward(dsrc: &mut [f32], ddst: &[f32], mask: Option<&[i32]>, t: usize, width: usize) {
    for (g, dd) in ddst.chunks_exact(width.max(1)).enumerate() {
        let (rows, count) = valid(mask, g, t);
        for (r, keep) in rows.enumerate() {
            let d = &mut dsrc[(g * t + r) * width..(g * t + r + 1) * width];
            if keep {
                d.iter_mut().zip(dd).for_each(|(d, s)| *d = s / count);
            } else {
                d.fill(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_then_scatter_round_trips() {
        let src: Vec<f32> = (0..12).map(|x| x as f32).collect(); // 4 rows of 3
        let mut g = vec![0.0; 6];
        gather(&mut g, &src, &[3, 1], 3).unwrap();
        assert_eq!(g, [9.0, 10.0, 11.0, 3.0, 4.0, 5.0]);
        let mut back = vec![1.0; 12];
        scatter(&mut back, &g, &[3, 1], 3, true).unwrap();
        assert_eq!(&back[3..6], &[4.0, 5.0, 6.0]);
        scatter(&mut back, &g, &[3, 1], 3, false).unwrap();
        assert_eq!(&back[9..12], &[9.0, 10.0, 11.0]);
        assert!(gather(&mut g, &src, &[4, 0], 3).is_err());
        assert!(scatter(&mut back, &g, &[-1, 0], 3, false).is_err());
    }

    #[test]
    fn masked_mean_and_its_backward() {
        // 2 groups of 3 rows of 2; the second group's last row is padding.
        let src = [1.0, 2.0, 3.0, 4.0, 5.0, 9.0, -1.0, 0.5, 3.0, 1.5, 100.0, 100.0];
        let mask = [1, 1, 1, 1, 1, 0];
        let mut d = [0.0; 4];
        mean(&mut d, &src, Some(&mask), 3, 2);
        assert_eq!(d, [3.0, 5.0, 1.0, 1.0]);
        mean(&mut d, &src, None, 3, 2);
        assert_eq!(&d[2..], &[34.0, 34.0]);
        let mut back = [7.0; 12];
        mean_backward(&mut back, &[3.0, 6.0, 2.0, -4.0], Some(&mask), 3, 2);
        assert_eq!(back, [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, -2.0, 1.0, -2.0, 0.0, 0.0]);
        // No valid row: zeros, not NaN.
        mean(&mut d, &src, Some(&[0; 6]), 3, 2);
        assert_eq!(d, [0.0; 4]);
    }
}
