//! Trains a BERT-uncased WordPiece vocabulary with [`electra::data::Tokenizer::train`].
//!
//! ```text
//! cargo run --example train_vocab -- [OUT [VOCAB_SIZE [MIN_FREQUENCY [INPUT...]]]]
//! ```
//!
//! Defaults: `data/vocab.txt`, 8192, 2, `data/moby-dick` — i.e. with no arguments it regenerates the
//! committed `data/vocab.txt` (training is deterministic, so the file comes out byte-identical; the
//! test `bundled_vocab_is_reproducible_and_covers_the_corpus` in tests/tokenizer.rs checks that, in
//! about a second). `OUT` ending in `.txt` gets
//! the vocabulary only; any other `OUT` is a directory that gets `tokenizer.json`, `vocab.txt` and
//! `tokenizer_config.json` (loadable by HF `AutoTokenizer`).

use electra::data::Tokenizer;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(args.first().map_or("data/vocab.txt", String::as_str));
    let vocab_size: usize = args.get(1).map_or(Ok(8192), |s| s.parse())?;
    let min_frequency: u64 = args.get(2).map_or(Ok(2), |s| s.parse())?;
    let inputs: Vec<PathBuf> = if args.len() > 3 {
        args[3..].iter().map(PathBuf::from).collect()
    } else {
        vec![PathBuf::from("data/moby-dick")]
    };

    let t0 = std::time::Instant::now();
    let tok = Tokenizer::train(&inputs, vocab_size, min_frequency)?;
    let secs = t0.elapsed().as_secs_f64();
    if out.extension().is_some_and(|e| e == "txt") {
        let mut text = tok.vocab()?.join("\n");
        text.push('\n');
        std::fs::write(&out, text)?;
    } else {
        tok.save(&out)?;
    }
    eprintln!("trained {} tokens on {inputs:?} in {secs:.1} s -> {}", tok.vocab_size(), out.display());
    Ok(())
}
