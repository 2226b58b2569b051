//! The CPU backend's kernel table (after tract-linalg's `generic()` / `best()`): which compiled
//! variant of each kernel family runs. The CPU's features are probed once per process (they
//! cannot change); every [`super::CpuBackend`] holds its own table, [`CpuKernels::best`] capped by
//! its options ([`CpuKernels::with_cap`]), so handles with different caps run side by side.
//!
//! How each family gets its variant: the prepacked f32 and int8 Linear weights carry the kernel
//! they were packed for (chosen from the table in `prepare`); the elementwise kernels of
//! [`super::simd`] read the variant of the call they work for, which travels with the call onto
//! every thread that runs part of it ([`current_isa`]), so backends with different caps share one
//! pool; code outside any call gets [`CpuKernels::best`].
//!
//! Numerics: the elementwise and int8 kernels give the same bits on every variant; the f32
//! panels differ between the scalar kernel (multiply, then add) and the fused ones by rounding
//! only (see `packed.rs`).

use super::int8::I8Kernel;
use super::packed::F32Kernel;
use super::simd::Isa;
use crate::backend::Simd;
use std::sync::OnceLock;

/// The CPU features the kernels need, probed once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// x86-64 AVX2 and FMA.
    pub avx2_fma: bool,
    /// x86-64 AVX-512F.
    pub avx512f: bool,
    /// x86-64 AVX-VNNI (VEX) with AVX2.
    pub avx_vnni: bool,
    /// x86-64 AVX-512F, BW and VNNI.
    pub avx512_vnni: bool,
    /// aarch64 Advanced SIMD.
    pub neon: bool,
    /// aarch64 NEON with the dot-product extension.
    pub neon_dot: bool,
}

impl Features {
    /// This CPU's features (probed on first use).
    pub fn get() -> Features {
        static F: OnceLock<Features> = OnceLock::new();
        *F.get_or_init(Features::probe)
    }

    fn probe() -> Features {
        #[allow(unused_mut)]
        let mut f = Features::default();
        #[cfg(target_arch = "x86_64")]
        {
            f.avx2_fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            f.avx512f = is_x86_feature_detected!("avx512f");
            f.avx_vnni = is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2");
            f.avx512_vnni = f.avx512f && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni");
        }
        #[cfg(target_arch = "aarch64")]
        {
            f.neon = std::arch::is_aarch64_feature_detected!("neon");
            f.neon_dot = f.neon && std::arch::is_aarch64_feature_detected!("dotprod");
        }
        f
    }
}

/// One backend's kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuKernels {
    /// Elementwise and row kernels ([`super::simd`]) and int8 row quantization.
    pub isa: Isa,
    /// The prepacked f32 Linear microkernel ([`super::packed`]).
    pub f32: F32Kernel,
    /// The int8 matrix kernel ([`super::int8`]).
    pub i8: I8Kernel,
}

impl CpuKernels {
    /// The portable scalar code everywhere (runs on any CPU).
    pub const fn generic() -> CpuKernels {
        CpuKernels { isa: Isa::Scalar, f32: F32Kernel::Scalar, i8: I8Kernel::Scalar }
    }

    /// The best variant of each family this CPU runs.
    pub fn best() -> CpuKernels {
        static B: OnceLock<CpuKernels> = OnceLock::new();
        *B.get_or_init(|| {
            let f = Features::get();
            let isa = if f.avx512f {
                Isa::Avx512
            } else if f.avx2_fma {
                Isa::Avx2
            } else {
                Isa::Scalar
            };
            let f32 = if f.avx512f {
                F32Kernel::Avx512
            } else if f.avx2_fma {
                F32Kernel::Avx2
            } else if f.neon {
                F32Kernel::Neon
            } else {
                F32Kernel::Scalar
            };
            let i8 = [I8Kernel::Avx512Vnni, I8Kernel::AvxVnni, I8Kernel::Avx2, I8Kernel::NeonDot, I8Kernel::Neon]
                .into_iter()
                .find(|k| k.supported())
                .unwrap_or(I8Kernel::Scalar);
            CpuKernels { isa, f32, i8 }
        })
    }

    /// This table with no kernel wider than `cap` allows: `Scalar` the portable code, `Neon` at
    /// most 128-bit vectors, `Avx2` at most 256, `Avx512` and `Best` no cap. A cap names a width,
    /// so a cap of another architecture's name is still meaningful (on x86-64 `neon` means scalar).
    pub fn with_cap(self, cap: Simd) -> CpuKernels {
        let w = cap.max_width();
        let isa = if self.isa.width() <= w {
            self.isa
        } else {
            Isa::available().into_iter().rev().find(|i| i.width() <= w).unwrap_or(Isa::Scalar)
        };
        let f32 = if self.f32.width() <= w {
            self.f32
        } else {
            super::packed::kernels().into_iter().rev().find(|k| k.width() <= w).unwrap_or(F32Kernel::Scalar)
        };
        let i8 = if self.i8.width() <= w {
            self.i8
        } else {
            super::int8::available().into_iter().find(|k| k.width() <= w).unwrap_or(I8Kernel::Scalar)
        };
        CpuKernels { isa, f32, i8 }
    }
}

impl Default for CpuKernels {
    fn default() -> Self {
        CpuKernels::best()
    }
}

/// The elementwise variant this thread runs: that of the call it works for (see
/// [`super::pool::Ctx`], which travels with the call onto every worker), else
/// [`CpuKernels::best`].
#[inline]
pub fn current_isa() -> Isa {
    super::pool::Ctx::current().map(|c| c.isa).unwrap_or_else(|| CpuKernels::best().isa)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_narrow_and_never_widen() {
        let best = CpuKernels::best();
        assert_eq!(best.with_cap(Simd::Best), best);
        assert_eq!(best.with_cap(Simd::Avx512), best);
        assert_eq!(best.with_cap(Simd::Scalar), CpuKernels::generic());
        assert_eq!(CpuKernels::generic().with_cap(Simd::Best), CpuKernels::generic());
        let avx2 = best.with_cap(Simd::Avx2);
        assert!(avx2.isa.width() <= 256 && avx2.f32.width() <= 256 && avx2.i8.width() <= 256);
        assert!(avx2.isa <= best.isa);
        let neon = best.with_cap(Simd::Neon);
        assert!(neon.f32.width() <= 128 && neon.i8.width() <= 128 && neon.isa == Isa::Scalar);
        assert!(best.f32.available() && super::super::int8::available().contains(&best.i8));
    }

    #[test]
    fn threads_outside_a_call_run_the_best() {
        std::thread::spawn(|| {
            assert_eq!(current_isa(), CpuKernels::best().isa);
            super::super::pool::Ctx::new(Isa::Scalar, 1, false).enter(|| assert_eq!(current_isa(), Isa::Scalar));
            assert_eq!(current_isa(), CpuKernels::best().isa);
        })
        .join()
        .unwrap();
    }
}
