//! Nothing non-finite is ever committed or returned as OK: optimizer options that would wreck
//! the weights are refused up front, an update that would write NaN/Inf leaves the weights and
//! the Adam moments bit for bit as they were (Trainer and FineTuner), and inference outputs
//! with NaN/Inf are `Error::NonFinite`, with the output buffer untouched.

mod common;
use common::*;
use electra::finetune::{FineTuner, FinetuneOptions};
use electra::hf;
use electra::pretrain::{TrainOptions, Trainer};
use electra::session::{Batch, Session};
use electra::{ElectraConfig, Error, Model};
use std::sync::Arc;

const B: usize = 2;
const T: usize = 8;

fn config() -> ElectraConfig {
    ElectraConfig::from_json_str(
        r#"{"vocab_size": 40, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 16,
            "architectures": ["ElectraForPreTraining"]}"#,
    )
    .unwrap()
}

fn pair_model() -> Model {
    let d = config();
    let g = d.generator_config(0.5).unwrap();
    let mut m = Model::new(Some(d), Some(g), true).unwrap();
    m.init_weights(3).unwrap();
    m
}

fn train_opts() -> TrainOptions {
    TrainOptions {
        learning_rate: 1e-3,
        warmup_steps: 0,
        total_steps: 0,
        max_seq_len: T,
        mask_token_id: 4,
        special_token_ids: vec![0, 1, 2, 3, 4],
        mask_prob: 0.25,
        threads: 1,
        ..Default::default()
    }
}

fn ids() -> Vec<i32> {
    (0..B * T).map(|k| if k % T == 0 { 2 } else { 5 + (k * 7 % 30) as i32 }).collect()
}

fn batch(ids: &[i32]) -> Batch<'_> {
    Batch { input_ids: ids, attention_mask: None, token_type_ids: None, batch: B, seq_len: T }
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[track_caller]
fn expect_arg(r: Result<impl Sized, Error>, needles: &[&str]) {
    match r {
        Err(Error::InvalidArgument(msg)) => {
            for n in needles {
                assert!(msg.contains(n), "{msg:?} lacks {n:?}");
            }
        }
        Err(e) => panic!("expected InvalidArgument, got {e}"),
        Ok(_) => panic!("accepted; expected InvalidArgument mentioning {needles:?}"),
    }
}

/// A learning rate of 1e30 gives finite but absurd weights on step 1, so only validation can
/// catch it: refused by JSON and by Rust-built options, for both trainers. So are the other
/// optimizer values that break the update.
#[test]
fn absurd_optimizer_options_are_refused_at_creation() {
    expect_arg(TrainOptions::from_json(Some(r#"{"learning_rate": 1e30}"#)), &["learning_rate", "absurd"]);
    expect_arg(FinetuneOptions::from_json(Some(r#"{"learning_rate": 1e30}"#)), &["learning_rate", "(0, 1]"]);
    let bad = TrainOptions { learning_rate: 1e30, ..train_opts() };
    expect_arg(Trainer::from_model(pair_model(), bad.clone()), &["learning_rate"]);
    expect_arg(Trainer::new("tiny", bad), &["learning_rate"]);
    let mut c = config();
    electra::model::classifier::set_labels(&mut c, &["a".into(), "b".into()]);
    let mut cls = Model::new_classifier(c).unwrap();
    cls.init_weights(1).unwrap();
    let ft = FinetuneOptions { learning_rate: Some(1e30), threads: 1, ..Default::default() };
    expect_arg(FineTuner::from_model(cls, ft), &["learning_rate"]);
    for (json, key) in [
        (r#"{"learning_rate": 0}"#, "learning_rate"),
        (r#"{"learning_rate": -1e-3}"#, "learning_rate"),
        (r#"{"learning_rate": 1.5}"#, "learning_rate"),
        (r#"{"weight_decay": -0.1}"#, "weight_decay"),
        (r#"{"learning_rate": 0.5, "weight_decay": 2}"#, "weight_decay"),
        (r#"{"adam_epsilon": 0}"#, "adam_epsilon"),
        (r#"{"adam_epsilon": 1e39}"#, "adam_epsilon"),
        (r#"{"max_grad_norm": -1}"#, "max_grad_norm"),
        (r#"{"max_grad_norm": 1e39}"#, "max_grad_norm"),
    ] {
        expect_arg(TrainOptions::from_json(Some(json)), &[key]);
        expect_arg(FinetuneOptions::from_json(Some(json)), &[key]);
    }
    for (json, key) in [
        (r#"{"adam_beta1": 1}"#, "adam_beta1"),
        (r#"{"adam_beta2": -0.1}"#, "adam_beta2"),
        (r#"{"gen_weight": 1e39}"#, "gen_weight"),
        (r#"{"disc_weight": -1}"#, "disc_weight"),
    ] {
        expect_arg(TrainOptions::from_json(Some(json)), &[key]);
    }
    // The defaults and ordinary values still pass.
    TrainOptions::from_json(Some(r#"{"learning_rate": 1, "weight_decay": 0.5}"#)).unwrap();
    FinetuneOptions::from_json(Some(r#"{"learning_rate": 2e-5, "max_grad_norm": 0}"#)).unwrap();
}

/// Moments no sane run reaches (as from a corrupt checkpoint): the next update would write
/// infinite weights. It is refused and changes nothing; the trainer stays usable.
#[test]
fn trainer_refuses_an_overflowing_update_and_changes_nothing() {
    let mut t = Trainer::from_model(pair_model(), train_opts()).unwrap();
    let ids = ids();
    t.train_step(&batch(&ids)).unwrap();
    let n = t.params().numel();
    let (good_m, good_v) = {
        let mo = t.moments().unwrap();
        (mo.m.into_owned(), mo.v.into_owned())
    };
    t.set_moments(&vec![f32::MAX; n], &vec![0.0; n]).unwrap();
    let before = (bits(&t.weights().unwrap()), bits(&t.moments().unwrap().m), bits(&t.moments().unwrap().v), t.step);
    let e = t.train_step(&batch(&ids)).unwrap_err();
    assert!(matches!(&e, Error::NonFinite(m) if m.contains("refused")), "{e}");
    let after = (bits(&t.weights().unwrap()), bits(&t.moments().unwrap().m), bits(&t.moments().unwrap().v), t.step);
    assert!(before == after, "a refused update changed the weights, the moments or the step");
    t.set_moments(&good_m, &good_v).unwrap();
    let s = t.train_step(&batch(&ids)).unwrap();
    assert_eq!(s.step, 2);
    assert!(t.weights().unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn finetuner_refuses_an_overflowing_update_and_changes_nothing() {
    let mut c = config();
    electra::model::classifier::set_labels(&mut c, &["a".into(), "b".into()]);
    let mut cls = Model::new_classifier(c).unwrap();
    cls.init_weights(1).unwrap();
    let mut ft = FineTuner::from_model(cls, FinetuneOptions { threads: 1, ..Default::default() }).unwrap();
    let (ids, labels) = (ids(), vec![0, 1]);
    ft.train_step(&batch(&ids), &labels).unwrap();
    let n = ft.params().numel();
    ft.set_moments(&vec![f32::MAX; n], &vec![0.0; n]).unwrap();
    let snap = |ft: &FineTuner| {
        let mo = ft.moments().unwrap();
        (bits(&ft.weights().unwrap()), bits(&mo.m), bits(&mo.v), ft.step)
    };
    let before = snap(&ft);
    let e = ft.train_step(&batch(&ids), &labels).unwrap_err();
    assert!(matches!(&e, Error::NonFinite(m) if m.contains("refused")), "{e}");
    assert!(before == snap(&ft), "a refused update changed the weights, the moments or the step");
    ft.set_moments(&vec![0.0; n], &vec![0.0; n]).unwrap();
    assert_eq!(ft.train_step(&batch(&ids), &labels).unwrap().step, 2);
}

/// Every weight at f32::MAX overflows the forward pass: each inference call is NonFinite naming
/// the sequence, and leaves the output buffer as it was.
#[test]
fn inference_that_overflows_is_an_error_and_writes_nothing() {
    const SENTINEL: f32 = -7.5;
    let scale = |mut m: Model| {
        // Merely large weights (x 1e30) give zeros: LayerNorm's variance overflows to inf and
        // its 1/sqrt is 0. Saturated ones overflow the embedding sum itself.
        m.params.data.iter_mut().for_each(|v| *v = f32::MAX);
        Arc::new(m)
    };
    let ids = ids();
    let b = batch(&ids);
    let mut s = Session::with_threads(scale(pair_model()), 1).unwrap();
    let mut out = vec![SENTINEL; B * T * 40];
    type Call = fn(&mut Session, &Batch, &mut [f32]) -> electra::Result<()>;
    let calls: [(&str, Call); 3] = [
        ("discriminate", Session::discriminate),
        ("hidden_states", Session::hidden_states),
        ("generator_logits", Session::generator_logits),
    ];
    for (what, f) in calls {
        let e = f(&mut s, &b, &mut out).err().unwrap_or_else(|| panic!("{what} OK: {:?}", &out[..4]));
        assert!(matches!(&e, Error::NonFinite(m) if m.contains("sequence 0, position")), "{what}: {e}");
        assert!(out.iter().all(|&v| v == SENTINEL), "{what} wrote its output");
    }
    let cls = hf::load(&fixture("emb_lt_hidden").join("classifier")).unwrap();
    let mut s = Session::with_threads(scale(cls), 1).unwrap();
    let tiny: Vec<i32> = ids.iter().map(|&i| i % 60).collect();
    let e = s.classify(&batch(&tiny), &mut out).unwrap_err();
    assert!(matches!(&e, Error::NonFinite(m) if m.contains("sequence 0")), "classify: {e}");
    assert!(out.iter().all(|&v| v == SENTINEL), "classify wrote its output");
    // The same calls on the unscaled model are fine.
    let mut s = Session::with_threads(Arc::new(pair_model()), 1).unwrap();
    s.discriminate(&b, &mut out).unwrap();
    assert!(out[..B * T].iter().all(|v| v.is_finite()));
}
