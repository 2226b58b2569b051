//! `electra_finetuner`: sequence-classification fine-tuning from C, and classification
//! inference through `electra_session_classify`.

use super::session::electra_session;
use super::status::*;
use super::{c_str, guard, guard_void, in_slice};
use crate::error::{Error, Result};
use crate::finetune::{FineTuner, FinetuneOptions};
use crate::session::Batch;
use std::ffi::c_char;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

const FINETUNER_MAGIC: u64 = 0x454c_4543_4654_554e; // "ELECFTUN"

/// Opaque fine-tuning state. Free with `electra_finetuner_free`.
// Zero-sized: an `electra_finetuner *` really points to a [`FinetunerHandle`].
pub struct electra_finetuner {
    _opaque: [u8; 0],
}

/// What an `electra_finetuner *` points to; `repr(C)` keeps the tag at offset 0.
#[repr(C)]
struct FinetunerHandle {
    magic: u64,
    // One thread at a time: concurrent use becomes a clear error, not a data race.
    ft: Mutex<FineTuner>,
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

unsafe fn ft_check<'a>(p: *mut electra_finetuner) -> Result<&'a FinetunerHandle> {
    super::check_tag(p, FINETUNER_MAGIC, "electra_finetuner is NULL", "not a live electra_finetuner")?;
    Ok(&*p.cast::<FinetunerHandle>())
}

unsafe fn ft_lock<'a>(p: *mut electra_finetuner) -> Result<MutexGuard<'a, FineTuner>> {
    ft_check(p)?.ft.try_lock().map_err(|_| {
        Error::arg("the fine-tuner is in use by another thread (or was poisoned by a panic in an earlier call)")
    })
}

unsafe fn batch_from<'a>(
    input_ids: *const i32,
    attention_mask: *const i32,
    token_type_ids: *const i32,
    batch: usize,
    seq_len: usize,
) -> Result<Batch<'a>> {
    if input_ids.is_null() {
        return Err(Error::NullPointer("input_ids"));
    }
    let n = Batch { input_ids: &[], attention_mask: None, token_type_ids: None, batch, seq_len }.tokens()?;
    if n > isize::MAX as usize / 4 {
        return Err(Error::arg("batch too large"));
    }
    Ok(Batch {
        input_ids: std::slice::from_raw_parts(input_ids, n),
        attention_mask: in_slice(attention_mask, n),
        token_type_ids: in_slice(token_type_ids, n),
        batch,
        seq_len,
    })
}

/// Starts fine-tuning from `model_dir`: any checkpoint with a discriminator (its encoder is
/// kept and a fresh classification head for `num_labels` labels is added) or an existing
/// classifier (continued; pass its label count or 0). `options_json` is NULL or a JSON object
/// with keys learning_rate, warmup_steps, total_steps, weight_decay, layerwise_lr_decay,
/// adam_epsilon, bias_correction, max_grad_norm, seed, threads.
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
        if out.is_null() {
            return Err(Error::NullPointer("out"));
        }
        *out = std::ptr::null_mut();
        let dir = c_str(model_dir, "model_dir")?;
        let json = if options_json.is_null() { None } else { Some(c_str(options_json, "options_json")?) };
        if num_labels > 100_000 {
            return Err(Error::arg(format!("num_labels {num_labels} is implausibly large")));
        }
        let labels: Vec<String> = (0..num_labels).map(|i| format!("LABEL_{i}")).collect();
        let ft = FineTuner::new(Path::new(dir), &labels, FinetuneOptions::from_json(json)?)?;
        *out = Box::into_raw(Box::new(FinetunerHandle { magic: FINETUNER_MAGIC, ft: Mutex::new(ft) })).cast();
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
        let mut ft = ft_lock(f)?;
        let b = batch_from(input_ids, attention_mask, token_type_ids, batch, seq_len)?;
        if labels.is_null() {
            return Err(Error::NullPointer("labels"));
        }
        if !stats.is_null() && ((*stats).struct_size as usize) < std::mem::size_of::<u32>() {
            return Err(Error::arg("stats->struct_size must be set to sizeof(electra_finetune_stats)"));
        }
        let s = ft.train_step(&b, std::slice::from_raw_parts(labels, batch))?;
        if !stats.is_null() {
            let full = electra_finetune_stats {
                struct_size: (*stats).struct_size,
                step: s.step,
                loss: s.loss,
                accuracy: s.accuracy,
                learning_rate: s.learning_rate,
                grad_norm: s.grad_norm,
            };
            let size = ((*stats).struct_size as usize).min(std::mem::size_of::<electra_finetune_stats>());
            std::ptr::copy_nonoverlapping(
                (&full as *const electra_finetune_stats).cast::<u8>(),
                stats.cast::<u8>(),
                size,
            );
        }
        Ok(())
    })
}

/// Saves the classifier as an HF `ElectraForSequenceClassification` directory (loadable by
/// `transformers` and by `electra_model_load`).
///
/// # Safety
/// `f` must be live; `dir` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn electra_finetuner_save(f: *mut electra_finetuner, dir: *const c_char) -> electra_status {
    guard(|| {
        let ft = ft_lock(f)?;
        ft.save(Path::new(c_str(dir, "dir")?))
    })
}

/// Frees a fine-tuner. NULL is a no-op.
///
/// # Safety
/// `f` must be NULL or live.
#[no_mangle]
pub unsafe extern "C" fn electra_finetuner_free(f: *mut electra_finetuner) {
    guard_void(|| {
        if ft_check(f).is_ok() {
            let h = f.cast::<FinetunerHandle>();
            (*h).magic = 0;
            drop(Box::from_raw(h));
        }
    })
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
    super::session::run(
        s,
        input_ids,
        attention_mask,
        token_type_ids,
        batch,
        seq_len,
        out,
        out_len,
        crate::session::Session::classify,
    )
}
