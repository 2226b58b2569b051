//! Hostile input files: FIFOs and directories in place of model, checkpoint, tokenizer and corpus
//! files; oversize and non-UTF-8 files; over-long lines; corpora laid out as a few huge lines.

use electra::config::ElectraConfig;
use electra::data::corpus::{Corpus, CorpusOptions, Cursor};
use electra::data::tokenizer::Tokenizer;
use electra::io::safetensors::TensorFile;
use electra::Error;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-input-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// Runs `f` on a thread and fails the test if it does not return within 20 s (a hang).
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("{what} hangs"))
}

/// Specials at 0..4, then one token per word `w0`..`w{n-1}` (id = 5 + i).
fn word_tokenizer(n: usize) -> Tokenizer {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(String::from).to_vec();
    v.extend((0..n).map(|i| format!("w{i}")));
    Tokenizer::from_tokens(v, "words").unwrap()
}

/// Words `w{i % n}` for i in 0.. until the text has `bytes` bytes, separated by spaces, no newline.
fn word_line(n: usize, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 8);
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&format!("w{} ", i % n));
        i += 1;
    }
    s
}

fn is_not_regular(e: &Error) -> bool {
    matches!(e, Error::Format { msg, .. } if msg.contains("not a regular file"))
}

#[test]
fn fifos_in_place_of_input_files_are_errors_not_hangs() {
    let d = scratch("fifo");
    let model = root().join("tests/fixtures/emb_eq_hidden/discriminator");
    // An HF directory whose weights (then config) are a FIFO.
    let hf = d.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::copy(model.join("config.json"), hf.join("config.json")).unwrap();
    mkfifo(&hf.join("model.safetensors"));
    let p = hf.clone();
    let e = within("hf::load with a FIFO model.safetensors", move || electra::hf::load(&p)).unwrap_err();
    assert!(is_not_regular(&e), "{e}");
    let cfg = d.join("config.json");
    mkfifo(&cfg);
    let e = within("ElectraConfig::from_file(FIFO)", move || ElectraConfig::from_file(&cfg)).unwrap_err();
    assert!(is_not_regular(&e), "{e}");
    // A checkpoint directory whose trainer.safetensors is a FIFO.
    let ck = d.join("checkpoint");
    std::fs::create_dir_all(&ck).unwrap();
    mkfifo(&ck.join("trainer.safetensors"));
    let e = within("Trainer::resume", move || electra::pretrain::Trainer::resume(&ck).err()).unwrap();
    assert!(is_not_regular(&e), "{e}");
    let st = d.join("x.safetensors");
    mkfifo(&st);
    let s2 = st.clone();
    assert!(is_not_regular(&within("TensorFile::read", move || TensorFile::read(&s2).unwrap_err())));
    assert!(is_not_regular(&within("read_metadata", move || TensorFile::read_metadata(&st).unwrap_err())));
    // Tokenizer files, directly and inside a directory.
    let tj = d.join("tok/tokenizer.json");
    std::fs::create_dir_all(tj.parent().unwrap()).unwrap();
    mkfifo(&tj);
    let dir = d.join("tok");
    assert!(is_not_regular(&within("Tokenizer::from_file(dir)", move || Tokenizer::from_file(&dir).unwrap_err())));
    let vt = d.join("vocab.txt");
    mkfifo(&vt);
    let v2 = vt.clone();
    assert!(is_not_regular(&within("Tokenizer::from_file(vocab)", move || Tokenizer::from_file(&v2).unwrap_err())));
    // A corpus file, alone or among *.txt files of a directory; vocabulary training on it.
    let corpus = d.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::write(corpus.join("a.txt"), "w1 w2\n").unwrap();
    mkfifo(&corpus.join("b.txt"));
    let c2 = corpus.clone();
    let e = within("Corpus::open", move || Corpus::open(&[c2], CorpusOptions::default(), &word_tokenizer(9)).err());
    assert!(is_not_regular(&e.unwrap()));
    let e = within("Tokenizer::train", move || Tokenizer::train(&[corpus], 100, 1).unwrap_err());
    assert!(is_not_regular(&e), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn oversize_and_non_utf8_files_are_format_errors() {
    let d = scratch("size");
    // config.json: not UTF-8 is a format error naming the file; over 1 MiB is refused unread.
    let cfg = d.join("config.json");
    std::fs::write(&cfg, b"{\"hidden_size\": 32, \"x\": \"\xff\"}").unwrap();
    let e = ElectraConfig::from_file(&cfg).unwrap_err();
    assert!(matches!(&e, Error::Format { path, msg } if path == &cfg && msg.contains("UTF-8")), "{e}");
    let big = std::fs::File::create(&cfg).unwrap();
    big.set_len((1 << 20) + 1).unwrap(); // sparse: instant
    let e = ElectraConfig::from_file(&cfg).unwrap_err();
    assert!(matches!(&e, Error::Format { msg, .. } if msg.contains("limit")), "{e}");
    // vocab.txt over 16 MiB, tokenizer.json over 64 MiB.
    for (name, len) in [("vocab.txt", 16u64 << 20), ("tokenizer.json", 64 << 20)] {
        let p = d.join(name);
        std::fs::File::create(&p).unwrap().set_len(len + 1).unwrap();
        let e = Tokenizer::from_file(&p).unwrap_err();
        assert!(matches!(&e, Error::Format { msg, .. } if msg.contains("limit")), "{name}: {e}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Bytes this process has read through read(2) so far (Linux `/proc/self/io`).
fn rchar() -> u64 {
    let s = std::fs::read_to_string("/proc/self/io").unwrap();
    s.lines().find_map(|l| l.strip_prefix("rchar: ")).unwrap().trim().parse().unwrap()
}

#[test]
fn safetensors_metadata_reads_only_the_header() {
    let d = scratch("meta");
    let p = d.join("trainer.safetensors");
    // A 1 GiB tensor (the file is sparse, so writing it is instant).
    let header = br#"{"__metadata__":{"k":"v"},"t":{"dtype":"F32","shape":[268435456],"data_offsets":[0,1073741824]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(&p, &bytes).unwrap();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(bytes.len() as u64 + (1 << 30)).unwrap();
    let before = rchar();
    let meta = TensorFile::read_metadata(&p).unwrap();
    let read = rchar() - before;
    assert_eq!(meta.get("k").map(String::as_str), Some("v"));
    assert!(read < 64 << 20, "read_metadata read {read} bytes of a 1 GiB file");
    // A header length beyond the file or the cap is a format error, not an allocation.
    for n in [u64::MAX, 1 << 40, 1000] {
        let mut b = n.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        std::fs::write(&p, &b).unwrap();
        let e = TensorFile::read_metadata(&p).unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "{e}");
        assert!(matches!(TensorFile::read(&p).unwrap_err(), Error::Format { .. }));
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn over_long_lines_are_capped_in_vocabulary_training() {
    // One 3 MiB line without a newline: the first 1 MiB counts (read in pieces), the rest is
    // skipped, so words that only occur after 1 MiB never reach the vocabulary.
    let d = scratch("vocab");
    let mut text = "alpha beta gamma ".repeat((1 << 20) / 17 + 1000);
    text.push_str(&"zyxw ".repeat((2 << 20) / 5));
    std::fs::write(d.join("one.txt"), &text).unwrap();
    let t = Instant::now();
    let tok = Tokenizer::train(&[d.join("one.txt")], 200, 2).unwrap();
    assert!(tok.token_to_id("alpha").is_some() && tok.token_to_id("gamma").is_some());
    assert!(tok.token_to_id("zyxw").is_none() && tok.token_to_id("z").is_none(), "read past the 1 MiB cap");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_corpus_of_one_huge_line_streams_in_one_pass() {
    // One 1 MB line: read in 16 KiB pieces, each a sentence, so one pass yields about 60 examples
    // (before, it yielded one per pass: the whole file was re-read and re-tokenized per example).
    let tok = word_tokenizer(1000);
    let d = scratch("oneline");
    let line = word_line(1000, 1_000_000);
    std::fs::write(d.join("one.txt"), &line).unwrap();
    let o = CorpusOptions { max_seq_len: 64, eval_every_nth_doc: 0, shuffle_buffer: 8, ..Default::default() };
    let t = Instant::now();
    let mut c = Corpus::open(&[d.join("one.txt")], o.clone(), &tok).unwrap();
    let mut rows = Vec::new();
    for _ in 0..5 {
        let b = c.next_batch(8).unwrap();
        rows.extend((0..8).map(|r| b.row(r).to_vec()));
    }
    let s = c.stats().clone();
    assert_eq!(s.epochs, 0, "40 examples took more than one pass: {s:?}");
    assert_eq!((s.split_lines, s.long_lines, s.lines), (1, 0, 0), "{s:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Each example is a run of consecutive words of the line, and no two examples repeat.
    for r in &rows {
        assert_eq!((r[0], *r.last().unwrap()), (2, 3));
        for seg in r[1..r.len() - 1].split(|&id| id == 3) {
            assert!(seg.windows(2).all(|w| w[1] - 5 == (w[0] - 5 + 1) % 1000), "{r:?}");
        }
        assert!(r.len() >= 7, "{r:?}");
    }
    let mut sorted = rows.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), rows.len(), "repeated examples");
    // A whole pass ends the line once (the next pass has begun: its first piece is read, a second
    // split); resuming inside the line gives the same batches.
    while c.stats().epochs == 0 {
        c.next_batch(8).unwrap();
    }
    assert_eq!((c.stats().lines, c.stats().split_lines), (1, 2));
    let mut a = Corpus::open(&[d.join("one.txt")], o.clone(), &tok).unwrap();
    for _ in 0..3 {
        a.next_batch(5).unwrap();
    }
    let cursor = Cursor::from_json(&a.cursor().to_json()).unwrap();
    assert!(cursor.pos.line_offset > 0, "the cursor should sit inside the line: {:?}", cursor.pos);
    let mut b = Corpus::open(&[d.join("one.txt")], o, &tok).unwrap();
    b.restore(&cursor).unwrap();
    for _ in 0..20 {
        assert_eq!(a.next_batch(5).unwrap(), b.next_batch(5).unwrap());
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_corpus_line_longer_than_the_cap_is_cut_and_counted() {
    // 3 MiB without a newline, then a normal document: the first 1 MiB of the long line is used in
    // pieces, the rest skipped unread into memory, and the next line read normally.
    let tok = word_tokenizer(1000);
    let d = scratch("capped");
    let mut text = word_line(1000, 3 << 20);
    text.push_str("\nw7 w8 w9\n");
    std::fs::write(d.join("a.txt"), &text).unwrap();
    let o = CorpusOptions { max_seq_len: 64, eval_every_nth_doc: 0, shuffle_buffer: 0, ..Default::default() };
    let mut c = Corpus::open(&[d.join("a.txt")], o, &tok).unwrap();
    let mut last = Vec::new();
    let mut n = 0;
    while c.stats().epochs == 0 {
        let b = c.next_batch(1).unwrap();
        if c.stats().epochs == 0 {
            last = b.row(0).to_vec();
            n += 1;
        }
    }
    let s = c.stats();
    // The next pass has read its first piece: a second split.
    assert_eq!((s.long_lines, s.split_lines, s.lines), (1, 2, 2), "{s:?}");
    // 1 MiB in pieces of about 16 KiB: about 64 examples from the long line (none from beyond it).
    assert!((60..=70).contains(&n), "{n} examples");
    assert!(last.ends_with(&[5 + 7, 5 + 8, 5 + 9, 3]), "{last:?}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_cursor_without_the_new_fields_still_restores() {
    // Cursors written before lines were read in pieces lack line_offset, line_piece_bytes and
    // split_lines: they restore with the defaults.
    let tok = word_tokenizer(50);
    let d = scratch("oldcursor");
    std::fs::write(d.join("a.txt"), "w1 w2 w3\nw4 w5\n\nw6 w7 w8 w9\n").unwrap();
    let o = CorpusOptions { max_seq_len: 8, eval_every_nth_doc: 0, shuffle_buffer: 2, ..Default::default() };
    let mut a = Corpus::open(&[d.join("a.txt")], o.clone(), &tok).unwrap();
    a.next_batch(1).unwrap();
    let mut v = a.cursor().to_json();
    assert!(v["pos"].get("line_offset").is_none(), "line_offset 0 is not written");
    v["options"].as_object_mut().unwrap().remove("line_piece_bytes");
    v["stats"].as_object_mut().unwrap().remove("split_lines");
    let mut b = Corpus::open(&[d.join("a.txt")], o, &tok).unwrap();
    b.restore(&Cursor::from_json(&v).unwrap()).unwrap();
    for _ in 0..6 {
        assert_eq!(a.next_batch(1).unwrap(), b.next_batch(1).unwrap());
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_tokenizer_json_with_a_syntax_error_in_its_decoder_is_an_error_not_a_panic() {
    // tokenizers 0.23 panics ("Helper") on this; found by fuzz/tokenizer.
    let d = scratch("tokjson");
    let good = std::fs::read_to_string(root().join("tests/fixtures/tokenizer/hf/tokenizer.json")).unwrap();
    let decoder = "\"decoder\": {\n    \"type\": \"WordPiece\",\n    \"prefix\": \"##\",\n    \"cleanup\": true\n  }";
    assert!(good.contains(decoder), "the fixture's decoder changed");
    // A syntax error, and a byte that is not UTF-8 inside a key (passes a syntax-only check;
    // found by a 10-minute fuzz run): tokenizers 0.23 panics on both.
    let cases: [&[u8]; 2] = [
        b"\"decoder\": {\"type\": \"WordPiece\", \"prefix\": `}",
        b"\"decoder\": {\"type\": \"WordPiece\", \"prefix\": \"##\", \"c\x93eanup\": true}",
    ];
    let at = good.find(decoder).unwrap();
    for inner in cases {
        let mut bad = good.as_bytes()[..at].to_vec();
        bad.extend_from_slice(inner);
        bad.extend_from_slice(&good.as_bytes()[at + decoder.len()..]);
        let p = d.join("tokenizer.json");
        std::fs::write(&p, bad).unwrap();
        let e = Tokenizer::from_file(&p).unwrap_err();
        assert!(matches!(&e, Error::Format { msg, .. } if msg.contains("JSON")), "{inner:?}: {e}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
