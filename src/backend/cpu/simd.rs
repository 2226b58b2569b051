//! Elementwise and row kernels written once over a 16-lane vector type and compiled three
//! times: AVX-512F, AVX2+FMA, and a portable scalar emulation of the same 16 lanes. The CPU is
//! probed once at run time (`is_x86_feature_detected!`); builds never assume `target-cpu`.
//!
//! Every kernel performs the same operations in the same order on every path (fused
//! multiply-adds included, reductions through the same 16 lanes and the same tree), so the SIMD
//! paths are bit-identical to the scalar one and results do not depend on the CPU's vector width.
//! Which path runs is the backend's kernel table ([`super::kernels`]); `simd` options cap it.

// The AVX-512 intrinsics are stable since Rust 1.89 (as are the gemm crate's x86-v4 kernels),
// above the declared rust-version; building therefore needs 1.89 or newer.
#![allow(clippy::incompatible_msrv)]

/// Which compiled variant of the kernels runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable code (16 emulated lanes).
    Scalar,
    /// x86-64 AVX2 + FMA (two 8-lane registers per vector).
    Avx2,
    /// x86-64 AVX-512F (one 16-lane register).
    Avx512,
}

impl Isa {
    /// The best variant this CPU supports (from the one probe, [`super::kernels::Features`]).
    pub fn detect() -> Isa {
        super::kernels::CpuKernels::best().isa
    }

    /// Every variant this CPU can run (for tests), scalar first.
    pub fn available() -> Vec<Isa> {
        let f = super::kernels::Features::get();
        [(Isa::Scalar, true), (Isa::Avx2, f.avx2_fma), (Isa::Avx512, f.avx512f)]
            .into_iter()
            .filter_map(|(i, ok)| ok.then_some(i))
            .collect()
    }

    /// Vector width in bits (for caps; 0: scalar).
    pub fn width(self) -> usize {
        match self {
            Isa::Scalar => 0,
            Isa::Avx2 => 256,
            Isa::Avx512 => 512,
        }
    }
}

/// The variant this thread runs: its backend's table ([`super::kernels`]), else the best.
#[inline]
pub fn isa() -> Isa {
    super::kernels::current_isa()
}

/// Lane count of every vector type.
pub const W: usize = 16;

/// A vector of 16 `f32` lanes.
///
/// # Safety
/// Every method is `unsafe`: the x86 implementations require their target features (the
/// dispatch below calls them only where the CPU has them), and loads and stores require the
/// addressed elements to be valid.
pub trait V16: Copy {
    /// All lanes `x`.
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn splat(x: f32) -> Self;
    /// 16 values from `p`.
    ///
    /// # Safety
    /// `Self`'s target features must be available; `p..p+16` must be readable.
    unsafe fn load(p: *const f32) -> Self;
    /// The first `n < 16` values from `p`; the other lanes are `fill`.
    ///
    /// # Safety
    /// `Self`'s target features must be available; `n < 16` and `p..p+n` must be readable.
    unsafe fn load_part(p: *const f32, n: usize, fill: f32) -> Self;
    /// Stores 16 values at `p`.
    ///
    /// # Safety
    /// `Self`'s target features must be available; `p..p+16` must be writable.
    unsafe fn store(self, p: *mut f32);
    /// Stores the first `n < 16` lanes at `p`.
    ///
    /// # Safety
    /// `Self`'s target features must be available; `n < 16` and `p..p+n` must be writable.
    unsafe fn store_part(self, p: *mut f32, n: usize);
    /// Lane-wise `self + o`.
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn add(self, o: Self) -> Self;
    /// Lane-wise `self - o`.
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn sub(self, o: Self) -> Self;
    /// Lane-wise `self · o`.
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn mul(self, o: Self) -> Self;
    /// Lane-wise `self / o`.
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn div(self, o: Self) -> Self;
    /// Lane-wise `self·a + b`, rounded once.
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn fma(self, a: Self, b: Self) -> Self;
    /// Lane-wise maximum (`o` where either is NaN, as `maxps`).
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn max(self, o: Self) -> Self;
    /// Lane-wise minimum (`o` where either is NaN, as `minps`).
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn min(self, o: Self) -> Self;
    /// Round to nearest, ties to even.
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn round(self) -> Self;
    /// Round toward −∞.
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn floor(self) -> Self;
    /// `2^self` for integral lanes in [−126, 127].
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn pow2i(self) -> Self;
    /// Per lane: `a ≥ b ? t : f` (f where either is NaN).
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn sel_ge(a: Self, b: Self, t: Self, f: Self) -> Self;
    /// The 16 lanes.
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU.
    unsafe fn to_array(self) -> [f32; W];
    /// Stores the first `n ≤ 16` lanes, integral values in −127..=127, as bytes
    /// `(v as i8 as u8) ^ flip` (the int8 kernels' rows: [`super::int8`]).
    ///
    /// # Safety
    /// `Self`'s target features must be available on this CPU, and `p..p+n` writable.
    unsafe fn store_bytes(self, p: *mut u8, n: usize, flip: u8);
}

/// Sum of the 16 lanes in a fixed tree: lane i += lane i+8, then +4, +2, +1.
///
/// # Safety
/// `V`'s target features must be available on this CPU.
#[inline(always)]
unsafe fn hsum<V: V16>(v: V) -> f32 {
    // SAFETY: `V`'s target features are available (this function's contract); `to_array`
    // touches no memory but its result.
    tree(unsafe { v.to_array() }, |a, b| a + b)
}

/// Maximum of the 16 lanes (same tree).
///
/// # Safety
/// `V`'s target features must be available on this CPU.
#[inline(always)]
unsafe fn hmax<V: V16>(v: V) -> f32 {
    // SAFETY: as in `hsum`: `V`'s target features are available (this function's contract).
    tree(unsafe { v.to_array() }, |a, b| if a > b { a } else { b })
}

#[inline(always)]
fn tree(mut a: [f32; W], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut w = W / 2;
    while w > 0 {
        for i in 0..w {
            a[i] = f(a[i], a[i + w]);
        }
        w /= 2;
    }
    a[0]
}

/// The portable variant: 16 lanes in an array.
#[derive(Clone, Copy)]
pub struct Scalar([f32; W]);

macro_rules! lanes {
    ($a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {{
        Scalar(std::array::from_fn(|i| {
            let ($x, $y) = ($a.0[i], $b.0[i]);
            $e
        }))
    }};
}

// The methods' contracts are those declared on `V16`; the scalar variant needs no target
// features, so only the loads and stores have anything to uphold.
impl V16 for Scalar {
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Scalar([x; W])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `p..p+16` is readable (the `V16::load` contract); `read_unaligned` needs no
        // alignment, and every bit pattern is a valid `[f32; 16]`.
        Scalar(unsafe { std::ptr::read_unaligned(p as *const [f32; W]) })
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize, fill: f32) -> Self {
        let mut r = [fill; W];
        for (i, v) in r.iter_mut().enumerate().take(n) {
            // SAFETY: `i < n` and `p..p+n` is readable (the `V16::load_part` contract).
            *v = unsafe { *p.add(i) };
        }
        Scalar(r)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: `p..p+16` is writable (the `V16::store` contract); `write_unaligned` needs no
        // alignment.
        unsafe { std::ptr::write_unaligned(p as *mut [f32; W], self.0) }
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        for i in 0..n {
            // SAFETY: `i < n` and `p..p+n` is writable (the `V16::store_part` contract).
            unsafe { *p.add(i) = self.0[i] };
        }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        lanes!(self, o, |x, y| x + y)
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        lanes!(self, o, |x, y| x - y)
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        lanes!(self, o, |x, y| x * y)
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        lanes!(self, o, |x, y| x / y)
    }
    #[inline(always)]
    unsafe fn fma(self, a: Self, b: Self) -> Self {
        Scalar(std::array::from_fn(|i| self.0[i].mul_add(a.0[i], b.0[i])))
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        lanes!(self, o, |x, y| if x > y { x } else { y })
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        lanes!(self, o, |x, y| if x < y { x } else { y })
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        Scalar(self.0.map(f32::round_ties_even))
    }
    #[inline(always)]
    unsafe fn floor(self) -> Self {
        Scalar(self.0.map(f32::floor))
    }
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        Scalar(self.0.map(|n| f32::from_bits(((n as i32 + 127) as u32) << 23)))
    }
    #[inline(always)]
    unsafe fn sel_ge(a: Self, b: Self, t: Self, f: Self) -> Self {
        Scalar(std::array::from_fn(|i| if a.0[i] >= b.0[i] { t.0[i] } else { f.0[i] }))
    }
    #[inline(always)]
    unsafe fn to_array(self) -> [f32; W] {
        self.0
    }
    #[inline(always)]
    unsafe fn store_bytes(self, p: *mut u8, n: usize, flip: u8) {
        for i in 0..n.min(W) {
            // SAFETY: `i < n` and `p..p+n` is writable (the `V16::store_bytes` contract).
            unsafe { *p.add(i) = (self.0[i] as i8 as u8) ^ flip };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{V16, W};
    use std::arch::x86_64::*;

    /// AVX-512F: one zmm register.
    #[derive(Clone, Copy)]
    pub struct Avx512(__m512);

    // The methods' contracts are those declared on `V16` (for this type: the CPU has AVX-512F).
    impl V16 for Avx512 {
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_set1_ps(x)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: AVX-512F is available and `p..p+16` is readable (the `V16::load` contract);
            // `loadu` has no alignment requirement.
            unsafe { Avx512(_mm512_loadu_ps(p)) }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize, fill: f32) -> Self {
            // SAFETY: AVX-512F is available and `p..p+n` is readable, `n < 16` (the
            // `V16::load_part` contract); the mask enables exactly lanes 0..n, and masked-off
            // lanes are not accessed (no fault), so only `p..p+n` is read.
            unsafe {
                let k: __mmask16 = ((1u32 << n) - 1) as __mmask16;
                Avx512(_mm512_mask_loadu_ps(_mm512_set1_ps(fill), k, p))
            }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: AVX-512F is available and `p..p+16` is writable (the `V16::store` contract);
            // `storeu` has no alignment requirement.
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn store_part(self, p: *mut f32, n: usize) {
            // SAFETY: AVX-512F is available and `p..p+n` is writable, `n < 16` (the
            // `V16::store_part` contract); the mask enables exactly lanes 0..n, so only
            // `p..p+n` is written.
            unsafe {
                let k: __mmask16 = ((1u32 << n) - 1) as __mmask16;
                _mm512_mask_storeu_ps(p, k, self.0)
            }
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_add_ps(self.0, o.0)) }
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_sub_ps(self.0, o.0)) }
        }
        #[inline(always)]
        unsafe fn mul(self, o: Self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_mul_ps(self.0, o.0)) }
        }
        #[inline(always)]
        unsafe fn div(self, o: Self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_div_ps(self.0, o.0)) }
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_fmadd_ps(self.0, a.0, b.0)) }
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_max_ps(self.0, o.0)) }
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_min_ps(self.0, o.0)) }
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)) }
        }
        #[inline(always)]
        unsafe fn floor(self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe { Avx512(_mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(self.0)) }
        }
        #[inline(always)]
        unsafe fn pow2i(self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe {
                let n = _mm512_cvtps_epi32(self.0);
                Avx512(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127)))))
            }
        }
        #[inline(always)]
        unsafe fn sel_ge(a: Self, b: Self, t: Self, f: Self) -> Self {
            // SAFETY: AVX-512F is available (the `V16` contract); register operations only.
            unsafe {
                let m = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a.0, b.0);
                Avx512(_mm512_mask_blend_ps(m, f.0, t.0))
            }
        }
        #[inline(always)]
        unsafe fn to_array(self) -> [f32; W] {
            // SAFETY: AVX-512F is available (the `V16` contract); `__m512` and `[f32; 16]` are
            // both 64 bytes of plain `f32` data, so the transmute is a bit copy.
            unsafe { std::mem::transmute(self.0) }
        }
        #[inline(always)]
        unsafe fn store_bytes(self, p: *mut u8, n: usize, flip: u8) {
            // SAFETY: AVX-512F is available (the `V16` contract); the store writes 16 bytes only
            // when n = 16, else the first n through a copy, within `p..p+n` (writable by contract).
            unsafe {
                let b = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(self.0));
                let b = _mm_xor_si128(b, _mm_set1_epi8(flip as i8));
                if n >= W {
                    _mm_storeu_si128(p.cast(), b);
                } else {
                    let a: [u8; W] = std::mem::transmute(b);
                    std::ptr::copy_nonoverlapping(a.as_ptr(), p, n);
                }
            }
        }
    }

    /// AVX2 + FMA: two ymm registers (lanes 0–7, 8–15).
    #[derive(Clone, Copy)]
    pub struct Avx2(__m256, __m256);

    /// Lanes `i < n` of 8 set (all ones), the others clear.
    ///
    /// # Safety
    /// AVX2 must be available on this CPU.
    #[inline(always)]
    unsafe fn mask8(n: usize) -> __m256i {
        // SAFETY: AVX2 is available (this function's contract); register operations only.
        unsafe {
            let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
        }
    }

    macro_rules! both {
        ($s:expr, $o:expr, $f:ident) => {
            Avx2($f($s.0, $o.0), $f($s.1, $o.1))
        };
    }

    // The methods' contracts are those declared on `V16` (for this type: the CPU has AVX2 and FMA).
    impl V16 for Avx2 {
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe { Avx2(_mm256_set1_ps(x), _mm256_set1_ps(x)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: AVX2 is available and `p..p+16` is readable (the `V16::load` contract): both
            // 8-lane halves, `p..p+8` and `p+8..p+16`, are in bounds; `loadu` needs no alignment.
            unsafe { Avx2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize, fill: f32) -> Self {
            // SAFETY: AVX2 is available and `p..p+n` is readable, `n < 16` (the `V16::load_part`
            // contract). `mask8` enables lanes below `n` (low half) and below `n − 8` (high half),
            // so `maskload` reads only `p..p+n`; masked-off lanes are not accessed (no fault).
            // The high half's address is formed with `wrapping_add`, as it may lie past the
            // slice when `n ≤ 8` (then nothing is read through it).
            unsafe {
                let f = _mm256_set1_ps(fill);
                let (m0, m1) = (mask8(n), mask8(n.saturating_sub(8)));
                let lo = _mm256_blendv_ps(f, _mm256_maskload_ps(p, m0), _mm256_castsi256_ps(m0));
                let hi = _mm256_blendv_ps(f, _mm256_maskload_ps(p.wrapping_add(8), m1), _mm256_castsi256_ps(m1));
                Avx2(lo, hi)
            }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: AVX2 is available and `p..p+16` is writable (the `V16::store` contract): both
            // 8-lane halves are in bounds; `storeu` needs no alignment.
            unsafe {
                _mm256_storeu_ps(p, self.0);
                _mm256_storeu_ps(p.add(8), self.1);
            }
        }
        #[inline(always)]
        unsafe fn store_part(self, p: *mut f32, n: usize) {
            // SAFETY: AVX2 is available and `p..p+n` is writable, `n < 16` (the
            // `V16::store_part` contract); `mask8` enables only lanes below `n` (low half) and
            // `n − 8` (high half), so only `p..p+n` is written; the high half's address uses
            // `wrapping_add`, as it may lie past the slice when `n ≤ 8`.
            unsafe {
                _mm256_maskstore_ps(p, mask8(n), self.0);
                _mm256_maskstore_ps(p.wrapping_add(8), mask8(n.saturating_sub(8)), self.1);
            }
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe { both!(self, o, _mm256_add_ps) }
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe { both!(self, o, _mm256_sub_ps) }
        }
        #[inline(always)]
        unsafe fn mul(self, o: Self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe { both!(self, o, _mm256_mul_ps) }
        }
        #[inline(always)]
        unsafe fn div(self, o: Self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe { both!(self, o, _mm256_div_ps) }
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe { Avx2(_mm256_fmadd_ps(self.0, a.0, b.0), _mm256_fmadd_ps(self.1, a.1, b.1)) }
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe { both!(self, o, _mm256_max_ps) }
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe { both!(self, o, _mm256_min_ps) }
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe {
                const R: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
                Avx2(_mm256_round_ps::<R>(self.0), _mm256_round_ps::<R>(self.1))
            }
        }
        #[inline(always)]
        unsafe fn floor(self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe { Avx2(_mm256_floor_ps(self.0), _mm256_floor_ps(self.1)) }
        }
        #[inline(always)]
        unsafe fn pow2i(self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe {
                let bias = _mm256_set1_epi32(127);
                let lo = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(self.0), bias));
                let hi = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(self.1), bias));
                Avx2(_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi))
            }
        }
        #[inline(always)]
        unsafe fn sel_ge(a: Self, b: Self, t: Self, f: Self) -> Self {
            // SAFETY: AVX2 and FMA are available (the `V16` contract); register operations only.
            unsafe {
                let lo = _mm256_cmp_ps::<_CMP_GE_OQ>(a.0, b.0);
                let hi = _mm256_cmp_ps::<_CMP_GE_OQ>(a.1, b.1);
                Avx2(_mm256_blendv_ps(f.0, t.0, lo), _mm256_blendv_ps(f.1, t.1, hi))
            }
        }
        #[inline(always)]
        unsafe fn to_array(self) -> [f32; W] {
            // SAFETY: AVX2 is available (the `V16` contract); `(__m256, __m256)` is two 32-byte
            // fields in 64 bytes (no padding), all initialised `f32` data, and every bit pattern
            // is a valid `[f32; 16]`, so the transmute is a plain bit copy.
            unsafe { std::mem::transmute((self.0, self.1)) }
        }
        #[inline(always)]
        unsafe fn store_bytes(self, p: *mut u8, n: usize, flip: u8) {
            // SAFETY: AVX2 is available (the `V16` contract); the store writes 16 bytes only
            // when n = 16, else the first n through a copy, within `p..p+n` (writable by contract).
            unsafe {
                let (lo, hi) = (_mm256_cvtps_epi32(self.0), _mm256_cvtps_epi32(self.1));
                // Saturating packs keep lane order within each 128-bit half: 0-3, 4-7, then 8-15.
                let l = _mm_packs_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256::<1>(lo));
                let h = _mm_packs_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256::<1>(hi));
                let b = _mm_xor_si128(_mm_packs_epi16(l, h), _mm_set1_epi8(flip as i8));
                if n >= W {
                    _mm_storeu_si128(p.cast(), b);
                } else {
                    let a: [u8; W] = std::mem::transmute(b);
                    std::ptr::copy_nonoverlapping(a.as_ptr(), p, n);
                }
            }
        }
    }
}

/// Defines `pub fn $name(args)` that runs the generic `$imp::<V>(args)` with the best vector
/// type, each instantiation compiled inside a function carrying its target features.
macro_rules! dispatch {
    ($(#[$doc:meta])* pub fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? => $imp:ident) => {
        $(#[$doc])*
        pub fn $name($($a: $t),*) $(-> $r)? {
            $imp::dispatch(isa(), $($a),*)
        }
        mod $imp {
            use super::*;
            /// Runs the kernel with the given variant (which the CPU must support).
            pub fn dispatch(isa: Isa, $($a: $t),*) $(-> $r)? {
                #[cfg(target_arch = "x86_64")]
                {
                    /// # Safety
                    /// The CPU must have AVX-512F.
                    #[target_feature(enable = "avx512f")]
                    unsafe fn k512($($a: $t),*) $(-> $r)? {
                        // SAFETY: the CPU has AVX-512F (this function's contract), the one
                        // requirement of the kernel on `Avx512`; it bounds its accesses by its slices.
                        unsafe { super::$imp::<x86::Avx512>($($a),*) }
                    }
                    /// # Safety
                    /// The CPU must have AVX2 and FMA.
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn k256($($a: $t),*) $(-> $r)? {
                        // SAFETY: the CPU has AVX2 and FMA (this function's contract), the one
                        // requirement of the kernel on `Avx2`; it bounds its accesses by its slices.
                        unsafe { super::$imp::<x86::Avx2>($($a),*) }
                    }
                    match isa {
                        // SAFETY: `isa` never exceeds what `Isa::detect` found on this CPU, so
                        // `Avx512` means the CPU has AVX-512F.
                        Isa::Avx512 => return unsafe { k512($($a),*) },
                        // SAFETY: likewise, `Avx2` means `Isa::detect` found AVX2 and FMA.
                        Isa::Avx2 => return unsafe { k256($($a),*) },
                        Isa::Scalar => {}
                    }
                }
                let _ = isa;
                // SAFETY: the scalar variant needs no target features, and the kernel bounds its
                // accesses by its slices.
                unsafe { super::$imp::<Scalar>($($a),*) }
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Math: exp and erf on vectors.

/// # Safety
/// The vector type's target features must be available.
///
/// e^x to about 1 ulp (Cephes `expf`): x = n·ln2 + r, a degree-6 polynomial in r, and 2^n
/// applied in two halves so that results down to the subnormals and 0 come out right.
#[inline(always)]
pub unsafe fn exp<V: V16>(x: V) -> V {
    // SAFETY: `V`'s target features are available (this function's contract); vector
    // arithmetic on values only, no memory is accessed.
    unsafe {
        // Clamp so NaN survives (x86 min/max return the second operand when either is NaN).
        let (y, n) = exp_reduced(V::splat(88.72).min(V::splat(-105.0).max(x)));
        let n1 = n.mul(V::splat(0.5)).floor();
        let n2 = n.sub(n1);
        y.mul(n1.pow2i()).mul(n2.pow2i())
    }
}

/// [`exp`]'s reduction: x = n·ln2 + r, and e^r by its degree-6 polynomial; returns (e^r, n).
///
/// # Safety
/// The vector type's target features must be available.
#[inline(always)]
unsafe fn exp_reduced<V: V16>(x: V) -> (V, V) {
    // SAFETY: `V`'s target features are available (this function's contract); vector
    // arithmetic on values only, no memory is accessed.
    unsafe {
        let n = x.mul(V::splat(std::f32::consts::LOG2_E)).round();
        let r = n.fma(V::splat(-0.693_359_4), x);
        let r = n.fma(V::splat(2.121_944_4e-4), r);
        let mut p = V::splat(1.987_569_1e-4);
        p = p.fma(r, V::splat(1.398_2e-3));
        p = p.fma(r, V::splat(8.333_452e-3));
        p = p.fma(r, V::splat(4.166_579_6e-2));
        p = p.fma(r, V::splat(0.166_666_65));
        p = p.fma(r, V::splat(0.5));
        (p.fma(r.mul(r), r).add(V::splat(1.0)), n)
    }
}

/// # Safety
/// The vector type's target features must be available.
///
/// e^x for x ≤ 0 as erf needs it: [`exp`]'s arithmetic, with arguments below −87 taken as −87
/// and 2^n applied in one multiply (n ≥ −126 is a normal power of two, so the product rounds
/// once, as exp's two exact halves do). Where the two differ (x < −87), erf's `1 − t·P(t)·e^x`
/// rounds to exactly 1 either way (it does from x < −17 on), so erf's bits are unchanged; a
/// third fewer operations than [`exp`] for the GELU of every feed-forward element.
#[inline(always)]
unsafe fn exp_for_erf<V: V16>(x: V) -> V {
    // SAFETY: `V`'s target features are available (this function's contract); vector
    // arithmetic on values only, no memory is accessed.
    unsafe {
        // NaN survives (max returns its second operand when either is NaN).
        let (y, n) = exp_reduced(V::splat(-87.0).max(x));
        y.mul(n.pow2i())
    }
}

/// # Safety
/// The vector type's target features must be available.
///
/// erf(x) by Abramowitz & Stegun 7.1.26, `1 − t·P(t)·e^(−x²)` with `t = 1/(1 + p|x|)`, to
/// 1.5e-7 absolute — the formula of PyTorch's vectorized CPU `erf`, which its GELU uses. Tails
/// go to exactly ±1 (GELU of large negative inputs is exactly 0, as in PyTorch).
#[inline(always)]
pub unsafe fn erf<V: V16>(x: V) -> V {
    // SAFETY: `V`'s target features are available (this function's contract); vector
    // arithmetic on values only, no memory is accessed.
    unsafe {
        let zero = V::splat(0.0);
        let neg = zero.sub(x);
        let ax = x.max(neg);
        let t = V::splat(1.0).div(V::splat(0.327_591_1).fma(ax, V::splat(1.0)));
        let mut r = V::splat(1.061_405_4);
        r = r.fma(t, V::splat(-1.453_152));
        r = r.fma(t, V::splat(1.421_413_8));
        r = r.fma(t, V::splat(-0.284_496_72));
        r = r.fma(t, V::splat(0.254_829_6));
        r = r.mul(t);
        let y = V::splat(1.0).sub(r.mul(exp_for_erf(neg.mul(x))));
        V::sel_ge(x, zero, y, zero.sub(y))
    }
}

const INV_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// GELU (erf form): `0.5·x·(1 + erf(x/√2))`.
///
/// # Safety
/// `V`'s target features must be available on this CPU.
#[inline(always)]
unsafe fn gelu_v<V: V16>(x: V) -> V {
    // SAFETY: `V`'s target features are available (this function's contract); vector
    // arithmetic on values only, no memory is accessed.
    unsafe {
        let half_x = x.mul(V::splat(0.5));
        half_x.fma(erf(x.mul(V::splat(INV_SQRT_2))), half_x)
    }
}

/// GELU′: `0.5·(1 + erf(x/√2)) + x·φ(x)`.
///
/// # Safety
/// `V`'s target features must be available on this CPU.
#[inline(always)]
unsafe fn gelu_grad_v<V: V16>(x: V) -> V {
    // SAFETY: `V`'s target features are available (this function's contract); vector
    // arithmetic on values only, no memory is accessed.
    unsafe {
        let cdf = V::splat(0.5).fma(erf(x.mul(V::splat(INV_SQRT_2))), V::splat(0.5));
        let pdf = exp(x.mul(x).mul(V::splat(-0.5))).mul(V::splat(INV_SQRT_2PI));
        x.fma(pdf, cdf)
    }
}

/// Scalar GELU, bit-identical to the vector kernels.
pub fn gelu(x: f32) -> f32 {
    // SAFETY: the `Scalar` variant needs no target features, and this touches no memory.
    unsafe { gelu_v(Scalar::splat(x)).0[0] }
}

/// Scalar GELU′, bit-identical to the vector kernels.
pub fn gelu_grad(x: f32) -> f32 {
    // SAFETY: the `Scalar` variant needs no target features, and this touches no memory.
    unsafe { gelu_grad_v(Scalar::splat(x)).0[0] }
}

/// Scalar e^x, bit-identical to the vector kernels.
pub fn expf(x: f32) -> f32 {
    // SAFETY: the `Scalar` variant needs no target features, and this touches no memory.
    unsafe { exp(Scalar::splat(x)).0[0] }
}

// ---------------------------------------------------------------------------------------------
// Loops: `while i < n` in steps of 16 with `cnt = min(16, n − i)`; `ld`/`st` mask the tail.
// (No closures: a closure would be compiled without the target features and call the
// intrinsics out of line.)

/// Loads `cnt ≤ 16` values; missing lanes are `fill`.
///
/// # Safety
/// `V`'s target features must be available, and `p..p+cnt` readable.
#[inline(always)]
unsafe fn ld<V: V16>(p: *const f32, cnt: usize, fill: f32) -> V {
    // SAFETY: `V`'s target features are available and `p..p+cnt` is readable (this
    // function's contract): all 16 lanes when `cnt == 16`, else `cnt < 16` of them.
    unsafe {
        if cnt == W {
            V::load(p)
        } else {
            V::load_part(p, cnt, fill)
        }
    }
}

/// Stores the first `cnt ≤ 16` lanes.
///
/// # Safety
/// `V`'s target features must be available, and `p..p+cnt` writable.
#[inline(always)]
unsafe fn st<V: V16>(v: V, p: *mut f32, cnt: usize) {
    // SAFETY: `V`'s target features are available and `p..p+cnt` is writable (this
    // function's contract): all 16 lanes when `cnt == 16`, else `cnt < 16` of them.
    unsafe {
        if cnt == W {
            v.store(p)
        } else {
            v.store_part(p, cnt)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kernels.

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn gelu_forward_imp<V: V16>(out: &mut [f32], x: &[f32]) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is
    // `min(out.len(), x.len())`, so it stays inside the slices.
    unsafe {
        let n = out.len().min(x.len());
        let (o, xp) = (out.as_mut_ptr(), x.as_ptr());
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            st(gelu_v(ld::<V>(xp.add(i), c, 0.0)), o.add(i), c);
            i += W;
        }
    }
}
dispatch!(
    /// `out[i] = GELU(x[i])` (erf form).
    pub fn gelu_forward(out: &mut [f32], x: &[f32]) => gelu_forward_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn bias_gelu_imp<V: V16>(pre: &mut [f32], act: &mut [f32], bias: &[f32]) {
    // SAFETY: `V`'s target features are available (this function's contract). `p` and `a` are
    // `w`-element chunks and `bias` has `w` elements; every `ld`/`st` covers elements i..i+c with
    // i < w and c = min(16, w − i), inside all three.
    unsafe {
        let w = bias.len();
        for (p, a) in pre.chunks_exact_mut(w).zip(act.chunks_exact_mut(w)) {
            let (pp, ap, bp) = (p.as_mut_ptr(), a.as_mut_ptr(), bias.as_ptr());
            let mut i = 0;
            while i < w {
                let c = (w - i).min(W);
                let v = ld::<V>(pp.add(i), c, 0.0).add(ld(bp.add(i), c, 0.0));
                st(v, pp.add(i), c);
                st(gelu_v(v), ap.add(i), c);
                i += W;
            }
        }
    }
}
dispatch!(
    /// Per row of width `bias.len()`: `pre += bias`, `act = GELU(pre)`.
    pub fn bias_gelu(pre: &mut [f32], act: &mut [f32], bias: &[f32]) => bias_gelu_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn gelu_backward_imp<V: V16>(dx: &mut [f32], dy: &[f32], x: &[f32]) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is the shortest of `dx`,
    // `dy` and `x`, so it stays inside the slices.
    unsafe {
        let n = dx.len().min(dy.len()).min(x.len());
        let (o, gp, xp) = (dx.as_mut_ptr(), dy.as_ptr(), x.as_ptr());
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            st(ld::<V>(gp.add(i), c, 0.0).mul(gelu_grad_v(ld(xp.add(i), c, 0.0))), o.add(i), c);
            i += W;
        }
    }
}
dispatch!(
    /// `dx[i] = dy[i]·GELU′(x[i])`.
    pub fn gelu_backward(dx: &mut [f32], dy: &[f32], x: &[f32]) => gelu_backward_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn gelu_backward_inplace_imp<V: V16>(d: &mut [f32], x: &[f32]) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is `min(d.len(), x.len())`,
    // so it stays inside the slices.
    unsafe {
        let n = d.len().min(x.len());
        let (o, xp) = (d.as_mut_ptr(), x.as_ptr());
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            st(ld::<V>(o.add(i), c, 0.0).mul(gelu_grad_v(ld(xp.add(i), c, 0.0))), o.add(i), c);
            i += W;
        }
    }
}
dispatch!(
    /// `d[i] *= GELU′(x[i])`.
    pub fn gelu_backward_inplace(d: &mut [f32], x: &[f32]) => gelu_backward_inplace_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn add_rows_imp<V: V16>(y: &mut [f32], row: &[f32]) {
    // SAFETY: `V`'s target features are available (this function's contract). That is all
    // `add_assign_imp` requires; it bounds its accesses by its slices.
    unsafe {
        let w = row.len();
        for r in y.chunks_exact_mut(w) {
            add_assign_imp::<V>(r, row);
        }
    }
}
dispatch!(
    /// Adds `row` to every row of `y` (width `row.len()`): a bias.
    pub fn add_rows(y: &mut [f32], row: &[f32]) => add_rows_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn add_assign_imp<V: V16>(y: &mut [f32], x: &[f32]) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is `min(y.len(), x.len())`,
    // so it stays inside the slices.
    unsafe {
        let n = y.len().min(x.len());
        let (o, xp) = (y.as_mut_ptr(), x.as_ptr());
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            st(ld::<V>(o.add(i), c, 0.0).add(ld(xp.add(i), c, 0.0)), o.add(i), c);
            i += W;
        }
    }
}
dispatch!(
    /// `y[i] += x[i]`.
    pub fn add_assign(y: &mut [f32], x: &[f32]) => add_assign_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn column_sums_imp<V: V16>(acc: &mut [f32], data: &[f32], rows: usize, stride: usize) {
    // SAFETY: `V`'s target features are available (this function's contract). Lane block q of strip
    // j is touched only when c[q] > 0, i.e. j + q·16 < n, and then covers columns up to
    // j + q·16 + c[q] ≤ n = `acc.len()`; in `data`, row r < rows starts at r·stride, and
    // (rows − 1)·stride + n ≤ `data.len()` is asserted on entry.
    unsafe {
        let n = acc.len();
        assert!(rows == 0 || (rows - 1) * stride + n <= data.len(), "column_sums out of bounds");
        let (a, d) = (acc.as_mut_ptr(), data.as_ptr());
        // Strips of 4 vectors kept in registers across all rows; each column still adds its rows in
        // order, exactly as a scalar loop would.
        let mut j = 0;
        while j < n {
            let c = [0, 1, 2, 3].map(|q| (n.saturating_sub(j + q * W)).min(W));
            let mut s = [V::splat(0.0); 4];
            for q in 0..4 {
                if c[q] > 0 {
                    s[q] = ld(a.add(j + q * W), c[q], 0.0);
                }
            }
            for r in 0..rows {
                let row = d.add(r * stride + j);
                for q in 0..4 {
                    if c[q] > 0 {
                        s[q] = s[q].add(ld(row.add(q * W), c[q], 0.0));
                    }
                }
            }
            for q in 0..4 {
                if c[q] > 0 {
                    st(s[q], a.add(j + q * W), c[q]);
                }
            }
            j += 4 * W;
        }
    }
}
dispatch!(
    /// `acc[j] += Σ_r data[r·stride + j]` for `r < rows`, rows added in order (bias gradients).
    pub fn column_sums(acc: &mut [f32], data: &[f32], rows: usize, stride: usize) => column_sums_imp
);

/// The saved rows of one LayerNorm for [`ln_param_grads`]: row r of `dout` and `x` starts at
/// `r·stride`; `mean` and `rstd` hold one value per row.
#[derive(Clone, Copy)]
pub struct LnRows<'a> {
    /// Output gradients.
    pub dout: &'a [f32],
    /// Inputs.
    pub x: &'a [f32],
    /// Row means.
    pub mean: &'a [f32],
    /// Row reciprocal standard deviations.
    pub rstd: &'a [f32],
    /// Elements from one row's start to the next.
    pub stride: usize,
}

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn ln_param_grads_imp<V: V16>(dg: &mut [f32], db: &mut [f32], rows: LnRows) {
    let LnRows { dout, x, mean, rstd, stride } = rows;
    // SAFETY: `V`'s target features are available (this function's contract). Lane block q of strip
    // j is touched only when c[q] > 0, i.e. j + q·16 < n, and then covers columns up to
    // j + q·16 + c[q] ≤ n ≤ `dg.len()`, `db.len()`; in `dout` and `x`, row r < rows starts at
    // r·stride, and (rows − 1)·stride + n ≤ both lengths is asserted on entry.
    unsafe {
        let n = dg.len().min(db.len());
        let rows = mean.len().min(rstd.len());
        assert!(rows == 0 || (rows - 1) * stride + n <= dout.len().min(x.len()), "ln_param_grads out of bounds");
        let (gp, bp, dp, xp) = (dg.as_mut_ptr(), db.as_mut_ptr(), dout.as_ptr(), x.as_ptr());
        // Strips of 2 vectors (4 accumulators) in registers across all rows, rows in order.
        let mut j = 0;
        while j < n {
            let c = [0, 1].map(|q| (n.saturating_sub(j + q * W)).min(W));
            let mut sg = [V::splat(0.0); 2];
            let mut sb = [V::splat(0.0); 2];
            for q in 0..2 {
                if c[q] > 0 {
                    sg[q] = ld(gp.add(j + q * W), c[q], 0.0);
                    sb[q] = ld(bp.add(j + q * W), c[q], 0.0);
                }
            }
            for r in 0..rows {
                let (mu, rs) = (V::splat(mean[r]), V::splat(rstd[r]));
                let off = r * stride + j;
                for q in 0..2 {
                    if c[q] > 0 {
                        let d = ld::<V>(dp.add(off + q * W), c[q], 0.0);
                        let xh = ld::<V>(xp.add(off + q * W), c[q], 0.0).sub(mu).mul(rs);
                        sg[q] = d.fma(xh, sg[q]);
                        sb[q] = sb[q].add(d);
                    }
                }
            }
            for q in 0..2 {
                if c[q] > 0 {
                    st(sg[q], gp.add(j + q * W), c[q]);
                    st(sb[q], bp.add(j + q * W), c[q]);
                }
            }
            j += 2 * W;
        }
    }
}
dispatch!(
    /// LayerNorm parameter gradients over rows (in order) for a block of `dg.len()` columns:
    /// `dg += Σ_r dout·x̂`, `db += Σ_r dout`, where row r starts at `r·stride` of `dout`/`x`.
    pub fn ln_param_grads(dg: &mut [f32], db: &mut [f32], rows: LnRows) => ln_param_grads_imp
);

/// The softmaxes' first pass: `s = x·scale + mask` in place over `n` elements at `p` (mask at
/// `m`), and its maximum in every lane (padding lanes count as −∞).
///
/// # Safety
/// `V`'s target features must be available; `p..p+n` writable and `m..m+n` readable.
#[inline(always)]
unsafe fn scale_mask_max<V: V16>(p: *mut f32, m: *const f32, n: usize, scale: f32) -> V {
    // SAFETY: this function's contract; every `ld`/`st` covers i..i+c with i < n, c = min(16, n − i).
    unsafe {
        let s = V::splat(scale);
        let mut mx = V::splat(f32::NEG_INFINITY);
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            let v = ld::<V>(p.add(i), c, 0.0).fma(s, ld(m.add(i), c, f32::NEG_INFINITY));
            st(v, p.add(i), c);
            mx = mx.max(v);
            i += W;
        }
        V::splat(hmax(mx))
    }
}

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn softmax_imp<V: V16>(row: &mut [f32], scale: f32, mask: &[f32]) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is
    // `min(row.len(), mask.len())`, so it stays inside the slices.
    unsafe {
        let n = row.len().min(mask.len());
        let p = row.as_mut_ptr();
        let max = scale_mask_max::<V>(p, mask.as_ptr(), n, scale);
        // e = exp(s − max) and Σe (padding lanes: exp(−∞) = 0).
        let mut acc = V::splat(0.0);
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            let e = exp(ld::<V>(p.add(i), c, f32::NEG_INFINITY).sub(max));
            st(e, p.add(i), c);
            acc = acc.add(e);
            i += W;
        }
        let inv = V::splat(1.0 / hsum(acc));
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            st(ld::<V>(p.add(i), c, 0.0).mul(inv), p.add(i), c);
            i += W;
        }
    }
}
dispatch!(
    /// In place: `row = softmax(row·scale + mask)` (mask 0 or `f32::MIN`).
    pub fn softmax_scaled_masked(row: &mut [f32], scale: f32, mask: &[f32]) => softmax_imp
);

/// e^x for x ≤ 0 to about 3e-6 relative, for int8 levels (where 127·e^x needs far less than
/// [`exp`]'s 1 ulp): arguments below −16 (levels below 2e-5) taken as −16, a single-constant
/// reduction and a degree-5 Taylor polynomial on |r| ≤ ln2/2. NaN stays NaN.
///
/// # Safety
/// `V`'s target features must be available on this CPU.
#[inline(always)]
unsafe fn exp_for_levels<V: V16>(x: V) -> V {
    // SAFETY: `V`'s target features are available (this function's contract); vector
    // arithmetic on values only, no memory is accessed.
    unsafe {
        let x = V::splat(-16.0).max(x);
        let n = x.mul(V::splat(std::f32::consts::LOG2_E)).round();
        let r = n.fma(V::splat(-std::f32::consts::LN_2), x);
        let mut p = V::splat(1.0 / 120.0);
        p = p.fma(r, V::splat(1.0 / 24.0));
        p = p.fma(r, V::splat(1.0 / 6.0));
        p = p.fma(r, V::splat(0.5));
        p = p.fma(r, V::splat(1.0));
        p.fma(r, V::splat(1.0)).mul(n.pow2i())
    }
}

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn softmax_levels_imp<V: V16>(row: &mut [f32], scale: f32, mask: &[f32], out: &mut [u8], flip: u8) -> f32 {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`/
    // `store_bytes` covers elements i..i+c with i < n and c = min(16, n − i), where n is the
    // shortest of the three slices, so it stays inside them.
    unsafe {
        let n = row.len().min(mask.len()).min(out.len());
        let (p, o) = (row.as_mut_ptr(), out.as_mut_ptr());
        let max = scale_mask_max::<V>(p, mask.as_ptr(), n, scale);
        // Levels round(127·e^(s − max)) (`exp_for_levels`) and their sum (exact: integers below
        // 2^24); a NaN lane stores 0 but keeps the sum NaN.
        let (levels, zero) = (V::splat(LEVELS), V::splat(0.0));
        let mut acc = V::splat(0.0);
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            let r = exp_for_levels(ld::<V>(p.add(i), c, f32::NEG_INFINITY).sub(max)).mul(levels).round();
            acc = acc.add(r);
            V::sel_ge(r, r, r, zero).store_bytes(o.add(i), c, flip);
            i += W;
        }
        hsum(acc)
    }
}
dispatch!(
    /// Attention's probabilities as int8 levels: `row = row·scale + mask` in place (mask 0 or
    /// `f32::MIN`), then `out[j] = round(127·e^(row[j] − max))` as bytes `^ flip` (e^ to ~3e-6,
    /// enough for 127 levels), the largest exactly 127: the softmax's numerators, quantized
    /// against their largest without a pass for it. Returns the levels' sum (≥ 127; NaN for a row
    /// with a NaN), which normalizes them.
    pub fn softmax_levels(row: &mut [f32], scale: f32, mask: &[f32], out: &mut [u8], flip: u8) -> f32 => softmax_levels_imp
);

/// Levels of [`softmax_levels`]: the int8 maximum.
const LEVELS: f32 = 127.0;

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn quant_cols_imp<V: V16>(x: &[f32], stride: usize, skip: &[f32], out: &mut [u8], scale: &mut [f32]) {
    // SAFETY: `V`'s target features are available (this function's contract). With cols =
    // scale.len() and rows = out.len() / cols, every load reads x[r·stride + c0..+c] with c0 + c ≤
    // cols ≤ stride and r < rows, inside x (asserted), and every store writes out[r·cols + c0..+c].
    unsafe {
        let cols = scale.len();
        let rows = out.len().checked_div(cols).unwrap_or(0);
        assert!(rows == 0 || (cols <= stride && (rows - 1) * stride + cols <= x.len()), "quant_cols: x too short");
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        let (zero, lo, hi) = (V::splat(0.0), V::splat(-127.0), V::splat(127.0));
        let left_out = |r: usize| skip.get(r).is_some_and(|&m| m != 0.0);
        let mut c0 = 0;
        while c0 < cols {
            let c = (cols - c0).min(W);
            // Per column: the largest magnitude, and whether any value is NaN or infinite
            // (v·0 is NaN exactly then, and a sum keeps it).
            let (mut amax, mut bad) = (zero, zero);
            for r in (0..rows).filter(|&r| !left_out(r)) {
                let v = ld::<V>(xp.add(r * stride + c0), c, 0.0);
                amax = amax.max(v.max(zero.sub(v)));
                bad = bad.add(v.mul(zero));
            }
            // The row quantizer's rule per column (RowScale): 0 → scale 0, non-finite → NaN.
            let (amax, bad) = (amax.to_array(), bad.to_array());
            let mut inv = [0.0f32; W];
            for j in 0..c {
                (inv[j], scale[c0 + j]) = if bad[j].is_nan() {
                    (0.0, f32::NAN)
                } else if amax[j] == 0.0 {
                    (0.0, 0.0)
                } else {
                    (127.0 / amax[j], amax[j] / 127.0)
                };
            }
            let inv = V::load(inv.as_ptr());
            for r in 0..rows {
                if left_out(r) {
                    zero.store_bytes(op.add(r * cols + c0), c, 0);
                    continue;
                }
                let q = ld::<V>(xp.add(r * stride + c0), c, 0.0).mul(inv);
                // NaN (0·∞) → 0; clamping before rounding equals clamping after (integer bounds).
                let q = V::sel_ge(q, q, q, zero).max(lo).min(hi).round();
                q.store_bytes(op.add(r * cols + c0), c, 0);
            }
            c0 += W;
        }
    }
}
dispatch!(
    /// Quantizes each column of `x` (`[rows, cols]` at row stride `stride`, cols = `scale.len()`,
    /// rows = `out.len() / cols`) symmetrically, as the int8 row quantizer does a row: signed
    /// bytes to `out` (`[rows, cols]`, row-major), `scale[c] = max_r |x[r, c]| / 127` (0 for a
    /// zero column, NaN for one with a NaN or infinity, whose bytes are 0). Rows r with
    /// `skip[r] != 0` (attention's padded keys; `skip` may be shorter, even empty) are left out:
    /// bytes 0, and no part of any scale, so they cannot change the other rows' bytes.
    pub fn quant_cols(x: &[f32], stride: usize, skip: &[f32], out: &mut [u8], scale: &mut [f32]) => quant_cols_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn softmax_backward_imp<V: V16>(ds: &mut [f32], p: &[f32]) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is
    // `min(ds.len(), p.len())`, so it stays inside the slices.
    unsafe {
        let n = ds.len().min(p.len());
        let (d, pp) = (ds.as_mut_ptr(), p.as_ptr());
        let mut acc = V::splat(0.0);
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            acc = ld::<V>(d.add(i), c, 0.0).fma(ld(pp.add(i), c, 0.0), acc);
            i += W;
        }
        let dot = V::splat(hsum(acc));
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            let v = ld::<V>(pp.add(i), c, 0.0).mul(ld::<V>(d.add(i), c, 0.0).sub(dot));
            st(v, d.add(i), c);
            i += W;
        }
    }
}
dispatch!(
    /// In place, one softmax row: `ds = p ⊙ (ds − Σ ds·p)`.
    pub fn softmax_backward(ds: &mut [f32], p: &[f32]) => softmax_backward_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn layer_norm_row_imp<V: V16>(out: &mut [f32], x: &[f32], g: &[f32], b: &[f32], eps: f64) -> (f32, f32) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is `x.len()`, asserted on
    // entry to be at most `out.len()`, `g.len()` and `b.len()`, so it stays inside the slices.
    unsafe {
        let n = x.len();
        assert!(out.len() >= n && g.len() >= n && b.len() >= n, "layer_norm_row out of bounds");
        // Two-pass statistics; padding lanes add exactly 0 (0, then (mean − mean)²).
        let (xp, mut acc) = (x.as_ptr(), V::splat(0.0));
        let mut i = 0;
        while i < n {
            acc = acc.add(ld(xp.add(i), (n - i).min(W), 0.0));
            i += W;
        }
        layer_norm_finish(out, x, (g, b, eps), acc)
    }
}
dispatch!(
    /// One LayerNorm row: `out = (x − mean)·rstd·g + b`; returns (mean, rstd). Statistics are
    /// two-pass (mean, then the mean of squared deviations).
    pub fn layer_norm_row(out: &mut [f32], x: &[f32], g: &[f32], b: &[f32], eps: f64) -> (f32, f32) => layer_norm_row_imp
);

/// The LayerNorm of `x` after its first pass (`acc`: the 16 lane sums of x): the mean, the
/// squared deviations, then `out`; returns (mean, rstd).
///
/// # Safety
/// `V`'s target features must be available; `out`, `g`, `b` at least as long as `x`.
#[inline(always)]
unsafe fn layer_norm_finish<V: V16>(
    out: &mut [f32],
    x: &[f32],
    (g, b, eps): (&[f32], &[f32], f64),
    acc: V,
) -> (f32, f32) {
    // SAFETY: `V`'s target features are available and the slices long enough (this function's
    // contract); every `ld`/`st` covers elements i..i+c with i < n = x.len(), c = min(16, n − i).
    unsafe {
        let n = x.len();
        let (o, xp, gp, bp) = (out.as_mut_ptr(), x.as_ptr(), g.as_ptr(), b.as_ptr());
        let mean = hsum(acc) / n as f32;
        let mu = V::splat(mean);
        let mut acc = V::splat(0.0);
        let mut i = 0;
        while i < n {
            let d = ld::<V>(xp.add(i), (n - i).min(W), mean).sub(mu);
            acc = d.fma(d, acc);
            i += W;
        }
        let var = hsum(acc) / n as f32;
        let rstd = (1.0 / (var as f64 + eps).sqrt()) as f32;
        let rs = V::splat(rstd);
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            let xh = ld::<V>(xp.add(i), c, 0.0).sub(mu).mul(rs);
            st(xh.fma(ld(gp.add(i), c, 0.0), ld(bp.add(i), c, 0.0)), o.add(i), c);
            i += W;
        }
        (mean, rstd)
    }
}

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn residual_layer_norm_row_imp<V: V16>(
    out: &mut [f32],
    x: &mut [f32],
    (bias, residual): (&[f32], &[f32]),
    (g, b, eps): (&[f32], &[f32], f64),
) -> (f32, f32) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is `x.len()`, asserted on
    // entry to be at most every other slice's length, so it stays inside them.
    unsafe {
        let n = x.len();
        let fits = [out.len(), bias.len(), residual.len(), g.len(), b.len()].iter().all(|&l| l >= n);
        assert!(fits, "residual_layer_norm_row out of bounds");
        let (xp, bp, rp) = (x.as_mut_ptr(), bias.as_ptr(), residual.as_ptr());
        // x = (x + bias) + residual, as two `add_assign`s would round it, summed as it goes.
        let mut acc = V::splat(0.0);
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            let v = ld::<V>(xp.add(i), c, 0.0).add(ld(bp.add(i), c, 0.0)).add(ld(rp.add(i), c, 0.0));
            st(v, xp.add(i), c);
            acc = acc.add(v);
            i += W;
        }
        layer_norm_finish(out, x, (g, b, eps), acc)
    }
}
dispatch!(
    /// BERT's post-LN epilogue on one row in one pass less: `x = (x + bias) + residual`, then
    /// `out = LayerNorm(x)`; returns (mean, rstd). The bits of `add_assign(x, bias)`,
    /// `add_assign(x, residual)`, `layer_norm_row(out, x, ..)`.
    pub fn residual_layer_norm_row(
        out: &mut [f32],
        x: &mut [f32],
        add: (&[f32], &[f32]),
        ln: (&[f32], &[f32], f64),
    ) -> (f32, f32) => residual_layer_norm_row_imp
);

/// One LayerNorm row for [`layer_norm_backward_row`]: its output gradient, input, gain and
/// statistics.
#[derive(Clone, Copy)]
pub struct LnRow<'a> {
    /// Output gradient.
    pub dout: &'a [f32],
    /// Input.
    pub x: &'a [f32],
    /// Gain.
    pub g: &'a [f32],
    /// Mean of `x`.
    pub mean: f32,
    /// Reciprocal standard deviation of `x`.
    pub rstd: f32,
}

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn layer_norm_backward_row_imp<V: V16>(dx: &mut [f32], row: LnRow, accumulate: bool) {
    let LnRow { dout, x, g, mean, rstd } = row;
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is `x.len()`, asserted on
    // entry to be at most `dx.len()`, `dout.len()` and `g.len()`, so it stays inside the slices.
    unsafe {
        let n = x.len();
        assert!(dx.len() >= n && dout.len() >= n && g.len() >= n, "layer_norm_backward_row out of bounds");
        let (mu, rs) = (V::splat(mean), V::splat(rstd));
        let (o, dp, xp, gp) = (dx.as_mut_ptr(), dout.as_ptr(), x.as_ptr(), g.as_ptr());
        let (mut s1, mut s2) = (V::splat(0.0), V::splat(0.0));
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            let dxh = ld::<V>(dp.add(i), c, 0.0).mul(ld(gp.add(i), c, 0.0));
            let xh = ld::<V>(xp.add(i), c, 0.0).sub(mu).mul(rs);
            s1 = s1.add(dxh);
            s2 = dxh.fma(xh, s2);
            i += W;
        }
        let m1 = V::splat(hsum(s1) / n as f32);
        let m2 = V::splat(hsum(s2) / n as f32);
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            let xh = ld::<V>(xp.add(i), c, 0.0).sub(mu).mul(rs);
            let dxh = ld::<V>(dp.add(i), c, 0.0).mul(ld(gp.add(i), c, 0.0));
            let mut v = rs.mul(dxh.sub(m1).sub(xh.mul(m2)));
            if accumulate {
                v = ld::<V>(o.add(i), c, 0.0).add(v);
            }
            st(v, o.add(i), c);
            i += W;
        }
    }
}
dispatch!(
    /// One LayerNorm row's input gradient: `dx = rstd·(dout·g − mean(dout·g) − x̂·mean(dout·g·x̂))`,
    /// assigned or added to `dx`.
    pub fn layer_norm_backward_row(dx: &mut [f32], row: LnRow, accumulate: bool) => layer_norm_backward_row_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn ln_param_grad_row_imp<V: V16>(dg: &mut [f32], db: &mut [f32], dout: &[f32], x: &[f32], mean: f32, rstd: f32) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is the shortest of the four
    // slices, so it stays inside the slices.
    unsafe {
        let n = dg.len().min(db.len()).min(dout.len()).min(x.len());
        let (mu, rs) = (V::splat(mean), V::splat(rstd));
        let (gp, bp, dp, xp) = (dg.as_mut_ptr(), db.as_mut_ptr(), dout.as_ptr(), x.as_ptr());
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            let d = ld::<V>(dp.add(i), c, 0.0);
            let xh = ld::<V>(xp.add(i), c, 0.0).sub(mu).mul(rs);
            st(d.fma(xh, ld(gp.add(i), c, 0.0)), gp.add(i), c);
            st(ld::<V>(bp.add(i), c, 0.0).add(d), bp.add(i), c);
            i += W;
        }
    }
}
dispatch!(
    /// One row's LayerNorm parameter gradients: `dg += dout·x̂`, `db += dout` (slices may be a
    /// column range of the row).
    pub fn ln_param_grad_row(dg: &mut [f32], db: &mut [f32], dout: &[f32], x: &[f32], mean: f32, rstd: f32) => ln_param_grad_row_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn max_imp<V: V16>(x: &[f32]) -> f32 {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is `x.len()`, so it stays
    // inside the slices.
    unsafe {
        let n = x.len();
        let p = x.as_ptr();
        let mut mx = V::splat(f32::NEG_INFINITY);
        let mut i = 0;
        while i < n {
            mx = mx.max(ld(p.add(i), (n - i).min(W), f32::NEG_INFINITY));
            i += W;
        }
        hmax(mx)
    }
}
dispatch!(
    /// The largest element (−∞ for an empty slice).
    pub fn max(x: &[f32]) -> f32 => max_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn sum_exp_imp<V: V16>(x: &[f32], shift: f32) -> f32 {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is `x.len()`, so it stays
    // inside the slices.
    unsafe {
        let n = x.len();
        let (p, s) = (x.as_ptr(), V::splat(shift));
        let mut acc = V::splat(0.0);
        let mut i = 0;
        while i < n {
            acc = acc.add(exp(ld::<V>(p.add(i), (n - i).min(W), f32::NEG_INFINITY).sub(s)));
            i += W;
        }
        hsum(acc)
    }
}
dispatch!(
    /// `Σ exp(x[i] − shift)` (shift finite).
    pub fn sum_exp(x: &[f32], shift: f32) -> f32 => sum_exp_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn scaled_exp_inplace_imp<V: V16>(x: &mut [f32], shift: f32, scale: f32) {
    // SAFETY: `V`'s target features are available (this function's contract). Every `ld`/`st`
    // covers elements i..i+c with i < n and c = min(16, n − i), where n is `x.len()`, so it stays
    // inside the slices.
    unsafe {
        let n = x.len();
        let p = x.as_mut_ptr();
        let (s, k) = (V::splat(shift), V::splat(scale));
        let mut i = 0;
        while i < n {
            let c = (n - i).min(W);
            st(exp(ld::<V>(p.add(i), c, 0.0).sub(s)).mul(k), p.add(i), c);
            i += W;
        }
    }
}
dispatch!(
    /// In place: `x[i] = scale·exp(x[i] − shift)`.
    pub fn scaled_exp_inplace(x: &mut [f32], shift: f32, scale: f32) => scaled_exp_inplace_imp
);

/// # Safety
/// `V`'s target features must be available on this CPU (the `dispatch!` wrappers ensure it).
#[inline(always)]
unsafe fn fma_probe_imp<V: V16>(iters: usize) -> f32 {
    // SAFETY: `V`'s target features are available (this function's contract). Vector arithmetic on
    // values only, no memory is accessed.
    unsafe {
        // 12 independent FMA chains: enough to cover FMA latency × throughput on current cores.
        let mut acc = [V::splat(0.0); 12];
        let (a, b) = (V::splat(0.999_999), V::splat(1e-7));
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = v.fma(a, b);
            }
        }
        let mut s = V::splat(0.0);
        for v in acc {
            s = s.add(v);
        }
        hsum(s)
    }
}
dispatch!(
    /// Runs `iters × 12` vector FMAs (`iters × 384` FLOPs) and returns a checksum: a probe of
    /// this core's FMA peak for the bench.
    pub fn fma_probe(iters: usize) -> f32 => fma_probe_imp
);

/// Runs a kernel with an explicit variant, for tests comparing variants.
pub mod with {
    pub use super::{
        add_assign_imp::dispatch as add_assign, add_rows_imp::dispatch as add_rows,
        bias_gelu_imp::dispatch as bias_gelu, column_sums_imp::dispatch as column_sums,
        gelu_backward_imp::dispatch as gelu_backward, gelu_backward_inplace_imp::dispatch as gelu_backward_inplace,
        gelu_forward_imp::dispatch as gelu_forward, layer_norm_backward_row_imp::dispatch as layer_norm_backward_row,
        layer_norm_row_imp::dispatch as layer_norm_row, ln_param_grad_row_imp::dispatch as ln_param_grad_row,
        ln_param_grads_imp::dispatch as ln_param_grads, max_imp::dispatch as max,
        quant_cols_imp::dispatch as quant_cols, residual_layer_norm_row_imp::dispatch as residual_layer_norm_row,
        scaled_exp_inplace_imp::dispatch as scaled_exp_inplace, softmax_backward_imp::dispatch as softmax_backward,
        softmax_imp::dispatch as softmax_scaled_masked, softmax_levels_imp::dispatch as softmax_levels,
        sum_exp_imp::dispatch as sum_exp,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        let mut worst_exp = 0.0f64;
        let mut worst_erf = 0.0f64;
        for i in -20000..=20000 {
            let x = i as f32 * 0.0043;
            let e = expf(x) as f64;
            let want = (x as f64).exp();
            worst_exp = worst_exp.max(((e - want) / want).abs());
            let y = x * 0.05;
            // SAFETY: the `Scalar` variant needs no target features, and this touches no memory.
            let r = unsafe { erf(Scalar::splat(y)).0[0] } as f64;
            worst_erf = worst_erf.max((r - libm::erf(y as f64)).abs());
        }
        assert!(worst_exp < 3e-7, "exp relative error {worst_exp}");
        // erf's own e^x gives erf the bits of exp's: over a sweep, the extremes and NaN.
        let old_erf = |y: f32| {
            // SAFETY: the `Scalar` variant needs no target features, and this touches no memory.
            unsafe {
                let v = Scalar::splat(y);
                let (zero, neg) = (Scalar::splat(0.0), Scalar::splat(0.0).sub(v));
                let t = Scalar::splat(1.0).div(Scalar::splat(0.327_591_1).fma(v.max(neg), Scalar::splat(1.0)));
                let mut r = Scalar::splat(1.061_405_4);
                for c in [-1.453_152, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
                    r = r.fma(t, Scalar::splat(c));
                }
                let e = Scalar::splat(1.0).sub(r.mul(t).mul(exp(neg.mul(v))));
                Scalar::sel_ge(v, zero, e, zero.sub(e)).0[0]
            }
        };
        let sweep = (-400_000..=400_000).map(|i| i as f32 * 1e-4).chain([1e30, -1e30, 1e-30, f32::INFINITY, f32::MIN]);
        for y in sweep.chain((0..2000).map(|i| f32::from_bits(0x3f00_0000 + i * 77_777))) {
            // SAFETY: as above.
            let new = unsafe { erf(Scalar::splat(y)).0[0] };
            assert_eq!(new.to_bits(), old_erf(y).to_bits(), "erf({y})");
        }
        // SAFETY: as above.
        assert!(unsafe { erf(Scalar::splat(f32::NAN)).0[0] }.is_nan());
        assert!(worst_erf < 5e-7, "erf absolute error {worst_erf}"); // 1.5e-7 formula + f32 rounding
        assert_eq!(expf(-200.0), 0.0);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert!(expf(-100.0) > 0.0 && expf(-100.0) < 1e-43);
    }
}
