//! `electra finetune` and `electra predict`: sentence classification from labelled text files
//! (TSV `label<TAB>text`, or CSV `label,text`).

use super::infer::load_with_tokenizer;
use super::pretrain::save_tokenizer_into;
use electra::data::corpus::TokenBatch as Padded;
use electra::data::tokenizer::{EncodeOptions, TextInput, Tokenizer};
use electra::error::{Error, Result};
use electra::finetune::{FineTuner, FinetuneOptions};
use electra::io::atomic::write_atomic;
use electra::limits::MAX_LABELS;
use electra::model::classifier::{label_names, LabelSet};
use electra::model::Model;
use electra::quant::WeightFormat;
use electra::session::{Session, SessionOptions};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything `electra finetune` takes.
#[derive(Clone, Debug)]
pub struct FinetuneArgs {
    /// Pre-trained model directory (pair layout or discriminator).
    pub model: PathBuf,
    /// Training file.
    pub train: PathBuf,
    /// Evaluation file.
    pub eval: Option<PathBuf>,
    /// Output directory (HF ElectraForSequenceClassification + tokenizer).
    pub out: PathBuf,
    /// Passes over the training file; `None`: [`default_epochs`].
    pub epochs: Option<usize>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Longest row in tokens (longer texts are cut).
    pub seq_len: usize,
    /// Optimizer options.
    pub opts: FinetuneOptions,
}

/// Reads `label<TAB>text` (or `label,text` when the file ends in .csv) lines; blank lines and a
/// `label` header are skipped. Quotes around a CSV text are removed. The file must be a regular
/// file within the CLI's size and line caps (`super::input`).
pub fn read_labeled(path: &Path) -> Result<Vec<(String, String)>> {
    let bytes = super::input::read_lines_bytes(path, super::input::MAX_TEXT_FILE_BYTES, "labelled file")?;
    let text = String::from_utf8_lossy(&bytes);
    let csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let sep = if csv { ',' } else { '\t' };
        let (label, body) = line.split_once(sep).ok_or_else(|| {
            Error::format(path, format!("line {}: expected label{}text", i + 1, if csv { "," } else { "<TAB>" }))
        })?;
        let (label, body) = (label.trim().to_string(), body.trim());
        if i == 0 && label.eq_ignore_ascii_case("label") {
            continue;
        }
        let body = if csv && body.len() >= 2 && body.starts_with('"') && body.ends_with('"') {
            body[1..body.len() - 1].replace("\"\"", "\"")
        } else {
            body.to_string()
        };
        rows.push((label, body));
    }
    if rows.is_empty() {
        return Err(Error::format(path, "no labelled lines"));
    }
    Ok(rows)
}

/// Padded batches of encoded rows, each with its labels.
fn batches(tok: &Tokenizer, rows: &[(usize, Vec<i32>)], b: usize) -> Vec<(Padded, Vec<i32>)> {
    let pad = tok.special_ids().pad;
    rows.chunks(b)
        .map(|chunk| {
            let t = chunk.iter().map(|(_, r)| r.len()).max().unwrap_or(2);
            let mut ids = vec![pad; chunk.len() * t];
            let mut mask = vec![0; chunk.len() * t];
            for (r, (_, row)) in chunk.iter().enumerate() {
                ids[r * t..r * t + row.len()].copy_from_slice(row);
                mask[r * t..r * t + row.len()].fill(1);
            }
            let padded = Padded {
                token_type_ids: vec![0; ids.len()],
                input_ids: ids,
                attention_mask: mask,
                batch: chunk.len(),
                seq_len: t,
            };
            (padded, chunk.iter().map(|(y, _)| *y as i32).collect())
        })
        .collect()
}

fn encode_all(
    tok: &Tokenizer,
    model: &Model,
    data: &[(String, String)],
    labels: &LabelSet,
    seq_len: usize,
) -> Result<Vec<(usize, Vec<i32>)>> {
    // [CLS] text [SEP], the text cut so that the row fits --seq-len and the model's positions.
    let max_length = seq_len.min(model.input_config().max_position_embeddings).max(3);
    let opts = EncodeOptions { add_special_tokens: true, max_length };
    data.iter()
        .map(|(l, text)| {
            let y = labels.id(l).ok_or_else(|| {
                Error::arg(format!("label {l:?} is neither in the training file nor one of the model's labels"))
            })?;
            let mut row = tok.encode_batch(&[TextInput::Single(text)], &opts)?.input_ids;
            if row.len() > seq_len {
                // --seq-len 2: [CLS] [SEP] alone.
                row = vec![tok.special_ids().cls, tok.special_ids().sep];
            }
            Ok((y, row))
        })
        .collect()
}

/// Accuracy of `session` (a classifier) on encoded rows.
fn accuracy(session: &mut Session, tok: &Tokenizer, rows: &[(usize, Vec<i32>)], l: usize) -> Result<f64> {
    let mut right = 0;
    for (batch, ys) in batches(tok, rows, 64) {
        let b = batch.batch;
        let mut logits = vec![0.0; b * l];
        session.classify(&batch.as_model_input(), &mut logits)?;
        for r in 0..b {
            let top = (0..l).max_by(|&i, &j| logits[r * l + i].total_cmp(&logits[r * l + j])).unwrap_or(0);
            right += (top as i32 == ys[r]) as usize;
        }
    }
    Ok(right as f64 / rows.len().max(1) as f64)
}

/// The labels of a run, in id order: a classifier's own (its config.json `id2label`, ids kept),
/// then the training file's other labels, sorted (so a fresh head's ids do not depend on the
/// order of the rows). Linear in the rows; more than `MAX_LABELS` is an error before any work.
fn labels_for(model: &Model, train: &[(String, String)]) -> Result<LabelSet> {
    let mut seen = HashSet::new();
    for (l, _) in train {
        if seen.insert(l.as_str()) && seen.len() > MAX_LABELS {
            return Err(Error::arg(format!("the training file has more than {MAX_LABELS} distinct labels")));
        }
    }
    let existing = model.cls().map(|c| label_names(&c.config));
    let mut new: Vec<String> = seen.into_iter().map(str::to_string).collect();
    new.sort_unstable();
    if let Some(e) = &existing {
        let old: HashSet<&str> = e.iter().map(String::as_str).collect();
        new.retain(|l| !old.contains(l.as_str()));
    }
    LabelSet::new(existing, &new)
}

/// Passes over `rows` training rows when `--epochs` is not given: the paper fine-tunes its
/// small tasks (RTE, STS: 2.5k and 5.7k rows) for 10 epochs and the others for 3.
pub fn default_epochs(rows: usize) -> usize {
    if rows < 10_000 {
        10
    } else {
        3
    }
}

/// Fine-tunes and saves; returns the final evaluation accuracy (if an eval file was given).
pub fn run(a: &FinetuneArgs) -> Result<Option<f64>> {
    let (pre, tok) = load_with_tokenizer(&a.model, WeightFormat::F32)?;
    let train = read_labeled(&a.train)?;
    let labels = labels_for(&pre, &train)?;
    let eval = a.eval.as_ref().map(|p| read_labeled(p)).transpose()?;
    let train_rows = encode_all(&tok, &pre, &train, &labels, a.seq_len)?;
    let eval_rows = eval.as_ref().map(|e| encode_all(&tok, &pre, e, &labels, a.seq_len)).transpose()?;
    let steps_per_epoch = train_rows.len().div_ceil(a.batch_size);
    let epochs = a.epochs.unwrap_or(default_epochs(train_rows.len()));
    let mut opts = a.opts.clone();
    if opts.total_steps == 0 {
        opts.total_steps = (steps_per_epoch * epochs) as u64;
        opts.warmup_steps = opts.total_steps / 10;
    }
    drop(pre);
    let mut ft = FineTuner::new(&a.model, labels.names(), opts)?;
    eprintln!(
        "fine-tuning on {} examples ({} labels: {:?}), {} epochs of {} steps, peak learning rate {:e}, {} pooling",
        train_rows.len(),
        labels.len(),
        labels.names(),
        epochs,
        steps_per_epoch,
        ft.opts.learning_rate.unwrap_or_default(),
        ft.classifier().head.pool.as_str()
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.opts.seed);
    let mut order = train_rows.clone();
    let mut last = None;
    let mut history = Vec::new();
    for epoch in 0..epochs {
        order.shuffle(&mut rng);
        let (mut loss, mut acc, mut n) = (0.0, 0.0, 0);
        for (batch, ys) in batches(&tok, &order, a.batch_size) {
            let s = ft.train_step(&batch.as_model_input(), &ys)?;
            loss += s.loss as f64;
            acc += s.accuracy as f64;
            n += 1;
        }
        let mut line =
            format!("epoch {}: train loss {:.4}, train accuracy {:.3}", epoch + 1, loss / n as f64, acc / n as f64);
        if let Some(rows) = &eval_rows {
            let (device, threads, simd, tf32) = (a.opts.device, a.opts.threads, a.opts.simd, a.opts.tf32);
            let opts = SessionOptions { device, threads, simd, tf32, ..Default::default() };
            let mut s = Session::with_options(Arc::new(ft.model()?), &opts)?;
            let ev = accuracy(&mut s, &tok, rows, labels.len())?;
            line += &format!(", eval accuracy {ev:.4} ({} examples)", rows.len());
            last = Some(ev);
        }
        history.push(serde_json::json!({
            "epoch": epoch + 1, "train_loss": loss / n as f64, "train_accuracy": acc / n as f64, "eval_accuracy": last,
        }));
        eprintln!("{line}");
    }
    // One record per epoch, for scripts (scripts/replicate.sh reads the last eval_accuracy).
    let report = serde_json::json!({ "epochs": history, "eval_examples": eval_rows.as_ref().map(Vec::len) });
    // The tokenizer and the report are part of the classifier's commit: the next save into the
    // same directory replaces them as its own entries, and nothing else there.
    ft.save_with(&a.out, |tmp| {
        save_tokenizer_into(&tok, tmp)?;
        write_atomic(&tmp.join("finetune.json"), serde_json::to_string_pretty(&report).expect("json").as_bytes())
    })?;
    eprintln!("saved the classifier to {}", a.out.display());
    Ok(last)
}
