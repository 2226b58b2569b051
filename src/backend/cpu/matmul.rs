//! Matrix products and the Linear layer (y = x·Wᵀ + b), forward and backward.
//!
//! Kernel: the `gemm` crate's single-threaded sgemm (runtime-dispatched AVX-512 / AVX2+FMA /
//! portable), which beat matrixmultiply on every shape of a training step (docs/PERFORMANCE.md).
//! Parallelism is ours: a product is cut into blocks of output rows (or columns, whichever side
//! is longer) that run on the current rayon pool, each a complete product with the whole inner
//! dimension. Every output element is therefore computed exactly as without the split, whatever
//! the thread count. Transposes are stride swaps, never copies. Linear forwards finish each row
//! block while it is in cache: bias, bias + activation, or bias + residual + LayerNorm.

use super::super::{Activated, LnStats};
use super::int8::{PackedI8, QuantRows};
use super::layer_norm::LnParams;
use super::packed::PackedF32;
use super::par::{for_ranges, split, threads, RowsMut};
use super::simd;
use crate::layers::Activation;
use std::cell::RefCell;

/// A read-only strided matrix: element (i, j) is `data[i*rs + j*cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    /// Backing slice (must cover every addressed element).
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A dense row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose (a stride swap).
    pub fn t(self) -> Self {
        Mat { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// A strided operand of [`gemm_raw`]: element (i, j) at `p + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct RawMat<P> {
    /// The first element.
    pub p: P,
    /// Row stride.
    pub rs: isize,
    /// Column stride.
    pub cs: isize,
}

/// A [`RawMat`].
pub fn raw<P>(p: P, rs: isize, cs: isize) -> RawMat<P> {
    RawMat { p, rs, cs }
}

/// The shape of a Linear product: `n` rows of `din` inputs, `dout` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearShape {
    /// Rows.
    pub n: usize,
    /// Input width.
    pub din: usize,
    /// Output width.
    pub dout: usize,
}

/// The parameter gradients of a Linear backward (accumulated): weight `[dout, din]`, and bias
/// `[dout]` when it has one.
pub struct LinearGrads<'a> {
    /// dW.
    pub dw: &'a mut [f32],
    /// db.
    pub db: Option<&'a mut [f32]>,
}

/// What the fused post-LN epilogue adds and writes: `out = LayerNorm(sum + residual)` per row,
/// keeping the statistics.
pub struct ResidualNorm<'a> {
    /// The residual stream `[n, dout]`.
    pub residual: &'a [f32],
    /// The LayerNorm.
    pub ln: LnParams<'a>,
    /// Its output `[n, dout]`.
    pub out: &'a mut [f32],
    /// Its statistics (n each).
    pub stats: LnStats<&'a mut [f32]>,
}

/// Below this many multiply-adds a product runs on the calling thread.
const PAR_MIN_MACS: usize = 1 << 18;
/// Smallest row (or column) block of a split product: keeps blocks on the library's general
/// path and the repacking of the shared operand small next to the block's work.
const MIN_BLOCK: usize = 128;

/// The single-threaded kernel on raw strided operands: C ← alpha·A·B + beta·C, where A is
/// `m x k`, B `k x n`, C `m x n`. With beta = 0, C is not read.
///
/// # Safety
/// Every addressed element of A, B and C must be valid, and C must not alias A or B.
pub unsafe fn gemm_raw(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: RawMat<*const f32>,
    b: RawMat<*const f32>,
    beta: f32,
    c: RawMat<*mut f32>,
) {
    let (RawMat { p: a, rs: ars, cs: acs }, RawMat { p: b, rs: brs, cs: bcs }) = (a, b);
    let RawMat { p: c, rs: rsc, cs: csc } = c;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m as isize {
            for j in 0..n as isize {
                // SAFETY: (i, j) is inside the m x n output, whose every addressed element is
                // valid by this function's contract.
                unsafe {
                    let p = c.offset(i * rsc + j * csc);
                    *p = if beta == 0.0 { 0.0 } else { beta * *p };
                }
            }
        }
        return;
    }
    // gemm's convention: dst = alpha·dst + beta·lhs·rhs, strides given column first. Its
    // microkernels prefer a column-major destination, so a row-major C is computed as
    // Cᵀ = Bᵀ·Aᵀ (what the `gemm` front crate does before dispatching to `gemm-f32`).
    let (m, n, c, csc, rsc, a, acs, ars, b, bcs, brs) = if csc.abs() < rsc.abs() {
        (n, m, c, rsc, csc, b, brs, bcs, a, ars, acs)
    } else {
        (m, n, c, csc, rsc, a, acs, ars, b, bcs, brs)
    };
    debug_assert!(rsc >= 0 && csc >= 0 && ars >= 0 && acs >= 0, "gemm_raw takes non-negative strides");
    // SAFETY: the dimensions and strides describe exactly the A, B and C of this function's
    // contract (every addressed element valid, C not aliasing A or B); no threads are spawned.
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            m,
            n,
            k,
            c,
            csc,
            rsc,
            beta != 0.0,
            a,
            acs,
            ars,
            b,
            bcs,
            brs,
            beta,
            alpha,
            false,
            false,
            false,
            gemm_common::Parallelism::None,
        );
    }
}

fn check_c(c: &[f32], m: usize, n: usize, rsc: usize, csc: usize) {
    if m > 0 && n > 0 {
        assert!((m - 1) * rsc + (n - 1) * csc < c.len(), "gemm output out of bounds");
    }
}

/// C ← alpha·A·B + beta·C on the calling thread, where C is a strided `m x n` view into `c`.
pub fn gemm_serial(alpha: f32, a: Mat, b: Mat, beta: f32, c: &mut [f32], rsc: usize, csc: usize) {
    assert_eq!(a.cols, b.rows, "gemm inner dimensions differ");
    a.check();
    b.check();
    check_c(c, a.rows, b.cols, rsc, csc);
    // SAFETY: every addressed element was bounds-checked; `c` is a unique borrow.
    unsafe {
        gemm_raw(
            (a.rows, b.cols, a.cols),
            alpha,
            raw(a.data.as_ptr(), a.rs as isize, a.cs as isize),
            raw(b.data.as_ptr(), b.rs as isize, b.cs as isize),
            beta,
            raw(c.as_mut_ptr(), rsc as isize, csc as isize),
        )
    }
}

/// A raw pointer that may cross to pool threads (the blocks written through it are disjoint).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: a bare address into a `&mut` output that `gemm` holds for the whole parallel loop;
// tasks on other threads use it only to write their own disjoint block of that output.
unsafe impl Send for SendPtr {}
// SAFETY: a shared `&SendPtr` only lets a task copy the address; the writes through it are to
// disjoint blocks, as for `Send`.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole Send wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// C ← alpha·A·B + beta·C, where C is a strided `m x n` view into `c` (row stride `rsc`,
/// column stride `csc`). Bounds are checked; large products run in blocks on the current pool.
pub fn gemm(alpha: f32, a: Mat, b: Mat, beta: f32, c: &mut [f32], rsc: usize, csc: usize) {
    assert_eq!(a.cols, b.rows, "gemm inner dimensions differ");
    a.check();
    b.check();
    let (m, k, n) = (a.rows, a.cols, b.cols);
    check_c(c, m, n, rsc, csc);
    let by_rows = m >= n;
    let dim = if by_rows { m } else { n };
    let (_, blocks) = split(dim, 2 * threads(), MIN_BLOCK, 16);
    if threads() == 1 || m * n * k < PAR_MIN_MACS || blocks <= 1 {
        return gemm_serial(alpha, a, b, beta, c, rsc, csc);
    }
    let cp = SendPtr(c.as_mut_ptr());
    let (ap, bp) = (a.data.as_ptr() as usize, b.data.as_ptr() as usize);
    for_ranges(dim, 2 * threads(), MIN_BLOCK, 16, |s, e| {
        let (ap, bp) = (ap as *const f32, bp as *const f32);
        // SAFETY: each block is rows (or columns) s..e of the views of A (or B) and C whose
        // bounds were checked above, so every address is valid; for_ranges gives tasks disjoint
        // ranges, so no two write the same element of C, and A and B (which the unique borrow
        // `c` cannot alias) are only read.
        unsafe {
            if by_rows {
                gemm_raw(
                    (e - s, n, k),
                    alpha,
                    raw(ap.add(s * a.rs), a.rs as isize, a.cs as isize),
                    raw(bp, b.rs as isize, b.cs as isize),
                    beta,
                    raw(cp.get().add(s * rsc), rsc as isize, csc as isize),
                )
            } else {
                gemm_raw(
                    (m, e - s, k),
                    alpha,
                    raw(ap, a.rs as isize, a.cs as isize),
                    raw(bp.add(s * b.cs), b.rs as isize, b.cs as isize),
                    beta,
                    raw(cp.get().add(s * csc), rsc as isize, csc as isize),
                )
            }
        }
    });
}

/// A Linear layer's weight: PyTorch's `[out, in]` layout (what checkpoints and training use), an
/// `[in, out]` copy, which the gemm crate multiplies 20–40% faster at inference's row counts
/// (docs/PERFORMANCE.md; both give the same sums in the same order), or an inference form packed
/// once per model for our own kernels: f32 panels ([`PackedF32`]) or int8 ([`PackedI8`]).
#[derive(Clone, Copy)]
pub enum Weight<'a> {
    /// `[out, in]`, row-major.
    OutIn(&'a [f32]),
    /// `[in, out]`, row-major (the transpose).
    InOut(&'a [f32]),
    /// f32 panels of the prepacked kernel.
    Packed(&'a PackedF32),
    /// int8 per output channel, activations quantized per row on the fly.
    Int8(&'a PackedI8),
}

impl<'a> From<&'a [f32]> for Weight<'a> {
    fn from(w: &'a [f32]) -> Self {
        Weight::OutIn(w)
    }
}

impl<'a> From<&'a Vec<f32>> for Weight<'a> {
    fn from(w: &'a Vec<f32>) -> Self {
        Weight::OutIn(w)
    }
}

impl<'a> Weight<'a> {
    /// The weight as the right operand `Wᵀ` (`din x dout`) of `x·Wᵀ`.
    fn as_rhs(self, din: usize, dout: usize) -> Mat<'a> {
        match self {
            Weight::OutIn(w) => Mat::rows(&w[..dout * din], dout, din).t(),
            Weight::InOut(w) => Mat::rows(&w[..din * dout], din, dout),
            Weight::Packed(_) | Weight::Int8(_) => unreachable!("packed weights have their own driver"),
        }
    }
}

/// Writes the `[in, out]` transpose of the `[out, in]` matrix `w` into `dst`.
pub fn transpose_weight(dst: &mut [f32], w: &[f32], dout: usize, din: usize) {
    const TILE: usize = 32;
    let (dst, w) = (&mut dst[..din * dout], &w[..dout * din]);
    for o0 in (0..dout).step_by(TILE) {
        for i0 in (0..din).step_by(TILE) {
            for o in o0..(o0 + TILE).min(dout) {
                for i in i0..(i0 + TILE).min(din) {
                    dst[i * dout + o] = w[o * din + i];
                }
            }
        }
    }
}

/// Largest output block (bytes) finished by an epilogue while still in cache.
const EPILOGUE_BLOCK_BYTES: usize = 1 << 20;

/// `y[n, dout] = x[n, din]·Wᵀ` (W stored `[dout, din]`), then `epilogue(row, first_col, seg)` on
/// every row segment of each finished block, in the task that computed it while it is in cache.
/// Blocks are row ranges when rows outnumber columns or `full_rows` (the epilogue needs whole
/// rows), else column ranges; with too few rows for row blocks, a full-row epilogue runs after a
/// column-split product.
fn linear_then(
    y: &mut [f32],
    x: &[f32],
    w: Weight,
    shape: LinearShape,
    full_rows: bool,
    epilogue: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let LinearShape { n, din, dout } = shape;
    let y = &mut y[..n * dout];
    let x = &x[..n * din];
    if matches!(w, Weight::Packed(_) | Weight::Int8(_)) {
        return packed_then(y, x, w, shape, full_rows, epilogue);
    }
    let wt = w.as_rhs(din, dout);
    wt.check();
    let rows_split = split(n, 2 * threads(), MIN_BLOCK, 16).1 > 1;
    let small = n * din * dout < PAR_MIN_MACS || threads() == 1;
    if full_rows || (n >= dout && (rows_split || small)) {
        if !rows_split && !small {
            // Too few rows to share out: split the product by columns, then finish whole rows.
            gemm(1.0, Mat::rows(x, n, din), wt, 0.0, y, dout, 1);
            super::par::rows_mut(y, dout, 8, |r0, block| {
                for (i, row) in block.chunks_exact_mut(dout).enumerate() {
                    epilogue(r0 + i, 0, row);
                }
            });
            return;
        }
        let rows = RowsMut::new(y, n, dout);
        for_ranges(n, 2 * threads(), MIN_BLOCK, 16, |s, e| {
            // SAFETY: for_ranges hands each task its own disjoint row range s..e, and `rows` is
            // the only view of `y` while the tasks run.
            let yb = unsafe { rows.get(s, e) };
            gemm_serial(1.0, Mat::rows(&x[s * din..e * din], e - s, din), wt, 0.0, yb, dout, 1);
            for (i, row) in yb.chunks_exact_mut(dout).enumerate() {
                epilogue(s + i, 0, row);
            }
        });
        return;
    }
    // Column blocks: each repacks only x (the shorter side) and stays cache-sized.
    let per_block = (EPILOGUE_BLOCK_BYTES / 4 / n.max(1)).max(MIN_BLOCK);
    let parts = dout.div_ceil(per_block).max(2 * threads());
    let cols = RowsMut::new(y, n, dout);
    for_ranges(dout, parts, MIN_BLOCK.min(dout), 16, |c0, c1| {
        // SAFETY: y holds n·dout elements (checked by RowsMut::new); tasks write disjoint column
        // ranges [c0, c1) of its rows. x (sliced to n·din) and columns c0..c1 of wt (checked by
        // `wt.check()`) are in bounds and only read.
        unsafe {
            gemm_raw(
                (n, c1 - c0, din),
                1.0,
                raw(x.as_ptr(), din as isize, 1),
                raw(wt.data.as_ptr().add(c0 * wt.cs), wt.rs as isize, wt.cs as isize),
                0.0,
                raw(cols.ptr().add(c0), dout as isize, 1),
            );
        }
        for r in 0..n {
            // SAFETY: columns c0..c1 of row r belong to this task alone (disjoint column
            // ranges), and the gemm_raw writes through `cols.ptr()` above have finished.
            epilogue(r, c0, unsafe { cols.span(r * dout + c0, r * dout + c1) });
        }
    });
}

/// Fewest rows per task of a row-split packed product: below it columns are split instead.
const PACKED_MIN_ROWS: usize = 16;

thread_local! {
    /// Per-thread scratch for activations quantized to int8 (grows, never shrinks).
    static QUANT_ROWS: RefCell<QuantRows> = RefCell::new(QuantRows::default());
}

/// One block of a packed product: rows `rows` of `x` times columns `cols` of the weight, into
/// `y` (row stride `ldy`, the block's rows starting at `y[0]`, its columns at their own index).
/// `xq` holds `x`'s rows quantized to int8 when the weight is int8 (the block's own rows, or all
/// rows when `all_rows`).
fn packed_block(
    y: &mut [f32],
    ldy: usize,
    x: &[f32],
    w: Weight,
    din: usize,
    (rows, cols): (std::ops::Range<usize>, std::ops::Range<usize>),
    xq: Option<&QuantRows>,
) {
    match (w, xq) {
        (Weight::Packed(p), _) => super::packed::matmul(y, ldy, &x[rows.start * din..], din, 0..rows.len(), p, cols),
        (Weight::Int8(q), Some(xq)) => super::int8::matmul(y, ldy, xq, rows, q, cols),
        (Weight::Int8(q), None) => QUANT_ROWS.with(|s| {
            let mut s = s.borrow_mut();
            let xr = &x[rows.start * din..rows.end * din];
            match s.quantize(xr, rows.len(), din, q.kernel()) {
                Ok(()) => super::int8::matmul(y, ldy, &s, 0..rows.len(), q, cols),
                // Scratch of a few KB per row that the allocator refused: the output is NaN
                // rather than a panic across the C boundary; sessions refuse non-finite output.
                Err(_) => y.iter_mut().for_each(|v| *v = f32::NAN),
            }
        }),
        _ => unreachable!("packed_block takes packed weights only"),
    }
}

/// A prepacked weight's panel width, din and dout (`None` for the unpacked layouts).
fn packed_dims(w: &Weight) -> Option<(usize, usize, usize)> {
    match w {
        Weight::Packed(p) => Some((p.panel(), p.din(), p.dout())),
        Weight::Int8(q) => Some((PackedI8::PANEL, q.din(), q.dout())),
        _ => None,
    }
}

/// [`linear_then`] for prepacked weights (f32 panels or int8): row blocks (each complete over
/// the inner dimension, so an element's sum never depends on the split) when there are enough
/// rows, else column blocks aligned to the kernel's panels, each computed into a task-local
/// buffer and copied out; a full-row epilogue then runs over rows.
fn packed_then(
    y: &mut [f32],
    x: &[f32],
    w: Weight,
    shape: LinearShape,
    full_rows: bool,
    epilogue: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let LinearShape { n, din, dout } = shape;
    let Some((panel, wdin, wdout)) = packed_dims(&w) else { unreachable!("packed_then takes packed weights only") };
    assert!(wdin == din && wdout == dout, "packed weight is {wdout}x{wdin}, the layer {dout}x{din}");
    let t = threads();
    let small = n * din * dout < PAR_MIN_MACS || t == 1;
    let row_parts = split(n, 2 * t, PACKED_MIN_ROWS, 4).1;
    if small || row_parts > 1 || dout < 2 * panel {
        let rows = RowsMut::new(y, n, dout);
        let parts = if small { 1 } else { 2 * t };
        for_ranges(n, parts, PACKED_MIN_ROWS, 4, |s, e| {
            // SAFETY: for_ranges hands each task its own disjoint row range s..e, and `rows` is
            // the only view of `y` while the tasks run.
            let yb = unsafe { rows.get(s, e) };
            packed_block(yb, dout, x, w, din, (s..e, 0..dout), None);
            for (i, row) in yb.chunks_exact_mut(dout).enumerate() {
                epilogue(s + i, 0, row);
            }
        });
        return;
    }
    // Few rows: split the columns (in whole panels), quantizing the rows once for all tasks.
    let quant = QUANT_ROWS.with(|s| {
        let mut q = std::mem::take(&mut *s.borrow_mut());
        let ok = match w {
            Weight::Int8(p) => q.quantize(x, n, din, p.kernel()).is_ok(),
            _ => true,
        };
        ok.then_some(q)
    });
    let Some(quant) = quant else {
        y.iter_mut().for_each(|v| *v = f32::NAN);
        return;
    };
    let xq = matches!(w, Weight::Int8(_)).then_some(&quant);
    let cols = RowsMut::new(y, n, dout);
    let panels = dout.div_ceil(panel);
    for_ranges(panels, 2 * t, 1, 1, |p0, p1| {
        let (c0, c1) = (p0 * panel, (p1 * panel).min(dout));
        let width = c1 - c0;
        // The kernel writes columns c0..c1 of each row at their own index: a [n, c1] buffer
        // whose first c0 columns stay unused keeps the indexing of the whole output.
        let ld = c1;
        let mut local = vec![0.0f32; n * ld];
        packed_block(&mut local, ld, x, w, din, (0..n, c0..c1), xq);
        for r in 0..n {
            // SAFETY: columns c0..c1 of row r belong to this task alone (disjoint panel ranges).
            let dst = unsafe { cols.span(r * dout + c0, r * dout + c1) };
            dst.copy_from_slice(&local[r * ld + c0..r * ld + c0 + width]);
            if !full_rows {
                epilogue(r, c0, dst);
            }
        }
    });
    QUANT_ROWS.with(|s| *s.borrow_mut() = quant);
    if full_rows {
        super::par::rows_mut(y, dout, 8, |r0, block| {
            for (i, row) in block.chunks_exact_mut(dout).enumerate() {
                epilogue(r0 + i, 0, row);
            }
        });
    }
}

/// Linear forward: `y[n, dout] = x[n, din]·Wᵀ + b`, with W stored `[dout, din]` (PyTorch layout).
pub fn linear_forward<'w>(
    y: &mut [f32],
    x: &[f32],
    w: impl Into<Weight<'w>>,
    b: Option<&[f32]>,
    n: usize,
    din: usize,
    dout: usize,
) {
    linear_then(y, x, w.into(), LinearShape { n, din, dout }, false, |_, c0, seg| {
        if let Some(b) = b {
            simd::add_assign(seg, &b[c0..c0 + seg.len()]);
        }
    });
}

/// Several prepacked Linears of one input (attention's query, key and value): `ys[i] = x·Wᵢᵀ +
/// bᵢ`, each `[n, dout]`, in one parallel pass over row blocks where each task quantizes its rows
/// once (int8) and runs every product on them while they are in cache. That saves two of three
/// pool hand-offs and quantizations of a separate call each, which at one sequence cost as much
/// as the products. Every element is computed as [`linear_forward`] computes it (row blocks are
/// complete over the inner dimension), so the bits are the same. Returns false, computing
/// nothing, where that form does not apply (weights not all prepacked alike, or too few rows for
/// row blocks): the caller then runs separate Linears.
pub fn linear_forward_shared(ys: &mut [&mut [f32]], x: &[f32], ws: &[(Weight, &[f32])], n: usize, din: usize) -> bool {
    let int8 = match ws.first() {
        Some((Weight::Int8(p), _)) => Some(p.kernel()),
        _ => None,
    };
    let fits = |w: &Weight| {
        let kernel = if let Weight::Int8(p) = w { Some(p.kernel()) } else { None };
        kernel == int8 && packed_dims(w).is_some_and(|(_, i, _)| i == din)
    };
    let dout = |w: &Weight| packed_dims(w).map_or(0, |(_, _, o)| o);
    let t = threads();
    let row_parts = split(n, 2 * t, PACKED_MIN_ROWS, 4).1;
    let macs: usize = ws.iter().map(|(w, _)| n * din * dout(w)).sum();
    let small = macs < PAR_MIN_MACS || t == 1;
    if ws.len() != ys.len() || !ws.iter().all(|(w, _)| fits(w)) || !(small || row_parts > 1) {
        return false;
    }
    let x = &x[..n * din];
    let outs: Vec<RowsMut> = ys.iter_mut().zip(ws).map(|(y, (w, _))| RowsMut::new(y, n, dout(w))).collect();
    let parts = if small { 1 } else { 2 * t };
    for_ranges(n, parts, PACKED_MIN_ROWS, 4, |s, e| {
        // SAFETY: for_ranges hands each task its own disjoint row range s..e, and `outs` holds
        // the only views of the outputs while the tasks run.
        let mut yb: Vec<&mut [f32]> = outs.iter().map(|o| unsafe { o.get(s, e) }).collect();
        shared_rows(&mut yb, &x[s * din..e * din], ws, e - s, din);
    });
    true
}

/// One block of rows of [`linear_forward_shared`], on the calling thread: `ys[i] = x·Wᵢᵀ + bᵢ`
/// for `x` `[rows, din]` and `ys[i]` `[rows, doutᵢ]`, the weights prepacked alike (checked by
/// the caller); int8 weights quantize `x` once for all of them. Refused scratch gives NaN.
pub fn shared_rows(ys: &mut [&mut [f32]], x: &[f32], ws: &[(Weight, &[f32])], rows: usize, din: usize) {
    let run = |ys: &mut [&mut [f32]], xq: Option<&QuantRows>| {
        for ((w, b), yb) in ws.iter().zip(ys.iter_mut()) {
            let d = packed_dims(w).map_or(0, |(_, _, o)| o);
            let yb = &mut yb[..rows * d];
            packed_block(yb, d, x, *w, din, (0..rows, 0..d), xq);
            for row in yb.chunks_exact_mut(d) {
                simd::add_assign(row, &b[..d]);
            }
        }
    };
    let Some((Weight::Int8(first), _)) = ws.first() else {
        return run(ys, None);
    };
    QUANT_ROWS.with(|q| {
        let mut q = q.borrow_mut();
        match q.quantize(&x[..rows * din], rows, din, first.kernel()) {
            Ok(()) => run(ys, Some(&q)),
            // As in `packed_block`: refused scratch gives NaN, which sessions refuse.
            Err(_) => ys.iter_mut().for_each(|y| y.fill(f32::NAN)),
        }
    });
}

/// Linear + activation: `y.pre = x·Wᵀ + b`, `y.act = y.f(y.pre)` (both kept for the backward).
pub fn linear_act_forward<'w>(
    y: Activated<&mut [f32]>,
    x: &[f32],
    w: impl Into<Weight<'w>>,
    b: &[f32],
    shape: LinearShape,
) {
    let (LinearShape { n, dout, .. }, f) = (shape, y.f);
    let act = RowsMut::new(y.act, n, dout);
    linear_then(y.pre, x, w.into(), shape, false, |r, c0, seg| {
        let start = r * dout + c0;
        // SAFETY: `linear_then` passes each (row, column range) segment to one epilogue call
        // only, so concurrent calls take disjoint spans of `act` (the same [n, dout] shape).
        let out = unsafe { act.span(start, start + seg.len()) };
        let bias = &b[c0..c0 + seg.len()];
        if f == Activation::Gelu {
            simd::bias_gelu(seg, out, bias);
        } else {
            simd::add_assign(seg, bias);
            super::activation::activation_serial(out, seg, f);
        }
    });
}

/// Linear + residual + LayerNorm (BERT's post-LN output blocks):
/// `sum = x·Wᵀ + b + post.residual`, `post.out = LayerNorm(sum)`; `sum` and `post.stats` are kept.
pub fn linear_residual_layer_norm_forward<'w>(
    sum: &mut [f32],
    x: &[f32],
    w: impl Into<Weight<'w>>,
    b: &[f32],
    post: ResidualNorm,
    shape: LinearShape,
) {
    let (LinearShape { n, dout, .. }, residual, LnParams { g, b: beta, eps }) = (shape, post.residual, post.ln);
    let out = RowsMut::new(post.out, n, dout);
    let mean = RowsMut::new(post.stats.mean, n, 1);
    let rstd = RowsMut::new(post.stats.rstd, n, 1);
    linear_then(sum, x, w.into(), shape, true, |r, _, row| {
        // SAFETY: with `full_rows`, `linear_then` makes exactly one epilogue call per row r, so
        // row r of `out` and element r of `mean`/`rstd` are taken by one task only.
        let (o, mu, rs) = unsafe { (out.get(r, r + 1), mean.span(r, r + 1), rstd.span(r, r + 1)) };
        let add = (b, &residual[r * dout..(r + 1) * dout]);
        (mu[0], rs[0]) = simd::residual_layer_norm_row(o, row, add, (g, beta, eps));
    });
}

/// Rows per block of the fused feed-forward: the block's `[rows, I]` pre-activation and
/// activation (2 × 128 KiB at I = 1024) stay in L2 beside the two int8 weights.
const FF_ROWS: usize = 32;

thread_local! {
    /// Per-thread room for a fused feed-forward block's pre-activation and activation.
    static FF_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`feed_forward`] runs for these weights and `n` rows: both prepacked alike, and
/// enough rows to share out by row blocks (else the separate calls split columns instead).
pub fn feed_forward_fits(w1: &Weight, w2: &Weight, n: usize, (h, i): (usize, usize)) -> bool {
    let alike = matches!((w1, w2), (Weight::Packed(_), Weight::Packed(_)) | (Weight::Int8(_), Weight::Int8(_)));
    let dims = packed_dims(w1).is_some_and(|(_, d, o)| (d, o) == (h, i))
        && packed_dims(w2).is_some_and(|(_, d, o)| (d, o) == (i, h));
    alike && dims && (feed_forward_serial(n, h, i) || split(n, 2 * threads(), PACKED_MIN_ROWS, 4).1 > 1)
}

/// Whether a fused feed-forward of `n` rows runs as one task (too small to share, or one thread).
fn feed_forward_serial(n: usize, h: usize, i: usize) -> bool {
    2 * n * h * i < PAR_MIN_MACS || threads() == 1
}

/// BERT's feed-forward block in inference, fused: per block of [`FF_ROWS`] rows,
/// `pre = x·W₁ᵀ + b₁`, `act = f(pre)` in a per-thread scratch, then `sum = act·W₂ᵀ + b₂ +
/// residual` and `post.out = LayerNorm(sum)`, so the `[N, I]` intermediate never leaves the
/// cache. Every element is computed as [`linear_act_forward`] then
/// [`linear_residual_layer_norm_forward`] compute it (row blocks are complete over the inner
/// dimension), so the bits are theirs. Callers check [`feed_forward_fits`] first.
pub fn feed_forward<'w>(
    sum: &mut [f32],
    x: &[f32],
    (w1, b1, f): (Weight<'w>, &[f32], Activation),
    (w2, b2): (Weight<'w>, &[f32]),
    post: ResidualNorm,
    (n, h, i): (usize, usize, usize),
) {
    let LnParams { g, b: beta, eps } = post.ln;
    let (sums, outs) = (RowsMut::new(sum, n, h), RowsMut::new(post.out, n, h));
    let (mean, rstd) = (RowsMut::new(post.stats.mean, n, 1), RowsMut::new(post.stats.rstd, n, 1));
    let (x, residual) = (&x[..n * h], &post.residual[..n * h]);
    let parts = if feed_forward_serial(n, h, i) { 1 } else { 2 * threads() };
    for_ranges(n, parts, PACKED_MIN_ROWS, 4, |s, e| {
        FF_SCRATCH.with(|cell| {
            let mut room = cell.borrow_mut();
            let block = FF_ROWS.min(e - s) * i;
            if super::int8::grow(&mut room, 2 * block, 0.0, "feed-forward scratch").is_err() {
                // As in `packed_block`: refused scratch gives NaN, which sessions refuse.
                // SAFETY: rows s..e are this task's alone (for_ranges hands out disjoint ranges).
                unsafe { outs.get(s, e) }.fill(f32::NAN);
                return;
            }
            let (pre, act) = room[..2 * block].split_at_mut(block);
            let activate = |p: &mut [f32], a: &mut [f32]| {
                if f == Activation::Gelu {
                    simd::bias_gelu(p, a, b1);
                } else {
                    for (p, a) in p.chunks_exact_mut(i).zip(a.chunks_exact_mut(i)) {
                        simd::add_assign(p, b1);
                        super::activation::activation_serial(a, p, f);
                    }
                }
            };
            for r0 in (s..e).step_by(FF_ROWS) {
                let r1 = (r0 + FF_ROWS).min(e);
                let m = r1 - r0;
                let (pre, act) = (&mut pre[..m * i], &mut act[..m * i]);
                packed_block(pre, i, x, w1, h, (r0..r1, 0..i), None);
                // SAFETY: rows r0..r1 ⊂ s..e of `sum` are this task's alone, as are those rows of
                // `out`, `mean` and `rstd` below.
                let yb = unsafe { sums.get(r0, r1) };
                if let Weight::Int8(q2) = w2 {
                    // Each activation row quantized as it is made, in L1: the same bytes as
                    // quantizing the block's rows afterwards.
                    let done = QUANT_ROWS.with(|q| {
                        let mut q = q.borrow_mut();
                        let produce = |r: usize, a: &mut [f32]| activate(&mut pre[r * i..(r + 1) * i], a);
                        let ok = q.quantize_produced((m, i), q2.kernel(), &mut act[..i], produce).is_ok();
                        if ok {
                            super::int8::matmul(yb, h, &q, 0..m, q2, 0..h);
                        }
                        ok
                    });
                    if !done {
                        yb.fill(f32::NAN);
                    }
                } else {
                    activate(pre, act);
                    packed_block(yb, h, act, w2, i, (0..m, 0..h), None);
                }
                for (r, row) in (r0..r1).zip(yb.chunks_exact_mut(h)) {
                    // SAFETY: as above (row r of this task's block).
                    let (o, mu, rs) = unsafe { (outs.get(r, r + 1), mean.span(r, r + 1), rstd.span(r, r + 1)) };
                    let add = (b2, &residual[r * h..(r + 1) * h]);
                    (mu[0], rs[0]) = simd::residual_layer_norm_row(o, row, add, (g, beta, eps));
                }
            }
        })
    });
}

/// `db += Σ_rows dy` over `[n, dout]`, columns split over the pool; each column is summed over
/// rows in order, as on one thread.
pub fn bias_grad(db: &mut [f32], dy: &[f32], n: usize, dout: usize) {
    let dy = &dy[..n * dout];
    let cols = RowsMut::new(db, 1, dout);
    // Column blocks of ≥ 64; tiny problems stay on this thread.
    let parts = if n * dout < 1 << 16 { 1 } else { threads() };
    for_ranges(dout, parts, 64.min(dout).max(1), 16, |c0, c1| {
        // SAFETY: for_ranges gives each task a disjoint column range c0..c1 of the one-row view
        // of `db`.
        let acc = unsafe { cols.span(c0, c1) };
        if n > 0 {
            simd::column_sums(acc, &dy[c0..], n, dout);
        }
    });
}

/// Linear backward. Parameter gradients accumulate (`dw += dyᵀ·x`, `db += Σ dy`); the input
/// gradient is assigned (`dx = dy·W`) or accumulated when `accumulate_dx` (residual streams).
pub fn linear_backward(
    dx: Option<&mut [f32]>,
    g: LinearGrads,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    shape: LinearShape,
    accumulate_dx: bool,
) {
    let (LinearShape { n, din, dout }, LinearGrads { dw, db }) = (shape, g);
    let dy = &dy[..n * dout];
    if let Some(dx) = dx {
        let beta = if accumulate_dx { 1.0 } else { 0.0 };
        gemm(1.0, Mat::rows(dy, n, dout), Mat::rows(w, dout, din), beta, &mut dx[..n * din], din, 1);
    }
    gemm(1.0, Mat::rows(dy, n, dout).t(), Mat::rows(&x[..n * din], n, din), 1.0, dw, din, 1);
    if let Some(db) = db {
        bias_grad(db, dy, n, dout);
    }
}

/// Backward of a Linear whose input was `x.act = x.f(x.pre)`, through the activation too:
/// `d_pre = (dy·W) ⊙ f′(pre)` (assigned), `dw += dyᵀ·act`, `db += Σ dy` (when given). The
/// derivative is applied to each row block of `dy·W` as it is produced.
pub fn linear_backward_through_act(
    d_pre: &mut [f32],
    g: LinearGrads,
    dy: &[f32],
    x: Activated<&[f32]>,
    w: &[f32],
    shape: LinearShape,
) {
    let (LinearShape { n, din, dout }, LinearGrads { dw, db }) = (shape, g);
    let Activated { pre, act, f } = x;
    let dy = &dy[..n * dout];
    let d_pre = &mut d_pre[..n * din];
    let (_, blocks) = split(n, 2 * threads(), MIN_BLOCK, 16);
    let epi = |r0: usize, rows: &mut [f32]| {
        let r1 = r0 + rows.len() / din;
        if f == Activation::Gelu {
            simd::gelu_backward_inplace(rows, &pre[r0 * din..r1 * din]);
        } else {
            super::activation::activation_backward_serial_inplace(rows, &pre[r0 * din..r1 * din], f);
        }
    };
    if threads() > 1 && blocks <= 1 {
        gemm(1.0, Mat::rows(dy, n, dout), Mat::rows(w, dout, din), 0.0, d_pre, din, 1);
        super::par::rows_mut(d_pre, din, 8, epi);
    } else {
        let rows = RowsMut::new(d_pre, n, din);
        for_ranges(n, 2 * threads(), MIN_BLOCK, 16, |s, e| {
            // SAFETY: for_ranges hands each task its own disjoint row range s..e, and `rows` is
            // the only view of `d_pre` while the tasks run.
            let block = unsafe { rows.get(s, e) };
            gemm_serial(
                1.0,
                Mat::rows(&dy[s * dout..e * dout], e - s, dout),
                Mat::rows(w, dout, din),
                0.0,
                block,
                din,
                1,
            );
            epi(s, block);
        });
    }
    gemm(1.0, Mat::rows(dy, n, dout).t(), Mat::rows(&act[..n * din], n, din), 1.0, dw, din, 1);
    if let Some(db) = db {
        bias_grad(db, dy, n, dout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_naive_with_transposes() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        // C = A · Bᵀ with B stored [n, k].
        let mut c = vec![0.0; m * n];
        gemm(1.0, Mat::rows(&a, m, k), Mat::rows(&b, n, k).t(), 0.0, &mut c, n, 1);
        for i in 0..m {
            for j in 0..n {
                let r: f32 = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
                assert!((c[i * n + j] - r).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn split_products_equal_serial_ones_bit_for_bit() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for (m, k, n) in [(700, 96, 64), (64, 300, 900), (513, 1030, 130)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut serial = vec![0.5; m * n];
            gemm_serial(0.7, Mat::rows(&a, m, k), Mat::rows(&b, k, n), 1.0, &mut serial, n, 1);
            let mut par = vec![0.5; m * n];
            pool.install(|| gemm(0.7, Mat::rows(&a, m, k), Mat::rows(&b, k, n), 1.0, &mut par, n, 1));
            assert_eq!(serial, par, "{m}x{k}x{n}");
        }
    }

    /// Query, key and value in one pass give each separate Linear's bits, for f32 panels and
    /// int8, at row counts below, at and above the row split, on 1 and 3 threads; unpacked or
    /// mixed weights are declined.
    #[test]
    fn fused_feed_forward_equals_the_two_calls() {
        let (h, i) = (40, 96);
        let wave = |len: usize, k: f32| (0..len).map(|j| (j as f32 * k).sin() * 0.3).collect::<Vec<f32>>();
        let (w1, w2, b1, b2) = (wave(i * h, 0.013), wave(h * i, 0.029), wave(i, 0.3), wave(h, 0.7));
        let (g, beta) = (wave(h, 0.11).iter().map(|v| 1.0 + v).collect::<Vec<_>>(), wave(h, 0.5));
        let (p1, p2) = (PackedF32::new(&w1, i, h).unwrap(), PackedF32::new(&w2, h, i).unwrap());
        let q = |w: &[f32], o: usize, d: usize| {
            PackedI8::new(&crate::layers::int8::quantize_weight(w, o, d).unwrap()).unwrap()
        };
        let (q1, q2) = (q(&w1, i, h), q(&w2, h, i));
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for n in [1usize, 7, 32, 33, 100, 300] {
                let x = wave(n * h, 0.07);
                for (ws, f) in [
                    ((Weight::Packed(&p1), Weight::Packed(&p2)), Activation::Gelu),
                    ((Weight::Int8(&q1), Weight::Int8(&q2)), Activation::Gelu),
                    ((Weight::Int8(&q1), Weight::Int8(&q2)), Activation::Relu),
                ] {
                    let run = |fused: bool| {
                        let (mut sum, mut out, mut mean, mut rstd) =
                            (vec![0.0; n * h], vec![0.0; n * h], vec![0.0; n], vec![0.0; n]);
                        let (mut pre, mut act) = (vec![0.0; n * i], vec![0.0; n * i]);
                        pool.install(|| {
                            let post = ResidualNorm {
                                residual: &x,
                                ln: LnParams { g: &g, b: &beta, eps: 1e-12 },
                                out: &mut out,
                                stats: LnStats { mean: &mut mean, rstd: &mut rstd },
                            };
                            if fused && feed_forward_fits(&ws.0, &ws.1, n, (h, i)) {
                                feed_forward(&mut sum, &x, (ws.0, &b1, f), (ws.1, &b2), post, (n, h, i));
                            } else {
                                let y = Activated { pre: &mut pre[..], act: &mut act[..], f };
                                linear_act_forward(y, &x, ws.0, &b1, LinearShape { n, din: h, dout: i });
                                linear_residual_layer_norm_forward(
                                    &mut sum,
                                    &act,
                                    ws.1,
                                    &b2,
                                    post,
                                    LinearShape { n, din: i, dout: h },
                                );
                            }
                        });
                        [sum, out, mean, rstd]
                    };
                    assert_eq!(run(true), run(false), "n {n}, {f:?}, {threads} threads");
                }
            }
            // Unlike weights, or unpacked ones, do not fuse.
            pool.install(|| {
                assert!(!feed_forward_fits(&Weight::Packed(&p1), &Weight::Int8(&q2), 64, (h, i)));
                assert!(!feed_forward_fits(&Weight::OutIn(&w1), &Weight::OutIn(&w2), 64, (h, i)));
                assert!(!feed_forward_fits(&Weight::Int8(&q1), &Weight::Int8(&q2), 64, (h, i + 1)));
            });
        }
        // Fused where it applies: one thread always, and enough rows on three.
        assert!(feed_forward_fits(&Weight::Int8(&q1), &Weight::Int8(&q2), 5, (h, i)));
    }

    #[test]
    fn shared_input_products_equal_separate_linears() {
        let (din, outs) = (96, [64usize, 48, 80]);
        let ws: Vec<Vec<f32>> = outs
            .iter()
            .enumerate()
            .map(|(j, &d)| (0..d * din).map(|i| ((i * (j + 3)) as f32 * 0.013).sin()).collect())
            .collect();
        let bs: Vec<Vec<f32>> = outs.iter().map(|&d| (0..d).map(|i| i as f32 * 0.01 - 0.2).collect()).collect();
        let f32w: Vec<PackedF32> = ws.iter().zip(outs).map(|(w, d)| PackedF32::new(w, d, din).unwrap()).collect();
        let i8w: Vec<PackedI8> = ws
            .iter()
            .zip(outs)
            .map(|(w, d)| PackedI8::new(&crate::layers::int8::quantize_weight(w, d, din).unwrap()).unwrap())
            .collect();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for n in [1usize, 5, 16, 33, 128, 300] {
                let x: Vec<f32> = (0..n * din).map(|i| (i as f32 * 0.07).cos()).collect();
                for int8 in [false, true] {
                    let weight = |j: usize| if int8 { Weight::Int8(&i8w[j]) } else { Weight::Packed(&f32w[j]) };
                    let mut want: Vec<Vec<f32>> = outs.iter().map(|&d| vec![0.0; n * d]).collect();
                    let mut got = want.clone();
                    pool.install(|| {
                        for j in 0..3 {
                            linear_forward(&mut want[j], &x, weight(j), Some(&bs[j]), n, din, outs[j]);
                        }
                        let ops: Vec<(Weight, &[f32])> = (0..3).map(|j| (weight(j), &bs[j][..])).collect();
                        let mut ys: Vec<&mut [f32]> = got.iter_mut().map(|y| &mut y[..]).collect();
                        if !linear_forward_shared(&mut ys, &x, &ops, n, din) {
                            // Declined (too few rows to split): the caller runs separate Linears.
                            assert!(n < 2 * PACKED_MIN_ROWS && threads > 1 && n * din * 192 >= PAR_MIN_MACS);
                            for j in 0..3 {
                                linear_forward(ys[j], &x, weight(j), Some(&bs[j]), n, din, outs[j]);
                            }
                        }
                    });
                    assert_eq!(got, want, "n {n}, int8 {int8}, {threads} threads");
                }
            }
            let mixed = [(Weight::Packed(&f32w[0]), &bs[0][..]), (Weight::Int8(&i8w[1]), &bs[1][..])];
            let unpacked = [(Weight::OutIn(&ws[0]), &bs[0][..])];
            let (x, mut y0, mut y1) = (vec![1.0; 128 * din], vec![0.0; 128 * 64], vec![0.0; 128 * 48]);
            pool.install(|| {
                assert!(!linear_forward_shared(&mut [&mut y0, &mut y1], &x, &mixed, 128, din));
                assert!(!linear_forward_shared(&mut [&mut y0], &x, &unpacked, 128, din));
            });
        }
    }
}
