//! Finite-difference checks of every op's backward and of the whole joint objective.
//!
//! The kernels are f32-only, so (as the style guide prescribes for f32 kernels) each check is a
//! directional derivative: for a random direction d, (L(x + εd) − L(x − εd)) / 2ε must equal
//! ⟨∇L, d⟩ within 1e-2 relative, with L = Σ out·r for a random r (accumulated in f64).

use electra::backend::cpu::{activation, attention, embedding, layer_norm, matmul};
use electra::backend::{Activation, AttentionShape, LnStats, Qkv, Tokens};
use electra::options::DropoutSetting;
use embedding::Tables;
use layer_norm::{LnGrads, LnParams};
use matmul::{LinearGrads, LinearShape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rnd(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Checks ⟨grad, d⟩ against central differences of `loss` along `d` at `x`.
fn check(what: &str, x: &[f32], grad: &[f32], loss: impl Fn(&[f32]) -> f64, rng: &mut ChaCha8Rng) {
    let d = rnd(rng, x.len(), 1.0);
    let eps = 1e-2f32;
    let plus: Vec<f32> = x.iter().zip(&d).map(|(a, b)| a + eps * b).collect();
    let minus: Vec<f32> = x.iter().zip(&d).map(|(a, b)| a - eps * b).collect();
    let fd = (loss(&plus) - loss(&minus)) / (2.0 * eps as f64);
    let an = dot(grad, &d);
    let rel = (fd - an).abs() / an.abs().max(fd.abs()).max(1e-3);
    println!("{what}: analytic {an:.6} fd {fd:.6} rel {rel:.2e}");
    assert!(rel < 1e-2, "{what}: analytic {an} vs finite difference {fd} (rel {rel:.2e})");
}

#[test]
fn linear() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (n, din, dout) = (5, 7, 3);
    let (x, w, b, r) = (
        rnd(&mut rng, n * din, 1.0),
        rnd(&mut rng, dout * din, 1.0),
        rnd(&mut rng, dout, 1.0),
        rnd(&mut rng, n * dout, 1.0),
    );
    let f = |x: &[f32], w: &[f32], b: &[f32]| {
        let mut y = vec![0.0; n * dout];
        matmul::linear_forward(&mut y, x, w, Some(b), n, din, dout);
        dot(&y, &r)
    };
    let (mut dx, mut dw, mut db) = (vec![0.0; n * din], vec![0.0; dout * din], vec![0.0; dout]);
    let g = LinearGrads { dw: &mut dw, db: Some(&mut db) };
    matmul::linear_backward(Some(&mut dx), g, &r, &x, &w, LinearShape { n, din, dout }, false);
    check("linear dx", &x, &dx, |v| f(v, &w, &b), &mut rng);
    check("linear dw", &w, &dw, |v| f(&x, v, &b), &mut rng);
    check("linear db", &b, &db, |v| f(&x, &w, v), &mut rng);
}

#[test]
fn layer_norm_op() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (n, c) = (4, 9);
    let (x, g, b, r) =
        (rnd(&mut rng, n * c, 2.0), rnd(&mut rng, c, 1.0), rnd(&mut rng, c, 1.0), rnd(&mut rng, n * c, 1.0));
    let f = |x: &[f32], g: &[f32], b: &[f32]| {
        let (mut y, mut m, mut s) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
        let stats = LnStats { mean: &mut m[..], rstd: &mut s[..] };
        layer_norm::layer_norm_forward(&mut y, stats, x, LnParams { g, b, eps: 1e-12 }, n, c);
        dot(&y, &r)
    };
    let (mut y, mut m, mut s) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
    let stats = LnStats { mean: &mut m[..], rstd: &mut s[..] };
    layer_norm::layer_norm_forward(&mut y, stats, &x, LnParams { g: &g, b: &b, eps: 1e-12 }, n, c);
    let (mut dx, mut dg, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
    let d = LnGrads { dx: &mut dx, dg: &mut dg, db: &mut db };
    layer_norm::layer_norm_backward(d, &r, &x, &g, LnStats { mean: &m, rstd: &s }, n, c);
    check("layer_norm dx", &x, &dx, |v| f(v, &g, &b), &mut rng);
    check("layer_norm dg", &g, &dg, |v| f(&x, v, &b), &mut rng);
    check("layer_norm db", &b, &db, |v| f(&x, &g, v), &mut rng);
}

#[test]
fn activations() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for a in Activation::ALL {
        let (x, r) = (rnd(&mut rng, 40, 3.0), rnd(&mut rng, 40, 1.0));
        let f = |x: &[f32]| {
            let mut y = vec![0.0; 40];
            activation::activation_forward(&mut y, x, a);
            dot(&y, &r)
        };
        let mut dx = vec![0.0; 40];
        activation::activation_backward(&mut dx, &r, &x, a);
        check(&format!("{a:?}"), &x, &dx, f, &mut rng);
    }
}

#[test]
fn attention_with_padding() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (b, t, nh, hd) = (2, 5, 2, 3);
    let h = nh * hd;
    let n = b * t;
    let (q, k, v, r) =
        (rnd(&mut rng, n * h, 1.0), rnd(&mut rng, n * h, 1.0), rnd(&mut rng, n * h, 1.0), rnd(&mut rng, n * h, 1.0));
    let am = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    // The training path of the CPU backend: no probabilities kept, the backward recomputes them.
    let shape = AttentionShape { keep_probs: false, ..AttentionShape::new(b, t, nh, hd) };
    let mut mask = vec![0.0; n];
    attention::key_mask(&mut mask, Some(&am), n);
    let f = |q: &[f32], k: &[f32], v: &[f32]| {
        let mut ctx = vec![0.0; n * h];
        attention::attention_forward(&mut ctx, None, Qkv { q, k, v }, &mask, shape).unwrap();
        dot(&ctx, &r)
    };
    let (mut dq, mut dk, mut dv) = (vec![0.0; n * h], vec![0.0; n * h], vec![0.0; n * h]);
    let dx = Qkv { q: &mut dq[..], k: &mut dk[..], v: &mut dv[..] };
    let saved = attention::Saved { kept: None, mask_add: &mask };
    attention::attention_backward(dx, &r, saved, Qkv { q: &q, k: &k, v: &v }, shape).unwrap();
    check("attention dq", &q, &dq, |x| f(x, &k, &v), &mut rng);
    check("attention dk", &k, &dk, |x| f(&q, x, &v), &mut rng);
    check("attention dv", &v, &dv, |x| f(&q, &k, x), &mut rng);
    // Padded keys get no gradient.
    for j in 8..10 {
        assert!(dk[j * h..(j + 1) * h].iter().chain(&dv[j * h..(j + 1) * h]).all(|&g| g == 0.0));
    }
}

#[test]
fn embeddings() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (b, t, e, vocab, types) = (2, 3, 4, 6, 2);
    let ids = [1, 0, 5, 2, 2, 3];
    let tt = [0, 1, 1, 0, 0, 1];
    let (word, pos, typ, r) = (
        rnd(&mut rng, vocab * e, 1.0),
        rnd(&mut rng, t * e, 1.0),
        rnd(&mut rng, types * e, 1.0),
        rnd(&mut rng, b * t * e, 1.0),
    );
    let f = |w: &[f32], p: &[f32], y: &[f32]| {
        let mut out = vec![0.0; b * t * e];
        let tables = Tables { word: embedding::WordTable::F32(w), pos: p, typ: y };
        embedding::embedding_forward(&mut out, Tokens { ids: &ids[..], types: Some(&tt[..]), b, t }, tables, e);
        dot(&out, &r)
    };
    let (mut dw, mut dp, mut dy) = (vec![0.0; vocab * e], vec![0.0; t * e], vec![0.0; types * e]);
    let d = Tables { word: &mut dw[..], pos: &mut dp[..], typ: &mut dy[..] };
    embedding::embedding_backward(d, &r, Tokens { ids: &ids[..], types: Some(&tt[..]), b, t }, e, None);
    check("embedding word", &word, &dw, |x| f(x, &pos, &typ), &mut rng);
    check("embedding pos", &pos, &dp, |x| f(&word, x, &typ), &mut rng);
    check("embedding type", &typ, &dy, |x| f(&word, &pos, x), &mut rng);
}

/// The whole joint objective (generator MLM + 50·RTD, shared embeddings, tied output) on a
/// tiny model, along the gradient direction mixed with noise: without dropout, and with dropout
/// 0.3 everywhere (the masks are fixed within a step, so the loss is a function of the weights).
#[test]
fn joint_objective_end_to_end() {
    for dropout in [DropoutSetting::Config(false), DropoutSetting::Probability(0.3)] {
        joint_objective(dropout, 0.0);
    }
}

/// The same with the hybrid objective's term (the discriminator's masked-LM head, weight 2),
/// checked along the whole gradient and along the head's tensors alone; and that term alone
/// (the other weights 0), so its path back through the discriminator is checked by itself.
#[test]
fn hybrid_objective_end_to_end() {
    for dropout in [DropoutSetting::Config(false), DropoutSetting::Probability(0.3)] {
        joint_objective(dropout, 2.0);
        joint_objective_with(dropout, [0.0, 0.0, 2.0, 0.0], 0.0);
    }
}

/// The joint objective with replaced-token detection's labels smoothed (ε = 0.2), and the
/// detection term alone.
#[test]
fn smoothed_detection_end_to_end() {
    for dropout in [DropoutSetting::Config(false), DropoutSetting::Probability(0.3)] {
        joint_objective_with(dropout, [1.0, 50.0, 0.0, 0.0], 0.2);
        joint_objective_with(dropout, [0.0, 1.0, 0.0, 0.0], 0.2);
    }
}

/// The joint objective with the [CLS]-aware detection head (`rtd_head: "cls"`), and detection
/// alone, whose gradient reaches the [CLS] rows only through the head's mix: checked along the
/// whole gradient and along the head's LayerNorm alone.
#[test]
fn cls_aware_detection_end_to_end() {
    for dropout in [DropoutSetting::Config(false), DropoutSetting::Probability(0.3)] {
        joint_objective_head(dropout, [1.0, 50.0, 0.0, 0.0], 0.0, (electra::RtdHead::Cls, true));
        joint_objective_head(dropout, [0.0, 1.0, 0.0, 0.0], 0.2, (electra::RtdHead::Cls, true));
    }
}

/// The sequence-level [CLS] loss (`cls_contrast_weight`) with the joint objective, and alone (its
/// gradient reaches both towers only through their [CLS] rows), and with the tiny recipe's
/// [CLS]-aware head and untied output: checked along the whole gradient and along the
/// projections alone.
#[test]
fn cls_contrast_end_to_end() {
    for dropout in [DropoutSetting::Config(false), DropoutSetting::Probability(0.3)] {
        joint_objective_head(dropout, [1.0, 50.0, 0.0, 2.0], 0.0, (electra::RtdHead::Plain, true));
        joint_objective_head(dropout, [0.0, 0.0, 0.0, 2.0], 0.0, (electra::RtdHead::Plain, true));
        joint_objective_head(dropout, [1.0, 50.0, 0.0, 2.0], 0.0, (electra::RtdHead::Cls, false));
    }
}

/// The joint objective with the masked-LM head's output untied from the word table
/// (`tie_generator_output: false`): checked along the whole gradient and along that matrix.
#[test]
fn untied_generator_output_end_to_end() {
    for dropout in [DropoutSetting::Config(false), DropoutSetting::Probability(0.3)] {
        joint_objective_head(dropout, [1.0, 50.0, 0.0, 0.0], 0.0, (electra::RtdHead::Plain, false));
    }
}

fn joint_objective(dropout: DropoutSetting, disc_mlm_weight: f32) {
    joint_objective_with(dropout, [1.0, 50.0, disc_mlm_weight, 0.0], 0.0);
}

fn joint_objective_with(dropout: DropoutSetting, weights: [f32; 4], disc_label_smoothing: f32) {
    joint_objective_head(dropout, weights, disc_label_smoothing, (electra::RtdHead::Plain, true));
}

/// `[gen_weight, disc_weight, disc_mlm_weight, cls_contrast_weight]`, `disc_label_smoothing`, the
/// detection head and whether the masked-LM head's output is tied to the word table.
fn joint_objective_head(
    dropout: DropoutSetting,
    [gen_weight, disc_weight, disc_mlm_weight, cls_contrast_weight]: [f32; 4],
    disc_label_smoothing: f32,
    (rtd_head, tie): (electra::RtdHead, bool),
) {
    use electra::pretrain::masking::Masking;
    use electra::pretrain::{TrainOptions, Trainer};
    use electra::session::Batch;
    let d = electra::ElectraConfig::from_json_str(
        r#"{"vocab_size": 30, "embedding_size": 8, "hidden_size": 12, "num_hidden_layers": 2,
            "num_attention_heads": 3, "intermediate_size": 20, "max_position_embeddings": 16}"#,
    )
    .unwrap();
    let mut d = d;
    d.set_rtd_head(rtd_head);
    let mut g = d.generator_config(0.5).unwrap();
    g.tie_word_embeddings = tie;
    let mut model = electra::Model::new(Some(d), Some(g), true).unwrap();
    model.init_weights(9).unwrap();
    // Weights of std 0.2 (not 0.02), so no layer is near-linear.
    for info in model.params.infos().to_vec() {
        if !info.name.contains("LayerNorm") {
            model.params.data[info.offset..info.offset + info.len].iter_mut().for_each(|x| *x *= 10.0);
        }
    }
    let opts = TrainOptions {
        max_seq_len: 8,
        mask_token_id: 4,
        dropout,
        gen_weight,
        disc_weight,
        disc_mlm_weight,
        disc_label_smoothing,
        cls_contrast_weight,
        cls_contrast_temperature: 0.5,
        ..Default::default()
    };
    let mut t = Trainer::from_model(model, opts).unwrap();
    let ids = [2, 7, 9, 11, 13, 3, 0, 0, 2, 8, 10, 12, 14, 16, 18, 3];
    let mask = [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    let types = [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
    let batch =
        Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: 2, seq_len: 8 };
    let mut gen_in = ids.to_vec();
    gen_in[2] = 4;
    gen_in[10] = 4;
    let masking = Masking { positions: vec![2, 4, 10, 13], generator_input: gen_in };
    let sampled = [9, 20, 21, 14];
    t.forward_backward(&batch, &masking, Some(&sampled)).unwrap();
    let grad = t.grads().unwrap().into_owned();
    let theta = t.weights().unwrap().into_owned();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    // Directions: everything, and the tensors of an optional head alone.
    let only = |prefix: &str| {
        let mut h = vec![false; grad.len()];
        for i in t.params().infos().iter().filter(|i| i.name.starts_with(prefix)) {
            h[i.offset..i.offset + i.len].fill(true);
        }
        assert!(h.iter().any(|&x| x), "{prefix}* is in the table");
        h
    };
    let mut parts = vec![("all", vec![true; grad.len()])];
    if disc_mlm_weight > 0.0 {
        parts.push(("discriminator mlm head", only("discriminator_mlm.")));
    }
    if cls_contrast_weight > 0.0 {
        parts.push(("[CLS] contrast projections", only("cls_contrast.")));
    }
    if rtd_head == electra::RtdHead::Cls {
        parts.push(("[CLS]-aware head's LayerNorm", only("discriminator.discriminator_predictions.LayerNorm")));
    }
    if !tie {
        parts.push(("untied masked-LM output", only("generator.generator_lm_head.weight")));
    }
    for (what, keep) in parts {
        let g: Vec<f32> = grad.iter().zip(&keep).map(|(g, &k)| if k { *g } else { 0.0 }).collect();
        let gn = dot(&g, &g).sqrt() as f32;
        let noise: Vec<f32> =
            rnd(&mut rng, g.len(), 1.0).iter().zip(&keep).map(|(z, &k)| if k { *z } else { 0.0 }).collect();
        let nn = dot(&noise, &noise).sqrt() as f32;
        let dir: Vec<f32> = g.iter().zip(&noise).map(|(g, z)| g / gn + z / nn).collect();
        let mut loss_at = |eps: f32| {
            let moved: Vec<f32> = theta.iter().zip(&dir).map(|(t0, d)| t0 + eps * d).collect();
            t.set_weights(&moved).unwrap();
            t.forward_backward(&batch, &masking, Some(&sampled)).unwrap().loss as f64
        };
        let eps = 1e-3;
        let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps as f64);
        let an = dot(&grad, &dir);
        let rel = (fd - an).abs() / an.abs();
        println!("joint objective ({dropout:?}, weights {gen_weight}/{disc_weight}/{disc_mlm_weight}/{cls_contrast_weight}, smoothing {disc_label_smoothing}, {rtd_head:?} head, tied {tie}, {what}): analytic {an:.5} fd {fd:.5} rel {rel:.2e}");
        assert!(rel < 1e-2, "{what}: analytic {an} vs finite difference {fd}");
    }
}
