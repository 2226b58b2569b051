//! Handles a host gets wrong: used after free, freed twice, of the wrong kind, made up, and freed
//! by one thread while another is inside a call on them. Every case is a clear status, never a
//! read of freed memory or a crash (tests/c/run.sh repeats them under valgrind).

mod common;
use common::*;
use electra::ffi::finetune::*;
use electra::ffi::model::*;
use electra::ffi::session::*;
use electra::ffi::status::*;
use electra::ffi::trainer::*;
use electra::ffi::*;
use std::ffi::{CStr, CString};
use std::mem::size_of;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn last_error() -> String {
    let n = unsafe { electra_last_error_message(null_mut(), 0) };
    let mut buf = vec![0u8; n + 1];
    unsafe { electra_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap().to_owned()
}

#[track_caller]
fn expect_err(got: electra_status, want: electra_status, needle: &str) {
    let msg = last_error();
    assert_eq!(got, want, "status {got}, wanted {want} ({msg})");
    assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
}

fn load_model() -> *mut electra_model {
    let p = CString::new(fixture("emb_lt_hidden").to_str().unwrap()).unwrap();
    let mut m = null_mut();
    assert_eq!(unsafe { electra_model_load(p.as_ptr(), &mut m) }, ELECTRA_OK, "{}", last_error());
    m
}

fn new_session(m: *const electra_model) -> *mut electra_session {
    let mut s = null_mut();
    let opts = CString::new(r#"{"threads": 1}"#).unwrap();
    assert_eq!(unsafe { electra_session_new_with_options(m, opts.as_ptr(), &mut s) }, ELECTRA_OK, "{}", last_error());
    s
}

fn new_trainer() -> *mut electra_trainer {
    let init = CString::new("tiny").unwrap();
    let opts = CString::new(r#"{"vocab_size": 64, "max_seq_len": 16, "threads": 1, "mask_token_id": 4}"#).unwrap();
    let mut t = null_mut();
    assert_eq!(unsafe { electra_trainer_new(init.as_ptr(), opts.as_ptr(), &mut t) }, ELECTRA_OK, "{}", last_error());
    t
}

fn info(m: *const electra_model) -> electra_status {
    let mut i = electra_model_info { struct_size: size_of::<electra_model_info>() as u32, ..Default::default() };
    unsafe { electra_model_get_info(m, &mut i) }
}

fn discriminate(s: *mut electra_session, ids: &[i32], out: &mut [f32]) -> electra_status {
    unsafe { electra_session_discriminate(s, ids.as_ptr(), null(), null(), 1, ids.len(), out.as_mut_ptr(), out.len()) }
}

/// Handles are registry ids, never addresses: none is ever NULL, small, or inside a Go heap
/// arena, and a freed one is never handed out again.
#[test]
fn handle_values_are_never_reused_and_never_addresses() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let m = load_model();
        let v = m as usize;
        assert!(v >= 4096, "{v:#x}");
        #[cfg(target_pointer_width = "64")]
        assert!(!(0xc0_0000_0000..0x100_0000_0000).contains(&v), "{v:#x} is in Go's heap range");
        assert!(seen.insert(v), "handle {v:#x} was reused");
        unsafe { electra_model_free(m) };
    }
}

#[test]
fn use_after_free_and_double_free_are_refused() {
    let m = load_model();
    let s = new_session(m);
    let mut out = vec![7.0f32; 4];
    unsafe {
        electra_session_free(s);
        expect_err(discriminate(s, &[1, 2, 3, 4], &mut out), ELECTRA_ERR_INVALID_HANDLE, "not a live electra_session");
        assert!(out.iter().all(|&v| v == 7.0), "a failed call wrote its output");
        electra_session_free(s); // double free: a no-op
        electra_model_free(m);
        expect_err(info(m), ELECTRA_ERR_INVALID_HANDLE, "not a live electra_model");
        let mut s2 = 0x10 as *mut electra_session;
        expect_err(electra_session_new(m, &mut s2), ELECTRA_ERR_INVALID_HANDLE, "not a live electra_model");
        assert!(s2.is_null());
        electra_model_free(m);
        // A new model (perhaps at the old one's heap address) does not revive the stale handle.
        let m2 = load_model();
        assert_ne!(m2, m);
        expect_err(info(m), ELECTRA_ERR_INVALID_HANDLE, "not a live electra_model");
        assert_eq!(info(m2), ELECTRA_OK);
        electra_model_free(m2);

        let t = new_trainer();
        electra_trainer_free(t);
        let ids = [5i32; 16];
        expect_err(
            electra_trainer_step(t, ids.as_ptr(), null(), null(), 1, 16, null_mut()),
            ELECTRA_ERR_INVALID_HANDLE,
            "not a live electra_trainer",
        );
        electra_trainer_cancel(t); // a no-op on a stale handle
        electra_trainer_free(t);
    }
}

#[test]
fn wrong_kinds_and_made_up_values_are_refused() {
    let m = load_model();
    let s = new_session(m);
    let t = new_trainer();
    let ids = [1i32, 2, 3, 4];
    let mut out = vec![7.0f32; 4];
    unsafe {
        expect_err(info(s.cast()), ELECTRA_ERR_INVALID_HANDLE, "not an electra_model");
        expect_err(info(t.cast()), ELECTRA_ERR_INVALID_HANDLE, "another kind");
        expect_err(discriminate(m.cast(), &ids, &mut out), ELECTRA_ERR_INVALID_HANDLE, "not an electra_session");
        let st = electra_finetuner_step(s.cast(), ids.as_ptr(), null(), null(), 1, 4, ids.as_ptr(), null_mut());
        expect_err(st, ELECTRA_ERR_INVALID_HANDLE, "not an electra_finetuner");
        // Made-up values, among them real addresses of other memory and near-miss handle values.
        let local = 0u64;
        for bogus in
            [1usize, 0x10, 4096, &local as *const u64 as usize, usize::MAX, s as usize + (1 << 30), s as usize + 1]
        {
            expect_err(info(bogus as *const _), ELECTRA_ERR_INVALID_HANDLE, "not a live electra_model");
            expect_err(discriminate(bogus as *mut _, &ids, &mut out), ELECTRA_ERR_INVALID_HANDLE, "not a live");
            // Frees of made-up values and of the wrong kind are no-ops.
            electra_model_free(bogus as *mut _);
            electra_trainer_free(bogus as *mut _);
        }
        electra_model_free(s.cast());
        electra_session_free(t.cast());
        electra_trainer_free(m.cast());
        assert!(out.iter().all(|&v| v == 7.0), "a failed call wrote its output");
        // All three still work.
        assert_eq!(info(m), ELECTRA_OK);
        assert_eq!(discriminate(s, &ids, &mut out), ELECTRA_OK, "{}", last_error());
        electra_trainer_free(t);
        electra_session_free(s);
        electra_model_free(m);
    }
}

/// Runs `call` in a loop on another thread until it stops returning OK, frees the handle from
/// this thread meanwhile, and returns how many calls succeeded and the status that ended the loop.
fn free_while_in_use(
    call: impl Fn() -> electra_status + Send + 'static,
    free: impl FnOnce(),
) -> (usize, electra_status) {
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let worker = {
        let (ok, started) = (ok.clone(), started.clone());
        std::thread::spawn(move || loop {
            started.store(true, Ordering::SeqCst);
            let st = call();
            if st != ELECTRA_OK {
                return (st, last_error());
            }
            ok.fetch_add(1, Ordering::SeqCst);
        })
    };
    while ok.load(Ordering::SeqCst) < 3 {
        std::thread::yield_now();
    }
    assert!(started.load(Ordering::SeqCst));
    free();
    let (st, msg) = worker.join().expect("the worker did not crash");
    assert_eq!(st, ELECTRA_ERR_INVALID_HANDLE, "the loop ended with {st}: {msg}");
    assert!(msg.contains("not a live"), "{msg}");
    (ok.load(Ordering::SeqCst), st)
}

/// Freeing a trainer while another thread steps it: the step in flight finishes on the value it
/// holds, the next one is `ELECTRA_ERR_INVALID_HANDLE`, nothing crashes.
#[test]
fn freeing_a_trainer_while_it_steps_is_safe() {
    let t = new_trainer() as usize;
    let ids: Vec<i32> = (0..64).map(|k| 5 + (k * 7 % 50)).collect();
    let step = move || {
        let mut s = electra_step_stats { struct_size: size_of::<electra_step_stats>() as u32, ..Default::default() };
        let st = unsafe { electra_trainer_step(t as *mut _, ids.as_ptr(), null(), null(), 4, 16, &mut s) };
        // "in use by another thread" can never happen here: only the worker steps.
        assert_ne!(st, ELECTRA_ERR_INVALID_ARGUMENT, "{}", last_error());
        st
    };
    let (n, _) = free_while_in_use(step, || unsafe { electra_trainer_free(t as *mut _) });
    assert!(n >= 3);
}

/// Freeing a session and its model while another thread runs inference on it.
#[test]
fn freeing_a_session_while_it_runs_is_safe() {
    let m = load_model();
    let s = new_session(m) as usize;
    let m = m as usize;
    let ids: Vec<i32> = (0..32).map(|k| 5 + (k * 3 % 50)).collect();
    let run = move || {
        let mut out = vec![0.0f32; 32];
        discriminate(s as *mut _, &ids, &mut out)
    };
    free_while_in_use(run, || unsafe {
        electra_model_free(m as *mut _);
        electra_session_free(s as *mut _);
    });
}
