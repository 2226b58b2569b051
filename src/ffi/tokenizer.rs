//! `electra_tokenizer`: text to token ids and back, exactly as HF `tokenizers` does for the same
//! tokenizer.json. Immutable once loaded: safe to use from many threads at once.

use super::handle::FfiHandle;
use super::model::electra_model;
use super::status::*;
use super::{c_str, guard, guard_void, out_handle, SizedOut, StructSized};
use crate::data::tokenizer::{EncodeOptions, Encoded, TextInput, Tokenizer};
use crate::error::{Error, Result};
use std::ffi::c_char;
use std::path::Path;
use std::sync::Arc;

/// Opaque tokenizer handle. Free with `electra_tokenizer_free`.
// Zero-sized: an `electra_tokenizer *` is a registry id for a shared tokenizer (see handle.rs).
pub struct electra_tokenizer {
    _opaque: [u8; 0],
}

impl FfiHandle for electra_tokenizer {
    type Value = Arc<Tokenizer>;
    const MAGIC: u64 = 0x454c_4543_544f_4b4e; // "ELECTOKN"
    const NULL: &'static str = "electra_tokenizer is NULL";
    const DEAD: &'static str = "not a live electra_tokenizer: freed already, never created, or not a handle";
    const WRONG: &'static str = "not an electra_tokenizer: a live handle of another kind was passed";
}

/// A text passed by pointer and length: UTF-8, not NUL-terminated (a NUL byte is a character,
/// which the BERT normalizer drops, as HF does). `data` may be NULL when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct electra_text {
    /// The text's bytes.
    pub data: *const c_char,
    /// Their number.
    pub len: usize,
}

/// How `electra_tokenizer_encode` encodes; start from `electra_encode_default_params()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct electra_encode_params {
    /// `sizeof(electra_encode_params)`, set by `electra_encode_default_params`.
    pub struct_size: u32,
    /// 1 (the default): add the special tokens (`[CLS] a [SEP]`, `[CLS] a [SEP] b [SEP]`).
    pub add_special_tokens: i32,
    /// Cut each row to at most this many tokens, special tokens included (pairs: the longer text
    /// first). 0 (the default): no limit.
    pub max_length: u32,
}

// SAFETY: `#[repr(C)]` with `struct_size: u32` first (checked at compile time below).
unsafe impl StructSized for electra_encode_params {}
const _: () = assert!(std::mem::offset_of!(electra_encode_params, struct_size) == 0);

/// The defaults of `electra_encode_params`: special tokens added, no length limit.
/// Returned by value at this version's size: a later version that appends fields keeps this
/// function and adds another, so a caller never receives more than it declared.
#[no_mangle]
pub extern "C" fn electra_encode_default_params() -> electra_encode_params {
    electra_encode_params {
        struct_size: std::mem::size_of::<electra_encode_params>() as u32,
        add_special_tokens: 1,
        max_length: 0,
    }
}

/// Reads a caller's `*_params` struct: NULL is `default`; a `struct_size` below 4 or above the
/// library's is an error (a newer caller's fields would be ignored silently); a smaller one (an
/// older caller) keeps the defaults for the fields it lacks.
///
/// # Safety
/// `p` must be NULL or point to `p->struct_size` readable bytes.
pub(crate) unsafe fn read_params<T: StructSized>(p: *const T, default: T, what: &str) -> Result<T> {
    if p.is_null() {
        return Ok(default);
    }
    // SAFETY: `p` is non-NULL and starts with the caller's `u32 struct_size` (the contract).
    let size = unsafe { p.cast::<u32>().read_unaligned() } as usize;
    let ours = std::mem::size_of::<T>();
    if size < 4 || size > ours {
        return Err(Error::arg(format!(
            "{what}.struct_size is {size}: set it to sizeof({what}) (this library's is {ours}) by starting from \
             the *_default_params() function"
        )));
    }
    let mut out = default;
    // SAFETY: `size` bytes of `p` are readable (the contract) and `size <= sizeof(T)`, so the copy
    // stays inside `out`; byte copies need no alignment.
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&mut out as *mut T).cast::<u8>(), size) };
    Ok(out)
}

/// The `i`th text of a caller's array, checked: UTF-8, NULL only when empty.
///
/// # Safety
/// `t.data` must be NULL or hold `t.len` readable bytes alive and unchanged for `'a`.
pub(crate) unsafe fn text_at<'a>(t: electra_text, what: &str, i: usize) -> Result<&'a str> {
    if t.data.is_null() {
        if t.len == 0 {
            return Ok("");
        }
        return Err(Error::NullPointer("a text's data (NULL with a nonzero len)"));
    }
    if t.len > isize::MAX as usize {
        return Err(Error::arg(format!("{what}[{i}].len {} is not a possible length", t.len)));
    }
    // SAFETY: `data` is non-NULL and holds `len` bytes alive for `'a` (the contract).
    let bytes = unsafe { std::slice::from_raw_parts(t.data.cast::<u8>(), t.len) };
    std::str::from_utf8(bytes)
        .map_err(|e| Error::arg(format!("{what}[{i}] is not valid UTF-8: invalid byte at offset {}", e.valid_up_to())))
}

/// The texts of an `electra_text` array of `n` (`what` names it in messages).
///
/// # Safety
/// `texts` must be NULL or hold `n` `electra_text`s, each valid as [`text_at`] says.
pub(crate) unsafe fn texts_at<'a>(texts: *const electra_text, n: usize, what: &'static str) -> Result<Vec<&'a str>> {
    if texts.is_null() {
        return Err(Error::NullPointer(what));
    }
    if n == 0 {
        return Err(Error::arg(format!("{what}: n is 0, no texts")));
    }
    if n > isize::MAX as usize / std::mem::size_of::<electra_text>() {
        return Err(Error::arg(format!("{what}: n {n} is not a possible count")));
    }
    // SAFETY: `texts` holds `n` elements (the contract), whose size fits in `isize` (checked).
    let ts = unsafe { std::slice::from_raw_parts(texts, n) };
    // SAFETY: each text is valid as `text_at` requires (the contract).
    ts.iter().enumerate().map(|(i, &t)| unsafe { text_at(t, what, i) }).collect()
}

/// The inputs of a call taking texts and, optionally, their second segments.
///
/// # Safety
/// As [`texts_at`], for both arrays (`pairs` may be NULL).
pub(crate) unsafe fn inputs_at<'a>(
    texts: *const electra_text,
    pairs: *const electra_text,
    n: usize,
) -> Result<Vec<TextInput<'a>>> {
    // SAFETY: forwarded contract.
    let a = unsafe { texts_at(texts, n, "texts")? };
    if pairs.is_null() {
        return Ok(a.into_iter().map(TextInput::Single).collect());
    }
    // SAFETY: forwarded contract.
    let b = unsafe { texts_at(pairs, n, "pairs")? };
    Ok(a.into_iter().zip(b).map(|(a, b)| TextInput::Pair(a, b)).collect())
}

/// Writes `s` NUL-terminated into `buf` and its length (without the NUL) into `*len`. A `cap`
/// below `len + 1` is `ELECTRA_ERR_BUFFER_TOO_SMALL` (with `*len` set, nothing else written);
/// `buf` NULL with `cap` 0 asks the length only.
///
/// # Safety
/// `buf` must be NULL or hold `cap` writable bytes; `len` must be NULL or valid for a write.
pub(crate) unsafe fn write_string(s: &str, buf: *mut c_char, cap: usize, len: *mut usize) -> Result<()> {
    if len.is_null() {
        return Err(Error::NullPointer("len"));
    }
    // SAFETY: `len` is non-NULL and valid for a write (the contract).
    unsafe { *len = s.len() };
    if buf.is_null() {
        return if cap == 0 { Ok(()) } else { Err(Error::NullPointer("buf (NULL with a nonzero cap)")) };
    }
    if cap < s.len() + 1 {
        return Err(Error::BufferTooSmall { needed: s.len() + 1, got: cap });
    }
    // SAFETY: `buf` holds `cap >= s.len() + 1` writable bytes (the contract, checked above) and
    // cannot overlap our string.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    Ok(())
}

/// Loads a tokenizer from `path`: a model directory (its `tokenizer.json`, else `vocab.txt`; in
/// the pair layout, `discriminator/`'s or `generator/`'s), an HF `tokenizer.json` (any file
/// ending in `.json`), or a BERT `vocab.txt` (any other file; built as BERT-uncased WordPiece).
/// A tokenizer.json's own truncation and padding are ignored (the encode call's params decide).
/// On failure `*out` is NULL: `ELECTRA_ERR_IO` for an unreadable path, `ELECTRA_ERR_FORMAT` for a
/// file that is not a tokenizer or lacks `[PAD] [UNK] [CLS] [SEP] [MASK]`.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `out` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_tokenizer_load(
    path: *const c_char,
    out: *mut *mut electra_tokenizer,
) -> electra_status {
    guard(|| {
        let out = out_handle(out)?;
        // SAFETY: `path` is NULL or a NUL-terminated string (the contract).
        let path = Path::new(unsafe { c_str(path, "path")? });
        let dir = if path.is_dir() { crate::text::tokenizer_dir(path) } else { None };
        let tok = Tokenizer::from_file(dir.as_deref().unwrap_or(path))?;
        *out = electra_tokenizer::publish(Arc::new(tok))?;
        Ok(())
    })
}

/// Loads a tokenizer from the bytes of an HF `tokenizer.json` held in memory (an app's asset),
/// copied: the buffer may be freed when the call returns. Errors as `electra_tokenizer_load`.
///
/// # Safety
/// `json` must be NULL or hold `len` readable bytes; `out` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_tokenizer_load_from_memory(
    json: *const u8,
    len: usize,
    out: *mut *mut electra_tokenizer,
) -> electra_status {
    guard(|| {
        let out = out_handle(out)?;
        if json.is_null() {
            return Err(Error::NullPointer("json"));
        }
        if len > isize::MAX as usize {
            return Err(Error::arg("len is not a possible length"));
        }
        // SAFETY: `json` is non-NULL and holds `len` readable bytes (the contract).
        let bytes = unsafe { std::slice::from_raw_parts(json, len) };
        *out = electra_tokenizer::publish(Arc::new(Tokenizer::from_json_bytes(bytes, "<memory>")?))?;
        Ok(())
    })
}

/// The tokenizer saved beside a model's weights (the directory `electra_model_load` read). A
/// model without one (or loaded from memory) is `ELECTRA_ERR_UNSUPPORTED`; one whose tokenizer
/// could not be read, or has more ids than the model's vocabulary, is `ELECTRA_ERR_UNSUPPORTED`
/// with the reason. The tokenizer is shared with the model: freeing either leaves the other
/// valid. Free it with `electra_tokenizer_free`.
///
/// # Safety
/// `out` must be a valid pointer (`m` is looked up, never dereferenced).
#[no_mangle]
pub unsafe extern "C" fn electra_model_tokenizer(
    m: *const electra_model,
    out: *mut *mut electra_tokenizer,
) -> electra_status {
    guard(|| {
        let out = out_handle(out)?;
        let model = electra_model::get(m)?;
        *out = electra_tokenizer::publish(model.tokenizer.get()?.clone())?;
        Ok(())
    })
}

/// Frees a tokenizer. NULL, an already freed tokenizer and any other value are harmless no-ops.
///
/// # Safety
/// None: `t` is looked up in the registry of live handles, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn electra_tokenizer_free(t: *mut electra_tokenizer) {
    guard_void(|| electra_tokenizer::free(t))
}

/// What a tokenizer holds, filled by `electra_tokenizer_get_info`. Set `struct_size` to
/// `sizeof(electra_tokenizer_info)` first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct electra_tokenizer_info {
    /// Set by the caller: `sizeof(electra_tokenizer_info)`.
    pub struct_size: u32,
    /// Number of ids (the model's vocabulary must be at least this).
    pub vocab_size: u32,
    /// `[PAD]`.
    pub pad_id: i32,
    /// `[UNK]`.
    pub unk_id: i32,
    /// `[CLS]`.
    pub cls_id: i32,
    /// `[SEP]`.
    pub sep_id: i32,
    /// `[MASK]`.
    pub mask_id: i32,
}

// SAFETY: `#[repr(C)]` with `struct_size: u32` first (checked at compile time below).
unsafe impl StructSized for electra_tokenizer_info {}
const _: () = assert!(std::mem::offset_of!(electra_tokenizer_info, struct_size) == 0);

/// Fills `info` with the tokenizer's vocabulary size and special ids.
///
/// # Safety
/// `info` must point to at least `info->struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn electra_tokenizer_get_info(
    t: *const electra_tokenizer,
    info: *mut electra_tokenizer_info,
) -> electra_status {
    guard(|| {
        let tok = electra_tokenizer::get(t)?;
        // SAFETY: `info` is NULL or valid for `info->struct_size` bytes (the contract).
        let info = unsafe { SizedOut::new(info, "info->struct_size must be set to sizeof(electra_tokenizer_info)")? }
            .ok_or(Error::NullPointer("info"))?;
        let sp = tok.special_ids();
        info.write(&electra_tokenizer_info {
            struct_size: 0, // `write` keeps the caller's
            vocab_size: tok.vocab_size() as u32,
            pad_id: sp.pad,
            unk_id: sp.unk,
            cls_id: sp.cls,
            sep_id: sp.sep,
            mask_id: sp.mask,
        });
        Ok(())
    })
}

/// The output arrays of `electra_tokenizer_encode`.
struct EncodeOut {
    ids: *mut i32,
    mask: *mut i32,
    types: *mut i32,
    offsets: *mut u32,
    cap: usize,
}

impl EncodeOut {
    /// Copies `e` into the caller's arrays (each `cap` elements, offsets `2*cap`).
    ///
    /// # Safety
    /// As `electra_tokenizer_encode`'s arrays.
    unsafe fn write(&self, e: &Encoded) -> Result<()> {
        let n = e.input_ids.len();
        if self.ids.is_null() {
            return Err(Error::NullPointer("input_ids (NULL with a nonzero cap)"));
        }
        if self.cap < n {
            return Err(Error::BufferTooSmall { needed: n, got: self.cap });
        }
        // SAFETY: each non-NULL array holds `cap >= n` elements (offsets `2*cap`) by the contract,
        // and none overlaps our vectors.
        unsafe {
            std::ptr::copy_nonoverlapping(e.input_ids.as_ptr(), self.ids, n);
            if !self.mask.is_null() {
                std::ptr::copy_nonoverlapping(e.attention_mask.as_ptr(), self.mask, n);
            }
            if !self.types.is_null() {
                std::ptr::copy_nonoverlapping(e.token_type_ids.as_ptr(), self.types, n);
            }
            if !self.offsets.is_null() {
                std::ptr::copy_nonoverlapping(e.offsets.as_ptr().cast::<u32>(), self.offsets, 2 * n);
            }
        }
        Ok(())
    }
}

/// Encodes `n` texts (with `pairs` non-NULL: `n` text pairs, two segments each) into
/// `n * seq_len` token ids, row-major, padded with `[PAD]` to the longest row; `*seq_len` gets
/// that row length. `attention_mask` (1 = token, 0 = padding), `token_type_ids` (0 = first
/// text, 1 = second) and `offsets` (2 per token: start and end byte offsets into that token's
/// text; 0, 0 for special and padding tokens) are filled when non-NULL. The ids are HF
/// `tokenizers`' for the same tokenizer.json with truncation to `params->max_length` and padding
/// to the longest. `params` NULL: `electra_encode_default_params()`.
///
/// `cap` is the number of elements each array holds (`offsets`: `2*cap`). Ask for the size first
/// with `input_ids` NULL and `cap` 0 (status OK, only `*seq_len` written; the texts are
/// tokenized twice that way), or pass arrays of `n * max_length` when a limit is set. A `cap`
/// below `n * seq_len` is `ELECTRA_ERR_BUFFER_TOO_SMALL` with `*seq_len` set and nothing else
/// written. Texts that are not UTF-8 are `ELECTRA_ERR_INVALID_ARGUMENT` naming the text and byte.
///
/// # Safety
/// `texts` (and `pairs` when non-NULL) must hold `n` `electra_text`s whose bytes stay alive for
/// the call; each non-NULL output array must hold `cap` elements (`offsets` `2*cap`); `seq_len`
/// must be a valid pointer; `params` NULL or valid for `params->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn electra_tokenizer_encode(
    t: *const electra_tokenizer,
    texts: *const electra_text,
    pairs: *const electra_text,
    n: usize,
    params: *const electra_encode_params,
    input_ids: *mut i32,
    attention_mask: *mut i32,
    token_type_ids: *mut i32,
    offsets: *mut u32,
    cap: usize,
    seq_len: *mut usize,
) -> electra_status {
    guard(|| {
        let tok = electra_tokenizer::get(t)?;
        if seq_len.is_null() {
            return Err(Error::NullPointer("seq_len"));
        }
        // SAFETY: `params` is NULL or valid for its `struct_size` (the contract).
        let p = unsafe { read_params(params, electra_encode_default_params(), "electra_encode_params")? };
        // SAFETY: the text arrays are valid for `n` elements (the contract).
        let inputs = unsafe { inputs_at(texts, pairs, n)? };
        let opts = EncodeOptions { add_special_tokens: p.add_special_tokens != 0, max_length: p.max_length as usize };
        let e = tok.encode_batch(&inputs, &opts)?;
        // SAFETY: `seq_len` is non-NULL (checked) and valid for a write (the contract).
        unsafe { *seq_len = e.seq_len };
        if input_ids.is_null() && cap == 0 {
            return Ok(());
        }
        let out = EncodeOut { ids: input_ids, mask: attention_mask, types: token_type_ids, offsets, cap };
        // SAFETY: the arrays hold `cap` elements each (the contract).
        unsafe { out.write(&e) }
    })
}

/// The text of `n` token ids into `buf` (NUL-terminated; `*len` = its length without the NUL):
/// WordPiece pieces glued, as HF `decode` with `clean_up_tokenization_spaces`. Special tokens
/// are left out when `skip_special_tokens` is nonzero. An id outside the vocabulary is
/// `ELECTRA_ERR_INVALID_ARGUMENT`; a `cap` below `*len + 1` is `ELECTRA_ERR_BUFFER_TOO_SMALL`
/// with `*len` set (`buf` NULL with `cap` 0 asks the length).
///
/// # Safety
/// `ids` must hold `n` ids (may be NULL when `n` is 0); `buf` NULL or `cap` writable bytes; `len`
/// a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_tokenizer_decode(
    t: *const electra_tokenizer,
    ids: *const i32,
    n: usize,
    skip_special_tokens: i32,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> electra_status {
    guard(|| {
        let tok = electra_tokenizer::get(t)?;
        let ids: &[i32] = if n == 0 {
            &[]
        } else if ids.is_null() {
            return Err(Error::NullPointer("ids"));
        } else if n > isize::MAX as usize / 4 {
            return Err(Error::arg("n is not a possible count"));
        } else {
            // SAFETY: `ids` is non-NULL and holds `n` ids (the contract).
            unsafe { std::slice::from_raw_parts(ids, n) }
        };
        let text = tok.decode(ids, skip_special_tokens != 0)?;
        // SAFETY: `buf` and `len` as the contract says.
        unsafe { write_string(&text, buf, cap, len) }
    })
}

/// The id of a vocabulary entry (such as `"##ing"` or `"[MASK]"`, not text to tokenize) in
/// `*id`, or -1 when the vocabulary has no such entry (status OK).
///
/// # Safety
/// `token` must be NULL or hold `len` readable bytes; `id` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_tokenizer_token_to_id(
    t: *const electra_tokenizer,
    token: *const c_char,
    len: usize,
    id: *mut i32,
) -> electra_status {
    guard(|| {
        let tok = electra_tokenizer::get(t)?;
        if id.is_null() {
            return Err(Error::NullPointer("id"));
        }
        // SAFETY: `token` is NULL or holds `len` bytes (the contract).
        let s = unsafe { text_at(electra_text { data: token, len }, "token", 0)? };
        // SAFETY: `id` is non-NULL and valid for a write (the contract).
        unsafe { *id = tok.token_to_id(s).unwrap_or(-1) };
        Ok(())
    })
}

/// The vocabulary entry of `id` into `buf` (NUL-terminated, `*len` its length), as
/// `electra_tokenizer_decode` writes strings. An id outside the vocabulary is
/// `ELECTRA_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `buf` NULL or `cap` writable bytes; `len` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_tokenizer_id_to_token(
    t: *const electra_tokenizer,
    id: i32,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> electra_status {
    guard(|| {
        let tok = electra_tokenizer::get(t)?;
        let s = tok
            .id_to_token(id)
            .ok_or_else(|| Error::arg(format!("token id {id} outside the vocabulary (size {})", tok.vocab_size())))?;
        // SAFETY: `buf` and `len` as the contract says.
        unsafe { write_string(&s, buf, cap, len) }
    })
}
