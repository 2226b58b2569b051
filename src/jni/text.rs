//! JNI entry points of the text calls (`dev.electra.Tokenizer`, `Session.embedTexts` and the
//! others): like the rest of the binding, each calls the C ABI (`crate::ffi::tokenizer`,
//! `crate::ffi::text`) inside [`entry`], so handles are checked against the registry and every
//! failure is a thrown `ElectraException`.
//!
//! Texts arrive as `byte[]`s of UTF-8 that the Java side encoded strictly (a lone surrogate is an
//! `IllegalArgumentException` there, before any native call), copied out of the Java heap before
//! the call; offsets go back as UTF-8 byte offsets, which the Java side maps to `char` indices.

use super::{byte_array, check, entry, fail, handle, ints, to_jlong, R};
use crate::ffi::model::electra_model;
use crate::ffi::model::{electra_model_get_info, electra_model_info};
use crate::ffi::session::electra_session;
use crate::ffi::status::*;
use crate::ffi::text::*;
use crate::ffi::tokenizer::*;
use jni::objects::{JByteArray, JClass, JIntArray, JObject, JObjectArray, JString};
use jni::sys::{jboolean, jfloatArray, jint, jintArray, jlong, jobjectArray, jstring, JNI_FALSE};
use jni::JNIEnv;
use std::ffi::c_char;
use std::ptr::{null, null_mut};

/// The bytes of each `byte[]` of a Java `byte[][]` (null, or a null element, is
/// `ELECTRA_ERR_NULL_POINTER` naming it).
fn byte_arrays(env: &mut JNIEnv, a: &JObjectArray, what: &str) -> R<Vec<Vec<u8>>> {
    if a.is_null() {
        return Err(fail(ELECTRA_ERR_NULL_POINTER, format!("{what} is null")));
    }
    let n = env.get_array_length(a)?;
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let e = JByteArray::from(env.get_object_array_element(a, i)?);
        let b = byte_array(env, &e, &format!("{what}[{i}]"));
        env.delete_local_ref(e)?;
        out.push(b?);
    }
    Ok(out)
}

/// The second texts of pairs (`None` for a null array): as many as the first texts.
fn second_texts(env: &mut JNIEnv, b: &JObjectArray, n: usize) -> R<Option<Vec<Vec<u8>>>> {
    if b.is_null() {
        return Ok(None);
    }
    let tb = byte_arrays(env, b, "pairs")?;
    if tb.len() != n {
        return Err(fail(
            ELECTRA_ERR_SHAPE,
            format!("{n} first texts and {} second texts: pairs need as many", tb.len()),
        ));
    }
    Ok(Some(tb))
}

/// `electra_text`s over `texts` (alive while the result is used).
fn views(texts: &[Vec<u8>]) -> Vec<electra_text> {
    texts.iter().map(|t| electra_text { data: t.as_ptr().cast::<c_char>(), len: t.len() }).collect()
}

/// A C ABI string result: asks the length (`buf` NULL, `cap` 0), then fills a buffer of that size.
fn read_string(mut f: impl FnMut(*mut c_char, usize, *mut usize) -> electra_status) -> R<String> {
    let mut len = 0usize;
    check(f(null_mut(), 0, &mut len))?;
    let mut buf = vec![0u8; len + 1];
    check(f(buf.as_mut_ptr().cast(), buf.len(), &mut len))?;
    buf.truncate(len.min(buf.len() - 1));
    String::from_utf8(buf).map_err(|_| fail(ELECTRA_ERR_INTERNAL, "the library returned a string that is not UTF-8"))
}

fn new_string(env: &mut JNIEnv, s: &str) -> R<jstring> {
    Ok(env.new_string(s)?.into_raw())
}

fn new_ints<'l>(env: &mut JNIEnv<'l>, v: &[i32]) -> R<JIntArray<'l>> {
    let len = jint::try_from(v.len())
        .map_err(|_| fail(ELECTRA_ERR_INVALID_ARGUMENT, "the result would not fit a Java array"))?;
    let a = env.new_int_array(len)?;
    env.set_int_array_region(&a, 0, v)?;
    Ok(a)
}

/// A Java `int` that must be 0 or positive, as a `u32`.
fn unsigned(v: jint, what: &str) -> R<u32> {
    u32::try_from(v).map_err(|_| fail(ELECTRA_ERR_INVALID_ARGUMENT, format!("{what} is negative ({v})")))
}

/// `electra_text_params` from the Java `int[4]` {batchSize, maxLength, pooling, normalize}
/// (null: the defaults).
fn text_params(env: &mut JNIEnv, p: &JIntArray) -> R<electra_text_params> {
    let mut out = electra_text_default_params();
    if let Some(v) = ints(env, p, "params", 4, "4", false)? {
        out.batch_size = unsigned(v[0], "batchSize")?;
        out.max_length = unsigned(v[1], "maxLength")?;
        out.pooling = unsigned(v[2], "pooling")?;
        out.normalize = v[3];
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------- tokenizers

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_tokenizerLoad(mut env: JNIEnv, _cls: JClass, path: JString) -> jlong {
    entry(&mut env, 0, |env| {
        let path = super::string(env, &path, "path")?;
        let mut out = null_mut();
        // SAFETY: `path` is NUL-terminated and alive for the call; `out` valid.
        check(unsafe { electra_tokenizer_load(path.as_ptr(), &mut out) })?;
        Ok(to_jlong(out))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_tokenizerLoadMemory(
    mut env: JNIEnv,
    _cls: JClass,
    json: JByteArray,
) -> jlong {
    entry(&mut env, 0, |env| {
        let json = byte_array(env, &json, "tokenizerJson")?;
        let mut out = null_mut();
        // SAFETY: `json` holds `json.len()` bytes (a non-NULL pointer even when empty); `out` valid.
        check(unsafe { electra_tokenizer_load_from_memory(json.as_ptr(), json.len(), &mut out) })?;
        Ok(to_jlong(out))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_modelTokenizer(mut env: JNIEnv, _cls: JClass, model: jlong) -> jlong {
    entry(&mut env, 0, |_| {
        let mut out = null_mut();
        // SAFETY: `out` valid; the model is looked up.
        check(unsafe { electra_model_tokenizer(handle(model), &mut out) })?;
        Ok(to_jlong(out))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_tokenizerFree(_env: JNIEnv, _cls: JClass, h: jlong) {
    // SAFETY: the tokenizer is looked up in the registry (any value is harmless).
    unsafe { electra_tokenizer_free(handle(h)) }
}

/// {vocabSize, padId, unkId, clsId, sepId, maskId}.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_tokenizerInfo(mut env: JNIEnv, _cls: JClass, h: jlong) -> jintArray {
    entry(&mut env, null_mut(), |env| {
        let mut i = electra_tokenizer_info {
            struct_size: std::mem::size_of::<electra_tokenizer_info>() as u32,
            ..Default::default()
        };
        // SAFETY: `i` is a whole electra_tokenizer_info with struct_size set.
        check(unsafe { electra_tokenizer_get_info(handle(h), &mut i) })?;
        let v = [i.vocab_size as i32, i.pad_id, i.unk_id, i.cls_id, i.sep_id, i.mask_id];
        Ok(new_ints(env, &v)?.into_raw())
    })
}

/// Encodes `a` (with `b` non-null: the pairs `a[i]`, `b[i]`): returns `int[][]` {ids, mask,
/// types, offsets (2 per token, UTF-8 bytes), {seqLen}}.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_tokenizerEncode(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    a: JObjectArray,
    b: JObjectArray,
    add_special: jboolean,
    max_length: jint,
) -> jobjectArray {
    entry(&mut env, null_mut(), |env| {
        let ta = byte_arrays(env, &a, "texts")?;
        let tb = second_texts(env, &b, ta.len())?;
        let va = views(&ta);
        let vb = tb.as_deref().map(views);
        let pb = vb.as_ref().map_or(null(), |v| v.as_ptr());
        let mut p = electra_encode_default_params();
        p.add_special_tokens = i32::from(add_special != JNI_FALSE);
        p.max_length = unsigned(max_length, "maxLength")?;
        let n = ta.len();
        let mut seq_len = 0usize;
        // SAFETY: `va` (and `vb`) hold `n` texts over bytes alive for the call; NULL arrays with
        // cap 0 ask the size only; `seq_len` valid.
        check(unsafe {
            electra_tokenizer_encode(
                handle(h),
                va.as_ptr(),
                pb,
                n,
                &p,
                null_mut(),
                null_mut(),
                null_mut(),
                null_mut(),
                0,
                &mut seq_len,
            )
        })?;
        let cap = n
            .checked_mul(seq_len)
            .filter(|&c| c.checked_mul(2).is_some_and(|c2| c2 <= i32::MAX as usize))
            .ok_or_else(|| fail(ELECTRA_ERR_INVALID_ARGUMENT, "the encoding would not fit a Java array"))?;
        let (mut ids, mut mask, mut types) = (vec![0i32; cap], vec![0i32; cap], vec![0i32; cap]);
        let mut offsets = vec![0u32; 2 * cap];
        // SAFETY: as above; each output holds `cap` elements (offsets `2*cap`).
        check(unsafe {
            electra_tokenizer_encode(
                handle(h),
                va.as_ptr(),
                pb,
                n,
                &p,
                ids.as_mut_ptr(),
                mask.as_mut_ptr(),
                types.as_mut_ptr(),
                offsets.as_mut_ptr(),
                cap,
                &mut seq_len,
            )
        })?;
        let offsets: Vec<i32> = offsets.iter().map(|&o| o as i32).collect();
        let rows = [&ids[..], &mask[..], &types[..], &offsets[..], &[seq_len as i32][..]];
        let out = env.new_object_array(rows.len() as jint, "[I", JObject::null())?;
        for (i, r) in rows.iter().enumerate() {
            let arr = new_ints(env, r)?;
            env.set_object_array_element(&out, i as jint, &arr)?;
            env.delete_local_ref(arr)?;
        }
        Ok(out.into_raw())
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_tokenizerDecode(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    ids: JIntArray,
    skip_special: jboolean,
) -> jstring {
    entry(&mut env, null_mut(), |env| {
        if ids.is_null() {
            return Err(fail(ELECTRA_ERR_NULL_POINTER, "ids is null"));
        }
        let n = env.get_array_length(&ids)? as usize;
        let ids = ints(env, &ids, "ids", n, "its length", true)?.unwrap_or_default();
        let skip = i32::from(skip_special != JNI_FALSE);
        let text = read_string(|buf, cap, len| {
            // SAFETY: `ids` holds `n` ids; `buf` NULL or `cap` bytes; `len` valid.
            unsafe { electra_tokenizer_decode(handle(h), ids.as_ptr(), n, skip, buf, cap, len) }
        })?;
        new_string(env, &text)
    })
}

/// The id of a vocabulary entry (UTF-8 bytes), or -1.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_tokenizerTokenToId(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    token: JByteArray,
) -> jint {
    entry(&mut env, -1, |env| {
        let token = byte_array(env, &token, "token")?;
        let mut id = -1;
        // SAFETY: `token` holds `token.len()` bytes; `id` valid.
        check(unsafe { electra_tokenizer_token_to_id(handle(h), token.as_ptr().cast(), token.len(), &mut id) })?;
        Ok(id)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_tokenizerIdToToken(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    id: jint,
) -> jstring {
    entry(&mut env, null_mut(), |env| {
        let s = read_string(|buf, cap, len| {
            // SAFETY: `buf` NULL or `cap` bytes; `len` valid; the tokenizer is looked up.
            unsafe { electra_tokenizer_id_to_token(handle(h), id, buf, cap, len) }
        })?;
        new_string(env, &s)
    })
}

/// The names of a model's classification labels, by id (empty without a classifier).
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_modelLabels(mut env: JNIEnv, _cls: JClass, h: jlong) -> jobjectArray {
    entry(&mut env, null_mut(), |env| {
        let m: *mut electra_model = handle(h);
        let mut i =
            electra_model_info { struct_size: std::mem::size_of::<electra_model_info>() as u32, ..Default::default() };
        // SAFETY: `i` is a whole electra_model_info with struct_size set.
        check(unsafe { electra_model_get_info(m, &mut i) })?;
        let n = i.num_labels as usize;
        let names = (0..n)
            .map(|k| {
                read_string(|buf, cap, len| {
                    // SAFETY: `buf` NULL or `cap` bytes; `len` valid; the model is looked up.
                    unsafe { electra_model_label_name(m, k, buf, cap, len) }
                })
            })
            .collect::<R<Vec<String>>>()?;
        let out = env.new_object_array(names.len() as jint, "java/lang/String", JObject::null())?;
        for (k, name) in names.iter().enumerate() {
            let s = env.new_string(name)?;
            env.set_object_array_element(&out, k as jint, &s)?;
            env.delete_local_ref(s)?;
        }
        Ok(out.into_raw())
    })
}

// ---------------------------------------------------------------------------------- sessions

/// `kind` 0: embeddings of `a` (`width` = the embedding size); 1: class probabilities of `a` (or
/// of the pairs `a[i]`, `b[i]`; `width` = the number of labels). `tok` 0: the model's tokenizer.
/// Returns `a.length * width` floats, row-major.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_dev_electra_Native_sessionTexts(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    tok: jlong,
    kind: jint,
    a: JObjectArray,
    b: JObjectArray,
    params: JIntArray,
    width: jlong,
) -> jfloatArray {
    entry(&mut env, null_mut(), |env| {
        let p = text_params(env, &params)?;
        let ta = byte_arrays(env, &a, "texts")?;
        let tb = second_texts(env, &b, ta.len())?;
        let n = ta.len();
        let needed = usize::try_from(width)
            .ok()
            .and_then(|w| n.checked_mul(w))
            .filter(|&k| k <= i32::MAX as usize)
            .ok_or_else(|| fail(ELECTRA_ERR_INVALID_ARGUMENT, "the result would not fit a Java array"))?;
        let va = views(&ta);
        let vb = tb.as_deref().map(views);
        let pb = vb.as_ref().map_or(null(), |v| v.as_ptr());
        let s: *mut electra_session = handle(h);
        let t: *const electra_tokenizer = handle(tok);
        let mut out = vec![0f32; needed];
        // SAFETY: `va` (and `vb`) hold `n` texts over bytes alive for the call; `out` holds
        // `needed` floats (a dangling, non-NULL pointer when empty, never written then); `p` is
        // a whole electra_text_params; the session and tokenizer are looked up.
        check(unsafe {
            match kind {
                0 => electra_session_embed_texts(s, t, va.as_ptr(), n, &p, out.as_mut_ptr(), needed),
                1 => electra_session_classify_texts(s, t, va.as_ptr(), pb, n, &p, out.as_mut_ptr(), needed),
                _ => return Err(fail(ELECTRA_ERR_INVALID_ARGUMENT, format!("unknown text call {kind}"))),
            }
        })?;
        let arr = env.new_float_array(needed as jint)?;
        env.set_float_array_region(&arr, 0, &out)?;
        Ok(arr.into_raw())
    })
}

/// Replaced-token detection: 3 ints per word, {start, end (UTF-8 bytes), the score's float
/// bits}.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_sessionDetectText(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    tok: jlong,
    text: JByteArray,
    params: JIntArray,
) -> jintArray {
    entry(&mut env, null_mut(), |env| {
        let p = text_params(env, &params)?;
        let text = byte_array(env, &text, "text")?;
        let s: *mut electra_session = handle(h);
        let t: *const electra_tokenizer = handle(tok);
        let mut n = 0usize;
        // SAFETY: `text` holds `text.len()` bytes; NULL with cap 0 asks the word count only.
        check(unsafe {
            electra_session_detect_text(s, t, text.as_ptr().cast(), text.len(), &p, null_mut(), 0, &mut n)
        })?;
        let mut words = vec![electra_word_score::default(); n.max(1)];
        // SAFETY: as above; `words` holds `words.len()` entries.
        check(unsafe {
            electra_session_detect_text(
                s,
                t,
                text.as_ptr().cast(),
                text.len(),
                &p,
                words.as_mut_ptr(),
                words.len(),
                &mut n,
            )
        })?;
        words.truncate(n);
        let v: Vec<i32> = words.iter().flat_map(|w| [w.start as i32, w.end as i32, w.score.to_bits() as i32]).collect();
        Ok(new_ints(env, &v)?.into_raw())
    })
}

/// Fill-mask: {nMasks, k, then per mask k pairs {id, the score's float bits}}, best first.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_sessionFillMask(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    tok: jlong,
    text: JByteArray,
    top_k: jint,
    params: JIntArray,
) -> jintArray {
    entry(&mut env, null_mut(), |env| {
        if top_k <= 0 {
            return Err(fail(ELECTRA_ERR_INVALID_ARGUMENT, format!("topK must be at least 1 (got {top_k})")));
        }
        let p = text_params(env, &params)?;
        let text = byte_array(env, &text, "text")?;
        let s: *mut electra_session = handle(h);
        let t: *const electra_tokenizer = handle(tok);
        let k = top_k as usize;
        let mut masks = 0usize;
        // SAFETY: `text` holds `text.len()` bytes; NULL with cap 0 asks the mask count only.
        check(unsafe {
            electra_session_fill_mask_text(s, t, text.as_ptr().cast(), text.len(), k, &p, null_mut(), 0, &mut masks)
        })?;
        let cap = masks
            .checked_mul(k)
            .filter(|&c| c.checked_mul(2).is_some_and(|c2| c2 <= i32::MAX as usize - 2))
            .ok_or_else(|| fail(ELECTRA_ERR_INVALID_ARGUMENT, "the result would not fit a Java array"))?;
        // Id -1 marks what the call did not write: `top_k` above the vocabulary is cut to it.
        let mut cands = vec![electra_token_score { id: -1, score: 0.0 }; cap.max(1)];
        // SAFETY: as above; `cands` holds `cands.len()` entries.
        check(unsafe {
            electra_session_fill_mask_text(
                s,
                t,
                text.as_ptr().cast(),
                text.len(),
                k,
                &p,
                cands.as_mut_ptr(),
                cands.len(),
                &mut masks,
            )
        })?;
        let written = cands.iter().take_while(|c| c.id >= 0).count();
        let per = written.checked_div(masks).unwrap_or(0);
        let mut v = Vec::with_capacity(2 + 2 * written);
        v.extend([masks as i32, per as i32]);
        v.extend(cands[..per * masks].iter().flat_map(|c| [c.id, c.score.to_bits() as i32]));
        Ok(new_ints(env, &v)?.into_raw())
    })
}
