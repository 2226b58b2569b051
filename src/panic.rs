//! Keeping panic messages off the host's stderr. [`super::guard`] catches every panic, but the
//! panic hook runs first and, by default, prints the message. This module installs (once) a hook
//! that stays quiet while the panicking thread is inside an electra C ABI call, or is a pool worker
//! running part of one (the call's context travels with its tasks: `backend::cpu::pool::Ctx`),
//! and stores the message (with its location) for the last-error message
//! instead. Every other panic goes to the hook that was installed before, so a Rust host's own
//! panics print exactly as they did.

use std::cell::{Cell, RefCell};
use std::sync::{Mutex, Once};

thread_local! {
    /// Nesting depth of C ABI calls on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// The message of the last quiet panic on this thread.
    static MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The last quiet panic on a pool worker (the calling thread gets the payload from rayon, but
/// not the location).
static WORKER_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// Whether this thread is inside a C ABI call.
pub(crate) fn in_call() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

thread_local! {
    /// This thread is working for a C ABI call (set by the CPU pool for each task it runs).
    static WORKER_QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as working (or not) for a C ABI call; returns the previous mark. The CPU
/// pool sets it around each task, so this module needs nothing from the backend.
pub(crate) fn set_worker_quiet(quiet: bool) -> bool {
    WORKER_QUIET.with(|q| q.replace(quiet))
}

fn quiet() -> bool {
    in_call() || WORKER_QUIET.with(Cell::get)
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !quiet() {
                return previous(info);
            }
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            let msg = match info.location() {
                Some(l) => format!("{msg} (at {}:{})", l.file(), l.line()),
                None => msg,
            };
            if in_call() {
                MESSAGE.with(|m| {
                    if let Ok(mut m) = m.try_borrow_mut() {
                        *m = Some(msg);
                    }
                });
            } else if let Ok(mut w) = WORKER_MESSAGE.lock() {
                *w = Some(msg);
            }
        }));
    });
}

/// Marks this thread as inside a C ABI call until dropped; installs the hook on first use.
pub(crate) struct CallScope(());

impl CallScope {
    /// Enters a call.
    pub(crate) fn enter() -> Self {
        install_hook();
        DEPTH.with(|d| d.set(d.get() + 1));
        CallScope(())
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// The stored message of the panic just caught on this thread (or on a pool worker), if the
/// hook saw it.
pub(crate) fn take_message() -> Option<String> {
    MESSAGE
        .with(|m| m.try_borrow_mut().ok().and_then(|mut m| m.take()))
        .or_else(|| WORKER_MESSAGE.lock().ok().and_then(|mut w| w.take()))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    const MODE: &str = "ELECTRA_PANIC_TEST_MODE";

    /// Runs this test binary again, as a child running only `child` in `mode`, and returns
    /// its stderr.
    fn child_stderr(mode: &str) -> String {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args(["--exact", "panic::tests::child", "--nocapture", "--test-threads=1"])
            .env(MODE, mode)
            .output()
            .unwrap();
        assert!(out.status.success(), "child {mode} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The child's body: does nothing unless the parent set the mode.
    #[test]
    fn child() {
        let Ok(mode) = std::env::var(MODE) else { return };
        match mode.as_str() {
            "guard" => {
                let status = crate::ffi::guard(|| panic!("boom-in-guard"));
                assert_eq!(status, crate::ffi::status::ELECTRA_ERR_PANIC);
                let msg = crate::ffi::LAST_ERROR.with(|e| e.borrow().clone());
                assert!(msg.contains("boom-in-guard") && msg.contains("panic.rs"), "{msg}");
            }
            "worker" | "shared" => {
                // Three workers of a pool of its own, or the shared pool.
                let threads = if mode == "worker" { 3 } else { 0 };
                let opts = crate::backend::BackendOptions::threads(threads);
                let be = crate::backend::open(crate::backend::Device::Cpu, &opts).unwrap();
                let status = crate::ffi::guard(|| {
                    crate::backend::run(&*be, || {
                        crate::backend::cpu::par::for_each(64, |i| {
                            if i == 63 {
                                panic!("boom-in-worker")
                            }
                        });
                        Ok(())
                    })
                });
                assert_eq!(status, crate::ffi::status::ELECTRA_ERR_PANIC);
                let msg = crate::ffi::LAST_ERROR.with(|e| e.borrow().clone());
                assert!(msg.contains("boom-in-worker"), "{msg}");
            }
            "host" => {
                // First an FFI call, which installs the hook; then the host's own panic.
                assert_eq!(crate::ffi::guard(|| Ok(())), crate::ffi::status::ELECTRA_OK);
                let _ = std::panic::catch_unwind(|| panic!("host-own-panic"));
            }
            other => panic!("unknown mode {other}"),
        }
    }

    #[test]
    fn panics_inside_calls_stay_off_stderr_and_others_still_print() {
        for mode in ["guard", "worker", "shared"] {
            let err = child_stderr(mode);
            assert!(!err.contains("boom") && !err.contains("panicked"), "{mode}: stderr got: {err}");
        }
        let err = child_stderr("host");
        assert!(err.contains("host-own-panic"), "the host's own panic no longer prints: {err}");
    }
}
