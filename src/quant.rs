//! int8 models: dynamic quantization, as ONNX Runtime's `quantize_dynamic` and llama.cpp's Q8
//! do. Every encoder and head Linear weight becomes symmetric int8 per output channel with an f32
//! scale ([`crate::backend::cpu::int8`] defines the arithmetic); activations are quantized per
//! row on the fly inside the kernel. Attention's two products run in int8 too (queries and keys
//! per row and head, values per column and head, the softmax's numerators as levels 0..=127 per
//! row: `attention_forward_int8` in the CPU backend); bias, residual, LayerNorm, the softmax
//! itself and GELU stay f32. The
//! word embedding table is int8 per row too (the largest tensor of a small model: in f32 it
//! would keep an int8 ELECTRA-Small at 48% of the f32 file instead of 25%); a lookup
//! dequantizes its row. Per row of the table is per output channel of the generator's tied
//! output projection, which therefore runs on the same int8 weights. Position and token-type
//! tables stay f32 (small).
//!
//! A quantized model is a [`Model`] whose [`Model::quant`] holds the int8 weights; the f32 spans
//! of those weights are zero and never read. It runs inference on the CPU and refuses training,
//! fine-tuning and export to an f32 checkpoint ([`Model::require_f32`]). On disk it is an HF-style
//! directory (see [`crate::hf`]): each quantized `NAME.weight` is an `I8` tensor of the same
//! shape, with `NAME.weight_scale` (`F32`, one per output channel) beside it, and config.json
//! says `"quantization_config": {"quant_method": "electra-int8", ...}`.

use crate::error::{json_kind as kind, Error, Result};
use crate::layers::int8::{quantize_weight, QuantizedWeights};
use crate::model::{Model, Towers};
use crate::params::Span;
use std::sync::Arc;

/// The `quant_method` a quantized model's config.json names.
pub const QUANT_METHOD: &str = "electra-int8";
/// The suffix of a quantized weight's scale tensor (`NAME.weight` → `NAME.weight_scale`).
pub const SCALE_SUFFIX: &str = "_scale";

/// What a model's Linear weights are stored as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// f32, as trained (and as HF stores them).
    #[default]
    F32,
    /// int8 per output channel with f32 scales.
    Int8,
}

impl std::str::FromStr for WeightFormat {
    type Err = Error;

    /// `"f32"` (or `"none"`) or `"int8"`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "f32" | "none" | "fp32" => Ok(WeightFormat::F32),
            "int8" => Ok(WeightFormat::Int8),
            other => Err(Error::arg(format!("weight format {other:?}: expected \"f32\" or \"int8\""))),
        }
    }
}

/// One tensor an int8 model stores as int8: its span and its `[rows, cols]` shape (rows are the
/// output channels, or the rows of an embedding table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantTensor {
    /// The f32 span of the tensor in the model's layout.
    pub span: Span,
    /// Rows (each with its own scale).
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// Every tensor an int8 model holds as int8: the [`Towers::inference_linears`], the word embedding tables
/// and the generator's output projection (the word table itself when tied), in offset order.
pub fn quantized_tensors(towers: &Towers) -> Vec<QuantTensor> {
    let mut out: Vec<QuantTensor> =
        towers.inference_linears().iter().map(|l| QuantTensor { span: l.w, rows: l.dout, cols: l.din }).collect();
    for e in towers.encoders() {
        let dim = e.emb.ln.dim;
        out.push(QuantTensor { span: e.emb.word, rows: e.emb.word.len / dim.max(1), cols: dim });
    }
    if let Some(g) = towers.gen() {
        let lm = g.head.lm();
        out.push(QuantTensor { span: lm.w, rows: lm.dout, cols: lm.din });
    }
    out.sort_by_key(|t| t.span.off);
    out.dedup_by_key(|t| t.span.off);
    out
}

/// The int8 copy of `model`: every tensor of [`quantized_tensors`] quantized per row (output
/// channel), its f32 span zeroed. An already quantized model is returned as it is (a clone
/// sharing the int8 weights). Non-finite weights are an error naming the tensor.
pub fn quantize(model: &Model) -> Result<Model> {
    if model.quant.is_some() {
        return Ok(model.clone());
    }
    let tensors = quantized_tensors(&model.towers);
    // A fresh zeroed buffer with only the f32 tensors copied in: the quantized spans are never
    // written, so their pages never become resident (the model keeps no f32 copy of them).
    let src = model.params.values();
    let mut data = crate::alloc::try_zeroed_f32(src.len(), "int8 model weights")?;
    let mut at = 0;
    for t in &tensors {
        data[at..t.span.off].copy_from_slice(&src[at..t.span.off]);
        at = t.span.off + t.span.len;
    }
    data[at..].copy_from_slice(&src[at..]);
    let mut entries = Vec::with_capacity(tensors.len());
    for t in &tensors {
        let w = t.span.of(src);
        let q = quantize_weight(w, t.rows, t.cols).map_err(|e| {
            let name = model.params.infos().iter().find(|i| i.offset == t.span.off).map_or("?", |i| i.name.as_str());
            Error::arg(format!("quantizing {name}: {e}"))
        })?;
        entries.push((t.span.off, q));
    }
    let params = crate::params::ParamStore { table: model.params.table.clone(), data, zeroed_spare: false };
    let mut out = Model::from_parts(params, model.towers.clone());
    out.quant = Some(Arc::new(QuantizedWeights::new(entries)));
    Ok(out)
}

/// The format of `model`'s Linear weights.
pub fn format_of(model: &Model) -> WeightFormat {
    if model.quant.is_some() {
        WeightFormat::Int8
    } else {
        WeightFormat::F32
    }
}

/// The config.json entry that marks a quantized model.
pub fn config_entry() -> serde_json::Value {
    serde_json::json!({
        "quant_method": QUANT_METHOD,
        "version": 1,
        "bits": 8,
        "weights": "symmetric int8 per output channel, scale = max|w| / 127, tensor NAME.weight (I8) + NAME.weight_scale (F32)",
        "activations": "dynamic, symmetric int8 per row",
        "not_quantized": "position and token-type embeddings, LayerNorm, biases",
    })
}

/// The `quantization_config.version` this library reads.
const QUANT_VERSION: u64 = 1;

/// Whether a config's `quantization_config` marks an electra int8 model; another quantization
/// method is an error (we cannot run it). Strict: the entry must be an object whose
/// `quant_method` is a string, whose `version` is the integer 1 and whose `bits` (when present)
/// is the integer 8, and whose descriptive fields are strings; anything else is
/// [`Error::Format`] on `path` naming the field.
pub fn config_is_int8(extra: &serde_json::Map<String, serde_json::Value>, path: &std::path::Path) -> Result<bool> {
    use serde_json::Value;
    let bad = |msg: String| Err(Error::format(path, msg));
    let Some(q) = extra.get("quantization_config") else { return Ok(false) };
    let Value::Object(q) = q else {
        return bad(format!("quantization_config must be an object, not {}", kind(q)));
    };
    match q.get("quant_method") {
        Some(Value::String(m)) if m == QUANT_METHOD => {}
        Some(Value::String(m)) => {
            return Err(Error::Config(format!(
                "quantization_config.quant_method {m:?} is not supported (electra reads \"{QUANT_METHOD}\" only)"
            )))
        }
        Some(other) => return bad(format!("quantization_config.quant_method must be a string, not {}", kind(other))),
        None => return bad("quantization_config has no quant_method".into()),
    }
    match q.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(QUANT_VERSION) => {}
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            return Err(Error::Config(format!(
                "quantization_config version {n} is not one this library reads ({QUANT_VERSION}): upgrade electra"
            )))
        }
        Some(other) => {
            return bad(format!("quantization_config.version must be the integer {QUANT_VERSION}, not {}", kind(other)))
        }
        None => return bad("quantization_config has no version".into()),
    }
    match q.get("bits") {
        None => {}
        Some(Value::Number(n)) if n.as_u64() == Some(8) => {}
        Some(other) => return bad(format!("quantization_config.bits must be the integer 8, not {}", kind(other))),
    }
    for key in ["weights", "activations", "not_quantized"] {
        match q.get(key) {
            None | Some(Value::String(_)) => {}
            Some(other) => return bad(format!("quantization_config.{key} must be a string, not {}", kind(other))),
        }
    }
    Ok(true)
}
