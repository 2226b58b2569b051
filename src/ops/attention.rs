//! Multi-head scaled dot-product attention with a key padding mask, forward and backward.
//!
//! Q, K, V and the context are `[B·T, H]` row-major with head `h` in columns `h·HD..(h+1)·HD`;
//! each head is addressed through strides, so nothing is split or copied. The forward keeps the
//! softmax probabilities `[B, NH, T, T]` for the backward.

use super::matmul::{gemm, Mat};
use rayon::prelude::*;

/// Additive key mask as HF builds it: 0 where attended, `f32::MIN` where padded.
pub fn key_mask(mask_add: &mut [f32], attention_mask: Option<&[i32]>, n: usize) {
    match attention_mask {
        Some(m) => {
            for (o, &v) in mask_add[..n].iter_mut().zip(m) {
                *o = if v != 0 { 0.0 } else { f32::MIN };
            }
        }
        None => mask_add[..n].fill(0.0),
    }
}

fn head<'a>(x: &'a [f32], h: usize, hd: usize, t: usize, hidden: usize) -> Mat<'a> {
    Mat { data: &x[h * hd..], rows: t, cols: hd, rs: hidden, cs: 1 }
}

/// `ctx = softmax(Q·Kᵀ/√HD + mask)·V` per batch row and head; writes `probs` for the backward.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    ctx: &mut [f32],
    probs: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask_add: &[f32],
    b: usize,
    t: usize,
    nh: usize,
    hd: usize,
) {
    let hidden = nh * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let rows = t * hidden;
    ctx[..b * rows].par_chunks_mut(rows).zip(probs[..b * nh * t * t].par_chunks_mut(nh * t * t)).enumerate().for_each(
        |(bi, (ctx_b, probs_b))| {
            let (qb, kb, vb) = (&q[bi * rows..], &k[bi * rows..], &v[bi * rows..]);
            let mb = &mask_add[bi * t..(bi + 1) * t];
            for h in 0..nh {
                let p = &mut probs_b[h * t * t..(h + 1) * t * t];
                gemm(scale, head(qb, h, hd, t, hidden), head(kb, h, hd, t, hidden).t(), 0.0, p, t, 1);
                for row in p.chunks_exact_mut(t) {
                    softmax_row_masked(row, mb);
                }
                gemm(1.0, Mat::rows(p, t, t), head(vb, h, hd, t, hidden), 0.0, &mut ctx_b[h * hd..], hidden, 1);
            }
        },
    );
}

/// In place: `row = softmax(row + mask)`.
#[inline]
fn softmax_row_masked(row: &mut [f32], mask: &[f32]) {
    let mut max = f32::NEG_INFINITY;
    for (s, &m) in row.iter_mut().zip(mask) {
        *s += m;
        max = max.max(*s);
    }
    let mut sum = 0.0f32;
    for s in row.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    for s in row.iter_mut() {
        *s *= inv;
    }
}

/// Attention backward: assigns `dq`, `dk`, `dv` from `dctx`, using `scratch` (`[B, NH, T, T]`).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    scratch: &mut [f32],
    dctx: &[f32],
    probs: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    b: usize,
    t: usize,
    nh: usize,
    hd: usize,
) {
    let hidden = nh * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let rows = t * hidden;
    let tt = nh * t * t;
    dq[..b * rows]
        .par_chunks_mut(rows)
        .zip(dk[..b * rows].par_chunks_mut(rows))
        .zip(dv[..b * rows].par_chunks_mut(rows))
        .zip(scratch[..b * tt].par_chunks_mut(tt))
        .enumerate()
        .for_each(|(bi, (((dq_b, dk_b), dv_b), ds_b))| {
            let (qb, kb, vb, gb) = (&q[bi * rows..], &k[bi * rows..], &v[bi * rows..], &dctx[bi * rows..]);
            let pb = &probs[bi * tt..(bi + 1) * tt];
            for h in 0..nh {
                let p = &pb[h * t * t..(h + 1) * t * t];
                let ds = &mut ds_b[h * t * t..(h + 1) * t * t];
                // dP = dctx·Vᵀ ; dV = Pᵀ·dctx
                gemm(1.0, head(gb, h, hd, t, hidden), head(vb, h, hd, t, hidden).t(), 0.0, ds, t, 1);
                gemm(1.0, Mat::rows(p, t, t).t(), head(gb, h, hd, t, hidden), 0.0, &mut dv_b[h * hd..], hidden, 1);
                // dS = P ⊙ (dP − Σⱼ dP·P)
                for (dsr, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                    let dot: f32 = dsr.iter().zip(pr).map(|(a, b)| a * b).sum();
                    for (d, &pv) in dsr.iter_mut().zip(pr) {
                        *d = pv * (*d - dot);
                    }
                }
                // dQ = scale·dS·K ; dK = scale·dSᵀ·Q
                gemm(scale, Mat::rows(ds, t, t), head(kb, h, hd, t, hidden), 0.0, &mut dq_b[h * hd..], hidden, 1);
                gemm(scale, Mat::rows(ds, t, t).t(), head(qb, h, hd, t, hidden), 0.0, &mut dk_b[h * hd..], hidden, 1);
            }
        });
}
