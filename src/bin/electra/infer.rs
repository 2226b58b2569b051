//! `electra detect`, `fill-mask` and `embed`: a model directory plus the tokenizer saved beside
//! its weights, applied to text.

use electra::data::tokenizer::Tokenizer;
use electra::error::{Error, Result};
use electra::hf;
use electra::model::Model;
use electra::quant::WeightFormat;
use electra::session::{Batch, Session};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

/// Loads a model directory (HF dir or pair layout) and the tokenizer stored with it.
pub fn load_with_tokenizer(dir: &Path, quantize: WeightFormat) -> Result<(Arc<Model>, Tokenizer)> {
    let model = hf::load_with(dir, &hf::LoadOptions { quantize, ..Default::default() })?;
    let tok = tokenizer_dir(dir)
        .ok_or_else(|| Error::format(dir, "no tokenizer.json or vocab.txt beside the model"))
        .and_then(|d| Tokenizer::from_file(&d))?;
    if tok.vocab_size() != model.input_config().vocab_size {
        return Err(Error::format(
            dir,
            format!(
                "the tokenizer has {} entries but the model's vocabulary has {}",
                tok.vocab_size(),
                model.input_config().vocab_size
            ),
        ));
    }
    Ok((Arc::new(model), tok))
}

/// The directory of `dir`'s tokenizer files: `dir` itself, or its discriminator/ or generator/.
pub fn tokenizer_dir(dir: &Path) -> Option<std::path::PathBuf> {
    [dir.to_path_buf(), dir.join("discriminator"), dir.join("generator")]
        .into_iter()
        .find(|d| d.join("tokenizer.json").exists() || d.join("vocab.txt").exists())
}

/// `[CLS] text [SEP]`, cut to the model's length limit.
pub fn encode_row(tok: &Tokenizer, model: &Model, text: &str) -> Result<Vec<i32>> {
    let sp = tok.special_ids();
    let max = model.input_config().max_position_embeddings;
    let mut ids = tok.encode(text)?;
    if ids.len() + 2 > max {
        eprintln!("electra: input cut from {} to {} tokens", ids.len() + 2, max);
        ids.truncate(max - 2);
    }
    let mut row = Vec::with_capacity(ids.len() + 2);
    row.push(sp.cls);
    row.extend(ids);
    row.push(sp.sep);
    Ok(row)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Per-token probability that the token was replaced, as (token, probability) without the
/// [CLS]/[SEP] ends.
pub fn detect(s: &mut Session, tok: &Tokenizer, text: &str) -> Result<Vec<(String, f32)>> {
    let row = encode_row(tok, s.model(), text)?;
    let mut logits = vec![0.0; row.len()];
    s.discriminate(&Batch::new(&row, 1, row.len()), &mut logits)?;
    Ok(row[1..row.len() - 1]
        .iter()
        .zip(&logits[1..row.len() - 1])
        .map(|(&id, &l)| (tok.id_to_token(id).unwrap_or_default(), sigmoid(l)))
        .collect())
}

/// Prints `detect` output: a table, plus the sentence coloured by probability on a terminal.
pub fn print_detect(scores: &[(String, f32)], json: bool) {
    if json {
        let v: Vec<_> =
            scores.iter().map(|(t, p)| serde_json::json!({"token": t, "replaced_probability": p})).collect();
        println!("{}", serde_json::Value::from(v));
        return;
    }
    if std::io::stdout().is_terminal() {
        let line: Vec<String> = scores
            .iter()
            .map(|(t, p)| {
                // Red for likely replaced, yellow for unsure, plain otherwise.
                let code = if *p > 0.5 {
                    "1;31"
                } else if *p > 0.2 {
                    "33"
                } else {
                    "0"
                };
                format!("\x1b[{code}m{t}\x1b[0m")
            })
            .collect();
        println!("{}\n", line.join(" "));
    }
    for (t, p) in scores {
        let flag = if *p > 0.5 { "  <- replaced?" } else { "" };
        println!("{t:>16}  {p:.3}{flag}");
    }
}

/// Top-`k` (token, probability) for each [MASK] of `text`, in order.
pub fn fill_mask(s: &mut Session, tok: &Tokenizer, text: &str, k: usize) -> Result<Vec<Vec<(String, f32)>>> {
    let model = s.model().clone();
    let g = model.gen().ok_or_else(|| Error::Unsupported("fill-mask needs a generator (masked LM) model".into()))?;
    let v = g.config.vocab_size;
    let row = encode_row(tok, &model, text)?;
    let mask = tok.special_ids().mask;
    let positions: Vec<usize> = row.iter().enumerate().filter(|(_, &id)| id == mask).map(|(i, _)| i).collect();
    if positions.is_empty() {
        return Err(Error::arg("the text has no [MASK] token"));
    }
    let mut logits = vec![0.0; row.len() * v];
    s.generator_logits(&Batch::new(&row, 1, row.len()), &mut logits)?;
    Ok(positions
        .iter()
        .map(|&p| {
            let l = &logits[p * v..(p + 1) * v];
            let max = l.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let sum: f64 = l.iter().map(|&x| ((x - max) as f64).exp()).sum();
            let mut idx: Vec<usize> = (0..v).collect();
            idx.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
            idx.iter()
                .take(k)
                .map(|&i| (tok.id_to_token(i as i32).unwrap_or_default(), (((l[i] - max) as f64).exp() / sum) as f32))
                .collect()
        })
        .collect())
}

/// Sentence embedding from the discriminator's last hidden states: the mean over tokens
/// (`mean`) or the [CLS] state (`cls`).
pub fn embed(session: &mut Session, tok: &Tokenizer, text: &str, pool: &str) -> Result<Vec<f32>> {
    let model = session.model().clone();
    let row = encode_row(tok, &model, text)?;
    let h = model.disc().map(|d| d.config.hidden_size).or(model.cls().map(|c| c.config.hidden_size));
    let h = h.ok_or_else(|| Error::Unsupported("embeddings need a discriminator or classifier encoder".into()))?;
    let t = row.len();
    let mut states = vec![0.0; t * h];
    session.hidden_states(&Batch::new(&row, 1, t), &mut states)?;
    match pool {
        "cls" => Ok(states[..h].to_vec()),
        "mean" => {
            let mut out = vec![0.0f32; h];
            for r in states.chunks_exact(h) {
                for (o, x) in out.iter_mut().zip(r) {
                    *o += x / t as f32;
                }
            }
            Ok(out)
        }
        other => Err(Error::arg(format!("--pool {other:?}: expected mean or cls"))),
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
    let tok_rel = tokenizer_dir(from).and_then(|d| d.strip_prefix(from).ok().map(Path::to_path_buf));
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
