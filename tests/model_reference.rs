//! Forward parity with PyTorch `transformers` on the fixtures of scripts/make_fixtures.py:
//! discriminator logits, generator logits and last hidden states, max relative error 1e-5
//! (with an absolute floor of 1e-6 × the tensor's largest magnitude, for elements near zero).

mod common;
use common::*;
use electra::io::hf;
use electra::session::{Batch, Session};
use std::sync::Arc;

const RTOL: f32 = 1e-5;
const FLOOR: f32 = 1e-6;

fn batch(i: &Inputs) -> Batch<'_> {
    Batch { input_ids: &i.ids, attention_mask: Some(&i.mask), token_type_ids: Some(&i.types), batch: i.b, seq_len: i.t }
}

#[test]
fn discriminator_matches_pytorch() {
    for case in CASES {
        let (i, f) = inputs(case);
        let model = Arc::new(hf::load(&fixture(case).join("discriminator")).unwrap());
        let mut s = Session::new(model.clone());
        let mut logits = vec![0.0; i.b * i.t];
        s.discriminate(&batch(&i), &mut logits).unwrap();
        assert_close(&format!("{case} disc_logits"), &logits, floats(&f, "disc_logits"), RTOL, FLOOR);
        let h = model.disc.as_ref().unwrap().config.hidden_size;
        let mut hidden = vec![0.0; i.b * i.t * h];
        s.hidden_states(&batch(&i), &mut hidden).unwrap();
        assert_close(&format!("{case} disc_hidden"), &hidden, floats(&f, "disc_hidden"), RTOL, FLOOR);
    }
}

#[test]
fn generator_matches_pytorch() {
    for case in CASES {
        let (i, f) = inputs(case);
        let model = Arc::new(hf::load(&fixture(case).join("generator")).unwrap());
        let v = model.gen.as_ref().unwrap().config.vocab_size;
        let mut s = Session::new(model);
        let mut logits = vec![0.0; i.b * i.t * v];
        s.generator_logits(&batch(&i), &mut logits).unwrap();
        assert_close(&format!("{case} gen_logits"), &logits, floats(&f, "gen_logits"), RTOL, FLOOR);
    }
}

#[test]
fn pair_layout_shares_embeddings_and_matches() {
    for case in CASES {
        let (i, f) = inputs(case);
        let model = hf::load(&fixture(case)).unwrap();
        assert!(model.disc.is_some() && model.gen.is_some());
        assert!(model.shared_embeddings, "{case}: generator embeddings equal the discriminator's, so they are shared");
        let model = Arc::new(model);
        let v = model.gen.as_ref().unwrap().config.vocab_size;
        let mut s = Session::new(model);
        let mut d = vec![0.0; i.b * i.t];
        let mut g = vec![0.0; i.b * i.t * v];
        s.discriminate(&batch(&i), &mut d).unwrap();
        s.generator_logits(&batch(&i), &mut g).unwrap();
        assert_close(&format!("{case} pair disc"), &d, floats(&f, "disc_logits"), RTOL, FLOOR);
        assert_close(&format!("{case} pair gen"), &g, floats(&f, "gen_logits"), RTOL, FLOOR);
    }
}

#[test]
fn untied_file_with_position_ids_loads() {
    let case = "emb_lt_hidden";
    let (i, f) = inputs(case);
    let model = Arc::new(hf::load(&fixture(case).join("generator_untied_file")).unwrap());
    let v = model.gen.as_ref().unwrap().config.vocab_size;
    let mut s = Session::new(model);
    let mut g = vec![0.0; i.b * i.t * v];
    s.generator_logits(&batch(&i), &mut g).unwrap();
    assert_close("untied-file gen", &g, floats(&f, "gen_logits"), RTOL, FLOOR);
}

/// The comparison must be able to fail: a small perturbation of one weight is caught.
#[test]
fn perturbed_weight_is_caught() {
    let case = "emb_lt_hidden";
    let (i, f) = inputs(case);
    let mut model = hf::load(&fixture(case).join("discriminator")).unwrap();
    let id = model.params.id("discriminator.electra.encoder.layer.1.output.dense.weight").unwrap();
    model.params.get_mut(id)[3] += 1e-3;
    let mut s = Session::new(Arc::new(model));
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
    let mut s = Session::new(model);
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

/// Sessions read the Linear weights from the model's `[in, out]` copy; training reads them in
/// PyTorch's `[out, in]` layout. Both must give the same hidden states.
#[test]
fn inout_weight_copy_matches_the_checkpoint_layout() {
    use electra::model::encoder::EncoderActs;
    for case in ["emb_lt_hidden", "emb_eq_hidden"] {
        let (i, _) = inputs(case);
        let model = hf::load(&fixture(case)).unwrap();
        let enc = &model.disc.as_ref().unwrap().encoder;
        let w = &model.params.data;
        let (mut a, mut b) = (EncoderActs::new(false), EncoderActs::new(false));
        enc.forward(w, &mut a, &i.ids, Some(&i.types), Some(&i.mask), i.b, i.t);
        enc.forward_with(w, Some(model.inout_weights()), &mut b, &i.ids, Some(&i.types), Some(&i.mask), i.b, i.t);
        let (ha, hb) = (a.output(enc), b.output(enc));
        let worst = ha.iter().zip(hb).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        println!("{case}: [in, out] vs [out, in] max abs difference {worst:e}");
        assert!(worst <= 1e-6, "{case}: {worst}");
    }
}
