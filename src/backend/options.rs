//! What a handle asks of its backend beyond the device: worker threads, the CPU kernel cap
//! (`simd`), inference's f32 matrix path (`f32_kernel`) and CUDA's TF32 math (`tf32`). Sessions,
//! trainers and fine-tuners take these as typed options (JSON keys of the same names).
//!
//! Environment overrides, read here and nowhere else, when a backend opens: `ELECTRA_SIMD`,
//! `ELECTRA_F32_KERNEL` and `ELECTRA_CUDA_TF32` (`1`/`0`, `true`/`false`), for comparisons
//! without editing options. Precedence: an option set explicitly, then the variable, then the
//! default (`best`, `packed`, TF32 off). A variable with a value outside its set is an error when
//! a backend opens, never silently ignored.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The widest CPU kernels a backend may run (a cap on the table probed from the CPU). A cap is a
/// vector width, so every value is valid on every CPU: `avx512` and `best` do not cap, `avx2`
/// allows 256-bit vectors, `neon` 128-bit (on x86-64: the scalar code), `scalar` the portable
/// code. Elementwise and int8 results are the same bits under every cap; f32 inference's scalar
/// kernel differs from the fused ones by rounding only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Simd {
    /// The best this CPU runs.
    #[default]
    Best,
    /// At most AVX-512 (no cap today).
    Avx512,
    /// At most 256-bit vectors (AVX2, AVX-VNNI).
    Avx2,
    /// At most 128-bit vectors (NEON).
    Neon,
    /// The portable scalar code.
    Scalar,
}

impl Simd {
    /// The widest vector allowed, in bits (0: scalar only).
    pub fn max_width(self) -> usize {
        match self {
            Simd::Best => usize::MAX,
            Simd::Avx512 => 512,
            Simd::Avx2 => 256,
            Simd::Neon => 128,
            Simd::Scalar => 0,
        }
    }
}

impl FromStr for Simd {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "best" => Ok(Simd::Best),
            "avx512" => Ok(Simd::Avx512),
            "avx2" => Ok(Simd::Avx2),
            "neon" => Ok(Simd::Neon),
            "scalar" => Ok(Simd::Scalar),
            o => Err(Error::arg(format!("simd {o:?}: expected best, avx512, avx2, neon or scalar"))),
        }
    }
}

impl fmt::Display for Simd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Simd::Best => "best",
            Simd::Avx512 => "avx512",
            Simd::Avx2 => "avx2",
            Simd::Neon => "neon",
            Simd::Scalar => "scalar",
        })
    }
}

/// How CPU inference multiplies by f32 Linear weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum F32Path {
    /// Weights packed once into our panels (the default; `cpu/packed.rs`).
    #[default]
    Packed,
    /// The older path: an `[in, out]` copy for the gemm crate (training's sums, bit for bit).
    Gemm,
}

impl FromStr for F32Path {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "packed" => Ok(F32Path::Packed),
            "gemm" => Ok(F32Path::Gemm),
            o => Err(Error::arg(format!("f32_kernel {o:?}: expected packed or gemm"))),
        }
    }
}

/// A backend's options (besides the device). `None`: not set, so the environment override or
/// the default applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendOptions {
    /// CPU worker threads: 0 the shared pool, 1 the calling thread only, N a pool of N (see
    /// [`crate::backend::cpu::pool::Pool::open`]).
    pub threads: usize,
    /// CPU: a pool of the backend's own rather than the shared one.
    pub own_pool: bool,
    /// Cap on the CPU kernels.
    pub simd: Option<Simd>,
    /// CPU inference's f32 matrix path.
    pub f32_kernel: Option<F32Path>,
    /// CUDA: TF32 tensor-core matrix products.
    pub tf32: Option<bool>,
}

/// [`BackendOptions`] with every choice made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// CPU worker threads (as [`BackendOptions::threads`]).
    pub threads: usize,
    /// CPU: a pool of the backend's own.
    pub own_pool: bool,
    /// Cap on the CPU kernels.
    pub simd: Simd,
    /// CPU inference's f32 matrix path.
    pub f32_kernel: F32Path,
    /// CUDA: TF32 tensor-core matrix products.
    pub tf32: bool,
}

impl BackendOptions {
    /// Defaults with `threads` workers.
    pub fn threads(threads: usize) -> Self {
        BackendOptions { threads, ..Default::default() }
    }

    /// Every choice made: the option where set, else its environment override, else the default.
    pub fn resolve(&self) -> Result<Resolved> {
        Ok(Resolved {
            threads: self.threads,
            own_pool: self.own_pool,
            simd: pick(self.simd, "ELECTRA_SIMD", str::parse)?.unwrap_or_default(),
            f32_kernel: pick(self.f32_kernel, "ELECTRA_F32_KERNEL", str::parse)?.unwrap_or_default(),
            tf32: pick(self.tf32, "ELECTRA_CUDA_TF32", parse_bool)?.unwrap_or(false),
        })
    }
}

/// `set`, else the variable `var` parsed (an unparsable value is an error naming it).
fn pick<T>(set: Option<T>, var: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Option<T>> {
    if set.is_some() {
        return Ok(set);
    }
    match std::env::var(var) {
        Ok(v) => parse(&v).map(Some).map_err(|e| {
            let why = match e {
                Error::InvalidArgument(m) => m,
                e => e.to_string(),
            };
            Error::arg(format!("environment variable {var}={v:?}: {why}"))
        }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::arg(format!("environment variable {var} is not UTF-8"))),
    }
}

fn parse_bool(s: &str) -> Result<bool> {
    match s.trim() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        o => Err(Error::arg(format!("{o:?}: expected 1, 0, true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_print() {
        for s in ["best", "avx512", "avx2", "neon", "scalar"] {
            assert_eq!(s.parse::<Simd>().unwrap().to_string(), s);
        }
        let e = "avx3".parse::<Simd>().unwrap_err().to_string();
        assert!(e.contains("avx3") && e.contains("scalar"), "{e}");
        assert!("gemm".parse::<F32Path>().is_ok() && "blas".parse::<F32Path>().is_err());
        assert!(parse_bool("1").unwrap() && !parse_bool("false").unwrap() && parse_bool("yes").is_err());
        // An explicit option wins over any variable.
        let o = BackendOptions {
            simd: Some(Simd::Scalar),
            f32_kernel: Some(F32Path::Gemm),
            tf32: Some(true),
            threads: 3,
            own_pool: true,
        };
        assert_eq!(
            o.resolve().unwrap(),
            Resolved { threads: 3, own_pool: true, simd: Simd::Scalar, f32_kernel: F32Path::Gemm, tf32: true }
        );
    }
}
