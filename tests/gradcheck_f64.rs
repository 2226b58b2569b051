//! Finite-difference checks, in f64, of every op's hand-written backward, and of the encoder
//! tower and the three heads built from them.
//!
//! Each check sets up a tiny seeded problem and runs our f32 forward and backward with a fixed
//! random output gradient R, so the analytic side is ∇L for L = Σ out·R (for the losses, L is the
//! scaled loss itself). The numeric side is central differences, in every input coordinate, of a
//! naive f64 reference forward written here from the math with HuggingFace semantics: plain
//! loops, exact erf (`libm::erf`), no SIMD, no fusion, nothing shared with the library but the
//! parameter layout.
//!
//! Why f64: the f32 forward's own rounding noise limits f32 finite differences to about 1e-3
//! relative (tests/gradcheck.rs accepts 1e-2). Differencing an f64 reference instead makes the
//! numeric side exact to about 1e-9, so the comparison measures only our backward, and the
//! tolerance can be 1e-4: per element |analytic − numeric| ≤ 1e-4·max(|numeric|, 1e-2·scale),
//! scale being the largest |numeric| of the quantity (an absolute floor of 1e-6·scale, for the
//! f32 rounding of elements near zero). Every reference forward is also checked against our f32
//! forward, so a failure points at the backward, not at the reference. The last test shows that
//! the check does fail on a slightly perturbed gradient and on a slightly wrong reference.
//!
//! `cargo test --test gradcheck_f64 -- --nocapture --test-threads=1` prints the worst error of
//! each op as a table.

mod common;
use common::reference::*;
use electra::backend::cpu::{activation, attention, embedding, layer_norm, loss, matmul};
use electra::backend::{Activated, Activation, AttentionShape, Dropout, KeystreamAt, LnStats, Qkv, Tokens};
use embedding::Tables;
use layer_norm::{LnGrads, LnParams};
use matmul::{LinearGrads, LinearShape};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------------------
// Ops.

#[test]
fn linear() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (n, din, dout) = (6, 21, 19);
    let (x, w, b, r) = (
        rnd(&mut rng, n * din, 1.0),
        rnd(&mut rng, dout * din, 1.0),
        rnd(&mut rng, dout, 1.0),
        rnd(&mut rng, n * dout, 1.0),
    );
    let f = |x: &[f64], w: &[f64], b: &[f64]| dot(&ref_linear(x, w, Some(b), din, dout), &r);
    let (x64, w64, b64) = (f64s(&x), f64s(&w), f64s(&b));
    let nx = numeric_grad(&x, |v| f(v, &w64, &b64));
    let nw = numeric_grad(&w, |v| f(&x64, v, &b64));
    let nb = numeric_grad(&b, |v| f(&x64, &w64, v));

    let mut y = vec![0.0; n * dout];
    matmul::linear_forward(&mut y, &x, &w, Some(&b), n, din, dout);
    check_forward("linear", &y, &ref_linear(&x64, &w64, Some(&b64), din, dout));
    let (mut dx, mut dw, mut db) = (vec![0.0; n * din], vec![0.0; dout * din], vec![0.0; dout]);
    let shape = LinearShape { n, din, dout };
    let g = LinearGrads { dw: &mut dw, db: Some(&mut db) };
    matmul::linear_backward(Some(&mut dx), g, &r, &x, &w, shape, false);
    check("linear", &[("dX", &dx, &nx), ("dW", &dw, &nw), ("db", &db, &nb)]);

    // A second call accumulates everything (dx too, with accumulate_dx): each doubles.
    let g = LinearGrads { dw: &mut dw, db: Some(&mut db) };
    matmul::linear_backward(Some(&mut dx), g, &r, &x, &w, shape, true);
    let half = |v: &[f32]| v.iter().map(|g| g / 2.0).collect::<Vec<f32>>();
    check("linear (accumulated, halved)", &[("dX", &half(&dx), &nx), ("dW", &half(&dw), &nw), ("db", &half(&db), &nb)]);
}

/// `y = f(x·W1ᵀ + b1)·W2ᵀ + b2` through `linear_act_forward` and `linear_backward_through_act`
/// (the fused feed-forward backward), for every activation, on one thread (row blocks) and on
/// four (the whole product, then the derivative).
#[test]
fn linear_through_activation() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let (n, din, hid, dout) = (5, 7, 19, 6);
    for a in Activation::ALL {
        let (x, w1, b1, w2, b2, r) = (
            rnd(&mut rng, n * din, 1.0),
            rnd(&mut rng, hid * din, 1.0),
            rnd(&mut rng, hid, 1.0),
            rnd(&mut rng, dout * hid, 1.0),
            rnd(&mut rng, dout, 1.0),
            rnd(&mut rng, n * dout, 1.0),
        );
        let forward = |x: &[f64], w1: &[f64], b1: &[f64], w2: &[f64], b2: &[f64]| {
            let act = ref_act_all(a, &ref_linear(x, w1, Some(b1), din, hid));
            ref_linear(&act, w2, Some(b2), hid, dout)
        };
        let [x6, w16, b16, w26, b26] = [&x, &w1, &b1, &w2, &b2].map(|v| f64s(v));
        let nx = numeric_grad(&x, |v| dot(&forward(v, &w16, &b16, &w26, &b26), &r));
        let nw1 = numeric_grad(&w1, |v| dot(&forward(&x6, v, &b16, &w26, &b26), &r));
        let nb1 = numeric_grad(&b1, |v| dot(&forward(&x6, &w16, v, &w26, &b26), &r));
        let nw2 = numeric_grad(&w2, |v| dot(&forward(&x6, &w16, &b16, v, &b26), &r));
        let nb2 = numeric_grad(&b2, |v| dot(&forward(&x6, &w16, &b16, &w26, v), &r));
        for threads in [1, 4] {
            let (pre, act, y) = on_threads(threads, || {
                let (mut pre, mut act, mut y) = (vec![0.0; n * hid], vec![0.0; n * hid], vec![0.0; n * dout]);
                let h = Activated { pre: &mut pre[..], act: &mut act[..], f: a };
                matmul::linear_act_forward(h, &x, &w1, &b1, LinearShape { n, din, dout: hid });
                matmul::linear_forward(&mut y, &act, &w2, Some(&b2), n, hid, dout);
                (pre, act, y)
            });
            if a == Activation::Relu {
                // Central differences need every pre-activation away from the kink.
                assert!(pre.iter().all(|p| p.abs() > 1e-3), "a ReLU input sits on the kink");
            }
            check_forward(&format!("linear+{a:?}"), &y, &forward(&x6, &w16, &b16, &w26, &b26));
            let (mut d_pre, mut dw2, mut db2) = (vec![0.0; n * hid], vec![0.0; dout * hid], vec![0.0; dout]);
            let (mut dx, mut dw1, mut db1) = (vec![0.0; n * din], vec![0.0; hid * din], vec![0.0; hid]);
            on_threads(threads, || {
                let (g2, x2) = (
                    LinearGrads { dw: &mut dw2, db: Some(&mut db2) },
                    Activated { pre: &pre[..], act: &act[..], f: a },
                );
                matmul::linear_backward_through_act(&mut d_pre, g2, &r, x2, &w2, LinearShape { n, din: hid, dout });
                let g1 = LinearGrads { dw: &mut dw1, db: Some(&mut db1) };
                matmul::linear_backward(Some(&mut dx), g1, &d_pre, &x, &w1, LinearShape { n, din, dout: hid }, false);
            });
            check(
                &format!("linear+{a:?}+linear ({threads} thr)"),
                &[("dX", &dx, &nx), ("dW1", &dw1, &nw1), ("db1", &db1, &nb1), ("dW2", &dw2, &nw2), ("db2", &db2, &nb2)],
            );
        }
    }
}

#[test]
fn layer_norm_op() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let (n, c) = (4, 37);
    // eps = 1e-12 (ELECTRA's) and a large eps on low-variance rows, where it shapes the result.
    for (eps, spread) in [(1e-12, 2.0), (0.05, 0.2)] {
        let (mut x, g, b, r) =
            (rnd(&mut rng, n * c, spread), rnd(&mut rng, c, 1.0), rnd(&mut rng, c, 1.0), rnd(&mut rng, n * c, 1.0));
        x.iter_mut().enumerate().for_each(|(i, v)| *v += (i / c) as f32 - 1.5); // a different mean per row
        let f = |x: &[f64], g: &[f64], b: &[f64]| dot(&ref_layer_norm(x, g, b, c, eps), &r);
        let (x64, g64, b64) = (f64s(&x), f64s(&g), f64s(&b));
        let nx = numeric_grad(&x, |v| f(v, &g64, &b64));
        let ng = numeric_grad(&g, |v| f(&x64, v, &b64));
        let nb = numeric_grad(&b, |v| f(&x64, &g64, v));

        let (mut y, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
        let stats = LnStats { mean: &mut mean[..], rstd: &mut rstd[..] };
        layer_norm::layer_norm_forward(&mut y, stats, &x, LnParams { g: &g, b: &b, eps }, n, c);
        check_forward("layer_norm", &y, &ref_layer_norm(&x64, &g64, &b64, c, eps));
        let (mut dx, mut dg, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
        let d = LnGrads { dx: &mut dx, dg: &mut dg, db: &mut db };
        layer_norm::layer_norm_backward(d, &r, &x, &g, LnStats { mean: &mean, rstd: &rstd }, n, c);
        check(&format!("layer_norm (eps {eps:.0e})"), &[("dX", &dx, &nx), ("dgamma", &dg, &ng), ("dbeta", &db, &nb)]);
    }
}

#[test]
fn activations() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let n = 53; // three 16-lane vectors and a tail
    for a in Activation::ALL {
        let (mut x, r) = (rnd(&mut rng, n, 4.0), rnd(&mut rng, n, 1.0));
        // Keep ReLU's kink out of reach of the difference step.
        x.iter_mut().filter(|v| v.abs() < 1e-3).for_each(|v| *v += 0.01);
        let nx = numeric_grad(&x, |v| dot(&ref_act_all(a, v), &r));
        let mut y = vec![0.0; n];
        activation::activation_forward(&mut y, &x, a);
        check_forward(&format!("{a:?}"), &y, &ref_act_all(a, &f64s(&x)));
        let mut dx = vec![0.0; n];
        activation::activation_backward(&mut dx, &r, &x, a);
        let mut inplace = r.clone();
        activation::activation_backward_serial_inplace(&mut inplace, &x, a);
        check(&format!("activation {a:?}"), &[("dX", &dx, &nx), ("dX (in place)", &inplace, &nx)]);
    }
}

#[test]
fn attention_op() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    // Two rows of 17 tokens (softmax rows longer than one vector), the second with 5 padded
    // keys; then one row of 5 tokens without a mask.
    // Last, the first shape again with dropout on the probabilities, its mask fixed by the key.
    let padded: Vec<i32> = (0..34).map(|i| i32::from(i < 29)).collect();
    let key = KeystreamAt { key: [7, 1, 2, 3, 4, 5, 6, 9], stream: 3, word_pos: 0 };
    for (d, am, drop) in [
        (Heads { b: 2, t: 17, nh: 2, hd: 3 }, Some(padded.clone()), None),
        (Heads { b: 1, t: 5, nh: 3, hd: 4 }, None, None),
        (Heads { b: 2, t: 17, nh: 2, hd: 3 }, Some(padded), Dropout::new(0.3, key)),
    ] {
        let (n, h) = (d.b * d.t, d.nh * d.hd);
        let [q, k, v, r] = [(); 4].map(|_| rnd(&mut rng, n * h, 1.5));
        let am = am.as_deref();
        let factor = drop.map(|m| {
            let mut f = vec![1.0f32; d.b * d.nh * d.t * d.t];
            m.apply(&mut f);
            assert!(f.contains(&0.0) && f.contains(&m.scale()), "the mask keeps some and drops some");
            f64s(&f)
        });
        let f = |q: &[f64], k: &[f64], v: &[f64]| dot(&ref_attention_dropped(q, k, v, am, d, factor.as_deref()), &r);
        let (q64, k64, v64) = (f64s(&q), f64s(&k), f64s(&v));
        let nq = numeric_grad(&q, |x| f(x, &k64, &v64));
        let nk = numeric_grad(&k, |x| f(&q64, x, &v64));
        let nv = numeric_grad(&v, |x| f(&q64, &k64, x));

        let mut mask = vec![0.0; n];
        attention::key_mask(&mut mask, am, n);
        let (mut ctx, mut p) = (vec![0.0; n * h], vec![0.0; d.b * d.nh * d.t * d.t]);
        let shape = AttentionShape { dropout: drop, ..AttentionShape::new(d.b, d.t, d.nh, d.hd) };
        attention::attention_forward(&mut ctx, Some(&mut p), Qkv { q: &q, k: &k, v: &v }, &mask, shape).unwrap();
        check_forward("attention", &ctx, &ref_attention_dropped(&q64, &k64, &v64, am, d, factor.as_deref()));
        let [mut dq, mut dk, mut dv] = [(); 3].map(|_| vec![0.0; n * h]);
        let mut scratch = vec![0.0; d.b * d.nh * d.t * d.t];
        let dx = Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] };
        let saved = attention::Saved { kept: Some((&mut scratch, &p)), mask_add: &mask };
        attention::attention_backward(dx, &r, saved, Qkv { q: &q, k: &k, v: &v }, shape).unwrap();
        let what = match (am.is_some(), drop.is_some()) {
            (_, true) => "attention (key padding, dropout 0.3)",
            (true, false) => "attention (key padding)",
            (false, false) => "attention (no mask)",
        };
        check(what, &[("dQ", &dq, &nq), ("dK", &dk, &nk), ("dV", &dv, &nv)]);
    }
}

#[test]
fn embedding_op() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let (b, t, e, vocab, types) = (2, 4, 19, 7, 3);
    let ids = [1, 0, 5, 5, 2, 5, 0, 6]; // repeats: the scatter must add
    let tt = [0, 1, 2, 0, 0, 1, 1, 2];
    let (word, pos, typ, r) = (
        rnd(&mut rng, vocab * e, 1.0),
        rnd(&mut rng, t * e, 1.0),
        rnd(&mut rng, types * e, 1.0),
        rnd(&mut rng, b * t * e, 1.0),
    );
    let f = |tables: [&[f64]; 3]| dot(&ref_embedding(&ids, Some(&tt), tables, t, e), &r);
    let (w64, p64, y64) = (f64s(&word), f64s(&pos), f64s(&typ));
    let nw = numeric_grad(&word, |x| f([x, &p64, &y64]));
    let np = numeric_grad(&pos, |x| f([&w64, x, &y64]));
    let ny = numeric_grad(&typ, |x| f([&w64, &p64, x]));

    let mut out = vec![0.0; b * t * e];
    let tokens = Tokens { ids: &ids[..], types: Some(&tt[..]), b, t };
    let tables = Tables { word: embedding::WordTable::F32(&word), pos: &pos[..], typ: &typ[..] };
    embedding::embedding_forward(&mut out, tokens, tables, e);
    check_forward("embedding", &out, &ref_embedding(&ids, Some(&tt), [&w64, &p64, &y64], t, e));
    for padding_idx in [None, Some(0)] {
        let (mut dw, mut dp, mut dy) = (vec![0.0; vocab * e], vec![0.0; t * e], vec![0.0; types * e]);
        let d = Tables { word: &mut dw[..], pos: &mut dp[..], typ: &mut dy[..] };
        embedding::embedding_backward(d, &r, tokens, e, padding_idx);
        let mut nw = nw.clone();
        if let Some(p) = padding_idx {
            // HF's padding_idx: the [PAD] row is used by the lookup but gets no gradient.
            assert!(dw[p * e..(p + 1) * e].iter().all(|&g| g == 0.0), "the padding row got a gradient");
            assert!(nw[p * e..(p + 1) * e].iter().any(|&g| g != 0.0));
            nw[p * e..(p + 1) * e].fill(0.0);
        }
        let what = if padding_idx.is_some() { "embedding (padding_idx 0)" } else { "embedding" };
        check(what, &[("dword", &dw, &nw), ("dpos", &dp, &np), ("dtype", &dy, &ny)]);
    }
}

#[test]
fn cross_entropy_op() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let (m, v, scale) = (5, 37, 1.7f32);
    let logits = rnd(&mut rng, m * v, 3.0);
    let targets = [3, 0, 36, 17, 3];
    let want = ref_cross_entropy(&f64s(&logits), &targets, v);
    let nl = numeric_grad(&logits, |x| scale as f64 * ref_cross_entropy(x, &targets, v));

    let mut dl = logits.clone();
    let (l, _) = loss::cross_entropy_in_place(&mut dl, &targets, m, v, scale, electra::backend::mean_denominator(m));
    check_forward("cross_entropy", &[l], &[want]);
    check("cross_entropy", &[("dlogits", &dl, &nl)]);
}

#[test]
fn binary_cross_entropy_op() {
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let n = 23;
    let (logits, scale) = (rnd(&mut rng, n, 4.0), 2.5f32);
    let labels: Vec<f32> = (0..n).map(|i| ((i * 7) % 3 == 0) as i32 as f32).collect();
    let weights: Vec<f32> = (0..n).map(|i| (i % 5 != 4) as i32 as f32).collect(); // some rows left out
    let want = ref_bce(&f64s(&logits), &labels, &weights);
    let nl = numeric_grad(&logits, |x| scale as f64 * ref_bce(x, &labels, &weights));
    let mut dl = vec![0.0; n];
    let (l, _) = loss::binary_cross_entropy(&logits, &labels, &weights, Some(&mut dl), scale, wsum(&weights));
    check_forward("binary_cross_entropy", &[l], &[want]);
    check("binary_cross_entropy", &[("dlogits", &dl, &nl)]);
}

// ---------------------------------------------------------------------------------------------
// The encoder tower and the heads, through their public backward.

// ---------------------------------------------------------------------------------------------
// The check itself.

/// The comparison catches a 1e-3 error in one gradient element, a LayerNorm reference without
/// the mean term, and the tanh GELU passed off as the erf one (derivatives at most 2% apart).
#[test]
fn check_detects_wrong_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let (n, c, eps) = (3, 11, 1e-12);
    let (x, g, b, r) =
        (rnd(&mut rng, n * c, 2.0), rnd(&mut rng, c, 1.0), rnd(&mut rng, c, 1.0), rnd(&mut rng, n * c, 1.0));
    let (mut y, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
    let stats = LnStats { mean: &mut mean[..], rstd: &mut rstd[..] };
    layer_norm::layer_norm_forward(&mut y, stats, &x, LnParams { g: &g, b: &b, eps }, n, c);
    let (mut dx, mut dg, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
    let d = LnGrads { dx: &mut dx, dg: &mut dg, db: &mut db };
    layer_norm::layer_norm_backward(d, &r, &x, &g, LnStats { mean: &mean, rstd: &rstd }, n, c);
    let (g64, b64) = (f64s(&g), f64s(&b));
    let nx = numeric_grad(&x, |v| dot(&ref_layer_norm(v, &g64, &b64, c, eps), &r));
    assert!(worst(&dx, &nx).rel <= TOL, "the unperturbed gradient passes");

    // One element of the analytic gradient off by 1e-3 of itself.
    let i = dx.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).unwrap().0;
    let mut off = dx.clone();
    off[i] *= 1.0 + 1e-3;
    let perturbed = worst(&off, &nx);
    println!("{:<34} detected: rel {:.2e} at [{}]", "perturbed dX (1e-3, one element)", perturbed.rel, perturbed.at);
    assert!(perturbed.rel > TOL && perturbed.at == i);

    // LayerNorm without the mean: x·rsqrt(mean(x²) + eps)·g + b.
    let rms_norm = |x: &[f64]| -> Vec<f64> {
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks_exact(c) {
            let rstd = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / c as f64 + eps).sqrt();
            y.extend(row.iter().zip(&g64).zip(&b64).map(|((v, g), b)| v * rstd * g + b));
        }
        y
    };
    let wrong = worst(&dx, &numeric_grad(&x, |v| dot(&rms_norm(v), &r)));
    println!("{:<34} detected: rel {:.2e}", "LayerNorm reference without mean", wrong.rel);
    assert!(wrong.rel > TOL);

    // The erf GELU's backward against the tanh approximation's derivative.
    let (xa, ra) = (rnd(&mut rng, 40, 3.0), rnd(&mut rng, 40, 1.0));
    let mut da = vec![0.0; 40];
    activation::activation_backward(&mut da, &ra, &xa, Activation::Gelu);
    let tanh_ref = worst(&da, &numeric_grad(&xa, |v| dot(&ref_act_all(Activation::GeluTanh, v), &ra)));
    println!("{:<34} detected: rel {:.2e}", "erf GELU vs tanh-GELU reference", tanh_ref.rel);
    assert!(tanh_ref.rel > TOL);
}

/// The BCE denominator of 0/1 weights: the count of weighted tokens, + 1e-6.
fn wsum(weights: &[f32]) -> f64 {
    electra::backend::mean_denominator(weights.iter().filter(|&&w| w > 0.0).count())
}
