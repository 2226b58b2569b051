//! Multi-head scaled dot-product attention with a key padding mask, forward and backward.
//!
//! Q, K, V and the context are `[B·T, H]` row-major with head `h` in columns `h·HD..(h+1)·HD`;
//! each head is addressed through strides, so nothing is split or copied. The forward keeps the
//! softmax probabilities `[B, NH, T, T]` for the backward where asked to; otherwise (a training
//! forward on this backend) the backward recomputes each head's from Q and K, flash-style, so
//! that no layer holds a `[B, NH, T, T]` block. Each (batch row, head) is one task on the pool,
//! with single-threaded products inside.

use super::super::{AttentionShape, Qkv};
use super::int8::{self, I8Kernel, PackedI8, QuantRows};
use super::matmul::{gemm_raw, raw, Weight};
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
fn for_heads(
    b: usize,
    nh: usize,
    room: usize,
    f: impl Fn(usize, usize, &mut [f32]) -> Result<()> + Sync,
) -> Result<()> {
    let failed = std::sync::Mutex::new(None);
    super::par::for_each(b * nh, |i| {
        if let Err(e) = with_scratch(room, |s| f(i / nh, i % nh, s)).and_then(|r| r) {
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
        Ok(())
    })
}

/// One thread's int8 operands for a head (reused from head to head: buffers grow, never shrink).
struct I8Head {
    q: QuantRows,
    k: QuantRows,
    p: QuantRows,
    keys: PackedI8,
    values: PackedI8,
    stage: Vec<u8>,
}

impl I8Head {
    fn new(kernel: I8Kernel) -> Self {
        I8Head {
            q: QuantRows::default(),
            k: QuantRows::default(),
            p: QuantRows::default(),
            keys: PackedI8::empty(kernel),
            values: PackedI8::empty(kernel),
            stage: Vec::new(),
        }
    }
}

thread_local! {
    /// Per-thread int8 head operands, rebuilt when a call names another kernel.
    static I8_HEAD: RefCell<Option<I8Head>> = const { RefCell::new(None) };
}

/// [`attention_forward`] for an int8 model's inference: `S = Q·Kᵀ` and `P·V` as int8 products
/// with `kernel` (`vpdpbusd` and kin do four int8 products where an FMA does one), the softmax
/// in f32. Per head: query and key rows quantized per row (the key rows are the product's
/// channels), the values per column (`Vᵀ`'s rows are `P·V`'s channels), and the probabilities
/// as levels `round(127·e^(s − max))` per row ([`simd::softmax_levels`]) scaled by 1 / their
/// sum, so each row's weights sum to exactly 1. The same bits for every kernel, ISA and thread
/// count. No probabilities kept and no dropout: inference only.
pub fn attention_forward_int8(
    ctx: &mut [f32],
    x: Qkv<&[f32]>,
    mask_add: &[f32],
    shape: AttentionShape,
    kernel: I8Kernel,
) -> Result<()> {
    let (Qkv { q, k, v }, AttentionShape { b, t, nh, hd, .. }) = (x, shape);
    let hidden = nh * hd;
    let n = b * t * hidden;
    let (q, k, v, ctx) = (&q[..n], &k[..n], &v[..n], &mut ctx[..n]);
    let out = Shared(ctx.as_mut_ptr());
    for_heads(b, nh, t * t, |bi, h, s| {
        let at = bi * t * hidden + h * hd;
        let mb = &mask_add[bi * t..(bi + 1) * t];
        // SAFETY: ctx covers rows bi·T..(bi+1)·T of width H (sliced to n above); this task
        // writes only columns h·HD..(h+1)·HD of those rows (for_heads runs each pair once).
        with_i8_head(kernel, |ops| unsafe {
            int8_head(ops, s, (&q[at..], &k[at..], &v[at..]), out.get().add(at), mb, shape)
        })
    })
}

/// Runs `f` on this thread's int8 head operands for `kernel`.
fn with_i8_head(kernel: I8Kernel, f: impl FnOnce(&mut I8Head) -> Result<()>) -> Result<()> {
    I8_HEAD.with(|cell| {
        let mut cell = cell.borrow_mut();
        let ops = match &mut *cell {
            Some(o) if o.keys.kernel() == kernel => o,
            slot => slot.insert(I8Head::new(kernel)),
        };
        f(ops)
    })
}

/// One head of [`attention_forward_int8`]: `q`, `k`, `v` start at the head's first element of
/// `T` rows `H = NH·HD` apart; the context goes to `out` likewise; `s` is `T·T` of scratch.
///
/// # Safety
/// `out` must be valid for writes of `T` rows of `HD` at a stride of `H`, and no other thread may
/// access those elements during the call.
unsafe fn int8_head(
    ops: &mut I8Head,
    s: &mut [f32],
    (q, k, v): (&[f32], &[f32], &[f32]),
    out: *mut f32,
    mb: &[f32],
    shape: AttentionShape,
) -> Result<()> {
    let (t, hd, hidden) = (shape.t, shape.hd, shape.nh * shape.hd);
    let kernel = ops.keys.kernel();
    let (scale, flip) = (1.0 / (hd as f32).sqrt(), kernel.row_flip());
    ops.q.quantize_strided(q, t, hd, hidden, kernel)?;
    ops.k.quantize_strided(k, t, hd, hidden, kernel)?;
    ops.keys.set_rows(&ops.k)?;
    // Padded keys' values out of the value scales (their levels are 0), so a text's outputs do
    // not depend on its padding; all keys padded: every key counts, as in f32.
    let skip = if mb.iter().all(|&m| m != 0.0) { &[][..] } else { mb };
    ops.values.set_cols(v, (t, hd, hidden), skip, &mut ops.stage)?;
    int8::matmul(s, t, &ops.q, 0..t, &ops.keys, 0..t);
    ops.p.set_rows_with(t, t, kernel, |r, row| {
        1.0 / simd::softmax_levels(&mut s[r * t..(r + 1) * t], scale, mb, row, flip)
    })?;
    // SAFETY: this function's contract.
    unsafe { int8::matmul_raw(kernel, out, hidden, &ops.p, 0..t, &ops.values, 0..hd) };
    Ok(())
}

/// Whether [`self_attention_int8`] shares `b` batch rows out evenly enough over the pool.
pub fn sequences_share_out(b: usize) -> bool {
    let t = super::par::threads();
    t == 1 || (b >= t && (b.is_multiple_of(t) || b >= 4 * t))
}

/// An int8 model's self-attention, fused per batch row: the row's `[T, H]` queries, keys and
/// values (`x` quantized once for the three int8 Linears `ws`, weight and bias each) in a
/// per-thread scratch, then [`attention_forward_int8`]'s heads on them while they are in cache;
/// one task per batch row ([`sequences_share_out`] says when that balances). The same bits as
/// `linear_forward_shared` then [`attention_forward_int8`].
pub fn self_attention_int8(
    ctx: &mut [f32],
    x: &[f32],
    ws: &[(Weight, &[f32]); 3],
    mask_add: &[f32],
    shape: AttentionShape,
    din: usize,
) -> Result<()> {
    let AttentionShape { b, t, nh, hd, .. } = shape;
    let hidden = nh * hd;
    let kernel = match ws[0].0 {
        Weight::Int8(p) => p.kernel(),
        _ => return Err(Error::arg("self_attention_int8 takes int8 weights")),
    };
    let (ctx, x) = (&mut ctx[..b * t * hidden], &x[..b * t * din]);
    let out = Shared(ctx.as_mut_ptr());
    let failed = std::sync::Mutex::new(None);
    super::par::for_each(b, |bi| {
        let run = with_scratch(3 * t * hidden + t * t, |room| {
            let (qkv, s) = room.split_at_mut(3 * t * hidden);
            let (q, rest) = qkv.split_at_mut(t * hidden);
            let (k, v) = rest.split_at_mut(t * hidden);
            super::matmul::shared_rows(&mut [&mut *q, &mut *k, &mut *v], &x[bi * t * din..], ws, t, din);
            let mb = &mask_add[bi * t..(bi + 1) * t];
            with_i8_head(kernel, |ops| {
                for h in 0..nh {
                    let at = h * hd;
                    // SAFETY: ctx holds rows bi·T..(bi+1)·T of width H; this task (batch row
                    // bi, run once by for_each) writes columns h·HD..(h+1)·HD of those rows.
                    let o = unsafe { out.get().add(bi * t * hidden + at) };
                    // SAFETY: as just said.
                    unsafe { int8_head(ops, &mut *s, (&q[at..], &k[at..], &v[at..]), o, mb, shape)? };
                }
                Ok(())
            })
        });
        if let Err(e) = run.and_then(|r| r) {
            failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    });
    failed.into_inner().unwrap_or_else(|p| p.into_inner()).map_or(Ok(()), Err)
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
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(rng: &mut ChaCha8Rng, n: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-amp..amp)).collect()
    }

    /// Int8 attention stays close to the f32 one (the error of int8 operands, not a different
    /// function), gives the same bits on every int8 kernel, SIMD variant and thread count,
    /// ignores padded keys exactly, and turns a NaN input into NaN outputs, not a panic.
    #[test]
    fn int8_attention_is_close_to_f32_and_the_same_everywhere() {
        use super::super::pool::Ctx;
        use super::super::simd::Isa;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // T and HD off the kernels' multiples of 4 and 16.
        for &(b, t, nh, hd) in &[(3, 37, 2, 24), (2, 64, 4, 16), (1, 5, 1, 3)] {
            let n = b * t * nh * hd;
            let (q, k) = (random(&mut rng, n, 2.0), random(&mut rng, n, 2.0));
            let mut v = random(&mut rng, n, 1.0);
            // Batch row 0 fully attended; the others have their last third padded.
            let mask_add: Vec<f32> =
                (0..b * t).map(|i| if i / t > 0 && i % t >= t - t / 3 { f32::MIN } else { 0.0 }).collect();
            let shape = AttentionShape { keep_probs: false, int8: true, ..AttentionShape::new(b, t, nh, hd) };
            let mut want = vec![0.0f32; n];
            attention_forward(&mut want, None, Qkv { q: &q, k: &k, v: &v }, &mask_add, shape).unwrap();
            let run = |kernel: I8Kernel, isa: Isa, threads: usize, v: &[f32]| {
                let mut ctx = vec![f32::NAN; n];
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    Ctx::new(isa, threads, false).enter(|| {
                        attention_forward_int8(&mut ctx, Qkv { q: &q, k: &k, v }, &mask_add, shape, kernel).unwrap()
                    })
                });
                ctx
            };
            let first = run(I8Kernel::Scalar, Isa::Scalar, 1, &v);
            let (err, mag) = first
                .iter()
                .zip(&want)
                .fold((0.0f64, 0.0f64), |(e, m), (&a, &w)| (e.max((a - w).abs() as f64), m.max(w.abs() as f64)));
            assert!(err < 0.03 * mag.max(0.1), "int8 attention {b}x{t}x{nh}x{hd}: max error {err}, |ctx| up to {mag}");
            for kernel in int8::available() {
                for isa in Isa::available() {
                    for threads in [1, 3] {
                        let got = run(kernel, isa, threads, &v);
                        assert!(
                            got.iter().zip(&first).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{kernel:?} {isa:?} {threads} threads differ ({b}x{t}x{nh}x{hd})"
                        );
                    }
                }
            }
            // Values at padded keys do not count (their probability level is exactly 0).
            if b > 1 {
                let mut v2 = v.clone();
                let hidden = nh * hd;
                for x in &mut v2[(t + t - 1) * hidden..(2 * t) * hidden] {
                    *x = 1e3;
                }
                let got = run(int8::available()[0], Isa::detect(), 1, &v2);
                assert!(got.iter().zip(&first).all(|(a, b)| a.to_bits() == b.to_bits()), "padded keys changed ctx");
            }
            v[0] = f32::NAN;
            let got = run(int8::available()[0], Isa::detect(), 1, &v);
            assert!(got[0].is_nan(), "a NaN value must reach the context");
        }
    }

    /// Self-attention fused per batch row gives the bits of the Q/K/V Linears then the int8
    /// attention, on any thread count.
    #[test]
    fn fused_self_attention_equals_the_two_calls() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (din, nh, hd) = (40, 2, 24);
        let hidden = nh * hd;
        let packed: Vec<(PackedI8, Vec<f32>)> = (0..3)
            .map(|_| {
                let w = random(&mut rng, hidden * din, 0.3);
                let q = crate::layers::int8::quantize_weight(&w, hidden, din).unwrap();
                (PackedI8::new(&q).unwrap(), random(&mut rng, hidden, 0.1))
            })
            .collect();
        let ws: [(Weight, &[f32]); 3] = std::array::from_fn(|j| (Weight::Int8(&packed[j].0), &packed[j].1[..]));
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for (b, t) in [(1, 9), (3, 17), (6, 32)] {
                let n = b * t;
                let x = random(&mut rng, n * din, 1.5);
                let mask_add: Vec<f32> =
                    (0..n).map(|i| if i % t >= t - 2 && i / t == 1 { f32::MIN } else { 0.0 }).collect();
                let shape = AttentionShape { keep_probs: false, int8: true, ..AttentionShape::new(b, t, nh, hd) };
                let kernel = packed[0].0.kernel();
                let (mut want, mut got) = (vec![0.0f32; n * hidden], vec![1.0f32; n * hidden]);
                pool.install(|| {
                    let mut qkv: Vec<Vec<f32>> = (0..3).map(|_| vec![0.0f32; n * hidden]).collect();
                    for (y, (w, bias)) in qkv.iter_mut().zip(&ws) {
                        super::super::matmul::linear_forward(y, &x, *w, Some(bias), n, din, hidden);
                    }
                    let x3 = Qkv { q: &qkv[0][..], k: &qkv[1][..], v: &qkv[2][..] };
                    attention_forward_int8(&mut want, x3, &mask_add, shape, kernel).unwrap();
                    self_attention_int8(&mut got, &x, &ws, &mask_add, shape, din).unwrap();
                });
                assert!(
                    got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "b {b} t {t}, {threads} threads"
                );
            }
        }
    }

    /// `cargo test --release --lib attention::tests::bench -- --ignored --nocapture`: one
    /// ELECTRA-Small layer's attention at 32x128, f32 and int8, one thread. Prints only.
    #[test]
    #[ignore]
    fn bench_attention_int8() {
        use std::time::Instant;
        let (b, t, nh, hd) = (32, 128, 4, 64);
        let n = b * t * nh * hd;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut data = || (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect::<Vec<_>>();
        let (q, k, v) = (data(), data(), data());
        let mask = vec![0.0f32; b * t];
        let shape = AttentionShape { keep_probs: false, ..AttentionShape::new(b, t, nh, hd) };
        let mut ctx = vec![0.0f32; n];
        let x = Qkv { q: &q[..], k: &k[..], v: &v[..] };
        let kernel = super::super::kernels::CpuKernels::best().i8;
        let time = |f: &mut dyn FnMut()| {
            f();
            (0..7)
                .map(|_| {
                    let s = Instant::now();
                    f();
                    s.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let f = time(&mut || attention_forward(&mut ctx, None, x, &mask, shape).unwrap());
        let i = time(&mut || attention_forward_int8(&mut ctx, x, &mask, shape, kernel).unwrap());
        println!("attention 32x128 (4 heads of 64): f32 {:.2} ms, int8 {:.2} ms ({kernel:?})", f * 1e3, i * 1e3);
        // Where an int8 head's time goes: each stage over every head of the layer, in turn.
        let mut ops = I8Head::new(kernel);
        let mut s = vec![0.0f32; t * t];
        let hidden = nh * hd;
        let flip = kernel.row_flip();
        let heads = || (0..b * nh).map(|i| (i / nh) * t * hidden + (i % nh) * hd);
        let stage = |name: &str, f: &mut dyn FnMut(usize)| {
            let secs = time(&mut || heads().for_each(&mut *f));
            println!("  {name:22} {:.3} ms per layer", secs * 1e3);
        };
        stage("quantize q, k", &mut |at| {
            ops.q.quantize_strided(&q[at..], t, hd, hidden, kernel).unwrap();
            ops.k.quantize_strided(&k[at..], t, hd, hidden, kernel).unwrap();
        });
        stage("pack k", &mut |_| ops.keys.set_rows(&ops.k).unwrap());
        stage("quantize + pack v", &mut |at| {
            ops.values.set_cols(&v[at..], (t, hd, hidden), &[], &mut ops.stage).unwrap()
        });
        stage("q·kᵀ", &mut |_| int8::matmul(&mut s, t, &ops.q, 0..t, &ops.keys, 0..t));
        let mut levels = |_| {
            let mb = &mask[..t];
            ops.p
                .set_rows_with(t, t, kernel, |r, row| {
                    1.0 / simd::softmax_levels(&mut s[r * t..(r + 1) * t], 0.125, mb, row, flip)
                })
                .unwrap()
        };
        stage("softmax levels", &mut levels);
        // SAFETY: `at` + rows of `hidden` stay inside ctx (n elements), columns < hd.
        stage("p·v", &mut |at| unsafe {
            int8::matmul_raw(kernel, ctx.as_mut_ptr().add(at), hidden, &ops.p, 0..t, &ops.values, 0..hd)
        });
    }
}
