//! `electra_finetuner`: sequence-classification fine-tuning from C, and classification
//! inference through `electra_session_classify`.

use super::handle::{lock, FfiHandle};
use super::session::electra_session;
use super::status::*;
use super::{batch_from, c_str, guard, guard_void, options_str, SizedOut, StructSized};
use crate::error::{Error, Result};
use crate::finetune::{FineTuner, FinetuneOptions};
use std::ffi::c_char;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Opaque fine-tuning state. Free with `electra_finetuner_free`.
// Zero-sized: an `electra_finetuner *` is a registry id for a `Mutex<FineTuner>` (see
// handle.rs). One thread at a time: concurrent use becomes a clear error, not a data race.
pub struct electra_finetuner {
    _opaque: [u8; 0],
}

impl FfiHandle for electra_finetuner {
    type Value = Mutex<FineTuner>;
    const MAGIC: u64 = 0x454c_4543_4654_554e; // "ELECFTUN"
    const NULL: &'static str = "electra_finetuner is NULL";
    const DEAD: &'static str = "not a live electra_finetuner: freed already, never created, or not a handle";
    const WRONG: &'static str = "not an electra_finetuner: a live handle of another kind was passed";
    const FORK_BOUND: bool = true;
}

/// What one `electra_finetuner_step` measured. Set `struct_size` to
/// `sizeof(electra_finetune_stats)`; the library fills only the fields that fit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct electra_finetune_stats {
    /// Set by the caller: `sizeof(electra_finetune_stats)`.
    pub struct_size: u32,
    /// Updates applied so far, this one included.
    pub step: u64,
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Share of rows classified correctly (before the update).
    pub accuracy: f32,
    /// Learning rate of this update (before layer-wise scaling).
    pub learning_rate: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

// SAFETY: `#[repr(C)]` with `struct_size: u32` first (checked at compile time below).
unsafe impl StructSized for electra_finetune_stats {}
const _: () = assert!(std::mem::offset_of!(electra_finetune_stats, struct_size) == 0);

impl From<&crate::finetune::FinetuneStats> for electra_finetune_stats {
    fn from(s: &crate::finetune::FinetuneStats) -> Self {
        electra_finetune_stats {
            struct_size: 0, // `SizedOut::write` keeps the caller's
            step: s.step,
            loss: s.loss,
            accuracy: s.accuracy,
            learning_rate: s.learning_rate,
            grad_norm: s.grad_norm,
        }
    }
}

/// The fine-tuner behind a handle, kept alive for this call (see handle.rs).
fn fine_tuner(f: *const electra_finetuner) -> Result<Arc<Mutex<FineTuner>>> {
    electra_finetuner::get(f)
}

/// Starts fine-tuning from `model_dir`: any checkpoint with a discriminator (its encoder is
/// kept and a fresh classification head for `num_labels` labels, named LABEL_0 ..
/// LABEL_{num_labels-1}, is added) or an existing classifier, continued with its labels and
/// their ids as its config.json `id2label` says: pass 0 or its label count, or a larger count to
/// add labels (new ids after the existing ones, named LABEL_i; the head grows by rows
/// initialised as a fresh head's). A classifier has 2 to 1024 labels of at most 128 bytes each.
/// `options_json` is NULL or a JSON object
/// with keys learning_rate (left out: by the encoder's width, 3e-4 up to 256, 1e-4 up to 768,
/// 5e-5 above, the paper's ELECTRA-Small, Base and Large rates), warmup_steps, total_steps,
/// weight_decay, layerwise_lr_decay,
/// adam_epsilon, bias_correction, max_grad_norm, seed, threads (host worker threads: 0, the default, the process-wide
/// shared pool sized by `electra_set_default_threads`; 1 the calling thread only, with no worker
/// thread; N >= 2 N workers, the shared pool when that is its size, else a pool of the fine-tuner's own;
/// results do not depend on it), own_pool (true: a pool of its own of `threads` workers, 0 = one
/// per core; default false), device (`"cpu"`, the default;
/// `"cuda"` or `"cuda:N"`: a device not compiled in or not present is `ELECTRA_ERR_CUDA`),
/// max_memory_bytes (a memory budget, 0 = none beyond the machine's memory; over it creation or
/// a step is `ELECTRA_ERR_OUT_OF_MEMORY` before anything is allocated), simd (CPU kernel cap:
/// `"best"`, the default, `"avx512"`, `"avx2"`, `"neon"` or `"scalar"`; left out:
/// `ELECTRA_SIMD` when set), tf32 (CUDA TF32 products, default false; left out:
/// `ELECTRA_CUDA_TF32` when set) and dropout (`true`, the default: config.json's probabilities,
/// with `classifier_dropout` or else hidden_dropout_prob in the head, as HF trains; `false`:
/// none; a number in [0, 1): all of them at that probability) and pool (what the head reads:
/// `"cls"`, the first token's state as HF `ElectraForSequenceClassification`, or `"mean"`, the
/// mean of the non-padding tokens' states, saved as `"classifier_pooling": "mean"` in config.json;
/// left out: a classifier's own pooling, `"cls"` for a new head; continuing a classifier with the
/// other pooling is `ELECTRA_ERR_INVALID_ARGUMENT`. JSON only: `electra_finetuner_params` keeps
/// its version-1 layout).
///
/// # Safety
/// Strings must be NUL-terminated (options_json may be NULL); `out` valid.
#[no_mangle]
pub unsafe extern "C" fn electra_finetuner_new(
    model_dir: *const c_char,
    num_labels: usize,
    options_json: *const c_char,
    out: *mut *mut electra_finetuner,
) -> electra_status {
    guard(|| {
        let out = super::out_handle(out)?;
        // SAFETY: `model_dir` is NULL or a NUL-terminated string alive for this call (the contract).
        let dir = unsafe { c_str(model_dir, "model_dir")? };
        // SAFETY: `options_json` is non-NULL in the `else` branch and then, by the contract, a
        // NUL-terminated string alive for this call.
        let json = unsafe { options_str(options_json)? };
        let ft = FineTuner::with_label_count(Path::new(dir), num_labels, FinetuneOptions::from_json(json)?)?;
        let h = electra_finetuner::publish(Mutex::new(ft))?;
        *out = h;
        Ok(())
    })
}

/// One fine-tuning step on `batch` rows of `seq_len` ids with one label (0..num_labels-1) per
/// row. `attention_mask`, `token_type_ids` and `stats` may be NULL. Bad input leaves the
/// weights untouched.
///
/// # Safety
/// Arrays must hold `batch*seq_len` elements (labels: `batch`); `stats` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn electra_finetuner_step(
    f: *mut electra_finetuner,
    input_ids: *const i32,
    attention_mask: *const i32,
    token_type_ids: *const i32,
    batch: usize,
    seq_len: usize,
    labels: *const i32,
    stats: *mut electra_finetune_stats,
) -> electra_status {
    guard(|| {
        let handle = fine_tuner(f)?;
        let mut ft = lock(&handle, "fine-tuner")?;
        // SAFETY: the input arrays hold `batch*seq_len` elements for this call (the contract).
        let b = unsafe { batch_from(input_ids, attention_mask, token_type_ids, batch, seq_len)? };
        if labels.is_null() {
            return Err(Error::NullPointer("labels"));
        }
        // SAFETY: `stats` is NULL or valid for `stats->struct_size` bytes (the contract).
        let stats =
            unsafe { SizedOut::new(stats, "stats->struct_size must be set to sizeof(electra_finetune_stats)")? };
        // SAFETY: `labels` is non-NULL and holds `batch` labels (the contract); `batch*seq_len`
        // passed `batch_from`, so `batch` elements fit in `isize` bytes.
        let s = ft.train_step(&b, unsafe { std::slice::from_raw_parts(labels, batch) })?;
        if let Some(stats) = stats {
            stats.write(&electra_finetune_stats::from(&s));
        }
        Ok(())
    })
}

/// Saves the classifier as an HF `ElectraForSequenceClassification` directory (loadable by
/// `transformers` and by `electra_model_load`), under the save contract (SAVES above).
///
/// # Safety
/// `f` must be live; `dir` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn electra_finetuner_save(f: *mut electra_finetuner, dir: *const c_char) -> electra_status {
    guard(|| {
        let handle = fine_tuner(f)?;
        // SAFETY: `dir` is NULL or a NUL-terminated string (the contract).
        let dir = unsafe { c_str(dir, "dir")? };
        let saved = lock(&handle, "fine-tuner")?.save(Path::new(dir));
        saved
    })
}

/// Frees a fine-tuner. NULL, an already freed fine-tuner and any other value are harmless
/// no-ops. A step running in another thread finishes normally; the memory is released when it
/// returns.
///
/// # Safety
/// None: `f` is looked up in the registry of live handles, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn electra_finetuner_free(f: *mut electra_finetuner) {
    guard_void(|| electra_finetuner::free(f))
}

/// Classification logits: writes `batch*num_labels` floats, row-major, for a model with a
/// classification head (`electra_model_info.num_labels` > 0); else `ELECTRA_ERR_UNSUPPORTED`.
/// Same argument rules as `electra_session_discriminate`.
///
/// # Safety
/// As `electra_session_discriminate`.
#[no_mangle]
pub unsafe extern "C" fn electra_session_classify(
    s: *mut electra_session,
    input_ids: *const i32,
    attention_mask: *const i32,
    token_type_ids: *const i32,
    batch: usize,
    seq_len: usize,
    out: *mut f32,
    out_len: usize,
) -> electra_status {
    let args = super::session::RunArgs { s, input_ids, attention_mask, token_type_ids, batch, seq_len, out, out_len };
    // SAFETY: `run` has this function's contract (see # Safety), and every argument is passed on
    // unchanged.
    unsafe { super::session::run(args, crate::session::Session::classify) }
}
