//! Labels survive a round trip: a classifier's label names and ids come from its config.json
//! `id2label` (HF's `{"0": "pos", "1": "neg"}`, not alphabetical here) and are kept when it is
//! fine-tuned further, by the CLI, the Rust API and the C ABI; new labels extend it (the head
//! grows); `electra predict` prints names; label counts and name lengths are bounded, and a
//! refusal comes before any training.

use electra::ffi::finetune::*;
use electra::ffi::status::*;
use electra::finetune::{FineTuner, FinetuneOptions};
use electra::hf;
use electra::model::classifier::label_names;
use electra::session::{Batch, Session};
use electra::{ElectraConfig, Model};
use serde_json::{json, Value};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "fine", "nice", "bad", "awful", "poor", "sad", "ok",
    "meh", "so", "the", "movie", "was", "it",
];

/// (label, text) rows: the words decide the label.
const ROWS: &[(&str, &str)] = &[
    ("pos", "good great"),
    ("neg", "bad awful"),
    ("pos", "the movie was nice"),
    ("neg", "it was poor"),
    ("pos", "fine good"),
    ("neg", "sad bad movie"),
    ("pos", "great nice it was"),
    ("neg", "awful poor"),
];
const MEH: &[(&str, &str)] = &[("meh", "ok so"), ("meh", "so so ok"), ("meh", "it was meh")];

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-labels-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_vocab(dir: &Path) {
    std::fs::write(dir.join("vocab.txt"), VOCAB.join("\n") + "\n").unwrap();
}

/// A tiny discriminator (with its vocab.txt) in `root/disc`, and an HF classifier made from it
/// in `root/hf_cls` whose config.json says `id2label = {"0": "pos", "1": "neg"}` (and
/// `label2id` to match), as transformers writes it.
fn hf_classifier(root: &Path) -> PathBuf {
    let cfg = ElectraConfig::from_json_str(&format!(
        r#"{{"vocab_size": {}, "embedding_size": 16, "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16,
            "architectures": ["ElectraForPreTraining"]}}"#,
        VOCAB.len()
    ))
    .unwrap();
    let mut m = Model::new(Some(cfg), None, false).unwrap();
    m.init_weights(3).unwrap();
    let disc = root.join("disc");
    hf::save_dir(&m, hf::Role::Discriminator, &disc).unwrap();
    write_vocab(&disc);
    let ft =
        FineTuner::new(&disc, &["a".into(), "b".into()], FinetuneOptions { seed: 5, ..Default::default() }).unwrap();
    let cls = root.join("hf_cls");
    ft.save(&cls).unwrap();
    write_vocab(&cls);
    let path = cls.join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    c["id2label"] = json!({"0": "pos", "1": "neg"});
    c["label2id"] = json!({"pos": 0, "neg": 1});
    std::fs::write(&path, serde_json::to_string_pretty(&c).unwrap()).unwrap();
    cls
}

fn id2label(dir: &Path) -> Value {
    let c: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(c["label2id"].as_object().unwrap().len(), c["id2label"].as_object().unwrap().len());
    for (id, name) in c["id2label"].as_object().unwrap() {
        assert_eq!(c["label2id"][name.as_str().unwrap()].to_string(), *id, "label2id disagrees with id2label");
    }
    c["id2label"].clone()
}

fn tsv(dir: &Path, rows: &[(&str, &str)]) -> PathBuf {
    let p = dir.join("train.tsv");
    let text: String = rows.iter().map(|(l, t)| format!("{l}\t{t}\n")).collect();
    std::fs::write(&p, text).unwrap();
    p
}

fn electra(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_electra")).args(args).stdin(std::process::Stdio::null()).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `electra finetune` from `model` on `rows`, then `electra predict --input` on every row's text:
/// each JSON line must name the row's label, and its `label_id` must be that label's id in the
/// saved id2label and the largest probability.
fn cli_round_trip(root: &Path, model: &Path, rows: &[(&str, &str)], extra: &[&str]) -> Value {
    let train = tsv(root, rows);
    let out = root.join("out");
    let mut args = vec![
        "finetune",
        "--model",
        s(model),
        "--train",
        s(&train),
        "--out",
        s(&out),
        "--epochs",
        "40",
        "--batch-size",
        "4",
        "--learning-rate",
        "2e-3",
        "--layer-decay",
        "1",
        "--threads",
        "1",
    ];
    args.extend(extra);
    let o = electra(&args);
    assert!(o.status.success(), "finetune: {}", String::from_utf8_lossy(&o.stderr));
    let labels = id2label(&out);
    let input = root.join("texts.txt");
    std::fs::write(&input, rows.iter().map(|(_, t)| format!("{t}\n")).collect::<String>()).unwrap();
    let o = electra(&["predict", "--model", s(&out), "--input", s(&input)]);
    assert!(o.status.success(), "predict: {}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), rows.len());
    for ((label, text), line) in rows.iter().zip(&lines) {
        let id = line["label_id"].as_u64().unwrap() as usize;
        assert_eq!(line["label"], *label, "{text:?}: {line}");
        assert_eq!(labels[id.to_string()], *label, "{text:?}: {line}");
        assert_eq!(line["labels"][id], *label, "{text:?}: {line}");
        let probs: Vec<f64> = line["probs"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
        let top = (0..probs.len()).max_by(|&a, &b| probs[a].total_cmp(&probs[b])).unwrap();
        assert_eq!(top, id, "{text:?}: {line}");
    }
    // The plain output names labels too.
    let o = electra(&["predict", "--model", s(&out), rows[0].1]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(rows[0].0), "{}", String::from_utf8_lossy(&o.stdout));
    labels
}

#[test]
fn cli_keeps_the_ids_of_a_non_alphabetical_hf_classifier() {
    let root = tmp("cli");
    let cls = hf_classifier(&root);
    let labels = cli_round_trip(&root, &cls, ROWS, &[]);
    assert_eq!(labels, json!({"0": "pos", "1": "neg"}));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn cli_appends_new_labels_and_grows_the_head() {
    let root = tmp("cli-grow");
    let cls = hf_classifier(&root);
    let rows: Vec<(&str, &str)> = ROWS.iter().chain(MEH).copied().collect();
    let labels = cli_round_trip(&root, &cls, &rows, &[]);
    assert_eq!(labels, json!({"0": "pos", "1": "neg", "2": "meh"}));
    let _ = std::fs::remove_dir_all(&root);
}

/// `--pool mean` from a discriminator: learned, predicted through the text path (padded
/// batches), saved with `"classifier_pooling": "mean"`; continuing it as a [CLS] head is refused
/// with the reason, continuing it as it is works.
#[test]
fn cli_mean_pooled_head_round_trips() {
    let root = tmp("cli-mean");
    hf_classifier(&root);
    let labels = cli_round_trip(&root, &root.join("disc"), ROWS, &["--pool", "mean"]);
    assert_eq!(labels.as_object().map(|m| m.len()), Some(2), "{labels}");
    let out = root.join("out");
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["classifier_pooling"], "mean");
    let train = tsv(&root, ROWS);
    let again = |pool: &str, to: &str| {
        let to = root.join(to);
        electra(&[
            "finetune",
            "--model",
            s(&out),
            "--train",
            s(&train),
            "--out",
            s(&to),
            "--epochs",
            "1",
            "--pool",
            pool,
        ])
    };
    let o = again("cls", "as-cls");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("pools mean"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!root.join("as-cls").exists());
    let o = again("mean", "as-mean");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&root);
}

/// Token ids of `[CLS] text [SEP]` padded to `t`, with the mask.
fn encode(text: &str, t: usize) -> (Vec<i32>, Vec<i32>) {
    let mut ids = vec![2];
    ids.extend(text.split(' ').map(|w| VOCAB.iter().position(|v| v == &w).unwrap() as i32));
    ids.push(3);
    let mut mask = vec![1; ids.len()];
    ids.resize(t, 0);
    mask.resize(t, 0);
    (ids, mask)
}

#[test]
fn library_keeps_the_ids_and_grows_the_head() {
    let root = tmp("lib");
    let cls = hf_classifier(&root);
    let before = hf::load(&cls).unwrap();
    // Labels in another order: ids still come from id2label.
    let opts = FinetuneOptions { learning_rate: Some(2e-3), layerwise_lr_decay: 1.0, threads: 1, ..Default::default() };
    let mut ft = FineTuner::new(&cls, &["neg".into(), "pos".into()], opts.clone()).unwrap();
    assert_eq!(ft.labels(), ["pos", "neg"]);
    assert_eq!((ft.label_id("pos"), ft.label_id("neg"), ft.label_id("meh")), (Some(0), Some(1), None));
    let t = 8;
    let (mut ids, mut mask, mut ys) = (Vec::new(), Vec::new(), Vec::new());
    for (l, text) in ROWS {
        let (i, m) = encode(text, t);
        ids.extend(i);
        mask.extend(m);
        ys.push(ft.label_id(l).unwrap() as i32);
    }
    let b = ROWS.len();
    for _ in 0..60 {
        ft.train_step(
            &Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: None, batch: b, seq_len: t },
            &ys,
        )
        .unwrap();
    }
    let out = root.join("out");
    ft.save(&out).unwrap();
    assert_eq!(id2label(&out), json!({"0": "pos", "1": "neg"}));
    let model = Arc::new(hf::load(&out).unwrap());
    let names = label_names(&model.cls().unwrap().config);
    let mut sess = Session::new(model).unwrap();
    let mut logits = vec![0.0; b * 2];
    sess.classify(
        &Batch { input_ids: &ids, attention_mask: Some(&mask), token_type_ids: None, batch: b, seq_len: t },
        &mut logits,
    )
    .unwrap();
    for (r, (label, text)) in ROWS.iter().enumerate() {
        let id = if logits[2 * r] > logits[2 * r + 1] { 0 } else { 1 };
        assert_eq!(names[id], *label, "{text:?}: logits {:?}", &logits[2 * r..2 * r + 2]);
        assert_eq!(id as i32, ys[r]);
    }

    // A new label: appended after the existing ids; the old head rows are kept, the new row is
    // a fresh head's (normal weights, zero bias).
    let ft = FineTuner::new(&cls, &["meh".into(), "neg".into()], opts).unwrap();
    assert_eq!(ft.labels(), ["pos", "neg", "meh"]);
    let after = ft.model().unwrap();
    let (o, n) = (before.cls().unwrap(), after.cls().unwrap());
    let h = 16;
    let (pb, pa) = (before.params.values(), after.params.values());
    let w_old = o.head.out_proj.w.of(pb);
    let w_new = n.head.out_proj.w.of(pa);
    assert_eq!(&w_new[..2 * h], w_old);
    assert!(w_new[2 * h..].iter().any(|&x| x != 0.0) && w_new[2 * h..].iter().all(|x| x.abs() < 1.5));
    let b_new = n.head.out_proj.b.of(pa);
    assert_eq!(&b_new[..2], o.head.out_proj.b.of(pb));
    assert_eq!(b_new[2], 0.0);
    assert_eq!(n.head.dense.w.of(pa), o.head.dense.w.of(pb));
    let _ = std::fs::remove_dir_all(&root);
}

fn c_new(dir: &Path, n: usize) -> (electra_status, *mut electra_finetuner) {
    let d = CString::new(s(dir)).unwrap();
    let mut f = std::ptr::null_mut();
    // SAFETY: valid strings and out pointer.
    let st = unsafe { electra_finetuner_new(d.as_ptr(), n, std::ptr::null(), &mut f) };
    (st, f)
}

#[test]
fn c_abi_continues_with_the_classifiers_labels() {
    let root = tmp("c");
    let cls = hf_classifier(&root);
    for (n, want) in [
        (0, json!({"0": "pos", "1": "neg"})),
        (2, json!({"0": "pos", "1": "neg"})),
        (3, json!({"0": "pos", "1": "neg", "2": "LABEL_2"})),
    ] {
        let (st, f) = c_new(&cls, n);
        assert_eq!(st, ELECTRA_OK, "num_labels {n}");
        let out = root.join(format!("out{n}"));
        let o = CString::new(s(&out)).unwrap();
        // SAFETY: live handle, valid string.
        assert_eq!(unsafe { electra_finetuner_save(f, o.as_ptr()) }, ELECTRA_OK);
        // SAFETY: live handle.
        unsafe { electra_finetuner_free(f) };
        assert_eq!(id2label(&out), want, "num_labels {n}");
    }
    for n in [1, 1025, usize::MAX] {
        let (st, f) = c_new(&cls, n);
        assert_eq!((st, f.is_null()), (ELECTRA_ERR_INVALID_ARGUMENT, true), "num_labels {n}");
    }
    let (st, _) = c_new(&root.join("disc"), 1025);
    assert_eq!(st, ELECTRA_ERR_INVALID_ARGUMENT);
    let _ = std::fs::remove_dir_all(&root);
}

/// Too many labels, or a name too long, fail at creation in the library, and in the CLI before
/// the first epoch and without writing the output directory.
#[test]
fn label_limits_fail_before_training() {
    let root = tmp("limits");
    let cls = hf_classifier(&root);
    let disc = root.join("disc");
    let many: Vec<String> = (0..=electra::limits::MAX_LABELS).map(|i| format!("l{i}")).collect();
    let long = "x".repeat(electra::limits::MAX_LABEL_BYTES + 1);
    for dir in [&disc, &cls] {
        let e = FineTuner::new(dir, &many, FinetuneOptions::default()).err().expect("too many labels");
        assert!(e.to_string().contains("at most 1024"), "{e}");
        let e = FineTuner::new(dir, &["a".into(), long.clone()], FinetuneOptions::default()).err().expect("long");
        assert!(e.to_string().contains("at most 128 bytes"), "{e}");
    }
    // The classifier's 2 labels plus 1023 new ones.
    let e = FineTuner::new(&cls, &many[..1023], FinetuneOptions::default()).err().expect("too many with existing");
    assert!(e.to_string().contains("at most 1024"), "{e}");
    assert_eq!(FineTuner::new(&cls, &many[..1022], FinetuneOptions::default()).unwrap().num_labels(), 1024);

    let many_rows: Vec<(String, String)> = many.iter().map(|l| (l.clone(), "good".to_string())).collect();
    let long_rows = vec![("pos".to_string(), "good".to_string()), (long, "bad".to_string())];
    for (model, rows, needle) in [(&disc, &many_rows, "1024"), (&cls, &long_rows, "128 bytes")] {
        let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let train = tsv(&root, &rows);
        let out = root.join("never");
        let o = electra(&["finetune", "--model", s(model), "--train", s(&train), "--out", s(&out), "--epochs", "1"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains("epoch 1") && !err.contains("fine-tuning on"), "{err}");
        assert!(!out.exists());
    }
    let _ = std::fs::remove_dir_all(&root);
}
