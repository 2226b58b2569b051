//! Strict loading: tensors a file holds that the config does not account for are an error,
//! unless `allow_unused_tensors` is given (Rust `hf::LoadOptions`, C
//! `electra_model_load_with_options`). Names HF itself drops silently stay accepted. Loading from
//! memory (`hf::load_from_memory`, C `electra_model_load_from_memory`) is as strict and gives
//! the same model, and a file truncated while it is read is a format error.

use electra::ffi::model::*;
use electra::ffi::status::*;
use electra::hf::{self, LoadOptions};
use electra::io::safetensors::{write_f32, TensorFile, TensorIndex};
use electra::Error;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;

fn fixture(parts: &[&str]) -> PathBuf {
    parts.iter().fold(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"), |p, s| p.join(s))
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-strict-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy of the 2-layer discriminator fixture whose config says 1 layer.
fn one_layer_config_over_two_layers(name: &str) -> PathBuf {
    let src = fixture(&["emb_lt_hidden", "discriminator"]);
    let dir = tempdir(name);
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["num_hidden_layers"], 2);
    cfg["num_hidden_layers"] = 1.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

#[test]
fn a_config_with_fewer_layers_than_the_file_is_refused() {
    let dir = one_layer_config_over_two_layers("layers");
    let e = hf::load(&dir).err().unwrap();
    let Error::Format { msg, .. } = &e else { panic!("{e}") };
    for part in
        ["model.safetensors has 16 tensors", "electra.encoder.layer.1.", "num_hidden_layers=1", "allow_unused_tensors"]
    {
        assert!(msg.contains(part), "{msg} lacks {part}");
    }
    let m = hf::load_with(&dir, &LoadOptions { allow_unused_tensors: true, ..Default::default() }).unwrap();
    assert_eq!(m.disc().unwrap().config.num_hidden_layers, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites `dir/model.safetensors` with one more tensor.
fn add_tensor(dir: &Path, name: &str) {
    let path = dir.join("model.safetensors");
    let file = TensorFile::read(&path).unwrap();
    let one = [1.0f32];
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> =
        file.tensors.iter().map(|(n, t)| (n.clone(), t.shape.clone(), t.data.as_slice())).collect();
    tensors.push((name.to_string(), vec![1], &one));
    write_f32(&path, &tensors).unwrap();
}

#[test]
fn unknown_tensors_are_refused_in_each_tower_of_a_pair() {
    for tower in ["discriminator", "generator"] {
        let dir = tempdir(tower);
        for t in ["discriminator", "generator"] {
            std::fs::create_dir(dir.join(t)).unwrap();
            for f in ["config.json", "model.safetensors"] {
                std::fs::copy(fixture(&["emb_eq_hidden", t, f]), dir.join(t).join(f)).unwrap();
            }
        }
        hf::load(&dir).unwrap();
        add_tensor(&dir.join(tower), "electra.pooler.dense.weight");
        let e = hf::load(&dir).err().unwrap();
        assert!(matches!(&e, Error::Format { msg, .. } if msg.contains("electra.pooler.dense.weight")), "{e}");
        hf::load_with(&dir, &LoadOptions { allow_unused_tensors: true, ..Default::default() }).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn names_hf_drops_silently_are_accepted() {
    // The fixture carries electra.embeddings.position_ids and an untied generator_lm_head.weight
    // under a tied config, as old HF checkpoints do.
    hf::load(&fixture(&["emb_lt_hidden", "generator_untied_file"])).unwrap();
    let dir = tempdir("buffers");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(&["relu_act", "discriminator", f]), dir.join(f)).unwrap();
    }
    add_tensor(&dir, "electra.embeddings.token_type_ids");
    hf::load(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn c_load(path: &Path, options: Option<&str>) -> (electra_status, *mut electra_model) {
    let p = CString::new(path.to_str().unwrap()).unwrap();
    let o = options.map(|s| CString::new(s).unwrap());
    let mut out = null_mut();
    // SAFETY: both strings are NUL-terminated and alive for the call; `out` is a valid pointer.
    let st = unsafe {
        electra_model_load_with_options(p.as_ptr(), o.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()), &mut out)
    };
    (st, out)
}

#[test]
fn the_c_abi_loads_strictly_unless_told_otherwise() {
    let dir = one_layer_config_over_two_layers("ffi");
    for opts in [None, Some(""), Some("{}"), Some(r#"{"allow_unused_tensors": false}"#)] {
        let (st, out) = c_load(&dir, opts);
        assert_eq!((st, out.is_null()), (ELECTRA_ERR_FORMAT, true), "{opts:?}");
    }
    let (st, out) = c_load(&dir, Some(r#"{"allow_unused_tensors": 1}"#));
    assert_eq!((st, out.is_null()), (ELECTRA_ERR_INVALID_ARGUMENT, true));
    let (st, out) = c_load(&dir, Some(r#"{"allow_unused": true}"#));
    assert_eq!((st, out.is_null()), (ELECTRA_ERR_INVALID_ARGUMENT, true));
    let (st, out) = c_load(&dir, Some(r#"{"allow_unused_tensors": true}"#));
    assert_eq!(st, ELECTRA_OK);
    assert!(!out.is_null());
    // SAFETY: `out` is a live model from the call above, freed once.
    unsafe { electra_model_free(out) };
    let p = CString::new(dir.to_str().unwrap()).unwrap();
    let mut out = null_mut();
    // SAFETY: as above.
    assert_eq!(unsafe { electra_model_load(p.as_ptr(), &mut out) }, ELECTRA_ERR_FORMAT);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The last error message of this thread.
fn last_error() -> String {
    let mut buf = vec![0u8; 1024];
    // SAFETY: `buf` holds `buf.len()` writable bytes.
    let n = unsafe { electra::ffi::electra_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    String::from_utf8_lossy(&buf[..n.min(buf.len() - 1)]).into_owned()
}

/// Options JSON that is valid JSON but not an object is refused by every C function that takes
/// options (serde alone would read `[]` as a struct of defaults), with a message saying so.
#[test]
fn options_json_must_be_an_object() {
    use electra::ffi::finetune::*;
    use electra::ffi::session::*;
    use electra::ffi::trainer::*;
    let disc = fixture(&["emb_lt_hidden", "discriminator"]);
    let pair = fixture(&["emb_lt_hidden"]);
    let (st, model) = c_load(&disc, None);
    assert_eq!(st, ELECTRA_OK);
    let (d, p) = (CString::new(disc.to_str().unwrap()).unwrap(), CString::new(pair.to_str().unwrap()).unwrap());
    for bad in ["[]", "[1]", "3", "\"x\"", "null", "true", " [ ] "] {
        let o = CString::new(bad).unwrap();
        let mut statuses = Vec::new();
        let (st, m) = c_load(&disc, Some(bad));
        assert!(m.is_null());
        statuses.push(("electra_model_load_with_options", st, last_error()));
        let mut s = null_mut();
        // SAFETY: live model, valid strings and out pointers, here and below.
        let st = unsafe { electra_session_new_with_options(model, o.as_ptr(), &mut s) };
        statuses.push(("electra_session_new_with_options", st, last_error()));
        let mut t = null_mut();
        // SAFETY: as above.
        let st = unsafe { electra_trainer_new(p.as_ptr(), o.as_ptr(), &mut t) };
        statuses.push(("electra_trainer_new", st, last_error()));
        // SAFETY: as above.
        let st = unsafe { electra_trainer_resume_with_options(p.as_ptr(), o.as_ptr(), &mut t) };
        statuses.push(("electra_trainer_resume_with_options", st, last_error()));
        let mut f = null_mut();
        // SAFETY: as above.
        let st = unsafe { electra_finetuner_new(d.as_ptr(), 2, o.as_ptr(), &mut f) };
        statuses.push(("electra_finetuner_new", st, last_error()));
        assert!(s.is_null() && t.is_null() && f.is_null(), "{bad}");
        for (what, st, msg) in statuses {
            assert_eq!(st, ELECTRA_ERR_INVALID_ARGUMENT, "{what}({bad}): {msg}");
            assert!(msg.contains("expected a JSON object"), "{what}({bad}): {msg}");
        }
    }
    // The Rust parsers say the same.
    for bad in ["[]", "0", "null"] {
        let e = LoadOptions::from_json(Some(bad)).unwrap_err().to_string();
        assert!(e.contains("expected a JSON object"), "{e}");
        let e = electra::SessionOptions::from_json(Some(bad)).unwrap_err().to_string();
        assert!(e.contains("expected a JSON object"), "{e}");
    }
    // SAFETY: live model, freed once.
    unsafe { electra_model_free(model) };
}

/// An int8 directory whose config.json `quantization_config` has `edit` applied.
fn int8_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Result<electra::Model, Error> {
    let dir = tempdir(name);
    let q = hf::load_with(
        &fixture(&["emb_lt_hidden", "discriminator"]),
        &LoadOptions { quantize: electra::quant::WeightFormat::Int8, ..Default::default() },
    )
    .unwrap();
    let out = dir.join("m");
    hf::save(&q, &out).unwrap();
    let cfg_path = out.join("discriminator/config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    edit(&mut cfg["quantization_config"]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let r = hf::load(&out);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// `quantization_config` is read strictly: each field of the wrong JSON type is a format error
/// naming the field; an unknown version is refused; the file as written loads.
#[test]
fn quantization_config_types_are_strict() {
    assert!(int8_with("q-ok", |_| {}).unwrap().quant.is_some());
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("version", Box::new(|q| q["version"] = "1".into())),
        ("version", Box::new(|q| q["version"] = 1.5.into())),
        ("version", Box::new(|q| q["version"] = true.into())),
        ("version", Box::new(|q| q["version"] = serde_json::Value::Null)),
        ("version", Box::new(|q| q["version"] = serde_json::json!([1]))),
        ("version", Box::new(|q| drop(q.as_object_mut().unwrap().remove("version")))),
        ("quant_method", Box::new(|q| q["quant_method"] = 8.into())),
        ("bits", Box::new(|q| q["bits"] = "8".into())),
        ("bits", Box::new(|q| q["bits"] = 4.into())),
        ("weights", Box::new(|q| q["weights"] = serde_json::json!({}))),
        ("quantization_config", Box::new(|q| *q = "int8".into())),
    ];
    for (i, (field, edit)) in cases.into_iter().enumerate() {
        let e = int8_with(&format!("q{i}"), edit).err().unwrap_or_else(|| panic!("case {i} ({field}) loaded"));
        assert!(matches!(e, Error::Format { .. }), "case {i}: {e}");
        assert!(e.to_string().contains(field) && e.to_string().contains("config.json"), "case {i}: {e}");
    }
    let e = int8_with("q-v2", |q| q["version"] = 2.into()).expect_err("version 2");
    assert!(e.to_string().contains("version 2"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Loading from memory, and files that change while they load.

fn bits(m: &electra::Model) -> Vec<u32> {
    m.params.values().iter().map(|x| x.to_bits()).collect()
}

/// A random discriminator whose word table (30522 x 16) spans several 1 MiB reads, saved as one
/// HF directory.
fn multi_chunk_dir(name: &str) -> PathBuf {
    let cfg = electra::ElectraConfig::from_json_str(
        r#"{"vocab_size": 30522, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 32,
            "architectures": ["ElectraForPreTraining"]}"#,
    )
    .unwrap();
    let mut m = electra::Model::new(Some(cfg), None, false).unwrap();
    m.init_weights(5).unwrap();
    let dir = tempdir(name);
    hf::save_dir(&m, hf::Role::Discriminator, &dir).unwrap();
    dir
}

/// `load_from_memory` gives the model `load` gives, bit for bit (f32 and quantized at load), and
/// so does the C function.
#[test]
fn loading_from_memory_equals_loading_from_the_path() {
    let big = multi_chunk_dir("memory-equals-path");
    let dirs = [
        fixture(&["emb_lt_hidden", "discriminator"]),
        fixture(&["emb_lt_hidden", "generator"]),
        fixture(&["relu_act", "discriminator"]),
        big.clone(),
    ];
    for dir in &dirs {
        let config = std::fs::read(dir.join("config.json")).unwrap();
        let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
        for opts in [LoadOptions::default(), LoadOptions::from_json(Some(r#"{"quantize": "int8"}"#)).unwrap()] {
            let want = hf::load_with(dir, &opts).unwrap();
            let got = hf::load_from_memory(&config, &weights, &opts).unwrap();
            assert_eq!(bits(&got), bits(&want), "{}", dir.display());
            assert_eq!(got.quant.is_some(), opts.quantize == electra::quant::WeightFormat::Int8);
            if let (Some(a), Some(b)) = (&got.quant, &want.quant) {
                assert!(a.iter().zip(b.iter()).all(|((oa, wa), (ob, wb))| oa == ob && wa.q == wb.q));
            }
        }
        let mut out = null_mut();
        // SAFETY: both buffers are alive for the call with their lengths; `out` is valid.
        let st = unsafe {
            electra_model_load_from_memory(
                config.as_ptr(),
                config.len(),
                weights.as_ptr(),
                weights.len(),
                std::ptr::null(),
                &mut out,
            )
        };
        assert_eq!((st, out.is_null()), (ELECTRA_OK, false), "{}", dir.display());
        // SAFETY: a live model from the call above, freed once.
        unsafe { electra_model_free(out) };
    }
    let _ = std::fs::remove_dir_all(&big);
}

/// Empty, truncated, garbage and NULL buffers are refused before anything is allocated from
/// them, with the status the header documents and `*out` NULL.
#[test]
fn bad_buffers_are_refused() {
    let dir = fixture(&["emb_lt_hidden", "discriminator"]);
    let config = std::fs::read(dir.join("config.json")).unwrap();
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let cuts: &[(&str, Vec<u8>)] = &[
        ("empty", vec![]),
        ("four-bytes", weights[..4].to_vec()),
        ("header-only-half", weights[..8 + header_len / 2].to_vec()),
        ("header-only", weights[..8 + header_len].to_vec()),
        ("data-truncated", weights[..weights.len() - 100].to_vec()),
        ("one-byte-more", [&weights[..], &[0u8]].concat()),
        ("huge-header-length", [&u64::MAX.to_le_bytes()[..], &weights[8..]].concat()),
        ("garbage-header", [&weights[..8], &vec![b'!'; header_len][..], &weights[8 + header_len..]].concat()),
        ("garbage", (0..weights.len()).map(|i| (i * 7919 % 251) as u8).collect()),
    ];
    for (name, bytes) in cuts {
        let e = hf::load_from_memory(&config, bytes, &LoadOptions::default()).err().unwrap();
        assert!(matches!(&e, Error::Format { .. }) && e.to_string().contains("model.safetensors"), "{name}: {e}");
        let mut out = std::ptr::NonNull::<electra_model>::dangling().as_ptr();
        // SAFETY: the buffers are alive for the call with their lengths; `out` is valid.
        let st = unsafe {
            electra_model_load_from_memory(
                config.as_ptr(),
                config.len(),
                bytes.as_ptr(),
                bytes.len(),
                std::ptr::null(),
                &mut out,
            )
        };
        assert_eq!((st, out.is_null()), (ELECTRA_ERR_FORMAT, true), "{name}");
    }
    // A config that is empty, not UTF-8 or not an object.
    for cfg in [&b""[..], b"\xff\xfe", b"[]"] {
        let e = hf::load_from_memory(cfg, &weights, &LoadOptions::default()).err().unwrap();
        assert!(e.to_string().contains("config.json"), "{e}");
    }
    let c = |config: *const u8, weights_ptr: *const u8, out: *mut *mut electra_model| {
        // SAFETY: each pointer is NULL or valid for its length (the fixture's buffers).
        unsafe { electra_model_load_from_memory(config, 10, weights_ptr, weights.len(), std::ptr::null(), out) }
    };
    let mut out = std::ptr::NonNull::<electra_model>::dangling().as_ptr();
    assert_eq!(c(std::ptr::null(), weights.as_ptr(), &mut out), ELECTRA_ERR_NULL_POINTER);
    assert!(out.is_null());
    out = std::ptr::NonNull::<electra_model>::dangling().as_ptr();
    assert_eq!(c(config.as_ptr(), std::ptr::null(), &mut out), ELECTRA_ERR_NULL_POINTER);
    assert!(out.is_null());
    assert_eq!(c(config.as_ptr(), weights.as_ptr(), null_mut()), ELECTRA_ERR_NULL_POINTER);
    let o = CString::new(r#"{"quantize": "int4"}"#).unwrap();
    // SAFETY: the buffers are alive for the call with their lengths; `out` is valid.
    let st = unsafe {
        electra_model_load_from_memory(
            config.as_ptr(),
            config.len(),
            weights.as_ptr(),
            weights.len(),
            o.as_ptr(),
            &mut out,
        )
    };
    assert_eq!((st, out.is_null()), (ELECTRA_ERR_INVALID_ARGUMENT, true));
}

/// A file truncated after its header was validated (rewritten while loading) is a format error
/// naming the tensor, not a crash: the file is read, never mapped.
#[test]
fn a_file_truncated_while_loading_is_a_format_error() {
    let dir = multi_chunk_dir("truncated-while-loading");
    let path = dir.join("model.safetensors");
    let index = TensorIndex::open(&path).unwrap();
    let name = "electra.embeddings.word_embeddings.weight";
    let e = index.get(name).unwrap().clone();
    let mut all = vec![0f32; e.numel];
    index.read_f32(name, 0, &mut all).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
    let err = index.read_f32(name, 0, &mut all).unwrap_err();
    assert!(matches!(&err, Error::Format { .. }) && err.to_string().contains(name), "{err}");
    assert!(matches!(hf::load(&dir), Err(Error::Format { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}
