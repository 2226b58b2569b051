//! Multi-head scaled dot-product attention with a key padding mask, forward and backward.
//!
//! Q, K, V and the context are `[B·T, H]` row-major with head `h` in columns `h·HD..(h+1)·HD`;
//! each head is addressed through strides, so nothing is split or copied. The forward keeps the
//! softmax probabilities `[B, NH, T, T]` for the backward. Each (batch row, head) is one task on
//! the pool, with single-threaded products inside.

use super::super::{AttentionShape, Qkv};
use super::matmul::{gemm_raw, raw};
use super::par::RowsMut;
use super::simd;

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

/// Runs `f(batch_row, head)` for every (batch row, head) pair over the pool.
fn for_heads(b: usize, nh: usize, f: impl Fn(usize, usize) + Sync) {
    super::par::for_each(b * nh, |i| f(i / nh, i % nh));
}

/// The view of head `h` in a `[T, H]` block at `base` (row stride H).
fn head(base: *const f32, h: usize, hd: usize) -> *const f32 {
    base.wrapping_add(h * hd)
}

/// A raw pointer shared with pool tasks that write disjoint head blocks through it.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: a bare address into a `&mut` output held for the whole parallel loop; tasks on other
// threads use it only to write their own disjoint (batch row, head) block of that output.
unsafe impl Send for Shared {}
// SAFETY: a shared `&Shared` only lets a task copy the address; the writes through it are to
// disjoint blocks, as for `Send`.
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer (a method, so closures capture the whole Send wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `ctx = softmax(Q·Kᵀ/√HD + mask)·V` per batch row and head; writes `probs` for the backward.
/// One task per (batch row, head); the scaling and mask are fused into the softmax.
pub fn attention_forward(ctx: &mut [f32], probs: &mut [f32], x: Qkv<&[f32]>, mask_add: &[f32], shape: AttentionShape) {
    let (Qkv { q, k, v }, AttentionShape { b, t, nh, hd, dropout }) = (x, shape);
    let hidden = nh * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let n = b * t * hidden;
    let (q, k, v, ctx) = (&q[..n], &k[..n], &v[..n], &mut ctx[..n]);
    let probs = RowsMut::new(probs, b * nh, t * t);
    let out = Shared(ctx.as_mut_ptr());
    let rs = hidden as isize;
    for_heads(b, nh, |bi, h| {
        // SAFETY: block bi·NH + h of `probs` belongs to this (batch row, head) task alone:
        // for_heads runs each pair exactly once.
        let p = unsafe { probs.get(bi * nh + h, bi * nh + h + 1) };
        let at = bi * t * hidden;
        let mb = &mask_add[bi * t..(bi + 1) * t];
        // SAFETY: Q, K, V and ctx cover rows bi·T..(bi+1)·T of width H (sliced to n above);
        // this task writes only columns h·HD..(h+1)·HD of those ctx rows.
        unsafe {
            let (qh, kh) = (head(q[at..].as_ptr(), h, hd), head(k[at..].as_ptr(), h, hd));
            gemm_raw((t, t, hd), 1.0, raw(qh, rs, 1), raw(kh, 1, rs), 0.0, raw(p.as_mut_ptr(), t as isize, 1));
            for row in p.chunks_exact_mut(t) {
                simd::softmax_scaled_masked(row, scale, mb);
            }
            let c = out.get().add(at + h * hd);
            let vh = head(v[at..].as_ptr(), h, hd);
            // With dropout the context uses dropped probabilities; `probs` keeps the softmax.
            let dropped = dropout.map(|d| {
                let mut pd = p.to_vec();
                d.offset(((bi * nh + h) * t * t) as u64).apply(&mut pd);
                pd
            });
            let pv = dropped.as_deref().unwrap_or(p);
            gemm_raw((t, hd, t), 1.0, raw(pv.as_ptr(), t as isize, 1), raw(vh, rs, 1), 0.0, raw(c, rs, 1));
        }
    });
}

/// Attention backward: assigns `dq`, `dk`, `dv` from `dctx`, using `scratch` (`[B, NH, T, T]`).
pub fn attention_backward(
    dx: Qkv<&mut [f32]>,
    scratch: &mut [f32],
    dctx: &[f32],
    probs: &[f32],
    x: Qkv<&[f32]>,
    shape: AttentionShape,
) {
    let (Qkv { q: dq, k: dk, v: dv }, Qkv { q, k, v }, AttentionShape { b, t, nh, hd, dropout }) = (dx, x, shape);
    let hidden = nh * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let n = b * t * hidden;
    let (q, k, v, g) = (&q[..n], &k[..n], &v[..n], &dctx[..n]);
    let probs = &probs[..b * nh * t * t];
    let (dq, dk, dv) = (Shared(dq[..n].as_mut_ptr()), Shared(dk[..n].as_mut_ptr()), Shared(dv[..n].as_mut_ptr()));
    let scratch = RowsMut::new(scratch, b * nh, t * t);
    let rs = hidden as isize;
    let tt = t as isize;
    for_heads(b, nh, |bi, h| {
        let blk = bi * nh + h;
        // SAFETY: block bi·NH + h of `scratch` belongs to this (batch row, head) task alone:
        // for_heads runs each pair exactly once.
        let ds = unsafe { scratch.get(blk, blk + 1) };
        let p = &probs[blk * t * t..(blk + 1) * t * t];
        let at = bi * t * hidden;
        let (qh, kh, vh, gh) = (
            head(q[at..].as_ptr(), h, hd),
            head(k[at..].as_ptr(), h, hd),
            head(v[at..].as_ptr(), h, hd),
            head(g[at..].as_ptr(), h, hd),
        );
        let off = at + h * hd;
        // SAFETY: reads stay within rows bi·T..(bi+1)·T of the [N, H] inputs; writes go to
        // columns h·HD..(h+1)·HD of those rows of dq, dk, dv (this task's alone).
        unsafe {
            // With dropout, dV uses the forward's dropped probabilities P′, rebuilt in ds; dP′ then
            // overwrites them and the mask takes it to dP.
            let mask = dropout.map(|d| d.offset((blk * t * t) as u64));
            if let Some(d) = mask {
                ds.copy_from_slice(p);
                d.apply(ds);
            }
            let pv = if mask.is_some() { ds.as_ptr() } else { p.as_ptr() };
            // dV = P′ᵀ·dctx ; dP′ = dctx·Vᵀ
            gemm_raw((t, hd, t), 1.0, raw(pv, 1, tt), raw(gh, rs, 1), 0.0, raw(dv.get().add(off), rs, 1));
            gemm_raw((t, t, hd), 1.0, raw(gh, rs, 1), raw(vh, 1, rs), 0.0, raw(ds.as_mut_ptr(), tt, 1));
            if let Some(d) = mask {
                d.apply(ds);
            }
            // dS = P ⊙ (dP − Σⱼ dP·P)
            for (dsr, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                simd::softmax_backward(dsr, pr);
            }
            // dQ = scale·dS·K ; dK = scale·dSᵀ·Q
            gemm_raw((t, hd, t), scale, raw(ds.as_ptr(), tt, 1), raw(kh, rs, 1), 0.0, raw(dq.get().add(off), rs, 1));
            gemm_raw((t, hd, t), scale, raw(ds.as_ptr(), 1, tt), raw(qh, rs, 1), 0.0, raw(dk.get().add(off), rs, 1));
        }
    });
}
