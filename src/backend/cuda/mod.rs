//! The CUDA backend (feature `cuda`): matrix products on cuBLAS, every other kernel in CUDA C
//! (`kernels/`, compiled by NVRTC at first use for the device's architecture), all on one stream
//! per backend. cudarc loads the driver, NVRTC and cuBLAS at run time, so the library builds and
//! loads on machines with no toolkit and no GPU; a missing library is an [`Error::Cuda`] naming
//! it, never an abort.
//!
//! What crosses the bus: uploads of the batch and of the host-born ids (the CUDA buffers keep a
//! host copy of uploaded ids, which is where ranges are checked, as on the CPU, and where the
//! embedding gradient's scatter is ordered), the per-row or per-block loss sums and the sampled
//! ids coming back, and the AdamW tensor table. Weights, gradients and moments stay on the
//! device; buffers only grow, so a handle that has run once allocates nothing more.
//!
//! Results are deterministic run to run (fixed reduction trees, no float atomics; cuBLAS is
//! deterministic on one stream) and agree with the CPU within the conformance suite's
//! tolerances. The uniforms of Gumbel sampling are the host generator's own ChaCha8 words,
//! computed on the device at the position the caller hands over (see `backend::keystream`).
//!
//! The `tf32` option (or its override `ELECTRA_CUDA_TF32`, see `backend::options`) lets cuBLAS
//! use TF32 tensor cores (off by default, so results match fp32). int8 models run on the CPU backend only.

pub mod kernels;

use super::{
    Activated, Activation, AdamState, AdamStep, AdamTensor, AttentionSaved, AttentionShape, Backend, Buf, Device,
    Dropout, Elem, InferenceWeights, InputGrad, KeystreamAt, LnSaved, LnStats, LossScale, LossSum, Mem, ParamGrads,
    Prepared, Qkv, ResidualLn, RowGroups, Tokens, Weights,
};
use crate::error::{Error, Result};
use crate::layers::{Embeddings, LayerNorm, Linear, PostLn};
use crate::params::Span;
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};
use std::sync::{Arc, Mutex, MutexGuard};

/// A shared library the backend loads at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    /// The driver, `libcuda.so.1` (installed with the NVIDIA driver).
    Driver,
    /// The run-time compiler, `libnvrtc.so.13` or `.12` (CUDA toolkit, or the PyPI wheel
    /// `nvidia-cuda-nvrtc-cu12`).
    Nvrtc,
    /// cuBLAS, `libcublas.so.13` or `.12`.
    Cublas,
}

/// Whether `lib` can be loaded (the names cudarc searches, through the system's loader:
/// `LD_LIBRARY_PATH`, then the `ldconfig` cache); an [`Error::Cuda`] saying how to fix it if not.
pub fn check_library(lib: Library) -> Result<()> {
    // SAFETY: the `is_culib_present` functions only try dlopen on cudarc's candidate names.
    let present = std::panic::catch_unwind(|| unsafe {
        match lib {
            Library::Driver => cudarc::driver::sys::is_culib_present(),
            Library::Nvrtc => cudarc::nvrtc::sys::is_culib_present(),
            Library::Cublas => cudarc::cublas::sys::is_culib_present(),
        }
    })
    .unwrap_or(false);
    if present {
        return Ok(());
    }
    Err(Error::Cuda(match lib {
        Library::Driver => {
            "the CUDA driver library (libcuda.so.1) could not be loaded: is the NVIDIA driver installed?".into()
        }
        Library::Nvrtc => {
            "NVRTC (libnvrtc.so.13 or libnvrtc.so.12) could not be loaded: install the CUDA toolkit or the \
                           nvidia-cuda-nvrtc wheel and put its lib folder on LD_LIBRARY_PATH"
                .into()
        }
        Library::Cublas => {
            "cuBLAS (libcublas.so.13 or libcublas.so.12) could not be loaded: install the CUDA toolkit or \
                            the nvidia-cublas wheel and put its lib folder on LD_LIBRARY_PATH"
                .into()
        }
    }))
}

fn driver(what: &str, e: cudarc::driver::DriverError) -> Error {
    if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        return Error::OutOfMemory(format!("{what}: the GPU is out of memory"));
    }
    Error::Cuda(format!("{what}: {e:?}"))
}

fn blas(what: &str, e: cudarc::cublas::result::CublasError) -> Error {
    Error::Cuda(format!("{what}: cuBLAS {e:?}"))
}

/// Number of usable CUDA devices; an error when no driver can be loaded.
pub fn device_count() -> Result<usize> {
    check_library(Library::Driver)?;
    let n = std::panic::catch_unwind(CudaContext::device_count)
        .map_err(|_| Error::Cuda("the CUDA driver library (libcuda.so.1) could not be loaded".into()))?
        .map_err(|e| driver("counting devices", e))?;
    Ok(n as usize)
}

/// Opens CUDA device `ordinal`: its primary context, a stream, a cuBLAS handle (TF32 tensor-core
/// math when `tf32`) and the kernels.
pub fn open(ordinal: usize, tf32: bool) -> Result<Arc<dyn Backend>> {
    let n = device_count()?;
    if ordinal >= n {
        return Err(Error::Cuda(format!("no CUDA device {ordinal}: {n} present")));
    }
    check_library(Library::Cublas)?;
    check_library(Library::Nvrtc)?;
    Ok(Arc::new(CudaBackend::new(ordinal, tf32)?))
}

/// Grow-only device scratch of one backend (column-sum operands, loss partials, tables).
#[derive(Default)]
struct Scratch {
    ones: Option<CudaSlice<f32>>,
    prod: Option<CudaSlice<f32>>,
    part_d: Option<CudaSlice<f64>>,
    part_i: Option<CudaSlice<i32>>,
    order: Option<CudaSlice<i32>>,
    seg_start: Option<CudaSlice<i32>>,
    seg_row: Option<CudaSlice<i32>>,
    tab_i64: Option<CudaSlice<i64>>,
    tab_f32: Option<CudaSlice<f32>>,
    flags: Option<CudaSlice<i32>>,
    ids: Option<CudaSlice<i32>>,
    part_f: Option<CudaSlice<f32>>,
    /// The attention forward's dropped probabilities (training with dropout).
    probs_drop: Option<CudaSlice<f32>>,
}

/// What one call holds while it enqueues work: the cuBLAS handle is not safe for concurrent
/// use, and the scratch is shared.
struct State {
    blas: cudarc::cublas::CudaBlas,
    scratch: Scratch,
}

/// The CUDA backend of one device.
pub struct CudaBackend {
    ordinal: usize,
    name: String,
    arch: (i32, i32),
    tf32: bool,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    k: kernels::Kernels,
    state: Mutex<State>,
}

/// Threads per block of the elementwise and row kernels.
const BLOCK: u32 = 256;
/// Rows per block of the warp-per-row kernels (LayerNorm, softmax).
const ROWS_PER_BLOCK: u32 = BLOCK / 32;
/// Elements per block of the Σx² partial sums and of the max |x| partials.
const SQ_CHUNK: usize = 1 << 13;

#[repr(transparent)]
#[derive(Clone, Copy)]
struct KernelRng(KeystreamAt);
// SAFETY: `KeystreamAt` is `#[repr(C)]` plain data laid out as sample.cu's `ChaChaArgs`
// (8 u32, then 2 u64: 48 bytes, 8-aligned).
unsafe impl DeviceRepr for KernelRng {}

fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: (grid.max(1), 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 }
}

/// A grid-stride launch over `n` elements.
fn cfg_elems(n: usize) -> LaunchConfig {
    cfg(n.div_ceil(BLOCK as usize).clamp(1, 8192) as u32, BLOCK)
}

/// A launch of one warp per row over `rows` rows.
fn cfg_rows(rows: usize) -> LaunchConfig {
    cfg(rows.div_ceil(ROWS_PER_BLOCK as usize) as u32, BLOCK)
}

fn dims(what: &str, x: usize) -> Result<i32> {
    i32::try_from(x).map_err(|_| Error::Internal(format!("{what}: {x} does not fit the kernels' 32-bit sizes")))
}

fn wrong_device(what: &str) -> Error {
    Error::Internal(format!("{what}: a buffer of another device was passed to the CUDA backend"))
}

fn too_short(what: &str, len: usize, need: usize) -> Error {
    Error::Internal(format!("{what}: buffer holds {len} elements, the call needs {need}"))
}

/// Grows a scratch slice to at least `len` elements.
fn grow<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    slot: &mut Option<CudaSlice<T>>,
    len: usize,
) -> Result<u64> {
    if slot.as_ref().is_none_or(|s| s.len() < len) {
        *slot = None;
        *slot = Some(stream.alloc_zeros::<T>(len.max(1)).map_err(|e| driver("scratch", e))?);
    }
    let s = slot.as_ref().expect("just allocated");
    Ok(s.device_ptr(stream).0)
}

/// Uploads `src` into a scratch slice, growing it.
fn put<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    slot: &mut Option<CudaSlice<T>>,
    src: &[T],
) -> Result<u64> {
    let p = grow(stream, slot, src.len())?;
    if !src.is_empty() {
        let s = slot.as_mut().expect("grown");
        stream.memcpy_htod(src, &mut s.slice_mut(..src.len())).map_err(|e| driver("upload", e))?;
    }
    Ok(p)
}

/// Downloads the first `dst.len()` elements of a scratch slice.
fn get<T: DeviceRepr>(stream: &Arc<CudaStream>, slot: &Option<CudaSlice<T>>, dst: &mut [T]) -> Result<()> {
    if dst.is_empty() {
        return Ok(());
    }
    let s = slot.as_ref().ok_or_else(|| Error::Internal("download of unallocated scratch".into()))?;
    stream.memcpy_dtoh(&s.slice(..dst.len()), dst).map_err(|e| driver("download", e))?;
    stream.synchronize().map_err(|e| driver("synchronize", e))
}

fn op(t: bool) -> cublasOperation_t {
    if t {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

/// One column-major product `C = α·op(A)·op(B) + β·C` (cuBLAS's convention; our row-major
/// `[r, c]` matrices are its `c × r` ones, so every call below is the transposed identity).
struct Gemm {
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: u64,
    lda: usize,
    b: u64,
    ldb: usize,
    beta: f32,
    c: u64,
    ldc: usize,
}

/// A batch of [`Gemm`]s at fixed strides (in elements).
struct Strided {
    sa: usize,
    sb: usize,
    sc: usize,
    count: usize,
}

impl CudaBackend {
    fn new(ordinal: usize, tf32: bool) -> Result<Self> {
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| Error::Cuda("the CUDA driver could not be loaded".into()))?
            .map_err(|e| driver(&format!("opening CUDA device {ordinal}"), e))?;
        // One stream per backend and every buffer used on it alone: cudarc's per-buffer events
        // (for buffers shared across streams) would only add work to each launch.
        // SAFETY: no buffer of this context is used on another stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| driver("creating a stream", e))?;
        let arch = ctx.compute_capability().map_err(|e| driver("compute capability", e))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let ptx = kernels::ptx_for(&format!("compute_{}{}", arch.0, arch.1))?;
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(|e| driver("loading the kernels (the driver may be older than NVRTC)", e))?;
        let k = kernels::Kernels::load(&module)?;
        let handle = cudarc::cublas::CudaBlas::new(stream.clone()).map_err(|e| blas("creating a handle", e))?;
        let mode = if tf32 {
            cudarc::cublas::sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            cudarc::cublas::sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: the handle is live; the mode is one of cuBLAS's.
        unsafe { cudarc::cublas::sys::cublasSetMathMode(*handle.handle(), mode) }
            .result()
            .map_err(|e| blas("setting the math mode", e))?;
        Ok(CudaBackend {
            ordinal,
            name,
            arch,
            tf32,
            ctx,
            stream,
            k,
            state: Mutex::new(State { blas: handle, scratch: Scratch::default() }),
        })
    }

    /// The call's state, with the context current on this thread.
    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.ctx.bind_to_thread().map_err(|e| driver("binding the context", e))?;
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn alloc<T: Elem>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(len.max(1)).map_err(|e| driver(&format!("allocating {len} elements"), e))
    }

    fn grow_buf<T: Elem>(&self, buf: &mut Buf<T>, len: usize) -> Result<()> {
        if let Some(d) = buf.device() {
            if d.dev.len() >= len {
                return Ok(());
            }
        } else if !buf.is_empty() {
            return Err(wrong_device("ensure"));
        }
        // Free the old allocation before taking the larger one.
        *buf = Buf::default();
        *buf = Buf::from_device(self.alloc::<T>(len)?);
        Ok(())
    }

    /// The device address of a buffer holding at least `need` elements.
    fn ptr<T: Elem>(&self, b: &Buf<T>, need: usize, what: &str) -> Result<u64> {
        let d = b.device().ok_or_else(|| wrong_device(what))?;
        if d.dev.len() < need {
            return Err(too_short(what, d.dev.len(), need));
        }
        Ok(d.dev.device_ptr(&self.stream).0)
    }

    /// The device address of element `off` of device memory holding at least `off + need`.
    fn mem_ptr(&self, m: Mem, off: usize, need: usize, what: &str) -> Result<u64> {
        match m {
            Mem::Cuda(s) => {
                if s.len() < off + need {
                    return Err(too_short(what, s.len(), off + need));
                }
                Ok(s.device_ptr(&self.stream).0 + (off * 4) as u64)
            }
            Mem::Host(_) => Err(wrong_device(what)),
        }
    }

    /// The host copy of an id buffer's first `need` uploaded elements.
    fn ids<'a>(&self, b: &'a Buf<i32>, need: usize, what: &str) -> Result<&'a [i32]> {
        let d = b.device().ok_or_else(|| wrong_device(what))?;
        d.shadow.get(..need).ok_or_else(|| {
            Error::Internal(format!("{what}: {need} ids needed, {} were uploaded to this backend", d.shadow.len()))
        })
    }

    /// The device addresses of a LayerNorm's statistics, `n` each.
    fn stats_ptrs(&self, s: &LnStats, n: usize) -> Result<(u64, u64)> {
        Ok((self.ptr(&s.mean, n, "mean")?, self.ptr(&s.rstd, n, "rstd")?))
    }

    /// The device addresses of Q, K and V (or their gradients), `len` each.
    fn qkv_ptrs(&self, x: Qkv<&Buf>, len: usize) -> Result<Qkv<u64>> {
        Ok(Qkv { q: self.ptr(x.q, len, "q")?, k: self.ptr(x.k, len, "k")?, v: self.ptr(x.v, len, "v")? })
    }

    /// A batch's ids and types as uploaded (the host copies), checked against the tables.
    fn token_ids<'a>(&self, x: Tokens<'a>, emb: &Embeddings) -> Result<Tokens<'a, [i32]>> {
        let n = x.b * x.t;
        let ids = self.ids(x.ids, n, "input ids")?;
        let types = x.types.map(|y| self.ids(y, n, "token types")).transpose()?;
        let host = Tokens { ids, types, b: x.b, t: x.t };
        super::cpu::embedding::check_ids(host, emb)?;
        Ok(host)
    }

    fn gemm(&self, st: &State, g: Gemm) -> Result<()> {
        let d = |x: usize| dims("matrix product", x);
        // SAFETY: every operand was checked to hold the elements these sizes and strides reach.
        unsafe {
            cudarc::cublas::result::sgemm(
                *st.blas.handle(),
                op(g.ta),
                op(g.tb),
                d(g.m)?,
                d(g.n)?,
                d(g.k)?,
                &g.alpha,
                g.a as *const f32,
                d(g.lda)?,
                g.b as *const f32,
                d(g.ldb)?,
                &g.beta,
                g.c as *mut f32,
                d(g.ldc)?,
            )
        }
        .map_err(|e| blas("sgemm", e))
    }

    fn gemm_batched(&self, st: &State, g: Gemm, s: Strided) -> Result<()> {
        let d = |x: usize| dims("batched matrix product", x);
        // SAFETY: as in `gemm`, for each of the `count` strided products.
        unsafe {
            cudarc::cublas::result::sgemm_strided_batched(
                *st.blas.handle(),
                op(g.ta),
                op(g.tb),
                d(g.m)?,
                d(g.n)?,
                d(g.k)?,
                &g.alpha,
                g.a as *const f32,
                d(g.lda)?,
                s.sa as i64,
                g.b as *const f32,
                d(g.ldb)?,
                s.sb as i64,
                &g.beta,
                g.c as *mut f32,
                d(g.ldc)?,
                s.sc as i64,
                d(s.count)?,
            )
        }
        .map_err(|e| blas("sgemm_strided_batched", e))
    }

    /// `y[d] (+)= Σ_r x[r, d]` over `n` rows of `d` (a bias or LayerNorm parameter gradient), as
    /// one matrix-vector product with a vector of ones.
    fn col_sum_acc(&self, st: &mut State, y: u64, x: u64, n: usize, d: usize) -> Result<()> {
        if n == 0 || d == 0 {
            return Ok(());
        }
        let grown = st.scratch.ones.as_ref().is_none_or(|o| o.len() < n);
        let ones = grow(&self.stream, &mut st.scratch.ones, n)?;
        if grown {
            let len = st.scratch.ones.as_ref().map_or(0, |o| o.len());
            self.launch_fill(ones, len, 1.0)?;
        }
        let (alpha, beta) = (1.0f32, 1.0f32);
        // SAFETY: `x` holds n·d elements, `y` d, `ones` n.
        unsafe {
            cudarc::cublas::result::sgemv(
                *st.blas.handle(),
                cublasOperation_t::CUBLAS_OP_N,
                dims("column sum", d)?,
                dims("column sum", n)?,
                &alpha,
                x as *const f32,
                dims("column sum", d)?,
                ones as *const f32,
                1,
                &beta,
                y as *mut f32,
                1,
            )
        }
        .map_err(|e| blas("sgemv", e))
    }

    fn launch_fill(&self, p: u64, len: usize, v: f32) -> Result<()> {
        let n = len as i64;
        let mut b = self.stream.launch_builder(&self.k.fill);
        b.arg(&p).arg(&n).arg(&v);
        // SAFETY: `p` holds `len` f32s; the kernel's arguments match fill's signature.
        unsafe { b.launch(cfg_elems(len)) }.map(drop).map_err(|e| driver("fill", e))
    }

    /// The attention probabilities' dropped copy: `len` f32s from `src` to `dst` (device addresses
    /// checked by the caller) through the mask `d`, on the stream; returns `dst`.
    fn dropped_copy(&self, dst: u64, src: u64, len: usize, d: Dropout) -> Result<u64> {
        // SAFETY: both addresses hold at least `len` f32s (checked against their buffers or grown
        // scratch by the caller); the copy is ordered on this backend's stream.
        unsafe { cudarc::driver::result::memcpy_dtod_async(dst, src, len * 4, self.stream.cu_stream()) }
            .map_err(|e| driver("dropped probabilities", e))?;
        self.launch_dropout(dst, len, d)?;
        Ok(dst)
    }

    /// [`Backend::dropout`] on a device address holding `len` f32s.
    fn launch_dropout(&self, p: u64, len: usize, d: Dropout) -> Result<()> {
        let (n, thr, s, key) = (len as i64, d.threshold, d.scale(), KernelRng(d.at));
        // One thread per keystream block of 16 words.
        self.launch(&self.k.dropout, "dropout", cfg_elems(len.div_ceil(16) + 1), |a| {
            a.arg(&p).arg(&n).arg(&thr).arg(&s).arg(&key);
        })
    }

    /// One of the mean pooling kernels (forward or backward: the same arguments, one thread per
    /// group and column), writing `out` from `inp`; the caller holds the lock.
    fn launch_mean(&self, f: &CudaFunction, what: &str, (out, inp): (u64, u64), g: RowGroups) -> Result<()> {
        let mp = g.mask.map(|m| self.ptr(m, g.total_rows(), "attention mask")).transpose()?.unwrap_or(0);
        let (gg, tt, ww) = (dims("groups", g.groups)?, dims("rows", g.rows)?, dims("width", g.width)?);
        self.launch(f, what, cfg_elems(g.groups * g.width), |a| {
            a.arg(&out).arg(&inp).arg(&mp).arg(&gg).arg(&tt).arg(&ww);
        })
    }

    fn launch<'a>(
        &'a self,
        f: &'a CudaFunction,
        what: &str,
        c: LaunchConfig,
        args: impl FnOnce(&mut cudarc::driver::LaunchArgs<'a>),
    ) -> Result<()> {
        let mut b = self.stream.launch_builder(f);
        args(&mut b);
        // SAFETY: every caller passes the kernel's parameters in order, with device addresses
        // checked against the sizes the kernel reaches.
        unsafe { b.launch(c) }.map(drop).map_err(|e| driver(what, e))
    }

    /// The partials of a per-chunk reduction kernel `(part, x, n, chunk)` over the first `len`
    /// elements of `buf`, one per [`SQ_CHUNK`] elements (none for `len` 0), through `slot`.
    fn chunk_partials<T: DeviceRepr + ValidAsZeroBits + Default + Clone>(
        &self,
        f: &CudaFunction,
        what: &str,
        buf: &Buf,
        len: usize,
        slot: impl FnOnce(&mut Scratch) -> &mut Option<CudaSlice<T>>,
    ) -> Result<Vec<T>> {
        let mut st = self.lock()?;
        let p = self.ptr(buf, len, what)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let blocks = len.div_ceil(SQ_CHUNK);
        let slot = slot(&mut st.scratch);
        let part = grow(&self.stream, slot, blocks)?;
        let (nn, chunk) = (len as i64, SQ_CHUNK as i32);
        self.launch(f, what, cfg(dims("blocks", blocks)? as u32, BLOCK), |a| {
            a.arg(&part).arg(&p).arg(&nn).arg(&chunk);
        })?;
        let mut parts = vec![T::default(); blocks];
        get(&self.stream, slot, &mut parts)?;
        Ok(parts)
    }

    /// `y = x·Wᵀ` for the Linear `lin` (no bias), into `y`.
    fn product(&self, st: &State, y: u64, x: u64, wp: u64, lin: &Linear, n: usize) -> Result<()> {
        self.gemm(
            st,
            Gemm {
                ta: true,
                tb: false,
                m: lin.dout,
                n,
                k: lin.din,
                alpha: 1.0,
                a: wp,
                lda: lin.din,
                b: x,
                ldb: lin.din,
                beta: 0.0,
                c: y,
                ldc: lin.dout,
            },
        )
    }

    /// The Linear's weight and bias addresses in `w`.
    fn linear_ptrs(&self, w: Mem, lin: &Linear) -> Result<(u64, u64)> {
        Ok((self.mem_ptr(w, lin.w.off, lin.w.len, "weight")?, self.mem_ptr(w, lin.b.off, lin.b.len, "bias")?))
    }

    /// Linear backward after `dy`: `dW += dyᵀ·x`, `db += Σ dy` at the layer's gradient spans.
    fn weight_grads(&self, st: &mut State, grads: &mut Buf, dy: u64, x: u64, lin: &Linear, n: usize) -> Result<()> {
        let g = self.ptr(grads, (lin.w.off + lin.w.len).max(lin.b.off + lin.b.len), "grads")?;
        let (dw, db) = (g + (lin.w.off * 4) as u64, g + (lin.b.off * 4) as u64);
        self.gemm(
            st,
            Gemm {
                ta: false,
                tb: true,
                m: lin.din,
                n: lin.dout,
                k: n,
                alpha: 1.0,
                a: x,
                lda: lin.din,
                b: dy,
                ldb: lin.dout,
                beta: 1.0,
                c: dw,
                ldc: lin.din,
            },
        )?;
        self.col_sum_acc(st, db, dy, n, lin.dout)
    }

    /// `dx (+)= dy·W`.
    fn input_grad(dx: u64, dy: u64, wp: u64, lin: &Linear, n: usize, acc: bool) -> Gemm {
        Gemm {
            ta: false,
            tb: false,
            m: lin.din,
            n,
            k: lin.dout,
            alpha: 1.0,
            a: wp,
            lda: lin.din,
            b: dy,
            ldb: lin.dout,
            beta: if acc { 1.0 } else { 0.0 },
            c: dx,
            ldc: lin.din,
        }
    }

    /// Tokens grouped by table row for [`Self::scatter_rows_of`]: (order, segment starts, rows),
    /// each row's tokens ascending, rows equal to `skip` left out.
    fn segments(keys: &[i32], skip: Option<i32>) -> (Vec<i32>, Vec<i32>, Vec<i32>) {
        let mut pairs: Vec<u64> = keys
            .iter()
            .enumerate()
            .filter(|(_, &k)| Some(k) != skip)
            .map(|(i, &k)| ((k as u32 as u64) << 32) | i as u64)
            .collect();
        // Keys are distinct (the token index is in them), so the unstable sort is deterministic.
        pairs.sort_unstable();
        let order: Vec<i32> = pairs.iter().map(|&p| p as u32 as i32).collect();
        let (mut starts, mut rows) = (Vec::new(), Vec::new());
        for (k, &p) in pairs.iter().enumerate() {
            let row = (p >> 32) as u32 as i32;
            if rows.last() != Some(&row) {
                rows.push(row);
                starts.push(k as i32);
            }
        }
        starts.push(order.len() as i32);
        (order, starts, rows)
    }

    /// `table[row] += Σ dout[tokens of row]` for the grouping of `keys`.
    fn scatter_rows_of(
        &self,
        st: &mut State,
        table: u64,
        dout: u64,
        keys: &[i32],
        skip: Option<i32>,
        e: usize,
    ) -> Result<()> {
        let (order, starts, rows) = Self::segments(keys, skip);
        if rows.is_empty() {
            return Ok(());
        }
        let o = put(&self.stream, &mut st.scratch.order, &order)?;
        let s = put(&self.stream, &mut st.scratch.seg_start, &starts)?;
        let r = put(&self.stream, &mut st.scratch.seg_row, &rows)?;
        let (nseg, e32) = (dims("segments", rows.len())?, dims("embedding width", e)?);
        self.launch(&self.k.scatter_segments, "embedding backward", cfg(rows.len() as u32, 128), |b| {
            b.arg(&table).arg(&dout).arg(&o).arg(&s).arg(&r).arg(&nseg).arg(&e32);
        })
    }
}

fn act_code(f: Activation) -> i32 {
    Activation::ALL.iter().position(|&a| a == f).unwrap_or(Activation::ALL.len() - 1) as i32
}

/// The CUDA backend's [`Prepared`] form: a copy of the flat parameters in device memory.
struct CudaPrepared(Buf);

impl Backend for CudaBackend {
    fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    fn describe(&self) -> String {
        format!(
            "cuda:{}: {} (sm_{}{}), cuBLAS {}",
            self.ordinal,
            self.name,
            self.arch.0,
            self.arch.1,
            if self.tf32 { "TF32" } else { "fp32" }
        )
    }

    fn threads(&self) -> usize {
        1
    }

    fn enter(&self, f: &mut (dyn FnMut() + Send)) {
        // A failure to bind shows in the first call's result; `f` runs either way.
        let _ = self.ctx.bind_to_thread();
        f()
    }

    fn ensure(&self, buf: &mut Buf, len: usize) -> Result<()> {
        let _st = self.lock()?;
        self.grow_buf(buf, len)
    }

    fn ensure_ids(&self, buf: &mut Buf<i32>, len: usize) -> Result<()> {
        let _st = self.lock()?;
        self.grow_buf(buf, len)?;
        if let Some(d) = buf.device_mut() {
            // Contents unspecified from here on: no host copy to trust.
            d.shadow.truncate(0);
        }
        Ok(())
    }

    fn import(&self, host: Vec<f32>) -> Result<Buf> {
        let mut b = Buf::default();
        self.upload(&mut b, &host)?;
        Ok(b)
    }

    fn upload(&self, dst: &mut Buf, src: &[f32]) -> Result<()> {
        let _st = self.lock()?;
        self.grow_buf(dst, src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        let d = dst.device_mut().ok_or_else(|| wrong_device("upload"))?;
        self.stream.memcpy_htod(src, &mut d.dev.slice_mut(..src.len())).map_err(|e| driver("upload", e))
    }

    fn upload_ids(&self, dst: &mut Buf<i32>, src: &[i32]) -> Result<()> {
        let _st = self.lock()?;
        self.grow_buf(dst, src.len())?;
        let d = dst.device_mut().ok_or_else(|| wrong_device("upload"))?;
        d.shadow.clear();
        d.shadow.extend_from_slice(src);
        if src.is_empty() {
            return Ok(());
        }
        self.stream.memcpy_htod(src, &mut d.dev.slice_mut(..src.len())).map_err(|e| driver("upload", e))
    }

    fn download(&self, src: Mem, dst: &mut [f32]) -> Result<()> {
        let _st = self.lock()?;
        let s = match src {
            Mem::Cuda(s) => s,
            Mem::Host(_) => return Err(wrong_device("download")),
        };
        if s.len() < dst.len() {
            return Err(too_short("download", s.len(), dst.len()));
        }
        if dst.is_empty() {
            return Ok(());
        }
        self.stream.memcpy_dtoh(&s.slice(..dst.len()), dst).map_err(|e| driver("download", e))?;
        self.stream.synchronize().map_err(|e| driver("synchronize", e))
    }

    fn fill(&self, buf: &mut Buf, len: usize, value: f32) -> Result<()> {
        let _st = self.lock()?;
        let p = self.ptr(buf, len, "fill")?;
        self.launch_fill(p, len, value)
    }

    fn copy(&self, dst: &mut Buf, src: &Buf, len: usize) -> Result<()> {
        let _st = self.lock()?;
        self.ptr(dst, len, "copy destination")?;
        self.ptr(src, len, "copy source")?;
        if len == 0 {
            return Ok(());
        }
        let s = &src.device().ok_or_else(|| wrong_device("copy source"))?.dev;
        let d = &mut dst.device_mut().ok_or_else(|| wrong_device("copy destination"))?.dev;
        self.stream.memcpy_dtod(&s.slice(..len), &mut d.slice_mut(..len)).map_err(|e| driver("copy", e))
    }

    /// The flat parameters copied to the device once per model, which its sessions share.
    fn prepare(&self, weights: &InferenceWeights) -> Result<Prepared> {
        if weights.int8.is_some() {
            return Err(Error::Unsupported(
                "int8 models run on the CPU backend only; load the f32 model for \"cuda\"".into(),
            ));
        }
        let w = weights.flat;
        let _st = self.lock()?;
        let mut dev = self.alloc::<f32>(w.len())?;
        if !w.is_empty() {
            self.stream.memcpy_htod(w, &mut dev.slice_mut(..w.len())).map_err(|e| driver("uploading weights", e))?;
        }
        // Other sessions' backends read these weights on their own streams: the copy must be
        // complete before any of them can see it.
        self.stream.synchronize().map_err(|e| driver("uploading weights", e))?;
        Ok(Prepared::new(self.device(), CudaPrepared(Buf::from_device(dev))))
    }

    fn flat_weights<'a>(&self, prepared: &'a Prepared, _host: &'a [f32]) -> Result<Mem<'a>> {
        Ok(prepared.get::<CudaPrepared>()?.0.mem())
    }

    fn linear(&self, y: &mut Buf, x: &Buf, w: &Weights, lin: &Linear, n: usize) -> Result<()> {
        let st = self.lock()?;
        let (wp, bp) = self.linear_ptrs(w.flat, lin)?;
        let (xp, yp) = (self.ptr(x, n * lin.din, "linear x")?, self.ptr(y, n * lin.dout, "linear y")?);
        self.product(&st, yp, xp, wp, lin, n)?;
        let (nn, d, a, null) = (n as i64, dims("width", lin.dout)?, act_code(Activation::Linear), 0u64);
        self.launch(&self.k.bias_act, "bias", cfg_elems(n * lin.dout), |b| {
            b.arg(&yp).arg(&null).arg(&bp).arg(&nn).arg(&d).arg(&a);
        })
    }

    fn linear_act(&self, y: Activated<&mut Buf>, x: &Buf, w: &Weights, lin: &Linear, n: usize) -> Result<()> {
        let st = self.lock()?;
        let (wp, bp) = self.linear_ptrs(w.flat, lin)?;
        let len = n * lin.dout;
        let (xp, pp, ap) =
            (self.ptr(x, n * lin.din, "linear x")?, self.ptr(y.pre, len, "pre")?, self.ptr(y.act, len, "act")?);
        self.product(&st, pp, xp, wp, lin, n)?;
        let (nn, d, a) = (n as i64, dims("width", lin.dout)?, act_code(y.f));
        self.launch(&self.k.bias_act, "bias + activation", cfg_elems(len), |b| {
            b.arg(&pp).arg(&ap).arg(&bp).arg(&nn).arg(&d).arg(&a);
        })
    }

    fn linear_residual_layer_norm(
        &self,
        y: ResidualLn,
        x: &Buf,
        residual: &Buf,
        w: &Weights,
        block: &PostLn,
        n: usize,
    ) -> Result<()> {
        let (lin, ln) = (&block.dense, &block.ln);
        let st = self.lock()?;
        let (wp, bp) = self.linear_ptrs(w.flat, lin)?;
        let (gp, betap) = (
            self.mem_ptr(w.flat, ln.g.off, ln.g.len, "LayerNorm weight")?,
            self.mem_ptr(w.flat, ln.b.off, ln.b.len, "LayerNorm bias")?,
        );
        let len = n * lin.dout;
        let xp = self.ptr(x, n * lin.din, "linear x")?;
        let (sp, op_, resp) =
            (self.ptr(y.sum, len, "sum")?, self.ptr(y.out, len, "out")?, self.ptr(residual, len, "residual")?);
        let (mp, rp) = self.stats_ptrs(y.stats, n)?;
        self.product(&st, sp, xp, wp, lin, n)?;
        let (nn, c, eps) = (dims("rows", n)?, dims("width", lin.dout)?, ln.eps as f32);
        self.launch(&self.k.bias_residual_layer_norm, "bias + residual + LayerNorm", cfg_rows(n), |b| {
            b.arg(&sp).arg(&op_).arg(&mp).arg(&rp).arg(&bp).arg(&resp).arg(&gp).arg(&betap).arg(&nn).arg(&c).arg(&eps);
        })
    }

    fn linear_backward(
        &self,
        dx: InputGrad,
        p: &mut ParamGrads,
        dy: &Buf,
        x: &Buf,
        lin: &Linear,
        n: usize,
    ) -> Result<()> {
        let mut st = self.lock()?;
        let wp = self.mem_ptr(p.w, lin.w.off, lin.w.len, "weight")?;
        let (dyp, xp) = (self.ptr(dy, n * lin.dout, "dy")?, self.ptr(x, n * lin.din, "x")?);
        let (dxp, acc) = match dx {
            InputGrad::Set(b) => (self.ptr(b, n * lin.din, "dx")?, false),
            InputGrad::Add(b) => (self.ptr(b, n * lin.din, "dx")?, true),
        };
        self.gemm(&st, Self::input_grad(dxp, dyp, wp, lin, n, acc))?;
        self.weight_grads(&mut st, p.grads, dyp, xp, lin, n)
    }

    fn linear_act_backward(
        &self,
        d_pre: &mut Buf,
        p: &mut ParamGrads,
        dy: &Buf,
        x: Activated<&Buf>,
        lin: &Linear,
        n: usize,
    ) -> Result<()> {
        let mut st = self.lock()?;
        let wp = self.mem_ptr(p.w, lin.w.off, lin.w.len, "weight")?;
        let len = n * lin.din;
        let (dyp, ap, pp, dp) = (
            self.ptr(dy, n * lin.dout, "dy")?,
            self.ptr(x.act, len, "act")?,
            self.ptr(x.pre, len, "pre")?,
            self.ptr(d_pre, len, "d_pre")?,
        );
        self.gemm(&st, Self::input_grad(dp, dyp, wp, lin, n, false))?;
        let (nn, a) = (len as i64, act_code(x.f));
        self.launch(&self.k.activation_bwd, "activation backward", cfg_elems(len), |b| {
            b.arg(&dp).arg(&dp).arg(&pp).arg(&nn).arg(&a);
        })?;
        self.weight_grads(&mut st, p.grads, dyp, ap, lin, n)
    }

    fn activation(&self, out: &mut Buf, x: &Buf, len: usize, f: Activation) -> Result<()> {
        let _st = self.lock()?;
        let (op_, xp) = (self.ptr(out, len, "out")?, self.ptr(x, len, "x")?);
        let (nn, a) = (len as i64, act_code(f));
        self.launch(&self.k.activation_fwd, "activation", cfg_elems(len), |b| {
            b.arg(&op_).arg(&xp).arg(&nn).arg(&a);
        })
    }

    fn activation_backward(&self, dx: &mut Buf, dout: &Buf, x: &Buf, len: usize, f: Activation) -> Result<()> {
        let _st = self.lock()?;
        let (dp, gp, xp) = (self.ptr(dx, len, "dx")?, self.ptr(dout, len, "dout")?, self.ptr(x, len, "x")?);
        let (nn, a) = (len as i64, act_code(f));
        self.launch(&self.k.activation_bwd, "activation backward", cfg_elems(len), |b| {
            b.arg(&dp).arg(&gp).arg(&xp).arg(&nn).arg(&a);
        })
    }

    fn layer_norm(&self, out: &mut Buf, stats: &mut LnStats, x: &Buf, w: Mem, ln: &LayerNorm, n: usize) -> Result<()> {
        let _st = self.lock()?;
        let c = ln.dim;
        let (gp, bp) = (
            self.mem_ptr(w, ln.g.off, ln.g.len, "LayerNorm weight")?,
            self.mem_ptr(w, ln.b.off, ln.b.len, "LayerNorm bias")?,
        );
        let (op_, xp) = (self.ptr(out, n * c, "out")?, self.ptr(x, n * c, "x")?);
        let (mp, rp) = self.stats_ptrs(stats, n)?;
        let (nn, cc, eps) = (dims("rows", n)?, dims("width", c)?, ln.eps as f32);
        self.launch(&self.k.layer_norm_fwd, "LayerNorm", cfg_rows(n), |b| {
            b.arg(&op_).arg(&mp).arg(&rp).arg(&xp).arg(&gp).arg(&bp).arg(&nn).arg(&cc).arg(&eps);
        })
    }

    fn layer_norm_backward(
        &self,
        dx: &mut Buf,
        p: &mut ParamGrads,
        dout: &Buf,
        x: LnSaved,
        ln: &LayerNorm,
        n: usize,
    ) -> Result<()> {
        let mut st = self.lock()?;
        let c = ln.dim;
        let gp = self.mem_ptr(p.w, ln.g.off, ln.g.len, "LayerNorm weight")?;
        let (dxp, gop, xp) = (self.ptr(dx, n * c, "dx")?, self.ptr(dout, n * c, "dout")?, self.ptr(x.x, n * c, "x")?);
        let (mp, rp) = self.stats_ptrs(x.stats, n)?;
        let gr = self.ptr(p.grads, (ln.g.off + ln.g.len).max(ln.b.off + ln.b.len), "grads")?;
        let prod = grow(&self.stream, &mut st.scratch.prod, n * c)?;
        let (nn, cc) = (dims("rows", n)?, dims("width", c)?);
        self.launch(&self.k.layer_norm_bwd, "LayerNorm backward", cfg_rows(n), |b| {
            b.arg(&dxp).arg(&prod).arg(&gop).arg(&xp).arg(&gp).arg(&mp).arg(&rp).arg(&nn).arg(&cc);
        })?;
        self.col_sum_acc(&mut st, gr + (ln.g.off * 4) as u64, prod, n, c)?;
        self.col_sum_acc(&mut st, gr + (ln.b.off * 4) as u64, gop, n, c)
    }

    fn key_mask(&self, mask_add: &mut Buf, mask: Option<&Buf<i32>>, n: usize) -> Result<()> {
        let _st = self.lock()?;
        let mp = self.ptr(mask_add, n, "mask_add")?;
        let src = mask.map(|m| self.ptr(m, n, "attention mask")).transpose()?.unwrap_or(0);
        let nn = dims("rows", n)?;
        self.launch(&self.k.key_mask, "key mask", cfg_elems(n), |b| {
            b.arg(&mp).arg(&src).arg(&nn);
        })
    }

    fn attention(
        &self,
        ctx: &mut Buf,
        probs: &mut Buf,
        x: Qkv<&Buf>,
        mask_add: &Buf,
        shape: AttentionShape,
    ) -> Result<()> {
        let mut st = self.lock()?;
        let AttentionShape { b, t, nh, hd, dropout, .. } = shape;
        let (h, len, pl) = (nh * hd, shape.qkv_len(), shape.probs_len());
        let (cp, pp, mp) =
            (self.ptr(ctx, len, "ctx")?, self.ptr(probs, pl, "probs")?, self.ptr(mask_add, b * t, "mask_add")?);
        let Qkv { q: qp, k: kp, v: vp } = self.qkv_ptrs(x, len)?;
        if len == 0 {
            return Ok(());
        }
        let (sx, sp) = (Strided { sa: t * h, sb: t * h, sc: nh * t * t, count: b }, nh * t * t);
        for head in 0..nh {
            let (ho, po) = ((head * hd * 4) as u64, (head * t * t * 4) as u64);
            // S[query, key] = Q·Kᵀ per batch row (scaled in the softmax, as on the CPU).
            self.gemm_batched(
                &st,
                Gemm {
                    ta: true,
                    tb: false,
                    m: t,
                    n: t,
                    k: hd,
                    alpha: 1.0,
                    a: kp + ho,
                    lda: h,
                    b: qp + ho,
                    ldb: h,
                    beta: 0.0,
                    c: pp + po,
                    ldc: t,
                },
                Strided { ..sx },
            )?;
        }
        let (rows, tt, nhh, scale) =
            (dims("rows", b * nh * t)?, dims("sequence", t)?, dims("heads", nh)?, 1.0 / (hd as f32).sqrt());
        self.launch(&self.k.softmax_fwd, "softmax", cfg_rows(b * nh * t), |a| {
            a.arg(&pp).arg(&mp).arg(&rows).arg(&tt).arg(&nhh).arg(&scale);
        })?;
        // With dropout the context uses a dropped copy; `probs` keeps the softmax for the backward.
        let pv = match dropout {
            None => pp,
            Some(d) => {
                let dp = grow(&self.stream, &mut st.scratch.probs_drop, pl)?;
                self.dropped_copy(dp, pp, pl, d)?
            }
        };
        for head in 0..nh {
            let (ho, po) = ((head * hd * 4) as u64, (head * t * t * 4) as u64);
            // ctx = P·V.
            self.gemm_batched(
                &st,
                Gemm {
                    ta: false,
                    tb: false,
                    m: hd,
                    n: t,
                    k: t,
                    alpha: 1.0,
                    a: vp + ho,
                    lda: h,
                    b: pv + po,
                    ldb: t,
                    beta: 0.0,
                    c: cp + ho,
                    ldc: h,
                },
                Strided { sa: t * h, sb: sp, sc: t * h, count: b },
            )?;
        }
        Ok(())
    }

    fn attention_backward(
        &self,
        dx: Qkv<&mut Buf>,
        scratch: &mut Buf,
        dctx: &Buf,
        saved: AttentionSaved,
        x: Qkv<&Buf>,
        shape: AttentionShape,
    ) -> Result<()> {
        let st = self.lock()?;
        // This backend keeps the probabilities (no `attention_recomputes`), so the encoder always
        // asks for them and the key mask is not needed here.
        let (AttentionShape { b, t, nh, hd, dropout, .. }, probs) = (shape, saved.probs);
        let (h, len, pl) = (nh * hd, shape.qkv_len(), shape.probs_len());
        let Qkv { q: dqp, k: dkp, v: dvp } = self.qkv_ptrs(Qkv { q: &*dx.q, k: &*dx.k, v: &*dx.v }, len)?;
        let (sp, gp, pp) =
            (self.ptr(scratch, pl, "scratch")?, self.ptr(dctx, len, "dctx")?, self.ptr(probs, pl, "probs")?);
        let Qkv { q: qp, k: kp, v: vp } = self.qkv_ptrs(x, len)?;
        if len == 0 {
            return Ok(());
        }
        let scale = 1.0 / (hd as f32).sqrt();
        let ps = nh * t * t;
        // With dropout, the forward's dropped probabilities P′ are rebuilt in the scratch for
        // dV first; dP′ then overwrites them and the mask takes it to dP.
        let pv = match dropout {
            None => pp,
            Some(d) => self.dropped_copy(sp, pp, pl, d)?,
        };
        for head in 0..nh {
            let (ho, po) = ((head * hd * 4) as u64, (head * t * t * 4) as u64);
            // dV = P′ᵀ·dctx (P′ = P without dropout).
            self.gemm_batched(
                &st,
                Gemm {
                    ta: false,
                    tb: true,
                    m: hd,
                    n: t,
                    k: t,
                    alpha: 1.0,
                    a: gp + ho,
                    lda: h,
                    b: pv + po,
                    ldb: t,
                    beta: 0.0,
                    c: dvp + ho,
                    ldc: h,
                },
                Strided { sa: t * h, sb: ps, sc: t * h, count: b },
            )?;
        }
        for head in 0..nh {
            let (ho, po) = ((head * hd * 4) as u64, (head * t * t * 4) as u64);
            // dP = dctx·Vᵀ (into scratch, laid out as probs).
            self.gemm_batched(
                &st,
                Gemm {
                    ta: true,
                    tb: false,
                    m: t,
                    n: t,
                    k: hd,
                    alpha: 1.0,
                    a: vp + ho,
                    lda: h,
                    b: gp + ho,
                    ldb: h,
                    beta: 0.0,
                    c: sp + po,
                    ldc: t,
                },
                Strided { sa: t * h, sb: t * h, sc: ps, count: b },
            )?;
        }
        if let Some(d) = dropout {
            self.launch_dropout(sp, pl, d)?;
        }
        let (rows, tt) = (dims("rows", b * nh * t)?, dims("sequence", t)?);
        self.launch(&self.k.softmax_bwd, "softmax backward", cfg_rows(b * nh * t), |a| {
            a.arg(&sp).arg(&pp).arg(&rows).arg(&tt);
        })?;
        for head in 0..nh {
            let (ho, po) = ((head * hd * 4) as u64, (head * t * t * 4) as u64);
            // dQ = scale·dS·K.
            self.gemm_batched(
                &st,
                Gemm {
                    ta: false,
                    tb: false,
                    m: hd,
                    n: t,
                    k: t,
                    alpha: scale,
                    a: kp + ho,
                    lda: h,
                    b: sp + po,
                    ldb: t,
                    beta: 0.0,
                    c: dqp + ho,
                    ldc: h,
                },
                Strided { sa: t * h, sb: ps, sc: t * h, count: b },
            )?;
            // dK = scale·dSᵀ·Q.
            self.gemm_batched(
                &st,
                Gemm {
                    ta: false,
                    tb: true,
                    m: hd,
                    n: t,
                    k: t,
                    alpha: scale,
                    a: qp + ho,
                    lda: h,
                    b: sp + po,
                    ldb: t,
                    beta: 0.0,
                    c: dkp + ho,
                    ldc: h,
                },
                Strided { sa: t * h, sb: ps, sc: t * h, count: b },
            )?;
        }
        Ok(())
    }

    fn embedding(&self, out: &mut Buf, x: Tokens, w: &Weights, emb: &Embeddings) -> Result<()> {
        let _st = self.lock()?;
        let (b, t, e) = (x.b, x.t, emb.ln.dim);
        let n = b * t;
        self.token_ids(x, emb)?;
        let (ids, types) = (x.ids, x.types);
        let (op_, ip) = (self.ptr(out, n * e, "out")?, self.ptr(ids, n, "input ids")?);
        let tp = types.map(|x| self.ptr(x, n, "token types")).transpose()?.unwrap_or(0);
        let wp = self.mem_ptr(w.flat, emb.word.off, emb.word.len, "word embeddings")?;
        let pp = self.mem_ptr(w.flat, emb.pos.off, emb.pos.len, "position embeddings")?;
        let yp = self.mem_ptr(w.flat, emb.typ.off, emb.typ.len, "type embeddings")?;
        if n == 0 {
            return Ok(());
        }
        let (nn, tt, ee) = (dims("tokens", n)?, dims("sequence", t)?, dims("width", e)?);
        self.launch(&self.k.embedding_fwd, "embedding", cfg(n as u32, 128), |a| {
            a.arg(&op_).arg(&ip).arg(&tp).arg(&wp).arg(&pp).arg(&yp).arg(&nn).arg(&tt).arg(&ee);
        })
    }

    fn embedding_backward(&self, grads: &mut Buf, dout: &Buf, x: Tokens, emb: &Embeddings) -> Result<()> {
        let mut st = self.lock()?;
        let (b, t, e) = (x.b, x.t, emb.ln.dim);
        let n = b * t;
        let host = self.token_ids(x, emb)?;
        let (id_host, type_host) = (host.ids, host.types);
        let dp = self.ptr(dout, n * e, "dout")?;
        let end = [emb.word, emb.pos, emb.typ].iter().map(|s| s.off + s.len).max().unwrap_or(0);
        let g = self.ptr(grads, end, "grads")?;
        if n == 0 {
            return Ok(());
        }
        let at = |off: usize| g + (off * 4) as u64;
        let pad = i32::try_from(emb.pad_id).ok();
        self.scatter_rows_of(&mut st, at(emb.word.off), dp, id_host, pad, e)?;
        match type_host {
            Some(ty) => self.scatter_rows_of(&mut st, at(emb.typ.off), dp, ty, None, e)?,
            None => self.scatter_rows_of(&mut st, at(emb.typ.off), dp, &vec![0; n], None, e)?,
        }
        let (bb, tt, ee, pos) = (dims("batch", b)?, dims("sequence", t)?, dims("width", e)?, at(emb.pos.off));
        self.launch(&self.k.position_grad, "position embedding backward", cfg_elems(t * e), |a| {
            a.arg(&pos).arg(&dp).arg(&bb).arg(&tt).arg(&ee);
        })
    }

    fn gather_rows(&self, dst: &mut Buf, src: &Buf, rows: &Buf<i32>, m: usize, width: usize) -> Result<()> {
        let _st = self.lock()?;
        let have = src.len() / width.max(1);
        if let Some(&r) = self.ids(rows, m, "rows")?.iter().find(|&&r| r < 0 || r as usize >= have) {
            return Err(Error::Internal(format!("gather: row {r} is outside [0, {have})")));
        }
        let (dp, sp, rp) = (
            self.ptr(dst, m * width, "gather destination")?,
            self.ptr(src, 0, "gather source")?,
            self.ptr(rows, m, "rows")?,
        );
        let (mm, ww) = (dims("rows", m)?, dims("width", width)?);
        self.launch(&self.k.gather_rows, "gather", cfg_elems(m * width), |a| {
            a.arg(&dp).arg(&sp).arg(&rp).arg(&mm).arg(&ww);
        })
    }

    fn scatter_rows(
        &self,
        dst: &mut Buf,
        src: &Buf,
        rows: &Buf<i32>,
        m: usize,
        width: usize,
        accumulate: bool,
    ) -> Result<()> {
        let _st = self.lock()?;
        let have = dst.len() / width.max(1);
        if let Some(&r) = self.ids(rows, m, "rows")?.iter().find(|&&r| r < 0 || r as usize >= have) {
            return Err(Error::Internal(format!("scatter: row {r} is outside [0, {have})")));
        }
        let (dp, sp, rp) = (
            self.ptr(dst, 0, "scatter destination")?,
            self.ptr(src, m * width, "scatter source")?,
            self.ptr(rows, m, "rows")?,
        );
        let (mm, ww, acc) = (dims("rows", m)?, dims("width", width)?, accumulate as i32);
        self.launch(&self.k.scatter_rows, "scatter", cfg_elems(m * width), |a| {
            a.arg(&dp).arg(&sp).arg(&rp).arg(&mm).arg(&ww).arg(&acc);
        })
    }

    fn mean_rows(&self, dst: &mut Buf, src: &Buf, g: RowGroups) -> Result<()> {
        let _st = self.lock()?;
        let out = self.ptr(dst, g.groups * g.width, "mean destination")?;
        let inp = self.ptr(src, g.total_rows() * g.width, "mean source")?;
        self.launch_mean(&self.k.mean_rows, "mean pooling", (out, inp), g)
    }

    fn mean_rows_backward(&self, dsrc: &mut Buf, ddst: &Buf, g: RowGroups) -> Result<()> {
        let _st = self.lock()?;
        let out = self.ptr(dsrc, g.total_rows() * g.width, "mean source gradient")?;
        let inp = self.ptr(ddst, g.groups * g.width, "mean gradient")?;
        self.launch_mean(&self.k.mean_rows_bwd, "mean pooling backward", (out, inp), g)
    }

    fn cross_entropy(&self, logits: &mut Buf, targets: &Buf<i32>, m: usize, v: usize, k: LossScale) -> Result<LossSum> {
        let mut st = self.lock()?;
        if let Some(&bad) = self.ids(targets, m, "targets")?.iter().find(|&&y| y < 0 || y as usize >= v) {
            return Err(Error::Internal(format!("cross-entropy target {bad} is outside [0, {v})")));
        }
        let (lp, tp) = (self.ptr(logits, m * v, "logits")?, self.ptr(targets, m, "targets")?);
        if m == 0 {
            return Ok(LossSum::default());
        }
        let losses = grow(&self.stream, &mut st.scratch.part_d, m)?;
        let correct = grow(&self.stream, &mut st.scratch.part_i, m)?;
        let (mm, vv, kk) = (dims("rows", m)?, dims("vocabulary", v)?, (k.scale as f64 / k.denom) as f32);
        self.launch(&self.k.cross_entropy, "cross-entropy", cfg(m as u32, 512), |a| {
            a.arg(&lp).arg(&losses).arg(&correct).arg(&tp).arg(&mm).arg(&vv).arg(&kk);
        })?;
        let (mut l, mut c) = (vec![0.0f64; m], vec![0i32; m]);
        get(&self.stream, &st.scratch.part_d, &mut l)?;
        get(&self.stream, &st.scratch.part_i, &mut c)?;
        let total: f64 = l.iter().sum();
        Ok(LossSum { loss: (total / k.denom) as f32, correct: c.iter().filter(|&&x| x != 0).count() })
    }

    fn binary_cross_entropy(
        &self,
        dlogits: &mut Buf,
        logits: &Buf,
        labels: &Buf,
        weights: &Buf,
        n: usize,
        k: LossScale,
    ) -> Result<LossSum> {
        let LossScale { scale, denom } = k;
        let mut st = self.lock()?;
        let (dp, lp, yp, wp) = (
            self.ptr(dlogits, n, "dlogits")?,
            self.ptr(logits, n, "logits")?,
            self.ptr(labels, n, "labels")?,
            self.ptr(weights, n, "weights")?,
        );
        if n == 0 {
            return Ok(LossSum::default());
        }
        let blocks = n.div_ceil(BLOCK as usize);
        let losses = grow(&self.stream, &mut st.scratch.part_d, blocks)?;
        let correct = grow(&self.stream, &mut st.scratch.part_i, blocks)?;
        let nn = dims("tokens", n)?;
        self.launch(&self.k.bce, "binary cross-entropy", cfg(blocks as u32, BLOCK), |a| {
            a.arg(&dp).arg(&losses).arg(&correct).arg(&lp).arg(&yp).arg(&wp).arg(&nn).arg(&scale).arg(&denom);
        })?;
        let (mut l, mut c) = (vec![0.0f64; blocks], vec![0i32; blocks]);
        get(&self.stream, &st.scratch.part_d, &mut l)?;
        get(&self.stream, &st.scratch.part_i, &mut c)?;
        let total: f64 = l.iter().sum();
        Ok(LossSum { loss: (total / denom) as f32, correct: c.iter().map(|&x| x as usize).sum() })
    }

    fn gumbel_argmax(
        &self,
        out: &mut Vec<i32>,
        logits: &Buf,
        m: usize,
        v: usize,
        temperature: f32,
        at: KeystreamAt,
    ) -> Result<()> {
        let mut st = self.lock()?;
        let lp = self.ptr(logits, m * v, "logits")?;
        out.clear();
        if m == 0 {
            return Ok(());
        }
        let ids = grow(&self.stream, &mut st.scratch.ids, m)?;
        let (mm, vv, key) = (dims("rows", m)?, dims("vocabulary", v)?, KernelRng(at));
        self.launch(&self.k.gumbel_argmax, "Gumbel sampling", cfg(m as u32, BLOCK), |a| {
            a.arg(&ids).arg(&lp).arg(&mm).arg(&vv).arg(&temperature).arg(&key);
        })?;
        out.resize(m, 0);
        get(&self.stream, &st.scratch.ids, out)
    }

    fn sum_squares(&self, buf: &Buf, len: usize) -> Result<f64> {
        let parts = self.chunk_partials(&self.k.sum_squares, "sum of squares", buf, len, |s| &mut s.part_d)?;
        Ok(parts.iter().sum())
    }

    /// Per-chunk maxima on the device, their maximum on the host: a max is exact, so the result
    /// is the CPU's whatever the split.
    fn max_abs(&self, buf: &Buf, len: usize) -> Result<f32> {
        let parts = self.chunk_partials(&self.k.max_abs, "max |x|", buf, len, |s| &mut s.part_f)?;
        Ok(parts.iter().fold(0.0f32, |a, &b| a.max(b)))
    }

    fn scale(&self, buf: &mut Buf, len: usize, s: f32) -> Result<()> {
        let _st = self.lock()?;
        let p = self.ptr(buf, len, "scale")?;
        let nn = len as i64;
        self.launch(&self.k.scale, "scale", cfg_elems(len), |a| {
            a.arg(&p).arg(&nn).arg(&s);
        })
    }

    fn dropout(&self, x: &mut Buf, len: usize, mask: Dropout) -> Result<()> {
        let _st = self.lock()?;
        let p = self.ptr(x, len, "dropout")?;
        if len == 0 {
            return Ok(());
        }
        self.launch_dropout(p, len, mask)
    }

    fn add(&self, dst: &mut Buf, src: &Buf, len: usize) -> Result<()> {
        let _st = self.lock()?;
        let (d, s) = (self.ptr(dst, len, "add destination")?, self.ptr(src, len, "add source")?);
        let nn = len as i64;
        self.launch(&self.k.add, "add", cfg_elems(len), |a| {
            a.arg(&d).arg(&s).arg(&nn);
        })
    }

    fn combine_spans(&self, buf: &mut Buf, dst: Span, a: Option<Span>, b: Option<Span>) -> Result<()> {
        let _st = self.lock()?;
        let len = buf.device().map_or(0, |d| d.dev.len());
        super::check_spans(len, dst, a, b)?;
        let p = self.ptr(buf, len, "combine_spans buffer")?;
        let sources = a.is_some() as i32 + b.is_some() as i32;
        let (d, a, b, n) =
            (dst.off as i64, a.map_or(0, |s| s.off as i64), b.map_or(0, |s| s.off as i64), dst.len as i64);
        self.launch(&self.k.combine_spans, "combine_spans", cfg_elems(dst.len), |k| {
            k.arg(&p).arg(&d).arg(&a).arg(&b).arg(&sources).arg(&n);
        })
    }

    fn adamw(
        &self,
        state: AdamState,
        grads: &Buf,
        tensors: &[AdamTensor],
        step: &AdamStep,
        check: bool,
    ) -> Result<Option<usize>> {
        let mut st = self.lock()?;
        let len = tensors.iter().map(|t| t.span.off + t.span.len).max().unwrap_or(0);
        let (pp, gp, mp, vp) = (
            self.ptr(state.params, len, "params")?,
            self.ptr(grads, len, "grads")?,
            self.ptr(state.m, len, "adam m")?,
            self.ptr(state.v, len, "adam v")?,
        );
        if tensors.is_empty() {
            return Ok(None);
        }
        // The tensor table: offsets, then prefix sums of lengths; learning rates, then decays.
        let nt = tensors.len();
        let mut ti: Vec<i64> = tensors.iter().map(|t| t.span.off as i64).collect();
        let mut acc = 0i64;
        ti.push(0);
        for t in tensors {
            acc += t.span.len as i64;
            ti.push(acc);
        }
        let mut tf: Vec<f32> = tensors.iter().map(|t| t.lr).collect();
        tf.extend(tensors.iter().map(|t| t.weight_decay));
        let tab = put(&self.stream, &mut st.scratch.tab_i64, &ti)?;
        let tabf = put(&self.stream, &mut st.scratch.tab_f32, &tf)?;
        let (offs, prefix) = (tab, tab + (nt * 8) as u64);
        let (lrs, wds) = (tabf, tabf + (nt * 4) as u64);
        let total = acc as usize;
        let flags = grow(&self.stream, &mut st.scratch.flags, nt)?;
        let nt32 = dims("tensors", nt)?;
        let run = |commit: i32| {
            self.launch(&self.k.adamw, "AdamW", cfg_elems(total), |a| {
                a.arg(&pp)
                    .arg(&gp)
                    .arg(&mp)
                    .arg(&vp)
                    .arg(&offs)
                    .arg(&prefix)
                    .arg(&lrs)
                    .arg(&wds)
                    .arg(&nt32)
                    .arg(&step.beta1)
                    .arg(&step.beta2)
                    .arg(&step.epsilon)
                    .arg(&step.c1)
                    .arg(&step.c2)
                    .arg(&flags)
                    .arg(&commit);
            })
        };
        if check {
            put(&self.stream, &mut st.scratch.flags, &vec![0i32; nt])?;
            run(0)?;
            let mut bad = vec![0i32; nt];
            get(&self.stream, &st.scratch.flags, &mut bad)?;
            if let Some(i) = bad.iter().position(|&b| b != 0) {
                return Ok(Some(i));
            }
        }
        run(1)?;
        Ok(None)
    }
}
