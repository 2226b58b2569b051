//! Text in, answers out: the session calls that take text (embed, classify, replaced-token
//! detection, fill-mask), built on the [`Tokenizer`] and a [`Session`]. Texts are tokenized as HF
//! does (`[CLS] text [SEP]`, pairs `[CLS] a [SEP] b [SEP]`), cut to the model's positions, sorted
//! by length and run in padded batches; each result is what the same text alone gives (to
//! rounding: the products sum over a padded row in another order).

pub use crate::data::tokenizer::AttachedTokenizer;
use crate::data::tokenizer::{EncodeOptions, Encoded, TextInput, Tokenizer};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::session::{Batch, Session};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per forward when a call does not say (a batch of 32 short rows fills the kernels; longer
/// batches only cost memory).
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// How a sentence embedding pools the last hidden states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean over the text's tokens (`[CLS]` and `[SEP]` included, padding not), as
    /// sentence-transformers pools.
    #[default]
    Mean,
    /// The `[CLS]` state.
    Cls,
}

impl Pooling {
    /// `"mean"` or `"cls"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            other => Err(Error::arg(format!("pooling {other:?}: expected \"mean\" or \"cls\""))),
        }
    }
}

/// Options of the text calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Rows per forward (0: [`DEFAULT_BATCH_SIZE`]). Results do not depend on it.
    pub batch_size: usize,
    /// Cut texts to this many tokens, special tokens included (0: the model's
    /// `max_position_embeddings`; larger is an error).
    pub max_length: usize,
    /// Embeddings: how to pool.
    pub pooling: Pooling,
    /// Embeddings: scale each to unit L2 norm.
    pub normalize: bool,
}

/// One word of [`detect_text`]: its byte span in the text and the probability that it was
/// replaced (the largest of its pieces': a word is replaced when any piece is).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WordScore {
    /// Byte offset of the word's first byte.
    pub start: u32,
    /// Byte offset past the word's last byte.
    pub end: u32,
    /// Probability that the word was replaced, in [0, 1].
    pub score: f32,
}

/// One candidate of [`fill_mask_text`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenScore {
    /// The token id.
    pub id: i32,
    /// Its probability at that position.
    pub score: f32,
}

/// The folder of a model directory's tokenizer files: `dir` itself, or its `discriminator/` or
/// `generator/` (the pair layout).
pub fn tokenizer_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("discriminator"), dir.join("generator")]
        .into_iter()
        .find(|d| d.join("tokenizer.json").exists() || d.join("vocab.txt").exists())
}

/// Loads the tokenizer beside the model loaded from `dir`, checked against the model's
/// vocabulary (a tokenizer with more ids than the model's embeddings would index past them).
pub fn tokenizer_beside(model: &Model, dir: &Path) -> AttachedTokenizer {
    let Some(d) = tokenizer_dir(dir) else { return AttachedTokenizer::Absent };
    match Tokenizer::from_file(&d).and_then(|t| check_vocab(&t, model).map(|()| t)) {
        Ok(t) => AttachedTokenizer::Loaded(Arc::new(t)),
        Err(e) => AttachedTokenizer::Broken(e.to_string()),
    }
}

/// Fails when `tok` has ids the model's embeddings do not have.
pub fn check_vocab(tok: &Tokenizer, model: &Model) -> Result<()> {
    let v = model.input_config().vocab_size;
    if tok.vocab_size() > v {
        return Err(Error::arg(format!(
            "the tokenizer has {} entries but the model's vocabulary has {v}",
            tok.vocab_size()
        )));
    }
    Ok(())
}

/// The row length a call cuts to: `max_length` (0: the model's positions), checked.
fn row_limit(model: &Model, max_length: usize) -> Result<usize> {
    let positions = model.input_config().max_position_embeddings;
    match max_length {
        0 => Ok(positions),
        n if n > positions => {
            Err(Error::arg(format!("max_length {n} exceeds the model's max_position_embeddings {positions}")))
        }
        n => Ok(n),
    }
}

/// Encodes each input alone (no padding), cut to the model's limit.
fn encode_rows(tok: &Tokenizer, model: &Model, inputs: &[TextInput<'_>], max_length: usize) -> Result<Vec<Encoded>> {
    if inputs.is_empty() {
        return Err(Error::arg("no texts"));
    }
    let opts = EncodeOptions { add_special_tokens: true, max_length: row_limit(model, max_length)? };
    if inputs.iter().any(|i| matches!(i, TextInput::Pair(..))) && model.input_config().type_vocab_size < 2 {
        return Err(Error::Unsupported("text pairs need a model with type_vocab_size >= 2".into()));
    }
    inputs.iter().map(|i| tok.encode_batch(std::slice::from_ref(i), &opts)).collect()
}

/// Runs `f` over the rows in padded batches of similar length (longest first) and hands each
/// row's output slice (`per_token` values per token, or `per_row` per row) to `take` with the
/// row's index.
fn batched(
    s: &mut Session,
    rows: &[Encoded],
    pad: i32,
    batch_size: usize,
    width: Width,
    f: fn(&mut Session, &Batch, &mut [f32]) -> Result<()>,
    mut take: impl FnMut(usize, &Encoded, usize, &[f32]),
) -> Result<()> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i].seq_len));
    let bs = if batch_size == 0 { DEFAULT_BATCH_SIZE } else { batch_size };
    let mut out = Vec::new();
    for chunk in order.chunks(bs) {
        let group: Vec<&Encoded> = chunk.iter().map(|&i| &rows[i]).collect();
        let e = Encoded::stack(&group, pad);
        let b = Batch {
            input_ids: &e.input_ids,
            attention_mask: Some(&e.attention_mask),
            token_type_ids: Some(&e.token_type_ids),
            batch: e.batch,
            seq_len: e.seq_len,
        };
        let per_row = match width {
            Width::PerToken(k) => e.seq_len * k,
            Width::PerRow(k) => k,
        };
        out.clear();
        crate::alloc::try_resize(&mut out, e.batch * per_row, 0.0, "a text batch's outputs")?;
        f(s, &b, &mut out)?;
        for (r, &i) in chunk.iter().enumerate() {
            take(i, &e, r, &out[r * per_row..(r + 1) * per_row]);
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Width {
    PerToken(usize),
    PerRow(usize),
}

/// The width of the embeddings [`embed_texts`] returns: the discriminator's hidden size, else
/// the classifier's.
pub fn embedding_width(model: &Model) -> Result<usize> {
    model
        .disc()
        .map(|d| d.config.hidden_size)
        .or(model.cls().map(|c| c.config.hidden_size))
        .ok_or_else(|| Error::Unsupported("embeddings need a discriminator or classifier encoder".into()))
}

/// The number of probabilities [`classify_texts`] returns per input: the classifier's labels.
pub fn label_count(model: &Model) -> Result<usize> {
    model
        .cls()
        .map(|c| c.num_labels)
        .ok_or_else(|| Error::Unsupported("classification needs a fine-tuned classifier (electra finetune)".into()))
}

/// Sentence embeddings of `texts`: `texts.len() * embedding_width` floats, row-major, pooled
/// from the discriminator's (or classifier's) last hidden states as `o` says.
pub fn embed_texts(s: &mut Session, tok: &Tokenizer, texts: &[&str], o: &TextOptions) -> Result<Vec<f32>> {
    let model = s.model().clone();
    let h = embedding_width(&model)?;
    let inputs: Vec<TextInput> = texts.iter().map(|t| TextInput::Single(t)).collect();
    let rows = encode_rows(tok, &model, &inputs, o.max_length)?;
    let mut out = crate::alloc::try_zeroed_f32(texts.len() * h, "the embeddings")?;
    batched(
        s,
        &rows,
        tok.special_ids().pad,
        o.batch_size,
        Width::PerToken(h),
        Session::hidden_states,
        |i, e, r, states| {
            let dst = &mut out[i * h..(i + 1) * h];
            let len = e.lengths[r];
            match o.pooling {
                Pooling::Cls => dst.copy_from_slice(&states[..h]),
                Pooling::Mean => {
                    for row in states.chunks_exact(h).take(len) {
                        for (d, x) in dst.iter_mut().zip(row) {
                            *d += x;
                        }
                    }
                    let inv = 1.0 / len as f32;
                    dst.iter_mut().for_each(|d| *d *= inv);
                }
            }
            if o.normalize {
                let norm = dst.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
                if norm > 0.0 {
                    let inv = (1.0 / norm) as f32;
                    dst.iter_mut().for_each(|d| *d *= inv);
                }
            }
        },
    )?;
    Ok(out)
}

/// Class probabilities of each input (softmax over the labels; with a single label, the raw
/// regression output): `inputs.len() * num_labels` floats, row-major, label `i` named by
/// [`crate::model::classifier::label_names`].
pub fn classify_texts(s: &mut Session, tok: &Tokenizer, inputs: &[TextInput<'_>], o: &TextOptions) -> Result<Vec<f32>> {
    let model = s.model().clone();
    let l = label_count(&model)?;
    let rows = encode_rows(tok, &model, inputs, o.max_length)?;
    let mut out = Vec::new();
    crate::alloc::try_resize(&mut out, inputs.len() * l, 0.0, "the class probabilities")?;
    batched(s, &rows, tok.special_ids().pad, o.batch_size, Width::PerRow(l), Session::classify, |i, _, _, logits| {
        let dst = &mut out[i * l..(i + 1) * l];
        if l == 1 {
            dst.copy_from_slice(logits);
            return;
        }
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let sum: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
        for (d, &x) in dst.iter_mut().zip(logits) {
            *d = (x - max).exp() / sum;
        }
    })?;
    Ok(out)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn require_discriminator(model: &Model) -> Result<()> {
    match model.disc() {
        Some(_) => Ok(()),
        None => Err(Error::Unsupported("replaced-token detection needs a discriminator".into())),
    }
}

/// The number of words [`detect_text`] scores for `text` (its size, from tokenization alone).
pub fn detect_word_count(model: &Model, tok: &Tokenizer, text: &str, o: &TextOptions) -> Result<usize> {
    require_discriminator(model)?;
    let e = &encode_rows(tok, model, &[TextInput::Single(text)], o.max_length)?[0];
    let mut words: Vec<i32> = e.words.iter().copied().filter(|&w| w >= 0).collect();
    words.dedup();
    Ok(words.len())
}

/// The number of `[MASK]` tokens [`fill_mask_text`] answers for (from tokenization alone).
pub fn mask_count(model: &Model, tok: &Tokenizer, text: &str, o: &TextOptions) -> Result<usize> {
    let e = &encode_rows(tok, model, &[TextInput::Single(text)], o.max_length)?[0];
    Ok(e.input_ids.iter().filter(|&&id| id == tok.special_ids().mask).count())
}

/// Replaced-token detection on a text: one [`WordScore`] per word the model saw (words past
/// `max_length` are cut), in text order.
pub fn detect_text(s: &mut Session, tok: &Tokenizer, text: &str, o: &TextOptions) -> Result<Vec<WordScore>> {
    let model = s.model().clone();
    require_discriminator(&model)?;
    let rows = encode_rows(tok, &model, &[TextInput::Single(text)], o.max_length)?;
    let e = &rows[0];
    let mut logits = vec![0.0; e.seq_len];
    let b = Batch::new(&e.input_ids, 1, e.seq_len);
    s.discriminate(&b, &mut logits)?;
    let mut words: Vec<(i32, WordScore)> = Vec::new();
    for (j, &w) in e.words.iter().enumerate() {
        if w < 0 {
            continue;
        }
        let [start, end] = e.offsets[j];
        let p = sigmoid(logits[j]);
        match words.last_mut() {
            Some((last, ws)) if *last == w => {
                ws.end = ws.end.max(end);
                ws.score = ws.score.max(p);
            }
            _ => words.push((w, WordScore { start, end, score: p })),
        }
    }
    Ok(words.into_iter().map(|(_, ws)| ws).collect())
}

/// The `k` most likely tokens at each `[MASK]` of `text`, in text order, from the generator.
pub fn fill_mask_text(
    s: &mut Session,
    tok: &Tokenizer,
    text: &str,
    k: usize,
    o: &TextOptions,
) -> Result<Vec<Vec<TokenScore>>> {
    let model = s.model().clone();
    let g = model.gen().ok_or_else(|| Error::Unsupported("fill-mask needs a generator (masked LM) model".into()))?;
    if k == 0 {
        return Err(Error::arg("top_k must be at least 1"));
    }
    let v = g.config.vocab_size;
    let rows = encode_rows(tok, &model, &[TextInput::Single(text)], o.max_length)?;
    let e = &rows[0];
    let mask = tok.special_ids().mask;
    let positions: Vec<usize> = (0..e.seq_len).filter(|&j| e.input_ids[j] == mask).collect();
    if positions.is_empty() {
        return Err(Error::arg("the text has no [MASK] token (within max_length)"));
    }
    let mut logits = Vec::new();
    crate::alloc::try_resize(&mut logits, e.seq_len * v, 0.0, "the generator's logits")?;
    s.generator_logits(&Batch::new(&e.input_ids, 1, e.seq_len), &mut logits)?;
    Ok(positions
        .iter()
        .map(|&p| {
            let l = &logits[p * v..(p + 1) * v];
            let max = l.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let sum: f64 = l.iter().map(|&x| f64::from(x - max).exp()).sum();
            let mut idx: Vec<usize> = (0..v).collect();
            let k = k.min(v);
            idx.select_nth_unstable_by(k - 1, |&a, &b| l[b].total_cmp(&l[a]).then(a.cmp(&b)));
            idx.truncate(k);
            idx.sort_by(|&a, &b| l[b].total_cmp(&l[a]).then(a.cmp(&b)));
            idx.iter()
                .map(|&i| TokenScore { id: i as i32, score: (f64::from(l[i] - max).exp() / sum) as f32 })
                .collect()
        })
        .collect())
}
