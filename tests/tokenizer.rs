//! Tokenizer parity with HF `BertTokenizerFast` (fixtures from scripts/make_tokenizer_fixtures.py),
//! decoding, vocabulary training and save/load round trips.

use electra::data::tokenizer::{SpecialIds, Tokenizer, SPECIAL_TOKENS};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Case {
    text: String,
    fast: Vec<i32>,
    slow: Vec<i32>,
    decoded: String,
}

#[derive(Deserialize)]
struct Fixture {
    vocab_size: usize,
    cases: Vec<Case>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

fn fixture() -> Fixture {
    let bytes = std::fs::read(dir().join("cases.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A fresh, empty scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-tokenizer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every case must give exactly HF's fast-tokenizer ids; returns the number of cases checked.
fn assert_matches_fast(tok: &Tokenizer, fx: &Fixture, what: &str) -> usize {
    let mut bad = Vec::new();
    for c in &fx.cases {
        let got = tok.encode(&c.text).unwrap();
        if got != c.fast {
            bad.push(format!("{:?}\n  got  {:?}\n  want {:?}", c.text, got, c.fast));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} sentences differ from BertTokenizerFast:\n{}",
        bad.len(),
        fx.cases.len(),
        bad.join("\n")
    );
    fx.cases.len()
}

#[test]
fn vocab_txt_matches_hf_fast_tokenizer() {
    let fx = fixture();
    let tok = Tokenizer::from_file(dir().join("vocab.txt")).unwrap();
    assert_eq!(tok.vocab_size(), fx.vocab_size);
    let n = assert_matches_fast(&tok, &fx, "vocab.txt");
    assert!(n >= 300, "only {n} fixture sentences");
    // The fixture really covers the interesting paths.
    let unk = tok.special_ids().unk;
    assert!(fx.cases.iter().filter(|c| c.fast.contains(&unk)).count() >= 20);
    assert!(fx.cases.iter().any(|c| c.text.is_empty() && c.fast.is_empty()));
    assert!(fx.cases.iter().any(|c| c.text.chars().count() > 100 && c.fast == [unk]));
    // Where HF's own two implementations disagree we follow the fast one (the fixture documents the cases).
    let differ = fx.cases.iter().filter(|c| c.fast != c.slow).count();
    assert!(differ < fx.cases.len() / 20, "{differ} fast/slow differences");
}

#[test]
fn hf_tokenizer_json_matches_and_loses_truncation_and_padding() {
    let fx = fixture();
    let tok = Tokenizer::from_file(dir().join("hf")).unwrap();
    assert_matches_fast(&tok, &fx, "hf/tokenizer.json");
    // This tokenizer.json has truncation to 8 and fixed padding to 16 switched on: both must be ignored.
    let tok = Tokenizer::from_file(dir().join("hf_truncating/tokenizer.json")).unwrap();
    assert!(fx.cases.iter().any(|c| c.fast.len() > 16));
    assert!(fx.cases.iter().any(|c| !c.fast.is_empty() && c.fast.len() < 8));
    assert_matches_fast(&tok, &fx, "hf_truncating/tokenizer.json");
}

#[test]
fn special_ids_come_from_the_vocabulary() {
    let tok = Tokenizer::from_file(dir().join("vocab.txt")).unwrap();
    assert_eq!(tok.special_ids(), SpecialIds { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
    for (i, t) in SPECIAL_TOKENS.iter().enumerate() {
        assert_eq!(tok.token_to_id(t), Some(i as i32));
        assert_eq!(tok.id_to_token(i as i32).as_deref(), Some(*t));
    }
    // A BERT-style layout (specials elsewhere) is read, not assumed.
    let mut tokens: Vec<String> = (0..200).map(|i| format!("tok{i}")).collect();
    tokens[0] = "[PAD]".into();
    for (t, i) in [("[UNK]", 100), ("[CLS]", 101), ("[SEP]", 102), ("[MASK]", 103)] {
        tokens[i] = t.into();
    }
    tokens[150] = "whale".into();
    let tok = Tokenizer::from_tokens(tokens, "bert-like").unwrap();
    assert_eq!(tok.special_ids(), SpecialIds { pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 });
    assert_eq!(tok.encode("Whale [MASK] ahab").unwrap(), vec![150, 103, 100]);
    assert!(tok.special_ids().contains(101) && !tok.special_ids().contains(150));
    // A vocabulary without one of the specials is refused.
    let err = Tokenizer::from_tokens(vec!["[PAD]".into(), "[UNK]".into(), "[CLS]".into(), "[SEP]".into()], "x");
    assert!(matches!(err, Err(electra::Error::Format { .. })), "{err:?}");
}

#[test]
fn decode_matches_hf_and_round_trips() {
    let fx = fixture();
    let tok = Tokenizer::from_file(dir().join("vocab.txt")).unwrap();
    let unk = tok.special_ids().unk;
    let mut round_trips = 0;
    for c in &fx.cases {
        let text = tok.decode(&c.fast, false).unwrap();
        assert_eq!(text, c.decoded, "decode of {:?}", c.text);
        if !c.fast.contains(&unk) {
            assert_eq!(tok.encode(&text).unwrap(), c.fast, "re-encoding the decoded {:?}", c.text);
            round_trips += 1;
        }
    }
    assert!(round_trips >= 300);
    // Plain lowercase prose comes back verbatim.
    let s = "call me ishmael. some years ago, never mind how long precisely.";
    assert_eq!(tok.decode(&tok.encode(s).unwrap(), false).unwrap(), s);
    let sp = tok.special_ids();
    let ids = [sp.cls, tok.encode("the whale").unwrap()[0], sp.mask, sp.sep, sp.pad];
    assert_eq!(tok.decode(&ids, true).unwrap(), "the");
    assert_eq!(tok.decode(&ids, false).unwrap(), "[CLS] the [MASK] [SEP] [PAD]");
    assert!(tok.decode(&[-1], false).is_err());
    assert!(tok.decode(&[tok.vocab_size() as i32], false).is_err());
    assert_eq!(tok.id_to_token(-1), None);
    assert_eq!(tok.id_to_token(tok.vocab_size() as i32), None);
}

#[test]
fn save_and_load_round_trip() {
    let fx = fixture();
    let tok = Tokenizer::from_file(dir().join("vocab.txt")).unwrap();
    let out = scratch("save");
    tok.save(&out).unwrap();
    for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // vocab.txt is byte-identical to the one loaded.
    assert_eq!(std::fs::read(out.join("vocab.txt")).unwrap(), std::fs::read(dir().join("vocab.txt")).unwrap());
    // The directory (tokenizer.json wins) and each file on its own load to the same tokenizer.
    for p in [out.clone(), out.join("tokenizer.json"), out.join("vocab.txt")] {
        let t = Tokenizer::from_file(&p).unwrap();
        assert_eq!(t.vocab().unwrap(), tok.vocab().unwrap(), "{}", p.display());
        assert_eq!(t.special_ids(), tok.special_ids());
        assert_matches_fast(&t, &fx, &p.display().to_string());
    }
    // Saving again over an existing directory keeps a tokenizer_config.json that is there.
    std::fs::write(out.join("tokenizer_config.json"), "{\"tokenizer_class\": \"BertTokenizer\", \"x\": 1}").unwrap();
    tok.save(&out).unwrap();
    assert!(std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap().contains("\"x\": 1"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn bad_inputs_are_errors() {
    let d = scratch("bad");
    assert!(matches!(Tokenizer::from_file(d.join("missing.txt")), Err(electra::Error::Io { .. })));
    assert!(matches!(Tokenizer::from_file(&d), Err(electra::Error::Format { .. })), "empty directory");
    std::fs::write(d.join("empty.txt"), "").unwrap();
    assert!(matches!(Tokenizer::from_file(d.join("empty.txt")), Err(electra::Error::Format { .. })));
    std::fs::write(d.join("bad.json"), "{ not json").unwrap();
    assert!(matches!(Tokenizer::from_file(d.join("bad.json")), Err(electra::Error::Format { .. })));
    std::fs::write(d.join("latin1.txt"), b"[PAD]\n[UNK]\ncaf\xe9\n").unwrap();
    assert!(matches!(Tokenizer::from_file(d.join("latin1.txt")), Err(electra::Error::Format { .. })));
    std::fs::remove_dir_all(&d).unwrap();
}

fn moby_part(n: usize) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("data/moby-dick/moby-dick-{n}.txt"))
}

#[test]
fn training_gives_a_usable_vocabulary() {
    let d = scratch("train");
    // A small corpus: one Moby-Dick part, plus a file with odd bytes and characters.
    std::fs::write(d.join("odd.txt"), b"Caf\xc3\xa9 na\xc3\xafve \xff\xfe broken bytes\n\n\xe9\xb2\xb8 whale\n")
        .unwrap();
    let files = [moby_part(4), d.join("odd.txt")];
    let tok = Tokenizer::train(&files, 1500, 2).unwrap();
    assert_eq!(tok.vocab_size(), 1500);
    let vocab = tok.vocab().unwrap();
    assert_eq!(&vocab[..5], &SPECIAL_TOKENS.map(String::from));
    assert_eq!(tok.special_ids(), SpecialIds { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
    assert!(vocab.iter().any(|t| t.starts_with("##") && t.len() > 3), "no ## pieces");
    assert!(vocab[5..].iter().all(|t| !t.is_empty() && t.chars().all(|c| !c.is_uppercase())), "not uncased");
    assert!(vocab.contains(&"the".to_string()) && vocab.contains(&"whale".to_string()));
    assert!(vocab.contains(&"鲸".to_string()), "CJK character from the odd file");
    // Everything in the training text encodes without [UNK], and round-trips.
    let text = std::fs::read_to_string(moby_part(4)).unwrap();
    let sp = tok.special_ids();
    for line in text.lines().take(300) {
        let ids = tok.encode(line).unwrap();
        assert!(!ids.contains(&sp.unk), "[UNK] in {line:?}");
        assert_eq!(tok.encode(&tok.decode(&ids, false).unwrap()).unwrap(), ids);
    }
    // Deterministic, and a directory argument means its *.txt files.
    let again = Tokenizer::train(&files, 1500, 2).unwrap();
    assert_eq!(again.vocab().unwrap(), vocab);
    // Saved and reloaded, the trained tokenizer is the same.
    tok.save(d.join("model")).unwrap();
    let back = Tokenizer::from_file(d.join("model")).unwrap();
    assert_eq!(back.vocab().unwrap(), vocab);
    let head: String = text.chars().take(2000).collect();
    assert_eq!(back.encode(&head).unwrap(), tok.encode(&head).unwrap());
    // Bad arguments.
    assert!(Tokenizer::train(&files, 5, 2).is_err());
    assert!(matches!(Tokenizer::train(&[d.join("missing.txt")], 100, 2), Err(electra::Error::Io { .. })));
    std::fs::write(d.join("blank.txt"), "\n \n\t\n").unwrap();
    assert!(matches!(Tokenizer::train(&[d.join("blank.txt")], 100, 2), Err(electra::Error::InvalidArgument(_))));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bundled_vocab_is_reproducible_and_covers_the_corpus() {
    // data/vocab.txt was made by `cargo run --example train_vocab` (8192 entries, min_frequency 2, on
    // data/moby-dick); training is deterministic, so retraining gives the same bytes.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("data/vocab.txt")).unwrap();
    let tok = Tokenizer::train(&[root.join("data/moby-dick")], 8192, 2).unwrap();
    let mut retrained = tok.vocab().unwrap().join("\n");
    retrained.push('\n');
    assert!(retrained == committed, "data/vocab.txt differs from a retrain; regenerate it with the example");

    let tok = Tokenizer::from_file(root.join("data/vocab.txt")).unwrap();
    assert_eq!(tok.vocab_size(), 8192);
    assert_eq!(tok.special_ids(), SpecialIds { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
    let text = std::fs::read_to_string(moby_part(1)).unwrap();
    let (mut words, mut tokens) = (0, 0);
    for line in text.lines() {
        let ids = tok.encode(line).unwrap();
        assert!(!ids.contains(&1), "[UNK] in {line:?}");
        words += line.split_whitespace().count();
        tokens += ids.len();
    }
    let per_word = tokens as f64 / words as f64;
    assert!(per_word < 1.5, "{per_word:.2} tokens per word");
}
