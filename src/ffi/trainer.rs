//! `electra_trainer`: pre-training from C. One thread steps a trainer at a time; any thread may
//! cancel it.

use super::handle::{lock, FfiHandle};
use super::model::electra_model;
use super::status::*;
use super::{batch_from, c_str, guard, guard_void, options_str, SizedOut, StructSized};
use crate::distributed::Collective;
use crate::error::{Error, Result};
use crate::pretrain::{ResumeOptions, TrainOptions, Trainer};
use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Opaque pre-training state (model, optimizer, RNG). Free with `electra_trainer_free`.
// Zero-sized: an `electra_trainer *` is a registry id for a `TrainerState` (see handle.rs).
pub struct electra_trainer {
    _opaque: [u8; 0],
}

/// What an `electra_trainer *` owns.
pub(crate) struct TrainerState {
    /// The trainer's cancel flag, outside the lock so any thread can cancel a running step.
    cancel: Arc<AtomicBool>,
    /// One thread steps a trainer at a time (see `lock`).
    pub(crate) trainer: Mutex<Trainer>,
}

impl FfiHandle for electra_trainer {
    type Value = TrainerState;
    const MAGIC: u64 = 0x454c_4543_5452_4e52; // "ELECTRNR"
    const NULL: &'static str = "electra_trainer is NULL";
    const DEAD: &'static str = "not a live electra_trainer: freed already, never created, or not a handle";
    const WRONG: &'static str = "not an electra_trainer: a live handle of another kind was passed";
    const FORK_BOUND: bool = true;
}

/// What one `electra_trainer_step` measured. Set `struct_size` to `sizeof(electra_step_stats)`;
/// the library fills only the fields that fit, so fields can be appended compatibly.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct electra_step_stats {
    /// Set by the caller: `sizeof(electra_step_stats)`.
    pub struct_size: u32,
    /// Updates applied so far, this one included.
    pub step: u64,
    /// gen_weight·mlm_loss + disc_weight·disc_loss.
    pub loss: f32,
    /// Generator cross-entropy at the masked positions.
    pub mlm_loss: f32,
    /// Discriminator BCE over real tokens (0 for the mlm objective).
    pub disc_loss: f32,
    /// Share of real tokens the discriminator labels correctly.
    pub disc_accuracy: f32,
    /// Learning rate this step used.
    pub learning_rate: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

// SAFETY: `#[repr(C)]` with `struct_size: u32` first (checked at compile time below).
unsafe impl StructSized for electra_step_stats {}
const _: () = assert!(std::mem::offset_of!(electra_step_stats, struct_size) == 0);

impl From<&crate::pretrain::StepStats> for electra_step_stats {
    fn from(s: &crate::pretrain::StepStats) -> Self {
        electra_step_stats {
            struct_size: 0, // `SizedOut::write` keeps the caller's
            step: s.step,
            loss: s.loss,
            mlm_loss: s.mlm_loss,
            disc_loss: s.disc_loss,
            disc_accuracy: s.disc_accuracy,
            learning_rate: s.learning_rate,
            grad_norm: s.grad_norm,
        }
    }
}

pub(crate) fn publish(t: Trainer) -> Result<*mut electra_trainer> {
    electra_trainer::publish(TrainerState { cancel: t.cancel_flag(), trainer: Mutex::new(t) })
}

/// Creates a trainer. `init` is a preset name (`tiny`, `small`, `base`, `large`) or a directory
/// (the pair layout, or a lone discriminator whose generator is built by the paper's size rule).
/// `options_json` is NULL or a JSON object; unknown keys and bad values are
/// `ELECTRA_ERR_INVALID_ARGUMENT` with a message naming them. Keys: learning_rate,
/// warmup_steps, total_steps, weight_decay, adam_epsilon, adam_beta1, adam_beta2,
/// bias_correction, max_grad_norm, mask_prob, gen_weight, disc_weight, temperature, objective
/// ("electra" or "mlm"), generator_hidden_fraction, vocab_size, max_seq_len, mask_token_id,
/// special_token_ids, seed, threads (host worker threads: 0, the default, the process-wide
/// shared pool sized by `electra_set_default_threads`; 1 the calling thread only, with no worker
/// thread; N >= 2 N workers, the shared pool when that is its size, else a pool of the trainer's own;
/// results do not depend on it), own_pool (true: a pool of its own of `threads` workers, 0 = one
/// per core; default false), device (`"cpu"`, the default; `"cuda"` or `"cuda:N"`: a
/// device not compiled in or not present is `ELECTRA_ERR_CUDA`), max_memory_bytes (a memory
/// budget, 0 = none beyond the machine's memory: weights, gradients and Adam moments over it
/// fail creation, and those plus a batch's activations fail the step, with
/// `ELECTRA_ERR_OUT_OF_MEMORY` before anything is allocated), simd (CPU kernel cap: `"best"`,
/// the default, `"avx512"`, `"avx2"`, `"neon"` or `"scalar"`; left out: `ELECTRA_SIMD` when
/// set), tf32 (CUDA TF32 products, default false; left out: `ELECTRA_CUDA_TF32` when set),
/// dropout (`true`, the default: config.json's hidden_dropout_prob and
/// attention_probs_dropout_prob, as HF trains; `false`: none; a number in [0, 1): every
/// dropout at that probability; masks are seeded and counter-based, so steps stay
/// bit-identical for any thread count and on resume), embedding_sharing (`"full"`, the paper's:
/// one set of embedding tables for generator and discriminator; `"disentangled"`, DeBERTa-V3's:
/// the discriminator's tables are the generator's plus a delta that alone learns from
/// detection, exported folded; `"none"`: each its own; left out: full for a pair built from a
/// preset or a discriminator, a loaded pair as its files are; JSON only,
/// `electra_trainer_params` keeps its version-1 layout), disc_mlm_weight (the hybrid
/// objective: weight of a masked-LM term on the discriminator's own states, through a head kept
/// in the trainer's checkpoints but not in the exported discriminator; default 0, the paper's
/// objective; JSON only), disc_label_smoothing (ε in [0, 1): replaced-token detection scored
/// against ε/2 and 1 − ε/2; default 0, the paper's; JSON only), rtd_head (`"plain"`, HF's
/// detection head, or `"cls"`: LayerNorm(h_[CLS] + h_i) first, so [CLS] learns from every
/// token's detection; saved as config.json `"rtd_head": "cls"` plus
/// `discriminator_predictions.LayerNorm.*`, whose encoder HF loads unchanged; left out: plain
/// for a new pair, a loaded model as its files are; JSON only), tie_generator_output (true:
/// the masked-LM head's output weights are the word table, the paper's; false: a matrix of its
/// own, saved as `generator_lm_head.weight` with `"tie_word_embeddings": false`, which HF loads;
/// left out: tied for a new model, a loaded model as its files are; JSON only),
/// cls_contrast_weight (a sequence-level loss for [CLS], COCO-LM's contrastive one with the
/// generator's pass as the second view: each sequence's [CLS] states in the two towers must find
/// each other among the micro-batch's, through projections kept in the trainer's checkpoints but
/// not in the exported models; default 0, off; JSON only), cls_contrast_temperature (its
/// softmax temperature, at least 0.01; default 0.1; JSON only).
/// max_seq_len left out is 128, or the model's max_position_embeddings when smaller. On failure `*out` is NULL.
///
/// # Safety
/// `init` must be a NUL-terminated string, `options_json` NULL or one; `out` valid.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_new(
    init: *const c_char,
    options_json: *const c_char,
    out: *mut *mut electra_trainer,
) -> electra_status {
    guard(|| {
        let out = super::out_handle(out)?;
        // SAFETY: `init` is NULL or a NUL-terminated string alive for this call (the contract).
        let init = unsafe { c_str(init, "init")? };
        // SAFETY: `options_json` is non-NULL in the `else` branch and then, by the contract, a
        // NUL-terminated string alive for this call.
        let json = unsafe { options_str(options_json)? };
        let t = Trainer::new(init, TrainOptions::from_json(json)?)?;
        let h = publish(t)?;
        *out = h;
        Ok(())
    })
}

/// One pre-training step on a batch of `batch*seq_len` token ids: the library masks, samples,
/// computes the joint loss and updates the weights. `attention_mask` and `token_type_ids` may
/// be NULL (all ones, all zeros); `stats` may be NULL. Bad input, a non-finite loss or gradient
/// (`ELECTRA_ERR_NUMERIC`) and cancellation (`ELECTRA_ERR_CANCELLED`) leave the trainer exactly
/// as it was and usable.
///
/// # Safety
/// Input arrays must hold `batch*seq_len` elements (or be NULL where allowed); `stats` NULL or
/// valid for `stats->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_step(
    t: *mut electra_trainer,
    input_ids: *const i32,
    attention_mask: *const i32,
    token_type_ids: *const i32,
    batch: usize,
    seq_len: usize,
    stats: *mut electra_step_stats,
) -> electra_status {
    guard(|| {
        let h = electra_trainer::get(t)?;
        // SAFETY: the input arrays hold `batch*seq_len` elements for this call, and `stats` is
        // NULL or valid for `stats->struct_size` bytes (the contract).
        let (b, stats) = unsafe {
            (
                batch_from(input_ids, attention_mask, token_type_ids, batch, seq_len)?,
                SizedOut::new(stats, "stats->struct_size must be set to sizeof(electra_step_stats)")?,
            )
        };
        let s = lock(&h.trainer, "trainer")?.train_step(&b)?;
        if let Some(stats) = stats {
            stats.write(&electra_step_stats::from(&s));
        }
        Ok(())
    })
}

/// Saves the full trainer state (weights, Adam moments, step, RNG, options) to
/// `dir/trainer.safetensors`, under the save contract (SAVES above): a failure leaves the
/// previous checkpoint intact, and nothing else in `dir` is touched.
///
/// # Safety
/// `t` must be a live trainer; `dir` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_save(t: *mut electra_trainer, dir: *const c_char) -> electra_status {
    guard(|| {
        let h = electra_trainer::get(t)?;
        // SAFETY: `dir` is NULL or a NUL-terminated string (the contract).
        let dir = unsafe { c_str(dir, "dir")? };
        let saved = lock(&h.trainer, "trainer")?.save(Path::new(dir));
        saved
    })
}

/// Restores a trainer saved by `electra_trainer_save`, on the device and thread count it was
/// created with; training continues bit-identically.
///
/// # Safety
/// `dir` must be a NUL-terminated string; `out` valid.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_resume(dir: *const c_char, out: *mut *mut electra_trainer) -> electra_status {
    // SAFETY: the same contract.
    unsafe { electra_trainer_resume_with_options(dir, std::ptr::null(), out) }
}

/// `electra_trainer_resume` elsewhere: `options_json` is NULL or a JSON object with the keys
/// `device` (`"cpu"`, `"cuda"`, `"cuda:N"`) and `threads`; an absent key keeps the checkpoint's
/// value. A run begun on a GPU continues on a machine without one with `{"device": "cpu"}`. In
/// a run with a host's all-reduce every rank resumes the same checkpoint with its own `rank`
/// (`{"rank": 1}`) and then sets the all-reduce again.
///
/// # Safety
/// `dir` must be a NUL-terminated string, `options_json` NULL or one; `out` valid.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_resume_with_options(
    dir: *const c_char,
    options_json: *const c_char,
    out: *mut *mut electra_trainer,
) -> electra_status {
    guard(|| {
        let out = super::out_handle(out)?;
        // SAFETY: both are NUL-terminated strings or (options) NULL, by the contract.
        let (dir, json) = unsafe { (c_str(dir, "dir")?, options_str(options_json)?) };
        let t = Trainer::resume_with(Path::new(dir), &ResumeOptions::from_json(json)?)?;
        let h = publish(t)?;
        *out = h;
        Ok(())
    })
}

/// A host's sum all-reduce: replace the `count` floats at `data` by their element-wise sum over
/// all ranks, in place, and return 0 (any other value fails the step with
/// `ELECTRA_ERR_DISTRIBUTED` on this rank). Every rank must get the same bits back. It runs on
/// the thread that called into the trainer and must not unwind (no C++ exception, no Go panic)
/// across it.
pub type electra_allreduce_fn =
    Option<unsafe extern "C" fn(data: *mut f32, count: usize, user_data: *mut c_void) -> i32>;

/// A C callback as the trainer's collective.
struct HostAllReduce {
    f: unsafe extern "C" fn(*mut f32, usize, *mut c_void) -> i32,
    user_data: *mut c_void,
    rank: usize,
    world: usize,
}

// SAFETY: the host promises (electra_trainer_set_allreduce's contract) that the callback and its
// user_data may be used from whichever thread steps the trainer; we call it from one thread at a
// time (the trainer's lock).
unsafe impl Send for HostAllReduce {}
// SAFETY: as above.
unsafe impl Sync for HostAllReduce {}

impl Collective for HostAllReduce {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        // SAFETY: `data` is a live, exclusive buffer of `data.len()` floats for the call; the
        // callback and user_data are the host's, valid for the trainer's lifetime (the contract).
        let rc = unsafe { (self.f)(data.as_mut_ptr(), data.len(), self.user_data) };
        if rc != 0 {
            return Err(Error::Distributed(format!("the host's all-reduce returned {rc}")));
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!("host all-reduce: rank {} of {}", self.rank, self.world)
    }
}

/// Makes a trainer created with options `rank` and `world_size` one of `world_size` data-parallel
/// ranks whose gradients the host sums with `allreduce` (its MPI, Gloo, Horovod, NCCL through
/// host memory, or threads of its own). A collective call: every rank calls it, before its first
/// step or right after resuming, and it checks that the ranks are distinct and hold the same
/// options, step and weights (`ELECTRA_ERR_DISTRIBUTED` otherwise). From then on
/// `electra_trainer_step` and `electra_trainer_save` are collective calls too: every rank makes
/// them in the same order (each step on its own batch; the save is written by rank 0, into the
/// directory rank 0 names, with every rank's RNG and cursor state). A failure on one rank fails
/// that step on every rank, changing nothing anywhere. Not for a trainer with `distributed`
/// `"mpi"`.
///
/// # Safety
/// `t` must be a live trainer; `allreduce` and `user_data` must stay valid, and usable from the
/// thread that steps the trainer, until the trainer is freed.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_set_allreduce(
    t: *mut electra_trainer,
    allreduce: electra_allreduce_fn,
    user_data: *mut c_void,
) -> electra_status {
    guard(|| {
        let h = electra_trainer::get(t)?;
        let f = allreduce.ok_or(Error::NullPointer("allreduce"))?;
        let mut tr = lock(&h.trainer, "trainer")?;
        let (rank, world) = (tr.opts.rank, tr.opts.world_size);
        tr.set_collective(Arc::new(HostAllReduce { f, user_data, rank, world }))
    })
}

/// Writes the model in the pair layout (`dir/discriminator`, `dir/generator`), each an HF
/// directory loadable by `transformers` and by `electra_model_load`, under the save contract
/// (SAVES above).
///
/// # Safety
/// `t` must be a live trainer; `dir` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_export(t: *mut electra_trainer, dir: *const c_char) -> electra_status {
    guard(|| {
        let h = electra_trainer::get(t)?;
        // SAFETY: `dir` is NULL or a NUL-terminated string (the contract).
        let dir = unsafe { c_str(dir, "dir")? };
        let exported = lock(&h.trainer, "trainer")?.export(Path::new(dir));
        exported
    })
}

/// A snapshot of the trainer's current weights as a model for inference (free it with
/// `electra_model_free`; later steps do not change it).
///
/// # Safety
/// `t` must be a live trainer; `out` valid.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_get_model(
    t: *mut electra_trainer,
    out: *mut *mut electra_model,
) -> electra_status {
    guard(|| {
        let out = super::out_handle(out)?;
        let h = electra_trainer::get(t)?;
        let model = lock(&h.trainer, "trainer")?.model()?;
        // SAFETY: `out` is non-NULL and, by the contract, valid for a write.
        let m = electra_model::publish(model)?;
        *out = m;
        Ok(())
    })
}

/// Asks the running (or next) step to stop: it returns `ELECTRA_ERR_CANCELLED` and leaves the
/// trainer consistent. Safe to call from any thread while another steps; NULL is a no-op.
///
/// # Safety
/// `t` must be NULL or a live trainer.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_cancel(t: *mut electra_trainer) {
    guard_void(|| {
        // Only the atomic flag is touched, so this may run while another thread holds the lock.
        if let Ok(h) = electra_trainer::get(t) {
            h.cancel.store(true, Ordering::SeqCst);
        }
    })
}

/// Frees a trainer. NULL, an already freed trainer and any other value are harmless no-ops. A
/// step running in another thread finishes normally (cancel it first to make that quick); the
/// memory is released when it returns.
///
/// # Safety
/// None: `t` is looked up in the registry of live handles, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_free(t: *mut electra_trainer) {
    guard_void(|| electra_trainer::free(t))
}
