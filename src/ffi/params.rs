//! Typed options (`electra_*_params`), next to the JSON strings, which stay. One definition: a
//! params struct's field names are its JSON keys, its `*_default_params()` values are the Rust
//! options' defaults read through their JSON form, and a call turns the struct into a JSON object
//! that the same parser as `options_json` checks (unknown keys, ranges, messages). The
//! [`params!`] list of each struct is checked exhaustive at compile time (a destructuring
//! pattern), and tests check that every JSON key has its field.
//!
//! Field types in C: numbers as numbers; booleans as `int32_t` (0 or 1); choices as strings
//! (`const char *`, NULL = the default, as the JSON key left out); an optional number as 0 (or
//! -1 for an optional boolean) meaning "not set".

use super::handle::FfiHandle;
use super::model::electra_model;
use super::session::electra_session;
use super::status::*;
use super::tokenizer::read_params;
use super::{c_str, guard, out_handle, StructSized};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::ffi::c_char;

/// One field of a params struct: its JSON value given the key's default (`like`, which says
/// whether the JSON wants a boolean, an optional value or a number), and its default from that.
pub(crate) trait ParamField: Sized {
    /// The JSON value, or `None` to leave the key out (the default).
    fn to_json(&self, key: &str, like: &Value) -> Result<Option<Value>>;
    /// The field's value for the JSON default `like`.
    fn from_default(like: &Value) -> Self;
}

fn number(x: f64) -> Option<Value> {
    serde_json::Number::from_f64(x).map(Value::Number)
}

impl ParamField for i32 {
    fn to_json(&self, key: &str, like: &Value) -> Result<Option<Value>> {
        Ok(match like {
            Value::Bool(_) => Some(Value::Bool(bool_of(*self, key)?)),
            // An optional boolean: -1 unset.
            Value::Null if *self < 0 => None,
            Value::Null => Some(Value::Bool(bool_of(*self, key)?)),
            _ => Some(Value::from(*self)),
        })
    }
    fn from_default(like: &Value) -> Self {
        match like {
            Value::Bool(b) => *b as i32,
            Value::Null => -1,
            v => v.as_i64().unwrap_or(0) as i32,
        }
    }
}

fn bool_of(v: i32, key: &str) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::arg(format!("params: {key} is {v}: a boolean field is 0 or 1"))),
    }
}

macro_rules! unsigned_field {
    ($t:ty) => {
        impl ParamField for $t {
            fn to_json(&self, _: &str, like: &Value) -> Result<Option<Value>> {
                // An optional count: 0 unset.
                Ok((!(like.is_null() && *self == 0)).then(|| Value::from(*self)))
            }
            fn from_default(like: &Value) -> Self {
                like.as_u64().unwrap_or(0) as $t
            }
        }
    };
}
unsigned_field!(u32);
unsigned_field!(u64);

macro_rules! float_field {
    ($t:ty) => {
        impl ParamField for $t {
            fn to_json(&self, key: &str, like: &Value) -> Result<Option<Value>> {
                let x = f64::from(*self);
                // An optional number: 0 unset; a setting whose default is `true` (dropout: the
                // config's): negative unset.
                if (like.is_null() && x == 0.0) || (like.is_boolean() && x < 0.0) {
                    return Ok(None);
                }
                number(x).map(Some).ok_or_else(|| Error::arg(format!("params: {key} is {x}, not a finite number")))
            }
            fn from_default(like: &Value) -> Self {
                match like {
                    Value::Bool(_) => -1.0,
                    v => v.as_f64().unwrap_or(0.0) as $t,
                }
            }
        }
    };
}
float_field!(f32);
float_field!(f64);

impl ParamField for *const c_char {
    fn to_json(&self, key: &str, _: &Value) -> Result<Option<Value>> {
        if self.is_null() {
            return Ok(None);
        }
        // SAFETY: a non-NULL string field is a NUL-terminated string alive for the call (the
        // contract of every `*_with_params` function).
        let s = unsafe { c_str(*self, "a string field of the params") }
            .map_err(|e| Error::arg(format!("params: {key}: {e}")))?;
        Ok(Some(Value::String(s.to_owned())))
    }
    fn from_default(_: &Value) -> Self {
        std::ptr::null()
    }
}

/// A params struct and the options type its JSON object parses into.
pub(crate) trait Params: StructSized {
    type Options: serde::de::DeserializeOwned + serde::Serialize + Default;
    /// The field names, which are the JSON keys (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    const KEYS: &'static [&'static str];
    /// The JSON object of these params (keys left out where a field says "default").
    fn to_json(&self) -> Result<Map<String, Value>>;
    /// The defaults, from the options' defaults.
    fn defaults() -> Self;
    /// The options' own JSON parser and checks (`options_json`'s).
    fn parse(json: &str) -> Result<Self::Options>;
}

/// The JSON object of `T::default()`: what each key's default is.
pub(crate) fn defaults_json<T: serde::Serialize + Default>() -> Map<String, Value> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

macro_rules! params {
    ($ty:ident => $opts:ty { $($f:ident),* $(,)? }) => {
        impl Params for $ty {
            type Options = $opts;
            fn parse(json: &str) -> Result<$opts> {
                <$opts>::from_json(Some(json))
            }
            const KEYS: &'static [&'static str] = &[$(stringify!($f)),*];
            fn to_json(&self) -> Result<Map<String, Value>> {
                // Exhaustive: a field missing from the list does not compile.
                let $ty { struct_size: _, $($f),* } = self;
                let like = defaults_json::<$opts>();
                let mut m = Map::new();
                $(
                    let k = stringify!($f);
                    if let Some(v) = ParamField::to_json($f, k, like.get(k).unwrap_or(&Value::Null))? {
                        m.insert(k.to_owned(), v);
                    }
                )*
                Ok(m)
            }
            fn defaults() -> Self {
                let like = defaults_json::<$opts>();
                $ty {
                    struct_size: std::mem::size_of::<$ty>() as u32,
                    $($f: ParamField::from_default(like.get(stringify!($f)).unwrap_or(&Value::Null))),*
                }
            }
        }
        // SAFETY: `#[repr(C)]` with `struct_size: u32` first (checked at compile time).
        unsafe impl StructSized for $ty {}
        const _: () = assert!(std::mem::offset_of!($ty, struct_size) == 0);
    };
}

/// The options a caller's params struct (NULL: the defaults) stands for, checked by the JSON
/// options parser.
///
/// # Safety
/// `p` NULL or valid for `p->struct_size` bytes, its string fields NULL or NUL-terminated.
pub(crate) unsafe fn options_of<P: Params>(p: *const P, what: &str) -> Result<P::Options> {
    // SAFETY: forwarded contract.
    let p = unsafe { read_params(p, P::defaults(), what)? };
    P::parse(&Value::Object(p.to_json()?).to_string())
}

/// How `electra_session_new_with_params` opens a session; start from
/// `electra_session_default_params()`. The fields are the JSON keys of
/// `electra_session_new_with_options`, with the same meaning.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct electra_session_params {
    /// `sizeof(electra_session_params)`, set by `electra_session_default_params`.
    pub struct_size: u32,
    /// `"cpu"` (NULL, the default), `"cuda"` or `"cuda:N"`.
    pub device: *const c_char,
    /// Host worker threads, as the JSON key `threads` (0, the default: the process-wide pool;
    /// 1: the calling thread). Results do not depend on it.
    pub threads: u64,
    /// 1: a worker pool of the session's own, as the JSON key `own_pool`; 0 (the default).
    pub own_pool: i32,
    /// Memory budget in bytes; 0 (the default): none beyond the machine's memory.
    pub max_memory_bytes: u64,
    /// CPU kernel cap: NULL (`ELECTRA_SIMD`, else `"best"`), `"avx512"`, `"avx2"`, `"neon"`,
    /// `"scalar"`.
    pub simd: *const c_char,
    /// CPU f32 products: NULL (`ELECTRA_F32_KERNEL`, else `"packed"`) or `"gemm"`.
    pub f32_kernel: *const c_char,
    /// CUDA TF32 products: -1 (the default: `ELECTRA_CUDA_TF32`, else off), 0 or 1.
    pub tf32: i32,
}
params!(electra_session_params => crate::session::SessionOptions { device, threads, own_pool, max_memory_bytes, simd, f32_kernel, tf32 });

/// How `electra_model_load_with_params` reads a model; start from
/// `electra_load_default_params()`. The fields are the JSON keys of
/// `electra_model_load_with_options`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct electra_load_params {
    /// `sizeof(electra_load_params)`, set by `electra_load_default_params`.
    pub struct_size: u32,
    /// 1: accept tensors the config does not account for; 0 (the default): an error.
    pub allow_unused_tensors: i32,
    /// `"f32"` (NULL, the default: as stored) or `"int8"` (quantize as it loads).
    pub quantize: *const c_char,
}
params!(electra_load_params => crate::hf::LoadOptions { allow_unused_tensors, quantize });

/// How `electra_trainer_new_with_params` trains; start from `electra_trainer_default_params()`.
/// The fields are the JSON keys of `electra_trainer_new` with the same meaning and defaults;
/// `special_token_ids` (a list), `embedding_sharing`, `disc_mlm_weight`,
/// `disc_label_smoothing`, `rtd_head`, `tie_generator_output`, `cls_contrast_weight` and
/// `cls_contrast_temperature` (later keys: this struct keeps its version-1 layout)
/// are JSON-only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct electra_trainer_params {
    /// `sizeof(electra_trainer_params)`, set by `electra_trainer_default_params`.
    pub struct_size: u32,
    /// Peak learning rate (default 5e-4).
    pub learning_rate: f32,
    /// Linear warm-up steps (default 10000).
    pub warmup_steps: u64,
    /// Steps of the linear decay to 0 (default 1000000).
    pub total_steps: u64,
    /// AdamW weight decay (default 0.01).
    pub weight_decay: f32,
    /// AdamW epsilon (default 1e-6).
    pub adam_epsilon: f32,
    /// AdamW beta1 (default 0.9).
    pub adam_beta1: f32,
    /// AdamW beta2 (default 0.999).
    pub adam_beta2: f32,
    /// 1: Adam bias correction; 0 (the default, as the paper's code).
    pub bias_correction: i32,
    /// Global gradient-norm clip (default 1.0).
    pub max_grad_norm: f32,
    /// Fraction of tokens masked (default 0.15).
    pub mask_prob: f64,
    /// Generator loss weight (default 1).
    pub gen_weight: f32,
    /// Discriminator loss weight (default 50).
    pub disc_weight: f32,
    /// Sampling temperature of the generator (default 1).
    pub temperature: f32,
    /// `"electra"` (NULL, the default) or `"mlm"`.
    pub objective: *const c_char,
    /// Generator width as a fraction of the discriminator's for a preset (0: the preset's).
    pub generator_hidden_fraction: f64,
    /// Vocabulary size of a preset (0: the preset's).
    pub vocab_size: u64,
    /// Longest sequence (default 128, or the model's positions when fewer).
    pub max_seq_len: u64,
    /// The `[MASK]` id (default 103, BERT's).
    pub mask_token_id: i32,
    /// Seed of initialisation, masking, sampling and dropout (default 0).
    pub seed: u64,
    /// Host worker threads, as `electra_session_params.threads`.
    pub threads: u64,
    /// 1: a worker pool of the trainer's own; 0 (the default).
    pub own_pool: i32,
    /// `"cpu"` (NULL, the default), `"cuda"` or `"cuda:N"`.
    pub device: *const c_char,
    /// Memory budget in bytes (0, the default: none).
    pub max_memory_bytes: u64,
    /// Micro-batches per optimizer step (default 1).
    pub accumulate_steps: u64,
    /// `"none"` (NULL, the default) or `"mpi"`.
    pub distributed: *const c_char,
    /// This process's rank (default 0).
    pub rank: u64,
    /// Number of ranks (default 1).
    pub world_size: u64,
    /// Seconds a collective may wait (default 600).
    pub collective_timeout_s: f64,
    /// CPU kernel cap, as `electra_session_params.simd`.
    pub simd: *const c_char,
    /// CUDA TF32 products: -1 (the default), 0 or 1.
    pub tf32: i32,
    /// Dropout: negative (-1, the default) config.json's probabilities; 0 none; p in (0, 1)
    /// every dropout at p.
    pub dropout: f32,
}
params!(electra_trainer_params => crate::pretrain::TrainOptions {
    learning_rate, warmup_steps, total_steps, weight_decay, adam_epsilon, adam_beta1, adam_beta2,
    bias_correction, max_grad_norm, mask_prob, gen_weight, disc_weight, temperature, objective,
    generator_hidden_fraction, vocab_size, max_seq_len, mask_token_id, seed, threads, own_pool, device,
    max_memory_bytes, accumulate_steps, distributed, rank, world_size, collective_timeout_s, simd,
    tf32, dropout,
});

/// How `electra_finetuner_new_with_params` fine-tunes; start from
/// `electra_finetuner_default_params()`. The fields are the JSON keys of `electra_finetuner_new`
/// with the same meaning and defaults (all but `pool`, a later key: this struct keeps its
/// version-1 layout, so mean pooling is asked for through `electra_finetuner_new`'s JSON).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct electra_finetuner_params {
    /// `sizeof(electra_finetuner_params)`, set by `electra_finetuner_default_params`.
    pub struct_size: u32,
    /// Peak learning rate (0, the default: by the encoder's width, 3e-4 up to 256, 1e-4 up to
    /// 768, 5e-5 above: the paper's ELECTRA-Small, Base and Large rates).
    pub learning_rate: f32,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// Steps of the linear decay to 0.
    pub total_steps: u64,
    /// AdamW weight decay.
    pub weight_decay: f32,
    /// Layer-wise learning-rate decay (1: none).
    pub layerwise_lr_decay: f32,
    /// AdamW epsilon.
    pub adam_epsilon: f32,
    /// 1: Adam bias correction; 0: none.
    pub bias_correction: i32,
    /// Global gradient-norm clip.
    pub max_grad_norm: f32,
    /// Seed of the head's initialisation and of dropout.
    pub seed: u64,
    /// Host worker threads, as `electra_session_params.threads`.
    pub threads: u64,
    /// 1: a worker pool of the fine-tuner's own; 0 (the default).
    pub own_pool: i32,
    /// `"cpu"` (NULL, the default), `"cuda"` or `"cuda:N"`.
    pub device: *const c_char,
    /// Memory budget in bytes (0: none).
    pub max_memory_bytes: u64,
    /// CPU kernel cap, as `electra_session_params.simd`.
    pub simd: *const c_char,
    /// CUDA TF32 products: -1 (the default), 0 or 1.
    pub tf32: i32,
    /// Dropout: negative (-1, the default) config.json's; 0 none; p in (0, 1) all at p.
    pub dropout: f32,
}
params!(electra_finetuner_params => crate::finetune::FinetuneOptions {
    learning_rate, warmup_steps, total_steps, weight_decay, layerwise_lr_decay, adam_epsilon,
    bias_correction, max_grad_norm, seed, threads, own_pool, device, max_memory_bytes, simd, tf32, dropout,
});

/// The defaults of `electra_session_params` (those of `electra_session_new`).
/// Returned by value at this version's size: a later version that appends fields keeps this
/// function and adds another, so a caller never receives more than it declared.
#[no_mangle]
pub extern "C" fn electra_session_default_params() -> electra_session_params {
    electra_session_params::defaults()
}

/// The defaults of `electra_load_params` (those of `electra_model_load`).
/// Returned by value at this version's size: a later version that appends fields keeps this
/// function and adds another, so a caller never receives more than it declared.
#[no_mangle]
pub extern "C" fn electra_load_default_params() -> electra_load_params {
    electra_load_params::defaults()
}

/// The defaults of `electra_trainer_params` (those of `electra_trainer_new` with NULL options).
/// Returned by value at this version's size: a later version that appends fields keeps this
/// function and adds another, so a caller never receives more than it declared.
#[no_mangle]
pub extern "C" fn electra_trainer_default_params() -> electra_trainer_params {
    electra_trainer_params::defaults()
}

/// The defaults of `electra_finetuner_params` (those of `electra_finetuner_new` with NULL
/// options).
/// Returned by value at this version's size: a later version that appends fields keeps this
/// function and adds another, so a caller never receives more than it declared.
#[no_mangle]
pub extern "C" fn electra_finetuner_default_params() -> electra_finetuner_params {
    electra_finetuner_params::defaults()
}

/// `electra_session_new_with_options` with typed params (NULL: the defaults). A `struct_size`
/// below 4 or above this library's is `ELECTRA_ERR_INVALID_ARGUMENT`; bad values are refused as
/// their JSON keys are.
///
/// # Safety
/// `m` a live model; `params` NULL or valid for `params->struct_size` bytes with its strings NULL
/// or NUL-terminated; `out` valid.
#[no_mangle]
pub unsafe extern "C" fn electra_session_new_with_params(
    m: *const electra_model,
    params: *const electra_session_params,
    out: *mut *mut electra_session,
) -> electra_status {
    guard(|| {
        let out = out_handle(out)?;
        let model = electra_model::get(m)?;
        // SAFETY: forwarded contract.
        let opts: crate::session::SessionOptions = unsafe { options_of(params, "electra_session_params")? };
        let session = crate::session::Session::with_options(model, &opts)?;
        *out = electra_session::publish(std::sync::Mutex::new(session))?;
        Ok(())
    })
}

/// `electra_model_load_with_options` with typed params (NULL: the defaults).
///
/// # Safety
/// `path` a NUL-terminated string; `params` as `electra_session_new_with_params`; `out` valid.
#[no_mangle]
pub unsafe extern "C" fn electra_model_load_with_params(
    path: *const c_char,
    params: *const electra_load_params,
    out: *mut *mut electra_model,
) -> electra_status {
    guard(|| {
        let out = out_handle(out)?;
        // SAFETY: `path` is NULL or a NUL-terminated string (the contract).
        let path = std::path::Path::new(unsafe { c_str(path, "path")? });
        // SAFETY: forwarded contract.
        let opts: crate::hf::LoadOptions = unsafe { options_of(params, "electra_load_params")? };
        *out = electra_model::publish(super::model::load_dir(path, &opts)?)?;
        Ok(())
    })
}

/// `electra_trainer_new` with typed params (NULL: the defaults).
///
/// # Safety
/// `init` a NUL-terminated string; `params` as `electra_session_new_with_params`; `out` valid.
#[no_mangle]
pub unsafe extern "C" fn electra_trainer_new_with_params(
    init: *const c_char,
    params: *const electra_trainer_params,
    out: *mut *mut super::trainer::electra_trainer,
) -> electra_status {
    guard(|| {
        let out = out_handle(out)?;
        // SAFETY: `init` is NULL or a NUL-terminated string (the contract).
        let init = unsafe { c_str(init, "init")? };
        // SAFETY: forwarded contract.
        let opts: crate::pretrain::TrainOptions = unsafe { options_of(params, "electra_trainer_params")? };
        *out = super::trainer::publish(crate::pretrain::Trainer::new(init, opts)?)?;
        Ok(())
    })
}

/// `electra_finetuner_new` with typed params (NULL: the defaults).
///
/// # Safety
/// `model_dir` a NUL-terminated string; `params` as `electra_session_new_with_params`; `out`
/// valid.
#[no_mangle]
pub unsafe extern "C" fn electra_finetuner_new_with_params(
    model_dir: *const c_char,
    num_labels: usize,
    params: *const electra_finetuner_params,
    out: *mut *mut super::finetune::electra_finetuner,
) -> electra_status {
    guard(|| {
        let out = out_handle(out)?;
        // SAFETY: `model_dir` is NULL or a NUL-terminated string (the contract).
        let dir = std::path::Path::new(unsafe { c_str(model_dir, "model_dir")? });
        // SAFETY: forwarded contract.
        let opts: crate::finetune::FinetuneOptions = unsafe { options_of(params, "electra_finetuner_params")? };
        let ft = crate::finetune::FineTuner::with_label_count(dir, num_labels, opts)?;
        *out = super::finetune::electra_finetuner::publish(std::sync::Mutex::new(ft))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every JSON key of `P::Options` has its field (bar the JSON-only ones), and the defaults
    /// round-trip to the options' defaults.
    fn one_definition<P: Params>(json_only: &[&str])
    where
        P::Options: PartialEq + std::fmt::Debug,
    {
        let keys: Vec<String> = defaults_json::<P::Options>().keys().cloned().collect();
        for k in &keys {
            assert!(P::KEYS.contains(&k.as_str()) || json_only.contains(&k.as_str()), "JSON key {k} has no field");
        }
        for k in P::KEYS {
            assert!(keys.iter().any(|j| j == k), "field {k} is no JSON key");
        }
        let d = P::defaults();
        let parsed = P::parse(&Value::Object(d.to_json().unwrap()).to_string()).unwrap();
        assert_eq!(parsed, P::Options::default());
    }

    #[test]
    fn params_and_json_keys_are_one_definition() {
        one_definition::<electra_session_params>(&[]);
        one_definition::<electra_trainer_params>(&[
            "special_token_ids",
            "embedding_sharing",
            "disc_mlm_weight",
            "disc_label_smoothing",
            "rtd_head",
            "tie_generator_output",
            "cls_contrast_weight",
            "cls_contrast_temperature",
        ]);
        one_definition::<electra_finetuner_params>(&["pool"]);
        one_definition::<electra_load_params>(&[]);
    }
}
