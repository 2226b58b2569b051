//! `electra_model`: loaded weights, immutable and shared (an `Arc`), safe to use from many threads.

use super::handle::FfiHandle;
use super::status::*;
use super::{c_str, guard, guard_void, SizedOut, StructSized};
use crate::error::Error;
use crate::model::Model;
use std::ffi::c_char;
use std::path::Path;

/// Opaque handle to a loaded model. Free with `electra_model_free`.
// Zero-sized: an `electra_model *` is a registry id for a shared `Model` (see handle.rs).
pub struct electra_model {
    _opaque: [u8; 0],
}

impl FfiHandle for electra_model {
    type Value = Model;
    const MAGIC: u64 = 0x454c_4543_4d4f_444c; // "ELECMODL"
    const NULL: &'static str = "electra_model is NULL";
    const DEAD: &'static str = "not a live electra_model: freed already, never created, or not a handle";
    const WRONG: &'static str = "not an electra_model: a live handle of another kind was passed";
}

/// Model dimensions, filled by `electra_model_get_info`. Set `struct_size` to
/// `sizeof(electra_model_info)` first; the library writes only the fields that fit, so older
/// callers keep working when fields are appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct electra_model_info {
    /// Set by the caller: `sizeof(electra_model_info)`.
    pub struct_size: u32,
    /// V: vocabulary size.
    pub vocab_size: u32,
    /// H: the discriminator's hidden width (the generator's when there is no discriminator).
    pub hidden_size: u32,
    /// E: embedding width.
    pub embedding_size: u32,
    /// Largest seq_len accepted.
    pub max_position_embeddings: u32,
    /// Number of token types accepted.
    pub type_vocab_size: u32,
    /// Encoder layers of the discriminator (else the generator).
    pub num_hidden_layers: u32,
    /// 1 when the model has a discriminator.
    pub has_discriminator: i32,
    /// 1 when the model has a generator.
    pub has_generator: i32,
    /// The generator's hidden width (0 without a generator).
    pub generator_hidden_size: u32,
    /// Total number of distinct parameters.
    pub num_parameters: u64,
    /// Labels of the classification head (0 without one).
    pub num_labels: u32,
    /// How the Linear weights are stored: `ELECTRA_WEIGHTS_F32` or `ELECTRA_WEIGHTS_INT8` (a
    /// model quantized by `electra quantize` or with the load option `"quantize": "int8"`).
    pub weight_format: u32,
}

/// `electra_model_info.weight_format`: f32 weights (as trained).
pub const ELECTRA_WEIGHTS_F32: u32 = 0;
/// `electra_model_info.weight_format`: int8 Linear and word-embedding weights with per-row f32
/// scales; inference only (training and fine-tuning refuse it with `ELECTRA_ERR_UNSUPPORTED`).
pub const ELECTRA_WEIGHTS_INT8: u32 = 1;

// SAFETY: `#[repr(C)]` with `struct_size: u32` first (checked at compile time below).
unsafe impl StructSized for electra_model_info {}
const _: () = assert!(std::mem::offset_of!(electra_model_info, struct_size) == 0);

/// Loads a model from `path`: an HF directory (config.json + model.safetensors of an
/// ElectraForPreTraining or ElectraForMaskedLM), or the pair layout (`path/discriminator`,
/// `path/generator`). On success `*out` owns the model; on failure `*out` is NULL.
///
/// # Safety
/// `path` must be a NUL-terminated string; `out` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_model_load(path: *const c_char, out: *mut *mut electra_model) -> electra_status {
    // SAFETY: the same contract as this function's, with NULL options (the defaults: strict).
    unsafe { electra_model_load_with_options(path, std::ptr::null(), out) }
}

/// Loads a model as `electra_model_load` does, with options as a JSON object (NULL or "":
/// the defaults). Keys: `"allow_unused_tensors"` (bool, default false): accept files holding
/// tensors the config does not account for (by default an `ELECTRA_ERR_FORMAT` listing them,
/// e.g. a config of 1 layer over a 2-layer file). `"quantize"` (`"f32"`, the default, or
/// `"int8"`): quantize an f32 model as it loads, as `electra quantize` does (every encoder and
/// head Linear weight and the word embeddings int8 per output channel; activations quantized per
/// row at run time; about 2.2-2.6x faster on the CPU, within ~1% of f32 outputs); an int8 model
/// directory loads as int8 either way. Unknown keys are `ELECTRA_ERR_INVALID_ARGUMENT`.
/// On failure `*out` is NULL.
///
/// Memory: the safetensors header is validated first (offsets, sizes, dtypes against the file's
/// length), then each tensor is read with positioned reads of at most 1 MiB straight into its
/// place in the model's one parameter buffer, so loading an f32 model peaks at about the file's
/// size (not twice it); with `"quantize": "int8"` the weights to quantize are read and quantized a
/// block of rows at a time and never held in f32, so the peak is about the int8 model's size.
/// The first session call on a device builds that device's inference copy of the weights (packed
/// for the CPU kernels, or on the GPU), counted on top. The file is read, never memory-mapped: a
/// file truncated or rewritten under a mapping would raise SIGBUS in the host's process, while a
/// file changed during a read is at worst `ELECTRA_ERR_FORMAT` (it ended early, or a value is not
/// finite: every tensor is checked) or a model of other finite weights, and a file replaced by a
/// rename while loading is not seen at all (the open file is read).
///
/// # Safety
/// `path` must be a NUL-terminated string; `options_json` NULL or a NUL-terminated string;
/// `out` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_model_load_with_options(
    path: *const c_char,
    options_json: *const c_char,
    out: *mut *mut electra_model,
) -> electra_status {
    guard(|| {
        let out = super::out_handle(out)?;
        // SAFETY: `path` is NULL or a NUL-terminated string alive for this call (the contract).
        let path = unsafe { c_str(path, "path")? };
        // SAFETY: `options_json` is NULL or a NUL-terminated string alive for this call.
        let opts = crate::hf::LoadOptions::from_json(unsafe { super::options_str(options_json)? })?;
        let h = electra_model::publish(load_dir(Path::new(path), &opts)?)?;
        *out = h;
        Ok(())
    })
}

/// Loads one HF tower (an ElectraForPreTraining, ElectraForMaskedLM or
/// ElectraForSequenceClassification checkpoint, f32 or int8) from the bytes of its `config.json`
/// (`config_json`, `config_len` bytes, UTF-8, not NUL-terminated) and of its `model.safetensors`
/// (`weights`, `weights_len` bytes) held in the caller's memory, as an app holds a bundled asset.
/// `options_json` as for `electra_model_load_with_options`. Both buffers are checked as strictly
/// as files are (size caps, the safetensors header's offsets and sizes against `weights_len`
/// before anything is allocated, names, shapes, finite values): an empty, truncated or corrupt
/// buffer is `ELECTRA_ERR_FORMAT`.
///
/// The weights are COPIED into the model's own parameter buffer, once, tensor by tensor: the
/// model's flat parameter layout orders (and converts) tensors differently from the file, so the
/// caller's buffer could not be used in place, and owning the copy frees the caller from keeping
/// the buffer alive: both buffers may be freed or reused as soon as this returns. Peak memory is
/// the caller's buffer plus the model (f32: about the size of `weights`; with `"quantize": "int8"`
/// the f32 tensors to quantize are never copied, only their int8 form).
///
/// On success `*out` owns the model; on failure `*out` is NULL. A NULL `config_json`, `weights`
/// or `out` is `ELECTRA_ERR_NULL_POINTER` (whatever the lengths).
///
/// # Safety
/// `config_json` must point to `config_len` readable bytes and `weights` to `weights_len`
/// readable bytes, both unchanged for the duration of the call; `options_json` NULL or a
/// NUL-terminated string; `out` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn electra_model_load_from_memory(
    config_json: *const u8,
    config_len: usize,
    weights: *const u8,
    weights_len: usize,
    options_json: *const c_char,
    out: *mut *mut electra_model,
) -> electra_status {
    guard(|| {
        let out = super::out_handle(out)?;
        if config_json.is_null() {
            return Err(Error::NullPointer("config_json"));
        }
        if weights.is_null() {
            return Err(Error::NullPointer("weights"));
        }
        if config_len > isize::MAX as usize || weights_len > isize::MAX as usize {
            return Err(Error::arg("config_len or weights_len is larger than any buffer can be"));
        }
        // SAFETY: non-NULL (checked above), and by the contract `config_len` readable bytes
        // unchanged for this call; the length fits a slice (checked above).
        let config = unsafe { std::slice::from_raw_parts(config_json, config_len) };
        // SAFETY: as above, for `weights` and `weights_len`.
        let weights = unsafe { std::slice::from_raw_parts(weights, weights_len) };
        // SAFETY: `options_json` is NULL or a NUL-terminated string alive for this call.
        let opts = crate::hf::LoadOptions::from_json(unsafe { super::options_str(options_json)? })?;
        let model = crate::hf::load_from_memory(config, weights, &opts)?;
        let h = electra_model::publish(model)?;
        *out = h;
        Ok(())
    })
}

/// A model directory as the load functions read it: the weights, and the tokenizer beside them.
pub(crate) fn load_dir(path: &Path, opts: &crate::hf::LoadOptions) -> crate::error::Result<Model> {
    let mut model = crate::hf::load_with(path, opts)?;
    model.tokenizer = crate::text::tokenizer_beside(&model, path);
    Ok(model)
}

/// Loads one HF tower from a `config.json` and a `model.safetensors` held in memory (see
/// [`crate::hf::load_from_memory`]) and registers it, reporting as
/// `electra_model_load_from_memory` does (status and the thread's last error). For the Java
/// binding (`Model.load(byte[], ...)`), whose arrays arrive as slices.
#[cfg(feature = "jni")]
pub(crate) fn load_from_memory(
    config_json: &[u8],
    weights: &[u8],
    options_json: Option<&str>,
    out: &mut *mut electra_model,
) -> electra_status {
    *out = std::ptr::null_mut();
    guard(|| {
        let opts = crate::hf::LoadOptions::from_json(options_json)?;
        let model = crate::hf::load_from_memory(config_json, weights, &opts)?;
        *out = electra_model::publish(model)?;
        Ok(())
    })
}

/// Frees a model. NULL, an already freed model and any other value are harmless no-ops.
/// Sessions created from it stay valid (they share the weights).
///
/// # Safety
/// None: `m` is looked up in the registry of live handles, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn electra_model_free(m: *mut electra_model) {
    guard_void(|| electra_model::free(m))
}

/// Fills `info` with the model's dimensions (see `electra_model_info`).
///
/// # Safety
/// `info` must point to at least `info->struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn electra_model_get_info(
    m: *const electra_model,
    info: *mut electra_model_info,
) -> electra_status {
    guard(|| {
        let model = electra_model::get(m)?;
        // SAFETY: `info` is NULL or valid for `info->struct_size` bytes (the contract).
        let info = unsafe { SizedOut::new(info, "info->struct_size must be set to sizeof(electra_model_info)")? }
            .ok_or(Error::NullPointer("info"))?;
        let cfg = model.input_config();
        info.write(&electra_model_info {
            struct_size: 0, // `write` keeps the caller's
            vocab_size: cfg.vocab_size as u32,
            hidden_size: cfg.hidden_size as u32,
            embedding_size: cfg.embedding_size as u32,
            max_position_embeddings: cfg.max_position_embeddings as u32,
            type_vocab_size: cfg.type_vocab_size as u32,
            num_hidden_layers: cfg.num_hidden_layers as u32,
            has_discriminator: model.disc().is_some() as i32,
            has_generator: model.gen().is_some() as i32,
            generator_hidden_size: model.gen().map_or(0, |g| g.config.hidden_size as u32),
            num_parameters: model.num_parameters() as u64,
            num_labels: model.cls().map_or(0, |c| c.num_labels as u32),
            weight_format: match crate::quant::format_of(&model) {
                crate::quant::WeightFormat::F32 => ELECTRA_WEIGHTS_F32,
                crate::quant::WeightFormat::Int8 => ELECTRA_WEIGHTS_INT8,
            },
        });
        Ok(())
    })
}

/// Saves the model in the pair layout under `dir` (`dir/discriminator`, `dir/generator`), each
/// an HF directory loadable by `transformers` and by `electra_model_load`, under the save
/// contract (SAVES above: nothing in `dir` that the save did not write is touched). An int8 model is saved in the int8 format (the directory `electra quantize`
/// writes), which `electra_model_load` reads and `transformers` does not; its f32 weights are
/// gone, so nothing exports it as an f32 checkpoint.
///
/// # Safety
/// `dir` must be NULL or a NUL-terminated string (`m` is looked up, never dereferenced).
#[no_mangle]
pub unsafe extern "C" fn electra_model_save(m: *const electra_model, dir: *const c_char) -> electra_status {
    guard(|| {
        let model = electra_model::get(m)?;
        // SAFETY: `dir` is NULL or a NUL-terminated string (the contract).
        let dir = unsafe { c_str(dir, "dir")? };
        crate::hf::save(&model, Path::new(dir))
    })
}
