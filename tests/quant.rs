//! int8 models (src/quant.rs): quantizing, the file format, loading it (and refusing corrupt
//! ones), inference close to f32 on the PyTorch fixtures, identical results for a saved int8
//! model and one quantized at load and for any thread count, and the refusal to train one.

mod common;
use common::forward_fixture::batch;
use common::*;
use electra::hf::{self, LoadOptions};
use electra::io::safetensors::{write_tensors, TensorFile, Values};
use electra::quant::{self, WeightFormat};
use electra::session::{Session, SessionOptions};
use electra::{Error, Model};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-quant-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn int8() -> LoadOptions {
    LoadOptions { quantize: WeightFormat::Int8, ..Default::default() }
}

/// Cosine similarity and the largest |a − b| relative to max |b|.
fn closeness(a: &[f32], b: &[f32]) -> (f64, f64) {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let max_b = b.iter().fold(0f64, |m, x| m.max(x.abs() as f64));
    let worst = a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs() as f64));
    (dot / (na * nb), worst / max_b)
}

fn disc_outputs(model: Arc<Model>, threads: usize, i: &Inputs) -> (Vec<f32>, Vec<f32>) {
    let h = model.disc().unwrap().config.hidden_size;
    let mut s = Session::with_threads(model, threads).unwrap();
    let mut logits = vec![0.0; i.b * i.t];
    s.discriminate(&batch(i), &mut logits).unwrap();
    let mut hidden = vec![0.0; i.b * i.t * h];
    s.hidden_states(&batch(i), &mut hidden).unwrap();
    (logits, hidden)
}

/// On every fixture the int8 discriminator stays close to PyTorch's f32 outputs, and differs
/// from them (the int8 path really runs).
#[test]
fn int8_discriminator_is_close_to_pytorch() {
    for case in CASES {
        let (i, f) = inputs(case);
        let model = Arc::new(hf::load_with(&fixture(case).join("discriminator"), &int8()).unwrap());
        assert!(model.quant.is_some());
        let (logits, hidden) = disc_outputs(model, 2, &i);
        for (what, got, want) in
            [("disc_logits", &logits, floats(&f, "disc_logits")), ("disc_hidden", &hidden, floats(&f, "disc_hidden"))]
        {
            let (cos, rel) = closeness(got, want);
            println!("{case} {what}: cosine {cos:.6}, max |diff| / max |want| {rel:.2e}");
            assert!(cos > 0.999, "{case} {what}: cosine {cos}");
            assert!(rel < 0.05, "{case} {what}: relative difference {rel}");
            assert!(rel > 1e-6, "{case} {what}: int8 output equals f32 to {rel}: did the int8 path run?");
        }
    }
}

/// The generator (its output projection is the int8 word table) and the pair.
#[test]
fn int8_generator_and_pair_are_close_to_pytorch() {
    for case in CASES {
        let (i, f) = inputs(case);
        for dir in [fixture(case).join("generator"), fixture(case)] {
            let model = Arc::new(hf::load_with(&dir, &int8()).unwrap());
            let v = model.gen().unwrap().config.vocab_size;
            let mut s = Session::new(model).unwrap();
            let mut logits = vec![0.0; i.b * i.t * v];
            s.generator_logits(&batch(&i), &mut logits).unwrap();
            let (cos, rel) = closeness(&logits, floats(&f, "gen_logits"));
            println!("{case} {}: gen_logits cosine {cos:.6}, relative {rel:.2e}", dir.display());
            assert!(cos > 0.999 && rel < 0.05, "{case}: cosine {cos}, relative {rel}");
        }
    }
}

/// `electra quantize`'s files load back to the same int8 weights, and a saved int8 model gives
/// the bits of one quantized at load, on any thread count.
#[test]
fn saved_int8_model_equals_quantize_at_load_for_any_thread_count() {
    let case = "emb_lt_hidden";
    let (i, _) = inputs(case);
    let src = fixture(case).join("discriminator");
    let at_load = Arc::new(hf::load_with(&src, &int8()).unwrap());
    let dir = tmp("saved");
    hf::save(&at_load, &dir).unwrap();
    let cfg = std::fs::read_to_string(dir.join("discriminator/config.json")).unwrap();
    assert!(cfg.contains("\"quant_method\": \"electra-int8\""), "{cfg}");
    let file = TensorFile::read(&dir.join("discriminator/model.safetensors")).unwrap();
    let q = file.get("electra.encoder.layer.0.attention.self.query.weight").unwrap();
    assert_eq!(q.dtype, safetensors::Dtype::I8);
    assert!(file.get("electra.encoder.layer.0.attention.self.query.weight_scale").is_ok());
    assert_eq!(file.get("electra.embeddings.word_embeddings.weight").unwrap().dtype, safetensors::Dtype::I8);
    assert_eq!(file.get("electra.encoder.layer.0.attention.self.query.bias").unwrap().dtype, safetensors::Dtype::F32);

    let saved = Arc::new(hf::load(&dir).unwrap());
    let (a, b) = (at_load.quant.as_ref().unwrap(), saved.quant.as_ref().unwrap());
    assert_eq!(a.len(), b.len());
    for ((oa, wa), (ob, wb)) in a.iter().zip(b.iter()) {
        assert_eq!((oa, &wa.q, &wa.scale), (ob, &wb.q, &wb.scale));
    }
    let want = disc_outputs(at_load, 1, &i);
    for threads in [1, 2, 3] {
        let got = disc_outputs(saved.clone(), threads, &i);
        assert_eq!(bits(&got.0), bits(&want.0), "logits, {threads} threads");
        assert_eq!(bits(&got.1), bits(&want.1), "hidden states, {threads} threads");
    }
    // Loading an int8 model with quantize: int8 changes nothing.
    let again = Arc::new(hf::load_with(&dir, &int8()).unwrap());
    assert_eq!(bits(&disc_outputs(again, 2, &i).0), bits(&want.0));
    let _ = std::fs::remove_dir_all(&dir);
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The int8 file is at most 30% of the f32 one for a model shaped like ELECTRA-Small (the
/// embedding table dominates small models, and is int8 too).
#[test]
fn int8_file_is_under_30_percent_of_f32() {
    let cfg = electra::ElectraConfig::preset("tiny").unwrap();
    let mut m = Model::new(Some(cfg), None, false).unwrap();
    m.init_weights(3).unwrap();
    let (f, q) = (tmp("size-f32"), tmp("size-int8"));
    hf::save(&m, &f).unwrap();
    hf::save(&quant::quantize(&m).unwrap(), &q).unwrap();
    let size = |d: &Path| std::fs::metadata(d.join("discriminator/model.safetensors")).unwrap().len() as f64;
    let ratio = size(&q) / size(&f);
    println!("int8 / f32 file size: {ratio:.3}");
    assert!(ratio < 0.30, "{ratio}");
    for d in [f, q] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Training, fine-tuning and a trainer over an int8 model are refused with a clear error.
#[test]
fn int8_model_refuses_training() {
    let m = quant::quantize(&pair(TINY_DISC, true, 1)).unwrap();
    let e = electra::pretrain::Trainer::from_model(m, Default::default()).err().expect("refused");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("int8"), "{e}");
    let dir = tmp("cls");
    let q = hf::load_with(&fixture("emb_lt_hidden").join("discriminator"), &int8()).unwrap();
    hf::save(&q, &dir).unwrap();
    let e =
        electra::finetune::FineTuner::new(&dir, &["a".into(), "b".into()], Default::default()).err().expect("refused");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites one tensor of a saved int8 discriminator and returns the load error.
fn load_after(name: &str, edit: impl FnOnce(&mut TensorFile)) -> Error {
    let dir = tmp(name);
    let q = hf::load_with(&fixture("emb_lt_hidden").join("discriminator"), &int8()).unwrap();
    hf::save(&q, &dir).unwrap();
    let path = dir.join("discriminator/model.safetensors");
    let mut file = TensorFile::read(&path).unwrap();
    edit(&mut file);
    let mut names: Vec<&String> = file.tensors.keys().collect();
    names.sort();
    let tensors: Vec<(String, Vec<usize>, Values)> = names
        .iter()
        .map(|n| {
            let t = &file.tensors[*n];
            let v = if t.dtype == safetensors::Dtype::I8 { Values::I8(&t.int8) } else { Values::F32(&t.data) };
            ((*n).clone(), t.shape.clone(), v)
        })
        .collect();
    write_tensors(&path, &tensors, &[]).unwrap();
    let e = hf::load(&dir).expect_err("a corrupt int8 file must not load");
    let _ = std::fs::remove_dir_all(&dir);
    e
}

const Q: &str = "electra.encoder.layer.1.output.dense.weight";

#[test]
fn corrupt_int8_files_are_refused() {
    let e = load_after("minus128", |f| f.tensors.get_mut(Q).unwrap().int8[5] = -128);
    assert!(e.to_string().contains("-128"), "{e}");
    let e = load_after("noscale", |f| {
        f.tensors.remove(&format!("{Q}_scale"));
    });
    assert!(e.to_string().contains("weight_scale"), "{e}");
    let e = load_after("nanscale", |f| f.tensors.get_mut(&format!("{Q}_scale")).unwrap().data[0] = -1.0);
    assert!(e.to_string().contains("scales must be finite"), "{e}");
    let e = load_after("f32weight", |f| {
        let t = f.tensors.get_mut(Q).unwrap();
        t.data = t.int8.iter().map(|&v| v as f32).collect();
        t.int8.clear();
        t.dtype = safetensors::Dtype::F32;
    });
    assert!(e.to_string().contains("expected I8"), "{e}");
}

#[test]
fn unknown_quantization_methods_are_refused() {
    let dir = tmp("method");
    let q = hf::load_with(&fixture("emb_lt_hidden").join("discriminator"), &int8()).unwrap();
    hf::save(&q, &dir).unwrap();
    let cfg_path = dir.join("discriminator/config.json");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, cfg.replace("\"electra-int8\"", "\"gptq\"")).unwrap();
    let e = hf::load(&dir).expect_err("gptq is not ours");
    assert!(e.to_string().contains("gptq"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_options_parse_quantize() {
    assert_eq!(LoadOptions::from_json(Some(r#"{"quantize": "int8"}"#)).unwrap().quantize, WeightFormat::Int8);
    assert_eq!(LoadOptions::from_json(Some(r#"{"quantize": "f32"}"#)).unwrap().quantize, WeightFormat::F32);
    assert!(LoadOptions::from_json(Some(r#"{"quantize": "int4"}"#)).is_err());
}

/// Discriminator logits and hidden states of a session with these options, and its description.
fn outputs_with(model: &Arc<Model>, opts: &SessionOptions, i: &Inputs) -> (Vec<f32>, Vec<f32>, String) {
    let h = model.disc().unwrap().config.hidden_size;
    let mut s = Session::with_options(model.clone(), opts).unwrap();
    let mut logits = vec![0.0; i.b * i.t];
    s.discriminate(&batch(i), &mut logits).unwrap();
    let mut hidden = vec![0.0; i.b * i.t * h];
    s.hidden_states(&batch(i), &mut hidden).unwrap();
    (logits, hidden, s.describe())
}

/// A session whose kernel table is capped (`"simd"`) computes what the best table does: the
/// same bits for int8 models and for f32 through the gemm path (the elementwise and int8
/// kernels are bit-identical across variants), and f32 through the packed panels within
/// rounding (the scalar panel kernel multiplies then adds where the others fuse). Two sessions
/// with different caps run side by side in one process.
#[test]
fn capped_kernel_tables_match_the_best() {
    let case = CASES[0];
    let (i, _) = inputs(case);
    let dir = fixture(case).join("discriminator");
    let f32m = Arc::new(hf::load_with(&dir, &LoadOptions::default()).unwrap());
    let i8m = Arc::new(hf::load_with(&dir, &int8()).unwrap());
    let opts = |simd: &str, f32_kernel: &str| {
        SessionOptions::from_json(Some(&format!(r#"{{"threads": 2, "simd": "{simd}", "f32_kernel": "{f32_kernel}"}}"#)))
            .unwrap()
    };
    let (want_q, want_qh, _) = outputs_with(&i8m, &opts("best", "packed"), &i);
    let (want_g, want_gh, _) = outputs_with(&f32m, &opts("best", "gemm"), &i);
    let (want_p, want_ph, _) = outputs_with(&f32m, &opts("best", "packed"), &i);
    for cap in ["scalar", "neon", "avx2", "avx512"] {
        let (q, qh, desc) = outputs_with(&i8m, &opts(cap, "packed"), &i);
        if cap == "scalar" {
            assert!(desc.contains("Scalar"), "{cap}: {desc}");
        }
        assert!(bits(&q) == bits(&want_q) && bits(&qh) == bits(&want_qh), "int8 under {cap} differs from best");
        let (g, gh, _) = outputs_with(&f32m, &opts(cap, "gemm"), &i);
        assert!(bits(&g) == bits(&want_g) && bits(&gh) == bits(&want_gh), "f32 gemm under {cap} differs from best");
        let (p, ph, _) = outputs_with(&f32m, &opts(cap, "packed"), &i);
        for (what, got, want) in [("logits", &p, &want_p), ("hidden", &ph, &want_ph)] {
            let (cos, rel) = closeness(got, want);
            println!("f32 packed under {cap}, {what}: cosine {cos:.9}, max |diff| / max |best| {rel:.2e}");
            assert!(cos > 0.999_999 && rel < 1e-5, "f32 packed {what} under {cap}: cosine {cos}, rel {rel}");
        }
    }
}

/// Kernel options are typed: a value outside the set or of the wrong type is refused with a
/// message naming the key and the values it takes.
#[test]
fn kernel_options_reject_bad_values() {
    for (json, key, hint) in [
        (r#"{"simd": "avx3"}"#, "simd", "scalar"),
        (r#"{"simd": 2}"#, "simd", "expected string"),
        (r#"{"f32_kernel": "blas"}"#, "f32_kernel", "gemm"),
        (r#"{"tf32": "yes"}"#, "tf32", "bool"),
    ] {
        let e = SessionOptions::from_json(Some(json)).unwrap_err().to_string();
        assert!(e.contains(&format!("{key:?}")) && e.contains(hint), "{json}: {e}");
    }
    for json in [r#"{"simd": "avx3"}"#, r#"{"tf32": 1}"#] {
        let e = electra::pretrain::TrainOptions::from_json(Some(json)).unwrap_err().to_string();
        assert!(e.contains("options: key"), "{json}: {e}");
        let e = electra::finetune::FinetuneOptions::from_json(Some(json)).unwrap_err().to_string();
        assert!(e.contains("options: key"), "{json}: {e}");
    }
    // Training has no f32 inference path to choose.
    assert!(electra::pretrain::TrainOptions::from_json(Some(r#"{"f32_kernel": "gemm"}"#)).is_err());
    let o = SessionOptions::from_json(Some(r#"{"simd": null, "tf32": true}"#)).unwrap();
    assert_eq!((o.simd, o.tf32), (None, Some(true)));
}

/// Quantizing as the model loads (a block of rows at a time, the f32 tensors never held whole)
/// gives the bits of quantizing the loaded f32 model: a pair sharing its embeddings and one that
/// does not, with a word table spanning several blocks and several 1 MiB reads.
#[test]
fn quantize_at_load_equals_quantize_after_load() {
    let json = TINY_DISC.replace("\"vocab_size\": 60", "\"vocab_size\": 30522");
    for shared in [true, false] {
        let dir = tmp(&format!("blocks-{shared}"));
        hf::save(&pair(&json, shared, 3), &dir).unwrap();
        let want = quant::quantize(&hf::load(&dir).unwrap()).unwrap();
        let got = hf::load_with(&dir, &int8()).unwrap();
        assert_eq!(got.shared_embeddings(), shared);
        assert_eq!(bits(got.params.values()), bits(want.params.values()));
        let (a, b) = (got.quant.as_ref().unwrap(), want.quant.as_ref().unwrap());
        assert_eq!(a.len(), b.len());
        for ((oa, wa), (ob, wb)) in a.iter().zip(b.iter()) {
            assert_eq!((oa, wa.dout, wa.din, &wa.q), (ob, wb.dout, wb.din, &wb.q));
            assert_eq!(bits(&wa.scale), bits(&wb.scale));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
