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

use electra::config::Activation;
use electra::model::classifier::{ClsHead, ClsHeadActs};
use electra::model::encoder::{Encoder, EncoderActs, EncoderGrads};
use electra::model::heads::{DiscHead, DiscHeadActs, GenHead, GenHeadActs};
use electra::model::layers::{LayerNorm, Linear};
use electra::ops::{activation, attention, embedding, layer_norm, loss, matmul};
use electra::params::{ParamStore, Span};
use electra::{ElectraConfig, Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest accepted relative error of a gradient element.
const TOL: f64 = 1e-4;
/// Elements smaller than this fraction of the quantity's scale are compared against it instead.
const FLOOR: f64 = 1e-2;
/// Largest accepted relative error of our f32 forward against the f64 reference (f32 rounding,
/// and the 1.5e-7 of the erf approximation that our GELU shares with PyTorch's CPU kernel; the
/// worst measured is 1.5e-5, in the generator head, where a LayerNorm follows the GELU).
const FWD_TOL: f64 = 1e-4;
/// Central-difference step (relative to max(1, |x|)).
const STEP: f64 = 1e-5;

// ---------------------------------------------------------------------------------------------
// Comparison and reporting.

/// Uniform values in (−scale, scale).
fn rnd(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect()
}

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Σ y·r.
fn dot(y: &[f64], r: &[f32]) -> f64 {
    assert_eq!(y.len(), r.len(), "objective shape");
    y.iter().zip(r).map(|(a, &b)| a * b as f64).sum()
}

/// Central differences of `f` at `x` in every coordinate, in f64.
fn numeric_grad(x: &[f32], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut x = f64s(x);
    (0..x.len())
        .map(|i| {
            let x0 = x[i];
            let h = STEP * x0.abs().max(1.0);
            let (up, down) = (x0 + h, x0 - h);
            x[i] = up;
            let lp = f(&x);
            x[i] = down;
            let lm = f(&x);
            x[i] = x0;
            (lp - lm) / (up - down)
        })
        .collect()
}

/// The worst element of one comparison.
#[derive(Clone, Copy, Debug)]
struct Worst {
    /// |got − want| / max(|want|, FLOOR·scale): NaN counts as infinite.
    rel: f64,
    at: usize,
    got: f64,
    want: f64,
}

/// Compares `got` (ours) against `want` (the reference), elementwise relative to
/// max(|want|, FLOOR·scale) where scale is the largest |want|.
fn worst(got: &[f32], want: &[f64]) -> Worst {
    assert_eq!(got.len(), want.len(), "compared lengths differ");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut w = Worst { rel: 0.0, at: 0, got: 0.0, want: 0.0 };
    for (i, (&g, &n)) in got.iter().zip(want).enumerate() {
        let mut rel = (g as f64 - n).abs() / n.abs().max(FLOOR * scale).max(f64::MIN_POSITIVE);
        if rel.is_nan() {
            rel = f64::INFINITY;
        }
        if i == 0 || rel > w.rel {
            w = Worst { rel, at: i, got: g as f64, want: n };
        }
    }
    w
}

/// Checks each named gradient against its numeric counterpart (each must be within [`TOL`]) and
/// prints one row for the op: its worst quantity.
fn check(op: &str, grads: &[(&str, &[f32], &[f64])]) {
    let mut all: Vec<(&str, usize, Worst)> = grads.iter().map(|(what, a, n)| (*what, a.len(), worst(a, n))).collect();
    for (what, _, w) in &all {
        assert!(
            w.rel <= TOL,
            "{op} {what}: element {} analytic {:.9e} vs numeric {:.9e} (rel {:.2e} > {TOL:.0e})",
            w.at,
            w.got,
            w.want,
            w.rel
        );
    }
    all.sort_by(|a, b| b.2.rel.total_cmp(&a.2.rel));
    let (what, len, w) = all[0];
    let count: usize = all.iter().map(|q| q.1).sum();
    println!(
        "{op:<34} {count:>5} elems  worst rel {:.2e}  in {what}[{}] of {len} (analytic {:+.6e}, numeric {:+.6e})",
        w.rel, w.at, w.got, w.want
    );
}

/// Checks our f32 forward against the f64 reference (within [`FWD_TOL`]).
fn check_forward(op: &str, got: &[f32], want: &[f64]) {
    let w = worst(got, want);
    assert!(
        w.rel <= FWD_TOL,
        "{op} forward: element {} ours {:.9e} vs reference {:.9e} (rel {:.2e})",
        w.at,
        w.got,
        w.want,
        w.rel
    );
}

/// Splits a flat parameter gradient into its tensors, for [`check`].
fn by_tensor<'a>(params: &'a ParamStore, got: &'a [f32], want: &'a [f64]) -> Vec<(&'a str, &'a [f32], &'a [f64])> {
    params
        .infos()
        .iter()
        .map(|i| (i.name.as_str(), &got[i.offset..i.offset + i.len], &want[i.offset..i.offset + i.len]))
        .collect()
}

/// Runs `f` on a rayon pool of `threads` workers (the kernels split work over the current pool).
fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool").install(f)
}

// ---------------------------------------------------------------------------------------------
// Naive f64 reference forwards.

/// `x[n, din]·Wᵀ + b` with W `[dout, din]` (PyTorch layout).
fn ref_linear(x: &[f64], w: &[f64], b: Option<&[f64]>, din: usize, dout: usize) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len() / din * dout);
    for row in x.chunks_exact(din) {
        for o in 0..dout {
            let wo = &w[o * din..(o + 1) * din];
            let s: f64 = row.iter().zip(wo).map(|(a, b)| a * b).sum();
            y.push(s + b.map_or(0.0, |b| b[o]));
        }
    }
    y
}

/// LayerNorm over rows of `c`: `(x − mean)/sqrt(var + eps)·g + b`, biased variance (torch).
fn ref_layer_norm(x: &[f64], g: &[f64], b: &[f64], c: usize, eps: f64) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks_exact(c) {
        let mean = row.iter().sum::<f64>() / c as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        y.extend(row.iter().zip(g).zip(b).map(|((v, g), b)| (v - mean) * rstd * g + b));
    }
    y
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// HF `ACT2FN` activations.
fn ref_act(a: Activation, x: f64) -> f64 {
    let k = (2.0 / std::f64::consts::PI).sqrt();
    match a {
        Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        Activation::GeluTanh => 0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh()),
        Activation::GeluFast => 0.5 * x * (1.0 + (x * k * (1.0 + 0.044715 * x * x)).tanh()),
        Activation::QuickGelu => x * sigmoid(1.702 * x),
        Activation::Relu => x.max(0.0),
        Activation::Silu => x * sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => sigmoid(x),
        Activation::Linear => x,
    }
}

fn ref_act_all(a: Activation, x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| ref_act(a, v)).collect()
}

/// Attention shape: B batch rows of T tokens, NH heads of HD columns.
#[derive(Clone, Copy)]
struct Heads {
    b: usize,
    t: usize,
    nh: usize,
    hd: usize,
}

/// `softmax(Q·Kᵀ/√HD)·V` per batch row and head; keys whose `mask` is 0 are left out of the
/// softmax (what HF's additive `finfo.min` mask does whenever a row has an unmasked key).
fn ref_attention(q: &[f64], k: &[f64], v: &[f64], mask: Option<&[i32]>, d: Heads) -> Vec<f64> {
    let h = d.nh * d.hd;
    let scale = 1.0 / (d.hd as f64).sqrt();
    let mut ctx = vec![0.0; d.b * d.t * h];
    for bi in 0..d.b {
        let keys: Vec<usize> = (0..d.t).filter(|&j| mask.is_none_or(|m| m[bi * d.t + j] != 0)).collect();
        for head in 0..d.nh {
            let col = |row: usize| bi * d.t * h + row * h + head * d.hd;
            for i in 0..d.t {
                let qi = &q[col(i)..col(i) + d.hd];
                let s: Vec<f64> = keys
                    .iter()
                    .map(|&j| qi.iter().zip(&k[col(j)..]).map(|(a, b)| a * b).sum::<f64>() * scale)
                    .collect();
                let max = s.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for (&j, ej) in keys.iter().zip(&e) {
                    for c in 0..d.hd {
                        ctx[col(i) + c] += ej / z * v[col(j) + c];
                    }
                }
            }
        }
    }
    ctx
}

/// `word[id] + type[ty] + pos[t]` per token of width `e`.
fn ref_embedding(ids: &[i32], types: Option<&[i32]>, tables: [&[f64]; 3], t: usize, e: usize) -> Vec<f64> {
    let [word, pos, typ] = tables;
    let mut out = Vec::with_capacity(ids.len() * e);
    for (n, &id) in ids.iter().enumerate() {
        let ty = types.map_or(0, |tt| tt[n] as usize);
        let (id, ti) = (id as usize, n % t);
        out.extend((0..e).map(|c| word[id * e + c] + typ[ty * e + c] + pos[ti * e + c]));
    }
    out
}

/// Mean softmax cross-entropy over rows of `v` logits, with the library's `m + 1e-6` denominator.
fn ref_cross_entropy(logits: &[f64], targets: &[i32], v: usize) -> f64 {
    let total: f64 = logits
        .chunks_exact(v)
        .zip(targets)
        .map(|(row, &tgt)| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            lse - row[tgt as usize]
        })
        .sum();
    total / (targets.len() as f64 + 1e-6)
}

/// Weighted mean sigmoid BCE, `Σ w·bce / (Σw + 1e-6)`.
fn ref_bce(logits: &[f64], labels: &[f32], weights: &[f32]) -> f64 {
    let mut total = 0.0;
    for ((&x, &y), &w) in logits.iter().zip(labels).zip(weights) {
        let p = sigmoid(x);
        total += w as f64 * -(y as f64 * p.ln() + (1.0 - y as f64) * (1.0 - p).ln());
    }
    total / (weights.iter().map(|&w| w as f64).sum::<f64>() + 1e-6)
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// A tensor of the flat f64 parameter vector.
fn sp(w: &[f64], s: Span) -> &[f64] {
    &w[s.off..s.off + s.len]
}

fn ref_lin(w: &[f64], lin: &Linear, x: &[f64]) -> Vec<f64> {
    ref_linear(x, sp(w, lin.w), Some(sp(w, lin.b)), lin.din, lin.dout)
}

fn ref_ln(w: &[f64], ln: &LayerNorm, x: &[f64]) -> Vec<f64> {
    ref_layer_norm(x, sp(w, ln.g), sp(w, ln.b), ln.dim, ln.eps)
}

/// HF `ElectraModel` (post-LN BERT layers) on the flat parameter vector `w`.
fn ref_encoder(enc: &Encoder, w: &[f64], ids: &[i32], types: &[i32], mask: &[i32], t: usize) -> Vec<f64> {
    let tables = [sp(w, enc.emb.word), sp(w, enc.emb.pos), sp(w, enc.emb.typ)];
    let mut x = ref_ln(w, &enc.emb.ln, &ref_embedding(ids, Some(types), tables, t, enc.emb_dim));
    if let Some(p) = &enc.proj {
        x = ref_lin(w, p, &x);
    }
    let d = Heads { b: ids.len() / t, t, nh: enc.heads, hd: enc.hidden / enc.heads };
    for ly in &enc.layers {
        let (q, k, v) = (ref_lin(w, &ly.q, &x), ref_lin(w, &ly.k, &x), ref_lin(w, &ly.v, &x));
        let ctx = ref_attention(&q, &k, &v, Some(mask), d);
        let x1 = ref_ln(w, &ly.attn_ln, &add(&ref_lin(w, &ly.o, &ctx), &x));
        let ff = ref_act_all(enc.act, &ref_lin(w, &ly.inter, &x1));
        x = ref_ln(w, &ly.out_ln, &add(&ref_lin(w, &ly.out, &ff), &x1));
    }
    x
}

/// HF `ElectraDiscriminatorPredictions`: dense → hidden_act → dense_prediction, one logit a row.
fn ref_disc_head(head: &DiscHead, w: &[f64], hidden: &[f64]) -> Vec<f64> {
    ref_lin(w, &head.pred, &ref_act_all(head.act, &ref_lin(w, &head.dense, hidden)))
}

/// HF `ElectraGeneratorPredictions` (dense → erf GELU, whatever hidden_act says → LayerNorm)
/// and `generator_lm_head`.
fn ref_gen_head(head: &GenHead, w: &[f64], hidden: &[f64]) -> Vec<f64> {
    let normed = ref_ln(w, &head.ln, &ref_act_all(Activation::Gelu, &ref_lin(w, &head.dense, hidden)));
    let e = head.dense.dout;
    ref_linear(&normed, sp(w, head.lm_w), Some(sp(w, head.lm_b)), e, head.vocab)
}

/// HF `ElectraClassificationHead` on the first token of each of the rows of `t` tokens.
fn ref_cls_head(head: &ClsHead, w: &[f64], hidden: &[f64], t: usize) -> Vec<f64> {
    let h = head.dense.din;
    let cls: Vec<f64> = hidden.chunks_exact(t * h).flat_map(|row| row[..h].to_vec()).collect();
    ref_lin(w, &head.out_proj, &ref_act_all(Activation::Gelu, &ref_lin(w, &head.dense, &cls)))
}

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
    matmul::linear_backward(Some(&mut dx), &mut dw, Some(&mut db), &r, &x, &w, n, din, dout, false);
    check("linear", &[("dX", &dx, &nx), ("dW", &dw, &nw), ("db", &db, &nb)]);

    // A second call accumulates everything (dx too, with accumulate_dx): each doubles.
    matmul::linear_backward(Some(&mut dx), &mut dw, Some(&mut db), &r, &x, &w, n, din, dout, true);
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
                matmul::linear_act_forward(&mut pre, &mut act, &x, &w1, &b1, n, din, hid, a);
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
                matmul::linear_backward_through_act(
                    &mut d_pre, &mut dw2, &mut db2, &r, &act, &pre, &w2, n, hid, dout, a,
                );
                matmul::linear_backward(Some(&mut dx), &mut dw1, Some(&mut db1), &d_pre, &x, &w1, n, din, hid, false);
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
        layer_norm::layer_norm_forward(&mut y, &mut mean, &mut rstd, &x, &g, &b, n, c, eps);
        check_forward("layer_norm", &y, &ref_layer_norm(&x64, &g64, &b64, c, eps));
        let (mut dx, mut dg, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
        layer_norm::layer_norm_backward(&mut dx, &mut dg, &mut db, &r, &x, &g, &mean, &rstd, n, c, false);
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
    let padded: Vec<i32> = (0..34).map(|i| i32::from(i < 29)).collect();
    for (d, am) in [(Heads { b: 2, t: 17, nh: 2, hd: 3 }, Some(padded)), (Heads { b: 1, t: 5, nh: 3, hd: 4 }, None)] {
        let (n, h) = (d.b * d.t, d.nh * d.hd);
        let [q, k, v, r] = [(); 4].map(|_| rnd(&mut rng, n * h, 1.5));
        let am = am.as_deref();
        let f = |q: &[f64], k: &[f64], v: &[f64]| dot(&ref_attention(q, k, v, am, d), &r);
        let (q64, k64, v64) = (f64s(&q), f64s(&k), f64s(&v));
        let nq = numeric_grad(&q, |x| f(x, &k64, &v64));
        let nk = numeric_grad(&k, |x| f(&q64, x, &v64));
        let nv = numeric_grad(&v, |x| f(&q64, &k64, x));

        let mut mask = vec![0.0; n];
        attention::key_mask(&mut mask, am, n);
        let (mut ctx, mut p) = (vec![0.0; n * h], vec![0.0; d.b * d.nh * d.t * d.t]);
        attention::attention_forward(&mut ctx, &mut p, &q, &k, &v, &mask, d.b, d.t, d.nh, d.hd);
        check_forward("attention", &ctx, &ref_attention(&q64, &k64, &v64, am, d));
        let [mut dq, mut dk, mut dv] = [(); 3].map(|_| vec![0.0; n * h]);
        let mut scratch = vec![0.0; d.b * d.nh * d.t * d.t];
        attention::attention_backward(
            &mut dq,
            &mut dk,
            &mut dv,
            &mut scratch,
            &r,
            &p,
            &q,
            &k,
            &v,
            d.b,
            d.t,
            d.nh,
            d.hd,
        );
        let what = if am.is_some() { "attention (key padding)" } else { "attention (no mask)" };
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
    embedding::embedding_forward(&mut out, &ids, Some(&tt), &word, &pos, &typ, b, t, e);
    check_forward("embedding", &out, &ref_embedding(&ids, Some(&tt), [&w64, &p64, &y64], t, e));
    for padding_idx in [None, Some(0)] {
        let (mut dw, mut dp, mut dy) = (vec![0.0; vocab * e], vec![0.0; t * e], vec![0.0; types * e]);
        embedding::embedding_backward(&mut dw, &mut dp, &mut dy, &r, &ids, Some(&tt), b, t, e, padding_idx);
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

    let mut dl = vec![0.0; m * v];
    let (l, _) = loss::cross_entropy(&logits, &targets, m, v, Some(&mut dl), scale);
    check_forward("cross_entropy", &[l], &[want]);
    let mut in_place = logits.clone();
    let (l2, _) = loss::cross_entropy_in_place(&mut in_place, &targets, m, v, scale);
    check_forward("cross_entropy_in_place", &[l2], &[want]);
    check("cross_entropy", &[("dlogits", &dl, &nl), ("dlogits (in place)", &in_place, &nl)]);
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
    let (l, _) = loss::binary_cross_entropy(&logits, &labels, &weights, Some(&mut dl), scale);
    check_forward("binary_cross_entropy", &[l], &[want]);
    check("binary_cross_entropy", &[("dlogits", &dl, &nl)]);
}

// ---------------------------------------------------------------------------------------------
// The encoder tower and the heads, through their public backward.

/// Random weights of a size where no layer is near-linear: LayerNorm gains 1 ± 0.3, every other
/// tensor (biases, LayerNorm shifts, embeddings) uniform in ±0.4.
fn randomize(params: &mut ParamStore, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for info in params.infos().to_vec() {
        let gain = info.name.contains("LayerNorm") && info.name.ends_with(".weight");
        for v in &mut params.data[info.offset..info.offset + info.len] {
            let u = rng.random::<f32>() * 2.0 - 1.0;
            *v = if gain { 1.0 + 0.3 * u } else { 0.4 * u };
        }
    }
}

fn tiny_discriminator() -> Model {
    let cfg = ElectraConfig::from_json_str(
        r#"{"vocab_size": 13, "embedding_size": 6, "hidden_size": 8, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 8}"#,
    )
    .unwrap();
    let mut m = Model::new(Some(cfg), None, false).unwrap();
    randomize(&mut m.params, 21);
    m
}

/// Embeddings, LayerNorm, projection E→H and two post-LN layers with a key padding mask, token
/// types and a repeated id: every parameter's gradient from `Encoder::backward`.
#[test]
fn encoder_tower() {
    let model = tiny_discriminator();
    let enc = &model.disc.as_ref().unwrap().encoder;
    assert!(enc.proj.is_some() && enc.pad_id == 0);
    let (b, t, h) = (2, 5, enc.hidden);
    let ids = [2, 7, 5, 11, 3, 2, 9, 9, 0, 0];
    let mask = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    let types = [0, 0, 1, 1, 1, 0, 1, 1, 0, 0];
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let r = rnd(&mut rng, b * t * h, 1.0);
    let w = &model.params.data;
    let mut numeric = numeric_grad(w, |v| dot(&ref_encoder(enc, v, &ids, &types, &mask, t), &r));

    let mut acts = EncoderActs::new(true);
    enc.forward(w, &mut acts, &ids, Some(&types), Some(&mask), b, t);
    check_forward("encoder", acts.output(enc), &ref_encoder(enc, &f64s(w), &ids, &types, &mask, t));
    let mut g = vec![0.0; w.len()];
    enc.backward(w, &mut g, &acts, &mut EncoderGrads::default(), &r, &ids, Some(&types));
    // The [PAD] row of the word table gets no gradient (HF padding_idx), though it is read.
    let pad = enc.emb.word.off + enc.pad_id * enc.emb_dim..enc.emb.word.off + (enc.pad_id + 1) * enc.emb_dim;
    assert!(g[pad.clone()].iter().all(|&x| x == 0.0), "the [PAD] row got a gradient");
    numeric[pad].fill(0.0);
    // The key bias cannot change any softmax (it adds q·b_k to a whole row of scores): its true
    // gradient is 0, and ours is f32 rounding noise, compared with the key weights' scale.
    for ly in &enc.layers {
        let key_w = &numeric[ly.k.w.off..ly.k.w.off + ly.k.w.len];
        let scale = key_w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let key_b = &mut g[ly.k.b.off..ly.k.b.off + ly.k.b.len];
        assert!(key_b.iter().all(|x| (*x as f64).abs() <= 1e-6 * scale), "key bias gradient {key_b:?}");
        key_b.fill(0.0);
        numeric[ly.k.b.off..ly.k.b.off + ly.k.b.len].fill(0.0);
    }
    check("encoder (2 layers, E≠H)", &by_tensor(&model.params, &g, &numeric));
}

/// `DiscHead` with the sigmoid BCE of replaced-token detection on top.
#[test]
fn discriminator_head_with_bce() {
    let model = tiny_discriminator();
    let head = &model.disc.as_ref().unwrap().head;
    let (m, h) = (7, head.dense.din);
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let hidden = rnd(&mut rng, m * h, 1.5);
    let labels = [0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
    let weights = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0];
    let scale = 3.0f32;
    let objective = |w: &[f64], x: &[f64]| scale as f64 * ref_bce(&ref_disc_head(head, w, x), &labels, &weights);
    let (w, w64, hidden64) = (&model.params.data, f64s(&model.params.data), f64s(&hidden));
    let nw = numeric_grad(w, |v| objective(v, &hidden64));
    let nh = numeric_grad(&hidden, |x| objective(&w64, x));

    let mut acts = DiscHeadActs::default();
    head.forward(w, &mut acts, &hidden, m);
    check_forward("discriminator head", &acts.logits[..m], &ref_disc_head(head, &w64, &hidden64));
    let mut d_logits = vec![0.0; m];
    loss::binary_cross_entropy(&acts.logits[..m], &labels, &weights, Some(&mut d_logits), scale);
    let (mut g, mut d_hidden) = (vec![0.0; w.len()], vec![0.0; m * h]);
    head.backward(w, &mut g, &acts, &hidden, &d_logits, &mut d_hidden, &mut Vec::new(), m);
    let mut grads = by_tensor(&model.params, &g, &nw);
    grads.push(("d_hidden", &d_hidden, &nh));
    check("discriminator head + BCE", &grads);
}

/// `GenHead` (output tied to the word embeddings) with the masked-LM cross-entropy on top. The
/// config's hidden_act is gelu_new: the head must use erf GELU regardless, as HF does.
#[test]
fn generator_head_with_cross_entropy() {
    let cfg = ElectraConfig::from_json_str(
        r#"{"vocab_size": 21, "embedding_size": 6, "hidden_size": 4, "num_hidden_layers": 1,
            "num_attention_heads": 1, "intermediate_size": 8, "hidden_act": "gelu_new",
            "max_position_embeddings": 8}"#,
    )
    .unwrap();
    let mut model = Model::new(None, Some(cfg), false).unwrap();
    randomize(&mut model.params, 24);
    let gen = model.gen.as_ref().unwrap();
    let head = &gen.head;
    assert_eq!(head.lm_w, gen.encoder.emb.word, "the lm head is tied to the word embeddings");
    let (m, h, v) = (5, head.dense.din, head.vocab);
    let mut rng = ChaCha8Rng::seed_from_u64(25);
    let hidden = rnd(&mut rng, m * h, 1.5);
    let targets = [4, 0, 20, 4, 9];
    let scale = 1.3f32;
    let objective = |w: &[f64], x: &[f64]| scale as f64 * ref_cross_entropy(&ref_gen_head(head, w, x), &targets, v);
    let (w, w64, hidden64) = (&model.params.data, f64s(&model.params.data), f64s(&hidden));
    let nw = numeric_grad(w, |p| objective(p, &hidden64));
    let nh = numeric_grad(&hidden, |x| objective(&w64, x));

    let mut acts = GenHeadActs::default();
    head.forward(w, &mut acts, &hidden, m);
    check_forward("generator head", &acts.logits[..m * v], &ref_gen_head(head, &w64, &hidden64));
    let mut d_logits = vec![0.0; m * v];
    loss::cross_entropy(&acts.logits[..m * v], &targets, m, v, Some(&mut d_logits), scale);
    let (mut g, mut d_hidden) = (vec![0.0; w.len()], vec![0.0; m * h]);
    head.backward(w, &mut g, &acts, &hidden, &d_logits, &mut d_hidden, &mut Vec::new(), m);
    let mut grads = by_tensor(&model.params, &g, &nw);
    grads.push(("d_hidden", &d_hidden, &nh));
    check("generator head (tied) + CE", &grads);
}

/// `ClsHead`: [CLS] state → dense → GELU → out_proj, three labels.
#[test]
fn classification_head() {
    let cfg = ElectraConfig::from_json_str(
        r#"{"vocab_size": 13, "embedding_size": 6, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 12, "num_labels": 3,
            "max_position_embeddings": 8}"#,
    )
    .unwrap();
    let mut model = Model::new_classifier(cfg).unwrap();
    randomize(&mut model.params, 26);
    let cls = model.cls.as_ref().unwrap();
    let (head, labels) = (&cls.head, cls.num_labels);
    let (b, t, h) = (3, 4, head.dense.din);
    let mut rng = ChaCha8Rng::seed_from_u64(27);
    let (hidden, r) = (rnd(&mut rng, b * t * h, 1.5), rnd(&mut rng, b * labels, 1.0));
    let (w, w64, hidden64) = (&model.params.data, f64s(&model.params.data), f64s(&hidden));
    let nw = numeric_grad(w, |p| dot(&ref_cls_head(head, p, &hidden64, t), &r));
    let nh = numeric_grad(&hidden, |x| dot(&ref_cls_head(head, &w64, x, t), &r));

    let mut acts = ClsHeadActs::default();
    head.forward(w, &mut acts, &hidden, b, t);
    check_forward("classification head", &acts.logits[..b * labels], &ref_cls_head(head, &w64, &hidden64, t));
    let (mut g, mut d_hidden) = (vec![0.0; w.len()], vec![0.0; b * t * h]);
    head.backward(w, &mut g, &acts, &r, &mut d_hidden, &mut Vec::new(), b, t);
    let mut grads = by_tensor(&model.params, &g, &nw);
    grads.push(("d_hidden", &d_hidden, &nh));
    check("classification head", &grads);
}

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
    layer_norm::layer_norm_forward(&mut y, &mut mean, &mut rstd, &x, &g, &b, n, c, eps);
    let (mut dx, mut dg, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
    layer_norm::layer_norm_backward(&mut dx, &mut dg, &mut db, &r, &x, &g, &mean, &rstd, n, c, false);
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
