//! Tokenizer files: the first byte picks tokenizer.json or vocab.txt, the rest is the file; a
//! tokenizer that loads then encodes and decodes a fixed text.
#![no_main]
use electra::data::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

const TEXT: &str = "The whale swam under the [MASK] ship, unaffable; naïve 東京 café!";

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else { return };
    let path = electra_fuzz::scratch("tokenizer").join(if kind & 1 == 0 { "tokenizer.json" } else { "vocab.txt" });
    std::fs::write(&path, body).expect("write the input");
    if let Ok(tok) = Tokenizer::from_file(&path) {
        if let Ok(ids) = tok.encode(TEXT) {
            let _ = tok.decode(&ids, true);
            let _ = tok.decode(&ids, false);
        }
        let _ = tok.vocab();
        let _ = tok.id_to_token(-1);
        let _ = tok.decode(&[i32::MAX, -5], false);
    }
});
