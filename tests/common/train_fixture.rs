//! The pre-training fixtures of scripts/make_fixtures.py (train.safetensors): a trainer set up
//! with the fixture's masked positions and samples, and the checks of its gradients and of five
//! AdamW steps against torch autograd. Shared by tests/train_reference.rs (the CPU) and
//! tests/conformance.rs (every backend).

use super::*;
use electra::backend::Device;
use electra::finetune::{FineTuner, FinetuneOptions};
use electra::hf;
use electra::io::safetensors::TensorFile;
use electra::pretrain::masking::Masking;
use electra::pretrain::{TrainOptions, Trainer};
use electra::session::{Batch, Session, SessionOptions};
use std::sync::Arc;

pub const TRAIN_CASES: &[&str] = &["emb_lt_hidden", "emb_eq_hidden"];

pub struct Setup {
    pub trainer: Trainer,
    pub f: TensorFile,
    pub ids: Vec<i32>,
    pub mask: Vec<i32>,
    pub types: Vec<i32>,
    pub b: usize,
    pub t: usize,
    pub masking: Masking,
    pub sampled: Vec<i32>,
}

pub fn scalar(f: &TensorFile, name: &str) -> f32 {
    floats(f, name)[0]
}

/// The trainer of fixture `case` on `device`, with the fixture's masked positions and samples.
pub fn setup(case: &str, device: Device, threads: usize) -> Setup {
    let f = read(case, "train.safetensors");
    let shape = f.get("input_ids").unwrap().shape.clone();
    let (b, t) = (shape[0], shape[1]);
    let model = hf::load(&fixture(case)).unwrap();
    assert!(model.shared_embeddings());
    let opts = TrainOptions {
        learning_rate: scalar(&f, "opt.base_lr"),
        warmup_steps: scalar(&f, "opt.warmup") as u64,
        total_steps: scalar(&f, "opt.total") as u64,
        weight_decay: scalar(&f, "opt.weight_decay"),
        adam_epsilon: scalar(&f, "opt.eps"),
        adam_beta1: scalar(&f, "opt.beta1"),
        adam_beta2: scalar(&f, "opt.beta2"),
        max_grad_norm: scalar(&f, "opt.max_grad_norm"),
        gen_weight: scalar(&f, "gen_weight"),
        disc_weight: scalar(&f, "disc_weight"),
        mask_token_id: ints(&f, "mask_token_id")[0],
        max_seq_len: t,
        device,
        threads,
        ..Default::default()
    };
    let trainer = Trainer::from_model(model, opts).unwrap();
    let pos = ints(&f, "masked_positions");
    let wts = floats(&f, "masked_weights").to_vec();
    let samp = ints(&f, "sampled_ids");
    let slots = pos.len() / b;
    let mut positions = Vec::new();
    let mut sampled = Vec::new();
    for r in 0..b {
        for s in 0..slots {
            if wts[r * slots + s] > 0.0 {
                positions.push(r * t + pos[r * slots + s] as usize);
                sampled.push(samp[r * slots + s]);
            }
        }
    }
    let masking = Masking { positions, generator_input: ints(&f, "generator_input_ids") };
    Setup {
        ids: ints(&f, "input_ids"),
        mask: ints(&f, "attention_mask"),
        types: ints(&f, "token_type_ids"),
        trainer,
        f,
        b,
        t,
        masking,
        sampled,
    }
}

impl Setup {
    pub fn step(&mut self) -> electra::pretrain::StepStats {
        let batch = Batch {
            input_ids: &self.ids,
            attention_mask: Some(&self.mask),
            token_type_ids: Some(&self.types),
            batch: self.b,
            seq_len: self.t,
        };
        self.trainer.forward_backward(&batch, &self.masking, Some(&self.sampled)).unwrap()
    }

    /// (fixture key, our tensor) for every parameter the fixture lists under `prefix`.
    pub fn pairs(&self, prefix: &str, buf: &[f32]) -> Vec<(String, Vec<f32>)> {
        let towers = self.trainer.towers();
        let mut out = Vec::new();
        for (scope, names) in
            [("discriminator", &towers.disc().unwrap().names), ("generator", &towers.gen().unwrap().names)]
        {
            for (hf, id) in names.iter() {
                let key = format!("{prefix}.{scope}.{hf}");
                let info = self.trainer.params().info(*id);
                out.push((key, buf[info.offset..info.offset + info.len].to_vec()));
            }
        }
        out
    }
}

/// The joint loss and every parameter gradient of one step on `device` against torch autograd.
pub fn gradients_match(device: Device, threads: usize) {
    for case in TRAIN_CASES {
        let mut s = setup(case, device, threads);
        let stats = s.step();
        let f = &s.f;
        assert_close(&format!("{case} mlm_loss"), &[stats.mlm_loss], &[scalar(f, "mlm_loss")], 1e-5, 0.0);
        assert_close(&format!("{case} disc_loss"), &[stats.disc_loss], &[scalar(f, "disc_loss")], 1e-5, 0.0);
        assert_close(&format!("{case} loss"), &[stats.loss], &[scalar(f, "loss")], 1e-5, 0.0);
        let global = f
            .tensors
            .iter()
            .filter(|(k, _)| k.starts_with("grad."))
            .flat_map(|(_, t)| t.data.iter())
            .fold(0.0f32, |m, v| m.max(v.abs()));
        let grads = s.trainer.grads().unwrap().into_owned();
        let pairs = s.pairs("grad", &grads);
        let mut checked = 0;
        let mut worst = (0.0f32, String::new());
        for (key, ours) in &pairs {
            let want = floats(f, key);
            // Key biases get no gradient in exact arithmetic (softmax ignores a shift along the
            // key axis); both sides hold rounding noise of ~1e-9, so they are compared against
            // the global gradient scale instead of their own.
            let d = if key.ends_with("attention.self.key.bias") {
                let d = compare(ours, want, 0.0, 1e-6 * global / want.iter().fold(1e-30f32, |m, v| m.max(v.abs())));
                assert!(d.ok, "{key}: {d:?}");
                d
            } else {
                assert_close(key, ours, want, 1e-4, 1e-5)
            };
            if !key.ends_with("key.bias") && d.max_rel > worst.0 {
                worst = (d.max_rel, key.clone());
            }
            checked += 1;
        }
        println!("{case}: {checked} gradients checked, worst relative error {:.3e} in {}", worst.0, worst.1);
        assert_eq!(
            checked,
            f.tensors.keys().filter(|k| k.starts_with("grad.")).count(),
            "every fixture gradient is compared"
        );
    }
}

/// Losses, gradient norms, learning rates and weights of five AdamW steps on `device`.
pub fn five_steps_match(device: Device, threads: usize) {
    for case in TRAIN_CASES {
        let mut s = setup(case, device, threads);
        let losses = floats(&s.f, "opt.losses").to_vec();
        let norms = floats(&s.f, "opt.grad_norms").to_vec();
        let lrs = floats(&s.f, "opt.lrs").to_vec();
        for i in 0..5 {
            let mut st = s.step();
            assert_close(&format!("{case} step {i} loss"), &[st.loss], &[losses[i]], 1e-4, 0.0);
            s.trainer.apply_update(&mut st).unwrap();
            assert_close(&format!("{case} step {i} grad norm"), &[st.grad_norm], &[norms[i]], 1e-4, 0.0);
            assert_close(&format!("{case} step {i} lr"), &[st.learning_rate], &[lrs[i]], 1e-6, 0.0);
        }
        let weights = s.trainer.weights().unwrap().into_owned();
        let pairs = s.pairs("step5", &weights);
        for (key, ours) in &pairs {
            let want = floats(&s.f, key);
            if key.ends_with("attention.self.key.bias") {
                // The key-bias gradient is pure rounding noise (~1e-9, see above), and Adam
                // turns noise into steps of up to lr·m/ε ≈ 1e-6 each; both sides drift by a few
                // 1e-6 in different directions, so this tensor gets an absolute bound of 2e-5.
                let scale = want.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
                let d = compare(ours, want, 0.0, 2e-5 / scale);
                assert!(d.ok, "{key}: {d:?}");
            } else {
                assert_close(key, ours, want, 1e-4, 1e-5);
            }
        }
    }
}

/// The classification head of fixture emb_lt_hidden (cls_train.safetensors) on `device`: logits
/// through a session, loss and every gradient through a fine-tuner.
pub fn classifier_matches(device: Device, threads: usize) {
    let case = "emb_lt_hidden";
    let f = read(case, "cls_train.safetensors");
    let shape = f.get("input_ids").unwrap().shape.clone();
    let (b, t) = (shape[0], shape[1]);
    let (ids, mask, types) = (ints(&f, "input_ids"), ints(&f, "attention_mask"), ints(&f, "token_type_ids"));
    let labels = ints(&f, "labels");
    let batch =
        Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: Some(&types), batch: b, seq_len: t };
    let model = hf::load(&fixture(case).join("classifier")).unwrap();
    let mut s =
        Session::with_options(Arc::new(model.clone()), &SessionOptions { device, threads, ..Default::default() })
            .unwrap();
    let mut logits = vec![0.0; b * 3];
    s.classify(&batch, &mut logits).unwrap();
    assert_close("cls_logits", &logits, floats(&f, "cls_logits"), 1e-5, 1e-6);
    let mut ft = FineTuner::from_model(model, FinetuneOptions { device, threads, ..Default::default() }).unwrap();
    let st = ft.forward_backward(&batch, &labels).unwrap();
    assert_close("cls_loss", &[st.loss], floats(&f, "cls_loss"), 1e-5, 0.0);
    let names = ft.classifier().names.clone();
    let grads = ft.grads().unwrap();
    let mut n = 0;
    for (hf_name, id) in &names {
        let key = format!("grad.classifier.{hf_name}");
        let info = ft.params().info(*id);
        let ours = &grads[info.offset..info.offset + info.len];
        if hf_name.ends_with("attention.self.key.bias") {
            continue; // rounding noise only: see tests/train_reference.rs
        }
        assert_close(&key, ours, floats(&f, &key), 1e-4, 1e-5);
        n += 1;
    }
    assert!(n >= 39, "{n} gradients compared");
}
