//! Row gather and scatter: the generator head runs only at the masked positions, and the
//! classifier only at the [CLS] rows, so their inputs are gathered and their gradients scattered
//! back. Rows are few (M ≈ 15% of N, or B), so this runs on the calling thread.

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
}
