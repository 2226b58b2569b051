//! The C ABI called as C calls it: the `extern "C"` functions of src/ffi/ through raw pointers.
//! Parity with PyTorch on every fixture, every documented error path (status code, message, and
//! output buffers left untouched), the error-message and struct-size protocols, and sharing a
//! model across threads. tests/c/ repeats the essentials from real C, under valgrind.

mod common;
use common::*;
use electra::ffi::model::*;
use electra::ffi::session::*;
use electra::ffi::status::*;
use electra::ffi::*;
use std::ffi::{c_char, CStr, CString};
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

const RTOL: f32 = 1e-5;
const FLOOR: f32 = 1e-6;
/// Written into output buffers before a call that must fail; still there afterwards.
const SENTINEL: f32 = -12345.678;

// ---------------------------------------------------------------------------------------------
// Helpers: owned handles, the last error, fixture inputs.

/// The calling thread's last error message, read the way the header documents.
fn last_error() -> String {
    let n = unsafe { electra_last_error_message(null_mut(), 0) };
    let mut buf = vec![0u8; n + 1];
    let m = unsafe { electra_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(m, n, "the length does not depend on the buffer");
    CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap().to_owned()
}

fn status_name(s: electra_status) -> &'static str {
    unsafe { CStr::from_ptr(electra_status_str(s)) }.to_str().unwrap()
}

/// Asserts `got` is `want` and the thread's message mentions `needle`.
#[track_caller]
fn expect_err(got: electra_status, want: electra_status, needle: &str) {
    let msg = last_error();
    assert_eq!(got, want, "expected {} but got {} ({msg})", status_name(want), status_name(got));
    assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
}

fn cpath(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

struct Model(*mut electra_model);
impl Drop for Model {
    fn drop(&mut self) {
        unsafe { electra_model_free(self.0) }
    }
}

struct Session(*mut electra_session);
impl Drop for Session {
    fn drop(&mut self) {
        unsafe { electra_session_free(self.0) }
    }
}

/// Loads `path` and checks the out-pointer protocol: NULL on failure, set on success.
fn try_load(path: &Path) -> Result<Model, electra_status> {
    let mut m = 0x10 as *mut electra_model; // garbage the call must overwrite
    let st = unsafe { electra_model_load(cpath(path).as_ptr(), &mut m) };
    if st == ELECTRA_OK {
        assert!(!m.is_null());
        Ok(Model(m))
    } else {
        assert!(m.is_null(), "*out is NULL after a failed load");
        Err(st)
    }
}

fn load(path: &Path) -> Model {
    try_load(path).unwrap_or_else(|st| panic!("load {}: {} ({})", path.display(), status_name(st), last_error()))
}

fn session(m: &Model) -> Session {
    let mut s = null_mut();
    let st = unsafe { electra_session_new(m.0, &mut s) };
    assert_eq!(st, ELECTRA_OK, "{}", last_error());
    Session(s)
}

fn info(m: &Model) -> electra_model_info {
    let mut i = electra_model_info { struct_size: size_of::<electra_model_info>() as u32, ..Default::default() };
    assert_eq!(unsafe { electra_model_get_info(m.0, &mut i) }, ELECTRA_OK, "{}", last_error());
    i
}

/// Inputs of a fixture case, as C would hold them.
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

const DISC: RunFn = electra_session_discriminate;
const GEN: RunFn = electra_session_generator_logits;
const HIDDEN: RunFn = electra_session_hidden_states;

/// Calls `f` on the fixture inputs (optionally without mask/types) into `out`.
fn run(f: RunFn, s: &Session, i: &Inputs, with_mask_types: bool, out: &mut [f32]) -> electra_status {
    let (mask, types) = if with_mask_types { (i.mask.as_ptr(), i.types.as_ptr()) } else { (null(), null()) };
    unsafe { f(s.0, i.ids.as_ptr(), mask, types, i.b, i.t, out.as_mut_ptr(), out.len()) }
}

/// The token arrays of a call (`None`: NULL).
#[derive(Clone, Copy)]
struct Tokens<'a> {
    ids: &'a [i32],
    mask: Option<&'a [i32]>,
    types: Option<&'a [i32]>,
}

impl<'a> Tokens<'a> {
    fn new(ids: &'a [i32], mask: Option<&'a [i32]>, types: Option<&'a [i32]>) -> Self {
        Tokens { ids, mask, types }
    }

    /// Ids without mask and types.
    fn only(ids: &'a [i32]) -> Self {
        Tokens { ids, mask: None, types: None }
    }
}

/// Calls `f` with the given arrays into a sentinel-filled buffer of `out_len` floats, expects
/// `want` with `needle` in the message, and checks that nothing was written.
#[track_caller]
fn expect_rejected(
    f: RunFn,
    s: &Session,
    x: Tokens,
    (b, t): (usize, usize),
    out_len: usize,
    want: electra_status,
    needle: &str,
) {
    let mut out = vec![SENTINEL; out_len.max(1)];
    let st = unsafe {
        f(
            s.0,
            x.ids.as_ptr(),
            x.mask.map_or(null(), <[i32]>::as_ptr),
            x.types.map_or(null(), <[i32]>::as_ptr),
            b,
            t,
            out.as_mut_ptr(),
            out_len,
        )
    };
    expect_err(st, want, needle);
    assert!(out.iter().all(|&v| v == SENTINEL), "a failed call wrote into the output buffer");
}

/// A fresh, empty directory under cargo's per-target temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ffi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy of a fixture's HF directory that a test may damage.
fn copy_dir(from: &Path, name: &str) -> PathBuf {
    let d = temp_dir(name);
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    d
}

// ---------------------------------------------------------------------------------------------
// Globals.

#[test]
fn versions_and_status_strings() {
    assert_eq!(electra_abi_version(), ELECTRA_ABI_VERSION);
    let v = unsafe { CStr::from_ptr(electra_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    let mut seen = std::collections::HashSet::new();
    for code in ELECTRA_OK..=ELECTRA_ERR_DISTRIBUTED {
        let name = status_name(code);
        assert!(!name.is_empty() && name != "unknown status", "code {code} has no name");
        assert!(seen.insert(name), "two codes share the name {name:?}");
    }
    assert_eq!(status_name(ELECTRA_OK), "ok");
    assert_eq!(status_name(ELECTRA_ERR_BUFFER_TOO_SMALL), "buffer too small");
    for unknown in [-1, ELECTRA_ERR_DISTRIBUTED + 1, i32::MAX, i32::MIN] {
        assert_eq!(status_name(unknown), "unknown status");
    }
}

/// The layout C sees (tests/c/test_electra.c asserts the same numbers from the header).
#[test]
fn model_info_layout_is_stable() {
    assert_eq!(size_of::<electra_model_info>(), 56);
    assert_eq!(offset_of!(electra_model_info, struct_size), 0);
    assert_eq!(offset_of!(electra_model_info, vocab_size), 4);
    assert_eq!(offset_of!(electra_model_info, max_position_embeddings), 16);
    assert_eq!(offset_of!(electra_model_info, has_discriminator), 28);
    assert_eq!(offset_of!(electra_model_info, generator_hidden_size), 36);
    assert_eq!(offset_of!(electra_model_info, num_parameters), 40);
    assert_eq!(offset_of!(electra_model_info, num_labels), 48);
}

#[test]
fn last_error_message_protocol() {
    // Make a known error on this thread.
    let st = unsafe { electra_model_load(null(), &mut null_mut()) };
    assert_eq!(st, ELECTRA_ERR_NULL_POINTER);
    let full = last_error();
    let n = full.len();
    assert!(n > 8, "{full:?}");
    unsafe {
        // cap 0: nothing written, even through a valid pointer; full length returned.
        let mut buf = [b'#'; 64];
        assert_eq!(electra_last_error_message(buf.as_mut_ptr().cast(), 0), n);
        assert!(buf.iter().all(|&c| c == b'#'));
        // NULL with a non-zero cap: length only.
        assert_eq!(electra_last_error_message(null_mut(), 100), n);
        // cap 1: just the NUL.
        assert_eq!(electra_last_error_message(buf.as_mut_ptr().cast(), 1), n);
        assert_eq!(buf[0], 0);
        assert_eq!(buf[1], b'#');
        // cap 5: 4 bytes and a NUL; nothing beyond.
        let mut buf = [b'#'; 64];
        assert_eq!(electra_last_error_message(buf.as_mut_ptr().cast(), 5), n);
        assert_eq!(&buf[..4], &full.as_bytes()[..4]);
        assert_eq!(buf[4], 0);
        assert!(buf[5..].iter().all(|&c| c == b'#'));
        // cap n: one byte short, truncated; cap n + 1: exactly fits.
        let mut buf = vec![b'#'; n + 8];
        assert_eq!(electra_last_error_message(buf.as_mut_ptr().cast(), n), n);
        assert_eq!(&buf[..n - 1], &full.as_bytes()[..n - 1]);
        assert_eq!(buf[n - 1], 0);
        assert_eq!(electra_last_error_message(buf.as_mut_ptr().cast(), n + 1), n);
        assert_eq!(&buf[..n], full.as_bytes());
        assert_eq!(buf[n], 0);
        assert_eq!(buf[n + 1], b'#');
    }
    // Successful calls leave the message alone.
    assert_eq!(electra_abi_version(), ELECTRA_ABI_VERSION);
    let m = load(&fixture("emb_lt_hidden"));
    let _ = info(&m);
    assert_eq!(last_error(), full);
    // The message is per thread: a fresh thread has none, and its errors stay there.
    std::thread::spawn(|| {
        assert_eq!(unsafe { electra_last_error_message(null_mut(), 0) }, 0);
        let st = unsafe { electra_session_new(null(), &mut null_mut()) };
        assert_eq!(st, ELECTRA_ERR_INVALID_HANDLE);
        assert!(last_error().contains("electra_model is NULL"));
    })
    .join()
    .unwrap();
    assert_eq!(last_error(), full);
}

/// Truncation never splits a UTF-8 character, so a truncated message is still valid UTF-8.
#[test]
fn truncated_message_stays_utf8() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nöt-thére-ünïcode-路径");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(try_load(&dir).err(), Some(ELECTRA_ERR_IO));
    let full = last_error();
    assert!(full.contains("路径"), "{full:?}");
    for cap in 1..=full.len() + 1 {
        let mut buf = vec![0xffu8; cap];
        unsafe { electra_last_error_message(buf.as_mut_ptr().cast(), cap) };
        let s = CStr::from_bytes_until_nul(&buf).expect("NUL-terminated");
        let s = s.to_str().unwrap_or_else(|_| panic!("cap {cap}: not UTF-8: {buf:?}"));
        assert!(full.starts_with(s) && s.len() >= cap.saturating_sub(4), "cap {cap}: {s:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Parity with PyTorch through the C ABI.

#[test]
fn parity_on_every_fixture() {
    for case in CASES {
        let (i, f) = inputs(case);
        let n = i.b * i.t;
        // The pair layout: both towers in one handle.
        let m = load(&fixture(case));
        let inf = info(&m);
        assert_eq!((inf.has_discriminator, inf.has_generator), (1, 1));
        let (h, v) = (inf.hidden_size as usize, inf.vocab_size as usize);
        let s = session(&m);

        let mut d = vec![0.0; n];
        assert_eq!(run(DISC, &s, &i, true, &mut d), ELECTRA_OK, "{}", last_error());
        assert_close(&format!("{case} ffi disc_logits"), &d, floats(&f, "disc_logits"), RTOL, FLOOR);

        let mut hid = vec![0.0; n * h];
        assert_eq!(run(HIDDEN, &s, &i, true, &mut hid), ELECTRA_OK, "{}", last_error());
        assert_close(&format!("{case} ffi disc_hidden"), &hid, floats(&f, "disc_hidden"), RTOL, FLOOR);

        let mut g = vec![0.0; n * v];
        assert_eq!(run(GEN, &s, &i, true, &mut g), ELECTRA_OK, "{}", last_error());
        assert_close(&format!("{case} ffi gen_logits"), &g, floats(&f, "gen_logits"), RTOL, FLOOR);

        // A larger buffer is fine; only the result's prefix is written.
        let mut big = vec![SENTINEL; n + 3];
        assert_eq!(run(DISC, &s, &i, true, &mut big), ELECTRA_OK);
        assert_eq!(&big[..n], &d[..]);
        assert!(big[n..].iter().all(|&x| x == SENTINEL));

        // The lone towers give the same numbers.
        let dm = load(&fixture(case).join("discriminator"));
        let mut d2 = vec![0.0; n];
        assert_eq!(run(DISC, &session(&dm), &i, true, &mut d2), ELECTRA_OK);
        assert_eq!(d2, d);
        let gm = load(&fixture(case).join("generator"));
        let mut g2 = vec![0.0; n * v];
        assert_eq!(run(GEN, &session(&gm), &i, true, &mut g2), ELECTRA_OK);
        assert_close(&format!("{case} ffi lone gen_logits"), &g2, floats(&f, "gen_logits"), RTOL, FLOOR);
    }
}

/// NULL mask and types mean all ones and all zeros.
#[test]
fn null_mask_and_types_are_defaults() {
    let (i, _) = inputs("emb_lt_hidden");
    let m = load(&fixture("emb_lt_hidden"));
    let s = session(&m);
    let n = i.b * i.t;
    let explicit = Inputs { ids: i.ids.clone(), mask: vec![1; n], types: vec![0; n], b: i.b, t: i.t };
    let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
    assert_eq!(run(DISC, &s, &explicit, true, &mut a), ELECTRA_OK);
    assert_eq!(run(DISC, &s, &i, false, &mut b), ELECTRA_OK);
    assert_eq!(a, b);
}

#[test]
fn model_info_and_struct_size() {
    let m = load(&fixture("emb_lt_hidden"));
    let full = info(&m);
    assert_eq!(full.struct_size as usize, size_of::<electra_model_info>());
    assert_eq!(
        (full.vocab_size, full.hidden_size, full.embedding_size, full.max_position_embeddings, full.type_vocab_size),
        (64, 16, 8, 32, 2)
    );
    assert_eq!(full.num_hidden_layers, 2);
    assert_eq!(full.generator_hidden_size, 4);
    assert_eq!(full.num_labels, 0, "no classification head");
    assert!(full.num_parameters > 0);
    let dm = load(&fixture("emb_lt_hidden").join("discriminator"));
    let d = info(&dm);
    assert_eq!((d.has_discriminator, d.has_generator, d.generator_hidden_size), (1, 0, 0));
    assert!(d.num_parameters < full.num_parameters);

    // An older caller's smaller struct: only the prefix that fits is written.
    unsafe {
        let mut raw = [0xabu8; 64];
        raw[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(electra_model_get_info(m.0, raw.as_mut_ptr().cast()), ELECTRA_OK);
        assert_eq!(u32::from_ne_bytes(raw[0..4].try_into().unwrap()), 8);
        assert_eq!(u32::from_ne_bytes(raw[4..8].try_into().unwrap()), 64, "vocab_size is in the prefix");
        assert!(raw[8..].iter().all(|&b| b == 0xab), "bytes past struct_size were written");

        // A newer caller's larger struct: the known fields are written, the rest untouched.
        const FILL: u64 = 0xabab_abab_abab_abab;
        let known = size_of::<electra_model_info>() / 8;
        let mut raw = vec![FILL; known + 4];
        let big = raw.len() * 8;
        let p = raw.as_mut_ptr().cast::<electra_model_info>();
        p.cast::<u32>().write(big as u32);
        assert_eq!(electra_model_get_info(m.0, p), ELECTRA_OK);
        let got = p.read();
        assert_eq!(got.struct_size as usize, big);
        assert_eq!(got.num_parameters, full.num_parameters);
        assert!(raw[known..].iter().all(|&w| w == FILL), "bytes past the known struct were written");

        // struct_size below one field is refused.
        let mut i = electra_model_info::default();
        expect_err(electra_model_get_info(m.0, &mut i), ELECTRA_ERR_INVALID_ARGUMENT, "struct_size");
        expect_err(electra_model_get_info(m.0, null_mut()), ELECTRA_ERR_NULL_POINTER, "info");
        expect_err(electra_model_get_info(null(), &mut i), ELECTRA_ERR_INVALID_HANDLE, "NULL");
    }
}

// ---------------------------------------------------------------------------------------------
// Handles and pointers.

#[test]
fn null_handles_and_pointers() {
    let (i, _) = inputs("emb_lt_hidden");
    let path = cpath(&fixture("emb_lt_hidden"));
    unsafe {
        expect_err(electra_model_load(null(), &mut null_mut()), ELECTRA_ERR_NULL_POINTER, "path");
        expect_err(electra_model_load(path.as_ptr(), null_mut()), ELECTRA_ERR_NULL_POINTER, "out");
        let mut s = 0x10 as *mut electra_session;
        expect_err(electra_session_new(null(), &mut s), ELECTRA_ERR_INVALID_HANDLE, "electra_model is NULL");
        assert!(s.is_null(), "*out is NULL after a failed electra_session_new");
        let m = load(&fixture("emb_lt_hidden"));
        expect_err(electra_session_new(m.0, null_mut()), ELECTRA_ERR_NULL_POINTER, "out");
        expect_err(electra_model_save(null(), path.as_ptr()), ELECTRA_ERR_INVALID_HANDLE, "NULL");
        expect_err(electra_model_save(m.0, null()), ELECTRA_ERR_NULL_POINTER, "dir");

        let s = session(&m);
        let n = i.b * i.t;
        let mut out = vec![SENTINEL; n * 64];
        for f in [DISC, GEN, HIDDEN] {
            let st = f(null_mut(), i.ids.as_ptr(), null(), null(), i.b, i.t, out.as_mut_ptr(), out.len());
            expect_err(st, ELECTRA_ERR_INVALID_HANDLE, "electra_session is NULL");
            let st = f(s.0, null(), null(), null(), i.b, i.t, out.as_mut_ptr(), out.len());
            expect_err(st, ELECTRA_ERR_NULL_POINTER, "input_ids");
            let st = f(s.0, i.ids.as_ptr(), null(), null(), i.b, i.t, null_mut(), out.len());
            expect_err(st, ELECTRA_ERR_NULL_POINTER, "out");
        }
        assert!(out.iter().all(|&v| v == SENTINEL));

        // Frees accept NULL.
        electra_model_free(null_mut());
        electra_session_free(null_mut());
    }
}

/// A pointer to another kind of handle, or to foreign memory, is refused rather than used
/// (tests/handles.rs covers freed handles).
#[test]
fn wrong_kind_of_handle_is_refused() {
    let (i, _) = inputs("emb_lt_hidden");
    let m = load(&fixture("emb_lt_hidden"));
    let s = session(&m);
    let mut out = vec![SENTINEL; i.b * i.t];
    unsafe {
        let as_model = s.0 as *const electra_model;
        let as_session = m.0 as *mut electra_session;
        expect_err(electra_session_new(as_model, &mut null_mut()), ELECTRA_ERR_INVALID_HANDLE, "not an electra_model");
        let mut inf = electra_model_info { struct_size: size_of::<electra_model_info>() as u32, ..Default::default() };
        expect_err(electra_model_get_info(as_model, &mut inf), ELECTRA_ERR_INVALID_HANDLE, "another kind");
        let st = electra_session_discriminate(
            as_session,
            i.ids.as_ptr(),
            null(),
            null(),
            i.b,
            i.t,
            out.as_mut_ptr(),
            out.len(),
        );
        expect_err(st, ELECTRA_ERR_INVALID_HANDLE, "not an electra_session");
        // Foreign memory: zeros, and a misaligned pointer.
        let zeros = [0u64; 8];
        let st = electra_session_new(zeros.as_ptr().cast(), &mut null_mut());
        expect_err(st, ELECTRA_ERR_INVALID_HANDLE, "not a live electra_model");
        let odd = (zeros.as_ptr() as *const u8).add(1) as *const electra_model;
        expect_err(electra_session_new(odd, &mut null_mut()), ELECTRA_ERR_INVALID_HANDLE, "not a live electra_model");
        // Freeing through the wrong kind is a no-op: both handles still work afterwards.
        electra_model_free(s.0 as *mut electra_model);
        electra_session_free(m.0 as *mut electra_session);
    }
    assert!(out.iter().all(|&v| v == SENTINEL));
    assert_eq!(run(DISC, &s, &i, true, &mut out), ELECTRA_OK, "{}", last_error());
    let _ = session(&m);
}

/// A session keeps the weights alive: freeing the model first is fine.
#[test]
fn session_outlives_its_model() {
    let (i, f) = inputs("emb_eq_hidden");
    let m = load(&fixture("emb_eq_hidden"));
    let s = session(&m);
    drop(m);
    let mut d = vec![0.0; i.b * i.t];
    assert_eq!(run(DISC, &s, &i, true, &mut d), ELECTRA_OK);
    assert_close("after model free", &d, floats(&f, "disc_logits"), RTOL, FLOOR);
}

// ---------------------------------------------------------------------------------------------
// Inputs out of range: refused with INVALID_ARGUMENT before anything is written.

#[test]
fn inputs_out_of_range_are_refused() {
    let m = load(&fixture("emb_lt_hidden")); // V 64, type_vocab 2, max positions 32, generator V 64
    let s = session(&m);
    let (b, t) = (2, 5);
    let n = b * t;
    let ok_ids: Vec<i32> = (1..=n as i32).collect();
    let ok_mask = vec![1; n];
    let ok_types = vec![0; n];
    let with = |v: &[i32], k: usize, x: i32| {
        let mut v = v.to_vec();
        v[k] = x;
        v
    };
    for (f, per_token) in [(DISC, 1), (HIDDEN, 16), (GEN, 64)] {
        let out_len = n * per_token;
        let bad = ELECTRA_ERR_INVALID_ARGUMENT;
        let shape = (b, t);
        let (m_, t_) = (Some(&ok_mask[..]), Some(&ok_types[..]));
        expect_rejected(f, &s, Tokens::new(&with(&ok_ids, 7, 64), m_, t_), shape, out_len, bad, "input_ids[7] = 64");
        expect_rejected(f, &s, Tokens::new(&with(&ok_ids, 0, -1), m_, t_), shape, out_len, bad, "input_ids[0] = -1");
        expect_rejected(
            f,
            &s,
            Tokens::only(&with(&ok_ids, 3, i32::MIN)),
            shape,
            out_len,
            bad,
            "outside the vocabulary",
        );
        let types = with(&ok_types, 9, 2);
        expect_rejected(f, &s, Tokens::new(&ok_ids, m_, Some(&types)), shape, out_len, bad, "token_type_ids[9] = 2");
        let types = with(&ok_types, 1, -1);
        expect_rejected(f, &s, Tokens::new(&ok_ids, m_, Some(&types)), shape, out_len, bad, "token_type_ids[1] = -1");
        let mask = with(&ok_mask, 4, 2);
        expect_rejected(f, &s, Tokens::new(&ok_ids, Some(&mask), t_), shape, out_len, bad, "attention_mask[4] = 2");
        let mask = with(&ok_mask, 0, -1);
        expect_rejected(f, &s, Tokens::new(&ok_ids, Some(&mask), t_), shape, out_len, bad, "must be 0 or 1");

        // seq_len above max_position_embeddings (32).
        let long = vec![1; 33];
        expect_rejected(f, &s, Tokens::only(&long), (1, 33), 33 * per_token, bad, "max_position_embeddings");

        // Empty batches.
        let ids = Tokens::only(&ok_ids);
        expect_rejected(f, &s, ids, (0, t), out_len, bad, "empty batch");
        expect_rejected(f, &s, ids, (b, 0), out_len, bad, "empty batch");

        // batch*seq_len overflows size_t: refused before any array is read.
        expect_rejected(f, &s, ids, (usize::MAX / 2 + 1, 2), out_len, bad, "overflows");
        expect_rejected(f, &s, ids, (2, usize::MAX / 2 + 1), out_len, bad, "overflows");
        // No overflow, but more tokens than any buffer can hold.
        expect_rejected(f, &s, ids, (usize::MAX / 4, 2), out_len, bad, "too large");
    }
    // The session still works after all that.
    let mut out = vec![0.0; n];
    let st = unsafe { DISC(s.0, ok_ids.as_ptr(), null(), null(), b, t, out.as_mut_ptr(), n) };
    assert_eq!(st, ELECTRA_OK);
}

#[test]
fn small_output_buffers_are_refused_untouched() {
    let (i, _) = inputs("emb_lt_hidden");
    let m = load(&fixture("emb_lt_hidden"));
    let s = session(&m);
    let n = i.b * i.t;
    let x = Tokens::new(&i.ids, Some(&i.mask), Some(&i.types));
    let small = ELECTRA_ERR_BUFFER_TOO_SMALL;
    for (f, per_token) in [(DISC, 1), (HIDDEN, 16), (GEN, 64)] {
        let need = n * per_token;
        let msg = format!("need {need} elements");
        for out_len in [0, 1, need - 1] {
            expect_rejected(f, &s, x, (i.b, i.t), out_len, small, &msg);
        }
    }
}

#[test]
fn generator_call_on_a_lone_discriminator_is_unsupported() {
    let (i, _) = inputs("emb_lt_hidden");
    let dm = load(&fixture("emb_lt_hidden").join("discriminator"));
    let s = session(&dm);
    let shape = (i.b, i.t);
    let n = i.b * i.t * 64;
    let none = ELECTRA_ERR_UNSUPPORTED;
    expect_rejected(GEN, &s, Tokens::new(&i.ids, Some(&i.mask), Some(&i.types)), shape, n, none, "no generator");
    let gm = load(&fixture("emb_lt_hidden").join("generator"));
    let s = session(&gm);
    expect_rejected(DISC, &s, Tokens::only(&i.ids), shape, n, none, "no discriminator");
    expect_rejected(HIDDEN, &s, Tokens::only(&i.ids), shape, n, none, "no discriminator");
}

// ---------------------------------------------------------------------------------------------
// Files.

#[test]
fn missing_and_empty_directories() {
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-model-dir");
    assert_eq!(try_load(&missing).err(), Some(ELECTRA_ERR_IO));
    assert!(last_error().contains("no-such-model-dir"), "{}", last_error());
    let empty = temp_dir("empty");
    assert_eq!(try_load(&empty).err(), Some(ELECTRA_ERR_FORMAT));
    assert!(last_error().contains("config.json"), "{}", last_error());
    // A directory with a config but no weights.
    let d = temp_dir("no-weights");
    std::fs::copy(fixture("emb_lt_hidden").join("discriminator/config.json"), d.join("config.json")).unwrap();
    assert_eq!(try_load(&d).err(), Some(ELECTRA_ERR_IO));
    assert!(last_error().contains("model.safetensors"), "{}", last_error());
    // A path that is not UTF-8 cannot be named; invalid UTF-8 bytes are refused.
    let bad = b"/tmp/\xff\xfe\0";
    let st = unsafe { electra_model_load(bad.as_ptr() as *const c_char, &mut null_mut()) };
    expect_err(st, ELECTRA_ERR_INVALID_ARGUMENT, "UTF-8");
    let _ = std::fs::remove_dir_all(empty);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn corrupt_and_truncated_safetensors() {
    let src = fixture("emb_lt_hidden").join("discriminator");
    let weights = std::fs::read(src.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let cuts: &[(&str, Vec<u8>)] = &[
        ("empty", vec![]),
        ("four-bytes", weights[..4].to_vec()),
        ("header-only-half", weights[..8 + header_len / 2].to_vec()),
        ("data-truncated", weights[..weights.len() - 100].to_vec()),
        ("huge-header-length", [&u64::MAX.to_le_bytes()[..], &weights[8..]].concat()),
        ("garbage-header", [&weights[..8], &vec![b'!'; header_len][..], &weights[8 + header_len..]].concat()),
    ];
    for (name, bytes) in cuts {
        let d = copy_dir(&src, name);
        std::fs::write(d.join("model.safetensors"), bytes).unwrap();
        assert_eq!(try_load(&d).err(), Some(ELECTRA_ERR_FORMAT), "{name}: {}", last_error());
        let msg = last_error();
        assert!(msg.contains("model.safetensors"), "{name}: {msg}");
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn invalid_configs_are_refused() {
    let src = fixture("emb_lt_hidden").join("discriminator");
    let config = std::fs::read_to_string(src.join("config.json")).unwrap();
    let edits: &[(&str, &str, &str, &str)] = &[
        ("heads", "\"num_attention_heads\": 2", "\"num_attention_heads\": 3", "num_attention_heads"),
        ("json", "{", "{{", "config.json"),
        ("hidden", "\"hidden_size\": 16", "\"hidden_size\": 24", "shape"),
    ];
    for (name, from, to, needle) in edits {
        assert!(config.contains(from), "fixture config lacks {from}");
        let d = copy_dir(&src, name);
        std::fs::write(d.join("config.json"), config.replacen(from, to, 1)).unwrap();
        assert_eq!(try_load(&d).err(), Some(ELECTRA_ERR_FORMAT), "{name}: {}", last_error());
        let msg = last_error();
        assert!(msg.contains(needle), "{name}: {msg}");
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn save_and_reload_round_trip() {
    let (i, _) = inputs("relu_act");
    let m = load(&fixture("relu_act"));
    let dir = temp_dir("save");
    let out_dir = dir.join("pair");
    assert_eq!(unsafe { electra_model_save(m.0, cpath(&out_dir).as_ptr()) }, ELECTRA_OK, "{}", last_error());
    let back = load(&out_dir);
    let v = info(&m).vocab_size as usize;
    let n = i.b * i.t;
    for (f, k) in [(DISC, 1), (GEN, v)] {
        let (mut a, mut b) = (vec![0.0; n * k], vec![0.0; n * k]);
        assert_eq!(run(f, &session(&m), &i, true, &mut a), ELECTRA_OK);
        assert_eq!(run(f, &session(&back), &i, true, &mut b), ELECTRA_OK);
        assert_eq!(a, b, "reloaded weights give other results");
    }
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Threads.

/// A raw handle that the header documents as shareable (model) or movable (session).
struct SendPtr<T>(*mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// One model, one session per thread, all running at once: identical results everywhere.
#[test]
fn model_is_shared_by_sessions_on_many_threads() {
    let case = "emb_eq_hidden";
    let (i, f) = inputs(case);
    let m = load(&fixture(case));
    let v = info(&m).vocab_size as usize;
    let n = i.b * i.t;
    let reference = {
        let s = session(&m);
        let (mut d, mut g) = (vec![0.0; n], vec![0.0; n * v]);
        assert_eq!(run(DISC, &s, &i, true, &mut d), ELECTRA_OK);
        assert_eq!(run(GEN, &s, &i, true, &mut g), ELECTRA_OK);
        assert_close("threads reference", &d, floats(&f, "disc_logits"), RTOL, FLOOR);
        (d, g)
    };
    let shared = SendPtr(m.0);
    let barrier = std::sync::Barrier::new(6);
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                let mut raw = null_mut();
                assert_eq!(unsafe { electra_session_new({ shared }.0, &mut raw) }, ELECTRA_OK);
                let s = Session(raw);
                barrier.wait();
                for _ in 0..20 {
                    let (mut d, mut g) = (vec![0.0; n], vec![0.0; n * v]);
                    assert_eq!(run(DISC, &s, &i, true, &mut d), ELECTRA_OK);
                    assert_eq!(run(GEN, &s, &i, true, &mut g), ELECTRA_OK);
                    assert_eq!(d, reference.0, "discriminator logits differ across threads");
                    assert_eq!(g, reference.1, "generator logits differ across threads");
                }
            });
        }
    });
}

/// A session may move between threads (used by one at a time).
#[test]
fn session_moves_between_threads() {
    let (i, f) = inputs("gelu_new_act");
    let m = load(&fixture("gelu_new_act"));
    let s = session(&m);
    let moved = SendPtr(s.0);
    let n = i.b * i.t;
    for _ in 0..3 {
        let d = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut d = vec![0.0; n];
                    let st = unsafe {
                        DISC(
                            { moved }.0,
                            i.ids.as_ptr(),
                            i.mask.as_ptr(),
                            i.types.as_ptr(),
                            i.b,
                            i.t,
                            d.as_mut_ptr(),
                            n,
                        )
                    };
                    assert_eq!(st, ELECTRA_OK);
                    d
                })
                .join()
                .unwrap()
        });
        assert_close("moved session", &d, floats(&f, "disc_logits"), RTOL, FLOOR);
    }
}

/// Devices: the CPU is always there; CUDA is counted or refused with ELECTRA_ERR_CUDA, and
/// asking a session, trainer or fine-tuner for a device that is not there is that error, never a
/// crash; bad device names are invalid arguments.
#[test]
fn devices_are_counted_and_chosen_through_options() {
    use electra::ffi::device::*;
    use electra::ffi::finetune::*;
    use electra::ffi::trainer::*;
    let mut n = 99usize;
    assert_eq!(unsafe { electra_device_count(ELECTRA_DEVICE_CPU, &mut n) }, ELECTRA_OK);
    assert_eq!(n, 1);
    n = 99;
    let st = unsafe { electra_device_count(ELECTRA_DEVICE_CUDA, &mut n) };
    let cuda = if cfg!(feature = "cuda") { st == ELECTRA_OK && n > 0 } else { false };
    if st != ELECTRA_OK {
        expect_err(st, ELECTRA_ERR_CUDA, if cfg!(feature = "cuda") { "" } else { "without the `cuda` feature" });
        assert_eq!(n, 0, "the count is 0 on error");
    }
    n = 99;
    expect_err(unsafe { electra_device_count(7, &mut n) }, ELECTRA_ERR_INVALID_ARGUMENT, "unknown device kind 7");
    assert_eq!(n, 0);
    expect_err(unsafe { electra_device_count(ELECTRA_DEVICE_CPU, null_mut()) }, ELECTRA_ERR_NULL_POINTER, "count");

    // Sessions: the CPU with any thread count gives the same logits as the default session.
    let (i, _) = inputs("emb_lt_hidden");
    let m = load(&fixture("emb_lt_hidden").join("discriminator"));
    let mut want = vec![0.0; i.b * i.t];
    assert_eq!(run(DISC, &session(&m), &i, true, &mut want), ELECTRA_OK);
    let with = |json: &str| {
        let mut s = 0x10 as *mut electra_session;
        let json = CString::new(json).unwrap();
        let st = unsafe { electra_session_new_with_options(m.0, json.as_ptr(), &mut s) };
        if st != ELECTRA_OK {
            assert!(s.is_null(), "*out is NULL after a failed create");
        }
        (st, Session(s))
    };
    for json in [r#"{"device": "cpu", "threads": 1}"#, r#"{"threads": 3}"#, "{}", ""] {
        let (st, s) = with(json);
        assert_eq!(st, ELECTRA_OK, "{json}: {}", last_error());
        let mut got = vec![0.0; i.b * i.t];
        assert_eq!(run(DISC, &s, &i, true, &mut got), ELECTRA_OK);
        assert_eq!(got, want, "{json}");
    }
    let mut s = null_mut();
    assert_eq!(unsafe { electra_session_new_with_options(m.0, null(), &mut s) }, ELECTRA_OK);
    drop(Session(s));
    let (st, _) = with(r#"{"device": "gpu"}"#);
    expect_err(st, ELECTRA_ERR_INVALID_ARGUMENT, "device");
    let (st, _) = with(r#"{"device": "cpu", "cores": 2}"#);
    expect_err(st, ELECTRA_ERR_INVALID_ARGUMENT, "cores");
    if !cuda {
        let (st, _) = with(r#"{"device": "cuda:0"}"#);
        expect_err(st, ELECTRA_ERR_CUDA, "");
        assert!(!last_error().is_empty());
        // Trainers and fine-tuners take the device in their options JSON.
        let mut t = 0x10 as *mut electra_trainer;
        let opts =
            CString::new(r#"{"device": "cuda:1", "vocab_size": 64, "max_seq_len": 16, "mask_token_id": 4}"#).unwrap();
        let init = CString::new("tiny").unwrap();
        expect_err(unsafe { electra_trainer_new(init.as_ptr(), opts.as_ptr(), &mut t) }, ELECTRA_ERR_CUDA, "");
        assert!(t.is_null());
        let mut f = 0x10 as *mut electra_finetuner;
        let dir = cpath(&fixture("emb_lt_hidden").join("discriminator"));
        let opts = CString::new(r#"{"device": "cuda"}"#).unwrap();
        expect_err(unsafe { electra_finetuner_new(dir.as_ptr(), 2, opts.as_ptr(), &mut f) }, ELECTRA_ERR_CUDA, "");
        assert!(f.is_null());
    }
}

/// A trainer checkpoint resumes with another thread count (and could move device) through
/// `electra_trainer_resume_with_options`, continuing bit-identically.
#[test]
fn resume_with_options_overrides_threads() {
    use electra::ffi::trainer::*;
    let dir = temp_dir("resume-options");
    let (init, opts) = (
        CString::new("tiny").unwrap(),
        CString::new(r#"{"vocab_size": 64, "max_seq_len": 16, "threads": 1, "mask_token_id": 4}"#).unwrap(),
    );
    let mut t = null_mut();
    assert_eq!(unsafe { electra_trainer_new(init.as_ptr(), opts.as_ptr(), &mut t) }, ELECTRA_OK, "{}", last_error());
    let ids: Vec<i32> = (0..32).map(|k| 5 + (k * 7 % 50)).collect();
    let step = |t: *mut electra_trainer| {
        let mut s = electra_step_stats { struct_size: size_of::<electra_step_stats>() as u32, ..Default::default() };
        assert_eq!(
            unsafe { electra_trainer_step(t, ids.as_ptr(), null(), null(), 2, 16, &mut s) },
            ELECTRA_OK,
            "{}",
            last_error()
        );
        s.loss
    };
    step(t);
    let d = cpath(&dir);
    assert_eq!(unsafe { electra_trainer_save(t, d.as_ptr()) }, ELECTRA_OK);
    let straight = step(t);
    unsafe { electra_trainer_free(t) };
    for json in [r#"{"threads": 2}"#, r#"{"device": "cpu"}"#] {
        let mut r = null_mut();
        let j = CString::new(json).unwrap();
        assert_eq!(
            unsafe { electra_trainer_resume_with_options(d.as_ptr(), j.as_ptr(), &mut r) },
            ELECTRA_OK,
            "{}",
            last_error()
        );
        assert_eq!(step(r).to_bits(), straight.to_bits(), "{json}: resumed step");
        unsafe { electra_trainer_free(r) };
    }
    let mut r = 0x10 as *mut electra_trainer;
    let j = CString::new(r#"{"device": "cpu", "seed": 1}"#).unwrap();
    expect_err(
        unsafe { electra_trainer_resume_with_options(d.as_ptr(), j.as_ptr(), &mut r) },
        ELECTRA_ERR_INVALID_ARGUMENT,
        "seed",
    );
    assert!(r.is_null());
}

/// `electra_model_save` of a classifier writes one HF `ElectraForSequenceClassification`
/// directory (config.json + model.safetensors at `dir`) that loads back with the same logits.
#[test]
fn classifier_model_saves_as_one_hf_directory() {
    use electra::ffi::finetune::electra_session_classify;
    let m = load(&fixture("emb_lt_hidden").join("classifier"));
    let labels = info(&m).num_labels as usize;
    assert!(labels >= 2);
    let dir = temp_dir("classifier-save");
    assert_eq!(unsafe { electra_model_save(m.0, cpath(&dir).as_ptr()) }, ELECTRA_OK, "{}", last_error());
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(cfg.contains("ElectraForSequenceClassification"), "{cfg}");
    assert!(dir.join("model.safetensors").is_file());
    let back = load(&dir);
    let (i, _) = inputs("emb_lt_hidden");
    let classify = |m: &Model| {
        let mut out = vec![0.0; i.b * labels];
        let s = session(m);
        let st = unsafe {
            electra_session_classify(
                s.0,
                i.ids.as_ptr(),
                i.mask.as_ptr(),
                i.types.as_ptr(),
                i.b,
                i.t,
                out.as_mut_ptr(),
                out.len(),
            )
        };
        assert_eq!(st, ELECTRA_OK, "{}", last_error());
        out
    };
    assert_eq!(classify(&m), classify(&back));
}
