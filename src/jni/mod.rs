//! JNI entry points of the Java binding (bindings/java, class `dev.electra.Native`), compiled into
//! libelectra with the `jni` feature. Each one calls the C ABI (`crate::ffi`), so the Java API has
//! exactly the C contract: handles checked against the registry of live handles, a freed handle
//! `ELECTRA_ERR_INVALID_HANDLE` rather than a crash, frees that may race a call in flight.
//!
//! Nothing unwinds into the JVM and nothing is left half-done: every entry point runs inside
//! [`entry`], which catches panics like `ffi::guard` and turns every failure (a status from the C
//! ABI, a bad argument found here: a null array, a wrong length, a string that is not valid
//! Unicode or holds a NUL) into a thrown `dev.electra.ElectraException(code, message)`. Inputs
//! are copied out of the Java arrays before the call and results copied in after it, so no JNI
//! array is pinned while the library computes, and the garbage collector never waits on it.

use crate::ffi::device::electra_device_count;
use crate::ffi::finetune::*;
use crate::ffi::model::*;
use crate::ffi::session::*;
use crate::ffi::status::*;
use crate::ffi::threads::{electra_default_threads, electra_set_default_threads};
use crate::ffi::trainer::*;
use crate::ffi::{electra_abi_version, electra_last_error_message, electra_status_str, electra_version};
use jni::objects::{GlobalRef, JByteArray, JByteBuffer, JClass, JFloatArray, JIntArray, JObject, JString, JValue};
use jni::sys::{jfloatArray, jint, jlong, jlongArray, jstring};
use jni::{JNIEnv, JavaVM};
use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{null, null_mut};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

mod text;

/// A failure to report to Java: an `ELECTRA_*` status and its message.
struct Fail {
    code: electra_status,
    msg: String,
}

type R<T> = std::result::Result<T, Fail>;

fn fail(code: electra_status, msg: impl Into<String>) -> Fail {
    Fail { code, msg: msg.into() }
}

impl From<jni::errors::Error> for Fail {
    fn from(e: jni::errors::Error) -> Self {
        fail(ELECTRA_ERR_INTERNAL, format!("JNI call failed: {e}"))
    }
}

/// The calling thread's last error message of the C ABI.
fn last_error() -> String {
    // SAFETY: NULL with capacity 0 only queries the length.
    let n = unsafe { electra_last_error_message(null_mut(), 0) };
    let mut buf = vec![0u8; n + 1];
    // SAFETY: `buf` holds `buf.len()` writable bytes.
    let n = unsafe { electra_last_error_message(buf.as_mut_ptr().cast(), buf.len()) }.min(n);
    buf.truncate(n);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `Ok` for `ELECTRA_OK`, else the status with the thread's last error message.
fn check(st: electra_status) -> R<()> {
    if st == ELECTRA_OK {
        Ok(())
    } else {
        Err(fail(st, last_error()))
    }
}

/// Runs one entry point: a panic or a failure becomes a pending `ElectraException` and the
/// entry point returns `default` (which Java never sees, since the exception is thrown).
fn entry<'l, T>(env: &mut JNIEnv<'l>, default: T, f: impl FnOnce(&mut JNIEnv<'l>) -> R<T>) -> T {
    let scope = crate::panic::CallScope::enter();
    let result = catch_unwind(AssertUnwindSafe(|| f(env)));
    drop(scope);
    let failure = match result {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) => e,
        Err(p) => fail(ELECTRA_ERR_PANIC, crate::ffi::panicked(&*p)),
    };
    throw(env, failure);
    default
}

/// Throws `ElectraException(code, msg)`, unless a Java exception is already pending (a JNI call
/// that failed with one, an out-of-memory error): that one reaches the caller instead.
fn throw(env: &mut JNIEnv, f: Fail) {
    if env.exception_check().unwrap_or(true) {
        return;
    }
    let thrown = catch_unwind(AssertUnwindSafe(|| -> jni::errors::Result<()> {
        let msg = env.new_string(&f.msg)?;
        let ex = env.new_object(
            "dev/electra/ElectraException",
            "(ILjava/lang/String;)V",
            &[JValue::Int(f.code), JValue::Object(&msg)],
        )?;
        env.throw(jni::objects::JThrowable::from(ex))
    }));
    if !matches!(thrown, Ok(Ok(()))) && !env.exception_check().unwrap_or(true) {
        let _ = env.throw_new("java/lang/IllegalStateException", format!("electra: {}", f.msg));
    }
}

/// Decodes the JVM's modified UTF-8 (`GetStringUTFChars`: NUL as C0 80, supplementary
/// characters as two 3-byte surrogates) into a `String`; `None` for an unpaired surrogate.
fn decode_modified_utf8(b: &[u8]) -> Option<String> {
    if let Ok(s) = std::str::from_utf8(b) {
        return Some(s.to_owned());
    }
    let mut units = Vec::with_capacity(b.len());
    let cont = |i: usize| b.get(i).filter(|&&c| c & 0xC0 == 0x80).map(|&c| (c & 0x3F) as u16);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            units.push(c as u16);
            i += 1;
        } else if c & 0xE0 == 0xC0 {
            units.push(((c & 0x1F) as u16) << 6 | cont(i + 1)?);
            i += 2;
        } else if c & 0xF0 == 0xE0 {
            units.push(((c & 0x0F) as u16) << 12 | cont(i + 1)? << 6 | cont(i + 2)?);
            i += 3;
        } else {
            return None;
        }
    }
    String::from_utf16(&units).ok()
}

/// A required Java string as a C string: null is `ELECTRA_ERR_NULL_POINTER`; an unpaired
/// surrogate or a NUL character is `ELECTRA_ERR_INVALID_ARGUMENT` (never silently replaced, since
/// these name files).
fn string(env: &mut JNIEnv, s: &JString, what: &str) -> R<CString> {
    if s.is_null() {
        return Err(fail(ELECTRA_ERR_NULL_POINTER, format!("{what} is null")));
    }
    let decoded = {
        let js = env.get_string(s)?;
        decode_modified_utf8(js.to_bytes())
    };
    let decoded = decoded.ok_or_else(|| {
        fail(ELECTRA_ERR_INVALID_ARGUMENT, format!("{what} is not valid Unicode (an unpaired surrogate)"))
    })?;
    CString::new(decoded)
        .map_err(|_| fail(ELECTRA_ERR_INVALID_ARGUMENT, format!("{what} contains a NUL character (\\0)")))
}

/// An optional Java string (null: `None`, the C ABI's NULL), checked as [`string`].
fn opt_string(env: &mut JNIEnv, s: &JString, what: &str) -> R<Option<CString>> {
    if s.is_null() {
        Ok(None)
    } else {
        string(env, s, what).map(Some)
    }
}

fn opt_ptr(s: &Option<CString>) -> *const std::ffi::c_char {
    s.as_ref().map_or(null(), |c| c.as_ptr())
}

/// `batch*seqLen`, after checking both are positive and the product fits a Java array.
fn tokens(batch: jint, seq_len: jint) -> R<usize> {
    if batch <= 0 || seq_len <= 0 {
        return Err(fail(
            ELECTRA_ERR_INVALID_ARGUMENT,
            format!("batch ({batch}) and seqLen ({seq_len}) must be positive"),
        ));
    }
    let n = batch as usize * seq_len as usize;
    if n > i32::MAX as usize {
        return Err(fail(ELECTRA_ERR_INVALID_ARGUMENT, format!("batch too large: batch*seqLen = {n} tokens")));
    }
    Ok(n)
}

/// A Java int array of exactly `n` elements, copied: null is `ELECTRA_ERR_NULL_POINTER` when
/// `required`, else `None`; another length is `ELECTRA_ERR_SHAPE`.
fn ints(env: &mut JNIEnv, a: &JIntArray, what: &str, n: usize, want: &str, required: bool) -> R<Option<Vec<i32>>> {
    if a.is_null() {
        return if required { Err(fail(ELECTRA_ERR_NULL_POINTER, format!("{what} is null"))) } else { Ok(None) };
    }
    let len = env.get_array_length(a)? as usize;
    if len != n {
        return Err(fail(ELECTRA_ERR_SHAPE, format!("{what}.length is {len}, want {want} = {n}")));
    }
    let mut v = vec![0; n];
    env.get_int_array_region(a, 0, &mut v)?;
    Ok(Some(v))
}

/// The token inputs of a session, trainer or fine-tuner call.
struct Inputs {
    ids: Vec<i32>,
    mask: Option<Vec<i32>>,
    types: Option<Vec<i32>>,
    batch: usize,
    seq_len: usize,
    n: usize,
}

impl Inputs {
    /// The arrays and shape of a `Native.Tokens` (one object instead of five arguments).
    fn read(env: &mut JNIEnv, from: &JObject) -> R<Self> {
        if from.is_null() {
            return Err(fail(ELECTRA_ERR_NULL_POINTER, "tokens is null"));
        }
        let batch = env.get_field(from, "batch", "I")?.i()?;
        let seq_len = env.get_field(from, "seqLen", "I")?.i()?;
        let n = tokens(batch, seq_len)?;
        let want = "batch*seqLen";
        let mut array = |name: &str, required: bool| -> R<Option<Vec<i32>>> {
            let a = JIntArray::from(env.get_field(from, name, "[I")?.l()?);
            let v = ints(env, &a, name, n, want, required);
            env.delete_local_ref(a)?;
            v
        };
        let ids = array("ids", true)?.unwrap_or_default();
        let mask = array("mask", false)?;
        let types = array("types", false)?;
        Ok(Inputs { ids, mask, types, batch: batch as usize, seq_len: seq_len as usize, n })
    }

    fn mask(&self) -> *const i32 {
        self.mask.as_ref().map_or(null(), |v| v.as_ptr())
    }

    fn types(&self) -> *const i32 {
        self.types.as_ref().map_or(null(), |v| v.as_ptr())
    }
}

/// A handle value from Java (a `long` holding the C pointer's bits).
fn handle<T>(h: jlong) -> *mut T {
    h as usize as *mut T
}

fn to_jlong<T>(p: *mut T) -> jlong {
    p as usize as jlong
}

// ---------------------------------------------------------------------------------- globals

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_abiVersion(_env: JNIEnv, _cls: JClass) -> jint {
    electra_abi_version() as jint
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_version(mut env: JNIEnv, _cls: JClass) -> jstring {
    entry(&mut env, null_mut(), |env| {
        // SAFETY: electra_version returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(electra_version()) }.to_string_lossy();
        Ok(env.new_string(v)?.into_raw())
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_statusName(mut env: JNIEnv, _cls: JClass, code: jint) -> jstring {
    entry(&mut env, null_mut(), |env| {
        // SAFETY: electra_status_str returns a static NUL-terminated string for any code.
        let v = unsafe { CStr::from_ptr(electra_status_str(code)) }.to_string_lossy();
        Ok(env.new_string(v)?.into_raw())
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_deviceCount(mut env: JNIEnv, _cls: JClass, kind: jint) -> jlong {
    entry(&mut env, 0, |_| {
        let mut n = 0usize;
        // SAFETY: `n` is valid for a write.
        check(unsafe { electra_device_count(kind, &mut n) })?;
        Ok(n as jlong)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_setDefaultThreads(mut env: JNIEnv, _cls: JClass, n: jlong) {
    entry(&mut env, (), |_| {
        let n = usize::try_from(n)
            .map_err(|_| fail(ELECTRA_ERR_INVALID_ARGUMENT, format!("invalid argument: threads ({n}) is negative")))?;
        check(electra_set_default_threads(n))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_defaultThreads(mut env: JNIEnv, _cls: JClass) -> jlong {
    entry(&mut env, 0, |_| {
        let mut n = 0usize;
        // SAFETY: `n` is valid for a write.
        check(unsafe { electra_default_threads(&mut n) })?;
        Ok(n as jlong)
    })
}

// ---------------------------------------------------------------------------------- models

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_modelLoad(
    mut env: JNIEnv,
    _cls: JClass,
    path: JString,
    options: JString,
) -> jlong {
    entry(&mut env, 0, |env| {
        let path = string(env, &path, "path")?;
        let options = opt_string(env, &options, "options")?;
        let mut out = null_mut();
        // SAFETY: NUL-terminated strings alive for the call; `out` valid.
        check(unsafe { electra_model_load_with_options(path.as_ptr(), opt_ptr(&options), &mut out) })?;
        Ok(to_jlong(out))
    })
}

/// `Model.load(byte[] config, byte[]|ByteBuffer weights, options)`: exactly one of `weights`
/// (copied out of the Java heap) and `direct` (a direct buffer, read in place for the call) is
/// non-null. The model copies the weights, so the buffers are the caller's again on return.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_modelLoadMemory(
    mut env: JNIEnv,
    _cls: JClass,
    config: JByteArray,
    weights: JByteArray,
    direct: JByteBuffer,
    options: JString,
) -> jlong {
    entry(&mut env, 0, |env| {
        let config = byte_array(env, &config, "configJson")?;
        let options = opt_string(env, &options, "options")?;
        let options = options
            .as_deref()
            .map(CStr::to_str)
            .transpose()
            .map_err(|_| fail(ELECTRA_ERR_INVALID_ARGUMENT, "options is not valid UTF-8"))?;
        let mut out = null_mut();
        if !direct.is_null() {
            let ptr = env.get_direct_buffer_address(&direct)?;
            let len = env.get_direct_buffer_capacity(&direct)?;
            if ptr.is_null() && len > 0 {
                return Err(fail(ELECTRA_ERR_NULL_POINTER, "weights: a direct buffer without an address"));
            }
            let w: &[u8] = if len == 0 {
                &[]
            } else {
                // SAFETY: the JVM reports `len` bytes at `ptr` for a direct buffer, which stays
                // alive while this call holds its local reference; they are only read.
                unsafe { std::slice::from_raw_parts(ptr, len) }
            };
            check(crate::ffi::model::load_from_memory(&config, w, options, &mut out))?;
        } else {
            let w = byte_array(env, &weights, "weights")?;
            check(crate::ffi::model::load_from_memory(&config, &w, options, &mut out))?;
        }
        Ok(to_jlong(out))
    })
}

/// The bytes of a Java `byte[]` (null is `ELECTRA_ERR_NULL_POINTER` naming it).
fn byte_array(env: &mut JNIEnv, a: &JByteArray, what: &str) -> R<Vec<u8>> {
    if a.is_null() {
        return Err(fail(ELECTRA_ERR_NULL_POINTER, format!("{what} is null")));
    }
    Ok(env.convert_byte_array(a)?)
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_modelFree(_env: JNIEnv, _cls: JClass, h: jlong) {
    // SAFETY: none needed: the handle is looked up in the registry (any value is harmless).
    unsafe { electra_model_free(handle(h)) }
}

/// The fields of `electra_model_info`, in the header's order, as a `long[]`.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_modelInfo(mut env: JNIEnv, _cls: JClass, h: jlong) -> jlongArray {
    entry(&mut env, null_mut(), |env| {
        let mut i =
            electra_model_info { struct_size: std::mem::size_of::<electra_model_info>() as u32, ..Default::default() };
        // SAFETY: `i` is a whole electra_model_info with struct_size set.
        check(unsafe { electra_model_get_info(handle(h), &mut i) })?;
        let v = [
            i.vocab_size as jlong,
            i.hidden_size as jlong,
            i.embedding_size as jlong,
            i.max_position_embeddings as jlong,
            i.type_vocab_size as jlong,
            i.num_hidden_layers as jlong,
            i.has_discriminator as jlong,
            i.has_generator as jlong,
            i.generator_hidden_size as jlong,
            i.num_parameters as jlong,
            i.num_labels as jlong,
            i.weight_format as jlong,
        ];
        let a = env.new_long_array(v.len() as jint)?;
        env.set_long_array_region(&a, 0, &v)?;
        Ok(a.into_raw())
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_modelSave(mut env: JNIEnv, _cls: JClass, h: jlong, dir: JString) {
    entry(&mut env, (), |env| {
        let dir = string(env, &dir, "dir")?;
        // SAFETY: `dir` is NUL-terminated and alive for the call.
        check(unsafe { electra_model_save(handle(h), dir.as_ptr()) })
    })
}

// ---------------------------------------------------------------------------------- sessions

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_sessionNew(
    mut env: JNIEnv,
    _cls: JClass,
    model: jlong,
    options: JString,
) -> jlong {
    entry(&mut env, 0, |env| {
        let options = opt_string(env, &options, "options")?;
        let mut out = null_mut();
        // SAFETY: options NULL or NUL-terminated; `out` valid; the model is looked up.
        check(unsafe { electra_session_new_with_options(handle(model), opt_ptr(&options), &mut out) })?;
        Ok(to_jlong(out))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_sessionFree(_env: JNIEnv, _cls: JClass, h: jlong) {
    // SAFETY: none needed: the handle is looked up in the registry.
    unsafe { electra_session_free(handle(h)) }
}

/// The C functions behind `sessionRun`'s `kind`: 0 discriminate, 1 generator logits, 2 hidden
/// states, 3 classify.
type RunFn = unsafe extern "C" fn(
    *mut electra_session,
    *const i32,
    *const i32,
    *const i32,
    usize,
    usize,
    *mut f32,
    usize,
) -> electra_status;

/// One session call. `width` is the values per token (per row for classify) the Java side knows
/// from the model's info. The result goes into `out` when it is not null (at least the result's
/// length, else `ELECTRA_ERR_BUFFER_TOO_SMALL` and nothing written) and is returned; with a null
/// `out` a new array is returned.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_sessionRun(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    kind: jint,
    tokens: JObject,
    out: JFloatArray,
    width: jlong,
) -> jfloatArray {
    entry(&mut env, null_mut(), |env| {
        let f: RunFn = match kind {
            0 => electra_session_discriminate,
            1 => electra_session_generator_logits,
            2 => electra_session_hidden_states,
            3 => electra_session_classify,
            _ => return Err(fail(ELECTRA_ERR_INVALID_ARGUMENT, format!("unknown session call {kind}"))),
        };
        let x = Inputs::read(env, &tokens)?;
        let rows = if kind == 3 { x.batch } else { x.n };
        let needed = usize::try_from(width)
            .ok()
            .and_then(|w| rows.checked_mul(w))
            .filter(|&k| k <= i32::MAX as usize)
            .ok_or_else(|| fail(ELECTRA_ERR_INVALID_ARGUMENT, "the result would not fit a Java array"))?;
        if !out.is_null() {
            let cap = env.get_array_length(&out)? as usize;
            if cap < needed {
                return Err(fail(
                    ELECTRA_ERR_BUFFER_TOO_SMALL,
                    format!("dst holds {cap} floats, the result needs {needed}"),
                ));
            }
        }
        let mut buf = vec![0f32; needed];
        // SAFETY: each input array holds `x.n` = batch*seqLen elements (checked) or is NULL, and
        // `buf` holds `needed` floats; the session is looked up.
        check(unsafe {
            f(handle(h), x.ids.as_ptr(), x.mask(), x.types(), x.batch, x.seq_len, buf.as_mut_ptr(), needed)
        })?;
        if out.is_null() {
            let a = env.new_float_array(needed as jint)?;
            env.set_float_array_region(&a, 0, &buf)?;
            Ok(a.into_raw())
        } else {
            env.set_float_array_region(&out, 0, &buf)?;
            Ok(out.into_raw())
        }
    })
}

// ---------------------------------------------------------------------------------- trainers

/// A host all-reduce set on a trainer: the Java object whose `allReduce(float[])` sums in place.
struct AllReduce {
    vm: JavaVM,
    callback: GlobalRef,
    /// What the callback threw last (its `toString()`), added to the failed step's message.
    thrown: Mutex<Option<String>>,
}

/// All-reduce callbacks by trainer handle. Every trainer call holds a clone of its `Arc` for the
/// call's duration, so freeing the trainer (which drops the map's clone) while a step runs on
/// another thread never frees a callback that step may still call.
fn allreduces() -> MutexGuard<'static, HashMap<jlong, Arc<AllReduce>>> {
    static MAP: OnceLock<Mutex<HashMap<jlong, Arc<AllReduce>>>> = OnceLock::new();
    MAP.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

fn hold(h: jlong) -> Option<Arc<AllReduce>> {
    allreduces().get(&h).cloned()
}

/// [`check`] for a trainer call that may run the all-reduce: what the Java callback threw during
/// the call, if anything, is added to the message.
fn check_collective(st: electra_status, held: Option<Arc<AllReduce>>) -> R<()> {
    let thrown = held.and_then(|c| c.thrown.lock().unwrap_or_else(|p| p.into_inner()).take());
    check(st).map_err(|mut f| {
        if let Some(t) = thrown {
            f.msg = format!("{} (allReduce threw {t})", f.msg);
        }
        f
    })
}

type HostFn = unsafe extern "C" fn(*mut f32, usize, *mut c_void) -> i32;

/// The `electra_allreduce_fn` of a Java callback: copies the floats into a `float[]`, calls
/// `allReduce` on the calling (Java, hence attached) thread and copies them back. Any failure is
/// a non-zero return (the step reports `ELECTRA_ERR_DISTRIBUTED`); a Java exception, the
/// callback's or one a JNI call raised, is recorded for the step's message and cleared, so none
/// is pending while the library goes on; nothing unwinds.
extern "C" fn allreduce_trampoline(data: *mut f32, count: usize, user_data: *mut c_void) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| -> bool {
        // SAFETY: `user_data` is the `Arc<AllReduce>` registered for this trainer, kept alive by
        // the call in flight (see `allreduces`).
        let ctx = unsafe { &*(user_data as *const AllReduce) };
        let Ok(mut env) = ctx.vm.get_env() else {
            return false;
        };
        // SAFETY: the library passes `count` floats at `data`, ours for this call.
        let slice = unsafe { std::slice::from_raw_parts_mut(data, count) };
        let ok = reduce(&mut env, ctx, slice);
        if env.exception_check().unwrap_or(true) {
            let ex = env.exception_occurred().ok();
            let _ = env.exception_clear();
            let text = ex.as_ref().filter(|ex| !ex.is_null()).and_then(|ex| describe(&mut env, ex));
            if let Some(ex) = ex {
                let _ = env.delete_local_ref(ex);
            }
            *ctx.thrown.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.unwrap_or_else(|| "an exception".into()));
            return false;
        }
        ok
    }));
    match r {
        Ok(true) => 0,
        _ => 1,
    }
}

/// One call of the Java all-reduce over `slice`, in place; false on any failure.
fn reduce(env: &mut JNIEnv, ctx: &AllReduce, slice: &mut [f32]) -> bool {
    let Ok(len) = jint::try_from(slice.len()) else {
        return false;
    };
    let Ok(arr) = env.new_float_array(len) else {
        return false;
    };
    let ok = env.set_float_array_region(&arr, 0, slice).is_ok()
        && env.call_method(&ctx.callback, "allReduce", "([F)V", &[JValue::Object(&arr)]).is_ok()
        && !env.exception_check().unwrap_or(true)
        && env.get_float_array_region(&arr, 0, slice).is_ok();
    let _ = env.delete_local_ref(arr);
    ok
}

/// `ex.toString()`, leaving no exception pending (one `toString` throws is dropped).
fn describe(env: &mut JNIEnv, ex: &JObject) -> Option<String> {
    let v = env.call_method(ex, "toString", "()Ljava/lang/String;", &[]);
    if env.exception_check().unwrap_or(true) {
        let _ = env.exception_clear();
        return None;
    }
    let s = JString::from(v.ok()?.l().ok()?);
    let text = env.get_string(&s).ok().map(String::from);
    let _ = env.delete_local_ref(s);
    text
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_trainerNew(
    mut env: JNIEnv,
    _cls: JClass,
    init: JString,
    options: JString,
) -> jlong {
    entry(&mut env, 0, |env| {
        let init = string(env, &init, "init")?;
        let options = opt_string(env, &options, "options")?;
        let mut out = null_mut();
        // SAFETY: NUL-terminated strings (options may be NULL); `out` valid.
        check(unsafe { electra_trainer_new(init.as_ptr(), opt_ptr(&options), &mut out) })?;
        Ok(to_jlong(out))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_trainerResume(
    mut env: JNIEnv,
    _cls: JClass,
    dir: JString,
    options: JString,
) -> jlong {
    entry(&mut env, 0, |env| {
        let dir = string(env, &dir, "dir")?;
        let options = opt_string(env, &options, "options")?;
        let mut out = null_mut();
        // SAFETY: NUL-terminated strings (options may be NULL); `out` valid.
        check(unsafe { electra_trainer_resume_with_options(dir.as_ptr(), opt_ptr(&options), &mut out) })?;
        Ok(to_jlong(out))
    })
}

/// One pre-training step; `stats` (6 floats) receives loss, mlm_loss, disc_loss, disc_accuracy,
/// learning_rate, grad_norm; returns the step count.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_trainerStep(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    tokens: JObject,
    stats: JFloatArray,
) -> jlong {
    entry(&mut env, 0, |env| {
        let x = Inputs::read(env, &tokens)?;
        let held = hold(h);
        let mut s =
            electra_step_stats { struct_size: std::mem::size_of::<electra_step_stats>() as u32, ..Default::default() };
        // SAFETY: the arrays hold batch*seqLen elements or are NULL; `s` is a whole struct.
        let st =
            unsafe { electra_trainer_step(handle(h), x.ids.as_ptr(), x.mask(), x.types(), x.batch, x.seq_len, &mut s) };
        check_collective(st, held)?;
        if !stats.is_null() {
            let v = [s.loss, s.mlm_loss, s.disc_loss, s.disc_accuracy, s.learning_rate, s.grad_norm];
            let n = (env.get_array_length(&stats)? as usize).min(v.len());
            env.set_float_array_region(&stats, 0, &v[..n])?;
        }
        Ok(s.step as jlong)
    })
}

/// `what`: 0 save (checkpoint), 1 export (pair layout).
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_trainerWrite(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    what: jint,
    dir: JString,
) {
    entry(&mut env, (), |env| {
        let dir = string(env, &dir, "dir")?;
        let held = hold(h);
        // SAFETY: `dir` is NUL-terminated; the trainer is looked up.
        let st = unsafe {
            if what == 0 {
                electra_trainer_save(handle(h), dir.as_ptr())
            } else {
                electra_trainer_export(handle(h), dir.as_ptr())
            }
        };
        check_collective(st, held)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_trainerModel(mut env: JNIEnv, _cls: JClass, h: jlong) -> jlong {
    entry(&mut env, 0, |_| {
        let _held = hold(h);
        let mut out = null_mut();
        // SAFETY: `out` valid; the trainer is looked up.
        check(unsafe { electra_trainer_get_model(handle(h), &mut out) })?;
        Ok(to_jlong(out))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_trainerCancel(_env: JNIEnv, _cls: JClass, h: jlong) {
    // SAFETY: the trainer is looked up in the registry (any value is harmless).
    unsafe { electra_trainer_cancel(handle(h)) }
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_trainerFree(_env: JNIEnv, _cls: JClass, h: jlong) {
    // SAFETY: the trainer is looked up in the registry (any value is harmless).
    unsafe { electra_trainer_free(handle(h)) };
    // A step in flight holds its own clone of the callback until it returns.
    let removed = allreduces().remove(&h);
    drop(removed);
}

/// Sets `callback.allReduce(float[])` as the trainer's host all-reduce (see
/// `electra_trainer_set_allreduce`).
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_trainerSetAllReduce(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    callback: JObject,
) {
    entry(&mut env, (), |env| {
        if callback.is_null() {
            return Err(fail(ELECTRA_ERR_NULL_POINTER, "allReduce is null"));
        }
        let ctx = Arc::new(AllReduce {
            vm: env.get_java_vm()?,
            callback: env.new_global_ref(&callback)?,
            thrown: Mutex::new(None),
        });
        let user = Arc::as_ptr(&ctx) as *mut c_void;
        let _old = hold(h);
        // Registered before the call, so a trainer freed meanwhile still finds it removed with it;
        // on failure the previous callback (if any) goes back.
        let previous = allreduces().insert(h, ctx);
        // SAFETY: the trampoline and `user` stay valid while the map (or a call) holds the Arc.
        let st = unsafe { electra_trainer_set_allreduce(handle(h), Some(allreduce_trampoline as HostFn), user) };
        if st != ELECTRA_OK {
            let mut map = allreduces();
            match previous {
                Some(p) => map.insert(h, p),
                None => map.remove(&h),
            };
        }
        check(st)
    })
}

// ---------------------------------------------------------------------------------- fine-tuners

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_finetunerNew(
    mut env: JNIEnv,
    _cls: JClass,
    dir: JString,
    num_labels: jlong,
    options: JString,
) -> jlong {
    entry(&mut env, 0, |env| {
        let dir = string(env, &dir, "dir")?;
        let options = opt_string(env, &options, "options")?;
        let n = usize::try_from(num_labels)
            .map_err(|_| fail(ELECTRA_ERR_INVALID_ARGUMENT, format!("numLabels is negative ({num_labels})")))?;
        let mut out = null_mut();
        // SAFETY: NUL-terminated strings (options may be NULL); `out` valid.
        check(unsafe { electra_finetuner_new(dir.as_ptr(), n, opt_ptr(&options), &mut out) })?;
        Ok(to_jlong(out))
    })
}

/// One fine-tuning step; `stats` (4 floats) receives loss, accuracy, learning_rate, grad_norm;
/// returns the step count.
#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_finetunerStep(
    mut env: JNIEnv,
    _cls: JClass,
    h: jlong,
    tokens: JObject,
    labels: JIntArray,
    stats: JFloatArray,
) -> jlong {
    entry(&mut env, 0, |env| {
        let x = Inputs::read(env, &tokens)?;
        let labels = ints(env, &labels, "labels", x.batch, "batch", true)?.unwrap_or_default();
        let mut s = electra_finetune_stats {
            struct_size: std::mem::size_of::<electra_finetune_stats>() as u32,
            ..Default::default()
        };
        // SAFETY: the arrays hold batch*seqLen elements (labels: batch) or are NULL; `s` whole.
        check(unsafe {
            electra_finetuner_step(
                handle(h),
                x.ids.as_ptr(),
                x.mask(),
                x.types(),
                x.batch,
                x.seq_len,
                labels.as_ptr(),
                &mut s,
            )
        })?;
        if !stats.is_null() {
            let v = [s.loss, s.accuracy, s.learning_rate, s.grad_norm];
            let n = (env.get_array_length(&stats)? as usize).min(v.len());
            env.set_float_array_region(&stats, 0, &v[..n])?;
        }
        Ok(s.step as jlong)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_finetunerSave(mut env: JNIEnv, _cls: JClass, h: jlong, dir: JString) {
    entry(&mut env, (), |env| {
        let dir = string(env, &dir, "dir")?;
        // SAFETY: `dir` is NUL-terminated; the fine-tuner is looked up.
        check(unsafe { electra_finetuner_save(handle(h), dir.as_ptr()) })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_electra_Native_finetunerFree(_env: JNIEnv, _cls: JClass, h: jlong) {
    // SAFETY: the fine-tuner is looked up in the registry (any value is harmless).
    unsafe { electra_finetuner_free(handle(h)) }
}

#[cfg(test)]
mod tests {
    use super::decode_modified_utf8;

    #[test]
    fn modified_utf8() {
        assert_eq!(decode_modified_utf8(b"abc/\xc3\xa9").as_deref(), Some("abc/é"));
        assert_eq!(decode_modified_utf8(b"a\xc0\x80b").as_deref(), Some("a\0b"));
        // U+1F600 as a surrogate pair (D83D DE00), each in 3 bytes.
        assert_eq!(decode_modified_utf8(b"\xed\xa0\xbd\xed\xb8\x80").as_deref(), Some("\u{1F600}"));
        assert_eq!(decode_modified_utf8(b"x\xed\xa0\xbd"), None); // unpaired high surrogate
        assert_eq!(decode_modified_utf8(b"\xc3"), None);
    }
}
