//! The text-level C ABI: tokenizer handles, `electra_tokenizer_encode`, and the session calls that
//! take text (embed, classify, detect, fill-mask), called as C calls them. Batched results equal
//! one text at a time; every bad input gets its status and leaves the outputs untouched.

mod common;
use common::pair;
use electra::data::tokenizer::Tokenizer;
use electra::ffi::model::*;
use electra::ffi::session::*;
use electra::ffi::status::*;
use electra::ffi::text::*;
use electra::ffi::tokenizer::*;
use electra::ffi::*;
use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

const SENTINEL: f32 = -12345.678;

fn last_error() -> String {
    let n = unsafe { electra_last_error_message(null_mut(), 0) };
    let mut buf = vec![0u8; n + 1];
    unsafe { electra_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap().to_owned()
}

#[track_caller]
fn ok(st: electra_status) {
    assert_eq!(st, ELECTRA_OK, "{}", last_error());
}

#[track_caller]
fn expect_err(got: electra_status, want: electra_status, needle: &str) {
    let msg = last_error();
    assert_eq!(got, want, "expected status {want}, got {got} ({msg})");
    assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
}

fn vocab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer/vocab.txt")
}

/// A model config over the tokenizer fixture's 3,000-entry vocabulary.
fn config(extra: &str) -> String {
    format!(
        r#"{{"vocab_size": 3000, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 24,
            "type_vocab_size": 2 {extra}}}"#
    )
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-text-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A saved generator + discriminator pair with its tokenizer beside the discriminator.
fn pair_dir(name: &str) -> PathBuf {
    let d = scratch(name);
    let m = pair(&config(r#", "architectures": ["ElectraForPreTraining"]"#), true, 7);
    electra::hf::save(&m, &d).unwrap();
    Tokenizer::from_file(vocab()).unwrap().save(d.join("discriminator")).unwrap();
    d
}

/// A saved 3-label classifier with named labels and its tokenizer.
fn classifier_dir() -> PathBuf {
    let d = scratch("cls");
    let cfg = electra::ElectraConfig::from_json_str(&config(
        r#", "id2label": {"0": "sad", "1": "neutral", "2": "happy"}, "architectures": ["ElectraForSequenceClassification"]"#,
    ))
    .unwrap();
    let mut m = electra::Model::new_classifier(cfg).unwrap();
    m.init_weights(3).unwrap();
    electra::hf::save(&m, &d).unwrap();
    Tokenizer::from_file(vocab()).unwrap().save(&d).unwrap();
    d
}

struct Handles {
    m: *mut electra_model,
    s: *mut electra_session,
    t: *mut electra_tokenizer,
}

impl Drop for Handles {
    fn drop(&mut self) {
        unsafe {
            electra_tokenizer_free(self.t);
            electra_session_free(self.s);
            electra_model_free(self.m);
        }
    }
}

fn open(dir: &Path) -> Handles {
    let p = CString::new(dir.to_str().unwrap()).unwrap();
    let mut h = Handles { m: null_mut(), s: null_mut(), t: null_mut() };
    ok(unsafe { electra_model_load(p.as_ptr(), &mut h.m) });
    ok(unsafe { electra_session_new_with_options(h.m, c"{\"threads\": 1}".as_ptr(), &mut h.s) });
    ok(unsafe { electra_model_tokenizer(h.m, &mut h.t) });
    h
}

fn text(s: &str) -> electra_text {
    electra_text { data: s.as_ptr().cast::<c_char>(), len: s.len() }
}

fn hidden(m: *mut electra_model) -> usize {
    let mut info =
        electra_model_info { struct_size: std::mem::size_of::<electra_model_info>() as u32, ..Default::default() };
    ok(unsafe { electra_model_get_info(m, &mut info) });
    info.hidden_size as usize
}

fn embed(h: &Handles, texts: &[&str], p: &electra_text_params) -> Vec<f32> {
    let ts: Vec<electra_text> = texts.iter().map(|t| text(t)).collect();
    let n = hidden(h.m) * texts.len();
    let mut out = vec![SENTINEL; n];
    ok(unsafe { electra_session_embed_texts(h.s, null(), ts.as_ptr(), ts.len(), p, out.as_mut_ptr(), n) });
    out
}

const TEXTS: [&str; 7] = [
    "Call me Ishmael.",
    "Some years ago, never mind how long precisely, having little or no money in my purse",
    "café naïve",
    "",
    "白鲸记 Moby Dick 是一本书。 I ❤️ whales 🐋",
    "the whale the whale the whale the whale the whale the whale the whale the whale the whale the whale",
    "nul\0char and\ttabs",
];

#[test]
fn batched_embeddings_equal_one_text_at_a_time() {
    let h = open(&pair_dir("embed"));
    let hs = hidden(h.m);
    for pooling in [ELECTRA_POOLING_MEAN, ELECTRA_POOLING_CLS] {
        for batch_size in [0, 1, 3] {
            let p = electra_text_params { batch_size, pooling, ..electra_text_default_params() };
            let all = embed(&h, &TEXTS, &p);
            for (i, t) in TEXTS.iter().enumerate() {
                let one = embed(&h, &[t], &p);
                for (a, b) in all[i * hs..(i + 1) * hs].iter().zip(&one) {
                    assert!(
                        (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                        "{t:?} pooling {pooling} batch {batch_size}: {a} vs {b}"
                    );
                }
            }
        }
    }
    // [CLS] pooling is row 0 of the hidden states of the ids the tokenizer gives.
    let mut seq_len = 0;
    let t0 = [text(TEXTS[0])];
    ok(unsafe {
        electra_tokenizer_encode(
            h.t,
            t0.as_ptr(),
            null(),
            1,
            null(),
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
            0,
            &mut seq_len,
        )
    });
    let mut ids = vec![0i32; seq_len];
    ok(unsafe {
        electra_tokenizer_encode(
            h.t,
            t0.as_ptr(),
            null(),
            1,
            null(),
            ids.as_mut_ptr(),
            null_mut(),
            null_mut(),
            null_mut(),
            seq_len,
            &mut seq_len,
        )
    });
    let mut states = vec![0f32; seq_len * hs];
    ok(unsafe {
        electra_session_hidden_states(h.s, ids.as_ptr(), null(), null(), 1, seq_len, states.as_mut_ptr(), states.len())
    });
    let p = electra_text_params { pooling: ELECTRA_POOLING_CLS, ..electra_text_default_params() };
    assert_eq!(embed(&h, &TEXTS[..1], &p), states[..hs]);
    // Normalised embeddings have unit length and the mean's direction.
    let p = electra_text_params { normalize: 1, ..electra_text_default_params() };
    let (unit, raw) = (embed(&h, &TEXTS, &p), embed(&h, &TEXTS, &electra_text_default_params()));
    for (u, r) in unit.chunks(hs).zip(raw.chunks(hs)) {
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm(u) - 1.0).abs() < 1e-5);
        let nr = norm(r);
        u.iter().zip(r).for_each(|(a, b)| assert!((a - b / nr).abs() < 1e-5));
    }
}

#[test]
fn detection_scores_words_with_byte_spans_and_fill_mask_ranks_tokens() {
    let h = open(&pair_dir("detect"));
    let s = "Café naïve, the whale's bones";
    let mut n = 0;
    ok(unsafe { electra_session_detect_text(h.s, null(), s.as_ptr().cast(), s.len(), null(), null_mut(), 0, &mut n) });
    let mut words = vec![electra_word_score::default(); n];
    ok(unsafe {
        electra_session_detect_text(h.s, null(), s.as_ptr().cast(), s.len(), null(), words.as_mut_ptr(), n, &mut n)
    });
    let spans: Vec<&str> = words.iter().map(|w| &s[w.start as usize..w.end as usize]).collect();
    assert_eq!(spans, ["Café", "naïve", ",", "the", "whale", "'", "s", "bones"]);
    assert!(words.iter().all(|w| (0.0..=1.0).contains(&w.score)));
    // A buffer one short: the size, and nothing written.
    let mut short = vec![electra_word_score { start: 7, end: 7, score: SENTINEL }; n - 1];
    let st = unsafe {
        electra_session_detect_text(h.s, null(), s.as_ptr().cast(), s.len(), null(), short.as_mut_ptr(), n - 1, &mut n)
    };
    expect_err(st, ELECTRA_ERR_BUFFER_TOO_SMALL, "buffer");
    assert!(short.iter().all(|w| w.score == SENTINEL));

    let s = "the [MASK] swam in the [MASK].";
    let (k, mut masks) = (4, 0);
    ok(unsafe {
        electra_session_fill_mask_text(h.s, h.t, s.as_ptr().cast(), s.len(), k, null(), null_mut(), 0, &mut masks)
    });
    assert_eq!(masks, 2);
    let mut cands = vec![electra_token_score::default(); masks * k];
    ok(unsafe {
        electra_session_fill_mask_text(
            h.s,
            h.t,
            s.as_ptr().cast(),
            s.len(),
            k,
            null(),
            cands.as_mut_ptr(),
            cands.len(),
            &mut masks,
        )
    });
    for c in cands.chunks(k) {
        assert!(c.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(c.iter().all(|t| t.id >= 0 && t.id < 3000 && t.score > 0.0 && t.score <= 1.0));
    }
    let none = "no mask here";
    let st = unsafe {
        electra_session_fill_mask_text(h.s, h.t, none.as_ptr().cast(), none.len(), k, null(), null_mut(), 0, &mut masks)
    };
    expect_err(st, ELECTRA_ERR_INVALID_ARGUMENT, "[MASK]");
}

#[test]
fn classification_gives_probabilities_and_label_names() {
    let h = open(&classifier_dir());
    let ts: Vec<electra_text> = TEXTS.iter().map(|t| text(t)).collect();
    let mut probs = vec![0f32; 3 * ts.len()];
    ok(unsafe {
        electra_session_classify_texts(
            h.s,
            null(),
            ts.as_ptr(),
            null(),
            ts.len(),
            null(),
            probs.as_mut_ptr(),
            probs.len(),
        )
    });
    for row in probs.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // One at a time, and as pairs.
    for (i, t) in ts.iter().enumerate() {
        let mut one = [0f32; 3];
        ok(unsafe { electra_session_classify_texts(h.s, null(), t, null(), 1, null(), one.as_mut_ptr(), 3) });
        one.iter().zip(&probs[3 * i..]).for_each(|(a, b)| assert!((a - b).abs() < 1e-6));
    }
    ok(unsafe {
        electra_session_classify_texts(
            h.s,
            null(),
            ts.as_ptr(),
            ts.as_ptr(),
            ts.len(),
            null(),
            probs.as_mut_ptr(),
            probs.len(),
        )
    });
    let names: Vec<String> = (0..3)
        .map(|i| {
            let (mut buf, mut len) = ([0 as c_char; 16], 0);
            ok(unsafe { electra_model_label_name(h.m, i, buf.as_mut_ptr(), buf.len(), &mut len) });
            unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(names, ["sad", "neutral", "happy"]);
    let mut len = 0;
    expect_err(
        unsafe { electra_model_label_name(h.m, 3, null_mut(), 0, &mut len) },
        ELECTRA_ERR_INVALID_ARGUMENT,
        "out of range",
    );
    // A classifier has no generator: fill-mask is unsupported; and no embeddings without text.
    let s = "[MASK]";
    let st = unsafe {
        electra_session_fill_mask_text(h.s, null(), s.as_ptr().cast(), s.len(), 1, null(), null_mut(), 0, &mut len)
    };
    expect_err(st, ELECTRA_ERR_UNSUPPORTED, "generator");
}

#[test]
fn bad_text_input_gets_a_status_and_writes_nothing() {
    let h = open(&pair_dir("bad"));
    let hs = hidden(h.m);
    let mut out = vec![SENTINEL; 2 * hs];
    let bad = [0x66u8, 0x6f, 0xff, 0x6f];
    let ts = [text("fine"), electra_text { data: bad.as_ptr().cast(), len: bad.len() }];
    let run = |ts: &[electra_text], n: usize, p: *const electra_text_params, out: &mut Vec<f32>, len: usize| unsafe {
        electra_session_embed_texts(h.s, null(), ts.as_ptr(), n, p, out.as_mut_ptr(), len)
    };
    expect_err(
        run(&ts, 2, null(), &mut out, 2 * hs),
        ELECTRA_ERR_INVALID_ARGUMENT,
        "texts[1] is not valid UTF-8: invalid byte at offset 2",
    );
    expect_err(run(&ts, 0, null(), &mut out, 2 * hs), ELECTRA_ERR_INVALID_ARGUMENT, "no texts");
    expect_err(run(&ts[..1], 2, null(), &mut out, 2 * hs - 1), ELECTRA_ERR_BUFFER_TOO_SMALL, "buffer");
    let st = unsafe { electra_session_embed_texts(h.s, null(), null(), 1, null(), out.as_mut_ptr(), 2 * hs) };
    expect_err(st, ELECTRA_ERR_NULL_POINTER, "texts");
    let null_data = [electra_text { data: null(), len: 3 }];
    expect_err(run(&null_data, 1, null(), &mut out, hs), ELECTRA_ERR_NULL_POINTER, "NULL with a nonzero len");
    let p = electra_text_params { max_length: 25, ..electra_text_default_params() };
    expect_err(run(&ts[..1], 1, &p, &mut out, hs), ELECTRA_ERR_INVALID_ARGUMENT, "max_position_embeddings 24");
    let p = electra_text_params { pooling: 7, ..electra_text_default_params() };
    expect_err(run(&ts[..1], 1, &p, &mut out, hs), ELECTRA_ERR_INVALID_ARGUMENT, "pooling 7");
    let p = electra_text_params { struct_size: 0, ..electra_text_default_params() };
    expect_err(run(&ts[..1], 1, &p, &mut out, hs), ELECTRA_ERR_INVALID_ARGUMENT, "struct_size");
    assert!(out.iter().all(|&v| v == SENTINEL));
    // A text longer than the model's positions is cut, not refused; an empty one is [CLS] [SEP].
    let long = "whale ".repeat(5000);
    ok(run(&[text(&long), electra_text { data: null(), len: 0 }], 2, null(), &mut out, 2 * hs));
    assert!(out.iter().all(|v| v.is_finite()));

    // The tokenizer's own calls.
    let mut seq_len = 0;
    let (mut ids, mut offs) = (vec![-7i32; 8], vec![0u32; 16]);
    let st = unsafe {
        electra_tokenizer_encode(
            h.t,
            ts.as_ptr(),
            null(),
            2,
            null(),
            ids.as_mut_ptr(),
            null_mut(),
            null_mut(),
            null_mut(),
            8,
            &mut seq_len,
        )
    };
    expect_err(st, ELECTRA_ERR_INVALID_ARGUMENT, "UTF-8");
    let st = unsafe {
        electra_tokenizer_encode(
            h.t,
            ts.as_ptr(),
            null(),
            1,
            null(),
            ids.as_mut_ptr(),
            null_mut(),
            null_mut(),
            offs.as_mut_ptr(),
            2,
            &mut seq_len,
        )
    };
    expect_err(st, ELECTRA_ERR_BUFFER_TOO_SMALL, "buffer");
    assert_eq!(seq_len, 3, "the size is reported on a too-small buffer");
    assert!(ids.iter().all(|&i| i == -7));
    let st = unsafe {
        electra_tokenizer_encode(
            null(),
            ts.as_ptr(),
            null(),
            1,
            null(),
            ids.as_mut_ptr(),
            null_mut(),
            null_mut(),
            null_mut(),
            8,
            &mut seq_len,
        )
    };
    expect_err(st, ELECTRA_ERR_INVALID_HANDLE, "electra_tokenizer");
    let st = unsafe {
        electra_tokenizer_encode(
            h.m.cast(),
            ts.as_ptr(),
            null(),
            1,
            null(),
            ids.as_mut_ptr(),
            null_mut(),
            null_mut(),
            null_mut(),
            8,
            &mut seq_len,
        )
    };
    expect_err(st, ELECTRA_ERR_INVALID_HANDLE, "another kind");
    let (mut buf, mut len) = ([0 as c_char; 4], 0);
    let st = unsafe { electra_tokenizer_decode(h.t, [5, 6, 7].as_ptr(), 3, 0, buf.as_mut_ptr(), buf.len(), &mut len) };
    if st == ELECTRA_ERR_BUFFER_TOO_SMALL {
        assert!(len >= 4);
    }
    expect_err(
        unsafe { electra_tokenizer_decode(h.t, [3000].as_ptr(), 1, 0, null_mut(), 0, &mut len) },
        ELECTRA_ERR_INVALID_ARGUMENT,
        "outside the vocabulary",
    );
    let mut id = 0;
    ok(unsafe { electra_tokenizer_token_to_id(h.t, c"[MASK]".as_ptr(), 6, &mut id) });
    assert_eq!(id, 4);
    ok(unsafe { electra_tokenizer_token_to_id(h.t, c"no such token".as_ptr(), 13, &mut id) });
    assert_eq!(id, -1);
    let mut buf = [0 as c_char; 16];
    ok(unsafe { electra_tokenizer_id_to_token(h.t, 4, buf.as_mut_ptr(), 16, &mut len) });
    assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap(), "[MASK]");
    let mut info = electra_tokenizer_info {
        struct_size: std::mem::size_of::<electra_tokenizer_info>() as u32,
        ..Default::default()
    };
    ok(unsafe { electra_tokenizer_get_info(h.t, &mut info) });
    assert_eq!((info.vocab_size, info.pad_id, info.cls_id, info.sep_id, info.mask_id), (3000, 0, 2, 3, 4));
}

#[test]
fn tokenizers_load_from_files_memory_and_models_and_are_checked() {
    let dir = pair_dir("load");
    let mut t = null_mut();
    for p in [dir.clone(), dir.join("discriminator/tokenizer.json"), vocab()] {
        let c = CString::new(p.to_str().unwrap()).unwrap();
        ok(unsafe { electra_tokenizer_load(c.as_ptr(), &mut t) });
        unsafe { electra_tokenizer_free(t) };
    }
    let json = std::fs::read(dir.join("discriminator/tokenizer.json")).unwrap();
    ok(unsafe { electra_tokenizer_load_from_memory(json.as_ptr(), json.len(), &mut t) });
    unsafe { electra_tokenizer_free(t) };
    let st = unsafe { electra_tokenizer_load_from_memory(json.as_ptr(), json.len() / 2, &mut t) };
    expect_err(st, ELECTRA_ERR_FORMAT, "not valid JSON");
    assert!(t.is_null());
    let c = CString::new(dir.join("missing").to_str().unwrap()).unwrap();
    expect_err(unsafe { electra_tokenizer_load(c.as_ptr(), &mut t) }, ELECTRA_ERR_IO, "missing");

    // A model without a tokenizer says so; a tokenizer larger than the model is refused.
    let bare = scratch("bare");
    electra::hf::save(&pair(&config(r#", "architectures": ["ElectraForPreTraining"]"#), true, 1), &bare).unwrap();
    let mut h = Handles { m: null_mut(), s: null_mut(), t: null_mut() };
    let c = CString::new(bare.to_str().unwrap()).unwrap();
    ok(unsafe { electra_model_load(c.as_ptr(), &mut h.m) });
    ok(unsafe { electra_session_new(h.m, &mut h.s) });
    expect_err(unsafe { electra_model_tokenizer(h.m, &mut h.t) }, ELECTRA_ERR_UNSUPPORTED, "no tokenizer");
    let mut out = vec![0f32; 32];
    let ts = [text("whale")];
    let st = unsafe { electra_session_embed_texts(h.s, null(), ts.as_ptr(), 1, null(), out.as_mut_ptr(), 32) };
    expect_err(st, ELECTRA_ERR_UNSUPPORTED, "no tokenizer");
    let c = CString::new(vocab().to_str().unwrap()).unwrap();
    ok(unsafe { electra_tokenizer_load(c.as_ptr(), &mut h.t) });
    ok(unsafe { electra_session_embed_texts(h.s, h.t, ts.as_ptr(), 1, null(), out.as_mut_ptr(), 32) });
    let small = scratch("small");
    let tiny = common::TINY_DISC;
    electra::hf::save(&pair(tiny, true, 1), &small).unwrap();
    let mut m2 = null_mut();
    let mut s2 = null_mut();
    let c = CString::new(small.to_str().unwrap()).unwrap();
    ok(unsafe { electra_model_load(c.as_ptr(), &mut m2) });
    ok(unsafe { electra_session_new(m2, &mut s2) });
    let st = unsafe { electra_session_embed_texts(s2, h.t, ts.as_ptr(), 1, null(), out.as_mut_ptr(), 32) };
    expect_err(st, ELECTRA_ERR_INVALID_ARGUMENT, "the tokenizer has 3000 entries but the model's vocabulary has 60");
    unsafe {
        electra_session_free(s2);
        electra_model_free(m2);
    }
}

#[test]
fn typed_params_open_sessions_models_trainers_and_finetuners_as_their_json_does() {
    use electra::ffi::finetune::*;
    use electra::ffi::params::*;
    use electra::ffi::trainer::*;
    let dir = pair_dir("params");
    let p = CString::new(dir.to_str().unwrap()).unwrap();
    let mut m = null_mut();
    let lp = electra_load_params { quantize: c"int8".as_ptr(), ..electra_load_default_params() };
    ok(unsafe { electra_model_load_with_params(p.as_ptr(), &lp, &mut m) });
    let mut info =
        electra_model_info { struct_size: std::mem::size_of::<electra_model_info>() as u32, ..Default::default() };
    ok(unsafe { electra_model_get_info(m, &mut info) });
    assert_eq!(info.weight_format, ELECTRA_WEIGHTS_INT8);
    unsafe { electra_model_free(m) };
    ok(unsafe { electra_model_load_with_params(p.as_ptr(), null(), &mut m) });
    let sp = electra_session_params { threads: 1, simd: c"scalar".as_ptr(), ..electra_session_default_params() };
    let mut s = null_mut();
    ok(unsafe { electra_session_new_with_params(m, &sp, &mut s) });
    let ts = [text("the whale")];
    let mut out = vec![0f32; hidden(m)];
    ok(unsafe { electra_session_embed_texts(s, null(), ts.as_ptr(), 1, null(), out.as_mut_ptr(), out.len()) });
    unsafe { electra_session_free(s) };
    // Bad values are refused as their JSON keys are, naming the key.
    let bad = electra_session_params { simd: c"sse9".as_ptr(), ..electra_session_default_params() };
    expect_err(unsafe { electra_session_new_with_params(m, &bad, &mut s) }, ELECTRA_ERR_INVALID_ARGUMENT, "simd");
    assert!(s.is_null());
    let bad = electra_session_params { tf32: 2, ..electra_session_default_params() };
    expect_err(unsafe { electra_session_new_with_params(m, &bad, &mut s) }, ELECTRA_ERR_INVALID_ARGUMENT, "tf32 is 2");
    let bad = electra_session_params { struct_size: 1000, ..electra_session_default_params() };
    expect_err(
        unsafe { electra_session_new_with_params(m, &bad, &mut s) },
        ELECTRA_ERR_INVALID_ARGUMENT,
        "struct_size is 1000",
    );
    unsafe { electra_model_free(m) };

    let mut t = null_mut();
    let tp = electra_trainer_params {
        learning_rate: 1e-3,
        seed: 5,
        max_seq_len: 16,
        threads: 1,
        ..electra_trainer_default_params()
    };
    ok(unsafe { electra_trainer_new_with_params(c"tiny".as_ptr(), &tp, &mut t) });
    unsafe { electra_trainer_free(t) };
    let bad = electra_trainer_params { learning_rate: -1.0, ..electra_trainer_default_params() };
    expect_err(
        unsafe { electra_trainer_new_with_params(c"tiny".as_ptr(), &bad, &mut t) },
        ELECTRA_ERR_INVALID_ARGUMENT,
        "learning_rate",
    );
    let bad = electra_trainer_params { learning_rate: f32::NAN, ..electra_trainer_default_params() };
    expect_err(
        unsafe { electra_trainer_new_with_params(c"tiny".as_ptr(), &bad, &mut t) },
        ELECTRA_ERR_INVALID_ARGUMENT,
        "learning_rate",
    );
    assert!(t.is_null());

    let mut f = null_mut();
    let fp = electra_finetuner_params { threads: 1, dropout: 0.0, ..electra_finetuner_default_params() };
    ok(unsafe { electra_finetuner_new_with_params(p.as_ptr(), 2, &fp, &mut f) });
    unsafe { electra_finetuner_free(f) };
    let bad = electra_finetuner_params { dropout: 1.5, ..electra_finetuner_default_params() };
    expect_err(
        unsafe { electra_finetuner_new_with_params(p.as_ptr(), 2, &bad, &mut f) },
        ELECTRA_ERR_INVALID_ARGUMENT,
        "dropout",
    );
}

#[test]
fn trainers_and_finetuners_step_on_text_and_the_classifier_keeps_its_tokenizer() {
    use electra::ffi::finetune::*;
    use electra::ffi::params::*;
    use electra::ffi::trainer::*;
    let dir = pair_dir("steps");
    let p = CString::new(dir.to_str().unwrap()).unwrap();
    let mut f = null_mut();
    let fp = electra_finetuner_params { threads: 1, ..electra_finetuner_default_params() };
    ok(unsafe { electra_finetuner_new_with_params(p.as_ptr(), 2, &fp, &mut f) });
    let ts: Vec<electra_text> = TEXTS.iter().map(|t| text(t)).collect();
    let labels: Vec<i32> = (0..ts.len() as i32).map(|i| i % 2).collect();
    let mut stats = electra_finetune_stats {
        struct_size: std::mem::size_of::<electra_finetune_stats>() as u32,
        ..Default::default()
    };
    ok(unsafe {
        electra_finetuner_step_texts(f, null(), ts.as_ptr(), null(), ts.len(), labels.as_ptr(), null(), &mut stats)
    });
    assert_eq!(stats.step, 1);
    assert!(stats.loss.is_finite());
    ok(unsafe {
        electra_finetuner_step_texts(f, null(), ts.as_ptr(), ts.as_ptr(), ts.len(), labels.as_ptr(), null(), &mut stats)
    });
    assert_eq!(stats.step, 2);
    let bad = [0xffu8];
    let bt = [electra_text { data: bad.as_ptr().cast(), len: 1 }];
    let st =
        unsafe { electra_finetuner_step_texts(f, null(), bt.as_ptr(), null(), 1, labels.as_ptr(), null(), &mut stats) };
    expect_err(st, ELECTRA_ERR_INVALID_ARGUMENT, "UTF-8");
    assert_eq!(stats.step, 2, "a refused step changes nothing");
    // The saved classifier carries the tokenizer: its text calls work after a reload.
    let out = scratch("steps-out");
    let o = CString::new(out.to_str().unwrap()).unwrap();
    ok(unsafe { electra_finetuner_save(f, o.as_ptr()) });
    unsafe { electra_finetuner_free(f) };
    let h = open(&out);
    let mut probs = vec![0f32; 2 * ts.len()];
    ok(unsafe {
        electra_session_classify_texts(
            h.s,
            null(),
            ts.as_ptr(),
            null(),
            ts.len(),
            null(),
            probs.as_mut_ptr(),
            probs.len(),
        )
    });

    let mut t = null_mut();
    let tp =
        electra_trainer_params { max_seq_len: 16, threads: 1, vocab_size: 3000, ..electra_trainer_default_params() };
    ok(unsafe { electra_trainer_new_with_params(c"tiny".as_ptr(), &tp, &mut t) });
    let tok = h.t;
    let mut ss =
        electra_step_stats { struct_size: std::mem::size_of::<electra_step_stats>() as u32, ..Default::default() };
    ok(unsafe { electra_trainer_step_texts(t, tok, ts.as_ptr(), ts.len(), null(), &mut ss) });
    assert_eq!(ss.step, 1);
    let st = unsafe { electra_trainer_step_texts(t, null(), ts.as_ptr(), ts.len(), null(), &mut ss) };
    expect_err(st, ELECTRA_ERR_INVALID_HANDLE, "electra_tokenizer");
    let p = electra_text_params { max_length: 17, ..electra_text_default_params() };
    let st = unsafe { electra_trainer_step_texts(t, tok, ts.as_ptr(), ts.len(), &p, &mut ss) };
    expect_err(st, ELECTRA_ERR_INVALID_ARGUMENT, "exceeds the 16 tokens");
    unsafe { electra_trainer_free(t) };
}
