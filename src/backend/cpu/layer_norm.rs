//! LayerNorm over the last dimension: forward saves mean and 1/std per row for the backward.
//! Rows run in parallel (SIMD rows); the parameter gradients are summed over rows in order, per
//! block of columns, so they do not depend on the thread count.

use super::super::LnStats;
use super::par::{for_ranges, rows_mut, threads, RowsMut};
use super::simd;

/// A LayerNorm's parameters as the kernels read them: γ and β (C each) and ε.
#[derive(Clone, Copy, Debug)]
pub struct LnParams<'a> {
    /// γ.
    pub g: &'a [f32],
    /// β.
    pub b: &'a [f32],
    /// ε.
    pub eps: f64,
}

/// The outputs of a LayerNorm backward: `dx` (assigned), `dg` and `db` (accumulated).
pub struct LnGrads<'a> {
    /// Input gradient `[N, C]`.
    pub dx: &'a mut [f32],
    /// γ's gradient.
    pub dg: &'a mut [f32],
    /// β's gradient.
    pub db: &'a mut [f32],
}

/// `out = (x - mean)·rstd·g + b` per row of `c` elements; writes `stats` (n each).
pub fn layer_norm_forward(out: &mut [f32], stats: LnStats<&mut [f32]>, x: &[f32], p: LnParams, n: usize, c: usize) {
    let LnParams { g, b, eps } = p;
    let mean = RowsMut::new(stats.mean, n, 1);
    let rstd = RowsMut::new(stats.rstd, n, 1);
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

/// LayerNorm backward: `d.dx` is assigned, `d.dg`/`d.db` accumulate.
pub fn layer_norm_backward(d: LnGrads, dout: &[f32], x: &[f32], g: &[f32], stats: LnStats<&[f32]>, n: usize, c: usize) {
    let LnStats { mean, rstd } = stats;
    rows_mut(&mut d.dx[..n * c], c, 16, |r0, block| {
        for (i, dxr) in block.chunks_exact_mut(c).enumerate() {
            let r = r0 + i;
            let span = r * c..(r + 1) * c;
            let row = simd::LnRow { dout: &dout[span.clone()], x: &x[span], g, mean: mean[r], rstd: rstd[r] };
            simd::layer_norm_backward_row(dxr, row, false);
        }
    });
    layer_norm_param_grads(d.dg, d.db, dout, x, stats, n, c);
}

/// `dg += Σ_rows dout·x̂`, `db += Σ_rows dout`, columns split over the pool, rows in order.
pub fn layer_norm_param_grads(
    dg: &mut [f32],
    db: &mut [f32],
    dout: &[f32],
    x: &[f32],
    stats: LnStats<&[f32]>,
    n: usize,
    c: usize,
) {
    let LnStats { mean, rstd } = stats;
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
