//! Text data: the WordPiece tokenizer and the pre-training corpus reader.
//!
//! - [`tokenizer`]: a BERT-uncased WordPiece [`Tokenizer`] (a thin wrapper over the HF `tokenizers`
//!   crate, ids identical to `transformers.BertTokenizerFast`), loaded from `tokenizer.json` or
//!   `vocab.txt`, and vocabulary training.
//! - [`corpus`]: the original ELECTRA example builder (`build_pretraining_dataset.py`) over plain text
//!   files streamed line by line, with seeded shuffling, a resumable [`Cursor`] and a held-out split.

pub mod corpus;
pub(crate) mod lines;
pub mod tokenizer;

pub use corpus::{Corpus, CorpusOptions, CorpusStats, Cursor, TokenBatch};
pub use tokenizer::{SpecialIds, Tokenizer};

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Expands `paths` into the text files they name: a file is taken as is (whatever its extension); a
/// directory contributes every `*.txt` below it, recursively, in sorted path order. The result keeps
/// the order of `paths` and drops repeats.
///
/// # Errors
/// [`Error::Io`] for a path that does not exist or a directory that cannot be read;
/// [`Error::InvalidArgument`] when `paths` is empty or names no text file at all.
pub fn text_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::arg("no input paths given"));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let p = p.as_ref();
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        let mut found = Vec::new();
        if meta.is_dir() {
            collect_txt(p, &mut found)?;
            found.sort();
        } else {
            found.push(p.to_path_buf());
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    if out.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.as_ref().display().to_string()).collect();
        return Err(Error::arg(format!("no *.txt files under {}", shown.join(", "))));
    }
    Ok(out)
}

fn collect_txt(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            collect_txt(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "txt") {
            out.push(path);
        }
    }
    Ok(())
}
