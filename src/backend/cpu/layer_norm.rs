//! LayerNorm over the last dimension: forward saves mean and 1/std per row for the backward.
//! Rows run in parallel (SIMD rows); the parameter gradients are summed over rows in order, per
//! block of columns, so they do not depend on the thread count.

use super::par::{for_ranges, rows_mut, threads, RowsMut};
use super::simd;

/// `out = (x - mean)·rstd·g + b` per row of `c` elements; writes `mean` and `rstd` (n each).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    g: &[f32],
    b: &[f32],
    n: usize,
    c: usize,
    eps: f64,
) {
    let mean = RowsMut::new(mean, n, 1);
    let rstd = RowsMut::new(rstd, n, 1);
    rows_mut(&mut out[..n * c], c, 16, |r0, block| {
        let r1 = r0 + block.len() / c;
        // SAFETY: rows_mut hands each task a disjoint block of rows r0..r1, so those rows of
        // `mean` and `rstd` are this task's alone.
        let (mu, rs) = unsafe { (mean.get(r0, r1), rstd.get(r0, r1)) };
        for (i, orow) in block.chunks_exact_mut(c).enumerate() {
            let r = r0 + i;
            (mu[i], rs[i]) = simd::layer_norm_row(orow, &x[r * c..(r + 1) * c], g, b, eps);
        }
    });
}

/// LayerNorm backward. `dg`/`db` accumulate; `dx` is assigned, or accumulated when
/// `accumulate_dx` (when x feeds a residual stream that already holds a gradient).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    dx: &mut [f32],
    dg: &mut [f32],
    db: &mut [f32],
    dout: &[f32],
    x: &[f32],
    g: &[f32],
    mean: &[f32],
    rstd: &[f32],
    n: usize,
    c: usize,
    accumulate_dx: bool,
) {
    rows_mut(&mut dx[..n * c], c, 16, |r0, block| {
        for (i, dxr) in block.chunks_exact_mut(c).enumerate() {
            let r = r0 + i;
            let span = r * c..(r + 1) * c;
            let row = simd::LnRow { dout: &dout[span.clone()], x: &x[span], g, mean: mean[r], rstd: rstd[r] };
            simd::layer_norm_backward_row(dxr, row, accumulate_dx);
        }
    });
    layer_norm_param_grads(dg, db, dout, x, mean, rstd, n, c);
}

/// `dg += Σ_rows dout·x̂`, `db += Σ_rows dout`, columns split over the pool, rows in order.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_param_grads(
    dg: &mut [f32],
    db: &mut [f32],
    dout: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    n: usize,
    c: usize,
) {
    let dgv = RowsMut::new(dg, 1, c);
    let dbv = RowsMut::new(db, 1, c);
    let parts = if n * c < 1 << 15 { 1 } else { threads() };
    for_ranges(c, parts, 64.min(c).max(1), 16, |c0, c1| {
        // SAFETY: for_ranges gives each task a disjoint column range c0..c1 of the one-row views
        // of `dg` and `db`.
        let (g_acc, b_acc) = unsafe { (dgv.span(c0, c1), dbv.span(c0, c1)) };
        if n > 0 {
            let rows = simd::LnRows {
                dout: &dout[c0..n * c],
                x: &x[c0..n * c],
                mean: &mean[..n],
                rstd: &rstd[..n],
                stride: c,
            };
            simd::ln_param_grads(g_acc, b_acc, rows);
        }
    });
}
