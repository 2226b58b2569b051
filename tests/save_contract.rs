//! The save contract (docs/ROBUSTNESS.md, `io::atomic`), clause by clause, for every save: a
//! save writes only its own entries and never removes or replaces anything it did not write;
//! an existing non-directory is "not a directory"; a symbolic link to a directory saves into its
//! target; a failed save leaves the destination exactly as it was and no temporary behind (also
//! across filesystems); our temporaries are recognised by their marker, not by a name. The
//! user's files are compared byte for byte.

mod common;

use common::*;
use electra::ffi::model::*;
use electra::ffi::status::*;
use electra::ffi::*;
use electra::finetune::{FineTuner, FinetuneOptions};
use electra::hf;
use electra::io::atomic::{self, CommitStep};
use electra::pretrain::{TrainOptions, Trainer};
use electra::{Error, Model};
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-save-contract-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Every entry under `root` (not following links), by relative path.
fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, Entry>) {
        for e in std::fs::read_dir(root.join(rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let key = r.to_string_lossy().into_owned();
            let kind = e.file_type().unwrap();
            if kind.is_symlink() {
                out.insert(key, Entry::Link(std::fs::read_link(e.path()).unwrap()));
            } else if kind.is_dir() {
                out.insert(key, Entry::Dir);
                walk(root, &r, out);
            } else {
                out.insert(key, Entry::File(std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// Asserts every entry of `before` is still in `now`, unchanged.
fn assert_kept(before: &BTreeMap<String, Entry>, now: &BTreeMap<String, Entry>, what: &str) {
    for (k, v) in before {
        assert_eq!(now.get(k), Some(v), "{what}: the user's {k} changed or vanished");
    }
}

/// Our staging directories under `root`: an `.electra-save-*` directory with our journal (the
/// user's look-alike in [`user_files`] has another one).
fn temporaries(root: &Path) -> Vec<String> {
    snapshot(root)
        .into_iter()
        .filter(|(k, v)| {
            k.ends_with("/journal.json")
                && k.contains(".electra-save-")
                && matches!(v, Entry::File(b) if String::from_utf8_lossy(b).contains("a save in progress"))
        })
        .map(|(k, _)| k)
        .collect()
}

/// A directory full of things a user keeps beside a model: other models, settings, checkpoints
/// at depth, empty directories, dot files named like old temporaries, a look-alike of ours.
fn user_files(dir: &Path) {
    let w = |rel: &str, bytes: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    w("other_model/config.json", b"{\"mine\": true}");
    w("other_model/model.safetensors", b"not really safetensors");
    w("settings/config.json", b"{\"theme\": \"dark\"}");
    w("runs/a/b/trainer.safetensors", b"someone's checkpoint");
    w("discriminator/notes.txt", b"my notes on the discriminator");
    w(".cache.old-1", b"old");
    w(".config.json.tmp-2", b"tmp");
    w(".electra-save-999999999-0/journal.json", b"{\"looks\": \"like ours, but is not\"}");
    w(".electra-save-1-1", b"a file named like our temporaries");
    w("README", b"read me");
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::create_dir_all(dir.join("nested/empty")).unwrap();
}

fn train_opts() -> TrainOptions {
    TrainOptions {
        max_seq_len: 16,
        mask_token_id: 4,
        special_token_ids: vec![0, 1, 2, 3, 4],
        threads: 1,
        ..Default::default()
    }
}

fn trainer() -> Trainer {
    Trainer::from_model(pair(TINY_DISC, false, 5), train_opts()).unwrap()
}

fn disc_only() -> Model {
    let d = electra::ElectraConfig::from_json_str(TINY_DISC).unwrap();
    let mut m = Model::new(Some(d), None, false).unwrap();
    m.init_weights(3).unwrap();
    m
}

/// A classifier fine-tuner over a discriminator saved under `root`.
fn finetuner(root: &Path) -> FineTuner {
    let disc = root.join("disc-for-ft");
    hf::save_dir(&disc_only(), hf::Role::Discriminator, &disc).unwrap();
    FineTuner::new(&disc, &["neg".to_string(), "pos".to_string()], FinetuneOptions::default()).unwrap()
}

fn last_error() -> String {
    let mut buf = vec![0u8; 4096];
    unsafe { electra_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    CStr::from_bytes_until_nul(&buf).unwrap().to_string_lossy().into_owned()
}

type Save<'a> = (&'a str, Box<dyn Fn(&Path) -> electra::Result<()> + 'a>);

/// Every save of the library.
fn saves<'a>(t: &'a Trainer, ft: &'a FineTuner, m: &'a Model) -> Vec<Save<'a>> {
    vec![
        ("Trainer::save", Box::new(|d: &Path| t.save(d))),
        ("Trainer::export", Box::new(|d: &Path| t.export(d))),
        ("FineTuner::save", Box::new(|d: &Path| ft.save(d))),
        ("hf::save", Box::new(|d: &Path| hf::save(m, d))),
        ("hf::save_dir", Box::new(|d: &Path| hf::save_dir(m, hf::Role::Discriminator, d))),
        ("hf::save (int8)", Box::new(|d: &Path| hf::save(&electra::quant::quantize(m)?, d))),
    ]
}

fn is_kind(e: &Error, kind: std::io::ErrorKind) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == kind)
}

#[test]
fn a_path_to_an_existing_file_is_not_a_directory() {
    let root = tempdir("file");
    let (t, ft, m) = (trainer(), finetuner(&root), disc_only());
    for (name, save) in saves(&t, &ft, &m) {
        let f = root.join("precious.bin");
        std::fs::write(&f, b"the user's data").unwrap();
        let before = snapshot(&root);
        let e = save(&f).expect_err(name);
        assert!(
            is_kind(&e, std::io::ErrorKind::NotADirectory) && e.to_string().contains("not a directory"),
            "{name}: {e}"
        );
        assert_eq!(snapshot(&root), before, "{name}: nothing changed");
    }
    // Through the C ABI too.
    let f = root.join("precious.bin");
    let mut h = null_mut();
    let dir = CString::new(root.join("disc-for-ft").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { electra_model_load(dir.as_ptr(), &mut h) }, ELECTRA_OK);
    let before = snapshot(&root);
    let st = unsafe { electra_model_save(h, CString::new(f.to_str().unwrap()).unwrap().as_ptr()) };
    let msg = last_error();
    unsafe { electra_model_free(h) };
    assert_eq!(st, ELECTRA_ERR_IO, "{msg}");
    assert!(msg.contains("not a directory"), "{msg}");
    assert_eq!(snapshot(&root), before);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn every_save_keeps_the_users_files_byte_for_byte() {
    let root = tempdir("keep");
    let (t, ft, m) = (trainer(), finetuner(&root), disc_only());
    for (name, save) in saves(&t, &ft, &m) {
        let dir = root.join(format!("dest-{}", name.replace([':', ' ', '(', ')'], "_")));
        user_files(&dir);
        let before = snapshot(&dir);
        save(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        // And again over its own previous version.
        save(&dir).unwrap_or_else(|e| panic!("{name}, second save: {e}"));
        let now = snapshot(&dir);
        assert_kept(&before, &now, name);
        assert!(temporaries(&dir).is_empty(), "{name}: {:?}", temporaries(&dir));
        if name != "Trainer::save" {
            hf::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            Trainer::resume(&dir).unwrap();
        }
    }
    // Several different saves into one directory: each replaces only its own entries, and an
    // export without a generator removes the previous export's generator (ours), not the user's.
    let dir = root.join("mixed");
    user_files(&dir);
    let before = snapshot(&dir);
    t.save(&dir).unwrap();
    t.export(&dir).unwrap();
    assert!(dir.join("generator/model.safetensors").exists());
    hf::save(&m, &dir).unwrap();
    assert!(!dir.join("generator").exists(), "the old generator is gone with its directory");
    assert!(hf::load(&dir).unwrap().gen().is_none(), "no mixed pair");
    assert_kept(&before, &snapshot(&dir), "mixed");
    Trainer::resume(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_file_the_save_did_not_write_is_never_replaced() {
    let root = tempdir("refuse");
    let m = disc_only();
    // The user's own config.json where the save would write one.
    let dir = root.join("hf-download");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), b"{\"from\": \"somewhere else\"}").unwrap();
    std::fs::write(dir.join("model.safetensors"), b"weights").unwrap();
    let before = snapshot(&root);
    let e = hf::save_dir(&m, hf::Role::Discriminator, &dir).unwrap_err();
    assert!(is_kind(&e, std::io::ErrorKind::AlreadyExists) && e.to_string().contains("not written by electra"), "{e}");
    assert_eq!(snapshot(&root), before, "nothing changed");
    // A regular file where the save needs a directory.
    let dir = root.join("pair");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("generator"), b"a file named generator").unwrap();
    let before = snapshot(&root);
    let e = trainer().export(&dir).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert_eq!(snapshot(&root), before, "nothing changed");
    // A file of ours that the user changed since is theirs now.
    let dir = root.join("changed");
    hf::save_dir(&m, hf::Role::Discriminator, &dir).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"the user's edit").unwrap();
    let before = snapshot(&root);
    hf::save_dir(&m, hf::Role::Discriminator, &dir).unwrap_err();
    assert_eq!(snapshot(&root), before, "nothing changed");
    // Our manifest's name on a file that is not ours.
    let dir = root.join("fake-manifest");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(atomic::MANIFEST), b"{}").unwrap();
    let before = snapshot(&root);
    hf::save_dir(&m, hf::Role::Discriminator, &dir).unwrap_err();
    assert_eq!(snapshot(&root), before, "nothing changed");
    assert!(temporaries(&root).is_empty());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_symlink_to_a_directory_saves_into_its_target() {
    let root = tempdir("link");
    let real = root.join("real");
    user_files(&real);
    let before = snapshot(&real);
    let link = root.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let t = trainer();
    t.export(&link).unwrap();
    t.export(&link).unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is still a link");
    assert!(real.join("discriminator/model.safetensors").is_file());
    assert_kept(&before, &snapshot(&real), "through a link");
    hf::load(&link).unwrap();
    hf::load(&real).unwrap();
    // A path without a last name of its own (`..`, as `.` or `/` would be) names an existing
    // directory, which is saved into.
    let up = real.join("empty").join("..");
    hf::save_dir(&disc_only(), hf::Role::Discriminator, &up).unwrap();
    assert!(real.join("config.json").is_file());
    assert_kept(&before, &snapshot(&real), "through ..");
    // A link to nothing is an error, and stays as it was.
    let dangling = root.join("dangling");
    std::os::unix::fs::symlink(root.join("nowhere"), &dangling).unwrap();
    t.export(&dangling).unwrap_err();
    assert!(!root.join("nowhere").exists());
    assert!(temporaries(&root).is_empty());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_failed_save_leaves_the_destination_exactly_as_it_was() {
    let root = tempdir("fail");
    let dir = root.join("model");
    user_files(&dir);
    let mut t = trainer();
    t.export(&dir).unwrap();
    t.save(&dir).unwrap();
    let base = t.weights().unwrap().to_vec();
    t.set_weights(&base.iter().map(|x| x + 1.0).collect::<Vec<_>>()).unwrap();
    let before = snapshot(&root);
    // The disk fills up half-way through the new files.
    atomic::simulate_write_failure(Some("generator/model.safetensors"));
    let e = t.export(&dir).unwrap_err();
    atomic::simulate_write_failure(None);
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert_eq!(snapshot(&root), before, "write failure");
    // Non-finite weights.
    let mut bad = base.clone();
    bad[7] = f32::NAN;
    t.set_weights(&bad).unwrap();
    assert!(matches!(t.export(&dir).unwrap_err(), Error::NonFinite(_)));
    assert!(matches!(t.save(&dir).unwrap_err(), Error::NonFinite(_)));
    assert_eq!(snapshot(&root), before, "non-finite");
    // A new destination under new parents: the parents go again too.
    let deep = root.join("x/y/z");
    t.export(&deep).unwrap_err();
    assert!(!root.join("x").exists(), "the parents this save created are removed");
    assert_eq!(snapshot(&root), before, "new parents");
    t.set_weights(&base).unwrap();
    // Across filesystems: the generator's directory is a link onto another filesystem (a tmpfs),
    // so its renames would fail half-way: refused before any change.
    let shm = Path::new("/dev/shm");
    use std::os::unix::fs::MetadataExt;
    if shm.is_dir() && std::fs::metadata(shm).unwrap().dev() != std::fs::metadata(&root).unwrap().dev() {
        let elsewhere = shm.join(format!("electra-save-contract-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&elsewhere);
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("theirs.txt"), b"on another disk").unwrap();
        let dir2 = root.join("across");
        std::fs::create_dir_all(&dir2).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir2.join("generator")).unwrap();
        let (b1, b2) = (snapshot(&root), snapshot(&elsewhere));
        let e = t.export(&dir2).unwrap_err();
        assert!(is_kind(&e, std::io::ErrorKind::CrossesDevices), "{e}");
        assert_eq!(snapshot(&root), b1, "across filesystems: here");
        assert_eq!(snapshot(&elsewhere), b2, "across filesystems: there");
        let _ = std::fs::remove_dir_all(&elsewhere);
    } else {
        eprintln!("NOT RUN: no second filesystem at /dev/shm for the cross-filesystem case");
    }
    assert!(temporaries(&root).is_empty());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_crash_mid_save_is_finished_by_the_next_load_and_never_touches_user_files() {
    let root = tempdir("crash");
    let dir = root.join("model");
    user_files(&dir);
    let mut t = trainer();
    let base = t.weights().unwrap().to_vec();
    t.export(&dir).unwrap();
    let before = snapshot(&dir);
    let old = snapshot(&dir.join("discriminator"));
    t.set_weights(&base.iter().map(|x| x * 0.5).collect::<Vec<_>>()).unwrap();
    for at in [CommitStep::AfterFill, CommitStep::BeforeSwap, CommitStep::MidSwap, CommitStep::BeforeRemoveOld] {
        atomic::simulate_crash(Some(at));
        let r = t.export(&dir);
        atomic::simulate_crash(None);
        assert!(r.is_err(), "{at:?}");
        // The staging directory of the "killed" save is there until the next load.
        assert!(!temporaries(&dir).is_empty(), "{at:?}");
        let loaded = hf::load(&dir).unwrap_or_else(|e| panic!("{at:?}: {e}"));
        assert!(loaded.gen().is_some() && loaded.disc().is_some(), "{at:?}");
        assert!(temporaries(&dir).is_empty(), "{at:?}: finished or removed by the load");
        // Old (nothing moved yet) or new (rolled forward): never a mix of the two towers.
        let now = snapshot(&dir.join("discriminator"));
        let disc_old = now.get("model.safetensors") == old.get("model.safetensors");
        // Once the moves are journaled, a crash is rolled forward.
        let rolled = at != CommitStep::AfterFill;
        assert_eq!(disc_old, !rolled, "{at:?}");
        assert_kept(
            &before
                .iter()
                .filter(|(k, _)| {
                    !k.starts_with("discriminator/") && !k.starts_with("generator/") && !k.starts_with('.')
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            &snapshot(&dir),
            &format!("{at:?}"),
        );
        assert_eq!(snapshot(&dir).get("discriminator/notes.txt"), before.get("discriminator/notes.txt"));
        t.export(&dir).unwrap();
    }
    // A stale staging directory of a dead process with our journal is ours and goes; the user's
    // look-alike stays.
    let stale = dir.join(".electra-save-999999998-3");
    std::fs::create_dir_all(stale.join("new")).unwrap();
    std::fs::write(
        stale.join("journal.json"),
        r#"{"magic": "electra: a save in progress (removed or finished by the next save or load)", "pid": 999999998, "target": "", "phase": "filling"}"#,
    )
    .unwrap();
    t.export(&dir).unwrap();
    assert!(!stale.exists(), "our stale temporary is removed");
    assert!(dir.join(".electra-save-999999999-0/journal.json").exists(), "the look-alike is kept");
    let _ = std::fs::remove_dir_all(&root);
}

/// `electra quantize --out` and `electra finetune --out` through the command line.
#[test]
fn the_cli_saves_keep_the_users_files() {
    let root = tempdir("cli");
    let exe = env!("CARGO_BIN_EXE_electra");
    let model = root.join("model");
    hf::save_dir(&disc_only(), hf::Role::Discriminator, &model).unwrap();
    // --out naming an existing file.
    let f = root.join("notes.txt");
    std::fs::write(&f, b"keep me").unwrap();
    let before = snapshot(&root);
    let out = std::process::Command::new(exe)
        .args(["quantize", "--model", model.to_str().unwrap(), "--out", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(snapshot(&root), before);
    // --out a directory holding other models.
    let models = root.join("models");
    user_files(&models);
    let before = snapshot(&models);
    let out = std::process::Command::new(exe)
        .args(["quantize", "--model", model.to_str().unwrap(), "--out", models.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_kept(&before, &snapshot(&models), "quantize --out models/");
    hf::load(&models).unwrap();
    // `finetune --out models/`, twice: the classifier (with its tokenizer and report) lands
    // beside the other models, which stay byte for byte.
    let disc = root.join("disc");
    hf::save_dir(&disc_only(), hf::Role::Discriminator, &disc).unwrap();
    // The tiny config's 60 entries: the special tokens, four words, filler.
    let mut words: Vec<String> =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "bad", "awful", "movie"]
            .map(String::from)
            .into();
    words.extend((words.len()..60).map(|i| format!("w{i}")));
    std::fs::write(disc.join("vocab.txt"), words.join("\n") + "\n").unwrap();
    let train = root.join("train.tsv");
    std::fs::write(&train, "pos\tgood great movie\nneg\tbad awful movie\npos\tgreat\nneg\tawful\n").unwrap();
    let models = root.join("models-ft");
    user_files(&models);
    let before = snapshot(&models);
    for round in 0..2 {
        let out = std::process::Command::new(exe)
            .args(["finetune", "--model", disc.to_str().unwrap(), "--train", train.to_str().unwrap()])
            .args(["--out", models.to_str().unwrap(), "--epochs", "1", "--batch-size", "2", "--threads", "1"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        assert_kept(&before, &snapshot(&models), "finetune --out models/");
    }
    assert!(models.join("finetune.json").is_file() && models.join("tokenizer.json").is_file());
    hf::load(&models).unwrap();
    assert!(temporaries(&root).is_empty());
    let _ = std::fs::remove_dir_all(&root);
}
