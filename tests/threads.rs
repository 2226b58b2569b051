//! Results do not depend on the thread count: a training step (losses, every gradient, the
//! updated weights, with dropout on as config.json's 0.1 says) and inference are bit-identical
//! with 1, 2 and 3 worker threads, at shapes large enough that matrix products, row kernels,
//! column reductions and dropout masks are actually split.

use electra::pretrain::{TrainOptions, Trainer};
use electra::session::{Batch, Session};
use electra::{ElectraConfig, Model};
use std::sync::Arc;

const B: usize = 8;
const T: usize = 64;

fn model() -> Model {
    let d = ElectraConfig::from_json_str(
        r#"{"vocab_size": 300, "embedding_size": 96, "hidden_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 512, "max_position_embeddings": 64,
            "architectures": ["ElectraForPreTraining"]}"#,
    )
    .unwrap();
    let g = d.generator_config(0.5).unwrap();
    let mut m = Model::new(Some(d), Some(g), true).unwrap();
    m.init_weights(3).unwrap();
    m
}

fn ids() -> (Vec<i32>, Vec<i32>) {
    let ids: Vec<i32> = (0..B * T).map(|i| 5 + ((i * 37 + i / 7) % 290) as i32).collect();
    let mask: Vec<i32> = (0..B * T).map(|i| (i % T < T - (i / T) * 3) as i32).collect();
    (ids, mask)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn training_step_is_identical_for_any_thread_count() {
    let (ids, mask) = ids();
    let batch = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: None, batch: B, seq_len: T };
    let run_with = |threads: usize, dropout: electra::options::DropoutSetting| {
        let opts = TrainOptions {
            dropout,
            max_seq_len: T,
            warmup_steps: 0,
            seed: 9,
            threads,
            special_token_ids: vec![0, 1, 2, 3, 4],
            mask_token_id: 4,
            ..Default::default()
        };
        let mut tr = Trainer::from_model(model(), opts).unwrap();
        let s1 = tr.train_step(&batch).unwrap();
        let s2 = tr.train_step(&batch).unwrap();
        (s1, s2, bits(&tr.grads().unwrap()), bits(&tr.weights().unwrap()))
    };
    let run = |threads: usize| run_with(threads, Default::default());
    let one = run(1);
    // Dropout is on in these runs: without it the step differs.
    let off = run_with(1, electra::options::DropoutSetting::Config(false));
    assert!(one.2 != off.2, "dropout changed no gradient");
    for threads in [2, 3] {
        let other = run(threads);
        assert_eq!(one.0, other.0, "step 1 stats with {threads} threads");
        assert_eq!(one.1, other.1, "step 2 stats with {threads} threads");
        assert!(one.2 == other.2, "gradients differ with {threads} threads");
        assert!(one.3 == other.3, "weights differ with {threads} threads");
    }
}

#[test]
fn inference_is_identical_for_any_thread_count() {
    let (ids, mask) = ids();
    let model = Arc::new(model());
    let batch = Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: None, batch: B, seq_len: T };
    let run = |threads: usize| {
        let mut s = Session::with_threads(model.clone(), threads).unwrap();
        assert_eq!(s.threads(), threads);
        let mut logits = vec![0.0; B * T];
        s.discriminate(&batch, &mut logits).unwrap();
        let mut gen = vec![0.0; B * T * 300];
        s.generator_logits(&batch, &mut gen).unwrap();
        (bits(&logits), bits(&gen))
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(one == run(threads), "inference differs with {threads} threads");
    }
}
