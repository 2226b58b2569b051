//! Naive f64 reference forwards written from the math with HuggingFace semantics (plain loops,
//! exact erf, no SIMD, no fusion, nothing shared with the library but the parameter layout), and
//! the finite-difference check that compares a backend's gradients with them. Used by the f64
//! gradient checks of the CPU kernels (tests/gradcheck_f64.rs) and by the conformance suite that
//! runs every compiled-in backend (tests/conformance.rs).

use electra::backend::Activation;
use electra::layers::{LayerNorm, Linear};
use electra::model::classifier::ClsHead;
use electra::model::encoder::Encoder;
use electra::model::heads::{DiscHead, GenHead};
use electra::params::{ParamStore, Span};
use electra::{ElectraConfig, Model, Pooling, RtdHead};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest accepted relative error of a gradient element.
pub const TOL: f64 = 1e-4;
/// Elements smaller than this fraction of the quantity's scale are compared against it instead.
pub const FLOOR: f64 = 1e-2;
/// Largest accepted relative error of our f32 forward against the f64 reference (f32 rounding,
/// and the 1.5e-7 of the erf approximation that our GELU shares with PyTorch's CPU kernel; the
/// worst measured is 1.5e-5, in the generator head, where a LayerNorm follows the GELU).
pub const FWD_TOL: f64 = 1e-4;
/// Central-difference step (relative to max(1, |x|)).
pub const STEP: f64 = 1e-5;

// ---------------------------------------------------------------------------------------------
// Comparison and reporting.

/// Uniform values in (−scale, scale).
pub fn rnd(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect()
}

pub fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Σ y·r.
pub fn dot(y: &[f64], r: &[f32]) -> f64 {
    assert_eq!(y.len(), r.len(), "objective shape");
    y.iter().zip(r).map(|(a, &b)| a * b as f64).sum()
}

/// Central differences of `f` at `x` in every coordinate, in f64.
pub fn numeric_grad(x: &[f32], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
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
pub struct Worst {
    /// |got − want| / max(|want|, FLOOR·scale): NaN counts as infinite.
    pub rel: f64,
    pub at: usize,
    pub got: f64,
    pub want: f64,
}

/// Compares `got` (ours) against `want` (the reference), elementwise relative to
/// max(|want|, FLOOR·scale) where scale is the largest |want|.
pub fn worst(got: &[f32], want: &[f64]) -> Worst {
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
pub fn check(op: &str, grads: &[(&str, &[f32], &[f64])]) {
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
pub fn check_forward(op: &str, got: &[f32], want: &[f64]) {
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
pub fn by_tensor<'a>(params: &'a ParamStore, got: &'a [f32], want: &'a [f64]) -> Vec<(&'a str, &'a [f32], &'a [f64])> {
    params
        .infos()
        .iter()
        .map(|i| (i.name.as_str(), &got[i.offset..i.offset + i.len], &want[i.offset..i.offset + i.len]))
        .collect()
}

/// Runs `f` on a rayon pool of `threads` workers (the kernels split work over the current pool).
pub fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool").install(f)
}

// ---------------------------------------------------------------------------------------------
// Naive f64 reference forwards.

/// `x[n, din]·Wᵀ + b` with W `[dout, din]` (PyTorch layout).
pub fn ref_linear(x: &[f64], w: &[f64], b: Option<&[f64]>, din: usize, dout: usize) -> Vec<f64> {
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
pub fn ref_layer_norm(x: &[f64], g: &[f64], b: &[f64], c: usize, eps: f64) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks_exact(c) {
        let mean = row.iter().sum::<f64>() / c as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        y.extend(row.iter().zip(g).zip(b).map(|((v, g), b)| (v - mean) * rstd * g + b));
    }
    y
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// HF `ACT2FN` activations.
pub fn ref_act(a: Activation, x: f64) -> f64 {
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

pub fn ref_act_all(a: Activation, x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| ref_act(a, v)).collect()
}

/// Attention shape: B batch rows of T tokens, NH heads of HD columns.
#[derive(Clone, Copy)]
pub struct Heads {
    pub b: usize,
    pub t: usize,
    pub nh: usize,
    pub hd: usize,
}

/// `softmax(Q·Kᵀ/√HD)·V` per batch row and head; keys whose `mask` is 0 are left out of the
/// softmax (what HF's additive `finfo.min` mask does whenever a row has an unmasked key).
pub fn ref_attention(q: &[f64], k: &[f64], v: &[f64], mask: Option<&[i32]>, d: Heads) -> Vec<f64> {
    ref_attention_dropped(q, k, v, mask, d, None)
}

/// [`ref_attention`] with each probability `[B, NH, T, T]` multiplied by `factor` (a dropout
/// mask: 0 or 1/(1 − p)) before it weighs the values.
pub fn ref_attention_dropped(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    mask: Option<&[i32]>,
    d: Heads,
    factor: Option<&[f64]>,
) -> Vec<f64> {
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
                    let f = factor.map_or(1.0, |f| f[((bi * d.nh + head) * d.t + i) * d.t + j]);
                    for c in 0..d.hd {
                        ctx[col(i) + c] += ej / z * f * v[col(j) + c];
                    }
                }
            }
        }
    }
    ctx
}

/// `word[id] + type[ty] + pos[t]` per token of width `e`.
pub fn ref_embedding(ids: &[i32], types: Option<&[i32]>, tables: [&[f64]; 3], t: usize, e: usize) -> Vec<f64> {
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
pub fn ref_cross_entropy(logits: &[f64], targets: &[i32], v: usize) -> f64 {
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
pub fn ref_bce(logits: &[f64], labels: &[f32], weights: &[f32]) -> f64 {
    let mut total = 0.0;
    for ((&x, &y), &w) in logits.iter().zip(labels).zip(weights) {
        let p = sigmoid(x);
        total += w as f64 * -(y as f64 * p.ln() + (1.0 - y as f64) * (1.0 - p).ln());
    }
    total / (weights.iter().map(|&w| w as f64).sum::<f64>() + 1e-6)
}

pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// A tensor of the flat f64 parameter vector.
pub fn sp(w: &[f64], s: Span) -> &[f64] {
    &w[s.off..s.off + s.len]
}

pub fn ref_lin(w: &[f64], lin: &Linear, x: &[f64]) -> Vec<f64> {
    ref_linear(x, sp(w, lin.w), Some(sp(w, lin.b)), lin.din, lin.dout)
}

pub fn ref_ln(w: &[f64], ln: &LayerNorm, x: &[f64]) -> Vec<f64> {
    ref_layer_norm(x, sp(w, ln.g), sp(w, ln.b), ln.dim, ln.eps)
}

/// HF `ElectraModel` (post-LN BERT layers) on the flat parameter vector `w`.
pub fn ref_encoder(enc: &Encoder, w: &[f64], ids: &[i32], types: &[i32], mask: &[i32], t: usize) -> Vec<f64> {
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
/// With the [CLS]-aware head, on LayerNorm(h_[CLS] + h_i) over sequences of `t` rows.
pub fn ref_disc_head(head: &DiscHead, w: &[f64], hidden: &[f64], t: usize) -> Vec<f64> {
    let h = head.dense.din;
    let input: Vec<f64> = match &head.cls_ln {
        None => hidden.to_vec(),
        Some(ln) => {
            let mixed: Vec<f64> =
                hidden.iter().enumerate().map(|(i, x)| x + hidden[i / (t * h) * t * h + i % h]).collect();
            ref_ln(w, ln, &mixed)
        }
    };
    ref_lin(w, &head.pred, &ref_act_all(head.act, &ref_lin(w, &head.dense, &input)))
}

/// HF `ElectraGeneratorPredictions` (dense → erf GELU, whatever hidden_act says → LayerNorm)
/// and `generator_lm_head`.
pub fn ref_gen_head(head: &GenHead, w: &[f64], hidden: &[f64]) -> Vec<f64> {
    let normed = ref_ln(w, &head.ln, &ref_act_all(Activation::Gelu, &ref_lin(w, &head.dense, hidden)));
    let e = head.dense.dout;
    ref_linear(&normed, sp(w, head.lm_w), Some(sp(w, head.lm_b)), e, head.vocab)
}

/// HF `ElectraClassificationHead` on the first token of each of the rows of `t` tokens.
pub fn ref_cls_head(head: &ClsHead, w: &[f64], hidden: &[f64], t: usize, mask: Option<&[i32]>) -> Vec<f64> {
    let h = head.dense.din;
    let pooled: Vec<f64> = match head.pool {
        Pooling::Cls => hidden.chunks_exact(t * h).flat_map(|row| row[..h].to_vec()).collect(),
        // The masked mean over each row's kept tokens.
        Pooling::Mean => hidden
            .chunks_exact(t * h)
            .enumerate()
            .flat_map(|(g, row)| {
                let keep = move |r: usize| mask.is_none_or(|m| m[g * t + r] != 0);
                let n = (0..t).filter(|&r| keep(r)).count() as f64;
                (0..h).map(move |c| (0..t).filter(|&r| keep(r)).map(|r| row[r * h + c]).sum::<f64>() / n)
            })
            .collect(),
    };
    ref_lin(w, &head.out_proj, &ref_act_all(Activation::Gelu, &ref_lin(w, &head.dense, &pooled)))
}

/// Random weights of a size where no layer is near-linear: LayerNorm gains 1 ± 0.3, every other
/// tensor (biases, LayerNorm shifts, embeddings) uniform in ±0.4.
pub fn randomize(params: &mut ParamStore, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for info in params.infos().to_vec() {
        let gain = info.name.contains("LayerNorm") && info.name.ends_with(".weight");
        for v in &mut params.data[info.offset..info.offset + info.len] {
            let u = rng.random::<f32>() * 2.0 - 1.0;
            *v = if gain { 1.0 + 0.3 * u } else { 0.4 * u };
        }
    }
}

pub fn tiny_discriminator() -> Model {
    tiny_discriminator_with(RtdHead::Plain)
}

/// [`tiny_discriminator`] with the detection head `rtd`.
pub fn tiny_discriminator_with(rtd: RtdHead) -> Model {
    let mut cfg = ElectraConfig::from_json_str(
        r#"{"vocab_size": 13, "embedding_size": 6, "hidden_size": 8, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 8}"#,
    )
    .unwrap();
    cfg.set_rtd_head(rtd);
    let mut m = Model::new(Some(cfg), None, false).unwrap();
    randomize(&mut m.params, 21);
    m
}
