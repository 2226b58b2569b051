//! Matrix products through matrixmultiply's sgemm, and the Linear layer (y = x·Wᵀ + b) forward
//! and backward built on it. Transposes are stride swaps, never copies.

/// A read-only strided matrix: element (i, j) is `data[i*rs + j*cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    /// Backing slice (must cover every addressed element).
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A dense row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose (a stride swap).
    pub fn t(self) -> Self {
        Mat { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// C ← alpha·A·B + beta·C, where C is a strided `m x n` view into `c` (row stride `rsc`,
/// column stride `csc`). Bounds are checked; the kernel is matrixmultiply's sgemm.
#[allow(clippy::too_many_arguments)]
pub fn gemm(alpha: f32, a: Mat, b: Mat, beta: f32, c: &mut [f32], rsc: usize, csc: usize) {
    assert_eq!(a.cols, b.rows, "gemm inner dimensions differ");
    a.check();
    b.check();
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let last = (m - 1) * rsc + (n - 1) * csc;
    assert!(last < c.len(), "gemm output out of bounds");
    // SAFETY: every index the kernel touches was bounds-checked above; strides fit isize
    // because they address elements of live slices.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// Linear forward: `y[n, dout] = x[n, din]·Wᵀ + b`, with W stored `[dout, din]` (PyTorch layout).
pub fn linear_forward(y: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>, n: usize, din: usize, dout: usize) {
    let y = &mut y[..n * dout];
    match b {
        Some(b) => {
            for row in y.chunks_exact_mut(dout) {
                row.copy_from_slice(b);
            }
        }
        None => y.fill(0.0),
    }
    gemm(1.0, Mat::rows(&x[..n * din], n, din), Mat::rows(w, dout, din).t(), 1.0, y, dout, 1);
}

/// Linear backward. Parameter gradients accumulate (`dw += dyᵀ·x`, `db += Σ dy`); the input
/// gradient is assigned (`dx = dy·W`) or accumulated when `accumulate_dx` (residual streams).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    n: usize,
    din: usize,
    dout: usize,
    accumulate_dx: bool,
) {
    let dy = &dy[..n * dout];
    if let Some(dx) = dx {
        let beta = if accumulate_dx { 1.0 } else { 0.0 };
        gemm(1.0, Mat::rows(dy, n, dout), Mat::rows(w, dout, din), beta, &mut dx[..n * din], din, 1);
    }
    gemm(1.0, Mat::rows(dy, n, dout).t(), Mat::rows(&x[..n * din], n, din), 1.0, dw, din, 1);
    if let Some(db) = db {
        for row in dy.chunks_exact(dout) {
            for (g, d) in db.iter_mut().zip(row) {
                *g += d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_naive_with_transposes() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        // C = A · Bᵀ with B stored [n, k].
        let mut c = vec![0.0; m * n];
        gemm(1.0, Mat::rows(&a, m, k), Mat::rows(&b, n, k).t(), 0.0, &mut c, n, 1);
        for i in 0..m {
            for j in 0..n {
                let r: f32 = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
                assert!((c[i * n + j] - r).abs() < 1e-5);
            }
        }
    }
}
