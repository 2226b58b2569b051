//! Checkpoints and exports are committed as one unit: a failure or crash at every point of
//! `io::atomic::commit_dir` leaves the previous version or (once its moves are journaled) the new
//! one, loadable and complete (never a new discriminator beside an old generator); user files
//! survive; stale temporaries (recognised by their journal) are removed; empty paths,
//! non-finite values and out-of-range counters are refused. tests/save_contract.rs checks the
//! save contract clause by clause.

mod common;

use electra::hf;
use electra::io::atomic::{self, CommitStep};
use electra::io::safetensors::TensorFile;
use electra::pretrain::{TrainOptions, Trainer};
use electra::{Error, Model};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-ckpt-atomic-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn trainer() -> Trainer {
    let m = common::pair(common::TINY_DISC, false, 5);
    let opts = TrainOptions {
        max_seq_len: 16,
        mask_token_id: 4,
        special_token_ids: vec![0, 1, 2, 3, 4],
        threads: 1,
        ..Default::default()
    };
    Trainer::from_model(m, opts).unwrap()
}

/// Makes version `k` of the trainer: every weight shifted by `k`, step `k`.
fn set_version(t: &mut Trainer, base: &[f32], k: u64) {
    let w: Vec<f32> = base.iter().map(|x| x + k as f32).collect();
    t.set_weights(&w).unwrap();
    t.step = k;
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

const STEPS: [CommitStep; 4] =
    [CommitStep::AfterFill, CommitStep::BeforeSwap, CommitStep::MidSwap, CommitStep::BeforeRemoveOld];

/// Which version a crash at `at` must leave: the new one once its moves are journaled (the next
/// load rolls them forward).
fn survivor(at: CommitStep) -> u64 {
    if at == CommitStep::AfterFill {
        1
    } else {
        2
    }
}

#[test]
fn a_crash_at_every_point_of_a_checkpoint_leaves_a_complete_one() {
    {
        for at in STEPS {
            let root = tempdir(&format!("ckpt-{at:?}"));
            let dir = root.join("checkpoint");
            let mut t = trainer();
            let base = t.weights().unwrap().to_vec();
            set_version(&mut t, &base, 1);
            t.save(&dir).unwrap();
            set_version(&mut t, &base, 2);
            atomic::simulate_crash(Some(at));
            let r = t.save(&dir);
            atomic::simulate_crash(None);
            assert!(r.is_err(), "{at:?}: {r:?}");
            let want = survivor(at);
            let back = Trainer::resume(&dir).unwrap_or_else(|e| panic!("{at:?}: {e}"));
            assert_eq!(back.step, want, "{at:?}");
            let mut expect = trainer();
            set_version(&mut expect, &base, want);
            assert_eq!(bits(&back.weights().unwrap()), bits(&expect.weights().unwrap()), "{at:?}");
            // And the next save works and is the one loaded.
            set_version(&mut t, &base, 3);
            t.save(&dir).unwrap();
            assert_eq!(Trainer::resume(&dir).unwrap().step, 3);
            let _ = std::fs::remove_dir_all(&root);
        }
    }
}

/// Loads `dir` and returns every tensor of each tower's file, by tower.
fn export_contents(dir: &Path) -> HashMap<String, Vec<u32>> {
    let mut out = HashMap::new();
    for tower in ["discriminator", "generator"] {
        let f = TensorFile::read(&dir.join(tower).join("model.safetensors")).unwrap();
        for (name, t) in f.tensors {
            out.insert(format!("{tower}/{name}"), bits(&t.data));
        }
    }
    out
}

#[test]
fn a_mixed_pair_is_impossible() {
    let root = tempdir("pair");
    let dir = root.join("final");
    let mut t = trainer();
    let base = t.weights().unwrap().to_vec();
    set_version(&mut t, &base, 1);
    t.export(&dir).unwrap();
    let old = export_contents(&dir);
    set_version(&mut t, &base, 2);
    // The disk fills up while the generator is written, after the discriminator.
    atomic::simulate_write_failure(Some("generator/model.safetensors"));
    let err = t.export(&dir).unwrap_err();
    atomic::simulate_write_failure(None);
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(export_contents(&dir), old, "the old pair is intact");
    hf::load(&dir).unwrap();
    {
        for at in STEPS {
            atomic::simulate_crash(Some(at));
            let _ = t.export(&dir);
            atomic::simulate_crash(None);
            hf::load(&dir).unwrap_or_else(|e| panic!("{at:?}: {e}"));
            let now = export_contents(&dir);
            let disc_new = now["discriminator/electra.embeddings.LayerNorm.bias"]
                != old["discriminator/electra.embeddings.LayerNorm.bias"];
            let gen_new = now["generator/electra.embeddings.LayerNorm.bias"]
                != old["generator/electra.embeddings.LayerNorm.bias"];
            assert_eq!(disc_new, gen_new, "{at:?}: a mixed pair");
            // Back to the old version for the next case.
            set_version(&mut t, &base, 1);
            t.export(&dir).unwrap();
            set_version(&mut t, &base, 2);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn user_files_survive_an_export_and_old_towers_do_not() {
    let root = tempdir("carry");
    let dir = root.join("model");
    let t = trainer();
    t.export(&dir).unwrap();
    std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
    std::fs::write(dir.join("discriminator").join("vocab.txt"), "[PAD]\n").unwrap();
    t.export(&dir).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("tokenizer.json")).unwrap(), "{}");
    assert_eq!(std::fs::read_to_string(dir.join("discriminator/vocab.txt")).unwrap(), "[PAD]\n");
    // A lone discriminator exported over the pair: the old generator's model files go.
    let disc = Model::new(Some(t.towers().disc().unwrap().config.clone()), None, false).unwrap();
    hf::save(&disc, &dir).unwrap();
    assert!(!dir.join("generator").exists(), "no old generator beside the new discriminator");
    assert!(hf::load(&dir).unwrap().gen().is_none());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn stale_temporaries_of_dead_processes_are_removed_by_the_next_save() {
    let root = tempdir("stale");
    let dir = root.join("checkpoint");
    let t = trainer();
    t.save(&dir).unwrap();
    let journal = |pid: u32, target: &str| {
        format!(
            r#"{{"magic": "electra: a save in progress (removed or finished by the next save or load)", "pid": {pid}, "target": "{target}", "phase": "filling"}}"#
        )
    };
    // PIDs above the kernel's pid_max (at most 2^22) belong to no process.
    let dead = 999_999_999u32;
    let stage = |dir: &Path, name: &str, body: Option<String>| {
        let d = dir.join(name);
        std::fs::create_dir_all(d.join("new")).unwrap();
        std::fs::write(d.join("new/trainer.safetensors"), vec![0u8; 1000]).unwrap();
        if let Some(j) = body {
            std::fs::write(d.join("journal.json"), j).unwrap();
        }
        d
    };
    // Ours, of a dead process: beside the directory (a first save) and inside it.
    let beside = stage(&root, &format!(".electra-save-{dead}-0"), Some(journal(dead, "checkpoint")));
    let inside = stage(&dir, &format!(".electra-save-{dead}-1"), Some(journal(dead, "")));
    // Ours, of a live process: left alone.
    let live = stage(&root, ".electra-save-1-7", Some(journal(1, "checkpoint")));
    // Named like ours (old and new patterns) but without our journal: the user's.
    let users = [
        stage(&root, &format!(".electra-save-{dead}-2"), None),
        stage(&root, &format!(".checkpoint.tmp-{dead}-0"), None),
        stage(&dir, &format!(".trainer.safetensors.tmp-{dead}"), Some("{}".into())),
    ];
    t.save(&dir).unwrap();
    assert!(!beside.exists() && !inside.exists(), "stale temporaries of ours are removed");
    assert!(live.exists(), "a live process's temporary is left alone");
    for u in users {
        assert!(u.join("new/trainer.safetensors").exists(), "{} is the user's", u.display());
    }
    Trainer::resume(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn empty_paths_are_invalid_arguments() {
    let t = trainer();
    let m = t.model().unwrap();
    let empty = Path::new("");
    let errs = [
        t.save(empty).unwrap_err(),
        t.export(empty).unwrap_err(),
        hf::save(&m, empty).unwrap_err(),
        hf::save_dir(&m, hf::Role::Discriminator, empty).unwrap_err(),
        Trainer::resume(empty).err().unwrap(),
        hf::load(empty).err().unwrap(),
    ];
    for e in errs {
        assert!(matches!(&e, Error::InvalidArgument(msg) if msg.contains("path is empty")), "{e}");
    }
}

#[test]
fn non_finite_weights_and_bad_moments_are_never_saved() {
    let root = tempdir("nonfinite");
    let (ckpt, export) = (root.join("checkpoint"), root.join("final"));
    let mut t = trainer();
    t.save(&ckpt).unwrap();
    t.export(&export).unwrap();
    let before = std::fs::read(ckpt.join("trainer.safetensors")).unwrap();
    let good = t.weights().unwrap().to_vec();
    let mut w = good.clone();
    let info = t.params().infos()[3].clone();
    w[info.offset + 1] = f32::NAN;
    t.set_weights(&w).unwrap();
    for e in [t.save(&ckpt).unwrap_err(), t.export(&export).unwrap_err()] {
        assert!(matches!(&e, Error::NonFinite(msg) if msg.contains(info.name.split_once('.').unwrap().1)), "{e}");
    }
    let mut m = t.model().unwrap();
    let e = hf::save(&m, &export).unwrap_err();
    assert!(matches!(e, Error::NonFinite(_)), "{e}");
    m.params.data[0] = f32::INFINITY;
    assert!(matches!(hf::save(&m, &root.join("other")).unwrap_err(), Error::NonFinite(_)));
    assert!(!root.join("other").exists(), "nothing written");
    t.set_weights(&good).unwrap();
    let n = good.len();
    let mut v = vec![0.0; n];
    v[info.offset] = -1e-3;
    t.set_moments(&vec![0.0; n], &v).unwrap();
    let e = t.save(&ckpt).unwrap_err();
    assert!(matches!(&e, Error::NonFinite(msg) if msg.contains(&format!("adam_v/{}", info.name))), "{e}");
    assert_eq!(std::fs::read(ckpt.join("trainer.safetensors")).unwrap(), before, "checkpoint unchanged");
    hf::load(&export).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

/// Overwrites element 0 of tensor `name` in the safetensors file `path` with `value`.
fn patch(path: &Path, name: &str, value: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize + 8 + n;
    bytes[start..start + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn non_finite_values_and_negative_moments_in_files_are_refused_on_load() {
    let root = tempdir("load-nonfinite");
    let t = trainer();
    let name = t.params().infos()[2].name.clone();
    for (prefix, value) in [("param", f32::NAN), ("adam_m", f32::INFINITY), ("adam_v", -1.0)] {
        let dir = root.join(prefix);
        t.save(&dir).unwrap();
        patch(&dir.join("trainer.safetensors"), &format!("{prefix}/{name}"), value);
        let e = Trainer::resume(&dir).err().unwrap();
        assert!(matches!(&e, Error::Format { msg, .. } if msg.contains(&format!("{prefix}/{name}"))), "{e}");
    }
    let export = root.join("final");
    t.export(&export).unwrap();
    patch(&export.join("generator/model.safetensors"), "generator_predictions.dense.bias", f32::NAN);
    let e = hf::load(&export).err().unwrap();
    assert!(matches!(&e, Error::Format { msg, .. } if msg.contains("generator_predictions.dense.bias")), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Rewrites the trainer state of a checkpoint through `edit`, and its tensors through `extra`.
fn rewrite(dir: &Path, edit: impl FnOnce(&mut serde_json::Value), extra: Option<&str>) {
    let path = dir.join("trainer.safetensors");
    let meta = TensorFile::read_metadata(&path).unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&meta["electra_trainer"]).unwrap();
    edit(&mut state);
    let file = TensorFile::read(&path).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> =
        file.tensors.iter().map(|(n, t)| (n.clone(), t.shape.clone(), t.data.as_slice())).collect();
    let one = [1.0f32];
    if let Some(name) = extra {
        tensors.push((name.to_string(), vec![1], &one));
    }
    std::fs::remove_file(&path).unwrap();
    electra::io::safetensors::write_f32_with_metadata(
        &path,
        &tensors,
        &[("electra_trainer", serde_json::to_string(&state).unwrap())],
    )
    .unwrap();
}

/// An edit of a checkpoint's trainer state.
type Edit = dyn Fn(&mut serde_json::Value);

#[test]
fn out_of_range_counters_and_unknown_tensors_are_refused_on_resume() {
    let root = tempdir("counters");
    let t = trainer();
    let cases: [(&str, Box<Edit>, Option<&str>, &str); 4] = [
        ("step", Box::new(|s| s["step"] = serde_json::json!(u64::MAX)), None, "step 18446744073709551615"),
        ("version", Box::new(|s| s["format_version"] = serde_json::json!(7)), None, "format 7"),
        ("cursor", Box::new(|s| s["data_cursor"] = serde_json::json!(12)), None, "data_cursor"),
        ("extra", Box::new(|_| {}), Some("param/discriminator.bogus"), "param/discriminator.bogus"),
    ];
    for (name, edit, extra, want) in cases {
        let dir = root.join(name);
        t.save(&dir).unwrap();
        Trainer::resume(&dir).unwrap();
        rewrite(&dir, edit, extra);
        let e = Trainer::resume(&dir).err().unwrap();
        assert!(matches!(&e, Error::Format { msg, .. } if msg.contains(want)), "{name}: {e}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_step_counter_never_wraps() {
    let mut t = trainer();
    let ids: Vec<i32> = vec![2, 5, 6, 7, 8, 9, 10, 3];
    let b =
        electra::session::Batch { input_ids: &ids, attention_mask: None, token_type_ids: None, batch: 1, seq_len: 8 };
    t.train_step(&b).unwrap();
    t.step = u64::MAX;
    let w = bits(&t.weights().unwrap());
    let e = t.train_step(&b).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(msg) if msg.contains("step counter")), "{e}");
    assert_eq!(t.step, u64::MAX);
    assert_eq!(bits(&t.weights().unwrap()), w, "nothing updated");
}

#[test]
fn a_checkpoint_whose_stored_config_is_huge_is_refused_before_allocating() {
    let root = tempdir("huge-config");
    let t = trainer();
    for (key, value) in [
        ("hidden_size", serde_json::json!(1_000_000_000u64)),
        ("vocab_size", serde_json::json!(1_000_000_000u64)),
        ("num_hidden_layers", serde_json::json!(u64::MAX)),
        ("intermediate_size", serde_json::json!(1u64 << 61)),
    ] {
        let dir = root.join(key);
        t.save(&dir).unwrap();
        rewrite(
            &dir,
            |s| {
                for tower in ["discriminator_config", "generator_config"] {
                    if s[tower].is_object() {
                        s[tower][key] = value.clone();
                    }
                }
            },
            None,
        );
        // An abort here ("memory allocation of ... bytes failed") would kill the test process.
        let e = Trainer::resume(&dir).err().unwrap();
        assert!(matches!(&e, Error::Config(_) | Error::Format { .. } | Error::OutOfMemory(_)), "{key}: {e}");
        assert!(e.to_string().contains(key) || matches!(e, Error::OutOfMemory(_)), "{key}: {e}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
