//! Trainer behaviour: determinism, bit-exact resume, crash-safe saves, refusal of bad input and
//! non-finite updates, cancellation, learning progress, export.

mod common;

use electra::hf;
use electra::pretrain::{Objective, TrainOptions, Trainer};
use electra::session::{Batch, Session};
use electra::{Error, Model};
use std::sync::atomic::Ordering;
use std::sync::Arc;

const B: usize = 4;
const T: usize = 16;
const V: usize = 60;

fn tiny_model(seed: u64) -> Model {
    common::pair(common::TINY_DISC, true, seed)
}

fn opts() -> TrainOptions {
    TrainOptions { threads: 2, ..common::dist::opts() }
}

fn trainer() -> Trainer {
    Trainer::from_model(tiny_model(5), opts()).unwrap()
}

/// A deterministic batch `k`: [CLS]=2 … [SEP]=3, padding 0 at the end of some rows.
fn batch_data(k: usize) -> (Vec<i32>, Vec<i32>, Vec<i32>) {
    let mut ids = vec![0; B * T];
    let mut mask = vec![0; B * T];
    let mut types = vec![0; B * T];
    for r in 0..B {
        let len = T - (r * 3 + k) % 7;
        for i in 0..len {
            ids[r * T + i] = if i == 0 {
                2
            } else if i == len - 1 {
                3
            } else {
                5 + ((r + i + k) % 6) as i32
            };
            mask[r * T + i] = 1;
            types[r * T + i] = (i >= len / 2) as i32;
        }
    }
    (ids, mask, types)
}

fn step(t: &mut Trainer, k: usize) -> electra::pretrain::StepStats {
    let (ids, mask, types) = batch_data(k);
    t.train_step(&Batch {
        input_ids: &ids,
        attention_mask: Some(&mask),
        token_type_ids: Some(&types),
        batch: B,
        seq_len: T,
    })
    .unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn same_seed_same_bits() {
    let (mut a, mut b) = (trainer(), trainer());
    for k in 0..3 {
        let (sa, sb) = (step(&mut a, k), step(&mut b, k));
        assert_eq!(sa, sb);
    }
    assert_eq!(bits(&a.weights().unwrap()), bits(&b.weights().unwrap()));
    let mut c = Trainer::from_model(tiny_model(5), TrainOptions { seed: 12, ..opts() }).unwrap();
    for k in 0..3 {
        step(&mut c, k);
    }
    assert_ne!(bits(&a.weights().unwrap()), bits(&c.weights().unwrap()), "another seed gives another run");
}

#[test]
fn resume_is_bit_identical() {
    let dir = tempdir("resume");
    let mut straight = trainer();
    let mut first: Vec<_> = (0..6).map(|k| step(&mut straight, k)).collect();
    let mut half = trainer();
    for k in 0..3 {
        step(&mut half, k);
    }
    half.data_cursor = Some(serde_json::json!({"file": 1, "offset": 1234}));
    half.save(&dir).unwrap();
    drop(half);
    let mut resumed = Trainer::resume(&dir).unwrap();
    assert_eq!(resumed.step, 3);
    assert_eq!(resumed.data_cursor, Some(serde_json::json!({"file": 1, "offset": 1234})));
    let second: Vec<_> = (3..6).map(|k| step(&mut resumed, k)).collect();
    assert_eq!(first.split_off(3), second);
    assert_eq!(bits(&straight.weights().unwrap()), bits(&resumed.weights().unwrap()));
    assert_eq!(bits(&straight.moments().unwrap().v), bits(&resumed.moments().unwrap().v));
}

#[test]
fn failed_save_keeps_the_previous_checkpoint() {
    let dir = tempdir("atomic");
    let mut t = trainer();
    step(&mut t, 0);
    t.save(&dir).unwrap();
    let saved = bits(&t.weights().unwrap());
    step(&mut t, 1);
    electra::io::atomic::simulate_write_failure(Some("trainer.safetensors"));
    let err = t.save(&dir).unwrap_err();
    electra::io::atomic::simulate_write_failure(None);
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let back = Trainer::resume(&dir).unwrap();
    assert_eq!(back.step, 1);
    assert_eq!(bits(&back.weights().unwrap()), saved);
    let mut leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    leftovers.sort();
    assert_eq!(leftovers, [".electra-manifest.json", "trainer.safetensors"], "no temporary file is left behind");
}

#[test]
fn corrupt_checkpoint_is_a_clear_error() {
    let dir = tempdir("corrupt");
    let t = trainer();
    t.save(&dir).unwrap();
    let f = dir.join("trainer.safetensors");
    let len = std::fs::metadata(&f).unwrap().len();
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..(len / 2) as usize]).unwrap();
    let err = Trainer::resume(&dir).err().expect("truncated checkpoint must fail").to_string();
    assert!(err.contains("trainer.safetensors"), "{err}");
    assert!(Trainer::resume(&dir.join("missing")).is_err());
}

#[test]
fn bad_input_leaves_the_trainer_untouched() {
    let mut t = trainer();
    step(&mut t, 0);
    let before = (bits(&t.weights().unwrap()), t.step, t.rngs.clone());
    let (mut ids, mask, types) = batch_data(1);
    ids[5] = V as i32;
    let r = t.train_step(&Batch {
        input_ids: &ids,
        attention_mask: Some(&mask),
        token_type_ids: Some(&types),
        batch: B,
        seq_len: T,
    });
    assert!(matches!(r, Err(Error::InvalidArgument(_))));
    let long = vec![5; 2 * T];
    assert!(t.train_step(&Batch::new(&long, 1, 2 * T)).is_err(), "seq_len above max_seq_len");
    assert!(t.train_step(&Batch::new(&[], 0, T)).is_err(), "empty batch");
    assert!(t.train_step(&Batch::new(&ids[..T], 2, T)).is_err(), "short input");
    assert_eq!(before, (bits(&t.weights().unwrap()), t.step, t.rngs.clone()));
    step(&mut t, 1);
}

#[test]
fn non_finite_update_is_refused() {
    let mut t = trainer();
    step(&mut t, 0);
    let id = t.params().id("discriminator.discriminator_predictions.dense.weight").unwrap();
    let mut w = t.weights().unwrap().into_owned();
    w[t.params().span(id).off] = f32::NAN;
    t.set_weights(&w).unwrap();
    let before = (bits(&t.weights().unwrap()), bits(&t.moments().unwrap().m), t.step, t.rngs.clone());
    let (ids, mask, types) = batch_data(1);
    let r = t.train_step(&Batch {
        input_ids: &ids,
        attention_mask: Some(&mask),
        token_type_ids: Some(&types),
        batch: B,
        seq_len: T,
    });
    assert!(matches!(r, Err(Error::NonFinite(_))), "{r:?}");
    assert_eq!(before, (bits(&t.weights().unwrap()), bits(&t.moments().unwrap().m), t.step, t.rngs.clone()));
}

#[test]
fn cancel_stops_one_step_and_training_continues() {
    let mut t = trainer();
    let flag = t.cancel_flag();
    flag.store(true, Ordering::SeqCst);
    let (ids, mask, types) = batch_data(0);
    let b = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: B, seq_len: T };
    assert!(matches!(t.train_step(&b), Err(Error::Cancelled)));
    assert_eq!(t.step, 0);
    assert!(t.train_step(&b).is_ok());
}

#[test]
fn training_learns_and_export_loads() {
    let mut t = Trainer::from_model(
        tiny_model(5),
        TrainOptions { learning_rate: 1e-2, warmup_steps: 10, total_steps: 10_000, ..opts() },
    )
    .unwrap();
    let first: Vec<_> = (0..5).map(|k| step(&mut t, k % 2)).collect();
    for k in 5..400 {
        step(&mut t, k % 2);
    }
    let last: Vec<_> = (400..405).map(|k| step(&mut t, k % 2)).collect();
    let mean = |s: &[electra::pretrain::StepStats], f: fn(&electra::pretrain::StepStats) -> f32| {
        s.iter().map(f).sum::<f32>() / s.len() as f32
    };
    assert!(
        mean(&last, |s| s.mlm_loss) < 0.7 * mean(&first, |s| s.mlm_loss),
        "generator learns: {first:?} -> {last:?}"
    );
    assert!(mean(&last, |s| s.disc_loss) < 0.9 * mean(&first, |s| s.disc_loss), "discriminator learns");
    let dir = tempdir("export");
    t.export(&dir).unwrap();
    let loaded = Arc::new(hf::load(&dir).unwrap());
    assert!(loaded.shared_embeddings());
    let (ids, mask, types) = batch_data(0);
    let b = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: B, seq_len: T };
    let mut want = vec![0.0; B * T];
    Session::new(Arc::new(t.model().unwrap())).unwrap().discriminate(&b, &mut want).unwrap();
    let mut got = vec![0.0; B * T];
    Session::new(loaded).unwrap().discriminate(&b, &mut got).unwrap();
    assert_eq!(bits(&got), bits(&want));
}

#[test]
fn mlm_objective_trains_a_masked_lm_alone() {
    let d = tiny_model(1).disc().unwrap().config.clone();
    let mut g = d.clone();
    g.architectures = vec!["ElectraForMaskedLM".into()];
    let mut m = Model::new(None, Some(g), false).unwrap();
    m.init_weights(3).unwrap();
    let mut t =
        Trainer::from_model(m, TrainOptions { objective: Objective::Mlm, learning_rate: 5e-3, ..opts() }).unwrap();
    let s0 = step(&mut t, 0);
    assert_eq!(s0.disc_loss, 0.0);
    for k in 1..40 {
        step(&mut t, k % 2);
    }
    assert!(step(&mut t, 0).mlm_loss < s0.mlm_loss);
    assert!(Trainer::from_model(tiny_model(1), TrainOptions { objective: Objective::Mlm, ..opts() }).is_ok());
}

#[test]
fn presets_build() {
    let t = Trainer::new("tiny", TrainOptions { vocab_size: Some(1000), ..Default::default() }).unwrap();
    assert_eq!(t.towers().gen().unwrap().config.hidden_size, 32);
    assert!(Trainer::new("huge", TrainOptions::default()).is_err());
    assert!(Trainer::new("tiny", TrainOptions { mask_token_id: 5000, vocab_size: Some(1000), ..Default::default() })
        .is_err());
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("electra-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A pair whose generator does not fit the discriminator (vocabulary, positions, token types)
/// is refused when the trainer is made, from memory, from a directory and through the C ABI,
/// with a message naming the key; not an internal error on every step.
#[test]
fn mismatched_pair_is_refused_at_creation() {
    let d = electra::ElectraConfig::from_json_str(common::TINY_DISC).unwrap();
    type Edit = fn(&mut electra::ElectraConfig);
    let edits: [(&str, Edit); 4] = [
        ("vocab_size", |g| g.vocab_size = 80),
        ("vocab_size", |g| g.vocab_size = 40),
        ("max_position_embeddings", |g| g.max_position_embeddings = 8),
        ("type_vocab_size", |g| g.type_vocab_size = 3),
    ];
    for (i, (key, edit)) in edits.into_iter().enumerate() {
        let mut g = d.generator_config(0.5).unwrap();
        edit(&mut g);
        let mut m = Model::new(Some(d.clone()), Some(g), false).unwrap();
        m.init_weights(1).unwrap();
        let dir = std::env::temp_dir().join(format!("electra-pair-mismatch-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        hf::save(&m, &dir).unwrap();
        let e = Trainer::from_model(m, opts()).err().expect("mismatched pair accepted");
        assert!(matches!(e, Error::Config(_)) && e.to_string().contains(key), "{key}: {e}");
        let e = Trainer::new(dir.to_str().unwrap(), opts()).err().expect("mismatched pair directory accepted");
        assert!(e.to_string().contains(key) && e.to_string().contains("generator"), "{key}: {e}");
        let p = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        let mut t = std::ptr::null_mut();
        // SAFETY: a valid string and out pointer; NULL options.
        let st = unsafe { electra::ffi::trainer::electra_trainer_new(p.as_ptr(), std::ptr::null(), &mut t) };
        assert_eq!((st, t.is_null()), (electra::ffi::status::ELECTRA_ERR_INVALID_ARGUMENT, true), "{key}");
        let _ = std::fs::remove_dir_all(&dir);
    }
    // An unshared pair that fits still trains.
    let mut t = Trainer::from_model(common::pair(common::TINY_DISC, false, 2), opts()).unwrap();
    step(&mut t, 0);
}

/// `embedding_sharing`: "none" builds a pair whose generator has tables of its own (each learns
/// from its own loss), exported and loaded back as such; a value that contradicts a loaded
/// pair is refused, and leaving it unset takes the pair as it is.
#[test]
fn embedding_sharing_none_keeps_separate_tables() {
    use electra::pretrain::EmbeddingSharing;
    let cfg = std::env::temp_dir().join(format!("electra-sharing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cfg);
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.json"), common::TINY_DISC).unwrap();
    let sharing = |s| TrainOptions { embedding_sharing: s, ..opts() };
    let word = |m: &electra::Model, tower: &str| {
        let id = m.params.id(&format!("{tower}.electra.embeddings.word_embeddings.weight"));
        id.map(|id| m.params.get(id).to_vec())
    };
    let mut t = Trainer::new(cfg.join("config.json").to_str().unwrap(), sharing(Some(EmbeddingSharing::None))).unwrap();
    let before = t.model().unwrap();
    assert!(!before.towers.shared_embeddings());
    let (d0, g0) =
        (word(&before, "discriminator").unwrap(), word(&before, "generator").expect("the generator's own table"));
    for k in 0..3 {
        step(&mut t, k);
    }
    let after = t.model().unwrap();
    let (d1, g1) = (word(&after, "discriminator").unwrap(), word(&after, "generator").unwrap());
    assert!(d1 != d0 && g1 != g0 && d1 != g1, "both tables train, apart");
    let dir = cfg.join("pair");
    hf::save(&after, &dir).unwrap();
    assert!(!hf::load(&dir).unwrap().towers.shared_embeddings(), "exported unshared");
    let p = dir.to_str().unwrap();
    let e = Trainer::new(p, sharing(Some(EmbeddingSharing::Full))).err().expect("full over an unshared pair");
    assert!(e.to_string().contains("embedding_sharing"), "{e}");
    assert!(Trainer::new(p, sharing(None)).is_ok());
    assert!(Trainer::new(p, sharing(Some(EmbeddingSharing::None))).is_ok());
    // The default is the paper's sharing: one table.
    let t = Trainer::new(cfg.join("config.json").to_str().unwrap(), sharing(None)).unwrap();
    let m = t.model().unwrap();
    assert!(m.towers.shared_embeddings());
    let _ = std::fs::remove_dir_all(&cfg);
}

/// A schedule changed after creation (what `--match-flops` and a resume to more steps do through
/// the public `opts`) drives the next updates: the added steps do not run at learning rate 0.
#[test]
fn schedule_extended_after_creation_reaches_the_optimizer() {
    let mut t = Trainer::from_model(tiny_model(5), TrainOptions { warmup_steps: 0, total_steps: 4, ..opts() }).unwrap();
    let lr0 = opts().learning_rate;
    for k in 0..2 {
        step(&mut t, k);
    }
    t.opts.total_steps = 8;
    // Step index 2 of 8: lr0 · (1 − 2/8).
    let s = step(&mut t, 2);
    assert!((s.learning_rate - lr0 * 0.75).abs() < 1e-9, "lr {} after extending to 8 steps", s.learning_rate);
    for k in 3..6 {
        let s = step(&mut t, k);
        assert!(s.learning_rate > 0.0, "step {k} of 8 at learning rate 0");
    }
    // A setting the optimizer refuses fails the step, before any update.
    t.opts.learning_rate = f32::NAN;
    let (ids, mask, types) = batch_data(6);
    let b = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: B, seq_len: T };
    let before = t.weights().unwrap().into_owned();
    assert!(t.train_step(&b).is_err());
    assert_eq!(bits(&t.weights().unwrap()), bits(&before));
}

/// The hybrid objective (`disc_mlm_weight`): the discriminator's masked-LM head learns, its
/// tensors are checkpointed (resume is bit-identical) but not exported (the discriminator stays
/// plain HF `ElectraForPreTraining`), weight 0 leaves the paper's run untouched, and the mlm
/// objective refuses it.
#[test]
fn hybrid_discriminator_mlm_trains_resumes_and_exports_plain() {
    let hybrid = || TrainOptions { disc_mlm_weight: 1.0, learning_rate: 1e-2, warmup_steps: 10, ..opts() };
    let mut t = Trainer::from_model(tiny_model(5), hybrid()).unwrap();
    let head: Vec<_> =
        t.params().infos().iter().filter(|i| i.name.starts_with("discriminator_mlm.")).cloned().collect();
    assert_eq!(head.len(), 5, "dense, LayerNorm and bias: {head:?}");
    let first = step(&mut t, 0);
    assert!(first.disc_mlm_loss > 0.5 * (V as f32).ln(), "starts near ln V: {first:?}");
    let want = first.mlm_loss + 50.0 * first.disc_loss + first.disc_mlm_loss;
    assert!((first.loss - want).abs() <= 1e-4 * want, "{first:?}");
    for k in 1..150 {
        step(&mut t, k % 2);
    }
    let later = step(&mut t, 0);
    assert!(later.disc_mlm_loss < 0.7 * first.disc_mlm_loss, "the head learns: {first:?} -> {later:?}");
    assert!(later.disc_mlm_accuracy > first.disc_mlm_accuracy);

    // Resume: the head's weights and moments come back.
    let dir = tempdir("hybrid");
    resumes_bit_for_bit(&dir.join("ckpt"), || Trainer::from_model(tiny_model(5), hybrid()).unwrap());

    // Export: no head tensor in the files; HF's layout loads as before.
    t.export(&dir.join("pair")).unwrap();
    let disc_file = std::fs::read(dir.join("pair/discriminator/model.safetensors")).unwrap();
    let names = safetensors::SafeTensors::deserialize(&disc_file).unwrap().names().len();
    let plain = Trainer::from_model(tiny_model(5), opts()).unwrap();
    plain.export(&dir.join("plain")).unwrap();
    let plain_file = std::fs::read(dir.join("plain/discriminator/model.safetensors")).unwrap();
    assert_eq!(names, safetensors::SafeTensors::deserialize(&plain_file).unwrap().names().len());
    assert!(hf::load(&dir.join("pair")).is_ok());
    // A trainer over that pair starts a fresh head.
    assert!(Trainer::new(dir.join("pair").to_str().unwrap(), hybrid()).is_ok());

    // Weight 0 is the paper's objective, bit for bit; the mlm objective has no discriminator.
    steps_as_the_paper(TrainOptions { disc_mlm_weight: 0.0, ..opts() });
    let e = TrainOptions::from_json(Some(r#"{"objective": "mlm", "disc_mlm_weight": 1}"#)).unwrap_err();
    assert!(e.to_string().contains("disc_mlm_weight"), "{e}");
    let e = TrainOptions::from_json(Some(r#"{"disc_mlm_weight": -1}"#)).unwrap_err();
    assert!(e.to_string().contains("disc_mlm_weight"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sequence-level [CLS] loss (`cls_contrast_weight`): alone it learns to pair the two
/// towers' [CLS] states of each sequence (loss from about ln B to near 0, every partner found),
/// it adds to the step's loss with its weight, its projections are checkpointed (resume is
/// bit-identical) but not exported, weight 0 is the paper's run bit for bit, and the options
/// refuse what it cannot do.
#[test]
fn cls_contrast_trains_resumes_and_exports_plain() {
    let contrast = || TrainOptions { cls_contrast_weight: 1.0, learning_rate: 2e-3, warmup_steps: 10, ..opts() };
    // Rows of different words (batch_data's rows are shifts of one cycle of six).
    let (mut ids, mask, types) = batch_data(0);
    for (i, id) in ids.iter_mut().enumerate().filter(|(_, id)| **id >= 5) {
        *id = 5 + ((i / T) * 13 + (i % T) * 3) as i32 % (V as i32 - 5);
    }
    let b = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: B, seq_len: T };

    let mut t = Trainer::from_model(tiny_model(5), contrast()).unwrap();
    let proj: Vec<_> = t.params().infos().iter().filter(|i| i.name.starts_with("cls_contrast.")).cloned().collect();
    assert_eq!(proj.len(), 4, "two projections, weight and bias each: {proj:?}");
    let first = t.train_step(&b).unwrap();
    assert_eq!(first.sequences, B);
    let want = first.mlm_loss + 50.0 * first.disc_loss + first.cls_contrast_loss;
    assert!((first.loss - want).abs() <= 1e-4 * want, "{first:?}");

    // Alone, without dropout (the towers' masks would make the two views differ by more than the
    // sequences at this size).
    let alone = TrainOptions {
        gen_weight: 0.0,
        disc_weight: 0.0,
        dropout: electra::options::DropoutSetting::Config(false),
        ..contrast()
    };
    let mut t = Trainer::from_model(tiny_model(5), alone).unwrap();
    let first = t.train_step(&b).unwrap();
    assert!(first.cls_contrast_loss > 0.5 * (B as f32).ln(), "starts near ln B: {first:?}");
    let later = (0..50).map(|_| t.train_step(&b).unwrap()).last().unwrap();
    assert!(later.cls_contrast_loss < 0.1, "it learns: {first:?} -> {later:?}");
    assert_eq!(later.cls_contrast_accuracy, 1.0, "{later:?}");

    let dir = tempdir("contrast");
    resumes_bit_for_bit(&dir.join("ckpt"), || Trainer::from_model(tiny_model(5), contrast()).unwrap());
    t.export(&dir.join("pair")).unwrap();
    for tower in ["discriminator", "generator"] {
        let file = std::fs::read(dir.join(format!("pair/{tower}/model.safetensors"))).unwrap();
        let st = safetensors::SafeTensors::deserialize(&file).unwrap();
        assert!(st.names().iter().all(|n| !n.contains("cls_contrast")), "{tower}: {:?}", st.names());
    }
    assert!(hf::load(&dir.join("pair")).is_ok());
    assert!(Trainer::new(dir.join("pair").to_str().unwrap(), contrast()).is_ok());

    steps_as_the_paper(TrainOptions { cls_contrast_weight: 0.0, ..opts() });
    for bad in [
        r#"{"objective": "mlm", "cls_contrast_weight": 1}"#,
        r#"{"cls_contrast_weight": -1}"#,
        r#"{"cls_contrast_temperature": 0}"#,
    ] {
        let e = TrainOptions::from_json(Some(bad)).unwrap_err();
        assert!(e.to_string().contains("cls_contrast"), "{bad}: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A step with `o` gives the stats and weights of the paper's objective (`opts()`), bit for bit.
fn steps_as_the_paper(o: TrainOptions) {
    let mut zero = Trainer::from_model(tiny_model(5), o).unwrap();
    let mut paper = Trainer::from_model(tiny_model(5), opts()).unwrap();
    assert_eq!(step(&mut zero, 0), step(&mut paper, 0));
    assert_eq!(bits(&zero.weights().unwrap()), bits(&paper.weights().unwrap()));
}

/// Four steps straight equal two, a checkpoint at `ckpt`, a resume and two more: the same stats
/// and the same weights, bit for bit.
fn resumes_bit_for_bit(ckpt: &std::path::Path, make: impl Fn() -> Trainer) {
    let (mut straight, mut half) = (make(), make());
    let mut ran: Vec<_> = (0..4).map(|k| step(&mut straight, k)).collect();
    for k in 0..2 {
        step(&mut half, k);
    }
    half.save(ckpt).unwrap();
    let mut resumed = Trainer::resume(ckpt).unwrap();
    let rest: Vec<_> = (2..4).map(|k| step(&mut resumed, k)).collect();
    assert_eq!(ran.split_off(2), rest);
    assert_eq!(bits(&straight.weights().unwrap()), bits(&resumed.weights().unwrap()));
}

/// `rtd_head: "cls"`: the detection head reads LayerNorm(h_[CLS] + h_i). It trains and resumes
/// bit for bit; the export carries the head (config key and LayerNorm) and loads back to the
/// same detection logits; [CLS] states then move with every token's detection loss, where the
/// plain head leaves the [CLS] row's gradient at its own (never replaced) detection term; a
/// model's head and the option must agree.
#[test]
fn cls_aware_head_trains_exports_and_loads() {
    let cls = electra::RtdHead::Cls;
    let with_head = || TrainOptions { rtd_head: Some(cls), learning_rate: 1e-2, warmup_steps: 10, ..opts() };
    let dir = tempdir("cls-head");
    let mut t = Trainer::new(dir_config(&dir).to_str().unwrap(), with_head()).unwrap();
    let names: Vec<_> = t.params().infos().iter().map(|i| i.name.clone()).collect();
    let ln = "discriminator.discriminator_predictions.LayerNorm.weight";
    assert!(names.iter().any(|n| n == ln), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("generator.discriminator_predictions")));
    let first = step(&mut t, 0);
    for k in 1..120 {
        step(&mut t, k % 2);
    }
    let later = step(&mut t, 0);
    assert!(later.disc_loss < first.disc_loss, "detection learns: {first:?} -> {later:?}");

    // Resume: bit for bit.
    resumes_bit_for_bit(&dir.join("ckpt"), || Trainer::new(dir_config(&dir).to_str().unwrap(), with_head()).unwrap());

    // Export: config key and tensors; loading gives the trainer's own detection logits.
    t.export(&dir.join("pair")).unwrap();
    let cfg = std::fs::read_to_string(dir.join("pair/discriminator/config.json")).unwrap();
    assert!(cfg.contains(r#""rtd_head": "cls""#), "{cfg}");
    let gen_cfg = std::fs::read_to_string(dir.join("pair/generator/config.json")).unwrap();
    assert!(!gen_cfg.contains("rtd_head"), "{gen_cfg}");
    let file = std::fs::read(dir.join("pair/discriminator/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&file).unwrap();
    assert!(st.names().contains(&"discriminator_predictions.LayerNorm.bias"));
    let (ids, mask, types) = batch_data(1);
    let b = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: B, seq_len: T };
    let logits = |m: Model| Session::new(Arc::new(m)).unwrap().discriminate_array(&b).unwrap();
    let mine = logits(t.model().unwrap());
    let loaded = logits(hf::load(&dir.join("pair")).unwrap());
    assert_eq!(mine, loaded);
    // The head is part of the prediction: dropping it changes the logits.
    let mut plain = t.model().unwrap();
    if let electra::model::Towers::Pair { disc, .. } = &mut plain.towers {
        disc.head.cls_ln = None;
    }
    assert_ne!(logits(plain), mine);
    // Continuing the pair keeps its head; asking for the other one is an error that names it.
    assert!(Trainer::new(dir.join("pair").to_str().unwrap(), opts()).is_ok());
    let e = Trainer::new(
        dir.join("pair").to_str().unwrap(),
        TrainOptions { rtd_head: Some(electra::RtdHead::Plain), ..opts() },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("rtd_head"), "{e}");
    // A lone discriminator with the head, continued, keeps its LayerNorm.
    let t2 = Trainer::new(dir.join("pair/discriminator").to_str().unwrap(), with_head()).unwrap();
    let w = t2.weights().unwrap();
    let i = t2.params().infos().iter().find(|i| i.name == ln).unwrap().clone();
    let loaded_g: Vec<f32> = {
        let v = st.tensor("discriminator_predictions.LayerNorm.weight").unwrap();
        v.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    };
    assert_eq!(w[i.offset..i.offset + i.len], loaded_g[..], "a discriminator with the head keeps it");
    let e = TrainOptions::from_json(Some(r#"{"rtd_head": "deberta"}"#)).unwrap_err();
    assert!(e.to_string().contains("rtd_head"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tie_generator_output: false`: the masked-LM head gets a `[V, E]` output matrix of its own.
/// The softmax then leaves the shared word table alone: with the masked LM alone, rows of ids
/// that are neither inputs nor predictions get exactly no gradient, where the tied head pushes
/// every row. It resumes bit for bit, exports in HF's layout (`tie_word_embeddings: false`) and
/// is kept when the pair is continued; asking for the other kind of head is an error.
#[test]
fn untied_generator_output_trains_exports_and_resumes() {
    use electra::pretrain::masking::Masking;
    let untied = || TrainOptions { tie_generator_output: Some(false), ..opts() };
    let dir = tempdir("untied-gen");
    let t = Trainer::new(dir_config(&dir).to_str().unwrap(), untied()).unwrap();
    let names: Vec<_> = t.params().infos().iter().map(|i| i.name.clone()).collect();
    assert!(names.iter().any(|n| n == "generator.generator_lm_head.weight"), "{names:?}");
    let tied = Trainer::new(dir_config(&dir).to_str().unwrap(), opts()).unwrap();
    assert!(!tied.params().infos().iter().any(|i| i.name == "generator.generator_lm_head.weight"));

    // The word table's gradient from the masked LM alone, at rows no input or prediction uses.
    let (ids, mask, types) = batch_data(0);
    let batch =
        Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: B, seq_len: T };
    let positions = vec![1, 3, T + 2];
    let mut generator_input = ids.clone();
    for &p in &positions {
        generator_input[p] = 4;
    }
    let masking = Masking { positions, generator_input };
    let unused: Vec<usize> = (5..60).filter(|v| !ids.contains(&(*v as i32))).collect();
    assert!(!unused.is_empty());
    let far_rows = |tie: bool| -> f32 {
        let o = TrainOptions { tie_generator_output: Some(tie), gen_weight: 1.0, disc_weight: 0.0, ..opts() };
        let mut t = Trainer::new(dir_config(&dir).to_str().unwrap(), o).unwrap();
        t.forward_backward(&batch, &masking, Some(&[7, 8, 9])).unwrap();
        let g = t.grads().unwrap().into_owned();
        let word =
            t.params().infos().iter().find(|i| i.name.ends_with("embeddings.word_embeddings.weight")).unwrap().clone();
        let e = word.shape[1];
        unused.iter().flat_map(|&v| g[word.offset + v * e..word.offset + (v + 1) * e].to_vec()).map(f32::abs).sum()
    };
    assert_eq!(far_rows(false), 0.0, "untied: no softmax gradient in the word table");
    assert!(far_rows(true) > 0.0, "tied: the softmax reaches every row");

    // Resume: bit for bit.
    resumes_bit_for_bit(&dir.join("ckpt"), || Trainer::new(dir_config(&dir).to_str().unwrap(), untied()).unwrap());

    // Export: HF's layout; continuing keeps the head; the other kind is refused by name.
    let mut t = t;
    step(&mut t, 0);
    t.export(&dir.join("pair")).unwrap();
    let gen_cfg = std::fs::read_to_string(dir.join("pair/generator/config.json")).unwrap();
    assert!(gen_cfg.contains(r#""tie_word_embeddings": false"#), "{gen_cfg}");
    let file = std::fs::read(dir.join("pair/generator/model.safetensors")).unwrap();
    assert!(safetensors::SafeTensors::deserialize(&file).unwrap().names().contains(&"generator_lm_head.weight"));
    assert!(hf::load(&dir.join("pair")).is_ok());
    let again = Trainer::new(dir.join("pair").to_str().unwrap(), opts()).unwrap();
    assert!(again.params().infos().iter().any(|i| i.name == "generator.generator_lm_head.weight"));
    let e =
        Trainer::new(dir.join("pair").to_str().unwrap(), TrainOptions { tie_generator_output: Some(true), ..opts() })
            .err()
            .unwrap();
    assert!(e.to_string().contains("tie_generator_output"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `embedding_sharing: "disentangled"`: the discriminator's tables are always the generator's
/// plus a delta (bit for bit); detection moves only the delta and the masked LM only the
/// generator's tables; a new pair starts with a zero delta; resume is bit for bit; the export
/// holds the folded tables and no delta, and loads in HF's layout.
#[test]
fn disentangled_sharing_keeps_the_tables_apart() {
    use electra::pretrain::EmbeddingSharing;
    let dir = tempdir("gdes");
    let cfg = dir_config(&dir);
    let gdes = |gen_weight: f32, disc_weight: f32| TrainOptions {
        embedding_sharing: Some(EmbeddingSharing::Disentangled),
        learning_rate: 1e-2,
        warmup_steps: 5,
        weight_decay: 0.0,
        gen_weight,
        disc_weight,
        ..opts()
    };
    let tables = ["word_embeddings", "position_embeddings", "token_type_embeddings"];
    let span = |t: &Trainer, name: &str| {
        let i = t.params().infos().iter().find(|i| i.name == name).unwrap_or_else(|| panic!("{name}"));
        i.offset..i.offset + i.len
    };
    // (discriminator's, generator's, delta) of each table.
    let parts = |t: &Trainer| -> Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let w = t.weights().unwrap();
        tables
            .iter()
            .map(|tb| {
                let hf = format!("electra.embeddings.{tb}.weight");
                (
                    w[span(t, &format!("discriminator.{hf}"))].to_vec(),
                    w[span(t, &format!("generator.{hf}"))].to_vec(),
                    w[span(t, &format!("discriminator_delta.{hf}"))].to_vec(),
                )
            })
            .collect()
    };
    let folded = |t: &Trainer| {
        for (d, g, delta) in parts(t) {
            let sum: Vec<f32> = g.iter().zip(&delta).map(|(a, b)| a + b).collect();
            assert_eq!(bits(&d), bits(&sum), "E_D = E_G + E_Δ");
        }
    };
    let mut t = Trainer::new(cfg.to_str().unwrap(), gdes(1.0, 50.0)).unwrap();
    assert!(!t.towers().shared_embeddings());
    let start = parts(&t);
    for (d, g, delta) in &start {
        assert_eq!(d, g, "a new pair starts from equal tables");
        assert!(delta.iter().all(|&x| x == 0.0));
    }
    for k in 0..6 {
        step(&mut t, k % 2);
        folded(&t);
    }
    let moved = parts(&t);
    for ((d0, g0, _), (d1, g1, delta)) in start.iter().zip(&moved) {
        assert_ne!(d0, d1);
        assert_ne!(g0, g1);
        assert!(delta.iter().any(|&x| x != 0.0));
    }
    // Detection alone: the generator's tables stay put. The masked LM alone: no delta, and the
    // discriminator's tables are the generator's.
    let mut disc_only = Trainer::new(cfg.to_str().unwrap(), gdes(0.0, 50.0)).unwrap();
    let mut gen_only = Trainer::new(cfg.to_str().unwrap(), gdes(1.0, 0.0)).unwrap();
    for k in 0..4 {
        step(&mut disc_only, k);
        step(&mut gen_only, k);
    }
    for ((_, g0, _), (d, g, _)) in start.iter().zip(parts(&disc_only)) {
        assert_eq!(g0, &g, "detection moved the generator's table");
        assert_ne!(g, d);
    }
    for (d, g, delta) in parts(&gen_only) {
        assert!(delta.iter().all(|&x| x == 0.0), "the masked LM moved a delta");
        assert_eq!(d, g);
    }

    // Resume: bit for bit, deltas and all.
    resumes_bit_for_bit(&dir.join("ckpt"), || Trainer::new(cfg.to_str().unwrap(), gdes(1.0, 50.0)).unwrap());

    // Export: folded tables, no delta; HF's layout; continued as disentangled or not.
    t.export(&dir.join("pair")).unwrap();
    let file = std::fs::read(dir.join("pair/discriminator/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&file).unwrap();
    assert!(st.names().iter().all(|n| !n.contains("delta")));
    let word = st.tensor("electra.embeddings.word_embeddings.weight").unwrap();
    let word: Vec<f32> = word.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(bits(&word), bits(&moved[0].0));
    let loaded = hf::load(&dir.join("pair")).unwrap();
    assert!(!loaded.shared_embeddings());
    assert!(Trainer::new(dir.join("pair").to_str().unwrap(), gdes(1.0, 50.0)).is_ok());
    assert!(Trainer::new(dir.join("pair").to_str().unwrap(), opts()).is_ok());
    // A pair that shares its tables cannot be disentangled; the mlm objective has no
    // discriminator to disentangle.
    let e = Trainer::from_model(tiny_model(5), gdes(1.0, 50.0)).err().unwrap();
    assert!(e.to_string().contains("disentangled"), "{e}");
    let mlm = TrainOptions { objective: Objective::Mlm, ..gdes(1.0, 50.0) };
    assert!(Trainer::new(cfg.to_str().unwrap(), mlm).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A discriminator config.json for a fresh pair (the tests' tiny config), written under `dir`.
fn dir_config(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("disc-config.json");
    std::fs::write(&p, common::TINY_DISC).unwrap();
    p
}

/// `disc_label_smoothing` ε scores replaced-token detection against ε/2 and 1 − ε/2: with the
/// discriminator's prediction fixed at logit 1 for every token, the loss is
/// softplus(1) − (ȳ(1 − ε) + ε/2), ȳ the share of replaced tokens (which is then its accuracy);
/// out-of-range values are refused.
#[test]
fn label_smoothing_scores_against_smoothed_targets() {
    let (ids, mask, types) = batch_data(0);
    let b = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: B, seq_len: T };
    for eps in [0.0f32, 0.2, 0.5] {
        let mut t = Trainer::from_model(tiny_model(5), TrainOptions { disc_label_smoothing: eps, ..opts() }).unwrap();
        let mut w = t.weights().unwrap().into_owned();
        for i in t.params().infos() {
            let pred = "discriminator.discriminator_predictions.dense_prediction.";
            if i.name == format!("{pred}weight") {
                w[i.offset..i.offset + i.len].fill(0.0);
            } else if i.name == format!("{pred}bias") {
                w[i.offset..i.offset + i.len].fill(1.0);
            }
        }
        t.set_weights(&w).unwrap();
        let masking = t.mask(&b);
        let s = t.forward_backward(&b, &masking, None).unwrap();
        let ybar = s.disc_accuracy as f64;
        let want = (1.0f64.exp().ln_1p()) - (ybar * (1.0 - eps as f64) + eps as f64 / 2.0);
        assert!((s.disc_loss as f64 - want).abs() < 1e-5, "ε {eps}: {} vs {want} ({s:?})", s.disc_loss);
    }
    for bad in ["1", "-0.1", "1.5"] {
        let e = TrainOptions::from_json(Some(&format!(r#"{{"disc_label_smoothing": {bad}}}"#))).unwrap_err();
        assert!(e.to_string().contains("disc_label_smoothing"), "{e}");
    }
}
