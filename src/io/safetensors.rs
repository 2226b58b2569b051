//! Reading and writing safetensors files: dtype conversion (f32/f16/bf16/f64 → f32) and clear
//! errors naming the file and the tensor.

use super::atomic::write_atomic;
use super::read::{open_regular, read_regular, MAX_SAFETENSORS_HEADER_BYTES};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One tensor read from a file, converted to f32 (integer tensors are kept as i64 too; int8
/// tensors, the quantized weights, only as i8).
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values as f32 (integers converted; empty for int8).
    pub data: Vec<f32>,
    /// Values as i64 for integer tensors (empty for floating ones and for int8).
    pub ints: Vec<i64>,
    /// Values of an `I8` tensor (empty for every other dtype).
    pub int8: Vec<i8>,
    /// The stored dtype.
    pub dtype: Dtype,
}

/// All tensors of one safetensors file, by name.
#[derive(Debug)]
pub struct TensorFile {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// Tensors by name.
    pub tensors: HashMap<String, Tensor>,
}

impl TensorFile {
    /// The header's string metadata of `path`, reading only the 8-byte length and the JSON header
    /// (at most [`MAX_SAFETENSORS_HEADER_BYTES`]), not the tensors: a multi-GB checkpoint costs a
    /// few kilobytes here. The tensors are validated later, by [`TensorFile::read`].
    pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
        let mut f = open_regular(path)?;
        let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let bad = |msg: String| Error::format(path, format!("not a valid safetensors file: {msg}"));
        let mut len8 = [0u8; 8];
        f.read_exact(&mut len8).map_err(|_| bad(format!("{file_len} bytes, too short for the header length")))?;
        let n = u64::from_le_bytes(len8);
        if n > MAX_SAFETENSORS_HEADER_BYTES {
            return Err(bad(format!("header of {n} bytes, more than the limit of {MAX_SAFETENSORS_HEADER_BYTES}")));
        }
        if n > file_len.saturating_sub(8) {
            return Err(bad(format!("header of {n} bytes in a file of {file_len} bytes (truncated?)")));
        }
        let mut header = Vec::new();
        header.try_reserve_exact(n as usize).map_err(|_| crate::alloc::oom::<u8>(n as usize, "safetensors header"))?;
        f.by_ref().take(n).read_to_end(&mut header).map_err(|e| Error::io(path, e))?;
        if header.len() as u64 != n {
            return Err(bad(format!("header of {n} bytes, but the file ends after {}", header.len())));
        }
        /// Only the metadata; the tensor entries are checked when the tensors are read.
        #[derive(serde::Deserialize)]
        struct Header {
            #[serde(rename = "__metadata__", default)]
            metadata: Option<HashMap<String, String>>,
        }
        let h: Header = serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
        Ok(h.metadata.unwrap_or_default())
    }

    /// Reads and converts every tensor of `path` (a regular file; its length decides the one
    /// buffer, reserved fallibly). A truncated or corrupt file, or a dtype we do not convert, is
    /// an [`Error::Format`] naming the file (and tensor).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = read_regular(path, u64::MAX)?;
        Self::parse(path, &bytes)
    }

    /// Parses bytes already in memory; `path` is used in messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let t = convert(&view).map_err(|msg| Error::format(path, format!("tensor {name}: {msg}")))?;
            tensors.insert(name, t);
        }
        Ok(TensorFile { path: path.to_path_buf(), tensors })
    }

    /// A tensor that must exist with this shape.
    pub fn expect(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::format(&self.path, format!("missing tensor {name} (expected shape {shape:?})")))?;
        if t.shape != shape {
            return Err(Error::format(
                &self.path,
                format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape),
            ));
        }
        if !matches!(t.dtype, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16) {
            return Err(Error::format(
                &self.path,
                format!("tensor {name} has integer dtype {:?}, expected a float", t.dtype),
            ));
        }
        Ok(t)
    }

    /// An `I8` tensor that must exist with this shape (a quantized weight).
    pub fn expect_i8(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| {
            Error::format(&self.path, format!("missing int8 tensor {name} (expected shape {shape:?})"))
        })?;
        if t.dtype != Dtype::I8 || t.shape != shape {
            return Err(Error::format(
                &self.path,
                format!("tensor {name} is {:?} {:?}, expected I8 {shape:?}", t.dtype, t.shape),
            ));
        }
        Ok(t)
    }

    /// A float tensor by name (any shape).
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| Error::format(&self.path, format!("missing tensor {name}")))
    }
}

/// Decodes little-endian values of `N` bytes each into a vector reserved fallibly (a tensor's
/// size comes from the file).
fn decode<T, const N: usize>(b: &[u8], f: impl Fn([u8; N]) -> T) -> std::result::Result<Vec<T>, String> {
    let mut out = Vec::new();
    out.try_reserve_exact(b.len() / N).map_err(|_| format!("could not allocate {} values", b.len() / N))?;
    out.extend(b.chunks_exact(N).map(|c| f(c.try_into().expect("chunks_exact gives N bytes"))));
    Ok(out)
}

fn convert(v: &TensorView) -> std::result::Result<Tensor, String> {
    let b = v.data();
    let shape = v.shape().to_vec();
    let size = v.dtype().bitsize() / 8;
    let n = crate::alloc::count(&shape, "tensor").map_err(|e| e.to_string())?;
    if n.checked_mul(size) != Some(b.len()) {
        return Err(format!("{} bytes for {n} elements of {:?}", b.len(), v.dtype()));
    }
    let mut ints = Vec::new();
    if v.dtype() == Dtype::I8 {
        let int8 = decode(b, |c: [u8; 1]| c[0] as i8)?;
        return Ok(Tensor { shape, data: Vec::new(), ints, int8, dtype: Dtype::I8 });
    }
    let data: Vec<f32> = match v.dtype() {
        Dtype::F32 => decode(b, f32::from_le_bytes)?,
        Dtype::F64 => decode(b, |c| f64::from_le_bytes(c) as f32)?,
        Dtype::F16 => decode(b, |c| half::f16::from_le_bytes(c).to_f32())?,
        Dtype::BF16 => decode(b, |c| half::bf16::from_le_bytes(c).to_f32())?,
        Dtype::I64 => {
            ints = decode(b, i64::from_le_bytes)?;
            decode(b, |c| i64::from_le_bytes(c) as f32)?
        }
        Dtype::I32 => {
            ints = decode(b, |c| i32::from_le_bytes(c) as i64)?;
            decode(b, |c| i32::from_le_bytes(c) as i64 as f32)?
        }
        other => return Err(format!("unsupported dtype {other:?}")),
    };
    Ok(Tensor { shape, data, ints, int8: Vec::new(), dtype: v.dtype() })
}

/// Writes f32 tensors (name, shape, values) to `path` atomically, with HF's `{"format": "pt"}`
/// metadata so `transformers` accepts the file.
pub fn write_f32(path: &Path, tensors: &[(String, Vec<usize>, &[f32])]) -> Result<()> {
    write_f32_with_metadata(path, tensors, &[])
}

/// The little-endian bytes of `values`, refusing (before anything is written) a NaN or
/// infinity: a checkpoint that holds one would poison every later load. One pass.
fn finite_le_bytes(path: &Path, name: &str, values: &[f32]) -> Result<Vec<u8>> {
    let mut out = crate::alloc::try_vec(crate::alloc::bytes::<f32>(values.len(), name)?, 0u8, name)?;
    for (i, x) in values.iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::NonFinite(format!(
                "tensor {name} element {i} is {x}; refusing to write {} (nothing was written)",
                path.display()
            )));
        }
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    Ok(out)
}

/// As [`write_f32`], with extra string metadata entries in the header. A non-finite value is
/// refused with [`Error::NonFinite`] naming the tensor, before anything is written.
pub fn write_f32_with_metadata(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
    extra: &[(&str, String)],
) -> Result<()> {
    let values: Vec<(String, Vec<usize>, Values)> =
        tensors.iter().map(|(n, s, v)| (n.clone(), s.clone(), Values::F32(v))).collect();
    write_tensors(path, &values, extra)
}

/// The values of one tensor to write.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    /// f32 (refused when any is NaN or infinite).
    F32(&'a [f32]),
    /// int8 (a quantized weight).
    I8(&'a [i8]),
}

/// Writes tensors of mixed dtypes to `path` atomically, with HF's `{"format": "pt"}` metadata
/// and `extra` entries. A non-finite f32 is refused with [`Error::NonFinite`] naming the tensor,
/// before anything is written.
pub fn write_tensors(path: &Path, tensors: &[(String, Vec<usize>, Values)], extra: &[(&str, String)]) -> Result<()> {
    let bytes = tensors
        .iter()
        .map(|(name, _, v)| match v {
            Values::F32(v) => finite_le_bytes(path, name, v),
            Values::I8(v) => {
                let mut out = crate::alloc::try_vec(v.len(), 0u8, name)?;
                out.iter_mut().zip(v.iter()).for_each(|(o, &q)| *o = q as u8);
                Ok(out)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, v), b)| {
            let dtype = if matches!(v, Values::I8(_)) { Dtype::I8 } else { Dtype::F32 };
            TensorView::new(dtype, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Internal(format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    for (k, v) in extra {
        meta.insert(k.to_string(), v.clone());
    }
    let out = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Internal(format!("serialize: {e}")))?;
    write_atomic(path, &out)
}
