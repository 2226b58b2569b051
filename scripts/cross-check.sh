#!/usr/bin/env bash
# ARM64 (docs/MOBILE.md), checked for real on an x86-64 Debian machine. Two modes:
#
# Default (part of scripts/test.sh, about 5 minutes from a clean clone on 2 cores):
#   1. rustup target add aarch64-unknown-linux-gnu; a target that cannot be installed is reported
#      on its own line and its steps are skipped.
#   2. Under qemu-user: the CPU kernel unit tests (the prepacked f32 and int8 NEON kernels, each
#      against the scalar reference, bit for bit for int8), with qemu's default CPU (NEON with
#      dotprod: the SDOT int8 kernel) and again as a Cortex-A53 (NEON without dotprod: the
#      fallback int8 kernel); then the PyTorch parity suite (model_reference).
#   The Android and iOS libraries (static and shared, same `cross` profile) are built and checked
#   by scripts/mobile-check.sh (scripts/android-aar.sh, scripts/ios-xcframework.sh), the next
#   suite of scripts/test.sh.
#
# --full: also (old default) libelectra.so + .a for aarch64-unknown-linux-gnu linked by Debian's
#   aarch64-linux-gnu-gcc with ELF machine, soname and export checks; the parity and ABI suites
#   (model_reference, train_reference, trainer, ffi) in release under qemu and on x86-64;
#   examples/infer.c cross-compiled, its logits of every fixture and of a small model trained
#   here diffed between x86-64 and aarch64; aarch64-linux-android linked with the NDK when
#   ANDROID_NDK_HOME is set (and a check of the 16 KB page alignment).
#
# Needs (apt): gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static (or qemu-user);
# network access to static.rust-lang.org for step 1 unless the targets are installed already.
#
#   bash scripts/cross-check.sh
#   bash scripts/cross-check.sh --full [SKIP_X86_TESTS=1] [ANDROID_NDK_HOME=/opt/android-ndk-r28 ANDROID_API=24]
set -euo pipefail
cd "$(dirname "$0")/.."

triple=aarch64-unknown-linux-gnu
android=aarch64-linux-android
sysroot=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
target=${CARGO_TARGET_DIR:-target}
suites=(--test model_reference --test train_reference --test trainer --test ffi)
# Cross-arch logit tolerance: |a - b| <= RTOL*|b| + ATOL. Kernels differ in summation order and
# FMA use; both sides are within 1e-5 of PyTorch, so 1e-5 relative is the honest bound here too.
RTOL=${RTOL:-1e-5}
ATOL=${ATOL:-1e-6}

summary=()
step() {
  echo
  echo "== $*"
}
die() {
  echo "cross-check: FAILED: $*" >&2
  exit 1
}

full=0
[ "${1:-}" = "--full" ] && full=1
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)

if [ "$full" = 0 ]; then
  step "1. rustup targets"
  have=()
  for t in "$triple"; do
    if rustup target list --installed | grep -qx "$t" || rustup target add "$t" >/dev/null 2>&1; then
      have+=("$t")
      summary+=("ok    rustup target $t")
    else
      echo "SKIP: rustup could not install the target $t (it downloads rust-std from static.rust-lang.org); its steps are skipped"
      summary+=("SKIP  rustup target $t could not be installed: its steps were skipped")
    fi
  done
  installed() { printf '%s\n' "${have[@]}" | grep -qx "$1"; }

  step "2. kernel and parity suites for $triple under qemu"
  if ! installed "$triple"; then
    summary+=("SKIP  $triple suites (no target)")
  elif ! command -v aarch64-linux-gnu-gcc >/dev/null || [ ! -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || [ -z "$qemu" ]; then
    die "missing tools: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
  else
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$qemu -L $sysroot"
    start=$SECONDS
    # qemu's default CPU ("max") has NEON with dotprod (SDOT): the int8 SDOT kernel runs.
    # Dependencies at opt-level 1 (--config): a third less to build, and what they compute under
    # qemu here is small; the crate itself (the kernels under test) keeps the profile's level.
    cross=(--profile cross --config 'profile.cross.package."*".opt-level=1' --no-default-features --target "$triple")
    ELECTRA_EXPECT_SDOT=1 cargo test "${cross[@]}" --lib backend::cpu
    # A Cortex-A53 has NEON without dotprod: the int8 fallback kernel runs.
    ELECTRA_EXPECT_SDOT=0 QEMU_CPU=cortex-a53 cargo test "${cross[@]}" --lib backend::cpu
    # One parity suite: the whole model against PyTorch's fixtures on NEON (the int8 kernels are
    # checked bit for bit against the scalar reference above; the int8 model suite runs on x86-64).
    cargo test "${cross[@]}" --test model_reference
    summary+=("ok    $triple under qemu: CPU kernels (dotprod and Cortex-A53), model_reference ($((SECONDS - start))s)")
  fi

  echo
  echo "== cross-check summary"
  printf '%s\n' "${summary[@]}"
  exit 0
fi

step "1. rustup targets"
if ! rustup target add "$triple" "$android"; then
  die "rustup target add $triple $android failed. It downloads rust-std from https://static.rust-lang.org;
  on a machine without that access install the targets elsewhere (or use a toolchain that ships them)."
fi
summary+=("ok    rustup targets $triple $android")

step "2. libelectra for $triple"
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || missing+=(libc6-arm64-cross libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
if [ ${#missing[@]} -gt 0 ]; then
  die "missing tools: apt-get install ${missing[*]}"
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
cargo build --release --lib --target "$triple"
arm_lib=$target/$triple/release
machine=$(readelf -h "$arm_lib/libelectra.so" | sed -n 's/^ *Machine: *//p')
soname=$(readelf -d "$arm_lib/libelectra.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
echo "libelectra.so: $machine, soname $soname, $(stat -c %s "$arm_lib/libelectra.so") bytes; libelectra.a: $(stat -c %s "$arm_lib/libelectra.a") bytes"
[ "$machine" = "AArch64" ] || die "$arm_lib/libelectra.so is not AArch64 ($machine)"
abi=$(sed -n 's/^#define ELECTRA_ABI_VERSION \([0-9][0-9]*\)$/\1/p' include/electra.h)
[ "$soname" = "libelectra.so.$abi" ] || die "soname $soname, expected libelectra.so.$abi"
# Programs linked with -lelectra need the soname; cargo writes only libelectra.so.
ln -sf libelectra.so "$arm_lib/$soname"
nm_arm=$(command -v aarch64-linux-gnu-nm || echo nm)
diff -u abi/symbols.txt <("$nm_arm" -D --defined-only "$arm_lib/libelectra.so" |
  awk '$2 == "T" && $3 ~ /^electra_/ { print $3 }' | sort) || die "aarch64 exports differ from abi/symbols.txt"
summary+=("ok    $triple: libelectra.so ($machine, soname $soname) + libelectra.a, exports = abi/symbols.txt")

step "3a. test suites for $triple under qemu-aarch64 (${suites[*]})"
# qemu-aarch64 emulates its default "max" CPU: Advanced SIMD (NEON) and FMA, so gemm takes its
# NEON kernels, as on a phone.
start=$SECONDS
cargo test --release --target "$triple" "${suites[@]}" 2>&1 | tee "$target/cross-aarch64-tests.log"
summary+=("ok    $triple: ${suites[*]} pass under qemu ($((SECONDS - start))s): $(grep -c '^test result: ok' "$target/cross-aarch64-tests.log") suites ok")

if [ -z "${SKIP_X86_TESTS:-}" ]; then
  step "3b. the same suites on x86-64"
  start=$SECONDS
  cargo test --release "${suites[@]}" 2>&1 | tee "$target/cross-x86_64-tests.log"
  summary+=("ok    x86_64: ${suites[*]} pass ($((SECONDS - start))s)")
fi

step "3c. discriminator logits, x86-64 vs aarch64"
out=$target/cross-check
rm -rf "$out"
mkdir -p "$out"
cargo build --release --lib --quiet
ln -sf libelectra.so "$target/release/libelectra.so.$abi"
cc -std=c99 -O2 -Iinclude examples/infer.c -o "$out/infer-x86_64" \
  -L"$target/release" -Wl,-rpath,"$PWD/$target/release" -lelectra -lm
cc -std=c99 -O2 -Iinclude examples/train.c -o "$out/train-x86_64" \
  -L"$target/release" -Wl,-rpath,"$PWD/$target/release" -lelectra -lm
aarch64-linux-gnu-gcc -std=c99 -O2 -Iinclude examples/infer.c -o "$out/infer-aarch64" \
  -L"$arm_lib" -Wl,-rpath,"$PWD/$arm_lib" -lelectra -lm
# A model with more than toy widths (hidden 128, 8192 ids), trained briefly on x86-64.
"$out/train-x86_64" "$out/trained" 4 >"$out/train.log"
models=(tests/fixtures/emb_lt_hidden tests/fixtures/emb_eq_hidden tests/fixtures/gelu_new_act tests/fixtures/relu_act
  "$out/trained/export")
worst=0
for m in "${models[@]}"; do
  name=$(basename "$(dirname "$m")")-$(basename "$m")
  "$out/infer-x86_64" --logits "$m" >"$out/$name.x86_64.txt"
  qemu-aarch64 -L "$sysroot" "$out/infer-aarch64" --logits "$m" >"$out/$name.aarch64.txt"
  result=$(paste "$out/$name.x86_64.txt" "$out/$name.aarch64.txt" | awk -v rtol="$RTOL" -v atol="$ATOL" '
    function abs(x) { return x < 0 ? -x : x }
    { n++; d = abs($1 - $2); if (d > worst) worst = d
      if (d > rtol * abs($1) + atol) { bad++; if (bad <= 5) printf "line %d: x86_64 %s aarch64 %s\n", n, $1, $2 > "/dev/stderr" } }
    END { printf "%d %d %.3g\n", n, bad, worst }')
  read -r count bad diff <<<"$result"
  [ "$count" -gt 0 ] || die "$m: no logits"
  [ "$(wc -l <"$out/$name.aarch64.txt")" -eq "$count" ] || die "$m: different numbers of logits"
  echo "$m: $count logits, max |x86_64 - aarch64| = $diff, $bad outside rtol $RTOL + atol $ATOL"
  [ "$bad" -eq 0 ] || die "$m: aarch64 logits differ from x86-64"
  worst=$(awk -v a="$worst" -v b="$diff" 'BEGIN { print (b > a ? b : a) }')
done
summary+=("ok    logits of ${#models[@]} models: aarch64 (qemu) = x86-64 within rtol $RTOL (max abs diff $worst)")

step "4. $android"
if [ -n "${ANDROID_NDK_HOME:-}" ]; then
  api=${ANDROID_API:-24}
  bin=$ANDROID_NDK_HOME/toolchains/llvm/prebuilt/linux-x86_64/bin
  [ -x "$bin/aarch64-linux-android$api-clang" ] || die "no $bin/aarch64-linux-android$api-clang (ANDROID_API=$api)"
  export CARGO_TARGET_AARCH64_LINUX_ANDROID_LINKER=$bin/aarch64-linux-android$api-clang
  export CC_aarch64_linux_android=$bin/aarch64-linux-android$api-clang
  export AR_aarch64_linux_android=$bin/llvm-ar
  cargo build --release --lib --target "$android"
  so=$target/$android/release/libelectra.so
  # Every PT_LOAD segment must be aligned to at least 16 KB (0x4000) for 16 KB-page devices.
  aligns=$(readelf -lW "$so" | awk '$1 == "LOAD" { print $NF }' | sort -u | tr '\n' ' ')
  echo "$so: LOAD alignments $aligns; soname $(readelf -d "$so" | sed -n 's/.*soname: \[\(.*\)\]/\1/p')"
  for a in $aligns; do
    [ $((a)) -ge 16384 ] || die "$so has a LOAD segment aligned to $a (< 16 KB)"
  done
  summary+=("ok    $android: built with NDK (API $api), LOAD segments 16 KB aligned")
else
  cargo check --release --lib --target "$android"
  echo "SKIP: ANDROID_NDK_HOME is not set, so $android was only type-checked (cargo check): linking"
  echo "      libelectra.so for Android needs the NDK's clang (r28+; not available from apt)."
  summary+=("ok    $android: cargo check (SKIPPED the link: ANDROID_NDK_HOME not set)")
fi

echo
echo "== cross-check summary"
printf '%s\n' "${summary[@]}"
