//! `electra_session`: inference scratch over a shared model; one thread at a time.

use super::model::electra_model;
use super::status::*;
use super::{check_tag, guard, guard_void, in_slice};
use crate::error::{Error, Result};
use crate::session::{Batch, Session};
use std::sync::{Mutex, MutexGuard, TryLockError};

const SESSION_MAGIC: u64 = 0x454c_4543_5345_5353; // "ELECSESS"

/// Opaque inference session. Free with `electra_session_free`.
// Zero-sized: an `electra_session *` really points to a [`SessionHandle`].
pub struct electra_session {
    _opaque: [u8; 0],
}

/// What an `electra_session *` points to; `repr(C)` keeps the tag at offset 0 (see [`check_tag`]).
#[repr(C)]
struct SessionHandle {
    magic: u64,
    // A session is used by one thread at a time; the lock turns a host's accidental concurrent
    // use into a clear error instead of a data race.
    session: Mutex<Session>,
}

unsafe fn session_check(p: *mut electra_session) -> Result<()> {
    check_tag(p, SESSION_MAGIC, "electra_session is NULL", "not a live electra_session")
}

unsafe fn session_lock<'a>(p: *mut electra_session) -> Result<MutexGuard<'a, Session>> {
    session_check(p)?;
    let h = &*p.cast::<SessionHandle>();
    h.session.try_lock().map_err(|e| match e {
        TryLockError::WouldBlock => {
            Error::arg("the session is in use by another thread (a session serves one thread at a time)")
        }
        // A panic during an earlier call (already reported): the scratch buffers are only
        // overwritten by the next call, so the session stays usable.
        TryLockError::Poisoned(p) => {
            h.session.clear_poison();
            drop(p.into_inner());
            Error::Internal("the session was poisoned by an earlier panic; retry".into())
        }
    })
}

/// Creates an inference session over `m`. The session keeps the weights alive, so `m` may be
/// freed first. On failure `*out` is NULL. The first call on any session of a model builds a
/// copy of its dense-layer weights in the layout the matrix kernel reads fastest (about the
/// size of the model again, shared by all its sessions).
///
/// # Safety
/// `m` must be a live model; `out` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_session_new(
    m: *const electra_model,
    out: *mut *mut electra_session,
) -> electra_status {
    guard(|| {
        if out.is_null() {
            return Err(Error::NullPointer("out"));
        }
        *out = std::ptr::null_mut();
        let model = electra_model::from_ptr(m)?.model.clone();
        *out =
            Box::into_raw(Box::new(SessionHandle { magic: SESSION_MAGIC, session: Mutex::new(Session::new(model)?) }))
                .cast();
        Ok(())
    })
}

/// Frees a session. NULL is a no-op.
///
/// # Safety
/// `s` must be NULL or a live session.
#[no_mangle]
pub unsafe extern "C" fn electra_session_free(s: *mut electra_session) {
    guard_void(|| {
        if session_check(s).is_ok() {
            let h = s.cast::<SessionHandle>();
            (*h).magic = 0;
            drop(Box::from_raw(h));
        }
    })
}

type Run = fn(&mut Session, &Batch, &mut [f32]) -> Result<()>;

#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run(
    s: *mut electra_session,
    input_ids: *const i32,
    attention_mask: *const i32,
    token_type_ids: *const i32,
    batch: usize,
    seq_len: usize,
    out: *mut f32,
    out_len: usize,
    f: Run,
) -> electra_status {
    guard(|| {
        let mut sess = session_lock(s)?;
        if input_ids.is_null() {
            return Err(Error::NullPointer("input_ids"));
        }
        if out.is_null() {
            return Err(Error::NullPointer("out"));
        }
        let n = Batch { input_ids: &[], attention_mask: None, token_type_ids: None, batch, seq_len }.tokens()?;
        if n > isize::MAX as usize / 4 || out_len > isize::MAX as usize / 4 {
            return Err(Error::arg("batch too large"));
        }
        let b = Batch {
            input_ids: std::slice::from_raw_parts(input_ids, n),
            attention_mask: in_slice(attention_mask, n),
            token_type_ids: in_slice(token_type_ids, n),
            batch,
            seq_len,
        };
        f(&mut sess, &b, std::slice::from_raw_parts_mut(out, out_len))
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
    run(s, input_ids, attention_mask, token_type_ids, batch, seq_len, out, out_len, Session::discriminate)
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
    run(s, input_ids, attention_mask, token_type_ids, batch, seq_len, out, out_len, Session::generator_logits)
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
    run(s, input_ids, attention_mask, token_type_ids, batch, seq_len, out, out_len, Session::hidden_states)
}
