//! Property tests of the C ABI: generated combinations of NULL / live / freed / wrong-kind /
//! made-up handles, NULL / short / exact / long buffers, lengths 0 / huge / mismatched,
//! out-of-range ids, and invalid UTF-8 or JSON options, passed to the `extern "C"` functions as
//! C would. Every call must return a status that is not ELECTRA_ERR_PANIC, a failed call must
//! write nothing to its outputs (and NULL to `*out`), and must leave a last-error message.

mod common;
use common::*;
use electra::ffi::device::*;
use electra::ffi::finetune::*;
use electra::ffi::model::*;
use electra::ffi::session::*;
use electra::ffi::status::*;
use electra::ffi::trainer::*;
use electra::ffi::*;
use proptest::prelude::*;
use std::ffi::{c_char, CStr, CString};
use std::mem::size_of;
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

/// Written into output buffers before each call; a failed call must leave it.
const SENTINEL: f32 = -31337.0;
/// Sizes that overflow `batch*seq_len` or exceed any addressable batch: refused before any
/// array is read, so no array of that size is needed.
const HUGE: usize = usize::MAX / 2 + 1;
/// The fixture (emb_lt_hidden): vocabulary 64, 32 positions, 2 token types, hidden 16; its
/// classifier has 3 labels.
const V: usize = 64;
const H: usize = 16;
const LABELS: usize = 3;

fn cases() -> ProptestConfig {
    ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() }
}

fn last_error() -> String {
    let n = unsafe { electra_last_error_message(null_mut(), 0) };
    let mut buf = vec![0u8; n + 1];
    unsafe { electra_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    CStr::from_bytes_until_nul(&buf).unwrap().to_string_lossy().into_owned()
}

/// Sets a known last-error message, so a test can tell that a failing call set its own.
fn mark_last_error() -> String {
    let mut n = 0;
    assert_ne!(unsafe { electra_device_count(-77, &mut n) }, ELECTRA_OK);
    last_error()
}

/// Checks the contract of every call: a known, non-panic status, and on failure a fresh message.
fn check_status(st: electra_status, marker: &str) -> Result<(), TestCaseError> {
    prop_assert!((ELECTRA_OK..ELECTRA_ERR_PANIC).contains(&st), "status {st}: {}", last_error());
    if st != ELECTRA_OK {
        let msg = last_error();
        prop_assert!(!msg.is_empty() && msg != marker, "status {st} left no message of its own ({msg:?})");
    }
    Ok(())
}

/// Handles shared by all cases (as addresses: raw pointers are not `Sync`). They are never
/// freed: the stale ones were freed once, at creation.
struct Pool {
    pair: usize,
    classifier: usize,
    pair_session: usize,
    cls_session: usize,
    stale_model: usize,
    stale_session: usize,
    trainer: usize,
    stale_trainer: usize,
    finetuner: usize,
    stale_finetuner: usize,
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| unsafe {
        let load = |p: &std::path::Path| {
            let mut m = null_mut();
            assert_eq!(electra_model_load(cstr(p.to_str().unwrap()).as_ptr(), &mut m), ELECTRA_OK, "{}", last_error());
            m
        };
        let session = |m: *mut electra_model| {
            let mut s = null_mut();
            let o = cstr(r#"{"threads": 1}"#);
            assert_eq!(electra_session_new_with_options(m, o.as_ptr(), &mut s), ELECTRA_OK, "{}", last_error());
            s
        };
        let trainer = || {
            let mut t = null_mut();
            let o = cstr(r#"{"vocab_size": 64, "max_seq_len": 16, "threads": 1, "mask_token_id": 4}"#);
            assert_eq!(electra_trainer_new(cstr("tiny").as_ptr(), o.as_ptr(), &mut t), ELECTRA_OK, "{}", last_error());
            t
        };
        let finetuner = || {
            let mut f = null_mut();
            let dir = cstr(fixture("emb_lt_hidden").join("classifier").to_str().unwrap());
            let o = cstr(r#"{"threads": 1}"#);
            assert_eq!(electra_finetuner_new(dir.as_ptr(), 0, o.as_ptr(), &mut f), ELECTRA_OK, "{}", last_error());
            f
        };
        let pair = load(&fixture("emb_lt_hidden"));
        let classifier = load(&fixture("emb_lt_hidden").join("classifier"));
        let stale_model = load(&fixture("emb_lt_hidden"));
        let stale_session = session(pair);
        electra_model_free(stale_model);
        electra_session_free(stale_session);
        let (stale_trainer, stale_finetuner) = (trainer(), finetuner());
        electra_trainer_free(stale_trainer);
        electra_finetuner_free(stale_finetuner);
        Pool {
            pair: pair as usize,
            classifier: classifier as usize,
            pair_session: session(pair) as usize,
            cls_session: session(classifier) as usize,
            stale_model: stale_model as usize,
            stale_session: stale_session as usize,
            trainer: trainer() as usize,
            stale_trainer: stale_trainer as usize,
            finetuner: finetuner() as usize,
            stale_finetuner: stale_finetuner as usize,
        }
    })
}

/// A handle of kind `T` for selector `k`: NULL, the live one(s), the freed one, one of another
/// kind, or a made-up value (`raw`, small or random). Returns it and whether it is live.
fn pick<T>(k: u8, live: &[usize], stale: usize, other: usize, raw: u64) -> (*mut T, bool) {
    let p = match k % 6 {
        0 => 0,
        1 | 2 => live[k as usize % live.len()],
        3 => stale,
        4 => other,
        _ => raw as usize,
    };
    let is_live = k % 6 == 1 || k % 6 == 2;
    (p as *mut T, is_live)
}

/// `batch` or `seq_len` for selector `k`.
fn dim(k: u8) -> usize {
    [0, 1, 2, 3, 33, HUGE][k as usize % 6]
}

/// Elements of the input arrays to allocate: `batch*seq_len`, or none when a dimension is HUGE
/// (then the product is 0 or is refused before any array is read).
fn tokens(batch: usize, seq: usize) -> usize {
    if batch == HUGE || seq == HUGE {
        0
    } else {
        batch * seq
    }
}

/// Input ids for selector `k` over `n` tokens: valid, out of the vocabulary, or negative.
fn ids(k: u8, n: usize) -> Vec<i32> {
    (0..n)
        .map(|i| match k % 4 {
            0 | 1 => 5 + (i % 50) as i32,
            2 => V as i32 + i as i32,
            _ => -1 - i as i32,
        })
        .collect()
}

/// An optional 0/1 array (mask, token types) for selector `k`: NULL, valid, or out of range.
fn aux(k: u8, n: usize) -> Option<Vec<i32>> {
    match k % 4 {
        0 => None,
        1 | 2 => Some((0..n).map(|i| (i % 2) as i32).collect()),
        _ => Some(vec![7; n]),
    }
}

fn ptr_of(v: &Option<Vec<i32>>) -> *const i32 {
    v.as_ref().map_or(null(), |v| v.as_ptr())
}

/// An options or path string for selector `k`: NULL, valid, malformed or not UTF-8.
fn string(k: u8, valid: &str, random: &[u8]) -> Option<Vec<u8>> {
    let s: Vec<u8> = match k % 8 {
        0 => return None,
        1 | 2 => valid.as_bytes().to_vec(),
        3 => b"{\"threads\": \xff\xfe}".to_vec(),
        4 => b"{\"threads\": ".to_vec(),
        5 => br#"{"no_such_key": 1, "learning_rate": 1e30}"#.to_vec(),
        6 => br#"{"threads": 18446744073709551615, "device": "cuda:99"}"#.to_vec(),
        _ => random.to_vec(),
    };
    Some(s.into_iter().filter(|&b| b != 0).chain([0]).collect())
}

fn cptr(s: &Option<Vec<u8>>) -> *const c_char {
    s.as_ref().map_or(null(), |s| s.as_ptr().cast())
}

proptest! {
    #![proptest_config(cases())]

    /// Inference: every handle, shape, id range and output-buffer combination.
    #[test]
    fn inference_calls_return_a_status_and_write_nothing_on_failure(
        which in 0u8..4, hk in any::<u8>(), raw in any::<u64>(), bk in any::<u8>(), tk in any::<u8>(),
        ik in any::<u8>(), mk in any::<u8>(), yk in any::<u8>(), ok in 0u8..6,
    ) {
        let p = pool();
        let (batch, seq) = (dim(bk), dim(tk));
        let n = tokens(batch, seq);
        let (input, mask, types) = (ids(ik, n), aux(mk, n), aux(yk, n));
        let per = [1, V, H, 0][which as usize];
        let needed = if which == 3 { batch.min(1 << 10) * LABELS } else { n * per };
        let live = if which == 3 { p.cls_session } else { p.pair_session };
        let (s, is_live) = pick::<electra_session>(hk, &[live], p.stale_session, p.pair, raw);
        let out_len = [0, needed.saturating_sub(1), needed, needed + 5, needed, needed][ok as usize];
        let mut out = vec![SENTINEL; out_len + 8];
        let out_ptr = if ok == 5 { null_mut() } else { out.as_mut_ptr() };
        let ids_ptr = if ik >= 250 { null() } else { input.as_ptr() };
        let f = [electra_session_discriminate, electra_session_generator_logits, electra_session_hidden_states,
                 electra_session_classify][which as usize];
        let marker = mark_last_error();
        let st = unsafe { f(s, ids_ptr, ptr_of(&mask), ptr_of(&types), batch, seq, out_ptr, out_len) };
        check_status(st, &marker)?;
        if !is_live {
            prop_assert_eq!(st, ELECTRA_ERR_INVALID_HANDLE, "{}", last_error());
        }
        if st == ELECTRA_OK {
            prop_assert!(out[..needed].iter().all(|v| v.is_finite() && *v != SENTINEL));
            prop_assert!(out[needed..].iter().all(|&v| v == SENTINEL), "wrote past the result");
        } else {
            prop_assert!(out.iter().all(|&v| v == SENTINEL), "status {} but the output was written", st);
        }
    }

    /// Creation: handles, options strings (malformed, not UTF-8, unknown keys, absurd values)
    /// and `out` pointers. `*out` is NULL after every failure.
    #[test]
    fn create_calls_return_a_status_and_null_on_failure(
        which in 0u8..5, hk in any::<u8>(), raw in any::<u64>(), sk in any::<u8>(),
        random in proptest::collection::vec(any::<u8>(), 0..24), null_out in any::<bool>(),
    ) {
        let p = pool();
        let marker = mark_last_error();
        let mut out: *mut u8 = 0x10 as *mut u8; // garbage the call must overwrite
        let out_ptr = if null_out { null_mut() } else { &mut out as *mut *mut u8 };
        let st = unsafe {
            match which {
                0 => {
                    let (m, _) = pick::<electra_model>(hk, &[p.pair, p.classifier], p.stale_model, p.pair_session, raw);
                    let o = string(sk, r#"{"threads": 1}"#, &random);
                    electra_session_new_with_options(m, cptr(&o), out_ptr.cast())
                }
                1 => {
                    let path = fixture("emb_lt_hidden");
                    let d = string(sk, path.to_str().unwrap(), &random);
                    electra_model_load(cptr(&d), out_ptr.cast())
                }
                2 => {
                    let o = string(sk, r#"{"vocab_size": 64, "max_seq_len": 8, "threads": 1, "mask_token_id": 4}"#, &random);
                    let init = string(hk, "tiny", &random);
                    electra_trainer_new(cptr(&init), cptr(&o), out_ptr.cast())
                }
                3 => {
                    let dir = fixture("emb_lt_hidden").join("classifier");
                    let d = string(hk, dir.to_str().unwrap(), &random);
                    let o = string(sk, r#"{"threads": 1}"#, &random);
                    let labels = [0, 3, 1, usize::MAX][raw as usize % 4];
                    electra_finetuner_new(cptr(&d), labels, cptr(&o), out_ptr.cast())
                }
                _ => {
                    let (t, _) = pick::<electra_trainer>(hk, &[p.trainer], p.stale_trainer, p.pair, raw);
                    electra_trainer_get_model(t, out_ptr.cast())
                }
            }
        };
        check_status(st, &marker)?;
        if null_out {
            prop_assert_ne!(st, ELECTRA_OK);
        } else if st == ELECTRA_OK {
            prop_assert!(!out.is_null());
            unsafe {
                match which {
                    0 => electra_session_free(out.cast()),
                    2 => electra_trainer_free(out.cast()),
                    3 => electra_finetuner_free(out.cast()),
                    _ => electra_model_free(out.cast()),
                }
            }
        } else {
            prop_assert!(out.is_null(), "*out is not NULL after status {}", st);
        }
    }

    /// Training steps: handles, shapes, ids, labels and the stats struct size. A failed step
    /// writes no stats.
    #[test]
    fn step_calls_return_a_status_and_write_no_stats_on_failure(
        fine in any::<bool>(), hk in any::<u8>(), raw in any::<u64>(), bk in any::<u8>(), tk in any::<u8>(),
        ik in any::<u8>(), mk in any::<u8>(), lk in 0u8..4, size in prop_oneof![Just(0u32), Just(3), Just(4), Just(12), Just(1000)],
    ) {
        let p = pool();
        let (batch, seq) = (dim(bk), [0, 1, 4, 16, 17, HUGE][tk as usize % 6]);
        let n = tokens(batch, seq);
        let (input, mask) = (ids(ik, n), aux(mk, n));
        let labels: Vec<i32> = (0..batch.min(1 << 10)).map(|i| [0, 1, 5, -1][lk as usize] + (i % 2) as i32).collect();
        // The stats struct, inside a larger sentinel-filled block: only `size` bytes may change.
        let mut block = [0xA5u8; 1024 + 8];
        block[..4].copy_from_slice(&size.to_ne_bytes());
        let before = block;
        let marker = mark_last_error();
        let st = unsafe {
            if fine {
                let (f, _) = pick::<electra_finetuner>(hk, &[p.finetuner], p.stale_finetuner, p.trainer, raw);
                let lp = if lk == 3 && hk > 128 { null() } else { labels.as_ptr() };
                electra_finetuner_step(f, input.as_ptr(), ptr_of(&mask), null(), batch, seq, lp, block.as_mut_ptr().cast())
            } else {
                let (t, _) = pick::<electra_trainer>(hk, &[p.trainer], p.stale_trainer, p.finetuner, raw);
                electra_trainer_step(t, input.as_ptr(), ptr_of(&mask), null(), batch, seq, block.as_mut_ptr().cast())
            }
        };
        check_status(st, &marker)?;
        let limit = if fine { size_of::<electra_finetune_stats>() } else { size_of::<electra_step_stats>() };
        if st == ELECTRA_OK {
            let n = (size as usize).min(limit);
            prop_assert!(block[n..] == before[n..], "bytes past struct_size were written");
        } else {
            prop_assert!(block == before, "status {} but the stats were written", st);
        }
    }

    /// The message and struct-size protocols with any capacity, size and handle; status codes
    /// and device kinds out of range.
    #[test]
    fn small_protocols_hold_for_any_argument(
        cap in 0usize..80, size in 0u32..200, hk in any::<u8>(), raw in any::<u64>(), code in any::<i32>(),
    ) {
        let p = pool();
        mark_last_error();
        let mut buf = vec![0x55u8; 96];
        let n = unsafe { electra_last_error_message(buf.as_mut_ptr().cast(), cap) };
        prop_assert!(n > 0);
        if cap > 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap();
            prop_assert!(end < cap && std::str::from_utf8(&buf[..end]).is_ok());
        }
        prop_assert!(buf[cap..].iter().all(|&b| b == 0x55), "wrote past cap");
        let name = unsafe { CStr::from_ptr(electra_status_str(code)) };
        prop_assert!(!name.to_bytes().is_empty());
        let mut count = 7usize;
        let st = unsafe { electra_device_count(code, &mut count) };
        prop_assert!(st == ELECTRA_OK || count == 0);

        let (m, _) = pick::<electra_model>(hk, &[p.pair, p.classifier], p.stale_model, p.cls_session, raw);
        let mut block = [0xA5u8; 256];
        block[..4].copy_from_slice(&size.to_ne_bytes());
        let before = block;
        let marker = mark_last_error();
        let st = unsafe { electra_model_get_info(m, block.as_mut_ptr().cast()) };
        check_status(st, &marker)?;
        let keep = if st == ELECTRA_OK { (size as usize).min(size_of::<electra_model_info>()) } else { 0 };
        prop_assert!(block[keep..] == before[keep..], "get_info wrote past struct_size or on failure");
    }
}
