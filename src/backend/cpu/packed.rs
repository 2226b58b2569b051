//! Prepacked fp32 Linear kernels: `y = x·Wᵀ` with the weight packed once per model.
//!
//! The gemm crate packs both operands on every call; at inference the weight never changes, so
//! [`PackedF32`] packs it once into panels of [`PANEL`] output columns, each stored `[din][PANEL]`
//! (the 32 weights of one k side by side, zero-padded past `dout`), which is exactly the order
//! the microkernels read. Activations are read in place (row-major `x`, one element broadcast per
//! row and k), so a call packs nothing.
//!
//! Microkernels (run-time dispatch, no `target-cpu`): AVX-512F (6 rows × 4 zmm = 64 columns, two
//! panels side by side; 12 rows × 2 zmm on a lone last panel),
//! AVX2+FMA (6 rows × 2 ymm = 16 columns, a half panel), aarch64 NEON (6 rows × 4 q = 16
//! columns) and portable scalar (4 rows × 16 columns). Each is written once, generic over a small
//! vector trait, and compiled inside a function carrying its target features. AVX-512 reads 6
//! rows of `x` at a time rather than 12 (the same 24 accumulators): rows at a 4 KiB stride
//! (din = 1024, 3072, 4096) all fall in one L1 set of 8 ways, and 12 of them thrash it (about 10%
//! slower at din = 1024); 6 rows × 64 columns also loads less per multiply-add (10 loads per 24).
//!
//! Order of the sums: every output element is one accumulator that starts at 0 and takes
//! `acc = x[r, k]·w[c, k] + acc` for k = 0, 1, …, din−1 in turn (a fused multiply-add on the
//! SIMD paths; a multiply then an add on the scalar one). Nothing about that chain depends on
//! the row or column block an element falls in, on the edge handling or on the k blocking (an
//! accumulator stored to `y` between k blocks is reloaded exactly), so results are bit-identical
//! for any split over threads. The three FMA kernels compute the same chain and therefore agree
//! bit for bit with each other; the scalar kernel differs from them by rounding only.
//!
//! The kernel is the backend's table's ([`super::kernels`]), fixed when a weight is packed.

// The AVX-512 intrinsics are stable since Rust 1.89, above the declared rust-version (see simd.rs).
#![allow(clippy::incompatible_msrv)]

use crate::error::{Error, Result};
use std::ops::Range;

/// Output columns per packed panel (every kernel reads this one layout).
pub const PANEL: usize = 32;

/// Inner-dimension block: products with a longer `din` run in k blocks of this length, each
/// storing its partial sums to `y` and the next reloading them, so a panel's block stays in L2.
const KC: usize = 512;

/// Rows per cache block: a block of `x` is multiplied by every panel of the call before the
/// next block starts, so it stays in L2 while the panels stream past.
const MC: usize = 120;

/// A microkernel (an instruction set and register block).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum F32Kernel {
    /// Portable code: 4 rows × 16 columns, multiply then add.
    Scalar,
    /// x86-64 AVX2 + FMA: 6 rows × 2 ymm (16 columns).
    Avx2,
    /// x86-64 AVX-512F: 6 rows × 4 zmm (64 columns: two panels), 12 × 2 zmm on a lone panel.
    Avx512,
    /// aarch64 NEON: 6 rows × 4 q registers (16 columns).
    Neon,
}

impl F32Kernel {
    /// Whether this CPU can run the kernel (from the one probe, [`super::kernels::Features`]).
    pub fn available(self) -> bool {
        let f = super::kernels::Features::get();
        match self {
            F32Kernel::Scalar => true,
            F32Kernel::Avx2 => f.avx2_fma,
            F32Kernel::Avx512 => f.avx512f,
            F32Kernel::Neon => f.neon,
        }
    }

    /// The best kernel this CPU runs (a backend's table may cap it: [`super::kernels`]).
    pub fn best() -> F32Kernel {
        super::kernels::CpuKernels::best().f32
    }

    /// Vector width in bits (for caps; 0: scalar).
    pub fn width(self) -> usize {
        match self {
            F32Kernel::Scalar => 0,
            F32Kernel::Neon => 128,
            F32Kernel::Avx2 => 256,
            F32Kernel::Avx512 => 512,
        }
    }
}

/// Every kernel this CPU can run (for tests and benchmarks), scalar first.
pub fn kernels() -> Vec<F32Kernel> {
    [F32Kernel::Scalar, F32Kernel::Avx2, F32Kernel::Avx512, F32Kernel::Neon]
        .into_iter()
        .filter(|k| k.available())
        .collect()
}

/// 16 floats on a 64-byte boundary: the packed storage, so every panel row of 32 weights is
/// two whole cache lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A Linear weight packed once into panels of the microkernel's width.
pub struct PackedF32 {
    /// `panels · din · PANEL` floats: panel p holds columns `p·PANEL..`, k-major.
    data: Vec<Line>,
    dout: usize,
    din: usize,
    kernel: F32Kernel,
}

impl std::fmt::Debug for PackedF32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedF32")
            .field("dout", &self.dout)
            .field("din", &self.din)
            .field("kernel", &self.kernel)
            .finish()
    }
}

impl PackedF32 {
    /// Packs the PyTorch-layout `[dout, din]` weight `w` (row-major) for [`F32Kernel::best`].
    pub fn new(w: &[f32], dout: usize, din: usize) -> Result<Self> {
        Self::with_kernel(w, dout, din, F32Kernel::best())
    }

    /// Packs `w` for a given kernel (which the CPU must support; [`matmul`] runs it).
    pub fn with_kernel(w: &[f32], dout: usize, din: usize, kernel: F32Kernel) -> Result<Self> {
        if !kernel.available() {
            return Err(Error::arg(format!("packed matmul: kernel {kernel:?} is not supported by this CPU")));
        }
        let need = dout.checked_mul(din).ok_or_else(|| Error::arg(format!("weight {dout} x {din} overflows")))?;
        if w.len() < need {
            return Err(Error::Shape {
                what: "packed Linear weight".into(),
                expected: vec![dout, din],
                got: vec![w.len()],
            });
        }
        let panels = dout.div_ceil(PANEL);
        let floats = panels
            .checked_mul(din)
            .and_then(|v| v.checked_mul(PANEL))
            .ok_or_else(|| Error::arg(format!("packed weight {dout} x {din} overflows")))?;
        let lines = floats / 16;
        let mut data: Vec<Line> = Vec::new();
        data.try_reserve_exact(lines).map_err(|_| {
            Error::OutOfMemory(format!("packed Linear weight {dout} x {din} ({} bytes)", floats.saturating_mul(4)))
        })?;
        data.resize(lines, Line([0.0; 16]));
        {
            // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with no padding (64 bytes, aligned
            // 64), so `lines` of them are `floats` contiguous, initialised f32s borrowed
            // uniquely through `data`.
            let dst: &mut [f32] = unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<f32>(), floats) };
            // Tiles of 32 columns × 64 k: reads whole cache lines of w, writes whole panel rows.
            for p in 0..panels {
                let panel = &mut dst[p * din * PANEL..(p + 1) * din * PANEL];
                let c0 = p * PANEL;
                let nc = PANEL.min(dout - c0);
                for k0 in (0..din).step_by(64) {
                    let k1 = (k0 + 64).min(din);
                    for j in 0..nc {
                        let row = &w[(c0 + j) * din..(c0 + j + 1) * din];
                        for k in k0..k1 {
                            panel[k * PANEL + j] = row[k];
                        }
                    }
                }
            }
        }
        Ok(PackedF32 { data, dout, din, kernel })
    }

    /// Output features (rows of the PyTorch weight).
    pub fn dout(&self) -> usize {
        self.dout
    }

    /// Input features (columns of the PyTorch weight).
    pub fn din(&self) -> usize {
        self.din
    }

    /// Bytes of packed storage.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<Line>()
    }

    /// Output columns per panel: column blocks given to `matmul` must start at a multiple of it.
    pub fn panel(&self) -> usize {
        PANEL
    }

    /// The kernel [`matmul`] runs on this weight (chosen when it was packed).
    pub fn kernel(&self) -> F32Kernel {
        self.kernel
    }

    fn ptr(&self) -> *const f32 {
        self.data.as_ptr().cast::<f32>()
    }
}

/// y[r*ldy + c] = Σ_k x[r*ldx + k]·w[c, k] for r in rows, c in cols. Single-threaded; the caller splits over threads.
///
/// `cols.start` must be a multiple of [`PackedF32::panel`] and `cols.end ≤ dout`; only the
/// elements named are written. Panics when a slice is too short for the rows and columns named.
pub fn matmul(y: &mut [f32], ldy: usize, x: &[f32], ldx: usize, rows: Range<usize>, w: &PackedF32, cols: Range<usize>) {
    matmul_with(w.kernel, Rows { y, ldy, x, ldx, rows }, w, cols)
}

/// The activation side of one product: rows `rows` of row-major `x` (row stride `ldx`) into the
/// same rows of `y` (row stride `ldy`).
pub struct Rows<'a> {
    /// Output.
    pub y: &'a mut [f32],
    /// Output row stride.
    pub ldy: usize,
    /// Input.
    pub x: &'a [f32],
    /// Input row stride.
    pub ldx: usize,
    /// Rows computed.
    pub rows: Range<usize>,
}

/// [`matmul`] with a given kernel (which the CPU must support), for tests and comparisons. Every
/// kernel reads the same packed layout.
pub fn matmul_with(kernel: F32Kernel, r: Rows, w: &PackedF32, cols: Range<usize>) {
    let Rows { y, ldy, x, ldx, rows } = r;
    let (din, dout) = (w.din, w.dout);
    assert!(kernel.available(), "packed matmul: kernel {kernel:?} is not supported by this CPU");
    assert!(cols.start <= cols.end && cols.end <= dout, "columns {cols:?} out of 0..{dout}");
    assert!(cols.start.is_multiple_of(PANEL), "column block {cols:?} does not start on a panel boundary ({PANEL})");
    assert!(rows.start <= rows.end, "rows {rows:?} reversed");
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    assert!(ldx >= din, "x row stride {ldx} below din {din}");
    assert!(ldy >= cols.end, "y row stride {ldy} below the last column {}", cols.end);
    let last = rows.end - 1;
    assert!(last * ldx + din <= x.len(), "x holds {} elements, rows {rows:?} need {}", x.len(), last * ldx + din);
    assert!(
        last * ldy + cols.end <= y.len(),
        "y holds {} elements, rows {rows:?} need {}",
        y.len(),
        last * ldy + cols.end
    );
    let job = Job { y: y.as_mut_ptr(), ldy, x: x.as_ptr(), ldx, rows, w: w.ptr(), din, cols };
    // SAFETY: the asserts above put every element the job addresses in bounds: x rows `rows`
    // (k < din ≤ ldx) inside `x`, y rows `rows` at columns `cols` inside `y`, and panels
    // `cols.start / PANEL ..= (cols.end − 1) / PANEL` (all k < din) inside `w`'s packed storage,
    // which holds `dout.div_ceil(PANEL)` panels; `y` is a unique borrow, so it aliases neither
    // input. `kernel.available()` was asserted, which is each kernel's target-feature
    // requirement.
    unsafe {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            F32Kernel::Avx512 => x86::avx512(&job),
            #[cfg(target_arch = "x86_64")]
            F32Kernel::Avx2 => x86::avx2(&job),
            #[cfg(target_arch = "aarch64")]
            F32Kernel::Neon => arm::neon(&job),
            _ => scalar(&job),
        }
    }
}

/// One call's operands, bounds-checked by [`matmul_with`].
struct Job {
    y: *mut f32,
    ldy: usize,
    x: *const f32,
    ldx: usize,
    rows: Range<usize>,
    w: *const f32,
    din: usize,
    cols: Range<usize>,
}

/// A vector of `L` f32 lanes.
trait Vf: Copy {
    /// Lanes.
    const L: usize;
    /// All zero.
    unsafe fn zero() -> Self;
    /// All lanes `*p`.
    unsafe fn bcast(p: *const f32) -> Self;
    /// `L` values from `p`.
    unsafe fn load(p: *const f32) -> Self;
    /// Stores `L` values at `p`.
    unsafe fn store(self, p: *mut f32);
    /// `a·b + self` (fused on the SIMD types).
    unsafe fn fma(self, a: Self, b: Self) -> Self;
}

/// The first `n < V::L` lanes from `p`, the others zero.
///
/// # Safety
/// `V`'s target features must be available; `p..p+n` must be readable.
#[inline(always)]
unsafe fn load_part<V: Vf>(p: *const f32, n: usize) -> V {
    let mut buf = [0.0f32; 16];
    // SAFETY: `p..p+n` is readable (this function's contract), `n < L ≤ 16` fits `buf`.
    unsafe {
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
        V::load(buf.as_ptr())
    }
}

/// Stores the first `n < V::L` lanes at `p`.
///
/// # Safety
/// `V`'s target features must be available; `p..p+n` must be writable.
#[inline(always)]
unsafe fn store_part<V: Vf>(v: V, p: *mut f32, n: usize) {
    let mut buf = [0.0f32; 16];
    // SAFETY: `buf` holds 16 ≥ L floats; `p..p+n` is writable (this function's contract).
    unsafe {
        v.store(buf.as_mut_ptr());
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
    }
}

/// One register tile: rows `MR` (from `x`, `y`) × `C` vectors of columns (from the panel at `w`,
/// row stride [`PANEL`]), over k in `k0..k1`. The accumulators start at zero when `k0 == 0`,
/// else at what `y` holds (the previous k block's sums). Only the first `nc` columns are stored.
///
/// # Safety
/// `V`'s target features must be available; for each of the MR rows, `x[r*ldx + k]` (k in
/// k0..k1) must be readable and `y[r*ldy + j]` (j < nc) readable and writable; `w[k*PANEL + j]`
/// readable for k in k0..k1, j < C·L.
#[inline(always)]
unsafe fn tile<V: Vf, const MR: usize, const C: usize>(t: TileArgs) {
    let TileArgs { y, ldy, x, ldx, w, ps, ks: (k0, k1), nc } = t;
    // SAFETY: every access below is one the contract makes valid: x rows < MR at k in k0..k1,
    // panel rows k in k0..k1 at columns < C·L, y rows < MR at columns < nc (partial vectors go
    // through `load_part`/`store_part` with exactly the columns left).
    unsafe {
        let mut acc = [[V::zero(); C]; MR];
        if k0 > 0 {
            for (r, a) in acc.iter_mut().enumerate() {
                for (c, v) in a.iter_mut().enumerate() {
                    let (j, p) = (c * V::L, y.add(r * ldy + c * V::L));
                    if j + V::L <= nc {
                        *v = V::load(p);
                    } else if j < nc {
                        *v = load_part::<V>(p, nc - j);
                    }
                }
            }
        }
        let mut wp = w.add(k0 * PANEL);
        let mut xp = x.add(k0);
        for _ in k0..k1 {
            let mut b = [V::zero(); C];
            for (c, v) in b.iter_mut().enumerate() {
                let j = c * V::L;
                *v = V::load(wp.add(j / PANEL * ps + j % PANEL));
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let xv = V::bcast(xp.add(r * ldx));
                for (c, v) in a.iter_mut().enumerate() {
                    *v = v.fma(xv, b[c]);
                }
            }
            wp = wp.add(PANEL);
            xp = xp.add(1);
        }
        for (r, a) in acc.iter().enumerate() {
            for (c, v) in a.iter().enumerate() {
                let (j, p) = (c * V::L, y.add(r * ldy + c * V::L));
                if j + V::L <= nc {
                    v.store(p);
                } else if j < nc {
                    store_part(*v, p, nc - j);
                }
            }
        }
    }
}

/// The operands of one tile.
#[derive(Clone, Copy)]
struct TileArgs {
    /// Output at the tile's first row and column, and its row stride.
    y: *mut f32,
    ldy: usize,
    /// Input at the tile's first row, and its row stride.
    x: *const f32,
    ldx: usize,
    /// The panel at the tile's first column, and the stride from one panel to the next.
    w: *const f32,
    ps: usize,
    /// The k range.
    ks: (usize, usize),
    /// Columns stored.
    nc: usize,
}

/// Runs a job with tiles of `MR` rows × `C` vectors, `rem(h, ..)` taking the `h < MR` rows left
/// at the end of a row block. Tiles wider than a panel read the next panel too; where only one
/// panel's columns are left, `narrow(h, ..)` runs tiles of one panel's width and `h ≤ nmr` rows.
///
/// # Safety
/// `V`'s target features must be available; the job's bounds must hold (see [`matmul_with`]).
#[inline(always)]
unsafe fn drive<V: Vf, const MR: usize, const C: usize>(
    job: &Job,
    rem: impl Fn(usize, TileArgs),
    nmr: usize,
    narrow: impl Fn(usize, TileArgs),
) {
    let strip = C * V::L;
    let Job { y, ldy, x, ldx, ref rows, w, din, ref cols } = *job;
    let ps = din * PANEL;
    // At least one k block, so that din = 0 stores zeros.
    let kblocks = din.div_ceil(KC).max(1);
    // SAFETY: every tile addresses rows inside `rows`, columns inside `cols` (nc stops at
    // cols.end) and panel rows k < din of panels covering `cols`, all in bounds by the job's
    // contract: a strip wider than a panel runs only where the columns left reach into the next
    // panel, and panel reads extend to a panel's full width, which the zero padding of the last
    // panel keeps inside the packed storage.
    unsafe {
        for kb in 0..kblocks {
            let ks = (kb * KC, ((kb + 1) * KC).min(din));
            let mut r0 = rows.start;
            while r0 < rows.end {
                let r1 = (r0 + MC).min(rows.end);
                let mut c0 = cols.start;
                while c0 < cols.end {
                    let nc = strip.min(cols.end - c0);
                    let wp = w.add((c0 / PANEL) * ps + c0 % PANEL);
                    let mut r = r0;
                    if strip > PANEL && nc <= PANEL {
                        while r < r1 {
                            let h = nmr.min(r1 - r);
                            narrow(
                                h,
                                TileArgs { y: y.add(r * ldy + c0), ldy, x: x.add(r * ldx), ldx, w: wp, ps, ks, nc },
                            );
                            r += h;
                        }
                        break;
                    }
                    while r + MR <= r1 {
                        tile::<V, MR, C>(TileArgs {
                            y: y.add(r * ldy + c0),
                            ldy,
                            x: x.add(r * ldx),
                            ldx,
                            w: wp,
                            ps,
                            ks,
                            nc,
                        });
                        r += MR;
                    }
                    if r < r1 {
                        rem(
                            r1 - r,
                            TileArgs { y: y.add(r * ldy + c0), ldy, x: x.add(r * ldx), ldx, w: wp, ps, ks, nc },
                        );
                    }
                    c0 += strip;
                }
                r0 = r1;
            }
        }
    }
}

/// `match h` over the tile heights `1..` listed, calling `tile::<V, h, C>`.
macro_rules! remainder {
    ($V:ty, $C:literal, [$($h:literal)*]) => {
        |h: usize, t: TileArgs| {
            // Expanded inside the `unsafe` block of a kernel function with `$V`'s target
            // features; `drive` passes a tile of `h` rows whose accesses are in bounds.
            match h {
                $($h => tile::<$V, $h, $C>(t),)*
                _ => unreachable!("remainder of {h} rows"),
            }
        }
    };
}

/// For kernels whose tiles are at most a panel wide: `drive` never runs a narrow tile.
fn no_narrow(_: usize, _: TileArgs) {
    unreachable!("narrow tile of a kernel at most a panel wide")
}

impl Vf for f32 {
    const L: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> Self {
        0.0
    }
    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> Self {
        // SAFETY: `p` is readable (the caller's contract).
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `p` is readable (the caller's contract).
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: `p` is writable (the caller's contract).
        unsafe { *p = self }
    }
    #[inline(always)]
    unsafe fn fma(self, a: Self, b: Self) -> Self {
        a * b + self
    }
}

/// The portable kernel: 4 rows × 16 columns.
///
/// # Safety
/// The job's bounds must hold (see [`matmul_with`]).
unsafe fn scalar(job: &Job) {
    // SAFETY: plain Rust arithmetic needs no target features; bounds are the caller's contract.
    unsafe { drive::<f32, 4, 16>(job, remainder!(f32, 16, [1 2 3]), 1, no_narrow) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{drive, no_narrow, tile, Job, TileArgs, Vf};
    use std::arch::x86_64::*;

    impl Vf for __m512 {
        const L: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: AVX-512F is available (the caller's contract); register operation.
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn bcast(p: *const f32) -> Self {
            // SAFETY: AVX-512F is available and `p` readable (the caller's contract).
            unsafe { _mm512_set1_ps(*p) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: AVX-512F is available and `p..p+16` readable (the caller's contract).
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: AVX-512F is available and `p..p+16` writable (the caller's contract).
            unsafe { _mm512_storeu_ps(p, self) }
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            // SAFETY: AVX-512F is available (the caller's contract); register operation.
            unsafe { _mm512_fmadd_ps(a, b, self) }
        }
    }

    impl Vf for __m256 {
        const L: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: AVX is available (the caller's contract); register operation.
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn bcast(p: *const f32) -> Self {
            // SAFETY: AVX is available and `p` readable (the caller's contract).
            unsafe { _mm256_broadcast_ss(&*p) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: AVX is available and `p..p+8` readable (the caller's contract).
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: AVX is available and `p..p+8` writable (the caller's contract).
            unsafe { _mm256_storeu_ps(p, self) }
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            // SAFETY: FMA is available (the caller's contract); register operation.
            unsafe { _mm256_fmadd_ps(a, b, self) }
        }
    }

    /// AVX-512F: 6 rows × 4 zmm (two panels), 12 × 2 on a lone panel.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; the job's bounds must hold (see `matmul_with`).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(job: &Job) {
        // SAFETY: AVX-512F is available (this function's contract), as `__m512` requires.
        unsafe {
            drive::<__m512, 6, 4>(
                job,
                remainder!(__m512, 4, [1 2 3 4 5]),
                12,
                remainder!(__m512, 2, [1 2 3 4 5 6 7 8 9 10 11 12]),
            )
        }
    }

    /// AVX2+FMA: 6 rows × 2 ymm.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; the job's bounds must hold (see `matmul_with`).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(job: &Job) {
        // SAFETY: AVX2 and FMA are available (this function's contract), as `__m256` requires.
        unsafe { drive::<__m256, 6, 2>(job, remainder!(__m256, 2, [1 2 3 4 5]), 1, no_narrow) }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{drive, no_narrow, tile, Job, TileArgs, Vf};
    use std::arch::aarch64::*;

    impl Vf for float32x4_t {
        const L: usize = 4;
        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: NEON is baseline on aarch64; register operation.
            unsafe { vdupq_n_f32(0.0) }
        }
        #[inline(always)]
        unsafe fn bcast(p: *const f32) -> Self {
            // SAFETY: NEON is baseline; `p` readable (the caller's contract).
            unsafe { vld1q_dup_f32(p) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: NEON is baseline; `p..p+4` readable (the caller's contract).
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: NEON is baseline; `p..p+4` writable (the caller's contract).
            unsafe { vst1q_f32(p, self) }
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            // SAFETY: NEON is baseline; register operation (fused: self + a·b).
            unsafe { vfmaq_f32(self, a, b) }
        }
    }

    /// NEON: 6 rows × 4 q registers.
    ///
    /// # Safety
    /// The job's bounds must hold (see `matmul_with`).
    pub unsafe fn neon(job: &Job) {
        // SAFETY: NEON is baseline on aarch64; bounds are the caller's contract.
        unsafe { drive::<float32x4_t, 6, 4>(job, remainder!(float32x4_t, 4, [1 2 3 4 5]), 1, no_narrow) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| ((i as f32 * 0.7548777 + seed) * 12.9898).sin()).collect()
    }

    /// Naive f64 reference: y[r, c] = Σ_k x[r, k]·w[c, k], and Σ_k |x·w| for the tolerance.
    fn reference(x: &[f32], w: &[f32], n: usize, din: usize, dout: usize) -> (Vec<f64>, Vec<f64>) {
        let (mut y, mut mag) = (vec![0.0; n * dout], vec![0.0; n * dout]);
        for r in 0..n {
            for c in 0..dout {
                for k in 0..din {
                    let p = x[r * din + k] as f64 * w[c * din + k] as f64;
                    y[r * dout + c] += p;
                    mag[r * dout + c] += p.abs();
                }
            }
        }
        (y, mag)
    }

    const NS: [usize; 7] = [1, 2, 3, 7, 13, 64, 130];
    const DINS: [usize; 6] = [1, 3, 16, 17, 256, 300];
    const DOUTS: [usize; 7] = [1, 7, 16, 31, 33, 64, 257];

    /// Every kernel against the f64 reference. Tolerance: |y − ref| ≤ 1e-5 · sqrt(din) · Σ_k |x·w|
    /// (a sequential f32 sum's error grows like sqrt(din) ulps of the magnitudes summed, in
    /// practice; the worst case is din·2⁻²⁴). Also checks that nothing outside the named
    /// columns and rows is written, with `ldx`/`ldy` padded.
    #[test]
    fn kernels_match_f64_reference() {
        for &k in &kernels() {
            for &din in &DINS {
                for &dout in &DOUTS {
                    let w = data(dout * din, 1.0);
                    let p = PackedF32::with_kernel(&w, dout, din, k).unwrap();
                    assert_eq!((p.dout(), p.din(), p.panel()), (dout, din, PANEL));
                    assert_eq!(p.bytes(), dout.div_ceil(PANEL) * PANEL * din * 4);
                    for &n in &NS {
                        let x = data(n * din, 2.0);
                        let (r, mag) = reference(&x, &w, n, din, dout);
                        // Padded strides: x rows of din + 3, y rows of dout + 5 filled with a sentinel.
                        let (ldx, ldy) = (din + 3, dout + 5);
                        let mut xp = vec![f32::NAN; n * ldx];
                        for i in 0..n {
                            xp[i * ldx..i * ldx + din].copy_from_slice(&x[i * din..(i + 1) * din]);
                        }
                        let mut y = vec![-7.0f32; n * ldy];
                        matmul_with(k, Rows { y: &mut y, ldy, x: &xp, ldx, rows: 0..n }, &p, 0..dout);
                        for i in 0..n {
                            for c in 0..ldy {
                                let got = y[i * ldy + c];
                                if c >= dout {
                                    assert_eq!(got, -7.0, "{k:?} wrote padding n={n} din={din} dout={dout}");
                                    continue;
                                }
                                let (want, m) = (r[i * dout + c], mag[i * dout + c]);
                                let tol = 1e-5 * (din as f64).sqrt() * m + 1e-30;
                                assert!(
                                    (got as f64 - want).abs() <= tol,
                                    "{k:?} n={n} din={din} dout={dout} ({i},{c}): {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn whole(k: F32Kernel, x: &[f32], p: &PackedF32, n: usize) -> Vec<f32> {
        let mut y = vec![0.0; n * p.dout()];
        matmul_with(k, Rows { y: &mut y, ldy: p.dout(), x, ldx: p.din(), rows: 0..n }, p, 0..p.dout());
        y
    }

    /// Any split into row and column blocks gives exactly the bits of one whole call.
    #[test]
    fn blocks_equal_whole_call_bit_for_bit() {
        for &k in &kernels() {
            for (n, din, dout) in [(130, 300, 257), (37, 1100, 96), (13, 17, 33), (29, 64, 64)] {
                let w = data(dout * din, 3.0);
                let x = data(n * din, 4.0);
                let p = PackedF32::with_kernel(&w, dout, din, k).unwrap();
                let want: Vec<u32> = whole(k, &x, &p, n).iter().map(|v| v.to_bits()).collect();
                for (rb, cb) in [(1, PANEL), (5, PANEL), (7, 2 * PANEL), (64, 3 * PANEL), (n, PANEL), (3, dout)] {
                    let mut y = vec![f32::NAN; n * dout];
                    for r0 in (0..n).step_by(rb) {
                        for c0 in (0..dout).step_by(cb) {
                            let (r1, c1) = ((r0 + rb).min(n), (c0 + cb).min(dout));
                            matmul_with(k, Rows { y: &mut y, ldy: dout, x: &x, ldx: din, rows: r0..r1 }, &p, c0..c1);
                        }
                    }
                    let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                    assert!(got == want, "{k:?} {n}x{din}x{dout} blocks of {rb} rows x {cb} columns");
                }
            }
        }
    }

    /// Kernels differ from each other by rounding only (and the fused ones not at all here, though
    /// that is not required).
    #[test]
    fn kernels_agree_to_rounding() {
        let (n, din, dout) = (21, 700, 70);
        let (w, x) = (data(dout * din, 5.0), data(n * din, 6.0));
        let (_, mag) = reference(&x, &w, n, din, dout);
        let ks = kernels();
        let p = PackedF32::with_kernel(&w, dout, din, ks[0]).unwrap();
        let base = whole(ks[0], &x, &p, n);
        for &k in &ks[1..] {
            let y = whole(k, &x, &p, n);
            for i in 0..n * dout {
                let tol = 2e-5 * (din as f64).sqrt() * mag[i];
                assert!(((y[i] - base[i]) as f64).abs() <= tol, "{k:?} vs {:?} at {i}: {} {}", ks[0], y[i], base[i]);
            }
        }
    }

    #[test]
    fn degenerate_shapes_and_errors() {
        // din = 0: zeros; empty ranges: nothing written.
        let p = PackedF32::new(&[], 5, 0).unwrap();
        let mut y = vec![1.0; 10];
        matmul(&mut y, 5, &[], 0, 0..2, &p, 0..5);
        assert_eq!(y, vec![0.0; 10]);
        let p = PackedF32::new(&data(12, 0.0), 3, 4).unwrap();
        let mut y = vec![1.0; 6];
        matmul(&mut y, 3, &data(8, 1.0), 4, 1..1, &p, 0..3);
        matmul(&mut y, 3, &data(8, 1.0), 4, 0..2, &p, 0..0);
        assert_eq!(y, vec![1.0; 6]);
        assert!(PackedF32::new(&data(11, 0.0), 3, 4).is_err());
        let empty = PackedF32::new(&[], 0, 7).unwrap();
        assert_eq!(empty.bytes(), 0);
        assert!(kernels().contains(&F32Kernel::best()) && kernels().contains(&p.kernel()));
    }

    #[test]
    #[should_panic(expected = "panel boundary")]
    fn misaligned_column_block_panics() {
        let p = PackedF32::new(&data(64 * 4, 0.0), 64, 4).unwrap();
        let mut y = vec![0.0; 64];
        matmul(&mut y, 64, &data(4, 1.0), 4, 0..1, &p, 16..64);
    }

    #[test]
    #[should_panic(expected = "x holds")]
    fn short_x_panics() {
        let p = PackedF32::new(&data(8 * 4, 0.0), 8, 4).unwrap();
        let mut y = vec![0.0; 16];
        matmul(&mut y, 8, &data(7, 1.0), 4, 0..2, &p, 0..8);
    }

    /// Release-build benchmark against the gemm crate (never a timed assertion):
    /// `cargo test --release --lib packed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_vs_gemm() {
        use super::super::matmul::{gemm_serial, transpose_weight, Mat};
        use std::time::Instant;
        let k = F32Kernel::best();
        println!("kernel {k:?}; GFLOP/s, one thread, best of reps (median in brackets)");
        println!(
            "{:>5} {:>5} {:>5} | {:>15} | {:>15} | {:>15}",
            "n", "din", "dout", "packed", "gemm [in,out]", "gemm [out,in]"
        );
        for (n, din, dout) in
            [(128, 256, 256), (128, 256, 1024), (128, 1024, 256), (128, 128, 256), (32, 256, 1024), (4096, 256, 1024)]
        {
            let w = data(dout * din, 1.0);
            let x = data(n * din, 2.0);
            let mut wt = vec![0.0; din * dout];
            transpose_weight(&mut wt, &w, dout, din);
            let p = PackedF32::new(&w, dout, din).unwrap();
            let mut y = vec![0.0; n * dout];
            let flops = 2.0 * (n * din * dout) as f64;
            // Calls per timing: about 2 ms of work at 50 GFLOP/s; many short interleaved timings,
            // so that the best of each side is likely to have run undisturbed on a shared machine.
            let calls = ((1e8 / flops) as usize).clamp(1, 10_000);
            let mut times = [Vec::new(), Vec::new(), Vec::new()];
            for _ in 0..100 {
                for (side, t) in times.iter_mut().enumerate() {
                    let start = Instant::now();
                    for _ in 0..calls {
                        match side {
                            0 => matmul(&mut y, dout, &x, din, 0..n, &p, 0..dout),
                            1 => {
                                gemm_serial(1.0, Mat::rows(&x, n, din), Mat::rows(&wt, din, dout), 0.0, &mut y, dout, 1)
                            }
                            _ => gemm_serial(
                                1.0,
                                Mat::rows(&x, n, din),
                                Mat::rows(&w, dout, din).t(),
                                0.0,
                                &mut y,
                                dout,
                                1,
                            ),
                        }
                    }
                    t.push(start.elapsed().as_secs_f64() / calls as f64);
                    std::hint::black_box(&y);
                }
            }
            let fmt = |t: &mut Vec<f64>| {
                t.sort_by(f64::total_cmp);
                format!("{:6.1} [{:6.1}]", flops / t[0] / 1e9, flops / t[t.len() / 2] / 1e9)
            };
            let [a, b, c] = &mut times;
            println!("{n:>5} {din:>5} {dout:>5} | {} | {} | {}", fmt(a), fmt(b), fmt(c));
        }
    }
}
