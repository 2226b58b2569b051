//! The CPU backend: stateless kernels over flat `f32` slices (each op's forward beside its
//! backward, one file per op), and [`CpuBackend`], which implements the seam by checking each
//! operand and calling them. Work is split over the backend's [`pool::Pool`] (the process-wide
//! shared pool by default, a pool of its own, or inline on the calling thread); every split keeps
//! what one row or column computes unchanged and every cross-row reduction in a fixed order, so
//! results are bit-identical for any thread count.
//!
//! Conventions (after llm.c): outputs first, then inputs, then dimensions. Parameter gradients
//! accumulate (`+=`); activation gradients are assigned unless a flag says the destination is a
//! residual stream that already holds a gradient.

pub mod activation;
pub mod attention;
pub mod dropout;
pub mod embedding;
/// cbindgen:ignore
pub mod int8;
pub mod kernels;
pub mod layer_norm;
pub mod loss;
pub mod matmul;
pub mod optim;
/// cbindgen:ignore
pub mod packed;
pub mod par;
pub mod pool;
pub mod rows;
pub mod sample;
pub mod simd;

use super::{
    Activated, Activation, AdamState, AdamStep, AdamTensor, AttentionSaved, AttentionShape, Backend, Buf, Device,
    Dropout, FeedForward, InferenceWeights, InputGrad, KeystreamAt, LnSaved, LnStats, LossScale, LossSum, Mem,
    ParamGrads, Prepared, Qkv, ResidualLn, RowGroups, Tokens, Weights,
};
use crate::error::{Error, Result};
use crate::layers::int8::QuantizedWeights;
use crate::layers::{Embeddings, LayerNorm, Linear, PostLn};
use crate::params::Span;
use matmul::Weight;

/// The CPU backend: the kernels of this module on its [`pool::Pool`]. The kernel cap and the C
/// ABI state travel with each call ([`pool::Ctx`]), so backends with different caps share a pool.
pub struct CpuBackend {
    pool: pool::Pool,
    /// The process whose threads the pool has (see `Backend::owner_process`).
    pid: u32,
    /// This backend's kernel table (its calls run its elementwise variant).
    kernels: kernels::CpuKernels,
    /// Inference's f32 matrix path.
    f32_path: super::F32Path,
}

impl CpuBackend {
    /// A backend on the pool `o.threads` and `o.own_pool` select (see [`pool::Pool::open`]) with
    /// the best kernels under `o.simd`.
    pub fn new(o: &super::Resolved) -> Result<Self> {
        Ok(CpuBackend {
            pool: pool::Pool::open(o.threads, o.own_pool)?,
            pid: std::process::id(),
            kernels: kernels::CpuKernels::best().with_cap(o.simd),
            f32_path: o.f32_kernel,
        })
    }

    /// Where this backend's work runs: "inline", "shared" or "own".
    pub fn pool_kind(&self) -> &'static str {
        self.pool.kind()
    }
}

// === Operand checks: a wrong-device or too-short buffer is an error, never an out-of-bounds
// access inside a kernel. ===

fn wrong_device(what: &str) -> Error {
    Error::Internal(format!("{what}: a buffer of another device was passed to the CPU backend"))
}

fn too_short(what: &str, len: usize, need: usize) -> Error {
    Error::Internal(format!("{what}: buffer holds {len} elements, the call needs {need}"))
}

/// The mask of the mean pooling ops, on the host.
fn group_mask<'a>(g: &RowGroups<'a>) -> Result<Option<&'a [i32]>> {
    g.mask.map(|m| rd(m, g.total_rows(), "attention mask")).transpose()
}

fn rd<'a, T: super::Elem>(b: &'a Buf<T>, need: usize, what: &str) -> Result<&'a [T]> {
    let s = b.host().ok_or_else(|| wrong_device(what))?;
    s.get(..need).ok_or_else(|| too_short(what, s.len(), need))
}

fn wr<'a, T: super::Elem>(b: &'a mut Buf<T>, need: usize, what: &str) -> Result<&'a mut [T]> {
    let s = b.host_mut().ok_or_else(|| wrong_device(what))?;
    let len = s.len();
    s.get_mut(..need).ok_or_else(|| too_short(what, len, need))
}

fn mem<'a>(m: Mem<'a>, what: &str) -> Result<&'a [f32]> {
    m.host().ok_or_else(|| wrong_device(what))
}

fn span<'a>(flat: &'a [f32], s: Span, what: &str) -> Result<&'a [f32]> {
    flat.get(s.off..s.off + s.len).ok_or_else(|| too_short(what, flat.len(), s.off + s.len))
}

/// Disjoint mutable tensors of one flat buffer (the gradients of a layer's parameters).
fn spans_mut<'a, const K: usize>(g: &'a mut [f32], spans: [Span; K]) -> Result<[&'a mut [f32]; K]> {
    let mut order: [usize; K] = std::array::from_fn(|i| i);
    order.sort_by_key(|&i| spans[i].off);
    let mut out: [Option<&'a mut [f32]>; K] = std::array::from_fn(|_| None);
    let (mut rest, mut base) = (g, 0usize);
    for &i in &order {
        let s = spans[i];
        if s.off < base || s.off - base + s.len > rest.len() {
            return Err(Error::Internal(format!(
                "gradient spans overlap or exceed the buffer ({spans:?}, {} elements)",
                base + rest.len()
            )));
        }
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(s.off - base);
        let (mine, tail) = tail.split_at_mut(s.len);
        out[i] = Some(mine);
        (rest, base) = (tail, s.off + s.len);
    }
    Ok(out.map(Option::unwrap_or_default))
}

/// The gradient tensors at `spans` of a backward's flat gradient buffer.
fn grad_spans<'a, const K: usize>(p: &'a mut ParamGrads, spans: [Span; K]) -> Result<[&'a mut [f32]; K]> {
    spans_mut(p.grads.host_mut().ok_or_else(|| wrong_device("grads"))?, spans)
}

/// The matrix kernels' shape of `n` rows through `lin`.
fn shape(lin: &Linear, n: usize) -> matmul::LinearShape {
    matmul::LinearShape { n, din: lin.din, dout: lin.dout }
}

/// A LayerNorm's γ, β and ε as the kernels read them.
fn ln_params<'a>(flat: &'a [f32], ln: &LayerNorm) -> Result<layer_norm::LnParams<'a>> {
    Ok(layer_norm::LnParams {
        g: span(flat, ln.g, "LayerNorm weight")?,
        b: span(flat, ln.b, "LayerNorm bias")?,
        eps: ln.eps,
    })
}

/// A LayerNorm's statistics for `n` rows, to write.
fn stats_mut(s: &mut LnStats, n: usize) -> Result<LnStats<&mut [f32]>> {
    Ok(LnStats { mean: wr(&mut s.mean, n, "mean")?, rstd: wr(&mut s.rstd, n, "rstd")? })
}

/// Q, K and V (or their gradients) on the host, `len` each.
fn qkv(x: Qkv<&Buf>, len: usize) -> Result<Qkv<&[f32]>> {
    Ok(Qkv { q: rd(x.q, len, "q")?, k: rd(x.k, len, "k")?, v: rd(x.v, len, "v")? })
}

/// A batch's ids and types on the host, checked against the tables.
fn token_ids<'a>(x: Tokens<'a>, emb: &Embeddings) -> Result<Tokens<'a, [i32]>> {
    let n = x.b * x.t;
    let ids = rd(x.ids, n, "input ids")?;
    let types = x.types.map(|y| rd(y, n, "token types")).transpose()?;
    let host = Tokens { ids, types, b: x.b, t: x.t };
    embedding::check_ids(host, emb)?;
    Ok(host)
}

/// One Linear weight in the CPU's packed inference form.
enum PackedLinear {
    /// f32 panels.
    F32(packed::PackedF32),
    /// int8 panels.
    I8(int8::PackedI8),
}

/// The CPU backend's [`Prepared`] form: the inference Linear weights by the offset of their span,
/// in the layout one of its matrix kernels reads.
enum CpuPrepared {
    /// Packed panels of our kernels.
    Packed {
        /// (offset, packed weight), sorted by offset.
        entries: Vec<(usize, PackedLinear)>,
        /// An int8 model's weights, row-major (the embedding lookup reads the word table's rows).
        quant: Option<std::sync::Arc<QuantizedWeights>>,
    },
    /// A copy of the flat parameters with each covered Linear weight transposed to `[in, out]`,
    /// for the gemm crate (the `gemm` f32 kernel).
    Transposed {
        /// The copy.
        t: Vec<f32>,
        /// Offsets, sorted, of the Linear weights transposed in `t`.
        covered: Vec<usize>,
    },
}

fn cpu_prepared<'a>(w: &Weights<'a>) -> Result<Option<&'a CpuPrepared>> {
    w.prepared.map(|p| p.get::<CpuPrepared>()).transpose()
}

/// The word embedding table as the lookup reads it: f32, or int8 rows of an int8 model.
fn word_table<'a>(w: &Weights<'a>, flat: &'a [f32], emb: &Embeddings) -> Result<embedding::WordTable<'a>> {
    if let Some(CpuPrepared::Packed { quant: Some(q), .. }) = cpu_prepared(w)? {
        if let Some(q) = q.get(emb.word.off) {
            return Ok(embedding::WordTable::Int8 { q: &q.q, scale: &q.scale });
        }
    }
    Ok(embedding::WordTable::F32(span(flat, emb.word, "word embeddings")?))
}

/// A Linear layer's weight as the matrix kernel reads it, and its bias.
fn linear_weight<'a>(w: &Weights<'a>, lin: &Linear) -> Result<(Weight<'a>, &'a [f32])> {
    let flat = mem(w.flat, "weights")?;
    let bias = span(flat, lin.b, "bias")?;
    match cpu_prepared(w)? {
        Some(CpuPrepared::Packed { entries, .. }) => {
            if let Ok(i) = entries.binary_search_by_key(&lin.w.off, |(o, _)| *o) {
                let pw = match &entries[i].1 {
                    PackedLinear::F32(f) => Weight::Packed(f),
                    PackedLinear::I8(q) => Weight::Int8(q),
                };
                return Ok((pw, bias));
            }
        }
        Some(CpuPrepared::Transposed { t, covered }) if covered.binary_search(&lin.w.off).is_ok() => {
            return Ok((Weight::InOut(span(t, lin.w, "prepared weight")?), bias));
        }
        _ => {}
    }
    Ok((Weight::OutIn(span(flat, lin.w, "weight")?), bias))
}

impl Backend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn describe(&self) -> String {
        format!("cpu: {:?} kernels, {} threads ({} pool)", self.kernels.isa, self.threads(), self.pool.kind())
    }

    fn threads(&self) -> usize {
        self.pool.threads()
    }

    fn owner_process(&self) -> u32 {
        self.pid
    }

    fn enter(&self, f: &mut (dyn FnMut() + Send)) {
        // A C ABI call: a panic on any thread working for it stays off the host's stderr.
        let ctx = pool::Ctx::new(self.kernels.isa, self.pool.threads(), crate::panic::in_call());
        self.pool.run(ctx, f)
    }

    fn ensure(&self, buf: &mut Buf, len: usize) -> Result<()> {
        grow(buf, len)
    }

    fn ensure_ids(&self, buf: &mut Buf<i32>, len: usize) -> Result<()> {
        grow(buf, len)
    }

    fn import(&self, host: Vec<f32>) -> Result<Buf> {
        Ok(Buf::from_host(host))
    }

    fn upload(&self, dst: &mut Buf, src: &[f32]) -> Result<()> {
        grow(dst, src.len())?;
        wr(dst, src.len(), "upload")?.copy_from_slice(src);
        Ok(())
    }

    fn upload_ids(&self, dst: &mut Buf<i32>, src: &[i32]) -> Result<()> {
        grow(dst, src.len())?;
        wr(dst, src.len(), "upload")?.copy_from_slice(src);
        Ok(())
    }

    fn download(&self, src: Mem, dst: &mut [f32]) -> Result<()> {
        let s = mem(src, "download")?;
        dst.copy_from_slice(s.get(..dst.len()).ok_or_else(|| too_short("download", s.len(), dst.len()))?);
        Ok(())
    }

    fn fill(&self, buf: &mut Buf, len: usize, value: f32) -> Result<()> {
        wr(buf, len, "fill")?.fill(value);
        Ok(())
    }

    fn copy(&self, dst: &mut Buf, src: &Buf, len: usize) -> Result<()> {
        wr(dst, len, "copy")?.copy_from_slice(rd(src, len, "copy")?);
        Ok(())
    }

    /// Every Linear weight of inference (the encoders' and the heads') packed once for our
    /// kernels: int8 panels for an int8 model, else f32 panels ([`packed::PackedF32`], which skip
    /// the per-call packing of the gemm crate), each for the kernel of this backend's table.
    /// `f32_kernel: gemm` keeps the older form instead: an `[in, out]` copy of the flat parameters
    /// for the gemm crate (same sums as training's layout, bit for bit).
    fn prepare(&self, weights: &InferenceWeights) -> Result<Prepared> {
        let lins = &weights.linears;
        if let Some(q) = &weights.int8 {
            let mut entries = Vec::with_capacity(lins.len());
            for l in lins {
                let w = q.get(l.w.off).ok_or_else(|| {
                    Error::Internal(format!("int8 model without an int8 weight at offset {}", l.w.off))
                })?;
                entries.push((l.w.off, PackedLinear::I8(int8::PackedI8::with_kernel(w, self.kernels.i8)?)));
            }
            entries.sort_by_key(|(o, _)| *o);
            entries.dedup_by_key(|(o, _)| *o);
            return Ok(Prepared::new(Device::Cpu, CpuPrepared::Packed { entries, quant: Some(q.clone()) }));
        }
        let w = weights.flat;
        if self.f32_path == super::F32Path::Packed {
            let mut entries = Vec::with_capacity(lins.len());
            for l in lins {
                entries.push((
                    l.w.off,
                    PackedLinear::F32(packed::PackedF32::with_kernel(l.w.of(w), l.dout, l.din, self.kernels.f32)?),
                ));
            }
            return Ok(Prepared::new(Device::Cpu, CpuPrepared::Packed { entries, quant: None }));
        }
        let mut t = Vec::new();
        t.try_reserve_exact(w.len()).map_err(|_| oom(w.len()))?;
        t.extend_from_slice(w);
        let mut covered = Vec::new();
        for l in lins {
            matmul::transpose_weight(l.w.of_mut(&mut t), l.w.of(w), l.dout, l.din);
            covered.push(l.w.off);
        }
        covered.sort_unstable();
        Ok(Prepared::new(Device::Cpu, CpuPrepared::Transposed { t, covered }))
    }

    fn linear(&self, y: &mut Buf, x: &Buf, w: &Weights, lin: &Linear, n: usize) -> Result<()> {
        let (wt, b) = linear_weight(w, lin)?;
        let x = rd(x, n * lin.din, "linear x")?;
        matmul::linear_forward(wr(y, n * lin.dout, "linear y")?, x, wt, Some(b), n, lin.din, lin.dout);
        Ok(())
    }

    fn linear_qkv(&self, y: Qkv<&mut Buf>, x: &Buf, w: &Weights, lin: Qkv<&Linear>, n: usize) -> Result<()> {
        let ws = [linear_weight(w, lin.q)?, linear_weight(w, lin.k)?, linear_weight(w, lin.v)?];
        if let [(Weight::Packed(_) | Weight::Int8(_), _), ..] = ws {
            let din = lin.q.din;
            let xs = rd(x, n * din, "linear x")?;
            let mut ys = [wr(y.q, n * lin.q.dout, "q")?, wr(y.k, n * lin.k.dout, "k")?, wr(y.v, n * lin.v.dout, "v")?];
            if matmul::linear_forward_shared(&mut ys, xs, &ws, n, din) {
                return Ok(());
            }
        }
        self.linear(y.q, x, w, lin.q, n)?;
        self.linear(y.k, x, w, lin.k, n)?;
        self.linear(y.v, x, w, lin.v, n)
    }

    fn linear_act(&self, y: Activated<&mut Buf>, x: &Buf, w: &Weights, lin: &Linear, n: usize) -> Result<()> {
        let (wt, b) = linear_weight(w, lin)?;
        let (x, len) = (rd(x, n * lin.din, "linear x")?, n * lin.dout);
        let y = Activated { pre: wr(y.pre, len, "pre")?, act: wr(y.act, len, "act")?, f: y.f };
        matmul::linear_act_forward(y, x, wt, b, shape(lin, n));
        Ok(())
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
        let lin = &block.dense;
        let (wt, b) = linear_weight(w, lin)?;
        let len = n * lin.dout;
        let post = matmul::ResidualNorm {
            residual: rd(residual, len, "residual")?,
            ln: ln_params(mem(w.flat, "weights")?, &block.ln)?,
            out: wr(y.out, len, "out")?,
            stats: stats_mut(y.stats, n)?,
        };
        let x = rd(x, n * lin.din, "linear x")?;
        matmul::linear_residual_layer_norm_forward(wr(y.sum, len, "sum")?, x, wt, b, post, shape(lin, n));
        Ok(())
    }

    fn feed_forward(
        &self,
        y: ResidualLn,
        x: &Buf,
        w: &Weights,
        block: FeedForward,
        scratch: Activated<&mut Buf>,
        n: usize,
    ) -> Result<()> {
        let (inter, out) = (block.inter, &block.out.dense);
        let ((w1, b1), (w2, b2)) = (linear_weight(w, inter)?, linear_weight(w, out)?);
        let (h, i) = (inter.din, inter.dout);
        if !matmul::feed_forward_fits(&w1, &w2, n, (h, i)) {
            return super::feed_forward_unfused(self, y, x, w, block, scratch, n);
        }
        let xs = rd(x, n * h, "feed-forward x")?;
        let post = matmul::ResidualNorm {
            residual: xs,
            ln: ln_params(mem(w.flat, "weights")?, &block.out.ln)?,
            out: wr(y.out, n * h, "out")?,
            stats: stats_mut(y.stats, n)?,
        };
        matmul::feed_forward(wr(y.sum, n * h, "sum")?, xs, (w1, b1, scratch.f), (w2, b2), post, (n, h, i));
        Ok(())
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
        let (din, dout) = (lin.din, lin.dout);
        let wt = span(mem(p.w, "weights")?, lin.w, "weight")?;
        let (dy, x) = (rd(dy, n * dout, "dy")?, rd(x, n * din, "x")?);
        let [dw, db] = grad_spans(p, [lin.w, lin.b])?;
        let (dx, acc) = match dx {
            InputGrad::Set(b) => (wr(b, n * din, "dx")?, false),
            InputGrad::Add(b) => (wr(b, n * din, "dx")?, true),
        };
        matmul::linear_backward(Some(dx), matmul::LinearGrads { dw, db: Some(db) }, dy, x, wt, shape(lin, n), acc);
        Ok(())
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
        let (din, dout) = (lin.din, lin.dout);
        let wt = span(mem(p.w, "weights")?, lin.w, "weight")?;
        let [dw, db] = grad_spans(p, [lin.w, lin.b])?;
        let x = Activated { pre: rd(x.pre, n * din, "pre")?, act: rd(x.act, n * din, "act")?, f: x.f };
        let (d_pre, dy) = (wr(d_pre, n * din, "d_pre")?, rd(dy, n * dout, "dy")?);
        let g = matmul::LinearGrads { dw, db: Some(db) };
        matmul::linear_backward_through_act(d_pre, g, dy, x, wt, shape(lin, n));
        Ok(())
    }

    fn activation(&self, out: &mut Buf, x: &Buf, len: usize, f: Activation) -> Result<()> {
        activation::activation_forward(wr(out, len, "out")?, rd(x, len, "x")?, f);
        Ok(())
    }

    fn activation_backward(&self, dx: &mut Buf, dout: &Buf, x: &Buf, len: usize, f: Activation) -> Result<()> {
        activation::activation_backward(wr(dx, len, "dx")?, rd(dout, len, "dout")?, rd(x, len, "x")?, f);
        Ok(())
    }

    fn layer_norm(&self, out: &mut Buf, stats: &mut LnStats, x: &Buf, w: Mem, ln: &LayerNorm, n: usize) -> Result<()> {
        let (c, p) = (ln.dim, ln_params(mem(w, "weights")?, ln)?);
        let (out, x) = (wr(out, n * c, "out")?, rd(x, n * c, "x")?);
        layer_norm::layer_norm_forward(out, stats_mut(stats, n)?, x, p, n, c);
        Ok(())
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
        let c = ln.dim;
        let gamma = span(mem(p.w, "weights")?, ln.g, "LayerNorm weight")?;
        let [dg, db] = grad_spans(p, [ln.g, ln.b])?;
        let d = layer_norm::LnGrads { dx: wr(dx, n * c, "dx")?, dg, db };
        let stats = LnStats { mean: rd(&x.stats.mean, n, "mean")?, rstd: rd(&x.stats.rstd, n, "rstd")? };
        layer_norm::layer_norm_backward(d, rd(dout, n * c, "dout")?, rd(x.x, n * c, "x")?, gamma, stats, n, c);
        Ok(())
    }

    fn key_mask(&self, mask_add: &mut Buf, mask: Option<&Buf<i32>>, n: usize) -> Result<()> {
        let mask = mask.map(|m| rd(m, n, "attention mask")).transpose()?;
        attention::key_mask(wr(mask_add, n, "mask_add")?, mask, n);
        Ok(())
    }

    /// The backward recomputes each head's probabilities (one more Q·Kᵀ product and softmax
    /// per head) so that a training forward keeps no `[B, NH, T, T]` per layer.
    fn attention_recomputes(&self) -> bool {
        true
    }

    fn attention(
        &self,
        ctx: &mut Buf,
        probs: &mut Buf,
        x: Qkv<&Buf>,
        mask_add: &Buf,
        shape: AttentionShape,
    ) -> Result<()> {
        let len = shape.qkv_len();
        if shape.int8 && !shape.keep_probs && shape.dropout.is_none() {
            let mask_add = rd(mask_add, shape.b * shape.t, "mask_add")?;
            return attention::attention_forward_int8(
                wr(ctx, len, "ctx")?,
                qkv(x, len)?,
                mask_add,
                shape,
                self.kernels.i8,
            );
        }
        let probs = if shape.keep_probs { Some(wr(probs, shape.probs_len(), "probs")?) } else { None };
        let mask_add = rd(mask_add, shape.b * shape.t, "mask_add")?;
        attention::attention_forward(wr(ctx, len, "ctx")?, probs, qkv(x, len)?, mask_add, shape)
    }

    fn self_attention(
        &self,
        (ctx, probs): (&mut Buf, &mut Buf),
        qkv: Qkv<&mut Buf>,
        x: &Buf,
        w: &Weights,
        (lin, mask_add): (Qkv<&Linear>, &Buf),
        shape: AttentionShape,
    ) -> Result<()> {
        let ws = [linear_weight(w, lin.q)?, linear_weight(w, lin.k)?, linear_weight(w, lin.v)?];
        let (din, hidden) = (lin.q.din, shape.nh * shape.hd);
        let fits = ws.iter().zip([lin.q, lin.k, lin.v]).all(|((w, _), l)| {
            matches!(w, Weight::Int8(p) if p.kernel() == self.kernels.i8) && l.din == din && l.dout == hidden
        });
        let inference = shape.int8 && !shape.keep_probs && shape.dropout.is_none();
        if !(fits && inference && attention::sequences_share_out(shape.b)) {
            return super::self_attention_unfused(self, (ctx, probs), qkv, x, w, (lin, mask_add), shape);
        }
        let n = shape.b * shape.t;
        let (x, mask_add) = (rd(x, n * din, "x")?, rd(mask_add, n, "mask_add")?);
        attention::self_attention_int8(wr(ctx, n * hidden, "ctx")?, x, &ws, mask_add, shape, din)
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
        let (len, pl) = (shape.qkv_len(), shape.probs_len());
        let dx = Qkv { q: wr(dx.q, len, "dq")?, k: wr(dx.k, len, "dk")?, v: wr(dx.v, len, "dv")? };
        let kept =
            if shape.keep_probs { Some((wr(scratch, pl, "scratch")?, rd(saved.probs, pl, "probs")?)) } else { None };
        let saved = attention::Saved { kept, mask_add: rd(saved.mask_add, shape.b * shape.t, "mask_add")? };
        attention::attention_backward(dx, rd(dctx, len, "dctx")?, saved, qkv(x, len)?, shape)
    }

    fn embedding(&self, out: &mut Buf, x: Tokens, w: &Weights, emb: &Embeddings) -> Result<()> {
        let e = emb.ln.dim;
        let flat = mem(w.flat, "weights")?;
        let tables = embedding::Tables {
            word: word_table(w, flat, emb)?,
            pos: span(flat, emb.pos, "position embeddings")?,
            typ: span(flat, emb.typ, "type embeddings")?,
        };
        embedding::embedding_forward(wr(out, x.b * x.t * e, "out")?, token_ids(x, emb)?, tables, e);
        Ok(())
    }

    fn embedding_backward(&self, grads: &mut Buf, dout: &Buf, x: Tokens, emb: &Embeddings) -> Result<()> {
        let e = emb.ln.dim;
        let ids = token_ids(x, emb)?;
        let g = grads.host_mut().ok_or_else(|| wrong_device("grads"))?;
        let [word, pos, typ] = spans_mut(g, [emb.word, emb.pos, emb.typ])?;
        let dout = rd(dout, x.b * x.t * e, "dout")?;
        embedding::embedding_backward(embedding::Tables { word, pos, typ }, dout, ids, e, Some(emb.pad_id));
        Ok(())
    }

    fn gather_rows(&self, dst: &mut Buf, src: &Buf, rows: &Buf<i32>, m: usize, width: usize) -> Result<()> {
        let src = src.host().ok_or_else(|| wrong_device("gather source"))?;
        rows::gather(wr(dst, m * width, "gather destination")?, src, rd(rows, m, "rows")?, width)
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
        let dst = dst.host_mut().ok_or_else(|| wrong_device("scatter destination"))?;
        rows::scatter(dst, rd(src, m * width, "scatter source")?, rd(rows, m, "rows")?, width, accumulate)
    }

    fn mean_rows(&self, dst: &mut Buf, src: &Buf, g: RowGroups) -> Result<()> {
        let (dst, src) =
            (wr(dst, g.groups * g.width, "mean destination")?, rd(src, g.total_rows() * g.width, "mean source")?);
        rows::mean(dst, src, group_mask(&g)?, g.rows, g.width);
        Ok(())
    }

    fn mean_rows_backward(&self, dsrc: &mut Buf, ddst: &Buf, g: RowGroups) -> Result<()> {
        let ddst = rd(ddst, g.groups * g.width, "mean gradient")?;
        let dsrc = wr(dsrc, g.total_rows() * g.width, "mean source gradient")?;
        rows::mean_backward(dsrc, ddst, group_mask(&g)?, g.rows, g.width);
        Ok(())
    }

    fn cross_entropy(&self, logits: &mut Buf, targets: &Buf<i32>, m: usize, v: usize, k: LossScale) -> Result<LossSum> {
        let targets = rd(targets, m, "targets")?;
        if let Some(&bad) = targets.iter().find(|&&y| y < 0 || y as usize >= v) {
            return Err(Error::Internal(format!("cross-entropy target {bad} is outside [0, {v})")));
        }
        let logits = wr(logits, m * v, "logits")?;
        let (loss, correct) = loss::cross_entropy_in_place(logits, targets, m, v, k.scale, k.denom);
        Ok(LossSum { loss, correct })
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
        let (loss, correct) = loss::binary_cross_entropy(
            rd(logits, n, "logits")?,
            rd(labels, n, "labels")?,
            rd(weights, n, "weights")?,
            Some(wr(dlogits, n, "dlogits")?),
            k.scale,
            k.denom,
        );
        Ok(LossSum { loss, correct })
    }

    /// The uniforms come from a generator rebuilt at `at`: the very words the caller's would
    /// have returned.
    fn gumbel_argmax(
        &self,
        out: &mut Vec<i32>,
        logits: &Buf,
        m: usize,
        v: usize,
        temperature: f32,
        at: KeystreamAt,
    ) -> Result<()> {
        sample::gumbel_argmax(at, rd(logits, m * v, "logits")?, m, v, temperature, out);
        Ok(())
    }

    fn sum_squares(&self, buf: &Buf, len: usize) -> Result<f64> {
        Ok(optim::sum_squares(rd(buf, len, "sum_squares")?))
    }

    fn max_abs(&self, buf: &Buf, len: usize) -> Result<f32> {
        Ok(optim::max_abs(rd(buf, len, "max_abs")?))
    }

    fn scale(&self, buf: &mut Buf, len: usize, s: f32) -> Result<()> {
        optim::scale(wr(buf, len, "scale")?, s);
        Ok(())
    }

    fn add(&self, dst: &mut Buf, src: &Buf, len: usize) -> Result<()> {
        optim::add(wr(dst, len, "add destination")?, rd(src, len, "add source")?);
        Ok(())
    }

    fn combine_spans(&self, buf: &mut Buf, dst: Span, a: Option<Span>, b: Option<Span>) -> Result<()> {
        let buf = buf.host_mut().ok_or_else(|| wrong_device("combine_spans buffer"))?;
        super::check_spans(buf.len(), dst, a, b)?;
        for i in 0..dst.len {
            let mut x = a.map_or(0.0, |a| buf[a.off + i]);
            if let Some(b) = b {
                x += buf[b.off + i];
            }
            buf[dst.off + i] = x;
        }
        Ok(())
    }

    fn dropout(&self, x: &mut Buf, len: usize, mask: Dropout) -> Result<()> {
        dropout::dropout(wr(x, len, "dropout")?, mask);
        Ok(())
    }

    fn adamw(
        &self,
        state: AdamState,
        grads: &Buf,
        tensors: &[AdamTensor],
        step: &AdamStep,
        check: bool,
    ) -> Result<Option<usize>> {
        let len = tensors.iter().map(|t| t.span.off + t.span.len).max().unwrap_or(0);
        Ok(optim::adamw(
            wr(state.params, len, "params")?,
            rd(grads, len, "grads")?,
            wr(state.m, len, "adam m")?,
            wr(state.v, len, "adam v")?,
            tensors,
            step,
            check,
        ))
    }
}

fn oom(elements: usize) -> Error {
    Error::OutOfMemory(format!("{elements} elements ({} bytes) could not be allocated", elements.saturating_mul(4)))
}

/// Grows a host buffer to `len` zero-initialised elements, failing cleanly when memory runs out.
fn grow<T: super::Elem>(buf: &mut Buf<T>, len: usize) -> Result<()> {
    let v = buf.host_vec().ok_or_else(|| wrong_device("ensure"))?;
    if v.len() < len {
        v.try_reserve_exact(len - v.len()).map_err(|_| oom(len))?;
        v.resize(len, T::default());
    }
    Ok(())
}
