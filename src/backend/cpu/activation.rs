//! Elementwise activations (HF `ACT2FN` names) and their derivatives, side by side. GELU (the
//! ELECTRA default) runs through the SIMD kernels; the others through the scalar formulas below.
//! Both are split over the current pool.

use super::par::rows_mut;
use super::simd;
use crate::layers::Activation;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// f(x) for one element.
#[inline]
pub fn act(a: Activation, x: f32) -> f32 {
    match a {
        Activation::Gelu => simd::gelu(x),
        Activation::GeluTanh => 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh()),
        Activation::GeluFast => 0.5 * x * (1.0 + (x * SQRT_2_OVER_PI * (1.0 + 0.044715 * x * x)).tanh()),
        Activation::QuickGelu => x * sigmoid(1.702 * x),
        Activation::Relu => x.max(0.0),
        Activation::Silu => x * sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => sigmoid(x),
        Activation::Linear => x,
    }
}

/// f'(x) for one element.
#[inline]
pub fn act_grad(a: Activation, x: f32) -> f32 {
    match a {
        Activation::Gelu => simd::gelu_grad(x),
        Activation::GeluTanh | Activation::GeluFast => {
            let t = (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
        }
        Activation::QuickGelu => {
            let s = sigmoid(1.702 * x);
            s + 1.702 * x * s * (1.0 - s)
        }
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Silu => {
            let s = sigmoid(x);
            s + x * s * (1.0 - s)
        }
        Activation::Tanh => {
            let t = x.tanh();
            1.0 - t * t
        }
        Activation::Sigmoid => {
            let s = sigmoid(x);
            s * (1.0 - s)
        }
        Activation::Linear => 1.0,
    }
}

/// Elements per parallel block.
const BLOCK: usize = 1 << 14;

/// `out[i] = f(x[i])`.
pub fn activation_forward(out: &mut [f32], x: &[f32], a: Activation) {
    let n = out.len().min(x.len());
    rows_mut(&mut out[..n], 1, BLOCK, |s, block| activation_serial(block, &x[s..s + block.len()], a));
}

/// `out[i] = f(x[i])` on the calling thread.
pub fn activation_serial(out: &mut [f32], x: &[f32], a: Activation) {
    match a {
        Activation::Gelu => simd::gelu_forward(out, x),
        _ => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = act(a, v);
            }
        }
    }
}

/// `dx[i] = dout[i]·f'(x[i])` (assigned).
pub fn activation_backward(dx: &mut [f32], dout: &[f32], x: &[f32], a: Activation) {
    let n = dx.len().min(dout.len()).min(x.len());
    rows_mut(&mut dx[..n], 1, BLOCK, |s, block| {
        let e = s + block.len();
        match a {
            Activation::Gelu => simd::gelu_backward(block, &dout[s..e], &x[s..e]),
            _ => {
                for ((d, &g), &v) in block.iter_mut().zip(&dout[s..e]).zip(&x[s..e]) {
                    *d = g * act_grad(a, v);
                }
            }
        }
    });
}

/// `d[i] *= f'(x[i])` on the calling thread.
pub fn activation_backward_serial_inplace(d: &mut [f32], x: &[f32], a: Activation) {
    match a {
        Activation::Gelu => simd::gelu_backward_inplace(d, x),
        _ => {
            for (g, &v) in d.iter_mut().zip(x) {
                *g *= act_grad(a, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_central_differences() {
        for a in Activation::ALL {
            for i in -30..=30 {
                let x = i as f32 * 0.173 + 0.01;
                let h = 1e-2f32;
                let fd = (act(a, x + h) - act(a, x - h)) / (2.0 * h);
                let g = act_grad(a, x);
                assert!((fd - g).abs() < 2e-3, "{a:?} at {x}: fd {fd} vs {g}");
            }
        }
    }

    #[test]
    fn gelu_known_values() {
        // torch.nn.functional.gelu(torch.tensor([1.0, -0.5, 2.0]))
        let want = [0.841_344_7f32, -0.154_269_3, 1.954_5];
        for (x, w) in [1.0f32, -0.5, 2.0].iter().zip(want) {
            assert!((act(Activation::Gelu, *x) - w).abs() < 1e-4);
        }
    }
}
