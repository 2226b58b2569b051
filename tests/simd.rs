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
                // The fused post-LN epilogue: the bits of the two adds and the LayerNorm.
                let (mut fused, mut fout) = (x.clone(), vec![0.0f32; n]);
                let (fmu, frs) = with::residual_layer_norm_row(isa, &mut fout, &mut fused, (&g, &b), (&b, &g, 1e-5));
                let mut plain = x.clone();
                with::add_assign(isa, &mut plain, &g);
                with::add_assign(isa, &mut plain, &b);
                let mut pout = vec![0.0f32; n];
                let (pmu, prs) = with::layer_norm_row(isa, &mut pout, &plain, &b, &g, 1e-5);
                same("residual_layer_norm_row sum", isa, n, &fused, &plain);
                same("residual_layer_norm_row out", isa, n, &fout, &pout);
                same("residual_layer_norm_row stats", isa, n, &[fmu, frs], &[pmu, prs]);
                let scalars = vec![mu, rs, with::max(isa, &x), with::sum_exp(isa, &x, 1.0), fmu, frs];
                [out, dx, dg, db, sm, ds, pre, act, rows, scalars, fout, fused]
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

/// The int8 helpers for attention: `softmax_levels` (the softmax's numerators as int8 levels)
/// and `quant_cols` (per-column quantization) give the same bytes, sums and scales on every
/// variant, and follow their definitions.
#[test]
fn int8_attention_kernels_match_scalar_and_their_definitions() {
    for isa in variants() {
        for n in 1..100 {
            let x = data(n, 16);
            let mask: Vec<f32> = (0..n).map(|i| if i % 5 == 2 { f32::MIN } else { 0.0 }).collect();
            for flip in [0u8, 0x80] {
                let run = |isa: Isa| {
                    let (mut row, mut out) = (x.clone(), vec![7u8; n]);
                    let sum = with::softmax_levels(isa, &mut row, 0.7, &mask, &mut out, flip);
                    (row, out, sum)
                };
                let (row, out, sum) = run(Isa::Scalar);
                let (grow, gout, gsum) = run(isa);
                same("softmax_levels row", isa, n, &grow, &row);
                assert_eq!((gout.clone(), gsum.to_bits()), (out.clone(), sum.to_bits()), "{isa:?} n {n}");
                // Definition: round(127·e^(s − max)) with s = x·0.7 + mask; the largest is 127.
                let s: Vec<f64> = x.iter().zip(&mask).map(|(&v, &m)| v as f64 * 0.7 + m as f64).collect();
                let max = s.iter().cloned().fold(f64::MIN, f64::max);
                let levels: Vec<i32> = out.iter().map(|&b| (b ^ flip) as i8 as i32).collect();
                assert_eq!(*levels.iter().max().unwrap(), 127);
                assert_eq!(levels.iter().sum::<i32>() as f32, sum);
                for (j, (&l, &sj)) in levels.iter().zip(&s).enumerate() {
                    let want = 127.0 * (sj - max).exp();
                    assert!((l as f64 - want).abs() <= 0.5 + 1e-4 * want, "level {j}: {l} vs {want}");
                    if mask[j] != 0.0 {
                        assert_eq!(l, 0);
                    }
                }
            }
            // A NaN score: its lane stores 0 and the sum is NaN (the row's outputs then are).
            let (mut row, mut out) = (x.clone(), vec![0u8; n]);
            row[n / 2] = f32::NAN;
            assert!(with::softmax_levels(isa, &mut row, 1.0, &vec![0.0; n], &mut out, 0).is_nan());

            // Columns: 5 rows of n at a stride of n + 2, with a zero column, a tiny one and (for
            // n > 3) a NaN and an infinity.
            let (rows, stride) = (5, n + 2);
            let mut m = data(rows * stride, 17);
            for r in 0..rows {
                m[r * stride] = 0.0;
                if n > 1 {
                    m[r * stride + 1] = if r == 2 { 1e-38 } else { 0.0 };
                }
            }
            if n > 3 {
                m[stride + 2] = f32::NAN;
                m[3 * stride + 3] = f32::INFINITY;
            }
            let run = |isa: Isa| {
                let (mut out, mut scale) = (vec![9u8; rows * n], vec![5.0f32; n]);
                with::quant_cols(isa, &m, stride, &[], &mut out, &mut scale);
                (out, scale)
            };
            let (out, scale) = run(Isa::Scalar);
            let (gout, gscale) = run(isa);
            assert_eq!(gout, out, "quant_cols bytes: {isa:?} n {n}");
            same("quant_cols scales", isa, n, &gscale, &scale);
            for c in 0..n {
                let col: Vec<f32> = (0..rows).map(|r| m[r * stride + c]).collect();
                let amax = col.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let q = |r: usize| out[r * n + c] as i8;
                if col.iter().any(|v| !v.is_finite()) {
                    assert!(scale[c].is_nan() && (0..rows).all(|r| q(r) == 0), "column {c}");
                } else if amax == 0.0 {
                    assert!(scale[c] == 0.0 && (0..rows).all(|r| q(r) == 0), "column {c}");
                } else {
                    assert_eq!(scale[c], amax / 127.0, "column {c}");
                    for (r, &v) in col.iter().enumerate() {
                        let want = (v * (127.0 / amax)).round_ties_even().clamp(-127.0, 127.0) as i8;
                        assert_eq!(q(r), want, "column {c} row {r}");
                    }
                }
            }
            // Rows left out (skip ≠ 0) are zeros and no part of a scale: the NaN and infinity
            // rows skipped, as is a huge row, give the other rows' quantization alone.
            let mut m2 = m.clone();
            m2[4 * stride..4 * stride + n].fill(1e30);
            let skip = [0.0, f32::MIN, 0.0, f32::MIN, f32::MIN];
            let (mut out2, mut scale2) = (vec![9u8; rows * n], vec![5.0f32; n]);
            with::quant_cols(isa, &m2, stride, &skip, &mut out2, &mut scale2);
            let kept = [m[..n].to_vec(), vec![0.0; n], m[2 * stride..2 * stride + n].to_vec()].concat();
            let (mut out3, mut scale3) = (vec![9u8; 3 * n], vec![5.0f32; n]);
            with::quant_cols(Isa::Scalar, &kept, n, &[], &mut out3, &mut scale3);
            same("quant_cols skip scales", isa, n, &scale2, &scale3);
            assert_eq!(&out2[..3 * n], &out3[..], "quant_cols skip bytes: {isa:?} n {n}");
            assert!(out2[3 * n..].iter().all(|&b| b == 0));
        }
    }
}
