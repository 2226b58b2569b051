//! Shared test helpers: fixture loading and a comparison that reports the worst element.
#![allow(dead_code)]

use electra::io::safetensors::TensorFile;
use std::path::PathBuf;

/// The fixtures folder: `$ELECTRA_FIXTURES` when set (a test binary built here and run from a
/// copy of the repository on another machine, e.g. scripts/gpu-check.sh), else the path
/// compiled in.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("ELECTRA_FIXTURES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
    }
}

/// Path of a fixture case folder.
pub fn fixture(case: &str) -> PathBuf {
    fixtures_dir().join(case)
}

/// Every parity case the fixture script writes.
pub const CASES: &[&str] = &["emb_lt_hidden", "emb_eq_hidden", "gelu_new_act", "relu_act"];

/// Reads a fixture safetensors file.
pub fn read(case: &str, file: &str) -> TensorFile {
    TensorFile::read(&fixture(case).join(file)).unwrap_or_else(|e| panic!("{e}"))
}

/// Integer tensor as i32.
pub fn ints(f: &TensorFile, name: &str) -> Vec<i32> {
    f.get(name).unwrap().ints.iter().map(|&x| x as i32).collect()
}

/// Float tensor.
pub fn floats<'a>(f: &'a TensorFile, name: &str) -> &'a [f32] {
    &f.get(name).unwrap().data
}

/// Result of comparing `got` against `want`.
#[derive(Debug)]
pub struct Diff {
    pub max_abs: f32,
    pub max_rel: f32,
    pub worst: usize,
    pub ok: bool,
}

/// Elementwise |got - want| <= atol + rtol·|want|, with atol = floor·max|want| (a small
/// absolute floor relative to the tensor's scale, for elements near zero).
pub fn compare(got: &[f32], want: &[f32], rtol: f32, floor: f32) -> Diff {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let atol = floor * scale;
    let mut d = Diff { max_abs: 0.0, max_rel: 0.0, worst: 0, ok: true };
    let mut worst_excess = f32::NEG_INFINITY;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let rel = err / w.abs().max(1e-30);
        let excess = err - (atol + rtol * w.abs());
        if excess.is_nan() || excess > 0.0 {
            d.ok = false;
        }
        if excess > worst_excess || excess.is_nan() {
            worst_excess = excess;
            d.worst = i;
        }
        d.max_abs = d.max_abs.max(err);
        if w.abs() > atol {
            d.max_rel = d.max_rel.max(rel);
        }
    }
    d
}

/// Asserts closeness and prints the worst element either way (visible with --nocapture).
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, floor: f32) -> Diff {
    let d = compare(got, want, rtol, floor);
    println!(
        "{what}: max_abs {:.3e} max_rel(|want|>floor) {:.3e} worst[{}] got {} want {}",
        d.max_abs, d.max_rel, d.worst, got[d.worst], want[d.worst]
    );
    assert!(d.ok, "{what}: worst element {} got {} want {} ({d:?})", d.worst, got[d.worst], want[d.worst]);
    d
}

/// A fixture's inputs: ids, attention mask and token types, each `[b, t]`.
pub struct Inputs {
    pub ids: Vec<i32>,
    pub mask: Vec<i32>,
    pub types: Vec<i32>,
    pub b: usize,
    pub t: usize,
}

/// The inputs of fixture `case` and its expected-outputs file.
pub fn inputs(case: &str) -> (Inputs, TensorFile) {
    let f = read(case, "expected.safetensors");
    let shape = f.get("input_ids").unwrap().shape.clone();
    let i = Inputs {
        ids: ints(&f, "input_ids"),
        mask: ints(&f, "attention_mask"),
        types: ints(&f, "token_type_ids"),
        b: shape[0],
        t: shape[1],
    };
    (i, f)
}
pub mod dist;
pub mod forward_fixture;
pub mod reference;
pub mod train_fixture;

/// The discriminator config.json of the tiny pre-training tests (V=60, E=16, H=32, 2 layers).
pub const TINY_DISC: &str = r#"{"vocab_size": 60, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 32,
    "architectures": ["ElectraForPreTraining"]}"#;

/// A generator + discriminator pair from a discriminator config.json (the generator at half its
/// width, embeddings shared or not), initialised with `seed`.
pub fn pair(disc_json: &str, shared_embeddings: bool, seed: u64) -> electra::Model {
    let d = electra::ElectraConfig::from_json_str(disc_json).unwrap();
    let g = d.generator_config(0.5).unwrap();
    let mut m = electra::Model::new(Some(d), Some(g), shared_embeddings).unwrap();
    m.init_weights(seed).unwrap();
    m
}
