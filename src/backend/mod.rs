//! The compute seam: one trait, [`Backend`], that owns device memory and the kernel set the model
//! uses, so the model, the pre-training step, the fine-tuning step and inference are written once
//! (in `model/`, `pretrain/`, `finetune.rs`, `session.rs`) and run on whichever backend a handle
//! opened.
//!
//! - [`cpu`]: the reference backend (the `gemm` crate + run-time dispatched SIMD + a per-handle
//!   rayon pool), bit-identical for any thread count.
//! - [`cuda`]: behind the `cuda` feature (cudarc with the driver and NVRTC loaded at run time, so
//!   it builds without a toolkit or a GPU): every kernel of the trait, compiled at first use.
//!
//! Conventions for every kernel (after llm.c): outputs first, then inputs, then dimensions.
//! Operands that travel together are one struct ([`LnStats`], [`Activated`], [`Qkv`],
//! [`ResidualLn`], [`Tokens`], [`AttentionShape`], [`LossScale`], [`AdamState`]), so no method
//! takes a long positional list. Parameter gradients accumulate (`+=`) into the flat gradient
//! buffer of a [`ParamGrads`] at the layer's spans; activation gradients are assigned, or
//! accumulated where [`InputGrad::Add`] says the destination is a residual stream. Buffers may be
//! longer than an operation needs; kernels read and write only the leading elements the
//! dimensions give. Every call returns a `Result` because a device can fail (launch errors, out
//! of memory); the CPU fails only on operands too short for their dimensions, which would be a
//! bug in the caller.
//!
//! Randomness never lives in a backend: masking runs on the host, and [`Backend::gumbel_argmax`]
//! takes the position of the trainer's host generator ([`KeystreamAt`]: key, stream, word) and
//! reads the uniforms of that keystream in a fixed order, so every backend samples the same
//! tokens from the same logits; the caller moves its generator on ([`keystream::take`]).

mod buf;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_stub.rs"]
pub mod cuda;
pub mod keystream;
mod options;

pub use crate::layers::Activation;
pub use buf::{Buf, Elem, Mem};
pub use keystream::{Dropout, KeystreamAt};
pub use options::{BackendOptions, F32Path, Resolved, Simd};

use crate::error::{Error, Result};
use crate::layers::int8::QuantizedWeights;
use crate::layers::{Embeddings, LayerNorm, Linear, PostLn};
use crate::params::Span;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Where a handle runs its kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The CPU reference backend.
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl FromStr for Device {
    type Err = Error;

    /// `"cpu"`, `"cuda"` (device 0) or `"cuda:N"`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(Device::Cuda)
                .ok_or_else(|| Error::arg(format!("device {other:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""))),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl serde::Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: Error| serde::de::Error::custom(e.to_string()))
    }
}

/// A kind of device, for [`device_count`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// The host CPU (always one).
    Cpu,
    /// CUDA GPUs.
    Cuda,
}

/// How many devices of `kind` this process can use: 1 for the CPU; for CUDA the driver's count,
/// or [`Error::Cuda`] when the library was built without the `cuda` feature or the driver cannot
/// be loaded.
pub fn device_count(kind: DeviceKind) -> Result<usize> {
    match kind {
        DeviceKind::Cpu => Ok(1),
        DeviceKind::Cuda => cuda::device_count(),
    }
}

/// The most host worker threads an options object may ask for.
///
/// cbindgen:ignore
pub const MAX_THREADS: usize = 1024;

/// Checks a `threads` option (0: one per core) against [`MAX_THREADS`].
pub fn check_threads(threads: usize) -> Result<()> {
    if threads > MAX_THREADS {
        return Err(Error::arg(format!("options: threads = {threads} is out of range (at most {MAX_THREADS})")));
    }
    Ok(())
}

/// Opens a backend on `device` with `opts` (resolved against their environment overrides, see
/// [`BackendOptions::resolve`]). `threads` sizes the CPU backend's worker pool (0: one per core;
/// results do not depend on it); `simd` and `f32_kernel` apply to the CPU, `tf32` to CUDA. A
/// device that is not compiled in or not present is [`Error::Cuda`] with a message saying which.
pub fn open(device: Device, opts: &BackendOptions) -> Result<Arc<dyn Backend>> {
    let o = opts.resolve()?;
    match device {
        Device::Cpu => Ok(Arc::new(cpu::CpuBackend::new(&o)?)),
        Device::Cuda(ordinal) => cuda::open(ordinal, o.tf32),
    }
}

/// The error of a call in a child process on a session, trainer or fine-tuner made before
/// `fork()` (the fork rule, docs/ROBUSTNESS.md).
pub(crate) const FORKED: &str =
    "this session, trainer or fine-tuner was created in another process (before fork()) and \
                          is unusable in this one: its worker threads exist only in the parent; create a new one \
                          here";

/// Runs `f` inside `be` (on the CPU: on its worker pool, where the kernels split their work) and
/// returns its result.
pub fn run<R: Send>(be: &dyn Backend, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    // After fork() the child has none of the parent's worker threads: a job handed to the pool
    // would wait for them forever.
    if be.owner_process() != std::process::id() {
        return Err(Error::InvalidHandle(FORKED));
    }
    let mut f = Some(f);
    let mut out = None;
    be.enter(&mut || {
        if let Some(f) = f.take() {
            out = Some(f());
        }
    });
    out.unwrap_or_else(|| Err(Error::Internal(format!("the {} backend did not run the call", be.device()))))
}

/// The first `len` elements of `buf` on the host: borrowed when the buffer is host memory (the
/// CPU backend: no copy), else downloaded.
pub fn to_host<'a>(be: &dyn Backend, buf: &'a Buf, len: usize) -> Result<std::borrow::Cow<'a, [f32]>> {
    if let Some(h) = buf.host() {
        return h
            .get(..len)
            .map(std::borrow::Cow::Borrowed)
            .ok_or_else(|| Error::Internal(format!("buffer holds {} elements, {len} were asked for", h.len())));
    }
    let mut v = vec![0.0; len];
    be.download(buf.mem(), &mut v)?;
    Ok(std::borrow::Cow::Owned(v))
}

/// The parameters a forward pass reads.
#[derive(Clone, Copy)]
pub struct Weights<'a> {
    /// Every tensor, in the flat layout of the model's [`crate::params::ParamStore`].
    pub flat: Mem<'a>,
    /// The backend's inference form of some Linear weights (see [`Backend::prepare`]); `None`
    /// when training, where the weights change every step.
    pub prepared: Option<&'a Prepared>,
    /// An int8 model's: its inference runs attention's products in int8 too where the backend
    /// can ([`AttentionShape::int8`]).
    pub int8: bool,
}

impl<'a> Weights<'a> {
    /// The flat parameters alone.
    pub fn flat(flat: Mem<'a>) -> Self {
        Weights { flat, prepared: None, int8: false }
    }
}

/// What [`Backend::prepare`] turns into a backend's inference form: one model's weights, described
/// by the model without the backend knowing the model.
pub struct InferenceWeights<'a> {
    /// Every tensor, in the flat layout of the model's [`crate::params::ParamStore`].
    pub flat: &'a [f32],
    /// The Linear layers inference runs (the encoders' and the heads'; with `int8`, the
    /// generator's output projection too), in offset order: the backend may keep these weights
    /// in the layout its matrix kernel reads fastest.
    pub linears: Vec<Linear>,
    /// An int8 model's int8 weights (their f32 spans in `flat` are zero and never read).
    pub int8: Option<Arc<QuantizedWeights>>,
}

/// A backend's inference-time form of one model's weights, built once per model and device and
/// shared by the model's sessions there (see `Model::prepared`). Opaque: each backend keeps its
/// own type inside and only that backend reads it.
pub struct Prepared {
    device: Device,
    inner: Box<dyn std::any::Any + Send + Sync>,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prepared({})", self.device)
    }
}

impl Prepared {
    /// Wraps a backend's own form for `device`.
    pub fn new<T: std::any::Any + Send + Sync>(device: Device, inner: T) -> Self {
        Prepared { device, inner: Box::new(inner) }
    }

    /// The device it was built for.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The backend's own form, when it is a `T` (else a clear error: weights prepared for another
    /// device).
    pub fn get<T: std::any::Any>(&self) -> Result<&T> {
        self.inner.downcast_ref::<T>().ok_or_else(|| {
            Error::arg(format!("weights prepared for {} were passed to another kind of backend", self.device))
        })
    }
}

/// What a backward does with an input's gradient.
pub enum InputGrad<'a> {
    /// Overwrite the buffer.
    Set(&'a mut Buf),
    /// Add to the buffer (a residual stream that already holds a gradient).
    Add(&'a mut Buf),
}

/// A weighted loss and how many rows (or tokens) were predicted right.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossSum {
    /// The loss.
    pub loss: f32,
    /// Rows whose prediction matched the target.
    pub correct: usize,
}

/// One tensor's AdamW settings for [`Backend::adamw`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamTensor {
    /// Where the tensor sits in the flat parameter, gradient and moment buffers.
    pub span: Span,
    /// Its learning rate this step (schedule × layer-wise scale).
    pub lr: f32,
    /// Its decoupled weight decay (0 for LayerNorm and biases).
    pub weight_decay: f32,
}

/// AdamW constants of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// β1.
    pub beta1: f32,
    /// β2.
    pub beta2: f32,
    /// ε, added to √v̂.
    pub epsilon: f32,
    /// Bias-correction divisor of the first moment (1 without correction).
    pub c1: f32,
    /// Bias-correction divisor of the second moment.
    pub c2: f32,
}

/// The original code's denominator of a weighted mean over `count` rows or tokens:
/// `count + 1e-6` (a step with nothing masked divides by 1e-6 instead of 0).
pub fn mean_denominator(count: usize) -> f64 {
    count as f64 + 1e-6
}

/// How a loss is reduced and its gradient scaled: `Σ loss / denom`, gradient `scale·∂/denom`.
/// `denom` is the step's [`mean_denominator`] over every micro-batch and rank, so partial sums
/// add up to the mean of the whole step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScale {
    /// The loss's weight in the step's total.
    pub scale: f32,
    /// The divisor of the sum.
    pub denom: f64,
}

/// The flat weights a backward reads and the flat gradient buffer (same layout) it accumulates
/// parameter gradients into.
pub struct ParamGrads<'a> {
    /// Every weight, in the layout of the model's [`crate::params::ParamStore`].
    pub w: Mem<'a>,
    /// The gradients, same layout.
    pub grads: &'a mut Buf,
}

/// A LayerNorm's per-row statistics `[N]` each: written by the forward, read by the backward
/// (device buffers; slices in the CPU kernels).
#[derive(Clone, Copy, Default, Debug)]
pub struct LnStats<B = Buf> {
    /// Row means.
    pub mean: B,
    /// Row 1/std.
    pub rstd: B,
}

/// A LayerNorm's input and the statistics its forward kept: what the backward reads.
#[derive(Clone, Copy)]
pub struct LnSaved<'a> {
    /// The input `[N, C]`.
    pub x: &'a Buf,
    /// Its statistics.
    pub stats: &'a LnStats,
}

/// The outputs of BERT's fused post-LN block: `sum = x·Wᵀ + b + residual`, `out = LayerNorm(sum)`,
/// with `sum` and its statistics kept for the backward.
pub struct ResidualLn<'a> {
    /// The LayerNorm's input `[N, H]`.
    pub sum: &'a mut Buf,
    /// The block's output `[N, H]`.
    pub out: &'a mut Buf,
    /// The LayerNorm's statistics.
    pub stats: &'a mut LnStats,
}

/// A Linear's pre-activation and its activation `act = f(pre)`, both `[N, ·]`: `&mut Buf`s as
/// [`Backend::linear_act`]'s outputs, `&Buf`s as [`Backend::linear_act_backward`]'s input.
pub struct Activated<B> {
    /// Before the activation.
    pub pre: B,
    /// After it.
    pub act: B,
    /// The activation.
    pub f: Activation,
}

/// BERT's feed-forward block: the intermediate Linear (its activation is the scratch's `f`) and
/// the output Linear + residual + LayerNorm.
#[derive(Clone, Copy)]
pub struct FeedForward<'a> {
    /// `[I, H]`.
    pub inter: &'a Linear,
    /// `[H, I]`, then the LayerNorm.
    pub out: &'a PostLn,
}

/// [`Backend::self_attention`]'s default: the two calls one after the other.
pub fn self_attention_unfused<B: Backend + ?Sized>(
    be: &B,
    (ctx, probs): (&mut Buf, &mut Buf),
    qkv: Qkv<&mut Buf>,
    x: &Buf,
    w: &Weights,
    (lin, mask_add): (Qkv<&Linear>, &Buf),
    shape: AttentionShape,
) -> Result<()> {
    let (len, n) = (shape.qkv_len(), shape.b * shape.t);
    let Qkv { q, k, v } = qkv;
    for buf in [&mut *q, &mut *k, &mut *v] {
        be.ensure(buf, len)?;
    }
    be.linear_qkv(Qkv { q: &mut *q, k: &mut *k, v: &mut *v }, x, w, lin, n)?;
    be.attention(ctx, probs, Qkv { q, k, v }, mask_add, shape)
}

/// [`Backend::feed_forward`]'s default: the two calls one after the other.
pub fn feed_forward_unfused<B: Backend + ?Sized>(
    be: &B,
    y: ResidualLn,
    x: &Buf,
    w: &Weights,
    block: FeedForward,
    scratch: Activated<&mut Buf>,
    n: usize,
) -> Result<()> {
    let (act, len) = (scratch.act, n * block.inter.dout);
    be.ensure(&mut *scratch.pre, len)?;
    be.ensure(act, len)?;
    be.linear_act(Activated { pre: scratch.pre, act: &mut *act, f: scratch.f }, x, w, block.inter, n)?;
    be.linear_residual_layer_norm(y, act, x, w, block.out, n)
}

/// Queries, keys and values `[N, H]` (head h in columns h·HD..(h+1)·HD), or their gradients.
#[derive(Clone, Copy)]
pub struct Qkv<B> {
    /// Queries.
    pub q: B,
    /// Keys.
    pub k: B,
    /// Values.
    pub v: B,
}

/// `groups` groups of `rows` consecutive rows of `width` (a batch's sequences of tokens), and the
/// 0/1 mask `[groups·rows]` of the rows that count (`None`: all), for the mean pooling ops.
#[derive(Clone, Copy, Debug)]
pub struct RowGroups<'a> {
    /// The attention mask on the device.
    pub mask: Option<&'a Buf<i32>>,
    /// B.
    pub groups: usize,
    /// T.
    pub rows: usize,
    /// H.
    pub width: usize,
}

impl RowGroups<'_> {
    /// Rows in all: B·T.
    pub fn total_rows(&self) -> usize {
        self.groups * self.rows
    }
}

/// The dimensions of multi-head attention: B rows of T tokens, NH heads of width HD, and the
/// dropout on its probabilities when training with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// B.
    pub b: usize,
    /// T.
    pub t: usize,
    /// NH.
    pub nh: usize,
    /// HD.
    pub hd: usize,
    /// Dropout on the probabilities `[B, NH, T, T]` (element i of them at mask word i): the
    /// context uses the dropped probabilities, while `probs` keeps the softmax itself, which the
    /// backward needs; the backward re-derives the mask.
    pub dropout: Option<Dropout>,
    /// Whether the forward writes the probabilities into `probs` and the backward reads them
    /// there (the default). False, only for a backend that [`Backend::attention_recomputes`]:
    /// `probs` and the backward's `scratch` go unused (they may be empty), and the backward
    /// recomputes each head's probabilities from Q, K and the key mask, bit for bit.
    pub keep_probs: bool,
    /// An int8 model's inference (no dropout, no probabilities kept): the backend may run
    /// `Q·Kᵀ` and `P·V` as int8 products (the CPU does, with its int8 kernel; others ignore it).
    pub int8: bool,
}

/// What attention's backward reads of its forward besides Q, K and V.
#[derive(Clone, Copy)]
pub struct AttentionSaved<'a> {
    /// The probabilities `[B, NH, T, T]` the forward kept (unread without `keep_probs`).
    pub probs: &'a Buf,
    /// The forward's additive key mask `[N]`.
    pub mask_add: &'a Buf,
}

impl AttentionShape {
    /// The dimensions, without dropout.
    pub fn new(b: usize, t: usize, nh: usize, hd: usize) -> Self {
        AttentionShape { b, t, nh, hd, dropout: None, keep_probs: true, int8: false }
    }

    /// Elements of Q, K, V or the context: B·T·NH·HD.
    pub fn qkv_len(&self) -> usize {
        self.b * self.t * self.nh * self.hd
    }

    /// Elements of the probabilities: B·NH·T·T.
    pub fn probs_len(&self) -> usize {
        self.b * self.nh * self.t * self.t
    }
}

/// A batch's token ids: `[B, T]` ids and optional token types (none = type 0), on the device
/// (`I` = [`Buf<i32>`]) or, in the CPU kernels, as slices.
pub struct Tokens<'a, I: ?Sized = Buf<i32>> {
    /// Input ids.
    pub ids: &'a I,
    /// Token types.
    pub types: Option<&'a I>,
    /// B.
    pub b: usize,
    /// T.
    pub t: usize,
}

impl<I: ?Sized> Clone for Tokens<'_, I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I: ?Sized> Copy for Tokens<'_, I> {}

/// The buffers AdamW updates in place, each in the flat parameter layout.
pub struct AdamState<'a> {
    /// The weights.
    pub params: &'a mut Buf,
    /// First moments.
    pub m: &'a mut Buf,
    /// Second moments.
    pub v: &'a mut Buf,
}

/// The kernel set of the model, on one device. Shape letters as in the crate docs: B batch,
/// T sequence, N = B·T rows, H hidden, NH heads, HD head width, V vocabulary, M gathered rows.
pub trait Backend: Send + Sync {
    // === Identity and execution ===
    /// The device this backend runs on.
    fn device(&self) -> Device;
    /// A one-line description for logs ("cpu: avx512, 2 threads").
    fn describe(&self) -> String;
    /// Worker threads the backend uses on the host.
    fn threads(&self) -> usize;
    /// Runs `f` with the backend current: the CPU runs it on its pool (kernels split work over
    /// the pool they run in); a GPU binds its context to the thread. Use [`run`] to get a result.
    fn enter(&self, f: &mut (dyn FnMut() + Send));
    /// The id of the process that opened the backend ([`run`] refuses calls from any other,
    /// i.e. from a child after `fork()`). By default the current process: nothing to refuse.
    fn owner_process(&self) -> u32 {
        std::process::id()
    }

    // === Memory ===
    /// Makes `buf` hold at least `len` f32s on this device (contents unspecified when it grows).
    fn ensure(&self, buf: &mut Buf, len: usize) -> Result<()>;
    /// [`Self::ensure`] for an id buffer.
    fn ensure_ids(&self, buf: &mut Buf<i32>, len: usize) -> Result<()>;
    /// Takes host memory over as a buffer of this device (the CPU keeps it without a copy).
    fn import(&self, host: Vec<f32>) -> Result<Buf>;
    /// Copies `src` into the first `src.len()` elements of `dst`, growing it as needed.
    fn upload(&self, dst: &mut Buf, src: &[f32]) -> Result<()>;
    /// [`Self::upload`] for ids.
    fn upload_ids(&self, dst: &mut Buf<i32>, src: &[i32]) -> Result<()>;
    /// Copies the first `dst.len()` elements of `src` to the host.
    fn download(&self, src: Mem, dst: &mut [f32]) -> Result<()>;
    /// Sets the first `len` elements to `value`.
    fn fill(&self, buf: &mut Buf, len: usize, value: f32) -> Result<()>;
    /// `dst[..len] = src[..len]`.
    fn copy(&self, dst: &mut Buf, src: &Buf, len: usize) -> Result<()>;
    /// The inference form of a model's weights on this device (built once per model and device by
    /// `Model::prepared`).
    fn prepare(&self, weights: &InferenceWeights) -> Result<Prepared>;
    /// The flat parameters a forward pass with `prepared` reads: by default the model's host
    /// memory `host`; a device that cannot read host memory returns the copy it prepared.
    fn flat_weights<'a>(&self, prepared: &'a Prepared, host: &'a [f32]) -> Result<Mem<'a>> {
        let _ = prepared;
        Ok(Mem::Host(host))
    }

    // === Linear layers: y = x·Wᵀ + b with W stored [out, in] (PyTorch) ===
    /// `y[n, out] = x[n, in]·Wᵀ + b`.
    fn linear(&self, y: &mut Buf, x: &Buf, w: &Weights, lin: &Linear, n: usize) -> Result<()>;
    /// Attention's query, key and value of one input: `y.q = x·W_qᵀ + b_q`, likewise `k`, `v`.
    /// Three [`Backend::linear`]s by default; a backend may share work between them (the CPU's
    /// prepacked inference weights quantize `x` once and use one parallel pass), with the same
    /// bits as the three.
    fn linear_qkv(&self, y: Qkv<&mut Buf>, x: &Buf, w: &Weights, lin: Qkv<&Linear>, n: usize) -> Result<()> {
        self.linear(y.q, x, w, lin.q, n)?;
        self.linear(y.k, x, w, lin.k, n)?;
        self.linear(y.v, x, w, lin.v, n)
    }
    /// `y.pre = x·Wᵀ + b`, `y.act = y.f(y.pre)` (both kept for the backward).
    fn linear_act(&self, y: Activated<&mut Buf>, x: &Buf, w: &Weights, lin: &Linear, n: usize) -> Result<()>;
    /// BERT's post-LN block output: `y.sum = x·Wᵀ + b + residual`, `y.out = LayerNorm(y.sum)`,
    /// keeping `y.sum` and `y.stats` for the backward.
    fn linear_residual_layer_norm(
        &self,
        y: ResidualLn,
        x: &Buf,
        residual: &Buf,
        w: &Weights,
        block: &PostLn,
        n: usize,
    ) -> Result<()>;
    /// BERT's feed-forward block in inference (no dropout, nothing kept for a backward):
    /// `y.out = LayerNorm(f(x·W₁ᵀ + b₁)·W₂ᵀ + b₂ + x)`, `y.sum` the LayerNorm's input. By default
    /// [`Backend::linear_act`] into `scratch` (grown to `[N, I]` each), then
    /// [`Backend::linear_residual_layer_norm`]; a backend may instead run both products per block
    /// of rows while the block's `[rows, I]` stays in cache (the CPU does for prepacked weights:
    /// the same bits, `scratch` unwritten).
    fn feed_forward(
        &self,
        y: ResidualLn,
        x: &Buf,
        w: &Weights,
        block: FeedForward,
        scratch: Activated<&mut Buf>,
        n: usize,
    ) -> Result<()> {
        feed_forward_unfused(self, y, x, w, block, scratch, n)
    }
    /// Linear backward: `dW += dyᵀ·x`, `db += Σ dy` into `p`; `dx = dy·W` per `dx`.
    fn linear_backward(
        &self,
        dx: InputGrad,
        p: &mut ParamGrads,
        dy: &Buf,
        x: &Buf,
        lin: &Linear,
        n: usize,
    ) -> Result<()>;
    /// Backward of a Linear whose input was `x.act = x.f(x.pre)`, through `x.f` too:
    /// `d_pre = (dy·W) ⊙ f′(pre)` (assigned), `dW += dyᵀ·act`, `db += Σ dy`.
    fn linear_act_backward(
        &self,
        d_pre: &mut Buf,
        p: &mut ParamGrads,
        dy: &Buf,
        x: Activated<&Buf>,
        lin: &Linear,
        n: usize,
    ) -> Result<()>;

    // === Elementwise ===
    /// `out[i] = f(x[i])` for `len` elements.
    fn activation(&self, out: &mut Buf, x: &Buf, len: usize, f: Activation) -> Result<()>;
    /// `dx[i] = dout[i]·f′(x[i])` (assigned).
    fn activation_backward(&self, dx: &mut Buf, dout: &Buf, x: &Buf, len: usize, f: Activation) -> Result<()>;

    // === LayerNorm over rows of `ln.dim` ===
    /// `out = (x − mean)·rstd·γ + β` per row; writes `stats` (N each).
    fn layer_norm(&self, out: &mut Buf, stats: &mut LnStats, x: &Buf, w: Mem, ln: &LayerNorm, n: usize) -> Result<()>;
    /// LayerNorm backward: `dx` assigned, `dγ`, `dβ` accumulated into `p`.
    fn layer_norm_backward(
        &self,
        dx: &mut Buf,
        p: &mut ParamGrads,
        dout: &Buf,
        x: LnSaved,
        ln: &LayerNorm,
        n: usize,
    ) -> Result<()>;

    // === Attention: Q, K, V, context [N, H], head h in columns h·HD..(h+1)·HD ===
    /// The additive key mask HF builds: 0 where `mask` is 1 (or absent), `f32::MIN` where 0.
    fn key_mask(&self, mask_add: &mut Buf, mask: Option<&Buf<i32>>, n: usize) -> Result<()>;
    /// Whether this backend's attention backward can recompute the probabilities instead of
    /// reading kept ones (see [`AttentionShape::keep_probs`]): a training forward then keeps no
    /// `[B, NH, T, T]` per layer. Off by default.
    fn attention_recomputes(&self) -> bool {
        false
    }
    /// `ctx = softmax(Q·Kᵀ/√HD + mask)·V` per batch row and head; keeps `probs` `[B, NH, T, T]`
    /// when `shape.keep_probs`.
    fn attention(
        &self,
        ctx: &mut Buf,
        probs: &mut Buf,
        x: Qkv<&Buf>,
        mask_add: &Buf,
        shape: AttentionShape,
    ) -> Result<()>;
    /// Self-attention of one layer input: `x·W_{q,k,v}ᵀ + b` into `qkv` (grown to `[N, H]`
    /// each), then [`Backend::attention`] into `ctx` (and `probs` as it says). A backend may
    /// instead run both per batch row while its `[T, H]` queries, keys and values stay in cache
    /// (the CPU does for an int8 model's inference with enough batch rows to share out: the same
    /// bits, `qkv` unwritten).
    fn self_attention(
        &self,
        (ctx, probs): (&mut Buf, &mut Buf),
        qkv: Qkv<&mut Buf>,
        x: &Buf,
        w: &Weights,
        (lin, mask_add): (Qkv<&Linear>, &Buf),
        shape: AttentionShape,
    ) -> Result<()> {
        self_attention_unfused(self, (ctx, probs), qkv, x, w, (lin, mask_add), shape)
    }
    /// Attention backward: assigns `dx` from `dctx`; `scratch` holds `[B, NH, T, T]` (when
    /// `shape.keep_probs`).
    fn attention_backward(
        &self,
        dx: Qkv<&mut Buf>,
        scratch: &mut Buf,
        dctx: &Buf,
        saved: AttentionSaved,
        x: Qkv<&Buf>,
        shape: AttentionShape,
    ) -> Result<()>;

    // === Embeddings ===
    /// `out[b·T+t] = word[ids] + type[types] + pos[t]` (HF's summation order); no types = 0.
    fn embedding(&self, out: &mut Buf, x: Tokens, w: &Weights, emb: &Embeddings) -> Result<()>;
    /// Scatter-adds `dout` into the three tables' gradients (none into the `[PAD]` row).
    fn embedding_backward(&self, grads: &mut Buf, dout: &Buf, x: Tokens, emb: &Embeddings) -> Result<()>;

    // === Rows (the masked positions, the [CLS] rows) ===
    /// `dst[i] = src[rows[i]]` for `m` rows of `width`.
    fn gather_rows(&self, dst: &mut Buf, src: &Buf, rows: &Buf<i32>, m: usize, width: usize) -> Result<()>;
    /// `dst[rows[i]] (+)= src[i]` for `m` distinct rows of `width` (`accumulate` adds).
    fn scatter_rows(
        &self,
        dst: &mut Buf,
        src: &Buf,
        rows: &Buf<i32>,
        m: usize,
        width: usize,
        accumulate: bool,
    ) -> Result<()>;

    /// Masked mean of each group of rows (the classifier's mean pooling):
    /// `dst[g] = Σ_r m[g·T+r]·src[g·T+r] / Σ_r m[g·T+r]`, summed in row order; a group without a
    /// counted row gives zeros.
    fn mean_rows(&self, dst: &mut Buf, src: &Buf, g: RowGroups) -> Result<()>;
    /// The backward of [`Backend::mean_rows`]: `dsrc[g·T+r] = m[g·T+r]·ddst[g] / Σ_r m[g·T+r]`
    /// (assigned, uncounted rows 0).
    fn mean_rows_backward(&self, dsrc: &mut Buf, ddst: &Buf, g: RowGroups) -> Result<()>;

    // === Losses and sampling ===
    /// Softmax cross-entropy of `m` rows of `v` logits against `targets`, `Σ CE / k.denom`;
    /// overwrites the logits with `k.scale·(softmax − onehot)/k.denom` (`k.denom`: the step's
    /// [`mean_denominator`] of the masked rows).
    fn cross_entropy(&self, logits: &mut Buf, targets: &Buf<i32>, m: usize, v: usize, k: LossScale) -> Result<LossSum>;
    /// Weighted sigmoid BCE of `n` logits against 0/1 `labels` with 0/1 `weights`,
    /// `Σ w·bce / k.denom`; writes `dlogits = k.scale·w·(σ(x) − y)/k.denom` (`k.denom`: the
    /// step's [`mean_denominator`] of the real tokens).
    fn binary_cross_entropy(
        &self,
        dlogits: &mut Buf,
        logits: &Buf,
        labels: &Buf,
        weights: &Buf,
        n: usize,
        k: LossScale,
    ) -> Result<LossSum>;
    /// Gumbel-max sampling of one id per row from softmax(logits / τ) for `m` rows of `v`:
    /// argmax(logits/τ + g), g = −log(−log(u + 1e−9) + 1e−9), the uniforms `u` read row by row,
    /// column by column from the ChaCha8 keystream at `at` (m·v words from there; the caller
    /// moves its generator past them with [`keystream::take`]), so every backend draws the same ids.
    fn gumbel_argmax(
        &self,
        out: &mut Vec<i32>,
        logits: &Buf,
        m: usize,
        v: usize,
        temperature: f32,
        at: KeystreamAt,
    ) -> Result<()>;

    // === Optimizer ===
    /// Σ x² over the first `len` elements, accumulated in f64 in a fixed order.
    fn sum_squares(&self, buf: &Buf, len: usize) -> Result<f64>;
    /// The largest |x| over the first `len` elements (0 when `len` is 0), exact whatever the
    /// order; NaN is ignored, so call it on finite values.
    fn max_abs(&self, buf: &Buf, len: usize) -> Result<f32>;
    /// `buf[..len] *= s`.
    fn scale(&self, buf: &mut Buf, len: usize, s: f32) -> Result<()>;
    /// `dst[..len] += src[..len]`, element by element (micro-batch gradients into the step's).
    fn add(&self, dst: &mut Buf, src: &Buf, len: usize) -> Result<()>;
    /// Within one buffer, element by element over `dst.len`: `buf[dst] = buf[a] + buf[b]`, a copy
    /// of `buf[a]` (`b` None) or zeros (both None), the sources `dst.len` long and apart from
    /// `dst` ([`check_spans`]). Gradient-disentangled embedding sharing moves a table's gradient
    /// to its delta with it, and refolds the table from the generator's and the delta.
    fn combine_spans(&self, buf: &mut Buf, dst: Span, a: Option<Span>, b: Option<Span>) -> Result<()>;
    /// Inverted dropout in place over `len` elements: `x[i] = keep(i) ? x[i]/(1 − p) : 0`, the
    /// mask of [`Dropout`] (element i at word `mask.at.word_pos + i`). Its own backward: the
    /// same call on the output's gradient.
    fn dropout(&self, x: &mut Buf, len: usize, mask: Dropout) -> Result<()>;
    /// One AdamW update of every tensor listed, each with its own learning rate and decay:
    /// `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`, `p -= lr·((m/c1)/(√(v/c2) + ε) + wd·p)`.
    /// With `check`, all or nothing: when any new weight or moment would be NaN or infinite,
    /// every buffer is left exactly as it was and the result is `Ok(Some(i))`, `i` the index
    /// into `tensors` of the first tensor at fault; `Ok(None)` when the update was committed.
    /// Without `check` the caller has proved the result finite, and the update is one pass.
    fn adamw(
        &self,
        state: AdamState,
        grads: &Buf,
        tensors: &[AdamTensor],
        step: &AdamStep,
        check: bool,
    ) -> Result<Option<usize>>;
}

/// Checks the operands of [`Backend::combine_spans`] against a buffer of `len`: every span
/// inside it, the sources as long as `dst` and apart from it, `b` only with `a`.
pub fn check_spans(len: usize, dst: Span, a: Option<Span>, b: Option<Span>) -> Result<()> {
    let end = |s: Span| s.off.checked_add(s.len).filter(|&e| e <= len);
    if b.is_some() && a.is_none() {
        return Err(Error::Internal("combine_spans: a second source without a first".into()));
    }
    let dst_end = end(dst).ok_or_else(|| Error::Internal(format!("combine_spans: {dst:?} outside {len}")))?;
    for s in [a, b].into_iter().flatten() {
        let s_end = end(s).ok_or_else(|| Error::Internal(format!("combine_spans: {s:?} outside {len}")))?;
        if s.len != dst.len || (s.off < dst_end && dst.off < s_end && dst.len > 0) {
            return Err(Error::Internal(format!("combine_spans: source {s:?} does not fit destination {dst:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            assert!(bad.parse::<Device>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
        let j = serde_json::to_string(&Device::Cuda(2)).unwrap();
        assert_eq!(j, "\"cuda:2\"");
        assert_eq!(serde_json::from_str::<Device>(&j).unwrap(), Device::Cuda(2));
    }

    #[test]
    fn run_returns_the_result_inside_the_pool() {
        let be = open(Device::Cpu, &BackendOptions::threads(2)).unwrap();
        let threads = run(&*be, || Ok(rayon::current_num_threads())).unwrap();
        assert_eq!(threads, 2);
    }
}
