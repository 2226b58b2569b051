//! The optimizer's kernels: the squared global norm, gradient scaling (clipping) and AdamW.
//! The norm is one pass in element order; AdamW updates each element on its own, in parallel
//! chunks; neither depends on the thread count.

use crate::backend::{AdamStep, AdamTensor};

/// The largest |x| (0 for an empty slice); NaN is ignored, so call it on finite values.
pub fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |a, &b| a.max(b.abs()))
}

/// Σ x², accumulated in f64 in element order.
pub fn sum_squares(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
}

/// `x *= s`.
pub fn scale(x: &mut [f32], s: f32) {
    for v in x.iter_mut() {
        *v *= s;
    }
}

/// `dst += src`, in parallel chunks (each element on its own: any thread count, same bits).
pub fn add(dst: &mut [f32], src: &[f32]) {
    const CHUNK: usize = 1 << 16;
    super::par::chunks_mut(dst, CHUNK, |i, d| {
        for (a, b) in d.iter_mut().zip(src.get(i * CHUNK..).unwrap_or_default()) {
            *a += *b;
        }
    });
}

/// One AdamW update of each listed tensor (see [`crate::backend::Backend::adamw`]). With
/// `check`, all or nothing: when any updated weight or moment of any tensor would be NaN or
/// infinite, nothing is written and the index (into `tensors`) of the first such tensor is
/// returned. Without it the caller has proved the result finite (see `optim::Bounds`).
///
/// The check is a first, read-only pass that computes every new value; only when all are
/// finite does the second pass compute them again and write them. Both passes run the same
/// arithmetic in the same order, so the committed values are bit-identical to a single pass.
pub fn adamw(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    tensors: &[AdamTensor],
    k: &AdamStep,
    check: bool,
) -> Option<usize> {
    if check {
        if let Some(bad) = tensors.iter().position(|t| !tensor_stays_finite(params, grads, m, v, t, k)) {
            return Some(bad);
        }
    }
    for t in tensors {
        let r = t.span.off..t.span.off + t.span.len;
        let g = &grads[r.clone()];
        super::par::chunks3_mut(&mut params[r.clone()], &mut m[r.clone()], &mut v[r], ADAM_CHUNK, |i, p, m, v| {
            for (((p, &g), mi), vi) in p.iter_mut().zip(&g[i * ADAM_CHUNK..]).zip(m).zip(v) {
                (*p, *mi, *vi) = step(*p, g, *mi, *vi, t, k);
            }
        });
    }
    None
}

/// Elements per AdamW task: large tensors (the word embeddings, the feed-forward weights) split
/// over the pool, small ones (biases, LayerNorms) run in one piece on the calling thread.
const ADAM_CHUNK: usize = 1 << 15;

/// The AdamW update of one element: the new weight, first and second moment.
#[inline(always)]
fn step(p: f32, g: f32, m: f32, v: f32, t: &AdamTensor, k: &AdamStep) -> (f32, f32, f32) {
    let m = k.beta1 * m + (1.0 - k.beta1) * g;
    let v = k.beta2 * v + (1.0 - k.beta2) * g * g;
    let update = (m / k.c1) / ((v / k.c2).sqrt() + k.epsilon) + t.weight_decay * p;
    (p - t.lr * update, m, v)
}

/// Whether updating tensor `t` keeps its weights and both moments finite (reads only). A
/// moment must be checked on its own: an infinite second moment gives a finite weight.
fn tensor_stays_finite(params: &[f32], grads: &[f32], m: &[f32], v: &[f32], t: &AdamTensor, k: &AdamStep) -> bool {
    let r = t.span.off..t.span.off + t.span.len;
    let (params, grads, m, v) = (&params[r.clone()], &grads[r.clone()], &m[r.clone()], &v[r]);
    let bad = std::sync::atomic::AtomicBool::new(false);
    super::par::for_each(params.len().div_ceil(ADAM_CHUNK), |i| {
        let c = i * ADAM_CHUNK..((i + 1) * ADAM_CHUNK).min(params.len());
        // A `&` over the whole chunk, without early exit, so the loop vectorises.
        let ok = params[c.clone()].iter().zip(&grads[c.clone()]).zip(&m[c.clone()]).zip(&v[c]).fold(
            true,
            |ok, (((&p, &g), &mi), &vi)| {
                let (p, mi, vi) = step(p, g, mi, vi, t, k);
                ok & p.is_finite() & mi.is_finite() & vi.is_finite()
            },
        );
        if !ok {
            bad.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    !bad.into_inner()
}
