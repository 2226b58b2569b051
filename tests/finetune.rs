//! Fine-tuning: classification-head parity with PyTorch (forward, loss, every gradient), a toy
//! task learned well above chance, save/load round trip.

mod common;
use common::train_fixture::classifier_matches;
use common::*;
use electra::backend::Device;
use electra::finetune::{FineTuner, FinetuneOptions};
use electra::hf;
use electra::session::{Batch, Session};
use electra::{ElectraConfig, Model, Pooling};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[test]
fn classifier_matches_pytorch() {
    classifier_matches(Device::Cpu, 0);
}

/// Rows of `t` tokens: [CLS] then random ids in 8..40; label = whether token 7 occurs (every
/// other row has it somewhere).
fn toy_batch(seed: u64, b: usize, t: usize) -> (Vec<i32>, Vec<i32>) {
    let mut x = seed;
    let mut ids = vec![0i32; b * t];
    let mut y = vec![0i32; b];
    for r in 0..b {
        ids[r * t] = 2;
        for i in 1..t {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ids[r * t + i] = 8 + ((x >> 33) % 32) as i32;
        }
        if r % 2 == 0 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            ids[r * t + 1 + ((x >> 33) as usize % (t - 1))] = 7;
            y[r] = 1;
        }
    }
    (ids, y)
}

/// Fine-tunes a tiny randomly initialised encoder on the toy task with `pool`, saves it under
/// `dir/cls` and returns its held-out accuracy through a fresh session.
fn toy_task(dir: &Path, pool: Option<Pooling>) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    let cfg = ElectraConfig::from_json_str(
        r#"{"vocab_size": 40, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 16,
            "architectures": ["ElectraForPreTraining"]}"#,
    )
    .unwrap();
    let mut m = Model::new(Some(cfg), None, false).unwrap();
    m.init_weights(1).unwrap();
    hf::save_dir(&m, hf::Role::Discriminator, &dir.join("disc")).unwrap();
    let opts = FinetuneOptions {
        learning_rate: Some(3e-3),
        layerwise_lr_decay: 0.9,
        warmup_steps: 10,
        total_steps: 300,
        pool,
        ..Default::default()
    };
    let labels = ["absent".to_string(), "present".to_string()];
    let mut ft = FineTuner::new(&dir.join("disc"), &labels, opts).unwrap();
    assert_eq!(ft.classifier().head.pool, pool.unwrap_or_default());
    let (b, t) = (16, 10);
    for step in 0..300u64 {
        let (ids, y) = toy_batch(step, b, t);
        ft.train_step(&Batch::new(&ids, b, t), &y).unwrap();
    }
    ft.save(&dir.join("cls")).unwrap();
    let model = Arc::new(hf::load(&dir.join("cls")).unwrap());
    let mut s = Session::new(model).unwrap();
    let (mut right, mut total) = (0, 0);
    for k in 0..10 {
        let (ids, y) = toy_batch(10_000 + k, b, t);
        let mut logits = vec![0.0; b * 2];
        s.classify(&Batch::new(&ids, b, t), &mut logits).unwrap();
        for r in 0..b {
            right += ((logits[2 * r + 1] > logits[2 * r]) as i32 == y[r]) as usize;
            total += 1;
        }
    }
    let cfg = ElectraConfig::from_file(&dir.join("cls/config.json")).unwrap();
    assert_eq!(electra::model::classifier::label_names(&cfg), labels);
    right as f64 / total as f64
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("electra-ft-{name}-{}", std::process::id()))
}

#[test]
fn toy_task_beats_chance_and_round_trips() {
    let dir = scratch("cls");
    let acc = toy_task(&dir, None);
    println!("held-out accuracy {acc}");
    assert!(acc > 0.8, "held-out accuracy {acc}");
    let cfg = std::fs::read_to_string(dir.join("cls/config.json")).unwrap();
    assert!(!cfg.contains("classifier_pooling"), "a [CLS] head's config.json is HF's own:\n{cfg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A mean-pooled head learns the toy task, saves `"classifier_pooling": "mean"`, classifies
/// after a reload as the masked mean of the encoder's states computed here in f64 (padding
/// ignored), and is continued only as a mean-pooled head.
#[test]
fn mean_pooled_head_learns_saves_and_reloads() {
    let dir = scratch("mean");
    let acc = toy_task(&dir, Some(Pooling::Mean));
    println!("held-out accuracy {acc}");
    assert!(acc > 0.8, "held-out accuracy {acc}");
    let cls_dir = dir.join("cls");
    let cfg = ElectraConfig::from_file(&cls_dir.join("config.json")).unwrap();
    assert_eq!(cfg.classifier_pooling().unwrap(), Pooling::Mean);

    // Two rows of 7 tokens, the second padded after 4, and the same two rows unpadded at their
    // own lengths: the logits agree, and equal the f64 head over the session's hidden states.
    let model = Arc::new(hf::load(&cls_dir).unwrap());
    let mut s = Session::new(model.clone()).unwrap();
    let (ids, _) = toy_batch(77, 2, 7);
    let mut padded = ids.clone();
    padded[11..].fill(0);
    let mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0];
    let batch = Batch { attention_mask: Some(&mask), ..Batch::new(&padded, 2, 7) };
    let mut logits = vec![0.0; 4];
    s.classify(&batch, &mut logits).unwrap();
    for (r, len) in [(0, 7), (1, 4)] {
        let mut alone = vec![0.0; 2];
        s.classify(&Batch::new(&padded[r * 7..r * 7 + len], 1, len), &mut alone).unwrap();
        for k in 0..2 {
            let (a, b) = (logits[2 * r + k], alone[k]);
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "row {r} logit {k}: padded {a}, alone {b}");
        }
    }
    let mut hidden = vec![0.0; 14 * 32];
    s.hidden_states(&batch, &mut hidden).unwrap();
    let hidden: Vec<f64> = hidden.iter().map(|&x| x as f64).collect();
    let cls = model.cls().unwrap();
    let w: Vec<f64> = model.params.data.iter().map(|&x| x as f64).collect();
    let want = common::reference::ref_cls_head(&cls.head, &w, &hidden, 7, Some(&mask));
    for (i, (&g, &e)) in logits.iter().zip(&want).enumerate() {
        assert!((g as f64 - e).abs() <= 1e-5 * (1.0 + e.abs()), "logit {i}: {g} against {e}");
    }

    // Continued: its own pooling, or the same named; the other is refused before training.
    let none = FineTuner::new(&cls_dir, &[], FinetuneOptions::default()).unwrap();
    assert_eq!(none.classifier().head.pool, Pooling::Mean);
    // No learning rate given: the paper's for the width (32 here: ELECTRA-Small's 3e-4).
    assert_eq!(none.opts.learning_rate, Some(3e-4));
    assert_eq!(
        [128, 256, 257, 768, 1024].map(electra::finetune::default_learning_rate),
        [3e-4, 3e-4, 1e-4, 1e-4, 5e-5]
    );
    let opts = |pool| FinetuneOptions { pool: Some(pool), ..Default::default() };
    assert!(FineTuner::new(&cls_dir, &[], opts(Pooling::Mean)).is_ok());
    let err = FineTuner::new(&cls_dir, &[], opts(Pooling::Cls)).err().expect("a [CLS] head over a mean-pooled one");
    assert!(err.to_string().contains("pools mean"), "{err}");
    assert!(FineTuner::new(&cls_dir, &["third".into()], opts(Pooling::Cls)).is_err(), "grown heads too");
    // A bad value in config.json is a load error that names the key.
    let text = std::fs::read_to_string(cls_dir.join("config.json")).unwrap();
    std::fs::write(
        cls_dir.join("config.json"),
        text.replace(r#""classifier_pooling": "mean""#, r#""classifier_pooling": "max""#),
    )
    .unwrap();
    let err = hf::load(&cls_dir).expect_err("classifier_pooling max");
    assert!(err.to_string().contains("classifier_pooling"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A lone masked-LM checkpoint (what the mlm objective exports) starts a classifier with its
/// encoder weights, as a discriminator does.
#[test]
fn masked_lm_checkpoint_seeds_the_encoder() {
    let gen_dir = fixture("emb_lt_hidden").join("generator");
    let gen = hf::load(&gen_dir).unwrap();
    let ft = FineTuner::new(&gen_dir, &["neg".into(), "pos".into()], FinetuneOptions::default()).unwrap();
    let snapshot = ft.model().unwrap();
    let cls = snapshot.cls().unwrap();
    let g = gen.gen().unwrap();
    let mut copied = 0;
    for (name, id) in &cls.names {
        if let Some((_, src)) = g.names.iter().find(|(n, _)| n == name) {
            assert_eq!(snapshot.params.get(*id), gen.params.get(*src), "{name}");
            copied += 1;
        }
    }
    assert!(copied >= 10, "{copied} encoder tensors copied");
}
