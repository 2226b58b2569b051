//! The optimizer's kernels: the squared global norm, gradient scaling (clipping) and AdamW.
//! All three are single passes in element order, so they do not depend on the thread count.

use crate::backend::{AdamStep, AdamTensor};

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

/// One AdamW update of each listed tensor (see [`crate::backend::Backend::adamw`]).
pub fn adamw(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], tensors: &[AdamTensor], k: &AdamStep) {
    let (b1, b2) = (k.beta1, k.beta2);
    for t in tensors {
        let r = t.span.off..t.span.off + t.span.len;
        let (lr, wd) = (t.lr, t.weight_decay);
        for (((p, &g), mi), vi) in
            params[r.clone()].iter_mut().zip(&grads[r.clone()]).zip(&mut m[r.clone()]).zip(&mut v[r])
        {
            *mi = b1 * *mi + (1.0 - b1) * g;
            *vi = b2 * *vi + (1.0 - b2) * g * g;
            let update = (*mi / k.c1) / ((*vi / k.c2).sqrt() + k.epsilon) + wd * *p;
            *p -= lr * update;
        }
    }
}
