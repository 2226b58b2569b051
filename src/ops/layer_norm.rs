//! LayerNorm over the last dimension: forward saves mean and 1/std per row for the backward.

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
    for r in 0..n {
        let xr = &x[r * c..(r + 1) * c];
        // f64 accumulation: cheap at these widths and keeps the statistics exact to f32.
        let mu = xr.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
        let var = xr.iter().map(|&v| (v as f64 - mu) * (v as f64 - mu)).sum::<f64>() / c as f64;
        let rs = 1.0 / (var + eps).sqrt();
        let (muf, rsf) = (mu as f32, rs as f32);
        mean[r] = muf;
        rstd[r] = rsf;
        let orow = &mut out[r * c..(r + 1) * c];
        for i in 0..c {
            orow[i] = (xr[i] - muf) * rsf * g[i] + b[i];
        }
    }
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
    for r in 0..n {
        let xr = &x[r * c..(r + 1) * c];
        let dr = &dout[r * c..(r + 1) * c];
        let (mu, rs) = (mean[r], rstd[r]);
        let mut sum_dxhat = 0.0f64;
        let mut sum_dxhat_xhat = 0.0f64;
        for i in 0..c {
            let xhat = (xr[i] - mu) * rs;
            let dxhat = dr[i] * g[i];
            sum_dxhat += dxhat as f64;
            sum_dxhat_xhat += (dxhat * xhat) as f64;
            dg[i] += dr[i] * xhat;
            db[i] += dr[i];
        }
        let m1 = (sum_dxhat / c as f64) as f32;
        let m2 = (sum_dxhat_xhat / c as f64) as f32;
        let dxr = &mut dx[r * c..(r + 1) * c];
        for i in 0..c {
            let xhat = (xr[i] - mu) * rs;
            let v = rs * (dr[i] * g[i] - m1 - xhat * m2);
            if accumulate_dx {
                dxr[i] += v;
            } else {
                dxr[i] = v;
            }
        }
    }
}
