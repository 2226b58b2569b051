//! The CUDA kernels compile with NVRTC and assemble with `ptxas` for Ampere (sm_80) and Hopper
//! (sm_90), on a machine with no GPU: the check CI runs for the CUDA backend's device code.
//!
//! NVRTC comes from the system or from the `nvidia-cuda-nvrtc-cu12` wheel (put its `lib` folder
//! on `LD_LIBRARY_PATH`); `ptxas` from `ELECTRA_PTXAS`, else `PATH` (the `nvidia-cuda-nvcc-cu12`
//! wheel's `bin/ptxas`). Under CI (`CI` set) or with `ELECTRA_REQUIRE_NVRTC=1` a missing tool
//! fails the test; elsewhere the test says on stderr that it did not run.
#![cfg(feature = "cuda")]

use electra::backend::cuda::{check_library, kernels, Library};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var("ELECTRA_REQUIRE_NVRTC").is_ok_and(|v| v == "1")
}

/// Stops the test: a failure where the tools are required, a visible skip elsewhere.
fn unavailable(what: &str) {
    if required() {
        panic!("{what} (CI needs NVRTC and ptxas: .ci/run installs the nvidia-cuda-nvrtc-cu12 and nvidia-cuda-nvcc-cu12 wheels)");
    }
    let _ = writeln!(std::io::stderr(), "cuda_kernels: NOT RUN: {what}");
}

fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ELECTRA_PTXAS") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("ptxas")).find(|p| p.is_file()))
}

#[test]
fn every_kernel_of_the_source_is_in_the_table() {
    let mut found: Vec<&str> = kernels::SOURCE
        .split("extern \"C\" __global__ void ")
        .skip(1)
        .map(|rest| rest.split('(').next().unwrap().trim())
        .collect();
    let mut names = kernels::NAMES.to_vec();
    found.sort_unstable();
    names.sort_unstable();
    assert_eq!(found, names, "kernels in the .cu files vs the table in kernels.rs");
}

#[test]
fn kernels_compile_and_assemble_for_sm80_and_sm90() {
    if let Err(e) = check_library(Library::Nvrtc) {
        return unavailable(&e.to_string());
    }
    let Some(ptxas) = ptxas() else {
        return unavailable("ptxas was not found (set ELECTRA_PTXAS or put it on PATH)");
    };
    let dir = std::env::temp_dir().join(format!("electra-cuda-kernels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for sm in ["80", "90"] {
        let ptx = kernels::compile_ptx(&format!("compute_{sm}")).unwrap_or_else(|e| panic!("sm_{sm}: {e}"));
        for name in kernels::NAMES {
            assert!(ptx.contains(&format!(".entry {name}(")), "sm_{sm}: no entry point {name} in the PTX");
        }
        let (src, bin) = (dir.join(format!("k{sm}.ptx")), dir.join(format!("k{sm}.cubin")));
        std::fs::write(&src, &ptx).unwrap();
        let out = Command::new(&ptxas)
            .arg(format!("-arch=sm_{sm}"))
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", ptxas.display()));
        assert!(out.status.success(), "ptxas sm_{sm} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let size = std::fs::metadata(&bin).unwrap().len();
        assert!(size > 1000, "sm_{sm}: a {size}-byte cubin");
        let _ = std::fs::remove_file(&src);
        let _ = std::fs::remove_file(&bin);
        eprintln!(
            "cuda_kernels: sm_{sm}: {} kernels, PTX {} KB, cubin {} KB",
            kernels::NAMES.len(),
            ptx.len() / 1024,
            size / 1024
        );
    }
}
