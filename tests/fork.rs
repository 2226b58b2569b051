//! The fork rule: a session, trainer or fine-tuner made before `fork()` is unusable in the child.
//! Every call on it there returns ELECTRA_ERR_INVALID_HANDLE with a message saying why (its
//! worker threads stayed in the parent), at once, instead of waiting forever for them; the model
//! stays usable and a new session made in the child works. The parent's handles are unaffected.
//!
//! One test in this binary: the child of a fork copies only the forking thread, so nothing else
//! of ours should be running when it forks.

use electra::ffi::finetune::*;
use electra::ffi::model::*;
use electra::ffi::session::*;
use electra::ffi::status::*;
use electra::ffi::trainer::*;
use std::ffi::CString;
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

fn fixture(parts: &[&str]) -> CString {
    let p = parts.iter().fold(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"), |p, s| p.join(s));
    CString::new(p.to_str().unwrap()).unwrap()
}

fn last_error() -> String {
    let mut buf = vec![0u8; 1024];
    // SAFETY: `buf` holds `buf.len()` writable bytes.
    let n = unsafe { electra::ffi::electra_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    String::from_utf8_lossy(&buf[..n.min(buf.len() - 1)]).into_owned()
}

const B: usize = 2;
const T: usize = 8;

fn ids() -> Vec<i32> {
    (0..B * T).map(|i| if i % T == 0 { 2 } else { 5 + (i % 7) as i32 }).collect()
}

/// Discriminator logits through the session.
///
/// # Safety
/// `s` is any value (the library checks it).
unsafe fn discriminate(s: *mut electra_session) -> electra_status {
    let (ids, mut out) = (ids(), vec![0f32; B * T]);
    // SAFETY: arrays of B*T elements.
    unsafe { electra_session_discriminate(s, ids.as_ptr(), null(), null(), B, T, out.as_mut_ptr(), out.len()) }
}

/// What the child checks; its exit code is the number of the first failed check (0: all held).
/// It runs under alarm(): a hang kills it with SIGALRM, which the parent reports.
fn child(
    model: *mut electra_model,
    s: *mut electra_session,
    t: *mut electra_trainer,
    f: *mut electra_finetuner,
) -> i32 {
    // SAFETY: alarm has no preconditions; SIGALRM's default action ends the process.
    unsafe { libc::alarm(15) };
    let forked = |st: electra_status| st == ELECTRA_ERR_INVALID_HANDLE && last_error().contains("fork()");
    // SAFETY (this block): every handle is a value the library checks; arrays hold B*T elements.
    unsafe {
        if !forked(discriminate(s)) {
            return 1;
        }
        let ids = ids();
        if !forked(electra_trainer_step(t, ids.as_ptr(), null(), null(), B, T, null_mut())) {
            return 2;
        }
        let labels = [0i32; B];
        if !forked(electra_finetuner_step(f, ids.as_ptr(), null(), null(), B, T, labels.as_ptr(), null_mut())) {
            return 3;
        }
        // Freeing forgets them; later calls are plain invalid handles.
        electra_session_free(s);
        electra_trainer_free(t);
        electra_finetuner_free(f);
        if discriminate(s) != ELECTRA_ERR_INVALID_HANDLE {
            return 4;
        }
        // The model is still usable: a session made here works.
        let mut s2 = null_mut();
        if electra_session_new_with_options(model, c"{\"threads\": 2}".as_ptr(), &mut s2) != ELECTRA_OK {
            return 5;
        }
        if discriminate(s2) != ELECTRA_OK {
            return 6;
        }
        electra_session_free(s2);
        // So does one on the shared pool, which the parent started: the child starts its own.
        let mut s3 = null_mut();
        if electra_session_new(model, &mut s3) != ELECTRA_OK {
            return 8;
        }
        if discriminate(s3) != ELECTRA_OK {
            return 9;
        }
        electra_session_free(s3);
    }
    0
}

#[test]
fn handles_from_before_fork_are_refused_in_the_child() {
    let (disc, pair) = (fixture(&["emb_lt_hidden", "discriminator"]), fixture(&["emb_lt_hidden"]));
    let (mut model, mut s, mut t, mut f) = (null_mut(), null_mut(), null_mut(), null_mut());
    let opts = c"{\"threads\": 2}";
    let topts = c"{\"threads\": 2, \"mask_token_id\": 4}";
    // SAFETY (this block): valid strings and out pointers; handles from the calls before.
    unsafe {
        assert_eq!(electra_model_load(disc.as_ptr(), &mut model), ELECTRA_OK);
        assert_eq!(electra_session_new_with_options(model, opts.as_ptr(), &mut s), ELECTRA_OK);
        assert_eq!(electra_trainer_new(pair.as_ptr(), topts.as_ptr(), &mut t), ELECTRA_OK, "{}", last_error());
        assert_eq!(electra_finetuner_new(disc.as_ptr(), 2, opts.as_ptr(), &mut f), ELECTRA_OK, "{}", last_error());
        // The pools' threads are running when the process forks.
        assert_eq!(discriminate(s), ELECTRA_OK);
    }
    // Rust API: a session's worker pool is bound to its process too (this one: the shared pool).
    let rust_model = std::sync::Arc::new(electra::hf::load(std::path::Path::new(disc.to_str().unwrap())).unwrap());
    let mut rust_session = electra::Session::new(rust_model).unwrap();
    let ids = ids();
    let mut out = vec![0f32; B * T];
    rust_session.discriminate(&electra::Batch::new(&ids, B, T), &mut out).unwrap();

    // SAFETY: fork has no preconditions; the child only runs `child` and the Rust session call,
    // then leaves with _exit (no atexit handlers, no unwinding into the test harness).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut code = child(model, s, t, f);
        if code == 0 {
            match rust_session.discriminate(&electra::Batch::new(&ids, B, T), &mut out) {
                Err(electra::Error::InvalidHandle(m)) if m.contains("fork()") => {}
                _ => code = 7,
            }
        }
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) };
    }
    let start = Instant::now();
    let status = loop {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid failed");
        if r == pid {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            // SAFETY: `pid` is our child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child hung: killed after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit normally (signal {}: SIGALRM is a hang)",
        libc::WTERMSIG(status)
    );
    assert_eq!(libc::WEXITSTATUS(status), 0, "check {} failed in the child", libc::WEXITSTATUS(status));
    // The parent's handles are unaffected.
    // SAFETY: live handles, freed once.
    unsafe {
        assert_eq!(discriminate(s), ELECTRA_OK);
        electra_session_free(s);
        electra_trainer_free(t);
        electra_finetuner_free(f);
        electra_model_free(model);
    }
}
