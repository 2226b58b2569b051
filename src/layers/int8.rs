//! The int8 weight format: a Linear weight quantized per output channel, symmetric, as ONNX
//! Runtime's `quantize_dynamic` does, and the set of a quantized model's int8 weights. The
//! arithmetic that reads it is the CPU backend's (`backend/cpu/int8.rs`); the file format that
//! stores it is [`crate::hf`]'s; what becomes int8 is [`crate::quant`]'s.

use crate::error::{Error, Result};

/// `din` must stay below this so that `|acc| ≤ 127·127·din` fits in `i32`.
pub const MAX_DIN: usize = 1 << 17;

fn oom(what: &str, bytes: usize) -> Error {
    Error::OutOfMemory(format!("{what}: {bytes} bytes could not be allocated"))
}

/// A Linear weight quantized per output channel (symmetric int8): `w[o, i] ≈ q[o, i]·scale[o]`.
/// Also the on-disk form.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantWeight {
    /// Quantized values, row-major `[dout, din]`, each in −127..=127.
    pub q: Vec<i8>,
    /// Per output channel: `max_i |w[o, i]| / 127` (0 for a zero row).
    pub scale: Vec<f32>,
    /// Output channels (rows).
    pub dout: usize,
    /// Input features (columns).
    pub din: usize,
}

impl QuantWeight {
    /// The f32 weight these values stand for: `q·scale`, `[dout, din]`.
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.dout * self.din).map(|i| self.q[i] as f32 * self.scale[i / self.din]).collect()
    }
}

/// Quantizes a `[dout, din]` f32 weight (PyTorch Linear layout) per output channel:
/// `scale[o] = max_i |w[o, i]| / 127`, `q[o, i] = clamp(round_ties_even(w[o, i] / scale[o]), ±127)`.
/// A row whose scale is 0 (all zeros, or so small that the scale underflows) gets scale 0 and
/// q 0. Non-finite weights are an error, as is `din ≥ MAX_DIN` (the i32 sums could overflow).
pub fn quantize_weight(w: &[f32], dout: usize, din: usize) -> Result<QuantWeight> {
    let len = dout.checked_mul(din).ok_or_else(|| Error::arg(format!("int8 weight {dout} x {din} is too large")))?;
    if w.len() != len {
        return Err(Error::Shape { what: "int8 weight".into(), expected: vec![dout, din], got: vec![w.len()] });
    }
    if din >= MAX_DIN {
        return Err(Error::arg(format!("int8 weight: din {din} must be below {MAX_DIN} (i32 sums)")));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::arg(format!(
            "int8 weight: element ({}, {}) is {}; only finite weights can be quantized",
            i / din,
            i % din,
            w[i]
        )));
    }
    let mut q = Vec::new();
    q.try_reserve_exact(len).map_err(|_| oom("int8 weight", len))?;
    let mut scale = Vec::new();
    scale.try_reserve_exact(dout).map_err(|_| oom("int8 weight scales", dout * 4))?;
    for o in 0..dout {
        let row = &w[o * din..(o + 1) * din];
        let s = row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
        if s == 0.0 {
            q.extend(std::iter::repeat_n(0, din));
        } else {
            q.extend(row.iter().map(|&v| (v / s).round_ties_even().clamp(-127.0, 127.0) as i8));
        }
        scale.push(s);
    }
    Ok(QuantWeight { q, scale, dout, din })
}

/// The int8 Linear weights of a quantized model, by the offset of their f32 span.
#[derive(Default)]
pub struct QuantizedWeights {
    /// (offset of the weight's f32 span, its int8 form), sorted by offset.
    entries: Vec<(usize, QuantWeight)>,
}

impl std::fmt::Debug for QuantizedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuantizedWeights({} tensors, {} bytes)", self.entries.len(), self.bytes())
    }
}

impl QuantizedWeights {
    /// Builds the set from (offset, weight) pairs.
    pub fn new(mut entries: Vec<(usize, QuantWeight)>) -> Self {
        entries.sort_by_key(|(off, _)| *off);
        QuantizedWeights { entries }
    }

    /// The int8 form of the weight whose f32 span starts at `off`.
    pub fn get(&self, off: usize) -> Option<&QuantWeight> {
        self.entries.binary_search_by_key(&off, |(o, _)| *o).ok().map(|i| &self.entries[i].1)
    }

    /// Every (offset, weight), by offset.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &QuantWeight)> + '_ {
        self.entries.iter().map(|(o, w)| (*o, w))
    }

    /// Number of quantized tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no tensor is quantized.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of int8 values and scales.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, w)| w.q.len() + 4 * w.scale.len()).sum()
    }
}
