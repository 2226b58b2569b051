//! The conformance suite: one test body per kernel of the compute seam and per whole step, run
//! on every compiled-in backend (as ggml's test-backend-ops and burn's backend tests do).
//!
//! - Kernels, through [`Backend`]: each forward against the naive f64 references of
//!   tests/common/reference.rs, each backward against f64 central differences of those
//!   references (relative 1e-4), the row, sampling, memory and optimizer ops exactly or against
//!   f64 formulas.
//! - Layers: the encoder tower and the three heads over the seam, same checks.
//! - Whole steps: forward (sessions) against the PyTorch fixtures, backward (every gradient) and
//!   five AdamW steps against torch autograd, the classifier head, a full pre-training step and
//!   inference against the CPU reference (bit-identical on the CPU, whatever its thread count),
//!   and the randomness: the same masked positions and samples on every backend.
//!
//! Backends: the CPU with 1 and with 3 worker threads, and CUDA device 0 when the `cuda` feature
//! is compiled in. A compiled-in backend without a device prints `skipped: no CUDA device` on the
//! test's stderr (written past libtest's capture, so it is always visible); it never passes
//! silently. `ELECTRA_TEST_BACKENDS=cuda` (or `cpu`) runs one kind only.

mod common;
use common::reference::*;
use common::*;
use electra::backend::{
    self, cpu, keystream, mean_denominator, Activated, Activation, AdamState, AdamStep, AdamTensor, AttentionSaved,
    AttentionShape, Backend, Buf, Device, DeviceKind, Dropout, InputGrad, KeystreamAt, LnSaved, LnStats, LossScale,
    ParamGrads, Qkv, ResidualLn, RowGroups, Tokens, Weights,
};
use electra::layers::{Embeddings, LayerNorm, Linear, PostLn};
use electra::model::classifier::{ClsHeadActs, ClsHeadGrads, Pooled};
use electra::model::encoder::{EncoderActs, EncoderGrads};
use electra::model::heads::{DiscHeadActs, DiscHeadGrads, GenHeadActs, GenHeadGrads};
use electra::model::Backprop;
use electra::params::{ParamStore, Span};
use electra::pretrain::{TrainOptions, Trainer};
use electra::session::{Batch, Session};
use electra::{ElectraConfig, Model, Pooling, RtdHead};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Backends under test.

/// One backend configuration.
struct Target {
    label: String,
    device: Device,
    threads: usize,
}

impl Target {
    /// Whether results must equal the CPU reference bit for bit.
    fn exact(&self) -> bool {
        self.device == Device::Cpu
    }
}

/// A line on the real stderr, past libtest's output capture.
fn visible(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn wanted(kind: &str) -> bool {
    std::env::var("ELECTRA_TEST_BACKENDS").map_or(true, |v| v.split(',').any(|k| k.trim() == kind))
}

/// The backends this build can run, announcing the ones it cannot.
fn targets(test: &str) -> Vec<Target> {
    let mut out = Vec::new();
    if wanted("cpu") {
        for threads in [1, 3] {
            out.push(Target { label: format!("cpu({threads} thr)"), device: Device::Cpu, threads });
        }
    }
    if wanted("cuda") {
        if cfg!(feature = "cuda") {
            match backend::device_count(DeviceKind::Cuda) {
                Ok(n) if n > 0 => out.push(Target { label: "cuda:0".into(), device: Device::Cuda(0), threads: 0 }),
                Ok(_) => visible(&format!("{test}: cuda:0 skipped: no CUDA device (the driver reports none)")),
                Err(e) => visible(&format!("{test}: cuda:0 skipped: no CUDA device ({e})")),
            }
        } else if std::env::var("ELECTRA_TEST_BACKENDS").is_ok() {
            panic!("ELECTRA_TEST_BACKENDS asks for cuda, but this build has no `cuda` feature");
        }
    }
    assert!(!out.is_empty(), "{test}: no backend to run (ELECTRA_TEST_BACKENDS filters them all out)");
    out
}

fn open(t: &Target) -> Arc<dyn Backend> {
    backend::open(t.device, &backend::BackendOptions::threads(t.threads))
        .unwrap_or_else(|e| panic!("{}: cannot open the backend: {e}", t.label))
}

/// Runs a kernel-level body on every backend, inside the backend (on the CPU: on its pool).
fn kernels(test: &str, body: impl Fn(&str, &dyn Backend) + Sync) {
    for t in targets(test) {
        let be = open(&t);
        backend::run(&*be, || {
            body(&t.label, &*be);
            Ok(())
        })
        .unwrap();
    }
}

/// Runs a whole-step body on every backend (sessions and trainers open their own).
fn steps(test: &str, mut body: impl FnMut(&Target)) {
    for t in targets(test) {
        body(&t);
    }
}

// ---------------------------------------------------------------------------------------------
// Moving data.

fn up(be: &dyn Backend, x: &[f32]) -> Buf {
    let mut b = Buf::default();
    be.upload(&mut b, x).unwrap();
    b
}

fn up_ids(be: &dyn Backend, x: &[i32]) -> Buf<i32> {
    let mut b = Buf::default();
    be.upload_ids(&mut b, x).unwrap();
    b
}

fn zeros(be: &dyn Backend, n: usize) -> Buf {
    let mut b = Buf::default();
    be.ensure(&mut b, n).unwrap();
    be.fill(&mut b, n, 0.0).unwrap();
    b
}

fn down(be: &dyn Backend, b: &Buf, n: usize) -> Vec<f32> {
    let mut v = vec![0.0; n];
    be.download(b.mem(), &mut v).unwrap();
    v
}

/// Random parameters registered under `names`, and their spans.
fn params(rng: &mut ChaCha8Rng, tensors: &[(&str, &[usize])], scale: f32) -> (ParamStore, Vec<Span>) {
    let mut st = ParamStore::new();
    let ids: Vec<_> = tensors.iter().map(|(n, s)| st.add(*n, s)).collect();
    st.data = rnd(rng, st.numel(), scale);
    let spans = ids.iter().map(|&id| st.span(id)).collect();
    (st, spans)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

// ---------------------------------------------------------------------------------------------
// Kernels.

#[test]
fn memory() {
    kernels("memory", |t, be| {
        let x: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut b = up(be, &x);
        assert_eq!(down(be, &b, 37), x, "{t}: upload then download");
        be.ensure(&mut b, 100).unwrap();
        assert!(b.len() >= 100, "{t}: ensure grows");
        be.fill(&mut b, 10, 7.0).unwrap();
        let mut c = zeros(be, 20);
        be.copy(&mut c, &b, 12).unwrap();
        let got = down(be, &c, 20);
        assert_eq!(&got[..10], &[7.0; 10], "{t}: fill then copy");
        assert_eq!(&got[10..12], &x[10..12]);
        assert_eq!(&got[12..], &[0.0; 8]);
        let imported = be.import(x.clone()).unwrap();
        assert_eq!(down(be, &imported, 37), x, "{t}: import");
        assert!(be.download(c.mem(), &mut vec![0.0; c.len() + 1]).is_err(), "{t}: a download past the end fails");
    });
}

#[test]
fn linear() {
    kernels("linear", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (n, din, dout) = (6, 21, 19);
        let (st, sp) = params(&mut rng, &[("w", &[dout, din]), ("b", &[dout])], 1.0);
        let lin = Linear { w: sp[0], b: sp[1], din, dout };
        let (x, r, d0) = (rnd(&mut rng, n * din, 1.0), rnd(&mut rng, n * dout, 1.0), rnd(&mut rng, n * din, 1.0));
        let (x64, p64) = (f64s(&x), f64s(&st.data));
        let nx = numeric_grad(&x, |v| dot(&ref_lin(&p64, &lin, v), &r));
        let np = numeric_grad(&st.data, |p| dot(&ref_lin(p, &lin, &x64), &r));

        let (wb, xb, rb) = (up(be, &st.data), up(be, &x), up(be, &r));
        let mut y = zeros(be, n * dout);
        be.linear(&mut y, &xb, &Weights::flat(wb.mem()), &lin, n).unwrap();
        check_forward(&format!("{t} linear"), &down(be, &y, n * dout), &ref_lin(&p64, &lin, &x64));
        let (mut dx, mut g) = (zeros(be, n * din), zeros(be, st.numel()));
        let mut p = ParamGrads { w: wb.mem(), grads: &mut g };
        be.linear_backward(InputGrad::Set(&mut dx), &mut p, &rb, &xb, &lin, n).unwrap();
        check(
            &format!("{t} linear"),
            &[("dX", &down(be, &dx, n * din), &nx), ("dW db", &down(be, &g, st.numel()), &np)],
        );

        // Again from a residual gradient d0, into the same parameter gradients: dx adds to d0 and
        // the parameter gradients double.
        let mut dx = up(be, &d0);
        let mut p = ParamGrads { w: wb.mem(), grads: &mut g };
        be.linear_backward(InputGrad::Add(&mut dx), &mut p, &rb, &xb, &lin, n).unwrap();
        let added: Vec<f32> = down(be, &dx, n * din).iter().zip(&d0).map(|(a, b)| a - b).collect();
        let halved: Vec<f32> = down(be, &g, st.numel()).iter().map(|v| v / 2.0).collect();
        check(&format!("{t} linear (accumulated)"), &[("dX − d0", &added, &nx), ("(dW db)/2", &halved, &np)]);
    });
}

/// `y = f(x·W1ᵀ + b1)·W2ᵀ + b2` through `linear_act` and `linear_act_backward`, every activation.
#[test]
fn linear_through_activation() {
    kernels("linear_through_activation", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let (n, din, hid, dout) = (5, 7, 19, 6);
        for a in Activation::ALL {
            let tensors: [(&str, &[usize]); 4] =
                [("w1", &[hid, din]), ("b1", &[hid]), ("w2", &[dout, hid]), ("b2", &[dout])];
            let (st, sp) = params(&mut rng, &tensors, 1.0);
            let (l1, l2) =
                (Linear { w: sp[0], b: sp[1], din, dout: hid }, Linear { w: sp[2], b: sp[3], din: hid, dout });
            let (mut x, r) = (rnd(&mut rng, n * din, 1.0), rnd(&mut rng, n * dout, 1.0));
            let fwd = |p: &[f64], x: &[f64]| ref_lin(p, &l2, &ref_act_all(a, &ref_lin(p, &l1, x)));
            // Central differences need every ReLU input away from the kink.
            while a == Activation::Relu && ref_lin(&f64s(&st.data), &l1, &f64s(&x)).iter().any(|p| p.abs() < 1e-3) {
                x = rnd(&mut rng, n * din, 1.0);
            }
            let (x64, p64) = (f64s(&x), f64s(&st.data));
            let nx = numeric_grad(&x, |v| dot(&fwd(&p64, v), &r));
            let np = numeric_grad(&st.data, |p| dot(&fwd(p, &x64), &r));

            let (wb, xb) = (up(be, &st.data), up(be, &x));
            let w = Weights::flat(wb.mem());
            let (mut pre, mut act, mut y) = (zeros(be, n * hid), zeros(be, n * hid), zeros(be, n * dout));
            be.linear_act(Activated { pre: &mut pre, act: &mut act, f: a }, &xb, &w, &l1, n).unwrap();
            be.linear(&mut y, &act, &w, &l2, n).unwrap();
            let want_pre = ref_lin(&p64, &l1, &x64);
            check_forward(&format!("{t} linear+{a:?} pre"), &down(be, &pre, n * hid), &want_pre);
            check_forward(&format!("{t} linear+{a:?} act"), &down(be, &act, n * hid), &ref_act_all(a, &want_pre));
            check_forward(&format!("{t} linear+{a:?}+linear"), &down(be, &y, n * dout), &fwd(&p64, &x64));
            let (mut d_pre, mut dx, mut g) = (zeros(be, n * hid), zeros(be, n * din), zeros(be, st.numel()));
            let mut p = ParamGrads { w: wb.mem(), grads: &mut g };
            let x2 = Activated { pre: &pre, act: &act, f: a };
            be.linear_act_backward(&mut d_pre, &mut p, &up(be, &r), x2, &l2, n).unwrap();
            be.linear_backward(InputGrad::Set(&mut dx), &mut p, &d_pre, &xb, &l1, n).unwrap();
            let (dx, g) = (down(be, &dx, n * din), down(be, &g, st.numel()));
            check(&format!("{t} linear+{a:?}+linear"), &[("dX", &dx, &nx), ("params", &g, &np)]);
        }
    });
}

#[test]
fn linear_residual_layer_norm() {
    kernels("linear_residual_layer_norm", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(18);
        let (n, din, dout) = (9, 13, 24);
        let tensors: [(&str, &[usize]); 4] = [("w", &[dout, din]), ("b", &[dout]), ("g", &[dout]), ("beta", &[dout])];
        let (st, sp) = params(&mut rng, &tensors, 1.0);
        let lin = Linear { w: sp[0], b: sp[1], din, dout };
        let ln = LayerNorm { g: sp[2], b: sp[3], dim: dout, eps: 1e-12 };
        let (x, res) = (rnd(&mut rng, n * din, 1.0), rnd(&mut rng, n * dout, 1.0));
        let p64 = f64s(&st.data);
        let want_sum = add(&ref_lin(&p64, &lin, &f64s(&x)), &f64s(&res));
        let wb = up(be, &st.data);
        let [mut sum, mut out] = [(); 2].map(|_| zeros(be, n * dout));
        let mut stats = LnStats { mean: zeros(be, n), rstd: zeros(be, n) };
        let w = Weights::flat(wb.mem());
        let y = ResidualLn { sum: &mut sum, out: &mut out, stats: &mut stats };
        let block = PostLn { dense: lin, ln };
        be.linear_residual_layer_norm(y, &up(be, &x), &up(be, &res), &w, &block, n).unwrap();
        check_forward(&format!("{t} linear+residual"), &down(be, &sum, n * dout), &want_sum);
        check_forward(
            &format!("{t} linear+residual+LayerNorm"),
            &down(be, &out, n * dout),
            &ref_ln(&p64, &ln, &want_sum),
        );
    });
}

#[test]
fn layer_norm() {
    kernels("layer_norm", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let (n, c) = (4, 37);
        // ELECTRA's eps, and a large eps on low-variance rows, where it shapes the result.
        for (eps, spread) in [(1e-12, 2.0), (0.05, 0.2)] {
            let (st, sp) = params(&mut rng, &[("g", &[c]), ("b", &[c])], 1.0);
            let ln = LayerNorm { g: sp[0], b: sp[1], dim: c, eps };
            let (mut x, r) = (rnd(&mut rng, n * c, spread), rnd(&mut rng, n * c, 1.0));
            x.iter_mut().enumerate().for_each(|(i, v)| *v += (i / c) as f32 - 1.5); // a mean per row
            let (x64, p64) = (f64s(&x), f64s(&st.data));
            let nx = numeric_grad(&x, |v| dot(&ref_ln(&p64, &ln, v), &r));
            let np = numeric_grad(&st.data, |p| dot(&ref_ln(p, &ln, &x64), &r));

            let (wb, xb) = (up(be, &st.data), up(be, &x));
            let (mut y, mut stats) = (zeros(be, n * c), LnStats { mean: zeros(be, n), rstd: zeros(be, n) });
            be.layer_norm(&mut y, &mut stats, &xb, wb.mem(), &ln, n).unwrap();
            check_forward(&format!("{t} layer_norm"), &down(be, &y, n * c), &ref_ln(&p64, &ln, &x64));
            let (mut dx, mut g) = (zeros(be, n * c), zeros(be, st.numel()));
            let mut p = ParamGrads { w: wb.mem(), grads: &mut g };
            let saved = LnSaved { x: &xb, stats: &stats };
            be.layer_norm_backward(&mut dx, &mut p, &up(be, &r), saved, &ln, n).unwrap();
            let (dx, g) = (down(be, &dx, n * c), down(be, &g, st.numel()));
            check(&format!("{t} layer_norm (eps {eps:.0e})"), &[("dX", &dx, &nx), ("dgamma dbeta", &g, &np)]);
        }
    });
}

#[test]
fn activations() {
    kernels("activations", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let n = 53; // three 16-lane vectors and a tail
        for a in Activation::ALL {
            let (mut x, r) = (rnd(&mut rng, n, 4.0), rnd(&mut rng, n, 1.0));
            x.iter_mut().filter(|v| v.abs() < 1e-3).for_each(|v| *v += 0.01); // ReLU's kink
            let nx = numeric_grad(&x, |v| dot(&ref_act_all(a, v), &r));
            let xb = up(be, &x);
            let (mut y, mut dx) = (zeros(be, n), zeros(be, n));
            be.activation(&mut y, &xb, n, a).unwrap();
            check_forward(&format!("{t} {a:?}"), &down(be, &y, n), &ref_act_all(a, &f64s(&x)));
            be.activation_backward(&mut dx, &up(be, &r), &xb, n, a).unwrap();
            check(&format!("{t} activation {a:?}"), &[("dX", &down(be, &dx, n), &nx)]);
        }
    });
}

#[test]
fn attention() {
    kernels("attention", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        // Two rows of 17 tokens, the second with 5 padded keys; one row of 5 tokens, no mask.
        // Then the first again with dropout on the probabilities (the same mask on every backend).
        let padded: Vec<i32> = (0..34).map(|i| i32::from(i < 29)).collect();
        let key = KeystreamAt { key: [3, 1, 4, 1, 5, 9, 2, 6], stream: 11, word_pos: 0 };
        for (d, am, drop) in [
            (Heads { b: 2, t: 17, nh: 2, hd: 3 }, Some(padded.clone()), None),
            (Heads { b: 1, t: 5, nh: 3, hd: 4 }, None, None),
            (Heads { b: 2, t: 17, nh: 2, hd: 3 }, Some(padded), Dropout::new(0.25, key)),
        ] {
            let (n, h, pl) = (d.b * d.t, d.nh * d.hd, d.b * d.nh * d.t * d.t);
            let [q, k, v, r] = [(); 4].map(|_| rnd(&mut rng, n * h, 1.5));
            let am = am.as_deref();
            let factor = drop.map(|m| {
                let mut f = vec![1.0f32; pl];
                m.apply(&mut f);
                f64s(&f)
            });
            let factor = factor.as_deref();
            let f = |q: &[f64], k: &[f64], v: &[f64]| dot(&ref_attention_dropped(q, k, v, am, d, factor), &r);
            let (q64, k64, v64) = (f64s(&q), f64s(&k), f64s(&v));
            let nq = numeric_grad(&q, |x| f(x, &k64, &v64));
            let nk = numeric_grad(&k, |x| f(&q64, x, &v64));
            let nv = numeric_grad(&v, |x| f(&q64, &k64, x));

            let mask = am.map(|m| up_ids(be, m));
            let mut mask_add = zeros(be, n);
            be.key_mask(&mut mask_add, mask.as_ref(), n).unwrap();
            let (qb, kb, vb) = (up(be, &q), up(be, &k), up(be, &v));
            let (mut ctx, mut probs) = (zeros(be, n * h), zeros(be, pl));
            let shape = AttentionShape { dropout: drop, ..AttentionShape::new(d.b, d.t, d.nh, d.hd) };
            be.attention(&mut ctx, &mut probs, Qkv { q: &qb, k: &kb, v: &vb }, &mask_add, shape).unwrap();
            let what = format!(
                "{t} attention ({}{})",
                if am.is_some() { "key padding" } else { "no mask" },
                if drop.is_some() { ", dropout" } else { "" }
            );
            check_forward(&what, &down(be, &ctx, n * h), &ref_attention_dropped(&q64, &k64, &v64, am, d, factor));
            let [mut dq, mut dk, mut dv] = [(); 3].map(|_| zeros(be, n * h));
            let mut scratch = zeros(be, pl);
            let dx = Qkv { q: &mut dq, k: &mut dk, v: &mut dv };
            let x = Qkv { q: &qb, k: &kb, v: &vb };
            let saved = AttentionSaved { probs: &probs, mask_add: &mask_add };
            be.attention_backward(dx, &mut scratch, &up(be, &r), saved, x, shape).unwrap();
            let [dq, dk, dv] = [&dq, &dk, &dv].map(|x| down(be, x, n * h));
            check(&what, &[("dQ", &dq, &nq), ("dK", &dk, &nk), ("dV", &dv, &nv)]);
            if be.attention_recomputes() {
                // Nothing kept: the forward writes no probabilities (empty buffers), the backward
                // recomputes them, and both give the kept path's bits.
                let shape = AttentionShape { keep_probs: false, ..shape };
                let (mut ctx2, mut none) = (zeros(be, n * h), zeros(be, 0));
                be.attention(&mut ctx2, &mut none, Qkv { q: &qb, k: &kb, v: &vb }, &mask_add, shape).unwrap();
                assert_eq!(down(be, &ctx2, n * h), down(be, &ctx, n * h), "{what}: context without kept probabilities");
                let [mut dq2, mut dk2, mut dv2] = [(); 3].map(|_| zeros(be, n * h));
                let dx = Qkv { q: &mut dq2, k: &mut dk2, v: &mut dv2 };
                let saved = AttentionSaved { probs: &none, mask_add: &mask_add };
                let mut no_scratch = zeros(be, 0);
                let x = Qkv { q: &qb, k: &kb, v: &vb };
                be.attention_backward(dx, &mut no_scratch, &up(be, &r), saved, x, shape).unwrap();
                let again = [&dq2, &dk2, &dv2].map(|x| down(be, x, n * h));
                assert_eq!(again, [dq, dk, dv], "{what}: gradients from recomputed probabilities");
            }
        }
    });
}

#[test]
fn embedding() {
    kernels("embedding", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        let (b, tt, e, vocab, types) = (2, 4, 19, 7, 3);
        let ids = [1, 0, 5, 5, 2, 5, 0, 6]; // repeats: the scatter must add
        let ty = [0, 1, 2, 0, 0, 1, 1, 2];
        let tensors: [(&str, &[usize]); 5] =
            [("word", &[vocab, e]), ("pos", &[tt, e]), ("type", &[types, e]), ("ln.g", &[e]), ("ln.b", &[e])];
        let (st, s) = params(&mut rng, &tensors, 1.0);
        let emb = Embeddings {
            word: s[0],
            pos: s[1],
            typ: s[2],
            ln: LayerNorm { g: s[3], b: s[4], dim: e, eps: 1e-12 },
            pad_id: 0,
        };
        let r = rnd(&mut rng, b * tt * e, 1.0);
        let tables =
            |p: &[f64]| ref_embedding(&ids, Some(&ty), [sp(p, emb.word), sp(p, emb.pos), sp(p, emb.typ)], tt, e);
        let p64 = f64s(&st.data);
        let mut np = numeric_grad(&st.data, |p| dot(&tables(p), &r));

        let (wb, idb, tyb) = (up(be, &st.data), up_ids(be, &ids), up_ids(be, &ty));
        let mut out = zeros(be, b * tt * e);
        let tokens = Tokens { ids: &idb, types: Some(&tyb), b, t: tt };
        be.embedding(&mut out, tokens, &Weights::flat(wb.mem()), &emb).unwrap();
        check_forward(&format!("{t} embedding"), &down(be, &out, b * tt * e), &tables(&p64));
        let mut g = zeros(be, st.numel());
        be.embedding_backward(&mut g, &up(be, &r), tokens, &emb).unwrap();
        let g = down(be, &g, st.numel());
        // HF's padding_idx: the [PAD] row is read by the lookup but gets no gradient.
        let pad = emb.word.off..emb.word.off + e;
        assert!(g[pad.clone()].iter().all(|&x| x == 0.0), "{t}: the padding row got a gradient");
        assert!(np[pad.clone()].iter().any(|&x| x != 0.0));
        np[pad].fill(0.0);
        check(&format!("{t} embedding (padding_idx 0)"), &[("tables", &g, &np)]);
        // No token types: type 0 everywhere.
        be.embedding(&mut out, Tokens { types: None, ..tokens }, &Weights::flat(wb.mem()), &emb).unwrap();
        let zero_types = ref_embedding(&ids, None, [sp(&p64, emb.word), sp(&p64, emb.pos), sp(&p64, emb.typ)], tt, e);
        check_forward(&format!("{t} embedding (no types)"), &down(be, &out, b * tt * e), &zero_types);
        assert!(
            be.embedding(
                &mut out,
                Tokens { ids: &up_ids(be, &[7; 8]), types: None, b, t: tt },
                &Weights::flat(wb.mem()),
                &emb
            )
            .is_err(),
            "{t}: id ≥ V"
        );
    });
}

#[test]
fn rows() {
    kernels("rows", |t, be| {
        let src: Vec<f32> = (0..40).map(|i| i as f32 - 20.5).collect(); // 8 rows of 5
        let rows = up_ids(be, &[6, 1, 3]);
        let mut g = zeros(be, 15);
        be.gather_rows(&mut g, &up(be, &src), &rows, 3, 5).unwrap();
        let got = down(be, &g, 15);
        assert_eq!(&got[..5], &src[30..35], "{t}: gather");
        assert_eq!(&got[10..], &src[15..20], "{t}: gather");
        let base: Vec<f32> = vec![0.25; 40];
        let mut acc = up(be, &base);
        be.scatter_rows(&mut acc, &g, &rows, 3, 5, true).unwrap();
        let mut set = up(be, &base);
        be.scatter_rows(&mut set, &g, &rows, 3, 5, false).unwrap();
        let (acc, set) = (down(be, &acc, 40), down(be, &set, 40));
        for r in 0..8 {
            let k = [6, 1, 3].iter().position(|&x| x == r);
            for c in 0..5 {
                let (i, v) = (r * 5 + c, k.map(|k| got[k * 5 + c]));
                assert_eq!(acc[i], v.map_or(0.25, |v| 0.25 + v), "{t}: scatter-add row {r}");
                assert_eq!(set[i], v.unwrap_or(0.25), "{t}: scatter row {r}");
            }
        }
        assert!(be.gather_rows(&mut g, &up(be, &src), &up_ids(be, &[8, 0, 0]), 3, 5).is_err(), "{t}: row ≥ rows");

        // Mean pooling: 2 groups of 4 rows of 5, the second group padded after 1 row, the
        // sums in row order; f32 arithmetic, so every backend gives the same bits.
        let groups = |mask| RowGroups { mask, groups: 2, rows: 4, width: 5 };
        let mask = up_ids(be, &[1, 1, 1, 1, 1, 0, 0, 0]);
        let mut mean = zeros(be, 10);
        let mut want = vec![0.0f32; 10];
        for (c, w) in want.iter_mut().enumerate().take(5) {
            *w = (src[c] + src[5 + c] + src[10 + c] + src[15 + c]) / 4.0;
        }
        want[5..].copy_from_slice(&src[20..25]);
        be.mean_rows(&mut mean, &up(be, &src), groups(Some(&mask))).unwrap();
        assert_eq!(down(be, &mean, 10), want, "{t}: masked mean");
        be.mean_rows(&mut mean, &up(be, &src), groups(None)).unwrap();
        let all: Vec<f32> =
            (0..10).map(|i| (0..4).map(|r| src[(i / 5 * 4 + r) * 5 + i % 5]).fold(0.0, |a, x| a + x) / 4.0).collect();
        assert_eq!(down(be, &mean, 10), all, "{t}: mean without a mask");
        let dmean: Vec<f32> = (0..10).map(|i| i as f32 * 0.5 - 2.0).collect();
        let mut dsrc = up(be, &[3.0; 40]);
        be.mean_rows_backward(&mut dsrc, &up(be, &dmean), groups(Some(&mask))).unwrap();
        let got = down(be, &dsrc, 40);
        for (i, &v) in got.iter().enumerate() {
            let (row, c) = (i / 5, i % 5);
            let want = match row {
                0..=3 => dmean[c] / 4.0,
                4 => dmean[5 + c],
                _ => 0.0,
            };
            assert_eq!(v, want, "{t}: mean backward at row {row}, column {c}");
        }
        // A group with no kept row pools to zeros, not NaN.
        be.mean_rows(&mut mean, &up(be, &src), groups(Some(&up_ids(be, &[0; 8])))).unwrap();
        assert_eq!(down(be, &mean, 10), vec![0.0; 10], "{t}: empty group");
    });
}

/// `combine_spans` within one buffer: a sum, a copy, zeros; bad spans are refused.
#[test]
fn spans() {
    kernels("spans", |t, be| {
        let x: Vec<f32> = (0..20).map(|i| i as f32 * 0.37 - 3.1).collect();
        let sp = |off, len| Span { off, len };
        let mut buf = up(be, &x);
        be.combine_spans(&mut buf, sp(0, 5), Some(sp(5, 5)), Some(sp(12, 5))).unwrap();
        be.combine_spans(&mut buf, sp(17, 3), Some(sp(6, 3)), None).unwrap();
        be.combine_spans(&mut buf, sp(10, 2), None, None).unwrap();
        let mut want = x.clone();
        for i in 0..5 {
            want[i] = x[5 + i] + x[12 + i];
        }
        want[17..20].copy_from_slice(&x[6..9]);
        want[10..12].fill(0.0);
        assert_eq!(bits(&down(be, &buf, 20)), bits(&want), "{t}: combine_spans");
        for (dst, a, b) in [
            (sp(0, 5), Some(sp(3, 5)), None),  // overlaps the destination
            (sp(0, 5), Some(sp(5, 4)), None),  // shorter
            (sp(18, 5), Some(sp(0, 5)), None), // past the end
            (sp(0, 5), None, Some(sp(5, 5))),  // a second source alone
            (sp(0, 5), Some(sp(16, 5)), None), // a source past the end
        ] {
            assert!(be.combine_spans(&mut buf, dst, a, b).is_err(), "{t}: {dst:?} {a:?} {b:?}");
        }
    });
}

#[test]
fn cross_entropy() {
    kernels("cross_entropy", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let (m, v, scale) = (5, 37, 1.7f32);
        let logits = rnd(&mut rng, m * v, 3.0);
        let targets = [3, 0, 36, 17, 3];
        let want = ref_cross_entropy(&f64s(&logits), &targets, v);
        let nl = numeric_grad(&logits, |x| scale as f64 * ref_cross_entropy(x, &targets, v));
        let mut lb = up(be, &logits);
        let k = LossScale { scale, denom: mean_denominator(m) };
        let ce = be.cross_entropy(&mut lb, &up_ids(be, &targets), m, v, k).unwrap();
        check_forward(&format!("{t} cross_entropy"), &[ce.loss], &[want]);
        let argmax =
            |r: &[f32]| r.iter().enumerate().fold((0, f32::MIN), |a, (j, &x)| if x > a.1 { (j, x) } else { a }).0;
        let right = logits.chunks(v).zip(&targets).filter(|(r, &y)| argmax(r) == y as usize).count();
        assert_eq!(ce.correct, right, "{t}: rows predicted right");
        check(&format!("{t} cross_entropy"), &[("dlogits", &down(be, &lb, m * v), &nl)]);
    });
}

#[test]
fn binary_cross_entropy() {
    kernels("binary_cross_entropy", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(19);
        let n = 23;
        let logits = rnd(&mut rng, n, 4.0);
        let hard: Vec<f32> = (0..n).map(|i| ((i * 7) % 3 == 0) as i32 as f32).collect();
        // Smoothed targets (`disc_label_smoothing` 0.2: 0.1 and 0.9) as well as 0 and 1.
        for labels in [hard.clone(), hard.iter().map(|y| y * 0.8 + 0.1).collect()] {
            let weights: Vec<f32> = (0..n).map(|i| (i % 5 != 4) as i32 as f32).collect();
            let scale = 2.5f32;
            let want = ref_bce(&f64s(&logits), &labels, &weights);
            let nl = numeric_grad(&logits, |x| scale as f64 * ref_bce(x, &labels, &weights));
            let mut d = zeros(be, n);
            let bce = be
                .binary_cross_entropy(
                    &mut d,
                    &up(be, &logits),
                    &up(be, &labels),
                    &up(be, &weights),
                    n,
                    LossScale { scale, denom: wsum(&weights) },
                )
                .unwrap();
            check_forward(&format!("{t} binary_cross_entropy"), &[bce.loss], &[want]);
            let right = (0..n).filter(|&i| weights[i] > 0.0 && (logits[i] > 0.0) == (labels[i] > 0.5)).count();
            assert_eq!(bce.correct, right, "{t}: tokens classified right");
            check(&format!("{t} binary_cross_entropy"), &[("dlogits", &down(be, &d, n), &nl)]);
        }
    });
}

/// Every backend drops the same elements as the mask's keystream (rand_chacha's own words) says,
/// at any offset and length (partial keystream blocks at both ends), with the kept ones scaled
/// by exactly 1/(1 − p): the same bits as the CPU.
#[test]
fn dropout() {
    kernels("dropout", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        for (p, len, skip) in [(0.1f32, 1000usize, 0u64), (0.5, 37, 5), (0.9, 4099, 1 << 40), (0.1, 0, 3)] {
            let x = rnd(&mut rng, len, 2.0);
            let mut gen = ChaCha8Rng::seed_from_u64(99);
            gen.set_stream(4);
            keystream::skip(&mut gen, skip);
            let d = Dropout::new(p, KeystreamAt::of(&gen).unwrap()).unwrap();
            let mut b = up(be, &x);
            be.dropout(&mut b, len, d).unwrap();
            let got = down(be, &b, len);
            let want: Vec<f32> = x
                .iter()
                .map(|&v| if rand::RngCore::next_u32(&mut gen) >= d.threshold { v * d.scale() } else { 0.0 })
                .collect();
            assert_eq!(bits(&got), bits(&want), "{t}: dropout p {p}, {len} elements at word {skip}");
            if len >= 1000 {
                let dropped = got.iter().filter(|&&v| v == 0.0).count() as f64 / len as f64;
                assert!((dropped - p as f64).abs() < 0.05, "{t}: dropped {dropped} at p {p}");
            }
        }
    });
}

/// Every backend draws the same samples from the same logits and generator position as the CPU's
/// sampling from the generator itself, and the caller's generator ends where drawing would leave
/// it: the randomness of training does not depend on the device.
#[test]
fn gumbel_sampling() {
    kernels("gumbel_sampling", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(20);
        let (m, v) = (7, 300);
        let logits = rnd(&mut rng, m * v, 3.0);
        for temperature in [1.0, 3.0] {
            let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(5), ChaCha8Rng::seed_from_u64(5));
            let (mut got, mut want) = (Vec::new(), Vec::new());
            let at = keystream::take(&mut a, (m * v) as u64).unwrap();
            be.gumbel_argmax(&mut got, &up(be, &logits), m, v, temperature, at).unwrap();
            // The original's draw: one generator, row by row, column by column.
            for row in logits.chunks_exact(v) {
                let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
                for (j, &x) in row.iter().enumerate() {
                    let u: f32 = b.random();
                    let s = x / temperature - (-(u + 1e-9).ln() + 1e-9).ln();
                    if s > best {
                        (best, arg) = (s, j as i32);
                    }
                }
                want.push(arg);
            }
            assert_eq!(got, want, "{t}: samples at temperature {temperature}");
            assert_eq!(a, b, "{t}: RNG state after sampling");
        }
    });
}

#[test]
fn optimizer() {
    kernels("optimizer", |t, be| {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let n = 300;
        let g = rnd(&mut rng, n, 2.0);
        let want = g.iter().map(|&x| x as f64 * x as f64).sum::<f64>();
        let got = be.sum_squares(&up(be, &g), n).unwrap();
        assert!((got - want).abs() <= 1e-12 * want, "{t}: sum of squares {got} vs {want}");
        // Exact in any order: the CPU kernel's bits, NaN ignored, 0 for nothing.
        let mut spiky = g.clone();
        spiky[217] = -9.5;
        spiky[3] = f32::NAN;
        let want_max = cpu::optim::max_abs(&spiky);
        assert_eq!(want_max, 9.5);
        assert_eq!(be.max_abs(&up(be, &spiky), n).unwrap().to_bits(), want_max.to_bits(), "{t}: max |x|");
        assert_eq!(be.max_abs(&up(be, &g), 0).unwrap(), 0.0, "{t}: max |x| of nothing");
        let mut s = up(be, &g);
        be.scale(&mut s, n, 0.37).unwrap();
        assert_eq!(bits(&down(be, &s, n)), bits(&g.iter().map(|x| x * 0.37).collect::<Vec<_>>()), "{t}: scale");

        // Two tensors with their own learning rates and decay, two steps, with bias correction.
        let (p0, m0, v0) = (rnd(&mut rng, n, 1.0), rnd(&mut rng, n, 0.1), rnd(&mut rng, n, 0.1));
        let v0: Vec<f32> = v0.iter().map(|x| x.abs()).collect();
        let tensors = [
            AdamTensor { span: Span { off: 0, len: 120 }, lr: 1e-2, weight_decay: 0.01 },
            AdamTensor { span: Span { off: 120, len: 180 }, lr: 3e-3, weight_decay: 0.0 },
        ];
        let (mut p, mut mb, mut vb, gb) = (up(be, &p0), up(be, &m0), up(be, &v0), up(be, &g));
        let (mut rp, mut rm, mut rv) = (f64s(&p0), f64s(&m0), f64s(&v0));
        for step in 1..=2 {
            let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-6f32);
            let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
            let k = AdamStep { beta1: b1, beta2: b2, epsilon: eps, c1, c2 };
            // Step 1 checks first, step 2 is the proved single pass: both must agree.
            let state = AdamState { params: &mut p, m: &mut mb, v: &mut vb };
            let refused = be.adamw(state, &gb, &tensors, &k, step == 1).unwrap();
            assert_eq!(refused, None, "{t}: a finite update was refused");
            for tn in &tensors {
                for i in tn.span.off..tn.span.off + tn.span.len {
                    let gi = g[i] as f64;
                    rm[i] = b1 as f64 * rm[i] + (1.0 - b1 as f64) * gi;
                    rv[i] = b2 as f64 * rv[i] + (1.0 - b2 as f64) * gi * gi;
                    let upd = (rm[i] / c1 as f64) / ((rv[i] / c2 as f64).sqrt() + eps as f64)
                        + tn.weight_decay as f64 * rp[i];
                    rp[i] -= tn.lr as f64 * upd;
                }
            }
        }
        check_forward(&format!("{t} adamw params"), &down(be, &p, n), &rp);
        check_forward(&format!("{t} adamw m"), &down(be, &mb, n), &rm);
        check_forward(&format!("{t} adamw v"), &down(be, &vb, n), &rv);
    });
}

// ---------------------------------------------------------------------------------------------
// Layers over the seam: the encoder tower and the heads.

/// Embeddings, LayerNorm, projection E→H and two post-LN layers with a key padding mask, token
/// types and a repeated id: every parameter's gradient from `Encoder::backward`.
#[test]
fn encoder_tower() {
    let model = tiny_discriminator();
    let enc = &model.disc().unwrap().encoder;
    assert!(enc.proj.is_some() && enc.emb.pad_id == 0);
    let (b, t, h) = (2, 5, enc.hidden);
    let ids = [2, 7, 5, 11, 3, 2, 9, 9, 0, 0];
    let mask = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    let types = [0, 0, 1, 1, 1, 0, 1, 1, 0, 0];
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let r = rnd(&mut rng, b * t * h, 1.0);
    let w = &model.params.data;
    let mut numeric = numeric_grad(w, |v| dot(&ref_encoder(enc, v, &ids, &types, &mask, t), &r));
    // The [PAD] row of the word table gets no gradient (HF padding_idx), though it is read.
    let pad = enc.emb.word.off + enc.emb.pad_id * enc.emb_dim..enc.emb.word.off + (enc.emb.pad_id + 1) * enc.emb_dim;
    numeric[pad.clone()].fill(0.0);
    let want = ref_encoder(enc, &f64s(w), &ids, &types, &mask, t);
    kernels("encoder_tower", |label, be| {
        let wb = up(be, w);
        let mut acts = EncoderActs::new(true);
        let x =
            Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: b, seq_len: t };
        enc.forward(be, &Weights::flat(wb.mem()), &mut acts, &x).unwrap();
        check_forward(&format!("{label} encoder"), &down(be, acts.output(enc), b * t * h), &want);
        // What the training forward keeps: no probabilities where the backward recomputes them.
        let probs = b * enc.heads * t * t;
        for la in &acts.layers {
            assert_eq!(
                la.probs.len(),
                if be.attention_recomputes() { 0 } else { probs },
                "{label}: kept probabilities"
            );
            // Nor queries, keys, values and context there (the backward recomputes them too).
            let none = [&la.q, &la.k, &la.v, &la.ctx].iter().all(|x| x.is_empty());
            assert_eq!(none, be.attention_recomputes(), "{label}: kept queries, keys, values or context");
        }
        let mut g = zeros(be, w.len());
        let mut bp = Backprop::new(be, wb.mem(), &mut g);
        enc.backward(&mut bp, &acts, &mut EncoderGrads::default(), &up(be, &r)).unwrap();
        let mut g = down(be, &g, w.len());
        assert!(g[pad.clone()].iter().all(|&x| x == 0.0), "{label}: the [PAD] row got a gradient");
        let mut numeric = numeric.clone();
        // The key bias cannot change any softmax (it adds q·b_k to a whole row of scores): its
        // true gradient is 0, and ours is f32 rounding noise, compared with the key weights'.
        for ly in &enc.layers {
            let scale = numeric[ly.k.w.off..ly.k.w.off + ly.k.w.len].iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let key_b = &mut g[ly.k.b.off..ly.k.b.off + ly.k.b.len];
            assert!(key_b.iter().all(|x| (*x as f64).abs() <= 1e-6 * scale), "{label}: key bias gradient {key_b:?}");
            key_b.fill(0.0);
            numeric[ly.k.b.off..ly.k.b.off + ly.k.b.len].fill(0.0);
        }
        check(&format!("{label} encoder (2 layers, E≠H)"), &by_tensor(&model.params, &g, &numeric));
    });
}

/// `DiscHead` with the sigmoid BCE of replaced-token detection on top: HF's head, and the
/// [CLS]-aware one (`rtd_head: "cls"`) over two sequences of 4, where the [CLS] rows' gradient
/// gathers every row's.
#[test]
fn discriminator_head_with_bce() {
    for rtd in [RtdHead::Plain, RtdHead::Cls] {
        let model = tiny_discriminator_with(rtd);
        let head = &model.disc().unwrap().head;
        assert_eq!(head.cls_ln.is_some(), rtd == RtdHead::Cls);
        let (m, t, h) = (8, 4, head.dense.din);
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        let hidden = rnd(&mut rng, m * h, 1.5);
        let labels = [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        let weights = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let scale = 3.0f32;
        let objective = |w: &[f64], x: &[f64]| scale as f64 * ref_bce(&ref_disc_head(head, w, x, t), &labels, &weights);
        let (w, w64, hidden64) = (&model.params.data, f64s(&model.params.data), f64s(&hidden));
        let nw = numeric_grad(w, |v| objective(v, &hidden64));
        let nh = numeric_grad(&hidden, |x| objective(&w64, x));
        kernels("discriminator_head_with_bce", |label, be| {
            let (wb, hb) = (up(be, w), up(be, &hidden));
            let mut acts = DiscHeadActs::default();
            head.forward(be, &Weights::flat(wb.mem()), &mut acts, &hb, m, t).unwrap();
            check_forward(
                &format!("{label} discriminator head ({rtd:?})"),
                &down(be, &acts.logits, m),
                &ref_disc_head(head, &w64, &hidden64, t),
            );
            let mut d_logits = zeros(be, m);
            be.binary_cross_entropy(
                &mut d_logits,
                &acts.logits,
                &up(be, &labels),
                &up(be, &weights),
                m,
                LossScale { scale, denom: wsum(&weights) },
            )
            .unwrap();
            let (mut g, mut d_hidden) = (zeros(be, w.len()), zeros(be, m * h));
            let mut bp = Backprop::new(be, wb.mem(), &mut g);
            head.backward(&mut bp, &acts, &mut DiscHeadGrads::default(), &hb, &d_logits, &mut d_hidden).unwrap();
            let (g, d_hidden) = (down(be, &g, w.len()), down(be, &d_hidden, m * h));
            let mut grads = by_tensor(&model.params, &g, &nw);
            grads.push(("d_hidden", &d_hidden, &nh));
            check(&format!("{label} discriminator head ({rtd:?}) + BCE"), &grads);
        });
    }
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
    let gen = model.gen().unwrap();
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
    kernels("generator_head_with_cross_entropy", |t, be| {
        let (wb, hb) = (up(be, w), up(be, &hidden));
        let mut acts = GenHeadActs::default();
        head.forward(be, &Weights::flat(wb.mem()), &mut acts, &hb, m).unwrap();
        check_forward(
            &format!("{t} generator head"),
            &down(be, &acts.logits, m * v),
            &ref_gen_head(head, &w64, &hidden64),
        );
        // The logits become their gradient.
        let k = LossScale { scale, denom: mean_denominator(m) };
        be.cross_entropy(&mut acts.logits, &up_ids(be, &targets), m, v, k).unwrap();
        let (mut g, mut d_hidden) = (zeros(be, w.len()), zeros(be, m * h));
        let mut bp = Backprop::new(be, wb.mem(), &mut g);
        head.backward(&mut bp, &acts, &mut GenHeadGrads::default(), &hb, &acts.logits, &mut d_hidden).unwrap();
        let (g, d_hidden) = (down(be, &g, w.len()), down(be, &d_hidden, m * h));
        let mut grads = by_tensor(&model.params, &g, &nw);
        grads.push(("d_hidden", &d_hidden, &nh));
        check(&format!("{t} generator head (tied) + CE"), &grads);
    });
}

/// `ClsHead`: [CLS] state (or the masked mean of the states) → dense → GELU → out_proj, three
/// labels; the mean with a mask that pads two rows differently and without one.
#[test]
fn classification_head() {
    let masks: [Option<Vec<i32>>; 2] = [Some(vec![1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0]), None];
    for (pool, mask) in [(Pooling::Cls, None), (Pooling::Mean, masks[0].clone()), (Pooling::Mean, masks[1].clone())] {
        let cfg = ElectraConfig::from_json_str(&format!(
            r#"{{"vocab_size": 13, "embedding_size": 6, "hidden_size": 8, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 12, "num_labels": 3,
                "max_position_embeddings": 8, "classifier_pooling": "{}"}}"#,
            pool.as_str()
        ))
        .unwrap();
        let mut model = Model::new_classifier(cfg).unwrap();
        randomize(&mut model.params, 26);
        let cls = model.cls().unwrap();
        let (head, labels) = (&cls.head, cls.num_labels);
        assert_eq!(head.pool, pool);
        let (b, t, h) = (3, 4, head.dense.din);
        let mut rng = ChaCha8Rng::seed_from_u64(27);
        let (hidden, r) = (rnd(&mut rng, b * t * h, 1.5), rnd(&mut rng, b * labels, 1.0));
        let (w, w64, hidden64) = (&model.params.data, f64s(&model.params.data), f64s(&hidden));
        let m = mask.as_deref();
        let nw = numeric_grad(w, |p| dot(&ref_cls_head(head, p, &hidden64, t, m), &r));
        let nh = numeric_grad(&hidden, |x| dot(&ref_cls_head(head, &w64, x, t, m), &r));
        let what = format!("classification head ({}, mask {})", pool.as_str(), mask.is_some());
        kernels("classification_head", |label, be| {
            let (wb, hb) = (up(be, w), up(be, &hidden));
            let mb = mask.as_ref().map(|m| up_ids(be, m));
            let x = Pooled { hidden: &hb, mask: mb.as_ref(), b, t };
            let mut acts = ClsHeadActs::default();
            head.forward(be, &Weights::flat(wb.mem()), &mut acts, x).unwrap();
            let want = ref_cls_head(head, &w64, &hidden64, t, m);
            check_forward(&format!("{label} {what}"), &down(be, &acts.logits, b * labels), &want);
            // Stale values in the gradient buffer must not survive (it is assigned).
            let (mut g, mut d_hidden) = (zeros(be, w.len()), up(be, &vec![9.0; b * t * h]));
            let mut bp = Backprop::new(be, wb.mem(), &mut g);
            head.backward(&mut bp, &acts, &mut ClsHeadGrads::default(), &up(be, &r), &mut d_hidden, mb.as_ref())
                .unwrap();
            let (g, d_hidden) = (down(be, &g, w.len()), down(be, &d_hidden, b * t * h));
            let mut grads = by_tensor(&model.params, &g, &nw);
            grads.push(("d_hidden", &d_hidden, &nh));
            check(&format!("{label} {what}"), &grads);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Whole steps.

#[test]
fn forward_matches_pytorch() {
    use common::forward_fixture::{discriminator_matches, generator_matches, pair_matches};
    steps("forward_matches_pytorch", |t| {
        let be = open(t);
        let session = |m: Arc<Model>| Session::on(m, be.clone());
        discriminator_matches(&session);
        generator_matches(&session);
        pair_matches(&session);
    });
}

#[test]
fn backward_matches_autograd() {
    steps("backward_matches_autograd", |t| common::train_fixture::gradients_match(t.device, t.threads));
}

#[test]
fn optimizer_steps_match_pytorch() {
    steps("optimizer_steps_match_pytorch", |t| common::train_fixture::five_steps_match(t.device, t.threads));
}

#[test]
fn classifier_matches_pytorch() {
    steps("classifier_matches_pytorch", |t| common::train_fixture::classifier_matches(t.device, t.threads));
}

const B: usize = 4;
const T: usize = 24;

/// A pair with E ≠ H, 2 heads and padding, large enough for split kernels.
fn pair_model() -> Model {
    let d = ElectraConfig::from_json_str(
        r#"{"vocab_size": 90, "embedding_size": 24, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 32,
            "architectures": ["ElectraForPreTraining"]}"#,
    )
    .unwrap();
    let g = d.generator_config(0.5).unwrap();
    let mut m = Model::new(Some(d), Some(g), true).unwrap();
    m.init_weights(4).unwrap();
    m
}

fn batch_data() -> (Vec<i32>, Vec<i32>, Vec<i32>) {
    let ids: Vec<i32> = (0..B * T).map(|i| if i % T == 0 { 2 } else { 5 + ((i * 31 + i / 5) % 84) as i32 }).collect();
    let mask: Vec<i32> = (0..B * T).map(|i| (i % T < T - (i / T) * 4) as i32).collect();
    let types: Vec<i32> = (0..B * T).map(|i| (i % T >= T / 2) as i32).collect();
    (ids, mask, types)
}

/// Two full pre-training steps (masking, sampling, both towers, clip, AdamW): the same run twice
/// on a backend is bit-identical, and it matches the CPU reference (bit for bit on the CPU
/// whatever its thread count; within 1e-4 relative elsewhere), RNG state included.
#[test]
fn pretrain_step() {
    let (ids, mask, types) = batch_data();
    let batch =
        Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: B, seq_len: T };
    let run = |device: Device, threads: usize| {
        let opts = TrainOptions {
            max_seq_len: T,
            warmup_steps: 0,
            learning_rate: 1e-3,
            seed: 3,
            threads,
            device,
            mask_token_id: 4,
            special_token_ids: vec![0, 1, 2, 3, 4],
            ..Default::default()
        };
        let mut tr = Trainer::from_model(pair_model(), opts).unwrap();
        let stats = [tr.train_step(&batch).unwrap(), tr.train_step(&batch).unwrap()];
        (stats, tr.weights().unwrap().into_owned(), tr.moments().unwrap().v.into_owned(), tr.rngs.clone())
    };
    let reference = run(Device::Cpu, 1);
    steps("pretrain_step", |t| {
        let got = run(t.device, t.threads);
        let again = run(t.device, t.threads);
        assert!(got.0 == again.0 && bits(&got.1) == bits(&again.1), "{}: two identical runs differ", t.label);
        assert_eq!(got.3, reference.3, "{}: the RNG state after two steps", t.label);
        if t.exact() {
            assert_eq!(got.0, reference.0, "{}: step statistics", t.label);
            assert!(bits(&got.1) == bits(&reference.1), "{}: weights differ from the CPU reference", t.label);
            assert!(bits(&got.2) == bits(&reference.2), "{}: Adam moments differ", t.label);
        } else {
            for (g, r) in got.0.iter().zip(&reference.0) {
                assert_eq!((g.masked, g.tokens, g.step), (r.masked, r.tokens, r.step), "{}: masking", t.label);
                assert_close(&format!("{} loss", t.label), &[g.loss], &[r.loss], 1e-4, 0.0);
            }
            assert_close(&format!("{} weights", t.label), &got.1, &reference.1, 1e-4, 1e-5);
        }
    });
}

/// Every inference entry point against the CPU reference: bit for bit on the CPU (any thread
/// count), within 1e-5 relative elsewhere.
#[test]
fn inference() {
    let (ids, mask, types) = batch_data();
    let batch =
        Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: B, seq_len: T };
    let pair = Arc::new(pair_model());
    let mut cls_cfg = pair.disc().unwrap().config.clone();
    electra::model::classifier::set_labels(&mut cls_cfg, &["a".into(), "b".into(), "c".into()]);
    let mut cls = Model::new_classifier(cls_cfg).unwrap();
    cls.init_weights(8).unwrap();
    let cls = Arc::new(cls);
    let (n, h, v) = (B * T, 32, 90);
    let outputs = |mut s: Session, mut c: Session| {
        let (mut d, mut g, mut hs, mut l) = (vec![0.0; n], vec![0.0; n * v], vec![0.0; n * h], vec![0.0; B * 3]);
        s.discriminate(&batch, &mut d).unwrap();
        s.generator_logits(&batch, &mut g).unwrap();
        s.hidden_states(&batch, &mut hs).unwrap();
        c.classify(&batch, &mut l).unwrap();
        [d, g, hs, l]
    };
    let cpu1 = || backend::open(Device::Cpu, &backend::BackendOptions::threads(1)).unwrap();
    let reference = outputs(Session::on(pair.clone(), cpu1()), Session::on(cls.clone(), cpu1()));
    steps("inference", |t| {
        let got = outputs(Session::on(pair.clone(), open(t)), Session::on(cls.clone(), open(t)));
        for (what, (g, r)) in
            ["discriminate", "generator_logits", "hidden_states", "classify"].iter().zip(got.iter().zip(&reference))
        {
            if t.exact() {
                assert!(bits(g) == bits(r), "{}: {what} differs from the CPU reference", t.label);
            } else {
                assert_close(&format!("{} {what}", t.label), g, r, 1e-5, 1e-6);
            }
        }
    });
}

/// The BCE denominator of 0/1 weights: the count of weighted tokens, + 1e-6.
fn wsum(weights: &[f32]) -> f64 {
    mean_denominator(weights.iter().filter(|&&w| w > 0.0).count())
}
