//! Multi-head scaled dot-product attention with a key padding mask, forward and backward.
//!
//! Q, K, V and the context are `[B·T, H]` row-major with head `h` in columns `h·HD..(h+1)·HD`;
//! each head is addressed through strides, so nothing is split or copied. The forward keeps the
//! softmax probabilities `[B, NH, T, T]` for the backward where asked to; otherwise (a training
//! forward on this backend) the backward recomputes each head's from Q and K, flash-style, so
//! that no layer holds a `[B, NH, T, T]` block. Each (batch row, head) is one task on the pool,
//! with single-threaded products inside.

use super::super::{AttentionShape, Qkv};
use super::matmul::{gemm_raw, raw};
use super::par::RowsMut;
use super::simd;
use crate::error::{Error, Result};
use std::cell::RefCell;

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

/// Runs `f(batch_row, head, scratch)` for every (batch row, head) pair over the pool, `scratch`
/// being `room` floats of the running thread's head scratch; fails when that cannot be had.
fn for_heads(b: usize, nh: usize, room: usize, f: impl Fn(usize, usize, &mut [f32]) + Sync) -> Result<()> {
    let failed = std::sync::Mutex::new(None);
    super::par::for_each(b * nh, |i| {
        if let Err(e) = with_scratch(room, |s| f(i / nh, i % nh, s)) {
            failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    });
    failed.into_inner().unwrap_or_else(|p| p.into_inner()).map_or(Ok(()), Err)
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

thread_local! {
    /// Per-thread room for one head's T×T blocks (grows, never shrinks): the probabilities
    /// where they are not kept, their dropped copy, the backward's score gradient.
    static HEAD_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's head scratch, at least `len` floats long. Fails cleanly when the
/// allocator refuses (a T of a few thousand). A head task never re-enters it: everything it
/// runs inside (single-threaded products, softmax, masks) stays on its thread.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> Result<R> {
    HEAD_SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(more) = len.checked_sub(s.len()).filter(|&m| m > 0) {
            s.try_reserve_exact(more).map_err(|_| {
                Error::OutOfMemory(format!("attention scratch of {len} elements could not be allocated"))
            })?;
            s.resize(len, 0.0);
        }
        Ok(f(&mut s[..len]))
    })
}

/// One (batch row, head) of Q, K, V (or their gradients) `[T, H]`: head h's columns, rows H
/// apart, starting at `base`.
fn head(base: *const f32, h: usize, hd: usize) -> *const f32 {
    base.wrapping_add(h * hd)
}

/// `p = softmax(Q·Kᵀ·scale + mask)` for one head into `p` `[T, T]`: the forward's computation,
/// which the backward repeats bit for bit when the probabilities were not kept.
///
/// # Safety
/// `qh` and `kh` must address a head's T rows of HD (rows `rs` apart).
unsafe fn head_probs(
    p: &mut [f32],
    (qh, kh): (*const f32, *const f32),
    rs: isize,
    mask: &[f32],
    shape: AttentionShape,
) {
    let (t, hd) = (shape.t, shape.hd);
    let scale = 1.0 / (hd as f32).sqrt();
    // SAFETY: this function's contract; `p` holds T·T (row stride T).
    unsafe { gemm_raw((t, t, hd), 1.0, raw(qh, rs, 1), raw(kh, 1, rs), 0.0, raw(p.as_mut_ptr(), t as isize, 1)) };
    for row in p.chunks_exact_mut(t) {
        simd::softmax_scaled_masked(row, scale, mask);
    }
}

/// `ctx = softmax(Q·Kᵀ/√HD + mask)·V` per batch row and head; writes `probs` for the backward
/// when given (`shape.keep_probs`), else works in a per-thread scratch. One task per (batch
/// row, head); the scaling and mask are fused into the softmax.
pub fn attention_forward(
    ctx: &mut [f32],
    probs: Option<&mut [f32]>,
    x: Qkv<&[f32]>,
    mask_add: &[f32],
    shape: AttentionShape,
) -> Result<()> {
    let (Qkv { q, k, v }, AttentionShape { b, t, nh, hd, dropout, .. }) = (x, shape);
    let hidden = nh * hd;
    let n = b * t * hidden;
    let (q, k, v, ctx) = (&q[..n], &k[..n], &v[..n], &mut ctx[..n]);
    let probs = probs.map(|p| RowsMut::new(p, b * nh, t * t));
    let out = Shared(ctx.as_mut_ptr());
    let rs = hidden as isize;
    // Room for the probabilities unless kept, and for their dropped copy with dropout.
    let own = if probs.is_some() { 0 } else { t * t };
    let room = own + if dropout.is_some() { t * t } else { 0 };
    for_heads(b, nh, room, |bi, h, scratch| {
        let blk = bi * nh + h;
        let at = bi * t * hidden;
        let mb = &mask_add[bi * t..(bi + 1) * t];
        let (mine, dropped) = scratch.split_at_mut(own);
        let p = match &probs {
            // SAFETY: block bi·NH + h of `probs` belongs to this (batch row, head) task
            // alone: for_heads runs each pair exactly once.
            Some(all) => unsafe { all.get(blk, blk + 1) },
            None => mine,
        };
        // SAFETY: Q, K, V and ctx cover rows bi·T..(bi+1)·T of width H (sliced to n above);
        // this task writes only columns h·HD..(h+1)·HD of those ctx rows.
        unsafe {
            head_probs(p, (head(q[at..].as_ptr(), h, hd), head(k[at..].as_ptr(), h, hd)), rs, mb, shape);
            // With dropout the context uses dropped probabilities; `probs` keeps the softmax.
            let pv: &[f32] = match dropout {
                Some(d) => {
                    dropped.copy_from_slice(p);
                    d.offset((blk * t * t) as u64).apply(dropped);
                    dropped
                }
                None => p,
            };
            let (c, vh) = (out.get().add(at + h * hd), head(v[at..].as_ptr(), h, hd));
            gemm_raw((t, hd, t), 1.0, raw(pv.as_ptr(), t as isize, 1), raw(vh, rs, 1), 0.0, raw(c, rs, 1));
        }
    })
}

/// What [`attention_backward`] reads of the forward besides Q, K, V.
pub struct Saved<'a> {
    /// The kept probabilities `[B, NH, T, T]` and a scratch as long (`shape.keep_probs`); else
    /// each head's are recomputed in a per-thread scratch.
    pub kept: Option<(&'a mut [f32], &'a [f32])>,
    /// The forward's additive key mask `[N]`.
    pub mask_add: &'a [f32],
}

/// Attention backward: assigns `dq`, `dk`, `dv` from `dctx`. With the probabilities kept, the
/// score gradient of each head goes to its block of the kept-size scratch; without, both the
/// recomputed probabilities and the score gradient live in a per-thread `2·T·T` scratch, and
/// every value is the same as with them kept.
pub fn attention_backward(
    dx: Qkv<&mut [f32]>,
    dctx: &[f32],
    saved: Saved,
    x: Qkv<&[f32]>,
    shape: AttentionShape,
) -> Result<()> {
    let (Qkv { q: dq, k: dk, v: dv }, Qkv { q, k, v }, AttentionShape { b, t, nh, hd, dropout, .. }) = (dx, x, shape);
    let hidden = nh * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let n = b * t * hidden;
    let (q, k, v, g) = (&q[..n], &k[..n], &v[..n], &dctx[..n]);
    let (dq, dk, dv) = (Shared(dq[..n].as_mut_ptr()), Shared(dk[..n].as_mut_ptr()), Shared(dv[..n].as_mut_ptr()));
    let kept = saved.kept.map(|(scratch, probs)| (RowsMut::new(scratch, b * nh, t * t), &probs[..b * nh * t * t]));
    let rs = hidden as isize;
    let tt = t as isize;
    let room = if kept.is_some() { 0 } else { 2 * t * t };
    for_heads(b, nh, room, |bi, h, scratch| {
        let blk = bi * nh + h;
        let at = bi * t * hidden;
        let (qh, kh, vh, gh) = (
            head(q[at..].as_ptr(), h, hd),
            head(k[at..].as_ptr(), h, hd),
            head(v[at..].as_ptr(), h, hd),
            head(g[at..].as_ptr(), h, hd),
        );
        let off = at + h * hd;
        let (p, ds): (&[f32], &mut [f32]) = match &kept {
            // SAFETY: block bi·NH + h of the scratch belongs to this (batch row, head) task
            // alone: for_heads runs each pair exactly once.
            Some((all, probs)) => (&probs[blk * t * t..(blk + 1) * t * t], unsafe { all.get(blk, blk + 1) }),
            None => {
                let (p, ds) = scratch.split_at_mut(t * t);
                // SAFETY: qh, kh address this head's T rows of the [N, H] inputs.
                unsafe { head_probs(p, (qh, kh), rs, &saved.mask_add[bi * t..(bi + 1) * t], shape) };
                (p, ds)
            }
        };
        // SAFETY: reads stay within rows bi·T..(bi+1)·T of the [N, H] inputs; writes go to
        // columns h·HD..(h+1)·HD of those rows of dq, dk, dv (this task's alone).
        unsafe {
            // With dropout, dV uses the forward's dropped probabilities P′, rebuilt in ds; dP′
            // then overwrites them and the mask takes it to dP.
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
    })
}
