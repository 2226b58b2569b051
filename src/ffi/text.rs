//! The session calls that take text: embeddings, classification, replaced-token detection and
//! fill-mask (see `crate::text`), and the label names they answer with.

use super::handle::{lock, FfiHandle};
use super::model::electra_model;
use super::session::electra_session;
use super::status::*;
use super::tokenizer::{electra_text, electra_tokenizer, inputs_at, read_params, text_at, texts_at, write_string};
use super::{guard, StructSized};
use crate::data::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::text::{self, Pooling, TextOptions};
use std::ffi::c_char;
use std::sync::Arc;

/// `electra_text_params.pooling`: the mean over the text's tokens (the default).
pub const ELECTRA_POOLING_MEAN: u32 = 0;
/// `electra_text_params.pooling`: the `[CLS]` token's state.
pub const ELECTRA_POOLING_CLS: u32 = 1;

/// How the `electra_session_*_text*` calls run; start from `electra_text_default_params()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct electra_text_params {
    /// `sizeof(electra_text_params)`, set by `electra_text_default_params`.
    pub struct_size: u32,
    /// Texts per forward pass (0, the default: 32). Texts are sorted by length and padded per
    /// batch; results do not depend on it.
    pub batch_size: u32,
    /// Cut each text to this many tokens, `[CLS]`/`[SEP]` included (0, the default: the model's
    /// `max_position_embeddings`; more than that is `ELECTRA_ERR_INVALID_ARGUMENT`).
    pub max_length: u32,
    /// Embeddings: `ELECTRA_POOLING_MEAN` (the default) or `ELECTRA_POOLING_CLS`.
    pub pooling: u32,
    /// Embeddings: 1 to scale each to unit length (cosine similarity is then a dot product);
    /// 0, the default: as pooled.
    pub normalize: i32,
}

// SAFETY: `#[repr(C)]` with `struct_size: u32` first (checked at compile time below).
unsafe impl StructSized for electra_text_params {}
const _: () = assert!(std::mem::offset_of!(electra_text_params, struct_size) == 0);

/// The defaults of `electra_text_params`: batches of 32, the model's length limit, mean pooling,
/// not normalised.
/// Returned by value at this version's size: a later version that appends fields keeps this
/// function and adds another, so a caller never receives more than it declared.
#[no_mangle]
pub extern "C" fn electra_text_default_params() -> electra_text_params {
    electra_text_params {
        struct_size: std::mem::size_of::<electra_text_params>() as u32,
        batch_size: 0,
        max_length: 0,
        pooling: ELECTRA_POOLING_MEAN,
        normalize: 0,
    }
}

/// One word of `electra_session_detect_text`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct electra_word_score {
    /// Byte offset of the word's first byte in the text.
    pub start: u32,
    /// Byte offset past its last byte.
    pub end: u32,
    /// Probability that the word was replaced (the largest of its WordPiece pieces').
    pub score: f32,
}

/// One candidate of `electra_session_fill_mask_text`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct electra_token_score {
    /// The token id (`electra_tokenizer_id_to_token` gives its text).
    pub id: i32,
    /// Its probability at that position.
    pub score: f32,
}

/// Everything a text call needs: the locked session, the tokenizer (the caller's, else the
/// model's) and the options.
///
/// # Safety
/// `params` NULL or valid for `params->struct_size` bytes.
unsafe fn prepare(
    t: *const electra_tokenizer,
    params: *const electra_text_params,
    s: &Session,
) -> Result<(Arc<Tokenizer>, TextOptions)> {
    let tok = if t.is_null() {
        s.model().tokenizer.get()?.clone()
    } else {
        let tok = (*electra_tokenizer::get(t)?).clone();
        text::check_vocab(&tok, s.model())?;
        tok
    };
    // SAFETY: forwarded contract.
    let p = unsafe { read_params(params, electra_text_default_params(), "electra_text_params")? };
    let pooling = match p.pooling {
        ELECTRA_POOLING_MEAN => Pooling::Mean,
        ELECTRA_POOLING_CLS => Pooling::Cls,
        other => {
            return Err(Error::arg(format!("pooling {other}: expected ELECTRA_POOLING_MEAN or ELECTRA_POOLING_CLS")))
        }
    };
    let opts = TextOptions {
        batch_size: p.batch_size as usize,
        max_length: p.max_length as usize,
        pooling,
        normalize: p.normalize != 0,
    };
    Ok((tok, opts))
}

/// Copies `src` into the caller's `out` of `out_len`, or fails with nothing written.
///
/// # Safety
/// `out` NULL or `out_len` writable elements.
unsafe fn deliver<T: Copy>(src: &[T], out: *mut T, out_len: usize) -> Result<()> {
    if out_len < src.len() {
        return Err(Error::BufferTooSmall { needed: src.len(), got: out_len });
    }
    // SAFETY: `out` holds `out_len >= src.len()` elements (the contract) and is not ours.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), out, src.len()) };
    Ok(())
}

/// Checks an output array before any work: non-NULL, and at least `needed` long.
fn check_out<T>(out: *mut T, out_len: usize, needed: usize) -> Result<()> {
    if out.is_null() {
        return Err(Error::NullPointer("out"));
    }
    if out_len < needed {
        return Err(Error::BufferTooSmall { needed, got: out_len });
    }
    Ok(())
}

/// Sentence embeddings of `n` texts: writes `n * hidden_size` floats (`electra_model_info`'s
/// `hidden_size`), row-major, pooled from the discriminator's (or a classifier's) last hidden
/// states as `params` says. `t` NULL uses the model's own tokenizer (`electra_model_tokenizer`).
/// Texts are tokenized as HF does (`[CLS] text [SEP]`), cut to `params->max_length`, and run in
/// padded batches sorted by length: each embedding equals that text's alone to rounding
/// (1e-6). An `out_len` below `n * hidden_size` is `ELECTRA_ERR_BUFFER_TOO_SMALL`, checked
/// before any work; on any error nothing is written.
///
/// # Safety
/// `texts` must hold `n` `electra_text`s; `out` `out_len` floats; `params` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn electra_session_embed_texts(
    s: *mut electra_session,
    t: *const electra_tokenizer,
    texts: *const electra_text,
    n: usize,
    params: *const electra_text_params,
    out: *mut f32,
    out_len: usize,
) -> electra_status {
    guard(|| {
        let handle = electra_session::get(s)?;
        let mut sess = lock(&handle, "session")?;
        // SAFETY: forwarded contract.
        let (tok, opts) = unsafe { prepare(t, params, &sess)? };
        let h = text::embedding_width(sess.model())?;
        check_out(out, out_len, n.checked_mul(h).ok_or_else(|| Error::arg("n too large"))?)?;
        // SAFETY: `texts` holds `n` texts (the contract).
        let texts = unsafe { texts_at(texts, n, "texts")? };
        let v = text::embed_texts(&mut sess, &tok, &texts, &opts)?;
        // SAFETY: `out` holds `out_len` floats (the contract).
        unsafe { deliver(&v, out, out_len) }
    })
}

/// Class probabilities of `n` texts (with `pairs` non-NULL: text pairs, as sentence-pair tasks
/// read them) from a fine-tuned classifier: writes `n * num_labels` floats (`electra_model_info`'s
/// `num_labels`), row-major; each row is a softmax (with one label: the raw regression output).
/// Label `i`'s name is `electra_model_label_name(m, i, ...)`. Otherwise as
/// `electra_session_embed_texts`; a model without a classifier is `ELECTRA_ERR_UNSUPPORTED`.
///
/// # Safety
/// `texts` (and `pairs` when non-NULL) must hold `n` `electra_text`s; `out` `out_len` floats.
#[no_mangle]
pub unsafe extern "C" fn electra_session_classify_texts(
    s: *mut electra_session,
    t: *const electra_tokenizer,
    texts: *const electra_text,
    pairs: *const electra_text,
    n: usize,
    params: *const electra_text_params,
    out: *mut f32,
    out_len: usize,
) -> electra_status {
    guard(|| {
        let handle = electra_session::get(s)?;
        let mut sess = lock(&handle, "session")?;
        // SAFETY: forwarded contract.
        let (tok, opts) = unsafe { prepare(t, params, &sess)? };
        let l = text::label_count(sess.model())?;
        check_out(out, out_len, n.checked_mul(l).ok_or_else(|| Error::arg("n too large"))?)?;
        // SAFETY: the text arrays hold `n` texts (the contract).
        let inputs = unsafe { inputs_at(texts, pairs, n)? };
        let v = text::classify_texts(&mut sess, &tok, &inputs, &opts)?;
        // SAFETY: `out` holds `out_len` floats (the contract).
        unsafe { deliver(&v, out, out_len) }
    })
}

/// Replaced-token detection on one text: for each word (as BERT splits words: at whitespace and
/// punctuation) its byte span and the probability that it was replaced, in text order, into
/// `out` (`cap` entries); `*n_words` gets their number. Ask for it first with `out` NULL and
/// `cap` 0 (status OK; that tokenizes only, without running the model). A `cap` below `*n_words` is `ELECTRA_ERR_BUFFER_TOO_SMALL` with
/// `*n_words` set and nothing written. Words past `params->max_length` tokens are not scored.
///
/// # Safety
/// `text` NULL (when `len` is 0) or `len` readable bytes; `out` NULL or `cap` entries; `n_words`
/// a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_session_detect_text(
    s: *mut electra_session,
    t: *const electra_tokenizer,
    text: *const c_char,
    len: usize,
    params: *const electra_text_params,
    out: *mut electra_word_score,
    cap: usize,
    n_words: *mut usize,
) -> electra_status {
    guard(|| {
        let handle = electra_session::get(s)?;
        let mut sess = lock(&handle, "session")?;
        if n_words.is_null() {
            return Err(Error::NullPointer("n_words"));
        }
        // SAFETY: forwarded contract.
        let (tok, opts) = unsafe { prepare(t, params, &sess)? };
        // SAFETY: `text` holds `len` bytes (the contract).
        let text = unsafe { text_at(electra_text { data: text, len }, "text", 0)? };
        if out.is_null() && cap == 0 {
            // The size from tokenization alone: no forward pass.
            let n = text::detect_word_count(sess.model(), &tok, text, &opts)?;
            // SAFETY: `n_words` is non-NULL (checked) and valid for a write.
            unsafe { *n_words = n };
            return Ok(());
        }
        let words = text::detect_text(&mut sess, &tok, text, &opts)?;
        // SAFETY: as above.
        unsafe { *n_words = words.len() };
        check_out(out, cap, words.len())?;
        let v: Vec<electra_word_score> =
            words.iter().map(|w| electra_word_score { start: w.start, end: w.end, score: w.score }).collect();
        // SAFETY: `out` holds `cap` entries (the contract).
        unsafe { deliver(&v, out, cap) }
    })
}

/// Fill-mask on one text holding `[MASK]` tokens: the `top_k` most likely tokens at each mask,
/// best first, from the generator, into `out` (`n_masks * top_k` entries, mask by mask in text
/// order); `*n_masks` gets the number of masks. Ask for it first with `out` NULL and `cap` 0
/// (that tokenizes only).
/// A text without `[MASK]` is `ELECTRA_ERR_INVALID_ARGUMENT`; a model without a generator
/// `ELECTRA_ERR_UNSUPPORTED`; a `cap` below `n_masks * top_k` `ELECTRA_ERR_BUFFER_TOO_SMALL`
/// (with `*n_masks` set, nothing written). `top_k` above the vocabulary size is cut to it.
///
/// # Safety
/// As `electra_session_detect_text`.
#[no_mangle]
pub unsafe extern "C" fn electra_session_fill_mask_text(
    s: *mut electra_session,
    t: *const electra_tokenizer,
    text: *const c_char,
    len: usize,
    top_k: usize,
    params: *const electra_text_params,
    out: *mut electra_token_score,
    cap: usize,
    n_masks: *mut usize,
) -> electra_status {
    guard(|| {
        let handle = electra_session::get(s)?;
        let mut sess = lock(&handle, "session")?;
        if n_masks.is_null() {
            return Err(Error::NullPointer("n_masks"));
        }
        // SAFETY: forwarded contract.
        let (tok, opts) = unsafe { prepare(t, params, &sess)? };
        // SAFETY: `text` holds `len` bytes (the contract).
        let text = unsafe { text_at(electra_text { data: text, len }, "text", 0)? };
        if out.is_null() && cap == 0 {
            // The size from tokenization alone: no forward pass.
            let n = text::mask_count(sess.model(), &tok, text, &opts)?;
            if n == 0 {
                return Err(Error::arg("the text has no [MASK] token (within max_length)"));
            }
            if sess.model().gen().is_none() {
                return Err(Error::Unsupported("fill-mask needs a generator (masked LM) model".into()));
            }
            // SAFETY: `n_masks` is non-NULL (checked) and valid for a write.
            unsafe { *n_masks = n };
            return Ok(());
        }
        let masks = text::fill_mask_text(&mut sess, &tok, text, top_k, &opts)?;
        // SAFETY: as above.
        unsafe { *n_masks = masks.len() };
        let v: Vec<electra_token_score> =
            masks.iter().flatten().map(|c| electra_token_score { id: c.id, score: c.score }).collect();
        check_out(out, cap, v.len())?;
        // SAFETY: `out` holds `cap` entries (the contract).
        unsafe { deliver(&v, out, cap) }
    })
}

/// The name of label `i` of a classifier (config.json's `id2label`; `LABEL_<i>` where it has
/// none) into `buf`, NUL-terminated, `*len` its length (as `electra_tokenizer_decode` writes
/// strings). A model without a classifier is `ELECTRA_ERR_UNSUPPORTED`; `i` at or past
/// `num_labels` `ELECTRA_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `buf` NULL or `cap` writable bytes; `len` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_model_label_name(
    m: *const electra_model,
    i: usize,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> electra_status {
    guard(|| {
        let model = electra_model::get(m)?;
        let cls = model.cls().ok_or_else(|| Error::Unsupported("the model has no classifier, so no labels".into()))?;
        let names = crate::model::classifier::label_names(&cls.config);
        let name = names
            .get(i)
            .ok_or_else(|| Error::arg(format!("label {i} out of range: the classifier has {} labels", names.len())))?;
        // SAFETY: `buf` and `len` as the contract says.
        unsafe { write_string(name, buf, cap, len) }
    })
}

/// Encodes training texts into one padded batch cut to `limit` tokens (or `params->max_length`
/// when smaller and set).
///
/// # Safety
/// `params` NULL or valid for `params->struct_size` bytes.
unsafe fn training_batch(
    tok: &Tokenizer,
    inputs: &[crate::data::tokenizer::TextInput<'_>],
    params: *const electra_text_params,
    limit: usize,
) -> Result<crate::data::tokenizer::Encoded> {
    // SAFETY: forwarded contract.
    let p = unsafe { read_params(params, electra_text_default_params(), "electra_text_params")? };
    let max_length = match p.max_length as usize {
        0 => limit,
        n if n <= limit => n,
        n => return Err(Error::arg(format!("max_length {n} exceeds the {limit} tokens a step takes"))),
    };
    tok.encode_batch(inputs, &crate::data::tokenizer::EncodeOptions { add_special_tokens: true, max_length })
}

fn batch_of(e: &crate::data::tokenizer::Encoded) -> crate::session::Batch<'_> {
    crate::session::Batch {
        input_ids: &e.input_ids,
        attention_mask: Some(&e.attention_mask),
        token_type_ids: Some(&e.token_type_ids),
        batch: e.batch,
        seq_len: e.seq_len,
    }
}

/// `electra_finetuner_step` on text: `n` texts (with `pairs` non-NULL, text pairs) and their `n`
/// labels, tokenized as `electra_session_classify_texts` does (cut to `params->max_length`, 0:
/// the model's positions; `batch_size`, `pooling` and `normalize` are not used), as one batch
/// padded to its longest text. `t` NULL uses the tokenizer beside the model the fine-tuner
/// started from (which `electra_finetuner_save` saves with the classifier); without one the
/// call is `ELECTRA_ERR_UNSUPPORTED`. Bad input leaves the weights untouched.
///
/// # Safety
/// `texts` (and `pairs` when non-NULL) must hold `n` `electra_text`s; `labels` `n` labels;
/// `params` NULL or valid; `stats` NULL or valid for `stats->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn electra_finetuner_step_texts(
    f: *mut super::finetune::electra_finetuner,
    t: *const electra_tokenizer,
    texts: *const electra_text,
    pairs: *const electra_text,
    n: usize,
    labels: *const i32,
    params: *const electra_text_params,
    stats: *mut super::finetune::electra_finetune_stats,
) -> electra_status {
    guard(|| {
        let handle = super::finetune::electra_finetuner::get(f)?;
        let mut ft = lock(&handle, "fine-tuner")?;
        let tok = if t.is_null() { ft.tokenizer.get()?.clone() } else { (*electra_tokenizer::get(t)?).clone() };
        if labels.is_null() {
            return Err(Error::NullPointer("labels"));
        }
        // SAFETY: `stats` is NULL or valid for `stats->struct_size` bytes (the contract).
        let stats =
            unsafe { super::SizedOut::new(stats, "stats->struct_size must be set to sizeof(electra_finetune_stats)")? };
        // SAFETY: the text arrays hold `n` texts (the contract).
        let inputs = unsafe { inputs_at(texts, pairs, n)? };
        // SAFETY: `params` as the contract says.
        let e = unsafe { training_batch(&tok, &inputs, params, ft.max_positions())? };
        // SAFETY: `labels` is non-NULL and holds `n` labels (the contract); `n` texts fit in
        // memory, so `n` labels fit in `isize` bytes.
        let s = ft.train_step(&batch_of(&e), unsafe { std::slice::from_raw_parts(labels, n) })?;
        if let Some(stats) = stats {
            stats.write(&super::finetune::electra_finetune_stats::from(&s));
        }
        Ok(())
    })
}

/// `electra_trainer_step` on text: `n` texts, each `[CLS] text [SEP]` cut to the trainer's
/// `max_seq_len` (or `params->max_length` when smaller and set), as one batch padded to its
/// longest text; the trainer masks and samples as for ids. `t` is required (a trainer made from a
/// preset has no tokenizer; its vocabulary must fit the model's). Otherwise as
/// `electra_trainer_step`.
///
/// # Safety
/// `texts` must hold `n` `electra_text`s; `params` NULL or valid; `stats` NULL or valid for
/// `stats->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_step_texts(
    tr: *mut super::trainer::electra_trainer,
    t: *const electra_tokenizer,
    texts: *const electra_text,
    n: usize,
    params: *const electra_text_params,
    stats: *mut super::trainer::electra_step_stats,
) -> electra_status {
    guard(|| {
        let h = super::trainer::electra_trainer::get(tr)?;
        let tok = electra_tokenizer::get(t)?;
        // SAFETY: `stats` is NULL or valid for `stats->struct_size` bytes (the contract).
        let stats =
            unsafe { super::SizedOut::new(stats, "stats->struct_size must be set to sizeof(electra_step_stats)")? };
        let mut trainer = lock(&h.trainer, "trainer")?;
        // SAFETY: `texts` holds `n` texts (the contract).
        let inputs = unsafe { inputs_at(texts, std::ptr::null(), n)? };
        let vocab = trainer.towers().input_config().vocab_size;
        if tok.vocab_size() > vocab {
            return Err(Error::arg(format!(
                "the tokenizer has {} entries but the model's vocabulary has {vocab}",
                tok.vocab_size()
            )));
        }
        // SAFETY: `params` as the contract says.
        let e = unsafe { training_batch(&tok, &inputs, params, trainer.opts.max_seq_len)? };
        let s = trainer.train_step(&batch_of(&e))?;
        if let Some(stats) = stats {
            stats.write(&super::trainer::electra_step_stats::from(&s));
        }
        Ok(())
    })
}
