//! The pre-training corpus: packing invariants and rules, determinism, exact resume, the held-out
//! split, shards, bad inputs and large files.

use electra::data::corpus::{Corpus, CorpusOptions, Cursor, TokenBatch as Batch};
use electra::data::tokenizer::Tokenizer;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn moby() -> PathBuf {
    root().join("data/moby-dick")
}

fn fixture_tokenizer() -> Tokenizer {
    Tokenizer::from_file(root().join("tests/fixtures/tokenizer/vocab.txt")).unwrap()
}

/// Specials at 0..4, then one token per word `w0`..`w{n-1}` (id = 5 + i), so token counts are exact.
fn word_tokenizer(n: usize) -> Tokenizer {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(String::from).to_vec();
    v.extend((0..n).map(|i| format!("w{i}")));
    Tokenizer::from_tokens(v, "words").unwrap()
}

/// A line of `n` word tokens starting at word `first`.
fn words(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-corpus-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn opts(max_seq_len: usize, seed: u64) -> CorpusOptions {
    CorpusOptions { max_seq_len, seed, ..Default::default() }
}

/// Checks every structural invariant of a batch; returns (rows with a B segment, row lengths).
fn check_batch(b: &Batch, tok: &Tokenizer) -> (usize, Vec<usize>) {
    let sp = tok.special_ids();
    let t = b.seq_len;
    assert_eq!(b.input_ids.len(), b.batch * t);
    assert_eq!(b.attention_mask.len(), b.batch * t);
    assert_eq!(b.token_type_ids.len(), b.batch * t);
    let mut with_b = 0;
    let mut lens = Vec::new();
    for r in 0..b.batch {
        let ids = &b.input_ids[r * t..(r + 1) * t];
        let mask = &b.attention_mask[r * t..(r + 1) * t];
        let seg = &b.token_type_ids[r * t..(r + 1) * t];
        let n = mask.iter().take_while(|&&m| m == 1).count();
        assert!(mask[n..].iter().all(|&m| m == 0), "mask is not 1…1 0…0: {mask:?}");
        assert!(n >= 3 && n <= t, "length {n}");
        assert!(ids[n..].iter().all(|&i| i == sp.pad), "padding is not [PAD]");
        assert!(ids[..n].iter().all(|&i| i != sp.pad), "[PAD] inside the example");
        assert!(seg[n..].iter().all(|&s| s == 0), "padding segment");
        assert_eq!(ids[0], sp.cls);
        assert_eq!(ids[n - 1], sp.sep);
        let seps: Vec<usize> = (0..n).filter(|&i| ids[i] == sp.sep).collect();
        assert!(ids[1..n].iter().all(|&i| i != sp.cls));
        let a_end = seps[0]; // the first [SEP] closes A
        assert!(a_end >= 2, "segment A is empty");
        assert!(seg[..=a_end].iter().all(|&s| s == 0), "segment ids of [CLS] A [SEP]");
        match seps.len() {
            1 => assert_eq!(a_end, n - 1),
            2 => {
                assert!(n - 1 > a_end + 1, "segment B is empty");
                assert!(seg[a_end + 1..n].iter().all(|&s| s == 1), "segment ids of B [SEP]");
                with_b += 1;
            }
            k => panic!("{k} [SEP]s in {ids:?}"),
        }
        assert_eq!(b.row(r).len(), n);
        lens.push(n);
    }
    (with_b, lens)
}

#[test]
fn moby_dick_batches_satisfy_the_packing_invariants() {
    let tok = fixture_tokenizer();
    let mut c = Corpus::open(&[moby()], opts(64, 7), &tok).unwrap();
    assert_eq!(c.files().len(), 4);
    let (mut rows, mut with_b, mut full, mut short) = (0, 0, 0, 0);
    for _ in 0..60 {
        let b = c.next_batch(16).unwrap();
        assert_eq!((b.batch, b.seq_len), (16, 64));
        let (wb, lens) = check_batch(&b, &tok);
        rows += b.batch;
        with_b += wb;
        full += lens.iter().filter(|&&n| n == 64).count();
        short += lens.iter().filter(|&&n| n < 40).count();
    }
    // About 10% single-segment by rule, plus documents that end early; most rows are full, some short.
    let frac_b = with_b as f64 / rows as f64;
    assert!((0.6..0.95).contains(&frac_b), "fraction with B {frac_b}");
    assert!(full as f64 / rows as f64 > 0.7, "{full} of {rows} full");
    assert!(short > 0, "no short examples");
    let s = c.stats();
    assert_eq!(s.files, 4);
    assert!(s.lines > 0 && s.documents > 0 && s.examples >= rows as u64 && s.truncated_tokens > 0);
    assert_eq!(s.invalid_utf8_lines, 0);
    assert_eq!(c.examples_emitted(), rows as u64);
    // The model input view borrows the same data.
    let b = c.next_batch(2).unwrap();
    let m = b.as_model_input();
    assert_eq!((m.batch, m.seq_len, m.input_ids), (2, 64, &b.input_ids[..]));
}

#[test]
fn segments_follow_the_original_rules() {
    let tok = word_tokenizer(200);
    let d = scratch("rules");
    // One document: lines of 10, 5 and 6 tokens (21 >= 20 ends the example), then a blank line.
    std::fs::write(d.join("a.txt"), format!("{}\n{}\n{}\n\n", words(0, 10), words(10, 5), words(15, 6))).unwrap();
    let o = CorpusOptions {
        max_seq_len: 20,
        single_segment_prob: 0.0,
        short_seq_prob: 0.0,
        eval_every_nth_doc: 0,
        shuffle_buffer: 1,
        ..Default::default()
    };
    let mut c = Corpus::open(&[d.join("a.txt")], o.clone(), &tok).unwrap();
    let b = c.next_batch(1).unwrap();
    // A target (20-3)/2 = 8: line 1 fills A (A was empty); A >= 8, so lines 2 and 3 go to B without a
    // coin flip; B is cut to 20 - 10 - 3 = 7 tokens and the rest is dropped.
    let w = |i: i32| 5 + i;
    let mut want = vec![2];
    want.extend((0..10).map(w));
    want.push(3);
    want.extend((10..17).map(w));
    want.push(3);
    assert_eq!(b.row(0), &want[..]);
    assert_eq!(&b.token_type_ids[..20], &[[0; 12].as_slice(), [1; 8].as_slice()].concat()[..]);
    assert_eq!(c.stats().truncated_tokens, 4);

    // single_segment_prob 1: everything in A, truncated to max - 2.
    let o1 = CorpusOptions { single_segment_prob: 1.0, ..o.clone() };
    let mut c = Corpus::open(&[d.join("a.txt")], o1, &tok).unwrap();
    let b = c.next_batch(1).unwrap();
    let mut want = vec![2];
    want.extend((0..18).map(w));
    want.push(3);
    assert_eq!(b.row(0), &want[..]);
    assert!(b.token_type_ids.iter().all(|&s| s == 0));

    // A blank line ends the document: a short document makes a short example, never mixed with the next.
    std::fs::write(d.join("b.txt"), format!("{}\n\n\n{}\n{}\n", words(0, 3), words(50, 20), words(70, 4))).unwrap();
    let mut c = Corpus::open(&[d.join("b.txt")], o.clone(), &tok).unwrap();
    let rows: Vec<Vec<i32>> = (0..3).map(|_| c.next_batch(1).unwrap().row(0).to_vec()).collect();
    assert_eq!(rows[0], [vec![2], (0..3).map(w).collect(), vec![3]].concat());
    assert_eq!(rows[1], [vec![2], (50..68).map(w).collect(), vec![3]].concat(), "one 20-token line fills A");
    // The 4-token line started a new example that the end of the file closed; then the next epoch.
    assert_eq!(rows[2], [vec![2], (70..74).map(w).collect(), vec![3]].concat());
    assert_eq!(c.stats().documents, 2);
    assert_eq!(c.stats().blank_lines, 2);
    assert_eq!(c.next_batch(1).unwrap().row(0), &rows[0][..], "second epoch");
    assert_eq!(c.stats().epochs, 1);

    // Without blank-line documents the whole file is one document.
    let o2 = CorpusOptions { blank_lines_separate_documents: false, ..o.clone() };
    let mut c = Corpus::open(&[d.join("b.txt")], o2, &tok).unwrap();
    let first = c.next_batch(1).unwrap();
    assert_eq!(first.row(0)[..4], [2, w(0), w(1), w(2)], "the blank lines did not end the example");
    assert!(first.row(0).len() > 6);
    assert_eq!(c.stats().documents, 0);
    c.next_batch(1).unwrap();
    assert_eq!(c.stats().documents, 1);

    // short_seq_prob 1: after the first example every target is randint(5, max); with one-token lines
    // an example holds exactly its target.
    let lines: Vec<String> = (0..2000).map(|i| format!("w{}", i % 200)).collect();
    std::fs::write(d.join("c.txt"), lines.join("\n")).unwrap();
    let o3 = CorpusOptions { short_seq_prob: 1.0, single_segment_prob: 0.0, max_seq_len: 32, ..o.clone() };
    let mut c = Corpus::open(&[d.join("c.txt")], o3, &tok).unwrap();
    let b = c.next_batch(60).unwrap();
    let (_, lens) = check_batch(&b, &tok);
    let distinct: BTreeSet<usize> = lens.iter().copied().collect();
    // Target t holds t one-token lines; with two segments that is t + 3 ids, capped by truncation at 32.
    assert_eq!(lens[0], 32, "first example: full target");
    assert!(distinct.len() > 10, "targets do not vary: {distinct:?}");
    assert!(lens[1..].iter().all(|&n| (5 + 3..=32).contains(&n)));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn determinism_from_the_seed() {
    let tok = fixture_tokenizer();
    let run = |seed| {
        let mut c = Corpus::open(&[moby()], opts(48, seed), &tok).unwrap();
        (0..10).map(|_| c.next_batch(8).unwrap()).collect::<Vec<_>>()
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
    // Unshuffled, the stream starts with the first sentence of the book.
    let o = CorpusOptions { shuffle_buffer: 0, ..opts(48, 1) };
    let mut c = Corpus::open(&[moby()], o, &tok).unwrap();
    let first = tok.decode(c.next_batch(1).unwrap().row(0), true).unwrap();
    assert!(first.starts_with("etymology."), "{first}");
}

/// K batches, cursor, M batches; a fresh corpus restored from the cursor's JSON gives the same M.
fn check_resume(paths: &[PathBuf], o: &CorpusOptions, tok: &Tokenizer, k: usize, m: usize, bs: usize) {
    let mut a = Corpus::open(paths, o.clone(), tok).unwrap();
    for _ in 0..k {
        a.next_batch(bs).unwrap();
    }
    let cursor = a.cursor();
    let json = serde_json::to_string(&cursor.to_json()).unwrap();
    let stats = a.stats().clone();
    let emitted = a.examples_emitted();
    let want: Vec<Batch> = (0..m).map(|_| a.next_batch(bs).unwrap()).collect();
    let stats_after = a.stats().clone();

    let mut b = Corpus::open(paths, o.clone(), tok).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    b.restore(&Cursor::from_json(&value).unwrap()).unwrap();
    assert_eq!(b.examples_emitted(), emitted);
    assert_eq!(b.stats(), &stats, "stats after restore (k={k})");
    let got: Vec<Batch> = (0..m).map(|_| b.next_batch(bs).unwrap()).collect();
    assert!(got == want, "batches after restore differ (k={k})");
    assert_eq!(b.stats(), &stats_after);
    // Restoring rewinds an existing corpus too.
    a.restore(&cursor).unwrap();
    assert!((0..m).map(|_| a.next_batch(bs).unwrap()).collect::<Vec<_>>() == want);
}

#[test]
fn resume_cursor_is_exact() {
    let tok = fixture_tokenizer();
    let o = CorpusOptions { shuffle_buffer: 50, ..opts(64, 3) };
    for k in [0, 1, 3, 7, 25] {
        check_resume(&[moby()], &o, &tok, k, 5, 8);
    }
    // Across shuffle buffers, documents and several epochs of a small two-file corpus.
    let d = scratch("resume");
    let tokw = word_tokenizer(300);
    let mut text = String::new();
    for doc in 0..12 {
        for line in 0..(doc % 5 + 1) {
            text.push_str(&words((doc * 7 + line * 3) % 280, 3 + (doc + line) % 9));
            text.push('\n');
        }
        text.push('\n');
    }
    std::fs::write(d.join("one.txt"), &text).unwrap();
    std::fs::write(d.join("two.txt"), &text[..text.len() / 2]).unwrap();
    let o = CorpusOptions { shuffle_buffer: 7, eval_every_nth_doc: 4, short_seq_prob: 0.3, ..opts(16, 9) };
    for k in [0, 2, 5, 9, 13, 40] {
        check_resume(std::slice::from_ref(&d), &o, &tokw, k, 12, 3);
    }
    // Cursor after each batch, and a cursor taken at a buffer boundary (shuffle_buffer = batch size).
    let o = CorpusOptions { shuffle_buffer: 4, ..o };
    for k in 0..10 {
        check_resume(std::slice::from_ref(&d), &o, &tokw, k, 4, 4);
    }
    // A cursor only fits its own corpus.
    let c = Corpus::open(std::slice::from_ref(&d), o.clone(), &tokw).unwrap();
    let cur = c.cursor();
    let mut other = Corpus::open(&[d.join("one.txt")], o.clone(), &tokw).unwrap();
    assert!(matches!(other.restore(&cur), Err(electra::Error::InvalidArgument(_))));
    let mut other = Corpus::open(std::slice::from_ref(&d), CorpusOptions { seed: 10, ..o.clone() }, &tokw).unwrap();
    assert!(other.restore(&cur).is_err());
    let mut other = Corpus::open(std::slice::from_ref(&d), o.clone(), &word_tokenizer(301)).unwrap();
    assert!(other.restore(&cur).is_err());
    assert!(Cursor::from_json(&serde_json::json!({"version": 1})).is_err());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn held_out_split_is_disjoint_and_deterministic() {
    let tok = word_tokenizer(100);
    let d = scratch("split");
    // 40 documents; document i uses only word w{i}.
    let mut text = String::new();
    for doc in 0..40 {
        for line in 0..(1 + doc % 3) {
            text.push_str(&vec![format!("w{doc}"); 4 + line * 5].join(" "));
            text.push('\n');
        }
        text.push_str("\n\n");
    }
    std::fs::write(d.join("docs.txt"), &text).unwrap();
    let o = CorpusOptions { eval_every_nth_doc: 5, max_seq_len: 16, shuffle_buffer: 10, ..Default::default() };
    let mut c = Corpus::open(std::slice::from_ref(&d), o.clone(), &tok).unwrap();
    let doc_of = |id: i32| (id - 5) as usize;
    let sp = tok.special_ids();
    let docs = |b: &Batch| -> BTreeSet<usize> {
        b.input_ids.iter().filter(|&&i| !sp.contains(i)).map(|&i| doc_of(i)).collect::<BTreeSet<_>>()
    };
    let mut train = BTreeSet::new();
    for _ in 0..20 {
        let b = c.next_batch(8).unwrap();
        check_batch(&b, &tok);
        train.extend(docs(&b));
    }
    let (eval, stats) = c.eval_set(4, None).unwrap();
    let mut held = BTreeSet::new();
    for b in &eval {
        check_batch(b, &tok);
        held.extend(docs(b));
    }
    let want_held: BTreeSet<usize> = (0..40).filter(|i| i % 5 == 4).collect();
    assert_eq!(held, want_held);
    assert_eq!(train, (0..40).filter(|i| i % 5 != 4).collect::<BTreeSet<_>>());
    assert_eq!(stats.documents, 40);
    assert_eq!(stats.other_split_documents, 32);
    assert!(c.stats().other_split_documents >= 8);
    // Finite, unshuffled, repeatable, bounded by max_batches; the last batch may be partial.
    assert_eq!(c.eval_batches(4, None).unwrap(), eval);
    assert_eq!(c.eval_batches(4, Some(1)).unwrap(), eval[..1].to_vec());
    let all = c.eval_batches(1000, None).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].batch, eval.iter().map(|b| b.batch).sum::<usize>());
    // Document order: the held-out documents come in file order.
    let firsts: Vec<usize> = (0..all[0].batch).map(|r| doc_of(all[0].row(r)[1])).collect();
    assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");
    // No split configured: eval is refused, training sees every document.
    let o0 = CorpusOptions { eval_every_nth_doc: 0, ..o.clone() };
    let c0 = Corpus::open(std::slice::from_ref(&d), o0, &tok).unwrap();
    assert!(c0.eval_batches(4, None).is_err());
    assert!(Corpus::open(std::slice::from_ref(&d), CorpusOptions { eval_every_nth_doc: 1, ..o }, &tok).is_err());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_inputs_are_errors_or_counted() {
    let tok = word_tokenizer(50);
    let d = scratch("bad");
    let o = CorpusOptions { max_seq_len: 16, eval_every_nth_doc: 0, shuffle_buffer: 4, ..Default::default() };
    // Missing paths.
    let r = Corpus::open(&[d.join("missing.txt")], o.clone(), &tok);
    assert!(matches!(r, Err(electra::Error::Io { .. })), "{:?}", r.err());
    assert!(Corpus::open::<PathBuf>(&[], o.clone(), &tok).is_err());
    // An empty file alone is an error; among others it is counted and skipped.
    std::fs::write(d.join("empty.txt"), "").unwrap();
    assert!(matches!(Corpus::open(&[d.join("empty.txt")], o.clone(), &tok), Err(electra::Error::InvalidArgument(_))));
    // A directory without *.txt files.
    std::fs::create_dir_all(d.join("none")).unwrap();
    std::fs::write(d.join("none/readme.md"), "w1").unwrap();
    assert!(matches!(Corpus::open(&[d.join("none")], o.clone(), &tok), Err(electra::Error::InvalidArgument(_))));
    // Invalid UTF-8 is decoded lossily and counted; CRLF, a BOM and control-only lines are handled.
    std::fs::create_dir_all(d.join("tree/sub")).unwrap();
    std::fs::write(d.join("tree/b.txt"), b"\xef\xbb\xbfw1 w2\r\nw3 \xff\xfe w4\r\n\x01\x02\r\n\r\nw5\n").unwrap();
    std::fs::write(d.join("tree/sub/a.txt"), "w6 w7\n").unwrap();
    std::fs::write(d.join("tree/empty.txt"), "").unwrap();
    let o3 = CorpusOptions { shuffle_buffer: 3, ..o.clone() }; // exactly the 3 examples of one pass
    let mut c = Corpus::open(&[d.join("tree")], o3, &tok).unwrap();
    let names: Vec<String> =
        c.files().iter().map(|p| p.strip_prefix(d.join("tree")).unwrap().display().to_string()).collect();
    assert_eq!(names, ["b.txt", "empty.txt", "sub/a.txt"], "*.txt recursively, sorted");
    let rows: Vec<Vec<i32>> = {
        let b = c.next_batch(3).unwrap();
        (0..3).map(|r| b.row(r).to_vec()).collect()
    };
    let mut rows_sorted = rows.clone();
    rows_sorted.sort();
    let w = |i: i32| 5 + i;
    let mut want = vec![
        vec![2, w(1), w(2), w(3), w(4), 3], // one document: the control-only line adds nothing
        vec![2, w(5), 3],
        vec![2, w(6), w(7), 3],
    ];
    want.sort();
    assert_eq!(rows_sorted, want);
    let s = c.stats();
    assert_eq!((s.files, s.empty_files), (3, 1));
    assert_eq!(s.invalid_utf8_lines, 1);
    assert_eq!(s.skipped_lines, 1);
    assert_eq!(s.documents, 3);
    // A corpus of blank and control-only lines yields no training examples: an error, not a hang.
    std::fs::write(d.join("one.txt"), "w1 w2\n").unwrap();
    std::fs::write(d.join("blank.txt"), "\n  \n\x01\n").unwrap();
    let mut c = Corpus::open(&[d.join("blank.txt")], o.clone(), &tok).unwrap();
    assert!(matches!(c.next_batch(1), Err(electra::Error::InvalidArgument(_))));
    // Bad options.
    assert!(Corpus::open(&[d.join("one.txt")], CorpusOptions { max_seq_len: 4, ..o.clone() }, &tok).is_err());
    assert!(Corpus::open(&[d.join("one.txt")], CorpusOptions { short_seq_prob: 1.5, ..o.clone() }, &tok).is_err());
    let mut c = Corpus::open(&[d.join("one.txt")], o.clone(), &tok).unwrap();
    assert!(c.next_batch(0).is_err());
    // A file that vanishes after opening is an I/O error.
    std::fs::remove_file(d.join("one.txt")).unwrap();
    assert!(matches!(c.next_batch(1), Err(electra::Error::Io { .. })));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn files_larger_than_the_read_buffer() {
    let tok = word_tokenizer(1000);
    let d = scratch("large");
    // ~1.5 MB of text (the reader's buffer is 64 KiB), with a 300 KB line in the middle and a final
    // line without a newline.
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 700_000 {
        text.push_str(&words(i % 900, 1 + i % 17));
        text.push('\n');
        if i % 50 == 49 {
            text.push('\n');
        }
        i += 1;
    }
    let long = [words(0, 1000).as_str(); 50].join(" ");
    assert!(long.len() > 200_000);
    text.push('\n'); // the long line starts a document
    text.push_str(&long);
    text.push('\n');
    let tail_start = text.len();
    while text.len() < 1_500_000 {
        text.push_str(&words(i % 900, 1 + i % 13));
        text.push('\n');
        i += 1;
    }
    text.push_str("w1 w2 w3");
    std::fs::write(d.join("big.txt"), &text).unwrap();
    // line_piece_bytes 1 MiB: the long line is read whole, as one sentence (tests/input.rs covers
    // the default, which reads it in pieces).
    let o = CorpusOptions {
        max_seq_len: 64,
        eval_every_nth_doc: 0,
        shuffle_buffer: 0,
        line_piece_bytes: 1 << 20,
        ..Default::default()
    };
    let mut c = Corpus::open(&[d.join("big.txt")], o.clone(), &tok).unwrap();
    // Read one whole epoch: the last example is the last (unterminated) line; the first example of the
    // next epoch has read the file's first lines again (1 + 2 + … + 11 = 66 >= 64 tokens).
    let mut last = Vec::new();
    while c.stats().epochs == 0 {
        let b = c.next_batch(1).unwrap();
        check_batch(&b, &tok);
        if c.stats().epochs == 0 {
            last = b.row(0).to_vec();
        }
    }
    assert_eq!(last[last.len() - 4..], [5 + 1, 5 + 2, 5 + 3, 3]);
    let lines = text.lines().count() as u64;
    assert_eq!(c.stats().lines, lines + 11);
    assert_eq!(c.stats().long_lines, 0);
    // The same stream from a fresh corpus, checked example by example against an independent
    // re-tokenization: the long line starts an example with its first 62 tokens.
    let mut c = Corpus::open(&[d.join("big.txt")], o.clone(), &tok).unwrap();
    let long_ids: Vec<i32> = tok.encode(&long).unwrap();
    let mut found = false;
    for _ in 0..5000 {
        let b = c.next_batch(1).unwrap();
        check_batch(&b, &tok);
        if b.row(0).get(1..63) == Some(&long_ids[..62]) {
            found = true;
            break;
        }
    }
    assert!(found, "the long line's example");
    // Cutting long lines: with max_line_bytes below the long line, it is cut and counted, and the
    // rest of the line is skipped (the next example starts with the next line).
    let o2 = CorpusOptions { max_line_bytes: 1000, ..o.clone() };
    let mut c = Corpus::open(&[d.join("big.txt")], o2, &tok).unwrap();
    let next_line = tok.encode(text[tail_start..].lines().next().unwrap()).unwrap();
    loop {
        if c.next_batch(1).unwrap().row(0).get(1..63) == Some(&long_ids[..62]) {
            break;
        }
    }
    assert_eq!(c.stats().long_lines, 1);
    let after = c.next_batch(1).unwrap();
    assert_eq!(after.row(0)[1..1 + next_line.len()], next_line[..]);
    while c.stats().epochs == 0 {
        c.next_batch(1).unwrap();
    }
    assert_eq!(c.stats().lines, lines + 11);
    // Resume in the middle of this large file.
    check_resume(&[d.join("big.txt")], &CorpusOptions { shuffle_buffer: 30, ..o }, &tok, 400, 20, 4);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn cursor_fits_the_trainer_checkpoint_field() {
    let tok = fixture_tokenizer();
    let mut c = Corpus::open(&[moby()], opts(32, 5), &tok).unwrap();
    c.next_batch(4).unwrap();
    let v: Option<serde_json::Value> = Some(c.cursor().to_json());
    let s = serde_json::to_string(&v).unwrap();
    assert!(s.len() < 4096, "cursor JSON is {} bytes", s.len());
    let back: Option<serde_json::Value> = serde_json::from_str(&s).unwrap();
    assert_eq!(Cursor::from_json(back.as_ref().unwrap()).unwrap(), c.cursor());
}

/// `n` numbered documents over two files: document i has 1 to 3 lines of only the word `w{i}`, at
/// most 15 tokens, so with `max_seq_len` 32 and `short_seq_prob` 0 each is exactly one example.
fn numbered_documents(name: &str, n: usize) -> PathBuf {
    let d = scratch(name);
    let doc = |i: usize| -> String {
        let lines: String = (0..1 + i % 3).map(|l| vec![format!("w{i}"); 2 + (i + l) % 4].join(" ") + "\n").collect();
        lines + "\n"
    };
    std::fs::write(d.join("a.txt"), (0..n / 2).map(doc).collect::<String>()).unwrap();
    std::fs::write(d.join("b.txt"), (n / 2..n).map(doc).collect::<String>()).unwrap();
    d
}

/// Options under which [`numbered_documents`] are read one whole document per example, in order.
fn one_doc_per_example(eval_every_nth_doc: usize) -> CorpusOptions {
    CorpusOptions { max_seq_len: 32, short_seq_prob: 0.0, shuffle_buffer: 0, eval_every_nth_doc, ..opts(32, 4) }
}

/// The documents of the first training epoch of [`numbered_documents`] in reading order, each with
/// its token count; checks that each example is one document and the counters account for the rest.
fn first_epoch(dir: &Path, o: &CorpusOptions, tok: &Tokenizer) -> Vec<(usize, usize)> {
    let mut c = Corpus::open(&[dir], o.clone(), tok).unwrap();
    let sp = tok.special_ids();
    let mut docs = Vec::new();
    loop {
        let b = c.next_batch(1).unwrap();
        if c.stats().epochs > 0 {
            return docs; // that example is the next epoch's
        }
        let ids: Vec<i32> = b.row(0).iter().copied().filter(|&i| !sp.contains(i)).collect();
        assert!(ids.iter().all(|&i| i == ids[0]), "an example mixes documents: {ids:?}");
        docs.push(((ids[0] - 5) as usize, ids.len()));
        // The example ended its document: every document read so far is this shard's, held out, or
        // another shard's.
        let s = c.stats();
        assert_eq!(s.documents - s.other_split_documents - s.other_shard_documents, docs.len() as u64, "{s:?}");
    }
}

#[test]
fn shards_deal_out_the_training_documents() {
    let tok = word_tokenizer(100);
    let d = numbered_documents("shards", 100);
    for (eval, shards) in [(2, 3), (20, 3), (2, 2), (0, 3)] {
        let o = one_doc_per_example(eval);
        let all = first_epoch(&d, &o, &tok);
        let training: Vec<usize> = (0..100).filter(|&i| eval == 0 || i % eval != eval - 1).collect();
        assert_eq!(all.iter().map(|x| x.0).collect::<Vec<_>>(), training, "unsharded (eval {eval})");
        let eval_all = (eval > 0).then(|| Corpus::open(&[&d], o.clone(), &tok).unwrap().eval_batches(4, None).unwrap());
        let mut shard_of = BTreeMap::new();
        let mut union = Vec::new();
        for s in 0..shards {
            let os = CorpusOptions { num_shards: shards, shard_index: s, ..o.clone() };
            let mine = first_epoch(&d, &os, &tok);
            // Training ordinals s, s + shards, …, not document indices.
            let want: Vec<usize> = training.iter().copied().skip(s).step_by(shards).collect();
            assert_eq!(mine.iter().map(|x| x.0).collect::<Vec<_>>(), want, "shard {s} of {shards}, eval {eval}");
            for &(doc, _) in &mine {
                assert_eq!(shard_of.insert(doc, s), None, "document {doc} is in two shards");
            }
            union.extend(mine);
            // The held-out split is not sharded: every shard evaluates on all of it, identically.
            if let Some(eval_all) = &eval_all {
                assert_eq!(&Corpus::open(&[&d], os, &tok).unwrap().eval_batches(4, None).unwrap(), eval_all);
            }
        }
        // Together the shards read each training document once, whole.
        union.sort();
        let mut all = all;
        all.sort();
        assert_eq!(union, all, "eval {eval}, {shards} shards");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn shards_count_the_documents_they_skip() {
    let tok = word_tokenizer(100);
    let d = numbered_documents("shardstats", 100);
    let o = CorpusOptions { num_shards: 3, shard_index: 1, ..one_doc_per_example(20) };
    let mut c = Corpus::open(&[&d], o, &tok).unwrap();
    while c.stats().epochs == 0 {
        c.next_batch(1).unwrap();
    }
    // The first pass and the next one up to its first example of shard 1 (training ordinal 1,
    // document 1): 102 documents, 5 held out, 2 + 32 of shard 1, 64 of shards 0 and 2.
    let (mut other_shard_docs, mut other_shard_lines) = (0, 0);
    for doc in (0..100).chain(0..2) {
        let ordinal = doc - doc / 20;
        if doc % 20 != 19 && ordinal % 3 != 1 {
            other_shard_docs += 1;
            other_shard_lines += 1 + doc % 3;
        }
    }
    let s = c.stats();
    assert_eq!((s.documents, s.other_split_documents), (102, 5), "{s:?}");
    assert_eq!(other_shard_docs, 64);
    assert_eq!((s.other_shard_documents, s.other_shard_lines), (other_shard_docs, other_shard_lines as u64), "{s:?}");
    assert_eq!(s.examples, 32 + 1);
    std::fs::remove_dir_all(&d).unwrap();
}

/// FNV-1a of the ids and segment ids of batches.
fn fingerprint<'a>(batches: impl IntoIterator<Item = &'a Batch>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in batches {
        for &i in b.input_ids.iter().chain(&b.token_type_ids) {
            for x in i.to_le_bytes() {
                h ^= x as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    h
}

#[test]
fn one_shard_reads_exactly_as_before_shards_existed() {
    let tok = fixture_tokenizer();
    // Recorded before the corpus had shards: 12 shuffled training batches and 2 held-out ones.
    const BEFORE_SHARDS: u64 = 0x294d_b7cf_c259_1b03;
    let o = CorpusOptions { shuffle_buffer: 50, eval_every_nth_doc: 5, num_shards: 1, shard_index: 0, ..opts(64, 3) };
    let mut c = Corpus::open(&[moby()], o, &tok).unwrap();
    let mut batches: Vec<Batch> = (0..12).map(|_| c.next_batch(8).unwrap()).collect();
    batches.extend(c.eval_batches(8, Some(2)).unwrap());
    assert_eq!(fingerprint(&batches), BEFORE_SHARDS);
    // Shard 0 of any number keeps the unsharded RNG streams; every other shard has its own.
    let streams = |num_shards, shard_index| {
        let cur =
            Corpus::open(&[moby()], CorpusOptions { num_shards, shard_index, ..opts(64, 3) }, &tok).unwrap().cursor();
        (cur.pack_rng.get_stream(), cur.shuffle_rng.get_stream())
    };
    assert_eq!(streams(1, 0), (1, 2));
    assert_eq!(streams(4, 0), (1, 2));
    assert_eq!(streams(4, 1), (4, 5));
    assert_eq!(streams(4, 3), (10, 11));
}

#[test]
fn resume_inside_a_shard_is_exact() {
    let tok = word_tokenizer(100);
    let d = numbered_documents("shardresume", 100);
    // Documents split into several examples, shuffled, over epochs (a shard's pass is ~30 examples).
    let o =
        CorpusOptions { shuffle_buffer: 7, eval_every_nth_doc: 4, short_seq_prob: 0.3, num_shards: 3, ..opts(12, 9) };
    for shard_index in [1, 2] {
        let o = CorpusOptions { shard_index, ..o.clone() };
        for k in [0, 1, 4, 9, 30] {
            check_resume(std::slice::from_ref(&d), &o, &tok, k, 8, 3);
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_cursor_restores_only_into_its_own_shard() {
    let tok = word_tokenizer(100);
    let d = numbered_documents("shardcursor", 30);
    let o = CorpusOptions { num_shards: 2, shard_index: 1, ..one_doc_per_example(4) };
    let mut a = Corpus::open(&[&d], o.clone(), &tok).unwrap();
    a.next_batch(2).unwrap();
    let cur = a.cursor();
    for (num_shards, shard_index) in [(2, 0), (1, 0), (3, 1)] {
        let mut b = Corpus::open(&[&d], CorpusOptions { num_shards, shard_index, ..o.clone() }, &tok).unwrap();
        let e = b.restore(&cur).unwrap_err().to_string();
        let want = format!(
            "made by shard_index 1 of num_shards 2 but this corpus is shard_index {shard_index} of num_shards {num_shards}"
        );
        assert!(e.contains(&want) && !e.contains("differ too"), "{e}");
    }
    // Another shard and another option: both are said.
    let mut b = Corpus::open(&[&d], CorpusOptions { shard_index: 0, seed: 5, ..o.clone() }, &tok).unwrap();
    let e = b.restore(&cur).unwrap_err().to_string();
    assert!(e.contains("shard_index 1 of num_shards 2") && e.contains("other corpus options differ too"), "{e}");
    // The same shard with another option: the plain message.
    let mut b = Corpus::open(&[&d], CorpusOptions { seed: 5, ..o.clone() }, &tok).unwrap();
    let e = b.restore(&cur).unwrap_err().to_string();
    assert!(e.contains("other corpus options") && !e.contains("made by shard_index"), "{e}");

    // A cursor written before shards existed (no shard options or counters) is one of 1 shard.
    let o1 = one_doc_per_example(4);
    let mut a = Corpus::open(&[&d], o1.clone(), &tok).unwrap();
    a.next_batch(3).unwrap();
    let mut v = a.cursor().to_json();
    for key in ["num_shards", "shard_index"] {
        assert!(v["options"].as_object_mut().unwrap().remove(key).is_some(), "{key}");
    }
    for key in ["other_shard_documents", "other_shard_lines"] {
        assert!(v["stats"].as_object_mut().unwrap().remove(key).is_some(), "{key}");
    }
    let old = Cursor::from_json(&v).unwrap();
    let mut b = Corpus::open(&[&d], o1.clone(), &tok).unwrap();
    b.restore(&old).unwrap();
    for _ in 0..10 {
        assert_eq!(a.next_batch(2).unwrap(), b.next_batch(2).unwrap());
    }
    let mut b = Corpus::open(&[&d], CorpusOptions { num_shards: 2, ..o1 }, &tok).unwrap();
    let e = b.restore(&old).unwrap_err().to_string();
    assert!(e.contains("made by shard_index 0 of num_shards 1"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn shard_options_are_checked_when_opening() {
    let tok = word_tokenizer(10);
    let d = numbered_documents("shardopts", 4);
    let open = |num_shards, shard_index| {
        Corpus::open(&[&d], CorpusOptions { num_shards, shard_index, ..Default::default() }, &tok)
            .err()
            .map(|e| e.to_string())
    };
    let e = open(0, 0).unwrap();
    assert!(e.contains("num_shards 0"), "{e}");
    let e = open(3, 3).unwrap();
    assert!(e.contains("shard_index 3 is not below num_shards 3"), "{e}");
    assert_eq!(open(3, 2), None);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_shard_without_examples_is_an_error_that_names_it() {
    let tok = word_tokenizer(10);
    let d = scratch("shardempty");
    // Two training documents for three shards: shards 0 and 1 read one each, shard 2 none.
    std::fs::write(d.join("a.txt"), "w1 w2\n\nw3\n").unwrap();
    let o = |num_shards, shard_index| CorpusOptions {
        num_shards,
        shard_index,
        eval_every_nth_doc: 0,
        shuffle_buffer: 0,
        ..opts(16, 0)
    };
    for s in [0, 1] {
        Corpus::open(&[d.join("a.txt")], o(3, s), &tok).unwrap().next_batch(3).unwrap();
    }
    let mut c = Corpus::open(&[d.join("a.txt")], o(3, 2), &tok).unwrap();
    let e = c.next_batch(1).unwrap_err();
    assert!(matches!(e, electra::Error::InvalidArgument(_)));
    let e = e.to_string();
    assert!(e.contains("shard_index 2 of num_shards 3") && e.contains("0 of the pass's 2 training documents"), "{e}");
    assert!(e.contains("3 shards need at least 3 training documents"), "{e}");
    // A shard whose only document tokenizes to nothing: named, without the hint about too few.
    std::fs::write(d.join("b.txt"), "w1 w2\n\n\x01\n\nw3\n").unwrap();
    let mut c = Corpus::open(&[d.join("b.txt")], o(3, 1), &tok).unwrap();
    let e = c.next_batch(1).unwrap_err().to_string();
    assert!(e.contains("shard_index 1 of num_shards 3") && e.contains("1 of the pass's 3 training documents"), "{e}");
    assert!(!e.contains("need at least"), "{e}");
    // One shard: the message as before.
    std::fs::write(d.join("c.txt"), "\x01\n").unwrap();
    let e = Corpus::open(&[d.join("c.txt")], o(1, 0), &tok).unwrap().next_batch(1).unwrap_err().to_string();
    assert!(e.contains("the corpus yields no training examples (1 files") && !e.contains("shard"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
