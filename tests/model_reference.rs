//! Forward parity with PyTorch `transformers` on the fixtures of scripts/make_fixtures.py:
//! discriminator logits, generator logits and last hidden states, max relative error 1e-5
//! (with an absolute floor of 1e-6 × the tensor's largest magnitude, for elements near zero).

mod common;
use common::forward_fixture::*;
use common::*;
use electra::hf;
use electra::session::{Batch, Session};
use std::sync::Arc;

#[test]
fn discriminator_matches_pytorch() {
    discriminator_matches(&|m| Session::new(m).unwrap());
}

#[test]
fn generator_matches_pytorch() {
    generator_matches(&|m| Session::new(m).unwrap());
}

#[test]
fn pair_layout_shares_embeddings_and_matches() {
    pair_matches(&|m| Session::new(m).unwrap());
}

#[test]
fn untied_file_with_position_ids_loads() {
    let case = "emb_lt_hidden";
    let (i, f) = inputs(case);
    let model = Arc::new(hf::load(&fixture(case).join("generator_untied_file")).unwrap());
    let v = model.gen().unwrap().config.vocab_size;
    let mut s = Session::new(model).unwrap();
    let mut g = vec![0.0; i.b * i.t * v];
    s.generator_logits(&batch(&i), &mut g).unwrap();
    assert_close("untied-file gen", &g, floats(&f, "gen_logits"), RTOL, FLOOR);
}

/// The [CLS]-aware detection head (`"rtd_head": "cls"`): a checkpoint saved by PyTorch with
/// `discriminator_predictions.LayerNorm` gives PyTorch's logits of LayerNorm(h_[CLS] + h_i) to
/// 1e-5, padded row included; without the LayerNorm (HF's head on the same weights) they differ.
#[test]
fn cls_aware_detection_head_matches_pytorch() {
    let case = "rtd_cls";
    let (i, f) = inputs(case);
    let model = hf::load(&fixture(case).join("discriminator")).unwrap();
    assert!(model.disc().unwrap().head.cls_ln.is_some(), "config.json's rtd_head is read");
    let mut logits = vec![0.0; i.b * i.t];
    let mut plain = model.clone();
    Session::new(Arc::new(model)).unwrap().discriminate(&batch(&i), &mut logits).unwrap();
    assert_close("rtd_cls logits", &logits, floats(&f, "logits"), RTOL, FLOOR);
    if let electra::model::Towers::Discriminator(d) = &mut plain.towers {
        d.head.cls_ln = None;
    }
    Session::new(Arc::new(plain)).unwrap().discriminate(&batch(&i), &mut logits).unwrap();
    assert!(!compare(&logits, floats(&f, "logits"), RTOL, FLOOR).ok, "the head's LayerNorm made no difference");
}

/// The comparison must be able to fail: a small perturbation of one weight is caught.
#[test]
fn perturbed_weight_is_caught() {
    let case = "emb_lt_hidden";
    let (i, f) = inputs(case);
    let mut model = hf::load(&fixture(case).join("discriminator")).unwrap();
    let id = model.params.id("discriminator.electra.encoder.layer.1.output.dense.weight").unwrap();
    model.params.get_mut(id)[3] += 1e-3;
    let mut s = Session::new(Arc::new(model)).unwrap();
    let mut logits = vec![0.0; i.b * i.t];
    s.discriminate(&batch(&i), &mut logits).unwrap();
    let d = compare(&logits, floats(&f, "disc_logits"), RTOL, FLOOR);
    assert!(!d.ok, "a perturbed weight went unnoticed: {d:?}");
}

/// Padding must not influence real tokens: the same row alone and padded gives the same logits.
#[test]
fn padding_is_ignored() {
    let case = "emb_eq_hidden";
    let (i, _) = inputs(case);
    let model = Arc::new(hf::load(&fixture(case).join("discriminator")).unwrap());
    let mut s = Session::new(model).unwrap();
    let row = 1;
    let len = i.mask[row * i.t..(row + 1) * i.t].iter().filter(|&&m| m == 1).count();
    let ids = &i.ids[row * i.t..row * i.t + len];
    let types = &i.types[row * i.t..row * i.t + len];
    let mut alone = vec![0.0; len];
    s.discriminate(
        &Batch { input_ids: ids, attention_mask: None, token_type_ids: Some(types), batch: 1, seq_len: len },
        &mut alone,
    )
    .unwrap();
    let mut all = vec![0.0; i.b * i.t];
    s.discriminate(&batch(&i), &mut all).unwrap();
    assert_close("padded vs alone", &all[row * i.t..row * i.t + len], &alone, RTOL, FLOOR);
}

/// Sessions read the Linear weights from the model's packed copy (f32 panels of our kernel, or
/// with `"f32_kernel": "gemm"` an `[in, out]` copy); training reads them in PyTorch's
/// `[out, in]` layout. Both must give the same hidden states, to rounding (the packed kernel sums
/// in its own order; the `[in, out]` copy gives the same bits).
#[test]
fn inout_weight_copy_matches_the_checkpoint_layout() {
    use electra::backend::{self, Device, Mem, Weights};
    use electra::model::encoder::EncoderActs;
    let be = backend::open(Device::Cpu, &backend::BackendOptions::threads(0)).unwrap();
    for case in ["emb_lt_hidden", "emb_eq_hidden"] {
        let (i, _) = inputs(case);
        let model = hf::load(&fixture(case)).unwrap();
        let enc = &model.disc().unwrap().encoder;
        let prepared = model.prepared(&*be).unwrap();
        assert_eq!(prepared.device(), Device::Cpu);
        let flat = Weights::flat(Mem::Host(&model.params.data));
        let packed = Weights { prepared: Some(&prepared), ..flat };
        let (mut a, mut b) = (EncoderActs::new(false), EncoderActs::new(false));
        enc.forward(&*be, &flat, &mut a, &batch(&i)).unwrap();
        enc.forward(&*be, &packed, &mut b, &batch(&i)).unwrap();
        let n = i.b * i.t * enc.hidden;
        let (ha, hb) = (&a.output(enc).host().unwrap()[..n], &b.output(enc).host().unwrap()[..n]);
        let worst = ha.iter().zip(hb).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        println!("{case}: [in, out] vs [out, in] max abs difference {worst:e}");
        assert!(worst <= 1e-6, "{case}: {worst}");
    }
}
