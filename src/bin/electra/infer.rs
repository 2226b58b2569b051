//! `electra detect`, `fill-mask`, `embed`, `predict` and `tokenize`: a model directory plus the
//! tokenizer saved beside its weights, applied to text through the library's text calls
//! (`electra::text`), which batch, pad and pool.

use electra::data::tokenizer::{EncodeOptions, TextInput, Tokenizer};
use electra::error::{Error, Result};
use electra::hf;
use electra::model::classifier::label_names;
use electra::model::Model;
use electra::quant::WeightFormat;
use electra::session::Session;
use electra::text::{self, TextOptions, TokenScore, WordScore};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

/// Texts handed to the library per call when they are streamed: enough for the length sort to
/// fill batches with rows of similar length, few enough that memory stays bounded (lines are
/// at most 1 MiB each, and a call holds at most [`CHUNK_BYTES`] of them).
const CHUNK_TEXTS: usize = 4096;
/// Bytes of text per library call when they are streamed.
const CHUNK_BYTES: usize = 16 << 20;

/// Loads a model directory (HF dir or pair layout) and the tokenizer stored with it.
pub fn load_with_tokenizer(dir: &Path, quantize: WeightFormat) -> Result<(Arc<Model>, Tokenizer)> {
    let model = hf::load_with(dir, &hf::LoadOptions { quantize, ..Default::default() })?;
    let tok = text::tokenizer_dir(dir)
        .ok_or_else(|| Error::format(dir, "no tokenizer.json or vocab.txt beside the model"))
        .and_then(|d| Tokenizer::from_file(&d))?;
    text::check_vocab(&tok, &model).map_err(|e| Error::format(dir, e.to_string()))?;
    Ok((Arc::new(model), tok))
}

/// The tokenizer of `path`: a model directory's (its own folder, or its discriminator/ or
/// generator/), or a tokenizer.json or vocab.txt.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    if path.is_dir() {
        let d = text::tokenizer_dir(path).ok_or_else(|| {
            Error::format(path, "no tokenizer.json or vocab.txt in the directory (or its discriminator/ or generator/)")
        })?;
        Tokenizer::from_file(d)
    } else {
        Tokenizer::from_file(path)
    }
}

/// Calls `f` on the texts of `texts` a bounded chunk at a time, in order.
fn chunked(texts: impl Iterator<Item = Result<String>>, mut f: impl FnMut(&[String]) -> Result<()>) -> Result<()> {
    let (mut chunk, mut bytes) = (Vec::new(), 0);
    for t in texts {
        let t = t?;
        bytes += t.len();
        chunk.push(t);
        if chunk.len() >= CHUNK_TEXTS || bytes >= CHUNK_BYTES {
            f(&chunk)?;
            chunk.clear();
            bytes = 0;
        }
    }
    if !chunk.is_empty() {
        f(&chunk)?;
    }
    Ok(())
}

fn stdout_err(e: std::io::Error) -> Error {
    Error::io("<stdout>", e)
}

/// `electra embed`: one JSON line `{"text": ..., "embedding": [...]}` per text, in input order.
pub fn embed_lines(
    s: &mut Session,
    tok: &Tokenizer,
    texts: impl Iterator<Item = Result<String>>,
    o: &TextOptions,
) -> Result<()> {
    let h = text::embedding_width(s.model())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    chunked(texts, |chunk| {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let v = text::embed_texts(s, tok, &refs, o)?;
        for (t, e) in chunk.iter().zip(v.chunks_exact(h)) {
            writeln!(out, "{}", serde_json::json!({"text": t, "embedding": e})).map_err(stdout_err)?;
        }
        out.flush().map_err(stdout_err)
    })
}

/// `electra predict`: per text, the label probabilities as a table (`table`, one text) or the
/// JSON line `{"probs": [...], "label": "name", "label_id": i, "labels": [names]}`.
pub fn predict_lines(
    s: &mut Session,
    tok: &Tokenizer,
    texts: impl Iterator<Item = Result<String>>,
    o: &TextOptions,
    table: bool,
) -> Result<()> {
    let model = s.model().clone();
    let cls = model
        .cls()
        .ok_or_else(|| Error::Unsupported("predict needs a fine-tuned classifier (electra finetune)".into()))?;
    let names = label_names(&cls.config);
    let l = cls.num_labels;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    chunked(texts, |chunk| {
        let inputs: Vec<TextInput> = chunk.iter().map(|t| TextInput::Single(t)).collect();
        let probs = text::classify_texts(s, tok, &inputs, o)?;
        for p in probs.chunks_exact(l) {
            if table {
                for (name, p) in names.iter().zip(p) {
                    writeln!(out, "{name:>16}  {p:.4}").map_err(stdout_err)?;
                }
            } else {
                let id = p.iter().enumerate().fold(0, |b, (i, x)| if *x > p[b] { i } else { b });
                let line = serde_json::json!({"probs": p, "label": names[id], "label_id": id, "labels": names});
                writeln!(out, "{line}").map_err(stdout_err)?;
            }
        }
        out.flush().map_err(stdout_err)
    })
}

/// How `electra tokenize` reads pairs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Every text alone.
    None,
    /// The texts two at a time (the arguments).
    Adjacent,
    /// Each line `a<TAB>b` (a file or stdin).
    Tab,
}

/// `electra tokenize`: one JSON line per text (or pair): `{"text", ["text_pair",] "ids",
/// "tokens", "offsets", "type_ids"}`, offsets `[start, end)` in bytes of the token's own text.
pub fn tokenize_lines(
    tok: &Tokenizer,
    texts: impl Iterator<Item = Result<String>>,
    pairing: Pairing,
    max_length: usize,
) -> Result<()> {
    let opts = EncodeOptions { add_special_tokens: true, max_length };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut first: Option<String> = None;
    for (n, t) in texts.enumerate() {
        let t = t?;
        let (a, b) = match pairing {
            Pairing::None => (t, None),
            Pairing::Tab => match t.split_once('\t') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => return Err(Error::arg(format!("--pair: line {} has no TAB (expected a<TAB>b)", n + 1))),
            },
            Pairing::Adjacent => match first.take() {
                None => {
                    first = Some(t);
                    continue;
                }
                Some(a) => (a, Some(t)),
            },
        };
        let input = match &b {
            Some(b) => TextInput::Pair(&a, b),
            None => TextInput::Single(&a),
        };
        let e = tok.encode_batch(&[input], &opts)?;
        let n = e.lengths[0];
        let ids = &e.input_ids[..n];
        let tokens: Vec<String> = ids.iter().map(|&id| tok.id_to_token(id).unwrap_or_default()).collect();
        let mut line = serde_json::json!({"text": a});
        if let Some(b) = &b {
            line["text_pair"] = b.as_str().into();
        }
        line["ids"] = ids.into();
        line["tokens"] = tokens.into();
        line["offsets"] = serde_json::json!(e.offsets[..n]);
        line["type_ids"] = e.token_type_ids[..n].into();
        writeln!(out, "{line}").map_err(stdout_err)?;
    }
    if first.is_some() {
        return Err(Error::arg("--pair takes the texts two at a time: the last text has no partner"));
    }
    out.flush().map_err(stdout_err)
}

/// Prints `detect` output: a table of words, plus the sentence coloured by probability on a
/// terminal; or JSON.
pub fn print_detect(text: &str, words: &[WordScore], json: bool) {
    let word = |w: &WordScore| text.get(w.start as usize..w.end as usize).unwrap_or_default();
    if json {
        let v: Vec<_> = words
            .iter()
            .map(|w| serde_json::json!({"token": word(w), "replaced_probability": w.score, "start": w.start, "end": w.end}))
            .collect();
        println!("{}", serde_json::Value::from(v));
        return;
    }
    if std::io::stdout().is_terminal() {
        let mut line = String::new();
        let mut at = 0;
        for w in words {
            // Red for likely replaced, yellow for unsure, plain otherwise.
            let code = if w.score > 0.5 {
                "1;31"
            } else if w.score > 0.2 {
                "33"
            } else {
                "0"
            };
            line += text.get(at..w.start as usize).unwrap_or_default();
            line += &format!("\x1b[{code}m{}\x1b[0m", word(w));
            at = w.end as usize;
        }
        line += text.get(at..).unwrap_or_default();
        println!("{line}\n");
    }
    for w in words {
        let flag = if w.score > 0.5 { "  <- replaced?" } else { "" };
        println!("{:>16}  {:.3}{flag}", word(w), w.score);
    }
}

/// Prints `fill-mask` output: per [MASK], its candidates and probabilities; or one JSON object.
pub fn print_fill_mask(tok: &Tokenizer, text: &str, masks: &[Vec<TokenScore>], json: bool) {
    let token = |c: &TokenScore| tok.id_to_token(c.id).unwrap_or_default();
    if json {
        let m: Vec<Vec<_>> = masks
            .iter()
            .map(|cands| {
                cands
                    .iter()
                    .map(|c| serde_json::json!({"token": token(c), "id": c.id, "probability": c.score}))
                    .collect()
            })
            .collect();
        println!("{}", serde_json::json!({"text": text, "masks": m}));
        return;
    }
    for (i, cands) in masks.iter().enumerate() {
        println!("[MASK] #{}:", i + 1);
        for c in cands {
            println!("  {:>16}  {:.4}", token(c), c.score);
        }
    }
}

/// `electra quantize`: the int8 copy of the model at `from` (tokenizer files included) at `to`.
/// Returns (bytes of the f32 weights file(s), bytes of the int8 ones).
pub fn quantize_dir(from: &Path, to: &Path) -> Result<(u64, u64)> {
    let model = hf::load(from)?;
    if model.quant.is_some() {
        return Err(Error::arg(format!("{} is int8-quantized already", from.display())));
    }
    let q = electra::quant::quantize(&model)?;
    let tok_rel = text::tokenizer_dir(from).and_then(|d| d.strip_prefix(from).ok().map(Path::to_path_buf));
    hf::save_with(&q, to, |tmp| {
        let Some(rel) = &tok_rel else { return Ok(()) };
        for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
            let src = from.join(rel).join(f);
            if src.is_file() {
                let dst = tmp.join(rel).join(f);
                std::fs::create_dir_all(tmp.join(rel)).map_err(|e| Error::io(tmp.join(rel), e))?;
                std::fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
            }
        }
        Ok(())
    })?;
    Ok((weights_bytes(from), weights_bytes(to)))
}

/// Bytes of the model.safetensors files of a model directory (HF dir or pair layout).
pub fn weights_bytes(dir: &Path) -> u64 {
    ["", "discriminator", "generator"]
        .iter()
        .filter_map(|sub| std::fs::metadata(dir.join(sub).join("model.safetensors")).ok())
        .map(|m| m.len())
        .sum()
}
