//! `electra_session`: inference scratch over a shared model; one thread at a time.

use super::handle::{lock, FfiHandle};
use super::model::electra_model;
use super::status::*;
use super::{batch_from, guard, guard_void, options_str};
use crate::error::{Error, Result};
use crate::session::{Batch, Session, SessionOptions};
use std::ffi::c_char;
use std::sync::Mutex;

/// Opaque inference session. Free with `electra_session_free`.
// Zero-sized: an `electra_session *` is a registry id for a `Mutex<Session>` (see handle.rs).
// A session is used by one thread at a time; the lock turns a host's accidental concurrent use
// into a clear error instead of a data race. After a panic in an earlier call the scratch
// buffers are only overwritten by the next call, so the session stays usable (see `lock`).
pub struct electra_session {
    _opaque: [u8; 0],
}

impl FfiHandle for electra_session {
    type Value = Mutex<Session>;
    const MAGIC: u64 = 0x454c_4543_5345_5353; // "ELECSESS"
    const NULL: &'static str = "electra_session is NULL";
    const DEAD: &'static str = "not a live electra_session: freed already, never created, or not a handle";
    const WRONG: &'static str = "not an electra_session: a live handle of another kind was passed";
    const FORK_BOUND: bool = true;
}

/// Creates an inference session over `m` on the CPU, one worker thread per core (as
/// `electra_session_new_with_options(m, NULL, out)`). The session keeps the weights alive, so `m`
/// may be freed first. On failure `*out` is NULL. The first call on any session of a model builds
/// a copy of its dense-layer weights in the layout the matrix kernel reads fastest (about the
/// size of the model again, shared by all its sessions on that device).
///
/// # Safety
/// `m` must be a live model; `out` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_session_new(
    m: *const electra_model,
    out: *mut *mut electra_session,
) -> electra_status {
    // SAFETY: the same contract.
    unsafe { electra_session_new_with_options(m, std::ptr::null(), out) }
}

/// Creates an inference session over `m` with options. `options_json` is NULL (the defaults) or
/// a JSON object with the keys `device` (`"cpu"`, the default; `"cuda"` or `"cuda:N"`),
/// `threads` (host worker threads: 0, the default, the process-wide shared pool, sized by
/// `electra_set_default_threads`, one per core unless set; 1 the calling thread only, with no
/// worker thread; N >= 2 N workers, the shared pool when that is its size, else a pool of the
/// session's own; results do not depend on it), `own_pool` (true: a pool of the session's own
/// of `threads` workers, 0 = one per core, never the shared one; default false),
/// `max_memory_bytes` (a memory budget, 0 = none beyond the machine's memory, the default:
/// a call whose model plus activations would exceed it is `ELECTRA_ERR_OUT_OF_MEMORY`, with the
/// estimate and the budget in the message, before anything is allocated), `simd` (CPU: a cap on
/// the kernels' vector width, `"best"`, the default, `"avx512"`, `"avx2"`, `"neon"` or
/// `"scalar"`; results differ by rounding at most), `f32_kernel` (CPU: f32 inference's products,
/// `"packed"`, the default, or `"gemm"`) and `tf32` (CUDA: TF32 tensor-core products, default
/// false). `simd`, `f32_kernel` and `tf32` left out (or null) take `ELECTRA_SIMD`,
/// `ELECTRA_F32_KERNEL` or `ELECTRA_CUDA_TF32` from the environment when set.
/// A device that is not compiled in or not present is `ELECTRA_ERR_CUDA` with a message saying
/// which; unknown keys and bad values are `ELECTRA_ERR_INVALID_ARGUMENT`. Otherwise as
/// `electra_session_new`.
///
/// # Safety
/// `m` must be a live model; `options_json` NULL or a NUL-terminated string; `out` valid.
#[no_mangle]
pub unsafe extern "C" fn electra_session_new_with_options(
    m: *const electra_model,
    options_json: *const c_char,
    out: *mut *mut electra_session,
) -> electra_status {
    guard(|| {
        let out = super::out_handle(out)?;
        let model = electra_model::get(m)?;
        // SAFETY: `options_json` is NULL or a NUL-terminated string (the contract).
        let json = unsafe { options_str(options_json)? };
        let session = Session::with_options(model, &SessionOptions::from_json(json)?)?;
        let h = electra_session::publish(Mutex::new(session))?;
        *out = h;
        Ok(())
    })
}

/// Frees a session. NULL, an already freed session and any other value are harmless no-ops.
/// A call running on the session in another thread finishes normally; the session's memory is
/// released when it returns.
///
/// # Safety
/// None: `s` is looked up in the registry of live handles, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn electra_session_free(s: *mut electra_session) {
    guard_void(|| electra_session::free(s))
}

type Run = fn(&mut Session, &Batch, &mut [f32]) -> Result<()>;

/// The arguments of an `electra_session_*` inference call, as the caller passed them.
pub(crate) struct RunArgs {
    pub s: *mut electra_session,
    pub input_ids: *const i32,
    pub attention_mask: *const i32,
    pub token_type_ids: *const i32,
    pub batch: usize,
    pub seq_len: usize,
    pub out: *mut f32,
    pub out_len: usize,
}

/// The body of every `electra_session_*` inference call: checks the handle and arrays, then runs
/// `f` on the batch into `out`.
///
/// # Safety
/// As `electra_session_discriminate`.
pub(crate) unsafe fn run(a: RunArgs, f: Run) -> electra_status {
    let RunArgs { s, input_ids, attention_mask, token_type_ids, batch, seq_len, out, out_len } = a;
    guard(|| {
        let handle = electra_session::get(s)?;
        let mut sess = lock(&handle, "session")?;
        // `batch_from` checks this too; here it is checked before `out`, so NULL `input_ids` is
        // the error reported when both are NULL.
        if input_ids.is_null() {
            return Err(Error::NullPointer("input_ids"));
        }
        if out.is_null() {
            return Err(Error::NullPointer("out"));
        }
        // SAFETY: the input arrays hold `batch*seq_len` elements for this call (the contract).
        let b = unsafe { batch_from(input_ids, attention_mask, token_type_ids, batch, seq_len)? };
        if out_len > isize::MAX as usize / 4 {
            return Err(Error::arg("batch too large"));
        }
        // SAFETY: `out` is non-NULL and holds `out_len` writable floats (the contract), which fit
        // in `isize` bytes (checked above); the caller does not alias it with the inputs.
        f(&mut sess, &b, unsafe { std::slice::from_raw_parts_mut(out, out_len) })
    })
}

/// Replaced-token detection: writes `batch*seq_len` raw logits (row-major; > 0 means
/// "replaced") into `out`. `attention_mask` (1 = token, 0 = padding) and `token_type_ids` may be
/// NULL (all ones, all zeros). An `out_len` below `batch*seq_len` is
/// `ELECTRA_ERR_BUFFER_TOO_SMALL` and nothing is written.
///
/// # Safety
/// Input arrays must hold `batch*seq_len` elements (or be NULL where allowed); `out` must hold
/// `out_len` floats.
#[no_mangle]
pub unsafe extern "C" fn electra_session_discriminate(
    s: *mut electra_session,
    input_ids: *const i32,
    attention_mask: *const i32,
    token_type_ids: *const i32,
    batch: usize,
    seq_len: usize,
    out: *mut f32,
    out_len: usize,
) -> electra_status {
    let args = RunArgs { s, input_ids, attention_mask, token_type_ids, batch, seq_len, out, out_len };
    // SAFETY: `run` has this function's contract (see # Safety), and every argument is passed on
    // unchanged.
    unsafe { run(args, Session::discriminate) }
}

/// Generator (masked-LM) logits: writes `batch*seq_len*vocab_size` floats, row-major.
/// Same arguments and rules as `electra_session_discriminate`; a model without a generator
/// returns `ELECTRA_ERR_UNSUPPORTED`.
///
/// # Safety
/// As `electra_session_discriminate`.
#[no_mangle]
pub unsafe extern "C" fn electra_session_generator_logits(
    s: *mut electra_session,
    input_ids: *const i32,
    attention_mask: *const i32,
    token_type_ids: *const i32,
    batch: usize,
    seq_len: usize,
    out: *mut f32,
    out_len: usize,
) -> electra_status {
    let args = RunArgs { s, input_ids, attention_mask, token_type_ids, batch, seq_len, out, out_len };
    // SAFETY: `run` has this function's contract (see # Safety), and every argument is passed on
    // unchanged.
    unsafe { run(args, Session::generator_logits) }
}

/// The discriminator's last hidden states: writes `batch*seq_len*hidden_size` floats,
/// row-major. Same arguments and rules as `electra_session_discriminate`.
///
/// # Safety
/// As `electra_session_discriminate`.
#[no_mangle]
pub unsafe extern "C" fn electra_session_hidden_states(
    s: *mut electra_session,
    input_ids: *const i32,
    attention_mask: *const i32,
    token_type_ids: *const i32,
    batch: usize,
    seq_len: usize,
    out: *mut f32,
    out_len: usize,
) -> electra_status {
    let args = RunArgs { s, input_ids, attention_mask, token_type_ids, batch, seq_len, out, out_len };
    // SAFETY: `run` has this function's contract (see # Safety), and every argument is passed on
    // unchanged.
    unsafe { run(args, Session::hidden_states) }
}
