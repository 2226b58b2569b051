#!/usr/bin/env bash
# Every test of the project, in order, stopping at the first failure:
#   fmt, the module graph, clippy, cargo test with the MPI, JNI and CUDA features (unit, parity,
#   backend conformance, the CUDA kernels through NVRTC + ptxas with no GPU, FFI, header freshness,
#   doc tests, data-parallel ranks as threads and under mpirun), the C ABI test under valgrind, the
#   bindings, the examples, make install, aarch64 under qemu, mobile packaging, a fuzz smoke run.
# Ends with a summary of each suite and its time. CI runs it through .ci/run.
#
# To add a suite (Go, C#, ...): append one `suite NAME COMMAND...` line at the end. The
# command runs from the repository root and fails the run with a non-zero exit status.
set -euo pipefail
cd "$(dirname "$0")/.."

summary=()

print_summary() {
  echo
  echo "== Summary"
  printf '%s\n' "${summary[@]}"
}

# suite NAME COMMAND...: runs COMMAND, records how it went, stops everything on failure.
suite() {
  local name=$1
  shift
  echo
  echo "== $name: $*"
  local start=$SECONDS rc=0
  "$@" || rc=$?
  local took=$((SECONDS - start))
  if [ "$rc" -ne 0 ]; then
    summary+=("FAIL  $name (exit $rc, ${took}s)")
    print_summary
    echo "FAILED: $name" >&2
    exit 1
  fi
  summary+=("ok    $name (${took}s)")
}

# The MPI feature needs OpenMPI and libclang (.ci/run installs them): say so before a long build.
if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
  echo "scripts/test.sh: needs OpenMPI (apt install openmpi-bin libopenmpi-dev libclang-dev), or run .ci/run" >&2
  exit 1
fi

suite "rustfmt" cargo fmt --all -- --check
# The import graph between src/'s top-level modules must stay a layering (no cycle).
suite "module graph (no import cycle)" python3 scripts/module-graph.py
# One feature set for clippy and the tests, so both build the crate and its dependencies once:
# MPI, JNI and CUDA (a superset of the default build; the CUDA feature builds with no toolkit or
# GPU: cudarc loads the driver at run time). Then the library without them (the code behind
# #[cfg(not(feature = ...))], src/backend/cuda_stub.rs among it; the command line has none).
FEATURES=mpi,jni,cuda
# NVRTC and ptxas for the CUDA kernels' compile check (tests/cuda_kernels.rs), set for the whole
# run: an environment that changes between cargo calls re-runs build scripts that track it
# (clang-sys, for the MPI bindings) and rebuilds everything downstream of them.
tools=${ELECTRA_CUDA_TOOLS:-$HOME/.cache/electra-cuda-tools}
nv=$(ls -d "$tools"/lib/python3*/site-packages/nvidia 2>/dev/null | head -1 || true)
if [ -n "$nv" ]; then
  export LD_LIBRARY_PATH="$nv/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ELECTRA_PTXAS="$nv/cuda_nvcc/bin/ptxas"
fi
# No incremental compilation: the test command builds mostly from scratch (CI always does), where
# writing incremental caches only costs time; a developer's own cargo calls keep them.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# The library the C, example and binding suites test (scripts/lib-under-test.sh): the build of
# `cargo test` below, whose dependencies are then compiled already (a release build would compile
# them all again).
export ELECTRA_LIB_PROFILE=dev ELECTRA_LIB_FEATURES=$FEATURES
suite "clippy --features $FEATURES" cargo clippy --features "$FEATURES" --all-targets -- -D warnings
suite "clippy (default features)" cargo clippy --lib -- -D warnings
# With the MPI feature, so tests/mpi.rs runs too: it launches itself under `mpirun -np 2`
# (equivalence with one process, resume, failing, killed and hung ranks, the CLI's resume).
# With `jni` too: src/jni/'s unit tests (the Java binding itself runs under JUnit below).
# With `cuda` too: the conformance suite runs every case on each compiled-in backend (CUDA's print
# "skipped: no CUDA device" here instead of passing silently), and tests/cuda_kernels.rs puts every
# CUDA kernel through NVRTC and ptxas for sm_80 and sm_90, from the wheels .ci/run installs into
# $ELECTRA_CUDA_TOOLS (default ~/.cache/electra-cuda-tools): required under CI, a visible "NOT RUN"
# line on a developer machine without them.
suite "cargo test --features $FEATURES (CUDA kernels through NVRTC + ptxas, no GPU needed)" cargo test --features "$FEATURES"
suite "C ABI under valgrind" bash tests/c/run.sh

# --- Language bindings (bindings/go, bindings/csharp, bindings/java; owned by the bindings engineer) ---
# Need golang-go (Go >= 1.19), mono-mcs + mono-runtime, and openjdk-17-jdk-headless + junit4;
# each script builds the library of scripts/lib-under-test.sh (here: `cargo test`'s profile and
# features, so a no-op) and runs its suite against it.
suite "Go binding (go test -race)" bash bindings/go/test.sh
suite "C# binding (mono)" bash bindings/csharp/test.sh
suite "Java binding (JUnit)" bash bindings/java/test.sh
# --- end of language bindings ---

# --- C/C++ examples and packaging (examples/, include/electra.hpp, Makefile, cmake/) ---
# Need valgrind, cmake and pkg-config. The install test builds (make lib) with the profile and
# features the other suites already compiled: the shipped dist profile (fat LTO, `make install`'s
# default) adds ~6 minutes from a clean clone; run `bash tests/c/test_install.sh` (no PROFILE)
# to test it.
suite "C/C++ examples (valgrind)" bash tests/c/test_examples.sh
suite "make install: soname, pkg-config, CMake" env PROFILE=dev FEATURES="$FEATURES" bash tests/c/test_install.sh
# --- end of C/C++ examples and packaging ---

# --- ARM64 (scripts/cross-check.sh; needs qemu-user-static, gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross and the rustup targets, which .ci/run installs) ---
# The CPU kernels (NEON f32, int8 SDOT and its no-dotprod fallback against the scalar reference)
# and the parity and int8 suites under qemu-aarch64.
suite "aarch64 under qemu" bash scripts/cross-check.sh
# --- end of ARM64 ---

# --- Mobile packaging (scripts/mobile-check.sh; docs/MOBILE.md) ---
# electra.aar (arm64-v8a + x86_64 libelectra.so linked here without the NDK, classes.jar when
# bindings/java exists, manifest, headers) and Electra.xcframework (device + simulator static
# libraries, module map, Info.plist), each checked: ELF/Mach-O architectures and platforms,
# sonames, 16 KB pages, exports against abi/symbols.txt. Anything not built says SKIPPED.
suite "mobile packaging: AAR + XCFramework" bash scripts/mobile-check.sh
# --- end of mobile packaging ---

# --- Fuzzing (fuzz/, needs cargo-fuzz; .ci/run installs it) ---
# Every fuzz target for FUZZ_SECONDS (10) seconds on its seeds; a crash fails the run.
suite "fuzz smoke (cargo fuzz, stable)" bash scripts/fuzz-smoke.sh
# --- end of fuzzing ---

print_summary
echo "all suites passed"
