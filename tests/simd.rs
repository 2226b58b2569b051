//! The SIMD kernels (AVX-512, AVX2+FMA) give bit-identical results to the portable scalar
//! variant on every length 0..100 (full vectors, masked tails, both), for every variant this CPU
//! supports; and the math kernels stay close to the exact functions.

use electra::backend::cpu::simd::{self, with, Isa};

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + 1.0) * 0.7548 + seed as f32 * 0.31).sin() * 3.0 + (i % 5) as f32 * 0.1).collect()
}

fn variants() -> Vec<Isa> {
    let v = Isa::available();
    eprintln!("variants on this CPU: {v:?}");
    v
}

fn same(what: &str, isa: Isa, n: usize, got: &[f32], want: &[f32]) {
    let g: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
    let w: Vec<u32> = want.iter().map(|x| x.to_bits()).collect();
    assert_eq!(g, w, "{what}: {isa:?} differs from scalar at length {n}");
}

#[test]
fn elementwise_kernels_match_scalar() {
    for isa in variants() {
        for n in 0..100 {
            let x = data(n, 1);
            let y = data(n, 2);
            let run = |isa: Isa| {
                let mut a = vec![0.5f32; n];
                with::gelu_forward(isa, &mut a, &x);
                let mut b = vec![0.0f32; n];
                with::gelu_backward(isa, &mut b, &y, &x);
                let mut c = y.clone();
                with::gelu_backward_inplace(isa, &mut c, &x);
                let mut d = y.clone();
                with::add_assign(isa, &mut d, &x);
                let mut e = x.clone();
                with::scaled_exp_inplace(isa, &mut e, 0.25, 1.5);
                [a, b, c, d, e]
            };
            let want = run(Isa::Scalar);
            let got = run(isa);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                same(&format!("elementwise kernel {k}"), isa, n, g, w);
            }
        }
    }
}

#[test]
fn row_kernels_match_scalar() {
    for isa in variants() {
        for n in 1..100 {
            let x = data(n, 3);
            let g = data(n, 4);
            let b = data(n, 5);
            let run = |isa: Isa| {
                let mut out = vec![0.0f32; n];
                let (mu, rs) = with::layer_norm_row(isa, &mut out, &x, &g, &b, 1e-12);
                let mut dx = data(n, 6);
                with::layer_norm_backward_row(
                    isa,
                    &mut dx,
                    simd::LnRow { dout: &b, x: &x, g: &g, mean: mu, rstd: rs },
                    true,
                );
                let mut dg = data(n, 7);
                let mut db = data(n, 8);
                with::ln_param_grad_row(isa, &mut dg, &mut db, &b, &x, mu, rs);
                let mask: Vec<f32> = (0..n).map(|i| if i % 7 == 3 { f32::MIN } else { 0.0 }).collect();
                let mut sm = x.clone();
                with::softmax_scaled_masked(isa, &mut sm, 0.125, &mask);
                let mut ds = g.clone();
                with::softmax_backward(isa, &mut ds, &sm);
                let mut pre = x.clone();
                let mut act = vec![0.0f32; n];
                with::bias_gelu(isa, &mut pre, &mut act, &b);
                let mut rows = [x.clone(), x.clone()].concat();
                with::add_rows(isa, &mut rows, &b);
                let scalars = vec![mu, rs, with::max(isa, &x), with::sum_exp(isa, &x, 1.0)];
                [out, dx, dg, db, sm, ds, pre, act, rows, scalars]
            };
            let want = run(Isa::Scalar);
            let got = run(isa);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                same(&format!("row kernel {k}"), isa, n, g, w);
            }
        }
    }
}

#[test]
fn column_kernels_match_scalar() {
    for isa in variants() {
        for n in 1..100 {
            let rows = 7;
            let stride = n + 3;
            let d = data(rows * stride, 9);
            let x = data(rows * stride, 10);
            let mean = data(rows, 11);
            let rstd: Vec<f32> = data(rows, 12).iter().map(|v| v.abs() + 0.5).collect();
            let run = |isa: Isa| {
                let mut acc = data(n, 13);
                with::column_sums(isa, &mut acc, &d, rows, stride);
                let mut dg = data(n, 14);
                let mut db = data(n, 15);
                with::ln_param_grads(
                    isa,
                    &mut dg,
                    &mut db,
                    simd::LnRows { dout: &d, x: &x, mean: &mean, rstd: &rstd, stride },
                );
                [acc, dg, db]
            };
            let want = run(Isa::Scalar);
            let got = run(isa);
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                same(&format!("column kernel {k}"), isa, n, g, w);
            }
            // And the register-blocked sums equal a plain loop, rows in order.
            let mut plain = data(n, 13);
            for r in 0..rows {
                for j in 0..n {
                    plain[j] += d[r * stride + j];
                }
            }
            same("column_sums vs loop", isa, n, &run(isa)[0], &plain);
        }
    }
}

#[test]
fn math_is_accurate_and_handles_extremes() {
    for i in -3000..=3000 {
        let x = i as f32 * 0.01;
        let g = simd::gelu(x) as f64;
        let exact = 0.5 * x as f64 * (1.0 + libm::erf(x as f64 / std::f64::consts::SQRT_2));
        // erf's rational approximation is good to ~2e-7 absolute (a few ulp of ±1).
        assert!((g - exact).abs() <= 6e-7 + 2e-7 * exact.abs(), "gelu({x}) = {g}, exact {exact}");
    }
    let mut row = vec![1.0f32, f32::MIN, 2.0, f32::MIN];
    simd::softmax_scaled_masked(&mut row, 1.0, &[0.0; 4]);
    assert_eq!((row[1], row[3]), (0.0, 0.0));
    assert!((row[0] + row[2] - 1.0).abs() < 1e-6);
    assert!(simd::expf(f32::NAN).is_nan());
    assert!(simd::gelu(f32::NAN).is_nan());
    assert_eq!(simd::expf(0.0), 1.0);
}
