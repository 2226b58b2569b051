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

/// One encoding of encode.json (HF `tokenizers`, special tokens added); offsets in characters.
#[derive(Deserialize)]
struct Enc {
    ids: Vec<i32>,
    type_ids: Vec<i32>,
    attention_mask: Vec<i32>,
    offsets: Vec<[usize; 2]>,
    word_ids: Vec<Option<i32>>,
}

#[derive(Deserialize)]
struct Single {
    text: String,
    #[serde(flatten)]
    enc: Enc,
}

#[derive(Deserialize)]
struct Pair {
    a: String,
    b: Option<String>,
    #[serde(default)]
    max_length: usize,
    #[serde(flatten)]
    enc: Enc,
}

#[derive(Deserialize)]
struct BatchCase {
    texts: Vec<String>,
    rows: Vec<Enc>,
}

#[derive(Deserialize)]
struct EncodeFixture {
    single: Vec<Single>,
    pairs: Vec<Pair>,
    truncated: Vec<Pair>,
    batches: Vec<BatchCase>,
}

/// The byte offset of character `c` of `s` (`s.len()` past the end).
fn byte_at(s: &str, c: usize) -> usize {
    s.char_indices().nth(c).map_or(s.len(), |(b, _)| b)
}

/// Row `r` of `e` equals HF's encoding `want` of `texts` (the first text, then the second's
/// tokens by type id), padded past it.
fn assert_row(e: &electra::data::tokenizer::Encoded, r: usize, want: &Enc, texts: [&str; 2], what: &str) {
    let t = e.seq_len;
    let row = |v: &Vec<i32>| v[r * t..(r + 1) * t].to_vec();
    assert_eq!(row(&e.input_ids), want.ids, "{what}: ids");
    assert_eq!(row(&e.token_type_ids), want.type_ids, "{what}: type ids");
    assert_eq!(row(&e.attention_mask), want.attention_mask, "{what}: mask");
    assert_eq!(row(&e.words), want.word_ids.iter().map(|w| w.unwrap_or(-1)).collect::<Vec<_>>(), "{what}: words");
    for (j, (o, ty)) in want.offsets.iter().zip(&want.type_ids).enumerate() {
        let text = texts[*ty as usize];
        let bytes = [byte_at(text, o[0]) as u32, byte_at(text, o[1]) as u32];
        assert_eq!(e.offsets[r * t + j], bytes, "{what}: offsets of token {j}");
    }
    assert_eq!(e.lengths[r], want.attention_mask.iter().filter(|&&m| m == 1).count(), "{what}: length");
}

fn encode_fixture() -> EncodeFixture {
    serde_json::from_slice(&std::fs::read(dir().join("encode.json")).unwrap()).unwrap()
}

#[test]
fn encodings_with_special_tokens_pairs_truncation_and_padding_match_hf() {
    use electra::data::tokenizer::{EncodeOptions, TextInput};
    let fx = encode_fixture();
    for source in [dir().join("hf/tokenizer.json"), dir().join("vocab.txt")] {
        let tok = Tokenizer::from_file(&source).unwrap();
        let opts = EncodeOptions::default();
        for c in &fx.single {
            let e = tok.encode_batch(&[TextInput::Single(&c.text)], &opts).unwrap();
            assert_row(&e, 0, &c.enc, [&c.text, ""], &format!("{source:?} single {:?}", c.text));
            assert!(!e.truncated[0]);
        }
        for c in fx.pairs.iter().chain(&fx.truncated) {
            let input = match &c.b {
                Some(b) => TextInput::Pair(&c.a, b),
                None => TextInput::Single(&c.a),
            };
            let o = EncodeOptions { max_length: c.max_length, ..opts };
            let e = tok.encode_batch(&[input], &o).unwrap();
            let b = c.b.as_deref().unwrap_or("");
            assert_row(
                &e,
                0,
                &c.enc,
                [&c.a, b],
                &format!("{source:?} pair {:?} / {:?} cut to {}", c.a, b, c.max_length),
            );
        }
        for c in &fx.batches {
            let inputs: Vec<TextInput> = c.texts.iter().map(|t| TextInput::Single(t)).collect();
            let e = tok.encode_batch(&inputs, &opts).unwrap();
            assert_eq!(e.seq_len, c.rows[0].ids.len());
            for (r, want) in c.rows.iter().enumerate() {
                assert_row(&e, r, want, [&c.texts[r], ""], &format!("{source:?} batch row {r}"));
            }
        }
    }
}

#[test]
fn encode_refuses_what_it_cannot_encode() {
    use electra::data::tokenizer::{EncodeOptions, TextInput};
    let tok = Tokenizer::from_file(dir().join("vocab.txt")).unwrap();
    assert!(tok.encode_batch(&[], &EncodeOptions::default()).is_err());
    // Two specials leave no room in a row of 2.
    let e = tok.encode_batch(&[TextInput::Single("whale")], &EncodeOptions { max_length: 2, ..Default::default() });
    assert!(e.unwrap_err().to_string().contains("no room"));
    let e = tok.encode_batch(&[TextInput::Single("the whale")], &EncodeOptions { max_length: 3, ..Default::default() });
    let e = e.unwrap();
    assert_eq!((e.seq_len, e.truncated[0]), (3, true));
    // Without special tokens nothing is added.
    let e = tok.encode_batch(&[TextInput::Single("")], &EncodeOptions { add_special_tokens: false, max_length: 0 });
    let e = e.unwrap();
    assert_eq!((e.seq_len, e.lengths[0], e.input_ids[0]), (1, 0, tok.special_ids().pad));
}
