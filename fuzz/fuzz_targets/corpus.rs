//! The corpus reader: the input is a corpus file; read a few training batches (tiny lines and
//! pieces, so long lines, cuts and cycling are all reached), the held-out set, and a resume.
#![no_main]
use electra::data::corpus::{Corpus, CorpusOptions};
use electra::data::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        Tokenizer::from_vocab_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/tokenizer/vocab.txt"))
            .expect("the fixture vocabulary")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = electra_fuzz::scratch("corpus").join("corpus.txt");
    std::fs::write(&path, data).expect("write the corpus");
    let opts = CorpusOptions {
        max_seq_len: 16,
        shuffle_buffer: 4,
        eval_every_nth_doc: 3,
        max_line_bytes: 200,
        line_piece_bytes: 64,
        ..Default::default()
    };
    let Ok(mut c) = Corpus::open(&[&path], opts.clone(), tokenizer()) else { return };
    for _ in 0..3 {
        if c.next_batch(3).is_err() {
            return;
        }
    }
    let cursor = c.cursor();
    let next = c.next_batch(2);
    let _ = c.eval_batches(2, Some(3));
    let mut d = Corpus::open(&[&path], opts, tokenizer()).expect("opened once already");
    d.restore(&cursor).expect("a cursor of the same corpus restores");
    assert_eq!(d.next_batch(2).ok(), next.ok(), "resume differs");
});
