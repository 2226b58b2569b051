//! Reading and writing safetensors files: dtype conversion (f32/f16/bf16/f64 → f32) and clear
//! errors naming the file and the tensor. [`TensorIndex`] validates a file's header and reads
//! tensors on demand into the caller's buffers (the model loader's path: no whole-file copy);
//! [`TensorFile`] reads every tensor into buffers of its own (checkpoints, tests).

use super::atomic::write_atomic;
use super::read::{open_regular, MAX_SAFETENSORS_HEADER_BYTES};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, Metadata, TensorView};
use std::collections::HashMap;
use std::fs::File;
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
        let (_, _, header) = read_header(path)?;
        /// Only the metadata; the tensor entries are checked when the tensors are read.
        #[derive(serde::Deserialize)]
        struct Header {
            #[serde(rename = "__metadata__", default)]
            metadata: Option<HashMap<String, String>>,
        }
        let h: Header = serde_json::from_slice(&header).map_err(|e| invalid(path, format!("header: {e}")))?;
        Ok(h.metadata.unwrap_or_default())
    }

    /// Reads and converts every tensor of `path` (a regular file): the header is validated first
    /// (see [`TensorIndex::open`]), then each tensor is read into its own buffer, reserved
    /// fallibly; the file as a whole is never held in memory. A truncated or corrupt file, or a
    /// dtype we do not convert, is an [`Error::Format`] naming the file (and tensor).
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_index(&TensorIndex::open(path)?)
    }

    /// Parses bytes already in memory; `path` is used in messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        Self::from_index(&TensorIndex::from_bytes(path, bytes)?)
    }

    /// Every tensor of `index`, read and converted.
    fn from_index(index: &TensorIndex) -> Result<Self> {
        let mut tensors = HashMap::with_capacity(index.tensors.len());
        for name in index.tensors.keys() {
            tensors.insert(name.clone(), index.read_tensor(name)?);
        }
        Ok(TensorFile { path: index.path.clone(), tensors })
    }

    /// A tensor that must exist with this shape.
    pub fn expect(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| missing(&self.path, name, shape))?;
        check_float(&self.path, name, &t.shape, t.dtype, shape)?;
        Ok(t)
    }

    /// An `I8` tensor that must exist with this shape (a quantized weight).
    pub fn expect_i8(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| missing_i8(&self.path, name, shape))?;
        check_i8(&self.path, name, &t.shape, t.dtype, shape)?;
        Ok(t)
    }

    /// A float tensor by name (any shape).
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| Error::format(&self.path, format!("missing tensor {name}")))
    }
}

fn missing(path: &Path, name: &str, shape: &[usize]) -> Error {
    Error::format(path, format!("missing tensor {name} (expected shape {shape:?})"))
}

fn missing_i8(path: &Path, name: &str, shape: &[usize]) -> Error {
    Error::format(path, format!("missing int8 tensor {name} (expected shape {shape:?})"))
}

/// A float tensor of the expected shape, or the error saying what it is instead.
fn check_float(path: &Path, name: &str, got: &[usize], dtype: Dtype, shape: &[usize]) -> Result<()> {
    if got != shape {
        return Err(Error::format(path, format!("tensor {name} has shape {got:?}, expected {shape:?}")));
    }
    if !is_float(dtype) {
        return Err(Error::format(path, format!("tensor {name} has integer dtype {dtype:?}, expected a float")));
    }
    Ok(())
}

/// An `I8` tensor of the expected shape, or the error saying what it is instead.
fn check_i8(path: &Path, name: &str, got: &[usize], dtype: Dtype, shape: &[usize]) -> Result<()> {
    if dtype != Dtype::I8 || got != shape {
        return Err(Error::format(path, format!("tensor {name} is {dtype:?} {got:?}, expected I8 {shape:?}")));
    }
    Ok(())
}

fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16)
}

/// The dtypes we convert: floats to f32, integers to f32 and i64, `I8` (quantized weights) as is.
fn is_supported(dtype: Dtype) -> bool {
    is_float(dtype) || matches!(dtype, Dtype::I64 | Dtype::I32 | Dtype::I8)
}

/// [`Error::Format`] "not a valid safetensors file: `msg`" on `path`.
fn invalid(path: &Path, msg: String) -> Error {
    Error::format(path, format!("not a valid safetensors file: {msg}"))
}

/// The header length `n` announced by the first 8 bytes of a file of `total` bytes, checked
/// against the header cap and the file's length.
fn header_len(path: &Path, len8: Option<[u8; 8]>, total: u64) -> Result<u64> {
    let len8 = len8.ok_or_else(|| invalid(path, format!("{total} bytes, too short for the header length")))?;
    let n = u64::from_le_bytes(len8);
    if n > MAX_SAFETENSORS_HEADER_BYTES {
        return Err(invalid(
            path,
            format!("header of {n} bytes, more than the limit of {MAX_SAFETENSORS_HEADER_BYTES}"),
        ));
    }
    if n > total.saturating_sub(8) {
        return Err(invalid(path, format!("header of {n} bytes in a file of {total} bytes (truncated?)")));
    }
    Ok(n)
}

/// Opens `path` and reads its 8-byte header length and JSON header (at most
/// [`MAX_SAFETENSORS_HEADER_BYTES`]): the open file, its length when opened, and the header.
fn read_header(path: &Path) -> Result<(File, u64, Vec<u8>)> {
    let mut f = open_regular(path)?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len8 = [0u8; 8];
    let got = f.read_exact(&mut len8).ok().map(|_| len8);
    let n = header_len(path, got, file_len)?;
    let mut header = Vec::new();
    header.try_reserve_exact(n as usize).map_err(|_| crate::alloc::oom::<u8>(n as usize, "safetensors header"))?;
    f.by_ref().take(n).read_to_end(&mut header).map_err(|e| Error::io(path, e))?;
    if header.len() as u64 != n {
        return Err(invalid(path, format!("header of {n} bytes, but the file ends after {}", header.len())));
    }
    Ok((f, file_len, header))
}

/// Where the tensor bytes of a [`TensorIndex`] are read from.
#[derive(Debug)]
enum Source<'a> {
    /// A regular file, read with positioned reads into our own buffers (never mapped: a file
    /// truncated under a mapping would raise SIGBUS in the host's process).
    File(File),
    /// The whole file, in memory (a caller's buffer).
    Bytes(&'a [u8]),
}

/// One tensor of a [`TensorIndex`]: its dtype, its shape and where its bytes lie.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    /// The stored dtype (one we convert: every other is refused when the header is read).
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Number of elements.
    pub numel: usize,
    /// Offset of its first byte from the start of the file.
    offset: u64,
}

/// Bytes read per positioned read (and the most held in a conversion buffer).
const CHUNK_BYTES: usize = 1 << 20;

/// A safetensors file whose header has been read and validated, its tensors read on demand, each
/// straight into a buffer the caller owns (the model's parameters): loading a model never holds
/// the file as a whole nor a converted copy of it.
///
/// Validated up front, before anything large is allocated: the header length (within
/// [`MAX_SAFETENSORS_HEADER_BYTES`] and the file), the JSON, every tensor's offsets (contiguous,
/// in order, no overlap or gap, sized exactly by dtype x shape), the data ending exactly where
/// the file ends, and every dtype being one we convert. A file changed while it is read (it is
/// read in place, not copied first) can at worst yield a format error (it ended early) or other
/// finite values; the loaders check each tensor's values as they read it.
#[derive(Debug)]
pub struct TensorIndex<'a> {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// The header's string metadata (`__metadata__`).
    pub metadata: HashMap<String, String>,
    /// Tensors by name.
    pub tensors: HashMap<String, TensorEntry>,
    src: Source<'a>,
}

impl TensorIndex<'static> {
    /// Opens the regular file `path` and validates its header, reading nothing else.
    pub fn open(path: &Path) -> Result<Self> {
        let (f, file_len, header) = read_header(path)?;
        let (metadata, tensors) = parse_header(path, &header, file_len)?;
        Ok(TensorIndex { path: path.to_path_buf(), metadata, tensors, src: Source::File(f) })
    }
}

impl<'a> TensorIndex<'a> {
    /// Validates the header of a safetensors file held in memory (`bytes`, the whole file);
    /// `path` names it in messages. The tensors are read from `bytes` on demand.
    pub fn from_bytes(path: &Path, bytes: &'a [u8]) -> Result<Self> {
        let total = bytes.len() as u64;
        let n = header_len(path, bytes.get(..8).map(|b| b.try_into().expect("8 bytes")), total)?;
        let (metadata, tensors) = parse_header(path, &bytes[8..8 + n as usize], total)?;
        Ok(TensorIndex { path: path.to_path_buf(), metadata, tensors, src: Source::Bytes(bytes) })
    }

    /// A tensor by name.
    pub fn get(&self, name: &str) -> Result<&TensorEntry> {
        self.tensors.get(name).ok_or_else(|| Error::format(&self.path, format!("missing tensor {name}")))
    }

    /// A float tensor that must exist with this shape (messages as [`TensorFile::expect`]).
    pub fn expect(&self, name: &str, shape: &[usize]) -> Result<&TensorEntry> {
        let t = self.tensors.get(name).ok_or_else(|| missing(&self.path, name, shape))?;
        check_float(&self.path, name, &t.shape, t.dtype, shape)?;
        Ok(t)
    }

    /// An `I8` tensor that must exist with this shape (messages as [`TensorFile::expect_i8`]).
    pub fn expect_i8(&self, name: &str, shape: &[usize]) -> Result<&TensorEntry> {
        let t = self.tensors.get(name).ok_or_else(|| missing_i8(&self.path, name, shape))?;
        check_i8(&self.path, name, &t.shape, t.dtype, shape)?;
        Ok(t)
    }

    /// Reads elements `start..start + dst.len()` of tensor `name` (any dtype but `I8`) into
    /// `dst`, converted to f32, in positioned reads of at most 1 MiB. An f32 tensor in a file is
    /// read straight into `dst`, with no buffer in between.
    pub fn read_f32(&self, name: &str, start: usize, dst: &mut [f32]) -> Result<()> {
        let e = self.get(name)?;
        match (e.dtype, &self.src) {
            (Dtype::F32, Source::File(f)) => {
                self.check_range(name, e, start, dst.len())?;
                // SAFETY: the bytes of `dst`'s f32 values, which every bit pattern is valid for;
                // u8 has no alignment to keep, and the slice ends with `dst`'s borrow.
                let bytes = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), dst.len() * 4) };
                let pos = e.offset + (start as u64) * 4;
                for (i, chunk) in bytes.chunks_mut(CHUNK_BYTES).enumerate() {
                    self.read_at(f, name, chunk, pos + (i * CHUNK_BYTES) as u64)?;
                }
                if cfg!(target_endian = "big") {
                    dst.iter_mut().for_each(|x| *x = f32::from_bits(u32::from_le(x.to_bits())));
                }
                Ok(())
            }
            (Dtype::F32, _) => {
                self.each_chunk(name, e, start, dst.len(), |i, b| decode_into(b, &mut dst[i..], f32::from_le_bytes))
            }
            (Dtype::F64, _) => self.each_chunk(name, e, start, dst.len(), |i, b| {
                decode_into(b, &mut dst[i..], |c| f64::from_le_bytes(c) as f32)
            }),
            (Dtype::F16, _) => self.each_chunk(name, e, start, dst.len(), |i, b| {
                decode_into(b, &mut dst[i..], |c| half::f16::from_le_bytes(c).to_f32())
            }),
            (Dtype::BF16, _) => self.each_chunk(name, e, start, dst.len(), |i, b| {
                decode_into(b, &mut dst[i..], |c| half::bf16::from_le_bytes(c).to_f32())
            }),
            (Dtype::I64, _) => self.each_chunk(name, e, start, dst.len(), |i, b| {
                decode_into(b, &mut dst[i..], |c| i64::from_le_bytes(c) as f32)
            }),
            (Dtype::I32, _) => self.each_chunk(name, e, start, dst.len(), |i, b| {
                decode_into(b, &mut dst[i..], |c| i32::from_le_bytes(c) as i64 as f32)
            }),
            (other, _) => {
                Err(Error::format(&self.path, format!("tensor {name} is {other:?}, not a number read as f32")))
            }
        }
    }

    /// Reads elements `start..start + dst.len()` of the `I8` tensor `name` into `dst`.
    pub fn read_i8(&self, name: &str, start: usize, dst: &mut [i8]) -> Result<()> {
        let e = self.get(name)?;
        if e.dtype != Dtype::I8 {
            return Err(Error::format(&self.path, format!("tensor {name} is {:?}, expected I8", e.dtype)));
        }
        self.each_chunk(name, e, start, dst.len(), |i, b| decode_into(b, &mut dst[i..], |c: [u8; 1]| c[0] as i8))
    }

    /// Reads elements `start..start + dst.len()` of the integer tensor `name` into `dst`.
    fn read_i64(&self, name: &str, start: usize, dst: &mut [i64]) -> Result<()> {
        let e = self.get(name)?;
        match e.dtype {
            Dtype::I64 => {
                self.each_chunk(name, e, start, dst.len(), |i, b| decode_into(b, &mut dst[i..], i64::from_le_bytes))
            }
            Dtype::I32 => self.each_chunk(name, e, start, dst.len(), |i, b| {
                decode_into(b, &mut dst[i..], |c| i32::from_le_bytes(c) as i64)
            }),
            other => Err(Error::format(&self.path, format!("tensor {name} is {other:?}, not an integer"))),
        }
    }

    /// One whole tensor, read into buffers of its own (reserved fallibly).
    pub fn read_tensor(&self, name: &str) -> Result<Tensor> {
        let e = self.get(name)?;
        let (shape, dtype, n) = (e.shape.clone(), e.dtype, e.numel);
        let (mut data, mut ints, mut int8) = (Vec::new(), Vec::new(), Vec::new());
        if dtype == Dtype::I8 {
            int8 = crate::alloc::try_vec(n, 0i8, name)?;
            self.read_i8(name, 0, &mut int8)?;
        } else {
            data = crate::alloc::try_vec(n, 0f32, name)?;
            self.read_f32(name, 0, &mut data)?;
            if matches!(dtype, Dtype::I64 | Dtype::I32) {
                ints = crate::alloc::try_vec(n, 0i64, name)?;
                self.read_i64(name, 0, &mut ints)?;
            }
        }
        Ok(Tensor { shape, data, ints, int8, dtype })
    }

    /// Refuses a range of elements outside the tensor (a caller's mistake, not the file's).
    fn check_range(&self, name: &str, e: &TensorEntry, start: usize, n: usize) -> Result<()> {
        if start.checked_add(n).is_none_or(|end| end > e.numel) {
            return Err(Error::Internal(format!(
                "{}: elements {start}..+{n} of tensor {name}, which has {}",
                self.path.display(),
                e.numel
            )));
        }
        Ok(())
    }

    /// Calls `f(i, bytes)` over the bytes of elements `start..start + n` of `e`, in chunks of at
    /// most [`CHUNK_BYTES`] (whole elements); `i` counts elements from `start`.
    fn each_chunk(
        &self,
        name: &str,
        e: &TensorEntry,
        start: usize,
        n: usize,
        mut f: impl FnMut(usize, &[u8]),
    ) -> Result<()> {
        self.check_range(name, e, start, n)?;
        let size = e.dtype.bitsize() / 8;
        let per = (CHUNK_BYTES / size).max(1);
        let mut buf = match self.src {
            Source::File(_) => crate::alloc::try_vec(per.min(n) * size, 0u8, "tensor read buffer")?,
            Source::Bytes(_) => Vec::new(),
        };
        let mut done = 0;
        while done < n {
            let k = per.min(n - done);
            let pos = e.offset + ((start + done) * size) as u64;
            let bytes: &[u8] = match &self.src {
                Source::Bytes(b) => &b[pos as usize..pos as usize + k * size],
                Source::File(file) => {
                    self.read_at(file, name, &mut buf[..k * size], pos)?;
                    &buf[..k * size]
                }
            };
            f(done, bytes);
            done += k;
        }
        Ok(())
    }

    /// Fills `buf` from offset `pos` of the file; a file that ends first (truncated since its
    /// header was read) is an [`Error::Format`] naming the tensor.
    fn read_at(&self, f: &File, name: &str, buf: &mut [u8], pos: u64) -> Result<()> {
        read_exact_at(f, buf, pos).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::format(
                &self.path,
                format!("tensor {name}: the file ends before its data (truncated or rewritten while loading?)"),
            ),
            _ => Error::io(&self.path, e),
        })
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, pos)
}

#[cfg(not(unix))]
fn read_exact_at(mut f: &File, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(pos))?;
    f.read_exact(buf)
}

/// Validates the JSON header of a safetensors file of `total` bytes: the `safetensors` crate's
/// own checks (offsets in order, contiguous, each exactly dtype x shape bytes, no overflow), the
/// data ending exactly at the end of the file, and every dtype one we convert.
fn parse_header(
    path: &Path,
    header: &[u8],
    total: u64,
) -> Result<(HashMap<String, String>, HashMap<String, TensorEntry>)> {
    let meta: Metadata = serde_json::from_slice(header).map_err(|e| invalid(path, format!("header: {e}")))?;
    let data_start = 8 + header.len() as u64;
    let data_len = meta.data_len() as u64;
    if data_start.checked_add(data_len) != Some(total) {
        return Err(invalid(
            path,
            format!(
                "the header describes {data_len} bytes of tensor data, the file holds {} after its header \
                 (truncated?)",
                total - data_start
            ),
        ));
    }
    let mut tensors = HashMap::with_capacity(meta.tensors().len());
    for (name, info) in meta.tensors() {
        if !is_supported(info.dtype) {
            return Err(Error::format(path, format!("tensor {name}: unsupported dtype {:?}", info.dtype)));
        }
        let numel = crate::alloc::count(&info.shape, "tensor")?;
        let entry = TensorEntry {
            dtype: info.dtype,
            shape: info.shape.clone(),
            numel,
            offset: data_start + info.data_offsets.0 as u64,
        };
        tensors.insert(name, entry);
    }
    Ok((meta.metadata().clone().unwrap_or_default(), tensors))
}

/// Decodes the little-endian values of `N` bytes each in `b` into the start of `dst`.
fn decode_into<T, const N: usize>(b: &[u8], dst: &mut [T], f: impl Fn([u8; N]) -> T) {
    for (d, c) in dst.iter_mut().zip(b.chunks_exact(N)) {
        *d = f(c.try_into().expect("chunks_exact gives N bytes"));
    }
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
