//! Hostile sizes: configs, options and batch shapes that once aborted the process ("memory
//! allocation of N bytes failed"), panicked ("capacity overflow") or were about to be killed by
//! the OOM killer are errors now, checked before anything is allocated, through the Rust API and
//! through the C ABI; and the `max_memory_bytes` budget of sessions, trainers and fine-tuners.

use electra::config::ElectraConfig;
use electra::error::Error;
use electra::ffi::model::*;
use electra::ffi::session::*;
use electra::ffi::status::*;
use electra::ffi::trainer::*;
use electra::finetune::{FineTuner, FinetuneOptions};
use electra::pretrain::{TrainOptions, Trainer};
use electra::{Batch, Model, Session, SessionOptions};
use std::ffi::CString;
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::Arc;

/// A fresh empty directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "electra-limits-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A model directory: `config` as config.json and a minimal model.safetensors (one tensor that
/// makes it a discriminator checkpoint), a few hundred bytes in all.
fn model_dir(config: &str) -> PathBuf {
    let d = temp_dir("model");
    std::fs::write(d.join("config.json"), config).unwrap();
    let header =
        r#"{"discriminator_predictions.dense_prediction.bias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header.as_bytes());
    st.extend_from_slice(&0f32.to_le_bytes());
    std::fs::write(d.join("model.safetensors"), st).unwrap();
    d
}

fn load_status(config: &str) -> electra_status {
    let dir = model_dir(config);
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    let mut m = null_mut();
    let status = unsafe { electra_model_load(path.as_ptr(), &mut m) };
    assert!(m.is_null());
    let _ = std::fs::remove_dir_all(dir);
    status
}

#[test]
fn absurd_config_sizes_are_errors_not_aborts() {
    let keys = [
        "hidden_size",
        "vocab_size",
        "num_hidden_layers",
        "intermediate_size",
        "embedding_size",
        "max_position_embeddings",
        "type_vocab_size",
        "num_attention_heads",
    ];
    for key in keys {
        for v in ["1000000000", "2305843009213693952", "18446744073709551615"] {
            let cfg = format!(r#"{{"{key}": {v}, "num_attention_heads": 1}}"#).replace(
                r#""num_attention_heads": 1000000000, "num_attention_heads": 1"#,
                r#""num_attention_heads": 1000000000"#,
            );
            let cfg = if key == "num_attention_heads" { format!(r#"{{"{key}": {v}}}"#) } else { cfg };
            let s = load_status(&cfg);
            assert!(s == ELECTRA_ERR_FORMAT || s == ELECTRA_ERR_INVALID_ARGUMENT, "{cfg}: status {s}");
            assert!(ElectraConfig::from_json_str(&cfg).is_err(), "{cfg} accepted");
        }
    }
}

#[test]
fn a_plausible_config_larger_than_the_machine_is_out_of_memory() {
    // 2^24 x 2^20 embeddings: 2^46 floats, far beyond any machine, with no overflow.
    let cfg = r#"{"vocab_size": 16777216, "embedding_size": 1048576, "hidden_size": 64, "num_attention_heads": 1}"#;
    assert_eq!(load_status(cfg), ELECTRA_ERR_OUT_OF_MEMORY);
    let c = ElectraConfig::from_json_str(cfg).unwrap();
    let e = Model::new(Some(c), None, false).unwrap_err();
    assert!(matches!(e, Error::OutOfMemory(_)) && e.to_string().contains("needs"), "{e}");
}

fn trainer_new(init: &str, options: &str) -> electra_status {
    let (init, opts) = (CString::new(init).unwrap(), CString::new(options).unwrap());
    let mut t = null_mut();
    let s = unsafe { electra_trainer_new(init.as_ptr(), opts.as_ptr(), &mut t) };
    unsafe { electra_trainer_free(t) };
    s
}

#[test]
fn hostile_trainer_options_are_errors() {
    assert_eq!(trainer_new("tiny", r#"{"vocab_size": 1000000000}"#), ELECTRA_ERR_INVALID_ARGUMENT);
    assert_eq!(trainer_new("tiny", r#"{"max_seq_len": 1000000000}"#), ELECTRA_ERR_INVALID_ARGUMENT);
    assert_eq!(trainer_new("tiny", r#"{"vocab_size": 18446744073709551615}"#), ELECTRA_ERR_INVALID_ARGUMENT);
    // Plausible each, but weights + gradients + moments exceed the machine.
    assert_eq!(trainer_new("large", r#"{"vocab_size": 16777216}"#), ELECTRA_ERR_OUT_OF_MEMORY);
    assert_eq!(trainer_new("tiny", r#"{"max_memory_bytes": 1000}"#), ELECTRA_ERR_OUT_OF_MEMORY);
}

fn tiny_opts() -> TrainOptions {
    TrainOptions { vocab_size: Some(128), max_seq_len: 16, threads: 1, warmup_steps: 0, ..Default::default() }
}

#[test]
fn trainer_budget_is_checked_at_creation_and_per_step() {
    let t = Trainer::new("tiny", tiny_opts()).unwrap();
    let numel = t.params().numel();
    let towers = t.towers().clone();
    drop(t);
    let acts = |b, s| {
        [towers.disc().unwrap().config.clone(), towers.gen().unwrap().config.clone()]
            .iter()
            .map(|c| electra::limits::activation_bytes(c, b, s, true).unwrap())
            .sum::<usize>()
    };
    let budget = electra::limits::training_bytes(numel).unwrap() + acts(2, 16);
    let mut t = Trainer::new("tiny", TrainOptions { max_memory_bytes: budget as u64, ..tiny_opts() }).unwrap();
    let ids = vec![5i32; 2 * 16];
    t.train_step(&Batch::new(&ids, 2, 16)).unwrap();
    let big = vec![5i32; 8 * 16];
    let e = t.train_step(&Batch::new(&big, 8, 16)).unwrap_err();
    assert!(matches!(e, Error::OutOfMemory(_)), "{e}");
    assert!(e.to_string().contains(&format!("max_memory_bytes = {budget}")), "{e}");
    assert_eq!(t.step, 1, "a refused step changes nothing");
}

fn tiny_model(positions: usize) -> Model {
    let mut d = ElectraConfig::preset("tiny").unwrap();
    d.vocab_size = 128;
    d.max_position_embeddings = positions;
    let g = d.generator_config(0.25).unwrap();
    let mut m = Model::new(Some(d), Some(g), true).unwrap();
    m.init_weights(1).unwrap();
    m
}

#[test]
fn default_max_seq_len_adapts_to_a_short_model_and_an_explicit_one_says_what_to_set() {
    let opts = TrainOptions { vocab_size: Some(128), threads: 1, ..Default::default() };
    let t = Trainer::from_model(tiny_model(64), opts.clone()).unwrap();
    assert_eq!(t.opts.max_seq_len, 64);
    let e = Trainer::from_model(tiny_model(64), TrainOptions { max_seq_len: 100, ..opts }).err().unwrap().to_string();
    assert!(e.contains("\"max_seq_len\"") && e.contains("at most 64"), "{e}");
}

#[test]
fn session_budget_and_huge_batches() {
    let model = Arc::new(tiny_model(32));
    let opts = SessionOptions { threads: 1, max_memory_bytes: 1000, ..Default::default() };
    let mut s = Session::with_options(model.clone(), &opts).unwrap();
    let ids = vec![3i32; 4 * 8];
    let mut out = vec![0.0; 32];
    let e = s.discriminate(&Batch::new(&ids, 4, 8), &mut out).unwrap_err();
    assert!(matches!(e, Error::OutOfMemory(_)) && e.to_string().contains("max_memory_bytes = 1000"), "{e}");
    let mut s = Session::with_options(model.clone(), &SessionOptions { threads: 1, ..Default::default() }).unwrap();
    s.discriminate(&Batch::new(&ids, 4, 8), &mut out).unwrap();
    // A batch whose shape claims more tokens than its ids: an error, not an allocation.
    assert!(s.discriminate_array(&Batch::new(&ids, usize::MAX / 4, 2)).is_err());

    // Through the C ABI: usize::MAX shapes are errors, not panics.
    let dir = temp_dir("saved");
    electra::hf::save(&model, &dir).unwrap();
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    let mut handle = null_mut();
    assert_eq!(unsafe { electra_model_load(path.as_ptr(), &mut handle) }, ELECTRA_OK);
    let _ = std::fs::remove_dir_all(&dir);
    let mut sess = null_mut();
    let json = CString::new(r#"{"threads": 1, "max_memory_bytes": 1000}"#).unwrap();
    assert_eq!(unsafe { electra_session_new_with_options(handle, json.as_ptr(), &mut sess) }, ELECTRA_OK);
    // The last: a real batch over the 1000-byte budget.
    for (b, t) in [(usize::MAX, 1), (1, usize::MAX), (usize::MAX, usize::MAX), (4, 8)] {
        let st = unsafe {
            electra_session_discriminate(sess, ids.as_ptr(), null(), null(), b, t, out.as_mut_ptr(), out.len())
        };
        assert!(st != ELECTRA_OK && st != ELECTRA_ERR_PANIC, "{b} x {t}: status {st}");
    }
    unsafe {
        electra_session_free(sess);
        electra_model_free(handle);
    }
}

#[test]
fn finetuner_budget() {
    let mut c = ElectraConfig::preset("tiny").unwrap();
    c.vocab_size = 128;
    electra::model::classifier::set_labels(&mut c, &["a".into(), "b".into()]);
    let m = Model::new_classifier(c).unwrap();
    let e = FineTuner::from_model(m, FinetuneOptions { max_memory_bytes: 1000, ..Default::default() }).err().unwrap();
    assert!(matches!(e, Error::OutOfMemory(_)) && e.to_string().contains("max_memory_bytes = 1000"), "{e}");
}

/// The CLI refuses sizes it cannot hold up front, with a message and a failing exit status:
/// no abort, no panic text, no hang building a huge batch.
#[test]
fn the_cli_refuses_hostile_sizes_with_a_message() {
    let run = temp_dir("cli");
    let huge = run.join("huge.json");
    std::fs::write(&huge, r#"{"hidden_size": 1000000000}"#).unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--seq-len", "100000"], "bytes"),
        (&["--batch-size", "100000000"], "bytes"),
        (&["--preset", huge.to_str().unwrap()], "hidden_size"),
    ];
    for (args, needle) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_electra"))
            .args(["pretrain", "--steps", "1", "--out"])
            .arg(run.join("out"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("memory allocation"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&run);
}
