//! Int8 matrix kernels for dynamic-quantized inference: `y = x·Wᵀ` with W quantized once per
//! output channel (symmetric, scale = max|w|/127) and each row of x quantized when it arrives.
//!
//! The scalar code is the definition; every SIMD kernel gives bit-identical `f32` output. That
//! holds by construction: the integer dot products are exact in `i32` whatever their order or
//! vector width, and each output element then takes the same two IEEE multiplies,
//! `(acc as f32) * (xscale * wscale)`, on every path (no FMA; bias, activation and LayerNorm are
//! the caller's epilogue). Row quantization uses the same ops on every path too (an exact max,
//! a multiply by one reciprocal, round-to-nearest-even, a clamp). So results also do not depend
//! on how the caller blocks rows and columns over threads.
//!
//! Weights sit in panels of [`PANEL`] output channels: for each group of 4 consecutive k, one
//! 64-byte line holds the 16 channels' 4 bytes (channel-major within the line). One 512-bit load
//! is then 16 channels × 4 k for `vpdpbusd` (two 256-bit loads for AVX2, four 128-bit for NEON)
//! against 4 bytes of a row broadcast to every lane. K is padded to a multiple of 4 and dout to
//! a multiple of 16 with zero weights (scale 0); columns ≥ dout are never written.
//!
//! Kernels (the backend's table picks one, [`super::kernels`]; every one gives the same bits):
//! scalar; x86-64 AVX2 (`vpmaddubsw` with the sign trick); AVX-VNNI (256-bit `vpdpbusd`, VEX);
//! AVX-512 VNNI (512-bit `vpdpbusd`); aarch64 NEON with dotprod (`sdot`, as inline assembly: the
//! `vdotq_s32` intrinsic is not stable in Rust 1.95) and without it (`smull` + `sadalp`).

// The AVX-512 and AVX-VNNI intrinsics are stable since Rust 1.89, above the declared
// rust-version (as in simd.rs).
#![allow(clippy::incompatible_msrv)]

use crate::error::{Error, Result};
use crate::layers::int8::{QuantWeight, MAX_DIN};
use std::ops::Range;

/// Output channels per weight panel: column blocks handed to [`matmul`] start at a multiple of it.
pub const PANEL: usize = 16;
/// Consecutive k values per 32-bit lane (what `vpdpbusd` sums per lane).
const KG: usize = 4;
/// Packed weight bytes of one column chunk: every row tile passes over a chunk while it sits in
/// L2 (Zen 4: 1 MiB; most cores: ≥ 256 KiB).
const W_CHUNK_BYTES: usize = 256 << 10;

/// One k-group of one panel: 16 channels × 4 k, aligned for whole-line vector loads.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([i8; PANEL * KG]);

fn oom(what: &str, bytes: usize) -> Error {
    Error::OutOfMemory(format!("{what}: {bytes} bytes could not be allocated"))
}

/// Grows `v` to `len` elements of `fill` (never shrinks), failing cleanly when memory runs out.
pub(super) fn grow<T: Copy>(v: &mut Vec<T>, len: usize, fill: T, what: &str) -> Result<()> {
    if v.len() < len {
        v.try_reserve_exact(len - v.len()).map_err(|_| oom(what, len.saturating_mul(size_of::<T>())))?;
        v.resize(len, fill);
    }
    Ok(())
}

// =============================================================================================
// Weights.

/// Weights in the panel layout every kernel reads, built once per model.
pub struct PackedI8 {
    /// Panel p's k-group g is `lines[p·kg + g]`.
    lines: Vec<Line>,
    /// Per channel, padded to whole panels with 0.
    scale: Vec<f32>,
    /// Per channel, `−128·Σ_k q[c, k]`: the VNNI kernels multiply `x + 128` (unsigned) by the
    /// weight and start their sums here, which cancels the offset exactly in i32.
    offset: Vec<i32>,
    dout: usize,
    din: usize,
    /// k-groups (`din` rounded up to a multiple of 4, over 4).
    kg: usize,
    /// The kernel [`matmul`] runs (every one reads this layout).
    kernel: I8Kernel,
}

impl PackedI8 {
    /// Output columns per panel: column blocks handed to [`matmul`] must start at a multiple of it.
    pub const PANEL: usize = PANEL;

    /// Packs a quantized weight. Errors: inconsistent lengths, a −128 (the AVX2 kernel's
    /// exactness needs |q| ≤ 127), `din ≥ MAX_DIN`, or no memory for the panels.
    pub fn new(w: &QuantWeight) -> Result<Self> {
        Self::with_kernel(w, super::kernels::CpuKernels::best().i8)
    }

    /// Packs `w` for [`matmul`] to run with `kernel` (which this CPU must run).
    pub fn with_kernel(w: &QuantWeight, kernel: I8Kernel) -> Result<Self> {
        if !kernel.supported() {
            return Err(Error::arg(format!("int8 matmul: kernel {kernel:?} is not supported by this CPU")));
        }
        let (dout, din) = (w.dout, w.din);
        if w.q.len() != dout * din || w.scale.len() != dout {
            return Err(Error::Shape {
                what: "int8 weight (q, scale)".into(),
                expected: vec![dout * din, dout],
                got: vec![w.q.len(), w.scale.len()],
            });
        }
        if din >= MAX_DIN {
            return Err(Error::arg(format!("int8 weight: din {din} must be below {MAX_DIN} (i32 sums)")));
        }
        if let Some(i) = w.q.iter().position(|&v| v == i8::MIN) {
            return Err(Error::arg(format!(
                "int8 weight: element ({}, {}) is -128, outside -127..=127",
                i / din,
                i % din
            )));
        }
        let (panels, kg) = (dout.div_ceil(PANEL), din.div_ceil(KG));
        let mut lines = Vec::new();
        grow(&mut lines, panels * kg, Line([0; PANEL * KG]), "int8 weight panels")?;
        let mut scale = Vec::new();
        grow(&mut scale, panels * PANEL, 0.0, "int8 weight scales")?;
        let mut offset = Vec::new();
        grow(&mut offset, panels * PANEL, 0, "int8 weight sums")?;
        for o in 0..dout {
            let (p, j) = (o / PANEL, o % PANEL);
            let row = &w.q[o * din..(o + 1) * din];
            for (i, &v) in row.iter().enumerate() {
                lines[p * kg + i / KG].0[j * KG + i % KG] = v;
            }
            scale[o] = w.scale[o];
            // |Σ| ≤ 127·din < 2^24 and 128·127·din < 2^31 for din < MAX_DIN.
            offset[o] = -128 * row.iter().map(|&v| v as i32).sum::<i32>();
        }
        Ok(PackedI8 { lines, scale, offset, dout, din, kg, kernel })
    }

    /// An empty weight (no channels) for `kernel`, to be filled by [`Self::set_rows`]: the
    /// reusable form for operands that change every call (attention's keys and values).
    pub fn empty(kernel: I8Kernel) -> Self {
        PackedI8 { lines: Vec::new(), scale: Vec::new(), offset: Vec::new(), dout: 0, din: 0, kg: 0, kernel }
    }

    /// Repacks in place from quantized rows, each row an output channel with its row's scale
    /// (keys: `S = Q·Kᵀ` multiplies query rows by key rows). Buffers grow, never shrink; the
    /// kernel stays. Quantized rows hold no −128, so every kernel's exactness holds.
    pub fn set_rows(&mut self, rows: &QuantRows) -> Result<()> {
        let (dout, din, kp) = (rows.n, rows.din, rows.kp);
        let (panels, kg) = (dout.div_ceil(PANEL), kp / KG);
        let lines = panels * kg;
        grow(&mut self.lines, lines, Line([0; PANEL * KG]), "int8 weight panels")?;
        grow(&mut self.scale, panels * PANEL, 0.0, "int8 weight scales")?;
        grow(&mut self.offset, panels * PANEL, 0, "int8 weight sums")?;
        (self.dout, self.din, self.kg) = (dout, din, kg);
        // Channels past dout in the last panel: zero weights, scale and offset.
        if dout % PANEL != 0 {
            self.lines[(panels - 1) * kg..lines].fill(Line([0; PANEL * KG]));
        }
        self.scale[dout..panels * PANEL].fill(0.0);
        self.offset[dout..panels * PANEL].fill(0);
        let flip = rows.flip;
        let flip4 = u32::from_ne_bytes([flip; KG]);
        for o in 0..dout {
            let (p, j) = (o / PANEL, o % PANEL);
            let row = &rows.bytes[o * kp..(o + 1) * kp];
            // Σ q over the row (a vectorisable pass), then its 4-byte groups moved as words.
            let sum: i32 = row.iter().map(|&b| (b ^ flip) as i8 as i32).sum();
            for (g, four) in row.chunks_exact(KG).enumerate() {
                let w = u32::from_ne_bytes([four[0], four[1], four[2], four[3]]) ^ flip4;
                let line = &mut self.lines[p * kg + g].0[j * KG..(j + 1) * KG];
                for (d, b) in line.iter_mut().zip(w.to_ne_bytes()) {
                    *d = b as i8;
                }
            }
            self.scale[o] = rows.scale[o];
            self.offset[o] = -128 * sum;
        }
        Ok(())
    }

    /// Repacks in place from f32 columns, each column an output channel quantized on its own
    /// ([`super::simd::quant_cols`]): `x` is `[k, dout]` at row stride `ld` (attention's values,
    /// `P·V` having the head's value columns as channels); rows k with `skip[k] != 0` count as
    /// zeros (padded keys, see [`super::simd::quant_cols`]). `stage` is the caller's scratch for
    /// the quantized `[k, dout]` bytes. Buffers grow, never shrink; the kernel stays.
    pub fn set_cols(
        &mut self,
        x: &[f32],
        (k, dout, ld): (usize, usize, usize),
        skip: &[f32],
        stage: &mut Vec<u8>,
    ) -> Result<()> {
        if k >= MAX_DIN {
            return Err(Error::arg(format!("int8 weight: din {k} must be below {MAX_DIN} (i32 sums)")));
        }
        if k > 0 && (ld < dout || (k - 1).saturating_mul(ld).saturating_add(dout) > x.len()) {
            return Err(Error::Shape { what: "int8 columns".into(), expected: vec![k, ld], got: vec![x.len()] });
        }
        let (panels, kg) = (dout.div_ceil(PANEL), k.div_ceil(KG));
        let lines = panels * kg;
        grow(&mut self.lines, lines, Line([0; PANEL * KG]), "int8 weight panels")?;
        grow(&mut self.scale, panels * PANEL, 0.0, "int8 weight scales")?;
        grow(&mut self.offset, panels * PANEL, 0, "int8 weight sums")?;
        grow(stage, k * dout, 0, "int8 columns")?;
        (self.dout, self.din, self.kg) = (dout, k, kg);
        let q = &mut stage[..k * dout];
        super::simd::quant_cols(x, ld, skip, q, &mut self.scale[..dout]);
        self.scale[dout..panels * PANEL].fill(0.0);
        // −128·Σ_k q[k, c]: a vectorisable pass down the rows.
        let off = &mut self.offset[..panels * PANEL];
        off.fill(0);
        for row in q.chunks_exact(dout.max(1)) {
            for (o, &b) in off.iter_mut().zip(row) {
                *o += b as i8 as i32;
            }
        }
        off.iter_mut().for_each(|o| *o *= -128);
        for p in 0..panels {
            for g in 0..kg {
                let line = &mut self.lines[p * kg + g].0;
                let (c0, k0) = (p * PANEL, g * KG);
                if c0 + PANEL <= dout && k0 + KG <= k {
                    // Four rows of 16 channels interleaved into channel-major groups of 4 k.
                    #[cfg(target_arch = "x86_64")]
                    {
                        // SAFETY: SSE2 is part of x86-64; rows k0..k0+4 hold columns c0..c0+16
                        // (checked above), so each 16-byte load is inside `q`, and the stores
                        // fill the 64-byte line.
                        unsafe { x86::interleave4(&q[k0 * dout + c0..], dout, line) };
                        continue;
                    }
                }
                for j in 0..PANEL {
                    for kk in 0..KG {
                        let (c, r) = (c0 + j, k0 + kk);
                        line[j * KG + kk] = if c < dout && r < k { q[r * dout + c] as i8 } else { 0 };
                    }
                }
            }
        }
        Ok(())
    }

    /// Output channels.
    pub fn dout(&self) -> usize {
        self.dout
    }

    /// Input features.
    pub fn din(&self) -> usize {
        self.din
    }

    /// The kernel [`matmul`] runs on this weight.
    pub fn kernel(&self) -> I8Kernel {
        self.kernel
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> usize {
        self.lines.capacity() * size_of::<Line>() + self.scale.capacity() * 4 + self.offset.capacity() * 4
    }
}

// =============================================================================================
// Activations.

/// Rows of activations quantized for the kernels (reusable scratch: grows, never shrinks).
///
/// Row r's scale is `max_i |x[r, i]| / 127`, 0 for a zero row and NaN when the row holds a NaN
/// or an infinity (its outputs are then NaN). Rows are stored once, padded to the packed K, in
/// the form the kernel they are quantized for reads: signed bytes `q` (AVX2, NEON, scalar) or
/// offset by +128 as unsigned bytes `q ^ 0x80` (the VNNI kernels).
#[derive(Default)]
pub struct QuantRows {
    bytes: Vec<u8>,
    scale: Vec<f32>,
    n: usize,
    din: usize,
    /// Row stride of `bytes`: `din` rounded up to a multiple of 4.
    kp: usize,
    /// The kernel's [`I8Kernel::row_flip`] the bytes were written with (0x80: offset by +128).
    flip: u8,
}

/// How one row is quantized, from the bits of its largest magnitude.
enum RowScale {
    /// All zeros: scale 0, q 0.
    Zero,
    /// A NaN or an infinity: scale NaN (q is 0).
    NonFinite,
    /// `q = clamp(round_ties_even(x·inv), ±127)`, scale `amax / 127`.
    Finite { inv: f32, scale: f32 },
}

impl RowScale {
    /// `bits` is the largest `to_bits() & 0x7fff_ffff` of the row: for non-negative floats the
    /// integer order is the numeric order, and every NaN and infinity lies at or above
    /// 0x7f80_0000, so one exact, order-free integer max finds both the max and non-finite rows.
    fn of(bits: u32) -> Self {
        if bits == 0 {
            RowScale::Zero
        } else if bits >= 0x7f80_0000 {
            RowScale::NonFinite
        } else {
            let amax = f32::from_bits(bits);
            RowScale::Finite { inv: 127.0 / amax, scale: amax / 127.0 }
        }
    }
}

/// One value quantized: the definition every SIMD path matches. `x·inv` is NaN only as 0·∞
/// (`127/amax` overflows for amax < 3.7e-37); `as i8` then gives 0, which the SIMD paths
/// reproduce by zeroing NaN lanes.
#[inline(always)]
fn quant1(x: f32, inv: f32) -> i8 {
    (x * inv).round_ties_even().clamp(-127.0, 127.0) as i8
}

#[inline(always)]
fn abs_bits(x: f32) -> u32 {
    x.to_bits() & 0x7fff_ffff
}

/// Which row quantizer runs (the `simd` variant of the thread's backend table).
type QuantIsa = super::simd::Isa;

/// Quantizes one row into `out` (`x.len()` long) as bytes `(q as u8) ^ flip` (`flip` 0 for
/// signed rows, 0x80 for unsigned ones); returns its scale.
fn quant_row(isa: QuantIsa, x: &[f32], out: &mut [u8], flip: u8) -> f32 {
    debug_assert!(out.len() == x.len());
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `isa` never exceeds what `simd::Isa::detect` found: Avx512 means AVX-512F.
        QuantIsa::Avx512 => return unsafe { x86::quant_row_512(x, out, flip) },
        // SAFETY: likewise, Avx2 means the CPU has AVX2.
        QuantIsa::Avx2 => return unsafe { x86::quant_row_256(x, out, flip) },
        QuantIsa::Scalar => {}
    }
    let _ = isa;
    let bits = x.iter().fold(0, |m, &v| m.max(abs_bits(v)));
    quant_tail(RowScale::of(bits), x, out, flip, 0)
}

/// Quantizes elements `from..` of a row whose scale is known (all of it unless finite) and
/// returns the row's scale: the scalar code that SIMD paths use for their tails.
fn quant_tail(s: RowScale, x: &[f32], out: &mut [u8], flip: u8, from: usize) -> f32 {
    match s {
        RowScale::Zero | RowScale::NonFinite => {
            out.fill(flip);
            if matches!(s, RowScale::Zero) {
                0.0
            } else {
                f32::NAN
            }
        }
        RowScale::Finite { inv, scale } => {
            for i in from..x.len() {
                out[i] = (quant1(x[i], inv) as u8) ^ flip;
            }
            scale
        }
    }
}

impl QuantRows {
    /// Quantizes rows `0..n` of `x` (`[n, din]`, row-major) for `kernel`, replacing what was held.
    pub fn quantize(&mut self, x: &[f32], n: usize, din: usize, kernel: I8Kernel) -> Result<()> {
        self.quantize_strided(x, n, din, din, kernel)
    }

    /// Quantizes rows `0..n` of a strided `x` (row r at `x[r·ld..r·ld + din]`) for `kernel`, as
    /// [`Self::quantize`] does a contiguous one: one head's columns of `[T, H]` queries or keys.
    pub fn quantize_strided(&mut self, x: &[f32], n: usize, din: usize, ld: usize, kernel: I8Kernel) -> Result<()> {
        self.quantize_with(super::simd::isa(), x, (n, din, ld), kernel)
    }

    fn quantize_with(
        &mut self,
        isa: QuantIsa,
        x: &[f32],
        (n, din, ld): (usize, usize, usize),
        k: I8Kernel,
    ) -> Result<()> {
        let fits = n == 0
            || (ld >= din && (n - 1).checked_mul(ld).and_then(|l| l.checked_add(din)).is_some_and(|l| l <= x.len()));
        if !fits {
            return Err(Error::Shape { what: "int8 activations".into(), expected: vec![n, din], got: vec![x.len()] });
        }
        let flip = k.row_flip();
        self.set_rows_with(n, din, k, |r, out| quant_row(isa, &x[r * ld..r * ld + din], out, flip))
    }

    /// Quantizes `n` rows of `din` for `kernel` as they are produced: `produce(r, row)` writes
    /// row r's values into `row` (the caller's scratch of `din`), which is quantized while it is
    /// in L1, as [`Self::quantize`] would quantize it (a layer's output that only feeds an int8
    /// product never goes to memory in f32).
    pub fn quantize_produced(
        &mut self,
        (n, din): (usize, usize),
        kernel: I8Kernel,
        row: &mut [f32],
        mut produce: impl FnMut(usize, &mut [f32]),
    ) -> Result<()> {
        let (isa, flip) = (super::simd::isa(), kernel.row_flip());
        let row = &mut row[..din];
        self.set_rows_with(n, din, kernel, |r, out| {
            produce(r, row);
            quant_row(isa, row, out, flip)
        })
    }

    /// Fills `n` rows of `din` for `kernel` with `row(r, bytes)`, which writes row r's `din`
    /// bytes in the kernel's form (`(q as u8) ^ 0x80` where [`I8Kernel::unsigned_x`], else
    /// `q as u8`, with q in −127..=127) and returns its scale: for callers that quantize as they
    /// produce (attention's probabilities). The pad is written here.
    pub fn set_rows_with(
        &mut self,
        n: usize,
        din: usize,
        kernel: I8Kernel,
        mut row: impl FnMut(usize, &mut [u8]) -> f32,
    ) -> Result<()> {
        if din >= MAX_DIN {
            return Err(Error::arg(format!("int8 activations: din {din} must be below {MAX_DIN} (i32 sums)")));
        }
        let kp = din.next_multiple_of(KG);
        let len = n.checked_mul(kp).ok_or_else(|| oom("int8 activations", usize::MAX))?;
        grow(&mut self.bytes, len, 0, "int8 activations")?;
        grow(&mut self.scale, n, 0.0, "int8 activation scales")?;
        (self.n, self.din, self.kp, self.flip) = (n, din, kp, kernel.row_flip());
        // A zero in the kernel's form: the pad meets zero weights, but nothing may read stale bytes.
        let zero = self.flip;
        for (r, b) in self.bytes[..len].chunks_exact_mut(kp.max(1)).enumerate().take(n) {
            self.scale[r] = if din == 0 { 0.0 } else { row(r, &mut b[..din]) };
            if kp > din {
                b[din..].fill(zero);
            }
        }
        if din == 0 {
            self.scale[..n].fill(0.0);
        }
        Ok(())
    }

    /// Row r's signed values (tests).
    #[cfg(test)]
    fn signed(&self, r: usize) -> Vec<i8> {
        let flip = self.flip;
        self.bytes[r * self.kp..r * self.kp + self.din].iter().map(|&b| (b ^ flip) as i8).collect()
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Features per row.
    pub fn din(&self) -> usize {
        self.din
    }

    /// The rows' scales (NaN for a row with a non-finite value).
    pub fn scales(&self) -> &[f32] {
        &self.scale[..self.n]
    }
}

// =============================================================================================
// Kernel selection.

/// A compiled int8 matrix kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum I8Kernel {
    /// Portable reference (and fallback).
    Scalar,
    /// x86-64 AVX2: `vpmaddubsw` (u8×s8 pairs into i16) with the sign trick, then `vpmaddwd`.
    Avx2,
    /// x86-64 AVX-VNNI: 256-bit VEX `vpdpbusd` (Intel Alder Lake and later, AMD Zen 5).
    AvxVnni,
    /// x86-64 AVX-512 VNNI: 512-bit `vpdpbusd` (Intel Ice Lake and later, AMD Zen 4).
    Avx512Vnni,
    /// aarch64 NEON without the dot-product extension: `smull` + `sadalp`.
    Neon,
    /// aarch64 NEON with the dot-product extension (Armv8.2+ `dotprod`, every current phone
    /// core): `sdot`, four int8 products per i32 lane per instruction.
    NeonDot,
}

impl I8Kernel {
    /// Register block: rows × panels per micro-tile.
    fn tile(self) -> (usize, usize) {
        match self {
            I8Kernel::Scalar => (4, 1),
            I8Kernel::Avx2 => (4, 1),
            I8Kernel::AvxVnni => (6, 1),
            I8Kernel::Avx512Vnni => (8, 2),
            I8Kernel::Neon => (2, 1),
            I8Kernel::NeonDot => (6, 1),
        }
    }

    /// Whether the kernel reads the +128 unsigned rows (and starts from the weight offsets).
    pub fn unsigned_x(self) -> bool {
        matches!(self, I8Kernel::AvxVnni | I8Kernel::Avx512Vnni)
    }

    /// What its rows' bytes are XORed with: 0x80 for the unsigned rows (`q ^ 0x80 = q + 128`),
    /// else 0 (so a byte is `(q as u8) ^ row_flip()`, and `row_flip()` itself is a zero).
    pub fn row_flip(self) -> u8 {
        if self.unsigned_x() {
            0x80
        } else {
            0
        }
    }

    /// Vector width in bits (for caps; 0: scalar).
    pub fn width(self) -> usize {
        match self {
            I8Kernel::Scalar => 0,
            I8Kernel::Neon | I8Kernel::NeonDot => 128,
            I8Kernel::Avx2 | I8Kernel::AvxVnni => 256,
            I8Kernel::Avx512Vnni => 512,
        }
    }
}

impl I8Kernel {
    /// Whether this CPU runs the kernel (from the one probe, [`super::kernels::Features`]).
    pub fn supported(self) -> bool {
        let f = super::kernels::Features::get();
        match self {
            I8Kernel::Scalar => true,
            I8Kernel::Avx2 => f.avx2_fma,
            I8Kernel::AvxVnni => f.avx_vnni,
            I8Kernel::Avx512Vnni => f.avx512_vnni,
            I8Kernel::Neon => f.neon,
            I8Kernel::NeonDot => f.neon_dot,
        }
    }
}

/// Every kernel this CPU can run (for tests and comparisons), best first.
pub fn available() -> Vec<I8Kernel> {
    [I8Kernel::Avx512Vnni, I8Kernel::AvxVnni, I8Kernel::Avx2, I8Kernel::NeonDot, I8Kernel::Neon, I8Kernel::Scalar]
        .into_iter()
        .filter(|k| k.supported())
        .collect()
}

// =============================================================================================
// The product.

/// `y[r·ldy + c]` for r in `rows`, c in `cols` (`cols.start` a multiple of [`PANEL`]) =
/// `(Σ_k qx[r, k]·qw[c, k]) as f32 * (xscale[r] * wscale[c])`, with the weight's kernel
/// ([`PackedI8::kernel`]). Single-threaded;
/// every element's value is independent of the blocks it is computed in, so callers may split
/// rows and columns over threads freely (through [`matmul_raw`], which writes through a pointer).
/// Indices into `y` are absolute: `y` must hold element `(rows.end − 1)·ldy + cols.end − 1`.
///
/// Panics when the operands disagree (`x.din() != w.din()`), a range is out of bounds, `cols`
/// does not start on a panel, `ldy < cols.end`, or `y` is too short.
pub fn matmul(y: &mut [f32], ldy: usize, x: &QuantRows, rows: Range<usize>, w: &PackedI8, cols: Range<usize>) {
    matmul_with(w.kernel, y, ldy, x, rows, w, cols)
}

/// [`matmul`] with a given kernel (which must be in [`available`]; panics otherwise).
pub fn matmul_with(
    k: I8Kernel,
    y: &mut [f32],
    ldy: usize,
    x: &QuantRows,
    rows: Range<usize>,
    w: &PackedI8,
    cols: Range<usize>,
) {
    if !rows.is_empty() && !cols.is_empty() {
        assert!(y.len() > (rows.end - 1) * ldy + cols.end - 1, "int8 matmul: output shorter than its rows");
    }
    // SAFETY: `y` covers every element written (asserted above) and is a unique borrow.
    unsafe { matmul_raw(k, y.as_mut_ptr(), ldy, x, rows, w, cols) }
}

/// [`matmul_with`] writing through a raw pointer, for callers that split one output over
/// threads: tasks given disjoint (row, column) blocks write disjoint elements.
///
/// # Safety
/// `y.add(r·ldy + c)` must be valid for writes for every r in `rows` and c in `cols`, and no other
/// thread may access those elements during the call. (Everything else is checked; see [`matmul`].)
pub unsafe fn matmul_raw(
    k: I8Kernel,
    y: *mut f32,
    ldy: usize,
    x: &QuantRows,
    rows: Range<usize>,
    w: &PackedI8,
    cols: Range<usize>,
) {
    assert!(k.supported(), "int8 kernel {k:?} is not supported by this CPU");
    assert_eq!(x.din, w.din, "int8 matmul: activations and weight disagree on din");
    assert!(rows.start <= rows.end && rows.end <= x.n, "int8 matmul: rows {rows:?} out of 0..{}", x.n);
    assert!(cols.start <= cols.end && cols.end <= w.dout, "int8 matmul: cols {cols:?} out of 0..{}", w.dout);
    assert!(cols.start.is_multiple_of(PANEL), "int8 matmul: cols start {} is not a multiple of {PANEL}", cols.start);
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    assert!(ldy >= cols.end, "int8 matmul: ldy {ldy} below the last column {}", cols.end);
    let (mr, mp) = k.tile();
    assert_eq!(x.flip, k.row_flip(), "int8 matmul: rows quantized for another kernel than {k:?}");
    let xb: *const u8 = x.bytes.as_ptr();
    let kp = x.kp;
    // Columns in chunks whose packed weights stay in L2 while every row tile passes over them;
    // within a chunk each tile's rows (in L1) meet every panel group, so outputs are written row
    // by row in contiguous segments (column strips over many rows ran slower at n = 4096).
    let nc = (W_CHUNK_BYTES / kp.max(1) / (mp * PANEL)).max(1) * mp * PANEL;
    let mut c0 = cols.start;
    while c0 < cols.end {
        let c1 = (c0 + nc).min(cols.end);
        let mut r = rows.start;
        while r < rows.end {
            let nr = mr.min(rows.end - r);
            let mut p0 = c0;
            while p0 < c1 {
                let p1 = (p0 + mp * PANEL).min(c1);
                // SAFETY: r < x.n and p0 < w.dout are inside the checked ranges, so each pointer
                // is the start of (or inside) its buffer: rows of `kp` bytes, panels of `kg`
                // lines, per-channel arrays padded to whole panels; `y` at (r, p0) is covered by
                // this function's contract.
                let t = unsafe {
                    Tile {
                        x: xb.add(r * kp),
                        kp,
                        xs: x.scale.as_ptr().add(r),
                        w: w.lines.as_ptr().add(p0 / PANEL * w.kg),
                        kg: w.kg,
                        offset: w.offset.as_ptr().add(p0),
                        ws: w.scale.as_ptr().add(p0),
                        y: y.add(r * ldy + p0),
                        ldy,
                        nc: p1 - p0,
                    }
                };
                let np = (p1 - p0).div_ceil(PANEL);
                // SAFETY: the tile describes nr ≤ x.n − r rows and np panels within the packed
                // weight (np·16 ≥ nc columns, all < w.dout rounded up to a panel), and `k` runs on
                // this CPU (asserted above).
                unsafe { run_tile(k, &t, nr, np) };
                p0 = p1;
            }
            r += nr;
        }
        c0 = c1;
    }
}

/// One micro-tile's operands: up to R rows × P panels.
struct Tile {
    /// Row 0's bytes (`q` or `u`); rows `kp` apart.
    x: *const u8,
    kp: usize,
    /// Row 0's scale.
    xs: *const f32,
    /// First line of panel 0; panels `kg` lines apart.
    w: *const Line,
    kg: usize,
    /// Column 0's offset and scale (padded to whole panels).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    offset: *const i32,
    ws: *const f32,
    /// Output (row 0, column 0); rows `ldy` apart.
    y: *mut f32,
    ldy: usize,
    /// Columns to write (≤ 16·panels).
    nc: usize,
}

/// Runs one tile of `nr` rows and `np` panels with kernel `k`.
///
/// # Safety
/// `k` must run on this CPU; `t` must describe `nr` readable rows, `np` panels and writable
/// outputs for `nr` rows × `t.nc` columns, with `nr ≤ k.tile().0`, `np ≤ k.tile().1`.
unsafe fn run_tile(k: I8Kernel, t: &Tile, nr: usize, np: usize) {
    match k {
        // SAFETY: this function's contract.
        I8Kernel::Scalar => unsafe { tile_scalar(t, nr, np) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: this function's contract; `Avx2` is detected only with AVX2.
        I8Kernel::Avx2 => unsafe { x86::run_avx2(t, nr, np) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: this function's contract; `AvxVnni` is detected only with AVX-VNNI and AVX2.
        I8Kernel::AvxVnni => unsafe { x86::run_avxvnni(t, nr, np) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: this function's contract; `Avx512Vnni` is detected only with AVX-512 F/BW/VNNI.
        I8Kernel::Avx512Vnni => unsafe { x86::run_512(t, nr, np) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: this function's contract; `Neon` is detected only with NEON.
        I8Kernel::Neon => unsafe { arm::run_neon(t, nr, np) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: this function's contract; `NeonDot` is detected only with NEON and dotprod.
        I8Kernel::NeonDot => unsafe { arm::run_sdot(t, nr, np) },
        #[allow(unreachable_patterns)]
        _ => unreachable!("int8 kernel {k:?} is not compiled for this architecture"),
    }
}

/// Matches `nr` and `np` onto const instances `$f::<R, P>(t)` of a micro-kernel.
macro_rules! tiles {
    ($f:ident, $t:expr, $nr:expr, $np:expr, [$($r:literal),*], $ps:tt) => {
        match $nr {
            $($r => tiles!(@p $f, $t, $r, $np, $ps),)*
            _ => unreachable!("tile rows"),
        }
    };
    (@p $f:ident, $t:expr, $r:literal, $np:expr, [$($p:literal),*]) => {
        match $np {
            $($p => $f::<$r, $p>($t),)*
            _ => unreachable!("tile panels"),
        }
    };
}

/// Stores the first `n` of `v` at `y` (`n ≤ v.len()`).
///
/// # Safety
/// `y..y+n` must be writable.
#[inline(always)]
unsafe fn store_first(y: *mut f32, v: &[f32], n: usize) {
    // SAFETY: `y..y+n` is writable (this function's contract) and `v` holds at least n values.
    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), y, n.min(v.len())) }
}

/// The scalar kernel, on the packed layout (the reference the tests hold against an unpacked
/// definition).
///
/// # Safety
/// As [`run_tile`], for the signed rows.
unsafe fn tile_scalar(t: &Tile, nr: usize, np: usize) {
    // SAFETY: the tile's contract: nr rows of kp = 4·kg bytes, np panels of kg lines, np·16
    // padded scales, and writable outputs for nr rows × nc ≤ 16·np columns.
    unsafe {
        let lines = std::slice::from_raw_parts(t.w, np * t.kg);
        for r in 0..nr {
            let x = std::slice::from_raw_parts(t.x.add(r * t.kp).cast::<i8>(), t.kp);
            let xs = *t.xs.add(r);
            for p in 0..np {
                let mut acc = [0i32; PANEL];
                for (g, line) in lines[p * t.kg..(p + 1) * t.kg].iter().enumerate() {
                    let xg = &x[g * KG..(g + 1) * KG];
                    for (j, a) in acc.iter_mut().enumerate() {
                        let wj = &line.0[j * KG..(j + 1) * KG];
                        *a += (0..KG).map(|i| xg[i] as i32 * wj[i] as i32).sum::<i32>();
                    }
                }
                let mut out = [0.0f32; PANEL];
                for (j, o) in out.iter_mut().enumerate() {
                    *o = acc[j] as f32 * (xs * *t.ws.add(p * PANEL + j));
                }
                let n = t.nc.saturating_sub(p * PANEL).min(PANEL);
                store_first(t.y.add(r * t.ldy + p * PANEL), &out, n);
            }
        }
    }
}

// =============================================================================================
// x86-64.

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{quant_tail, store_first, RowScale, Tile};
    use std::arch::x86_64::*;
    use std::ptr::read_unaligned;

    /// `line[j·4 + r] = rows[r·ld + j]` for 4 rows of 16 bytes (one panel's k-group).
    ///
    /// # Safety
    /// `rows` must hold `3·ld + 16` bytes.
    #[inline(always)]
    pub unsafe fn interleave4(rows: &[u8], ld: usize, line: &mut [i8; 64]) {
        debug_assert!(rows.len() >= 3 * ld + 16);
        // SAFETY: SSE2 is baseline on x86-64; the loads read rows[r·ld..r·ld + 16] for r < 4
        // (inside `rows` by contract) and the stores write the 64 bytes of `line`.
        unsafe {
            let p = rows.as_ptr();
            let r = [0, 1, 2, 3].map(|i| _mm_loadu_si128(p.add(i * ld).cast()));
            let (a, b) = (_mm_unpacklo_epi8(r[0], r[1]), _mm_unpackhi_epi8(r[0], r[1]));
            let (c, d) = (_mm_unpacklo_epi8(r[2], r[3]), _mm_unpackhi_epi8(r[2], r[3]));
            let o = line.as_mut_ptr();
            _mm_storeu_si128(o.cast(), _mm_unpacklo_epi16(a, c));
            _mm_storeu_si128(o.add(16).cast(), _mm_unpackhi_epi16(a, c));
            _mm_storeu_si128(o.add(32).cast(), _mm_unpacklo_epi16(b, d));
            _mm_storeu_si128(o.add(48).cast(), _mm_unpackhi_epi16(b, d));
        }
    }

    /// Whether the EVEX (AVX-512 VL) encoding of the 256-bit VNNI kernel runs here (tests).
    #[cfg(test)]
    pub fn has_vl_vnni() -> bool {
        is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx2")
    }

    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

    /// Row quantizer, AVX-512F: 16 values per step.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `out` as long as `x`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn quant_row_512(x: &[f32], out: &mut [u8], flip: u8) -> f32 {
        let (n, p) = (x.len(), x.as_ptr());
        let end = n / 16 * 16;
        // SAFETY: AVX-512F is available (this function's contract); each load reads x[i..i+16]
        // and each store writes out[i..i+16] with i + 16 ≤ n, and out is n long.
        unsafe {
            let mut m = _mm512_setzero_si512();
            let abs = _mm512_set1_epi32(0x7fff_ffff);
            for i in (0..end).step_by(16) {
                m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(p.add(i))), abs));
            }
            let bits = x[end..].iter().fold(_mm512_reduce_max_epu32(m), |m, &v| m.max(super::abs_bits(v)));
            let s = RowScale::of(bits);
            if let RowScale::Finite { inv, .. } = s {
                let (vinv, lo, hi) = (_mm512_set1_ps(inv), _mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
                let vflip = _mm_set1_epi8(flip as i8);
                for i in (0..end).step_by(16) {
                    let v = _mm512_mul_ps(_mm512_loadu_ps(p.add(i)), vinv);
                    // NaN (0·∞) → 0 as `as i8` does; clamping before rounding equals clamping
                    // after it, the bounds being integers.
                    let v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v), v);
                    let v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
                    let b = _mm512_cvtepi32_epi8(_mm512_cvt_roundps_epi32::<NEAREST>(v));
                    _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), _mm_xor_si128(b, vflip));
                }
            }
            quant_tail(s, x, out, flip, end)
        }
    }

    /// Row quantizer, AVX2: 8 values per step.
    ///
    /// # Safety
    /// The CPU must have AVX2; `out` as long as `x`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn quant_row_256(x: &[f32], out: &mut [u8], flip: u8) -> f32 {
        let (n, p) = (x.len(), x.as_ptr());
        let end = n / 8 * 8;
        // SAFETY: AVX2 is available (this function's contract); each load reads x[i..i+8] and
        // each store writes out[i..i+8] with i + 8 ≤ n, and out is n long.
        unsafe {
            let mut m = _mm256_setzero_si256();
            let abs = _mm256_set1_epi32(0x7fff_ffff);
            for i in (0..end).step_by(8) {
                m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(p.add(i))), abs));
            }
            let lanes: [u32; 8] = std::mem::transmute(m);
            let bits = x[end..].iter().fold(lanes.into_iter().max().unwrap_or(0), |m, &v| m.max(super::abs_bits(v)));
            let s = RowScale::of(bits);
            if let RowScale::Finite { inv, .. } = s {
                let (vinv, lo, hi) = (_mm256_set1_ps(inv), _mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
                // Byte 0 of each i32 lane, per 128-bit half.
                let pick = _mm256_setr_epi8(
                    0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1,
                    -1, -1, -1, -1, -1, -1,
                );
                let vflip = _mm_set1_epi8(flip as i8);
                for i in (0..end).step_by(8) {
                    let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vinv);
                    // As in the AVX-512 path: NaN → 0, clamp, round to nearest even.
                    let v = _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
                    let v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
                    let r = _mm256_cvtps_epi32(_mm256_round_ps::<NEAREST>(v));
                    let s = _mm256_shuffle_epi8(r, pick);
                    let b = _mm_unpacklo_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
                    _mm_storel_epi64(out.as_mut_ptr().add(i).cast(), _mm_xor_si128(b, vflip));
                }
            }
            quant_tail(s, x, out, flip, end)
        }
    }

    /// Sum of the i32 lanes of `PROBE_CHAINS` 256-bit accumulators, for a probe's checksum.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    unsafe fn lanes_sum(acc: &[__m256i; super::PROBE_CHAINS]) -> i64 {
        // SAFETY: a plain reinterpretation of register values (AVX2 available per the contract).
        acc.iter()
            .map(|v| unsafe { std::mem::transmute::<__m256i, [i32; 8]>(*v) }.iter().map(|&x| x as i64).sum::<i64>())
            .sum()
    }

    /// The AVX2 int8 probe: per chain and round, `vpmaddubsw` (u8×s8 pairs into i16) and
    /// `vpmaddwd` with ones into i32 lanes, added to the chain (the AVX2 kernel's inner
    /// sequence); the unsigned operand changes every round so nothing is hoisted.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    pub unsafe fn probe_avx2(rounds: usize) -> i64 {
        let ones = _mm256_set1_epi16(1);
        let mut x = _mm256_set1_epi8(3);
        let step = _mm256_set1_epi8(1);
        let w: [__m256i; super::PROBE_CHAINS] = std::array::from_fn(|i| _mm256_set1_epi8(i as i8 - 6));
        let mut acc = [_mm256_setzero_si256(); super::PROBE_CHAINS];
        for _ in 0..rounds {
            for (a, wi) in acc.iter_mut().zip(&w) {
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_maddubs_epi16(x, *wi), ones));
            }
            // Bytes 3..=66 never saturate a pair sum of i16 (66·6·2 < 32767).
            x = _mm256_and_si256(_mm256_add_epi8(x, step), _mm256_set1_epi8(63));
        }
        // SAFETY: AVX2 is available (this function's contract).
        unsafe { lanes_sum(&acc) }
    }

    /// The AVX-VNNI probe: one 256-bit VEX `vpdpbusd` per chain and round.
    ///
    /// # Safety
    /// AVX2 and AVX-VNNI must be available.
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn probe_avxvnni(rounds: usize) -> i64 {
        let (a, b) = (_mm256_set1_epi8(3), _mm256_set1_epi8(-2));
        let mut acc: [__m256i; super::PROBE_CHAINS] = std::array::from_fn(|i| _mm256_set1_epi32(i as i32));
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                *v = _mm256_dpbusd_avx_epi32(*v, a, b);
            }
        }
        // SAFETY: AVX2 is available (this function's contract).
        unsafe { lanes_sum(&acc) }
    }

    /// The AVX-512 VNNI probe: one 512-bit `vpdpbusd` per chain and round.
    ///
    /// # Safety
    /// AVX-512F and AVX-512 VNNI must be available.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn probe_512(rounds: usize) -> i64 {
        let (a, b) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-2));
        let mut acc: [__m512i; super::PROBE_CHAINS] = std::array::from_fn(|i| _mm512_set1_epi32(i as i32));
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_epi32(v) as i64).sum()
    }

    /// Runs an AVX2 tile.
    ///
    /// # Safety
    /// As `run_tile`; the CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn run_avx2(t: &Tile, nr: usize, np: usize) {
        // SAFETY: the contract of `run_tile`, and AVX2 is available.
        unsafe { tiles!(tile_avx2, t, nr, np, [1, 2, 3, 4], [1]) }
    }

    /// AVX2 micro-kernel, R rows × P panels (each panel two 8-channel halves).
    ///
    /// `vpmaddubsw` multiplies u8 by s8 and adds adjacent pairs into i16 *with saturation*. The
    /// sign trick keeps it exact: the unsigned operand is |x| (≤ 127) and x's sign moves onto the
    /// weight (`vpsignb`: w·sign(x), in −127..=127 because −128 never occurs), so each product is
    /// x·w and each pair sum is at most 2·127·127 = 32258 < 32767. `vpmaddwd` with ones then adds
    /// the two pairs of each lane into i32: a lane is one channel's sum over 4 k.
    ///
    /// # Safety
    /// As `run_tile` with `nr = R`, `np = P`; AVX2 must be available.
    #[inline(always)]
    unsafe fn tile_avx2<const R: usize, const P: usize>(t: &Tile) {
        // SAFETY: AVX2 is available; the tile's contract bounds every access: 4-byte reads at
        // 4g < kp in R rows, aligned 64-byte lines g < kg of P panels, 16·P padded scales, and
        // writes of nc ≤ 16·P columns in R rows.
        unsafe {
            let ones = _mm256_set1_epi16(1);
            let mut acc = [[[_mm256_setzero_si256(); 2]; P]; R];
            for g in 0..t.kg {
                let mut w = [[_mm256_setzero_si256(); 2]; P];
                for (p, wp) in w.iter_mut().enumerate() {
                    let line = t.w.add(p * t.kg + g).cast::<__m256i>();
                    *wp = [_mm256_load_si256(line), _mm256_load_si256(line.add(1))];
                }
                for (r, ar) in acc.iter_mut().enumerate() {
                    let xb = _mm256_set1_epi32(read_unaligned(t.x.add(r * t.kp + 4 * g).cast::<i32>()));
                    let ax = _mm256_sign_epi8(xb, xb);
                    for (ap, wp) in ar.iter_mut().zip(&w) {
                        for h in 0..2 {
                            let prod = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(wp[h], xb));
                            ap[h] = _mm256_add_epi32(ap[h], _mm256_madd_epi16(prod, ones));
                        }
                    }
                }
            }
            epilogue_256(t, &acc);
        }
    }

    /// Scales and stores 256-bit accumulators: `acc as f32 * (xs * ws)`.
    ///
    /// # Safety
    /// As the micro-kernels; AVX must be available.
    #[inline(always)]
    unsafe fn epilogue_256<const R: usize, const P: usize>(t: &Tile, acc: &[[[__m256i; 2]; P]; R]) {
        // SAFETY: 16·P padded scales at t.ws and writes of min(nc − c, 8) columns in R rows
        // (the micro-kernels' contract).
        unsafe {
            for p in 0..P {
                for h in 0..2 {
                    let c = p * 16 + h * 8;
                    let n = t.nc.saturating_sub(c).min(8);
                    if n == 0 {
                        continue;
                    }
                    let ws = _mm256_loadu_ps(t.ws.add(c));
                    for (r, ar) in acc.iter().enumerate() {
                        let sc = _mm256_mul_ps(_mm256_set1_ps(*t.xs.add(r)), ws);
                        let v = _mm256_mul_ps(_mm256_cvtepi32_ps(ar[p][h]), sc);
                        let y = t.y.add(r * t.ldy + c);
                        if n == 8 {
                            _mm256_storeu_ps(y, v);
                        } else {
                            let a: [f32; 8] = std::mem::transmute(v);
                            store_first(y, &a, n);
                        }
                    }
                }
            }
        }
    }

    /// A 256-bit `vpdpbusd` encoding.
    pub trait Dp256 {
        /// `acc + Σ_4 a(u8)·b(s8)` per i32 lane, wrapping.
        ///
        /// # Safety
        /// The encoding's target features must be available.
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
    }

    /// VEX (AVX-VNNI).
    pub struct Vex;
    impl Dp256 for Vex {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: AVX-VNNI is available (the trait's contract); registers only.
            unsafe { _mm256_dpbusd_avx_epi32(acc, a, b) }
        }
    }

    /// EVEX (AVX-512 VNNI + VL): the same operation, so the AVX-VNNI kernel's code can be tested on
    /// CPUs that have only AVX-512 VNNI (as Zen 4).
    #[cfg(test)]
    pub struct Evex;
    #[cfg(test)]
    impl Dp256 for Evex {
        #[inline(always)]
        unsafe fn dp(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: AVX-512 VNNI and VL are available (the trait's contract); registers only.
            unsafe { _mm256_dpbusd_epi32(acc, a, b) }
        }
    }

    /// Runs an AVX-VNNI tile.
    ///
    /// # Safety
    /// As `run_tile`; the CPU must have AVX-VNNI and AVX2.
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn run_avxvnni(t: &Tile, nr: usize, np: usize) {
        // SAFETY: the contract of `run_tile`, and AVX2 and AVX-VNNI are available.
        unsafe { tiles!(tile_vnni_vex, t, nr, np, [1, 2, 3, 4, 5, 6], [1]) }
    }

    #[inline(always)]
    unsafe fn tile_vnni_vex<const R: usize, const P: usize>(t: &Tile) {
        // SAFETY: passed on from `run_avxvnni`.
        unsafe { tile_vnni256::<Vex, R, P>(t) }
    }

    /// Runs the 256-bit VNNI tile in its EVEX encoding (tests).
    ///
    /// # Safety
    /// As `run_tile` for `AvxVnni`; the CPU must have AVX2, AVX-512 VNNI and VL.
    #[cfg(test)]
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    pub unsafe fn run_vnni_evex(t: &Tile, nr: usize, np: usize) {
        // SAFETY: the contract of `run_tile`, with the features the EVEX encoding needs.
        unsafe { tiles!(tile_vnni_evex, t, nr, np, [1, 2, 3, 4, 5, 6], [1]) }
    }

    #[cfg(test)]
    #[inline(always)]
    unsafe fn tile_vnni_evex<const R: usize, const P: usize>(t: &Tile) {
        // SAFETY: passed on from `run_vnni_evex`.
        unsafe { tile_vnni256::<Evex, R, P>(t) }
    }

    /// 256-bit VNNI micro-kernel on the unsigned rows: `vpdpbusd` multiplies u8 by s8 and adds
    /// four products into each i32 lane without saturation, so `Σ (x+128)·w` starting from
    /// `−128·Σ w` is exactly `Σ x·w` (arithmetic mod 2^32; the true value fits in i32).
    ///
    /// # Safety
    /// As `run_tile` with `nr = R`, `np = P`, unsigned rows; `D`'s features and AVX2 available.
    #[inline(always)]
    unsafe fn tile_vnni256<D: Dp256, const R: usize, const P: usize>(t: &Tile) {
        // SAFETY: as `tile_avx2` (the same accesses), plus 16·P padded offsets at t.offset.
        unsafe {
            let mut acc = [[[_mm256_setzero_si256(); 2]; P]; R];
            for p in 0..P {
                for h in 0..2 {
                    let o = _mm256_loadu_si256(t.offset.add(p * 16 + h * 8).cast());
                    for ar in acc.iter_mut() {
                        ar[p][h] = o;
                    }
                }
            }
            for g in 0..t.kg {
                let mut w = [[_mm256_setzero_si256(); 2]; P];
                for (p, wp) in w.iter_mut().enumerate() {
                    let line = t.w.add(p * t.kg + g).cast::<__m256i>();
                    *wp = [_mm256_load_si256(line), _mm256_load_si256(line.add(1))];
                }
                for (r, ar) in acc.iter_mut().enumerate() {
                    let xb = _mm256_set1_epi32(read_unaligned(t.x.add(r * t.kp + 4 * g).cast::<i32>()));
                    for (ap, wp) in ar.iter_mut().zip(&w) {
                        ap[0] = D::dp(ap[0], xb, wp[0]);
                        ap[1] = D::dp(ap[1], xb, wp[1]);
                    }
                }
            }
            epilogue_256(t, &acc);
        }
    }

    /// Runs an AVX-512 VNNI tile.
    ///
    /// # Safety
    /// As `run_tile`; the CPU must have AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn run_512(t: &Tile, nr: usize, np: usize) {
        // SAFETY: the contract of `run_tile`, and the features are available.
        unsafe { tiles!(tile_512, t, nr, np, [1, 2, 3, 4, 5, 6, 7, 8], [1, 2]) }
    }

    /// AVX-512 VNNI micro-kernel, R rows × P panels, one zmm accumulator per (row, panel); the
    /// offset scheme of `tile_vnni256`. (The sign trick instead would need a masked negation of
    /// the weight per row and panel, since AVX-512 has no `vpsignb`: twice the work per product.)
    ///
    /// # Safety
    /// As `run_tile` with `nr = R`, `np = P`, unsigned rows; AVX-512 F/BW/VNNI available.
    #[inline(always)]
    unsafe fn tile_512<const R: usize, const P: usize>(t: &Tile) {
        // SAFETY: the features are available; the tile's contract bounds every access: 4-byte
        // reads at 4g < kp in R rows, aligned lines g < kg of P panels, 16·P padded offsets and
        // scales, and masked writes of nc ≤ 16·P columns in R rows.
        unsafe {
            let mut acc = [[_mm512_setzero_si512(); P]; R];
            for p in 0..P {
                let o = _mm512_loadu_si512(t.offset.add(p * 16).cast());
                for ar in acc.iter_mut() {
                    ar[p] = o;
                }
            }
            for g in 0..t.kg {
                let mut w = [_mm512_setzero_si512(); P];
                for (p, wp) in w.iter_mut().enumerate() {
                    *wp = _mm512_load_si512(t.w.add(p * t.kg + g).cast());
                }
                for (r, ar) in acc.iter_mut().enumerate() {
                    let xb = _mm512_set1_epi32(read_unaligned(t.x.add(r * t.kp + 4 * g).cast::<i32>()));
                    for (ap, wp) in ar.iter_mut().zip(&w) {
                        *ap = _mm512_dpbusd_epi32(*ap, xb, *wp);
                    }
                }
            }
            for p in 0..P {
                let n = t.nc.saturating_sub(p * 16).min(16);
                let mask: __mmask16 = if n == 16 { 0xffff } else { (1u16 << n) - 1 };
                let ws = _mm512_loadu_ps(t.ws.add(p * 16));
                for (r, ar) in acc.iter().enumerate() {
                    let sc = _mm512_mul_ps(_mm512_set1_ps(*t.xs.add(r)), ws);
                    let v = _mm512_mul_ps(_mm512_cvt_roundepi32_ps::<NEAREST>(ar[p]), sc);
                    _mm512_mask_storeu_ps(t.y.add(r * t.ldy + p * 16), mask, v);
                }
            }
        }
    }
}

// =============================================================================================
// aarch64.

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{store_first, Tile};
    use std::arch::aarch64::*;
    use std::ptr::read_unaligned;

    /// Runs a NEON tile.
    ///
    /// # Safety
    /// As `run_tile`; the CPU must have NEON.
    #[target_feature(enable = "neon")]
    pub unsafe fn run_neon(t: &Tile, nr: usize, np: usize) {
        // SAFETY: the contract of `run_tile`, and NEON is available.
        unsafe { tiles!(tile_neon, t, nr, np, [1, 2], [1]) }
    }

    /// The NEON dotprod probe: one `sdot` per chain and round.
    ///
    /// # Safety
    /// NEON and dotprod must be available.
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn probe_sdot(rounds: usize) -> i64 {
        // SAFETY: register-only NEON operations; dotprod is available (this function's contract).
        unsafe {
            let (a, b) = (vdupq_n_s8(3), vdupq_n_s8(-2));
            let mut acc: [int32x4_t; super::PROBE_CHAINS] = std::array::from_fn(|i| vdupq_n_s32(i as i32));
            for _ in 0..rounds {
                for v in acc.iter_mut() {
                    *v = sdot(*v, a, b);
                }
            }
            acc.iter().map(|&v| vaddvq_s32(v) as i64).sum()
        }
    }

    /// Runs a NEON tile with `sdot`.
    ///
    /// # Safety
    /// As `run_tile`; the CPU must have NEON and dotprod.
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn run_sdot(t: &Tile, nr: usize, np: usize) {
        // SAFETY: the contract of `run_tile`, and NEON with dotprod is available.
        unsafe { tiles!(tile_sdot, t, nr, np, [1, 2, 3, 4, 5, 6], [1]) }
    }

    /// `acc[i] += Σ_j a[4i + j]·b[4i + j]` (`sdot`, exact in i32). Written as inline assembly:
    /// the `vdotq_s32` intrinsic is not stable in Rust 1.95; the instruction assembles in
    /// `run_sdot`, which enables `dotprod`, and this is always inlined there.
    #[inline(always)]
    unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: a register-only instruction (no memory, no flags); the caller runs on a CPU
        // with dotprod (the contract of `run_sdot`).
        unsafe {
            std::arch::asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }

    /// NEON micro-kernel with dotprod. A 16-byte quarter of a line is 4 channels × 4 k, which is
    /// `sdot`'s layout: with the row's 4 bytes repeated in every lane, one `sdot` adds 4 k of 4
    /// channels into 4 i32 lanes. Same sums as every other kernel (i32 addition is exact).
    ///
    /// # Safety
    /// As `run_tile` with `nr = R`, `np = P`, signed rows; NEON with dotprod available.
    // The store closure reads acc[r][p][v] across rows: indices say it more plainly.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn tile_sdot<const R: usize, const P: usize>(t: &Tile) {
        // SAFETY: as `tile_neon`: the tile's contract bounds every access.
        unsafe {
            let mut acc = [[[vdupq_n_s32(0); 4]; P]; R];
            for g in 0..t.kg {
                let w = load_quarters::<P>(t, g);
                for (r, ar) in acc.iter_mut().enumerate() {
                    let xb = row_bytes(t, r, g);
                    for (ap, wp) in ar.iter_mut().zip(&w) {
                        for v in 0..4 {
                            ap[v] = sdot(ap[v], wp[v], xb);
                        }
                    }
                }
            }
            for p in 0..P {
                for v in 0..4 {
                    store4(t, p * 16 + v * 4, R, |r| acc[r][p][v]);
                }
            }
        }
    }

    /// The 4 quarters (4 channels × 4 k each) of line `g` of each of `P` panels.
    ///
    /// # Safety
    /// `g < t.kg` and `P` panels within the tile's packed weight; NEON available.
    #[inline(always)]
    unsafe fn load_quarters<const P: usize>(t: &Tile, g: usize) -> [[int8x16_t; 4]; P] {
        // SAFETY: the caller's contract: line g of panels 0..P is inside the packed weight.
        unsafe {
            let mut w = [[vdupq_n_s8(0); 4]; P];
            for (p, wp) in w.iter_mut().enumerate() {
                let line = t.w.add(p * t.kg + g).cast::<i8>();
                for (v, wv) in wp.iter_mut().enumerate() {
                    *wv = vld1q_s8(line.add(16 * v));
                }
            }
            w
        }
    }

    /// Row `r`'s 4 bytes of k-group `g`, repeated in every 32-bit lane.
    ///
    /// # Safety
    /// Row `r` of the tile is readable at bytes 4g..4g+4; NEON available.
    #[inline(always)]
    unsafe fn row_bytes(t: &Tile, r: usize, g: usize) -> int8x16_t {
        // SAFETY: the caller's contract.
        unsafe { vreinterpretq_s8_s32(vdupq_n_s32(read_unaligned(t.x.add(r * t.kp + 4 * g).cast::<i32>()))) }
    }

    /// Writes channels c..c+4 (those below `t.nc`) of rows 0..rows: `sum(r) as f32 · (xs · ws)`,
    /// the two multiplies of the definition, in its order.
    ///
    /// # Safety
    /// The tile's scales cover c..c+4 (padded to whole panels) and its outputs rows 0..rows ×
    /// columns below `t.nc`; NEON available.
    #[inline(always)]
    unsafe fn store4(t: &Tile, c: usize, rows: usize, sum: impl Fn(usize) -> int32x4_t) {
        let n = t.nc.saturating_sub(c).min(4);
        if n == 0 {
            return;
        }
        // SAFETY: the caller's contract bounds the scale reads and the n output writes per row.
        unsafe {
            let ws = vld1q_f32(t.ws.add(c));
            for r in 0..rows {
                let sc = vmulq_f32(vdupq_n_f32(*t.xs.add(r)), ws);
                let out = vmulq_f32(vcvtq_f32_s32(sum(r)), sc);
                let y = t.y.add(r * t.ldy + c);
                if n == 4 {
                    vst1q_f32(y, out);
                } else {
                    let a: [f32; 4] = std::mem::transmute(out);
                    store_first(y, &a, n);
                }
            }
        }
    }

    /// NEON micro-kernel without dotprod. A 16-byte quarter of a line is 4 channels × 4 k;
    /// `smull` of its low (high) half by the row's 4 bytes, repeated, gives 8 exact i16 products
    /// (|x·w| ≤ 127·127) of channels 0–1 (2–3), and `sadalp` adds adjacent pairs into 4 i32
    /// lanes: (c0 k0+k1, c0 k2+k3, c1 …). A final `addp` of the two accumulators gives the 4
    /// channels' sums.
    ///
    /// # Safety
    /// As `run_tile` with `nr = R`, `np = P`, signed rows; NEON available.
    // The store closure reads acc[r][p][v] across rows: indices say it more plainly.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn tile_neon<const R: usize, const P: usize>(t: &Tile) {
        // SAFETY: NEON is available; the tile's contract bounds every access: 4-byte reads at
        // 4g < kp in R rows, 64-byte lines g < kg of P panels, 16·P padded scales, and writes of
        // nc ≤ 16·P columns in R rows.
        unsafe {
            let mut acc = [[[vdupq_n_s32(0); 8]; P]; R];
            for g in 0..t.kg {
                let w = load_quarters::<P>(t, g);
                for (r, ar) in acc.iter_mut().enumerate() {
                    let xb = row_bytes(t, r, g);
                    let xl = vget_low_s8(xb);
                    for (ap, wp) in ar.iter_mut().zip(&w) {
                        for v in 0..4 {
                            ap[2 * v] = vpadalq_s16(ap[2 * v], vmull_s8(vget_low_s8(wp[v]), xl));
                            ap[2 * v + 1] = vpadalq_s16(ap[2 * v + 1], vmull_high_s8(wp[v], xb));
                        }
                    }
                }
            }
            for p in 0..P {
                for v in 0..4 {
                    store4(t, p * 16 + v * 4, R, |r| vpaddq_s32(acc[r][p][2 * v], acc[r][p][2 * v + 1]));
                }
            }
        }
    }
}

// =============================================================================================
// Peak probe.

/// Independent accumulator chains of the probe: enough to cover the dot-product instruction's
/// latency × throughput on current cores (as the FMA probe's 12).
const PROBE_CHAINS: usize = 12;

/// Int8 operations (a multiply or an add of a multiply-accumulate each, as GOP/s counts) one
/// round of [`peak_probe`] does with `k`: its dot-product instruction on every chain. `None` for
/// a kernel without one (scalar, NEON without dotprod).
pub fn probe_ops_per_round(k: I8Kernel) -> Option<usize> {
    let macs = match k {
        I8Kernel::Avx512Vnni => 64,
        I8Kernel::AvxVnni | I8Kernel::Avx2 => 32,
        I8Kernel::NeonDot => 16,
        I8Kernel::Scalar | I8Kernel::Neon => return None,
    };
    Some(2 * macs * PROBE_CHAINS)
}

/// A probe of this core's int8 peak with `k`'s inner instruction sequence (`vpdpbusd` for VNNI,
/// `vpmaddubsw` + `vpmaddwd` + `vpaddd` for AVX2, `sdot` for NEON dotprod): `rounds` rounds of
/// [`probe_ops_per_round`] operations on registers only, returning a checksum (so none is
/// optimised away). `None` when `k` has no such instruction or this CPU lacks it.
pub fn peak_probe(k: I8Kernel, rounds: usize) -> Option<i64> {
    probe_ops_per_round(k)?;
    if !k.supported() {
        return None;
    }
    match k {
        // SAFETY: each probe's target features are available (`supported` above).
        #[cfg(target_arch = "x86_64")]
        I8Kernel::Avx512Vnni => Some(unsafe { x86::probe_512(rounds) }),
        #[cfg(target_arch = "x86_64")]
        I8Kernel::AvxVnni => Some(unsafe { x86::probe_avxvnni(rounds) }),
        #[cfg(target_arch = "x86_64")]
        I8Kernel::Avx2 => Some(unsafe { x86::probe_avx2(rounds) }),
        #[cfg(target_arch = "aarch64")]
        I8Kernel::NeonDot => Some(unsafe { arm::probe_sdot(rounds) }),
        _ => None,
    }
}

// =============================================================================================

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::int8::quantize_weight;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The peak probe does the operations it counts: its checksum after 1000 rounds is what
    /// that many dot products of its constant operands give, for every kernel this CPU runs
    /// (`None` exactly for the kernels without a dot-product instruction).
    #[test]
    fn peak_probe_counts_what_it_runs() {
        let rounds = 1000usize;
        for k in available() {
            let got = peak_probe(k, rounds);
            // Chains start at lane value i (VNNI, sdot) and add 4 products 3·(−2) per lane per
            // round; AVX2 adds 4·x·(i − 6) per lane per round, x = (3 + round) mod 64.
            let chains = PROBE_CHAINS as i64;
            let start: i64 = (0..chains).sum();
            let per_lane = |lanes: i64| lanes * (start - chains * 24 * rounds as i64);
            let want = match k {
                I8Kernel::Avx512Vnni => Some(per_lane(16)),
                I8Kernel::AvxVnni => Some(per_lane(8)),
                I8Kernel::NeonDot => Some(per_lane(4)),
                I8Kernel::Avx2 => {
                    let xs: i64 = (0..rounds as i64).map(|r| (3 + r) % 64).sum();
                    let ws: i64 = (0..chains).map(|i| i - 6).sum();
                    Some(8 * 4 * ws * xs)
                }
                I8Kernel::Scalar | I8Kernel::Neon => None,
            };
            assert_eq!(got, want, "{k:?}");
            assert_eq!(probe_ops_per_round(k).is_some(), want.is_some(), "{k:?}");
        }
    }

    /// The definition, on unpacked operands: quantize each row, sum in i64 (no overflow
    /// question), then the two multiplies.
    fn reference(x: &[f32], n: usize, w: &QuantWeight) -> Vec<f32> {
        let (din, dout) = (w.din, w.dout);
        let mut y = vec![0.0f32; n * dout];
        for r in 0..n {
            let xr = &x[r * din..(r + 1) * din];
            let amax_bits = xr.iter().map(|v| v.to_bits() & 0x7fff_ffff).max().unwrap_or(0);
            let amax = f32::from_bits(amax_bits);
            let (qx, xs): (Vec<i64>, f32) = if amax == 0.0 {
                (vec![0; din], 0.0)
            } else if !amax.is_finite() {
                (vec![0; din], f32::NAN)
            } else {
                let inv = 127.0 / amax;
                (xr.iter().map(|&v| (v * inv).round_ties_even().clamp(-127.0, 127.0) as i64).collect(), amax / 127.0)
            };
            for c in 0..dout {
                let acc: i64 = (0..din).map(|k| qx[k] * w.q[c * din + k] as i64).sum();
                y[r * dout + c] = (acc as i32) as f32 * (xs * w.scale[c]);
            }
        }
        y
    }

    /// Runs a kernel, including the test-only EVEX encoding of the AVX-VNNI code.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Run {
        K(I8Kernel),
        #[cfg(target_arch = "x86_64")]
        VnniEvex,
    }

    fn runs() -> Vec<Run> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut v: Vec<Run> = available().into_iter().map(Run::K).collect();
        #[cfg(target_arch = "x86_64")]
        if x86::has_vl_vnni() && !v.contains(&Run::K(I8Kernel::AvxVnni)) {
            v.push(Run::VnniEvex);
        }
        v
    }

    /// The kernel a run's rows are quantized for.
    fn kernel_of(k: Run) -> I8Kernel {
        match k {
            Run::K(k) => k,
            #[cfg(target_arch = "x86_64")]
            Run::VnniEvex => I8Kernel::Avx512Vnni,
        }
    }

    /// `x` quantized for the run's kernel.
    fn rows_for(k: Run, x: &[f32], n: usize, din: usize) -> QuantRows {
        let mut xq = QuantRows::default();
        xq.quantize(x, n, din, kernel_of(k)).unwrap();
        xq
    }

    fn run(k: Run, y: &mut [f32], ldy: usize, x: &QuantRows, rows: Range<usize>, w: &PackedI8, cols: Range<usize>) {
        match k {
            Run::K(k) => matmul_with(k, y, ldy, x, rows, w, cols),
            #[cfg(target_arch = "x86_64")]
            Run::VnniEvex => {
                // Same driver as matmul_raw, with the EVEX tiles: reuse it through a local copy
                // of its loop (tile 6 × 1, unsigned rows).
                assert!(!rows.is_empty() && !cols.is_empty());
                assert!(y.len() > (rows.end - 1) * ldy + cols.end - 1);
                let kp = x.kp;
                for r in rows.clone().step_by(6) {
                    let nr = 6.min(rows.end - r);
                    for c0 in cols.clone().step_by(PANEL) {
                        let c1 = (c0 + PANEL).min(cols.end);
                        // SAFETY: as in matmul_raw: rows and columns in range, y long enough
                        // (asserted), and the CPU has the EVEX VNNI features (checked in runs()).
                        unsafe {
                            let t = Tile {
                                x: x.bytes.as_ptr().add(r * kp),
                                kp,
                                xs: x.scale.as_ptr().add(r),
                                w: w.lines.as_ptr().add(c0 / PANEL * w.kg),
                                kg: w.kg,
                                offset: w.offset.as_ptr().add(c0),
                                ws: w.scale.as_ptr().add(c0),
                                y: y.as_mut_ptr().add(r * ldy + c0),
                                ldy,
                                nc: c1 - c0,
                            };
                            x86::run_vnni_evex(&t, nr, 1);
                        }
                    }
                }
            }
        }
    }

    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
    }

    /// Random activations with a zero row, a tiny row (127/amax overflows), a NaN row and an
    /// infinity, and random weights with a zero row and varied row magnitudes.
    fn data(rng: &mut ChaCha8Rng, n: usize, din: usize, dout: usize) -> (Vec<f32>, QuantWeight) {
        let mut x: Vec<f32> = (0..n * din).map(|_| rng.random_range(-3.0..3.0f32)).collect();
        if din > 0 {
            if n > 1 {
                x[din..2 * din].fill(0.0);
            }
            if n > 2 {
                let row = &mut x[2 * din..3 * din];
                row.fill(0.0);
                row[0] = 1e-38;
                row[din / 2] = -3e-39;
            }
            if n > 4 {
                x[4 * din + din / 3] = f32::NAN;
            }
            if n > 7 {
                x[7 * din] = f32::NEG_INFINITY;
            }
        }
        let mut w: Vec<f32> = (0..dout * din)
            .map(|i| rng.random_range(-1.0..1.0f32) * (1.0 + (i / din.max(1)) as f32 * 0.37).powi(2))
            .collect();
        if dout > 1 {
            w[din..2 * din].fill(0.0);
        }
        (x, quantize_weight(&w, dout, din).unwrap())
    }

    #[test]
    fn every_kernel_matches_the_reference_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let kernels = runs();
        eprintln!("int8 kernels under test: {kernels:?}");
        #[cfg(target_arch = "aarch64")]
        {
            assert!(kernels.contains(&Run::K(I8Kernel::Neon)));
            // scripts/cross-check.sh says which CPU qemu emulates, so a kernel cannot go missing
            // unnoticed: 1 for its default CPU (dotprod), 0 for a Cortex-A53 (none).
            let sdot = kernels.contains(&Run::K(I8Kernel::NeonDot));
            match std::env::var("ELECTRA_EXPECT_SDOT").as_deref() {
                Ok("1") => assert!(sdot, "the CPU has dotprod but the sdot kernel is not under test"),
                Ok("0") => assert!(!sdot, "a CPU without dotprod runs the sdot kernel"),
                _ => {}
            }
        }
        for &din in &[1, 3, 4, 5, 64, 127, 256, 384] {
            for &dout in &[1, 15, 16, 17, 33, 256] {
                let pw = PackedI8::new(&quantize_weight(&vec![0.0; dout * din], dout, din).unwrap()).unwrap();
                assert_eq!(pw.dout(), dout);
                for &n in &[1, 2, 3, 5, 8, 13, 64] {
                    let (x, qw) = data(&mut rng, n, din, dout);
                    let want = reference(&x, n, &qw);
                    let pw = PackedI8::new(&qw).unwrap();
                    for &k in &kernels {
                        let xq = rows_for(k, &x, n, din);
                        let mut y = vec![f32::from_bits(0x7fc0_dead); n * dout];
                        run(k, &mut y, dout, &xq, 0..n, &pw, 0..dout);
                        assert!(same(&y, &want), "{k:?} n {n} din {din} dout {dout}");
                        // A block of rows and columns, in an output with a wider stride.
                        let (r0, r1) = (n / 3, n - n / 4);
                        let c0 = (dout / 2) / PANEL * PANEL;
                        let c1 = dout - dout / 5;
                        if r0 < r1 && c0 < c1 {
                            let ldy = dout + 3;
                            let mut yb = vec![0.0f32; n * ldy];
                            run(k, &mut yb, ldy, &xq, r0..r1, &pw, c0..c1);
                            for r in 0..n {
                                for c in 0..dout {
                                    let inside = (r0..r1).contains(&r) && (c0..c1).contains(&c);
                                    let (got, exp) = (yb[r * ldy + c], if inside { want[r * dout + c] } else { 0.0 });
                                    assert!(same(&[got], &[exp]), "{k:?} block ({r}, {c}) n {n} din {din} dout {dout}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Weights repacked in place from quantized rows (`set_rows`) or from f32 columns
    /// (`set_cols`) are the weights `PackedI8::with_kernel` packs from the same values: the same
    /// products, bit for bit, on every kernel, also when a larger shape was packed before.
    #[test]
    fn repacked_weights_equal_packed_ones() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        for &k in &available() {
            let (mut by_rows, mut by_cols, mut stage) = (PackedI8::empty(k), PackedI8::empty(k), Vec::new());
            // Largest first, so that later shapes reuse longer buffers.
            for &(n, din, dout) in &[(9, 70, 40), (5, 64, 33), (3, 5, 16), (4, 1, 1), (2, 8, 0)] {
                let (x, _) = data(&mut rng, n, din, dout);
                let mut w: Vec<f32> = (0..dout * din).map(|_| rng.random_range(-2.0..2.0f32)).collect();
                if dout > 2 && din > 0 {
                    w[2 * din] = f32::NAN; // a channel with a NaN: its scale is NaN
                }
                // Channels as rows: quantized like activations, then packed.
                let mut wr = QuantRows::default();
                wr.quantize(&w, dout, din, k).unwrap();
                by_rows.set_rows(&wr).unwrap();
                let qw = QuantWeight {
                    q: (0..dout).flat_map(|o| wr.signed(o)).collect(),
                    scale: wr.scales().to_vec(),
                    dout,
                    din,
                };
                let want_w = PackedI8::with_kernel(&qw, k).unwrap();
                // The same channels as the columns of wᵀ (`[din, dout]`, stride dout + 3).
                let ld = dout + 3;
                let mut wt = vec![0.0f32; din * ld];
                for o in 0..dout {
                    for i in 0..din {
                        wt[i * ld + o] = w[o * din + i];
                    }
                }
                by_cols.set_cols(&wt, (din, dout, ld), &[], &mut stage).unwrap();
                let xq = rows_for(Run::K(k), &x, n, din);
                let mut want = vec![0.0f32; n * dout];
                matmul(&mut want, dout, &xq, 0..n, &want_w, 0..dout);
                for (what, p) in [("set_rows", &by_rows), ("set_cols", &by_cols)] {
                    assert_eq!((p.dout(), p.din()), (dout, din));
                    let mut y = vec![1.0f32; n * dout];
                    matmul(&mut y, dout, &xq, 0..n, p, 0..dout);
                    assert!(same(&y, &want), "{what} {k:?} n {n} din {din} dout {dout}");
                }
            }
        }
    }

    #[test]
    fn blocks_equal_one_call() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (n, din, dout) = (37, 200, 90);
        let (x, qw) = data(&mut rng, n, din, dout);
        let pw = PackedI8::new(&qw).unwrap();
        for &k in &runs() {
            let xq = rows_for(k, &x, n, din);
            let mut whole = vec![0.0; n * dout];
            run(k, &mut whole, dout, &xq, 0..n, &pw, 0..dout);
            for (rs, cs) in [(1, 16), (5, 32), (9, 48), (36, 80), (n, 16)] {
                let mut y = vec![0.0; n * dout];
                for r0 in (0..n).step_by(rs) {
                    for c0 in (0..dout).step_by(cs) {
                        run(k, &mut y, dout, &xq, r0..(r0 + rs).min(n), &pw, c0..(c0 + cs).min(dout));
                    }
                }
                assert!(same(&y, &whole), "{k:?} blocks {rs} x {cs}");
            }
            // Rows quantized per block by the caller, written through a slice of the output.
            let mut y = vec![0.0; n * dout];
            let mut part = QuantRows::default();
            for r0 in (0..n).step_by(10) {
                let r1 = (r0 + 10).min(n);
                part.quantize(&x[r0 * din..r1 * din], r1 - r0, din, kernel_of(k)).unwrap();
                run(k, &mut y[r0 * dout..], dout, &part, 0..r1 - r0, &pw, 0..dout);
            }
            assert!(same(&y, &whole), "{k:?} rows quantized per block");
        }
    }

    #[test]
    fn row_quantizers_match_the_scalar_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for isa in super::super::simd::Isa::available() {
            for len in [0, 1, 7, 8, 15, 16, 17, 33, 100, 257] {
                for case in 0..6 {
                    let mut x: Vec<f32> = (0..len).map(|_| rng.random_range(-10.0..10.0f32)).collect();
                    if len > 0 {
                        match case {
                            1 => x.fill(0.0),
                            2 => x[len / 2] = f32::NAN,
                            3 => x[len - 1] = f32::INFINITY,
                            4 => {
                                x.fill(0.0);
                                x[0] = -2e-38;
                                x[len - 1] = 1e-40;
                            }
                            // Exact ties: amax 127 makes inv 1, so x·inv = x.
                            5 => {
                                for (i, v) in x.iter_mut().enumerate() {
                                    *v = (i as f32 - 40.0) * 0.5;
                                }
                                x[0] = 127.0;
                            }
                            _ => {}
                        }
                    }
                    let (mut q0, mut u0, mut q1, mut u1) = (vec![9; len], vec![9; len], vec![7; len], vec![7; len]);
                    let s0 = quant_row(QuantIsa::Scalar, &x, &mut q0, 0);
                    let s1 = quant_row(isa, &x, &mut q1, 0);
                    assert_eq!(quant_row(QuantIsa::Scalar, &x, &mut u0, 0x80).to_bits(), s0.to_bits());
                    assert_eq!(quant_row(isa, &x, &mut u1, 0x80).to_bits(), s0.to_bits());
                    assert!(same(&[s0], &[s1]) && q0 == q1 && u0 == u1, "{isa:?} len {len} case {case}");
                    assert!(q0.iter().zip(&u0).all(|(&q, &u)| u == q ^ 0x80 && q != 0x80));
                    let q0: Vec<i8> = q0.iter().map(|&b| b as i8).collect();
                    if case == 5 && len > 45 {
                        assert_eq!(&q0[..1], &[127]);
                        // −0.5, 0, 0.5, 1, 1.5, 2, 2.5 (ties to even).
                        assert_eq!(&q0[39..46], &[0, 0, 0, 1, 2, 2, 2]);
                    }
                }
            }
        }
    }

    #[test]
    fn close_to_the_f32_product() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, din, dout) = (16, 256, 64);
        let x: Vec<f32> = (0..n * din).map(|_| rng.random_range(-1.0..1.0f32)).collect();
        let w: Vec<f32> = (0..dout * din).map(|_| rng.random_range(-0.1..0.1f32)).collect();
        let qw = quantize_weight(&w, dout, din).unwrap();
        let pw = PackedI8::new(&qw).unwrap();
        let mut xq = QuantRows::default();
        xq.quantize(&x, n, din, pw.kernel()).unwrap();
        let mut y = vec![0.0; n * dout];
        matmul(&mut y, dout, &xq, 0..n, &pw, 0..dout);
        let (mut err, mut mag) = (0.0f64, 0.0f64);
        for r in 0..n {
            for c in 0..dout {
                let exact: f64 = (0..din).map(|k| x[r * din + k] as f64 * w[c * din + k] as f64).sum();
                // The scale of the product: Σ|x·w|, what rounding errors are relative to.
                mag += (0..din).map(|k| (x[r * din + k] * w[c * din + k]).abs() as f64).sum::<f64>();
                err += (y[r * dout + c] as f64 - exact).abs();
            }
        }
        assert!(err / mag < 0.02, "mean error {} of the mean |x·w| sum", err / mag);
        let dq = qw.dequantize();
        assert!(w.iter().zip(&dq).zip(0..).all(|((a, b), i)| (a - b).abs() <= qw.scale[i / din] * 0.5 + 1e-9));
    }

    #[test]
    fn weight_quantization_rules() {
        // Scale 1 exactly (127/127), so w/scale = w: ties round to even.
        let w = [127.0, 0.5, 1.5, 2.5, -2.5, -0.5, 127.0, -127.0, 0.0, 0.0, 0.0, 0.0, -8.0, 4.0, 2.0, 1.0];
        let q = quantize_weight(&w, 4, 4).unwrap();
        assert_eq!(q.scale[..3], [1.0, 1.0, 0.0]);
        assert_eq!(q.q[..8], [127, 0, 2, 2, -2, 0, 127, -127]);
        assert_eq!(q.q[8..12], [0; 4]);
        assert_eq!(q.scale[3], 8.0 / 127.0);
        assert_eq!(q.q[12], -127);
        assert!(q.q.iter().all(|&v| (-127..=127).contains(&v)));
        let dq = q.dequantize();
        assert_eq!(dq[..4], [127.0, 0.0, 2.0, 2.0]);
        assert_eq!(dq[12], -8.0);
        // Non-finite weights and bad shapes are errors; so is −128 in a stored weight.
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut w = w;
            w[5] = bad;
            assert!(matches!(quantize_weight(&w, 4, 4), Err(Error::InvalidArgument(_))));
        }
        assert!(quantize_weight(&w, 3, 4).is_err());
        let mut q2 = q.clone();
        q2.q[3] = -128;
        assert!(PackedI8::new(&q2).is_err());
        let p = PackedI8::new(&q).unwrap();
        assert_eq!((p.dout(), p.din()), (4, 4));
        assert!(p.bytes() >= 64 + 16 * 8);
        // Empty shapes.
        assert!(PackedI8::new(&quantize_weight(&[], 0, 5).unwrap()).is_ok());
        let z = quantize_weight(&[], 3, 0).unwrap();
        let pz = PackedI8::new(&z).unwrap();
        let mut xq = QuantRows::default();
        xq.quantize(&[], 2, 0, pz.kernel()).unwrap();
        let mut y = vec![1.0; 6];
        matmul(&mut y, 3, &xq, 0..2, &pz, 0..3);
        assert_eq!(y, [0.0; 6]);
    }

    /// `cargo test --release --lib int8 -- --ignored --nocapture`: GOP/s of every kernel (and the
    /// fp32 gemm) on ELECTRA-Small shapes, one thread. Not a timed test: it only prints.
    #[test]
    #[ignore]
    fn bench_int8_kernels() {
        use std::time::Instant;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (n, din, dout) in [(128, 256, 256), (128, 256, 1024), (128, 1024, 256), (4096, 256, 1024)] {
            let x: Vec<f32> = (0..n * din).map(|_| rng.random_range(-1.0..1.0f32)).collect();
            let w: Vec<f32> = (0..dout * din).map(|_| rng.random_range(-1.0..1.0f32)).collect();
            let pw = PackedI8::new(&quantize_weight(&w, dout, din).unwrap()).unwrap();
            let mut xq = QuantRows::default();
            let mut y = vec![0.0; n * dout];
            let ops = 2.0 * (n * din * dout) as f64;
            let time = |f: &mut dyn FnMut()| {
                f();
                let reps = 5;
                (0..reps)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        t.elapsed().as_secs_f64()
                    })
                    .fold(f64::INFINITY, f64::min)
            };
            let tq = time(&mut || xq.quantize(&x, n, din, pw.kernel()).unwrap());
            print!("n {n:4} {din:4}x{dout:4}: quantize {:6.1} us |", tq * 1e6);
            let mut fp = vec![0.0f32; n * dout];
            let wt = super::super::matmul::Mat::rows(&w, dout, din).t();
            let tf = time(&mut || {
                super::super::matmul::gemm_serial(
                    1.0,
                    super::super::matmul::Mat::rows(&x, n, din),
                    wt,
                    0.0,
                    &mut fp,
                    dout,
                    1,
                )
            });
            print!(" fp32 {:6.1} |", ops / tf * 1e-9);
            for r in runs() {
                let xq = rows_for(r, &x, n, din);
                let t = time(&mut || run(r, &mut y, dout, &xq, 0..n, &pw, 0..dout));
                print!(" {r:?} {:6.1} |", ops / t * 1e-9);
            }
            println!(" GOP/s");
        }
    }
}
