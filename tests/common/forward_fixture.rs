//! Forward parity with PyTorch `transformers` on the fixtures of scripts/make_fixtures.py
//! (expected.safetensors): max relative error 1e-5 with an absolute floor of 1e-6 × the tensor's
//! largest magnitude. Each check takes the session to run, so tests/model_reference.rs (the CPU)
//! and tests/conformance.rs (every backend) share it.

use super::*;
use electra::hf;
use electra::session::{Batch, Session};
use electra::Model;
use std::sync::Arc;

/// Relative tolerance of forward values.
pub const RTOL: f32 = 1e-5;
/// Absolute floor, relative to the largest magnitude.
pub const FLOOR: f32 = 1e-6;

/// The fixture's inputs as a batch.
pub fn batch(i: &Inputs) -> Batch<'_> {
    Batch { input_ids: &i.ids, attention_mask: Some(&i.mask), token_type_ids: Some(&i.types), batch: i.b, seq_len: i.t }
}

/// Discriminator logits and last hidden states of every fixture case.
pub fn discriminator_matches(open: &dyn Fn(Arc<Model>) -> Session) {
    for case in CASES {
        let (i, f) = inputs(case);
        let model = Arc::new(hf::load(&fixture(case).join("discriminator")).unwrap());
        let mut s = open(model.clone());
        let mut logits = vec![0.0; i.b * i.t];
        s.discriminate(&batch(&i), &mut logits).unwrap();
        assert_close(&format!("{case} disc_logits"), &logits, floats(&f, "disc_logits"), RTOL, FLOOR);
        let h = model.disc().unwrap().config.hidden_size;
        let mut hidden = vec![0.0; i.b * i.t * h];
        s.hidden_states(&batch(&i), &mut hidden).unwrap();
        assert_close(&format!("{case} disc_hidden"), &hidden, floats(&f, "disc_hidden"), RTOL, FLOOR);
    }
}

/// Generator logits of every fixture case.
pub fn generator_matches(open: &dyn Fn(Arc<Model>) -> Session) {
    for case in CASES {
        let (i, f) = inputs(case);
        let model = Arc::new(hf::load(&fixture(case).join("generator")).unwrap());
        let v = model.gen().unwrap().config.vocab_size;
        let mut s = open(model);
        let mut logits = vec![0.0; i.b * i.t * v];
        s.generator_logits(&batch(&i), &mut logits).unwrap();
        assert_close(&format!("{case} gen_logits"), &logits, floats(&f, "gen_logits"), RTOL, FLOOR);
    }
}

/// The pair layout: embeddings shared, both towers' logits.
pub fn pair_matches(open: &dyn Fn(Arc<Model>) -> Session) {
    for case in CASES {
        let (i, f) = inputs(case);
        let model = hf::load(&fixture(case)).unwrap();
        assert!(model.disc().is_some() && model.gen().is_some());
        assert!(
            model.shared_embeddings(),
            "{case}: generator embeddings equal the discriminator's, so they are shared"
        );
        let model = Arc::new(model);
        let v = model.gen().unwrap().config.vocab_size;
        let mut s = open(model);
        let mut d = vec![0.0; i.b * i.t];
        let mut g = vec![0.0; i.b * i.t * v];
        s.discriminate(&batch(&i), &mut d).unwrap();
        s.generator_logits(&batch(&i), &mut g).unwrap();
        assert_close(&format!("{case} pair disc"), &d, floats(&f, "disc_logits"), RTOL, FLOOR);
        assert_close(&format!("{case} pair gen"), &g, floats(&f, "gen_logits"), RTOL, FLOOR);
    }
}
