//! Fine-tuning: classification-head parity with PyTorch (forward, loss, every gradient), a toy
//! task learned well above chance, save/load round trip.

mod common;
use common::train_fixture::classifier_matches;
use common::*;
use electra::backend::Device;
use electra::finetune::{FineTuner, FinetuneOptions};
use electra::hf;
use electra::session::{Batch, Session};
use electra::{ElectraConfig, Model};
use std::sync::Arc;

#[test]
fn classifier_matches_pytorch() {
    classifier_matches(Device::Cpu, 0);
}

/// Label = whether token 7 occurs in the row; a tiny randomly initialised encoder must learn it.
#[test]
fn toy_task_beats_chance_and_round_trips() {
    let dir = std::env::temp_dir().join(format!("electra-ft-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
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
        learning_rate: 3e-3,
        layerwise_lr_decay: 0.9,
        warmup_steps: 10,
        total_steps: 300,
        ..Default::default()
    };
    let labels = ["absent".to_string(), "present".to_string()];
    let mut ft = FineTuner::new(&dir.join("disc"), &labels, opts).unwrap();
    let (b, t) = (16, 10);
    let make = |seed: u64| {
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
    };
    for step in 0..300u64 {
        let (ids, y) = make(step);
        ft.train_step(&Batch::new(&ids, b, t), &y).unwrap();
    }
    ft.save(&dir.join("cls")).unwrap();
    let model = Arc::new(hf::load(&dir.join("cls")).unwrap());
    let mut s = Session::new(model).unwrap();
    let (mut right, mut total) = (0, 0);
    for k in 0..10 {
        let (ids, y) = make(10_000 + k);
        let mut logits = vec![0.0; b * 2];
        s.classify(&Batch::new(&ids, b, t), &mut logits).unwrap();
        for r in 0..b {
            right += ((logits[2 * r + 1] > logits[2 * r]) as i32 == y[r]) as usize;
            total += 1;
        }
    }
    let acc = right as f64 / total as f64;
    println!("held-out accuracy {acc}");
    assert!(acc > 0.8, "held-out accuracy {acc}");
    let cfg = ElectraConfig::from_file(&dir.join("cls/config.json")).unwrap();
    assert_eq!(electra::model::classifier::label_names(&cfg), labels);
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
