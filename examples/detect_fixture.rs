//! Replaced-token detection on a fixture model: loads an HF ELECTRA directory (by default the
//! tiny test model in tests/fixtures/emb_lt_hidden) and prints, for each token id of a sentence,
//! the discriminator's probability that the token was replaced.
//!
//!   cargo run --release --example detect_fixture
//!   cargo run --release --example detect_fixture -- path/to/model 2 17 33 9 3

use electra::hf;
use electra::session::{Batch, Session};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("detect_fixture: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emb_lt_hidden"));
    let ids: Vec<i32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    // A made-up "sentence" of ids inside the tiny fixture vocabulary (64 entries).
    let ids = if ids.is_empty() { vec![2, 17, 33, 9, 41, 25, 3] } else { ids };

    let model = Arc::new(hf::load(&dir)?);
    let cfg = model.input_config();
    println!(
        "{}: vocab {}, hidden {}, {} layers, {} parameters",
        dir.display(),
        cfg.vocab_size,
        cfg.hidden_size,
        cfg.num_hidden_layers,
        model.num_parameters()
    );
    let mut session = Session::new(model)?;
    let logits = session.discriminate_array(&Batch::new(&ids, 1, ids.len()))?;
    println!("position  token id  P(replaced)");
    for (i, (&id, &logit)) in ids.iter().zip(logits.iter()).enumerate() {
        let p = 1.0 / (1.0 + (-logit).exp());
        println!("{i:>8}  {id:>8}  {p:>11.4}");
    }
    Ok(())
}
