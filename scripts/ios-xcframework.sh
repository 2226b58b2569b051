#!/usr/bin/env bash
# Builds Electra.xcframework (docs/MOBILE.md, "iOS: the XCFramework") without Xcode, and checks it.
#
#   bash scripts/ios-xcframework.sh [--profile dist] [--out target/Electra.xcframework] [--no-check]
#                                   [--build-std]
#
#   1. `cargo rustc --lib --crate-type staticlib --target T` for aarch64-apple-ios (devices),
#      aarch64-apple-ios-sim and x86_64-apple-ios (simulators): a static library links nothing,
#      so no Xcode is needed. IPHONEOS_DEPLOYMENT_TARGET (default 13.0) sets the minimum iOS.
#   2. Headers/: electra.h, electra.hpp and a module.modulemap (`module Electra`), so Swift can
#      `import Electra`.
#   3. Electra.xcframework/
#        ios-arm64/libelectra.a + Headers/
#        ios-arm64_x86_64-simulator/libelectra.a + Headers/   (a fat archive of the two simulator
#                                                   libraries, written by scripts/ios/xcframework.py
#                                                   as `lipo -create` would)
#        Info.plist                                 (AvailableLibraries, XFWK, format 1.0; plistlib)
#   4. Checks (unless --no-check): the plist read back; each slice's architectures (cputype of every
#      Mach-O member) and platform (LC_BUILD_VERSION: 2 = iOS for the device slice, 7 = iOS
#      simulator); the exported electra_* functions of each architecture against
#      abi/symbols.txt; a self-test of the fat-archive writer on tiny llvm-mc objects (read back
#      by llvm-lipo when present).
# A target rustup cannot install is reported on its own line ("SKIPPED: ...") and its slice is
# left out or made with the architectures there are; the checks run on what was built. With
# --build-std such a target is built instead with the nightly toolchain's -Zbuild-std (its
# standard library compiled from rust-src: `rustup toolchain install nightly --component
# rust-src`); slower, and not what scripts/mobile-check.sh does.
#
# The default profile is `cross` (dev's optimisation); scripts/mobile-check.sh passes
# `mobile-check` (unoptimised: quickest to build); ship with --profile dist (fat LTO).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=cross
out=
check=1
build_std=0
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-check) check=0; shift ;;
    --build-std) build_std=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "ios-xcframework: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
target=${CARGO_TARGET_DIR:-target}
out=${out:-$target/$profile/Electra.xcframework}
work=$target/ios-xcframework/$profile
export IPHONEOS_DEPLOYMENT_TARGET=${IPHONEOS_DEPLOYMENT_TARGET:-13.0}
py="python3 scripts/ios/xcframework.py"
die() {
  echo "ios-xcframework: FAILED: $*" >&2
  exit 1
}
skipped=()
skip() {
  echo "SKIPPED: $*"
  skipped+=("$*")
}
dir=$(if [ "$profile" = dev ]; then echo debug; else echo "$profile"; fi)

# Rust target, slice it belongs to, architecture.
declare -A lib=()
for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
  cargo=(cargo)
  std=()
  if ! rustup target list --installed | grep -qx "$t" && ! rustup target add "$t" >/dev/null 2>&1; then
    if [ "$build_std" = 1 ] && rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src'; then
      echo "ios-xcframework: rustup could not install $t: building its standard library from rust-src (nightly, -Zbuild-std)"
      cargo=(cargo +nightly)
      std=(-Zbuild-std=std,panic_unwind)
    else
      skip "$t static library (rustup could not install the target: rust-std from static.rust-lang.org; --build-std builds it with nightly's rust-src)"
      continue
    fi
  fi
  start=$SECONDS
  "${cargo[@]}" rustc "${std[@]}" --profile "$profile" --no-default-features --lib --crate-type staticlib --target "$t"
  a=$target/$t/$dir/libelectra.a
  [ -s "$a" ] || die "no $a"
  echo "ios-xcframework: $a, $(stat -c %s "$a") bytes ($((SECONDS - start))s)"
  lib[$t]=$a
done

rm -rf "$work" "$out"
mkdir -p "$work/Headers" "$out"
cp include/electra.h include/electra.hpp "$work/Headers/"
printf 'module Electra {\n  header "electra.h"\n  export *\n}\n' >"$work/Headers/module.modulemap"

slices=()
if [ -n "${lib[aarch64-apple-ios]:-}" ]; then
  mkdir -p "$out/ios-arm64"
  cp "${lib[aarch64-apple-ios]}" "$out/ios-arm64/libelectra.a"
  cp -r "$work/Headers" "$out/ios-arm64/"
  slices+=("ios-arm64:libelectra.a:arm64")
else
  skip "the device slice ios-arm64 (no aarch64-apple-ios library)"
fi
sim=()
archs=()
[ -n "${lib[aarch64-apple-ios-sim]:-}" ] && sim+=("${lib[aarch64-apple-ios-sim]}") && archs+=(arm64)
[ -n "${lib[x86_64-apple-ios]:-}" ] && sim+=("${lib[x86_64-apple-ios]}") && archs+=(x86_64)
if [ ${#sim[@]} -gt 0 ]; then
  id=ios-$(IFS=_; echo "${archs[*]}")-simulator
  [ ${#sim[@]} = 2 ] || skip "the full simulator slice ios-arm64_x86_64-simulator: only ${archs[*]} was built ($id)"
  mkdir -p "$out/$id"
  $py fat "$out/$id/libelectra.a" "${sim[@]}"
  cp -r "$work/Headers" "$out/$id/"
  slices+=("$id:libelectra.a:$(IFS=,; echo "${archs[*]}"):simulator")
else
  skip "the simulator slice ios-arm64_x86_64-simulator (neither aarch64-apple-ios-sim nor x86_64-apple-ios could be built)"
fi
[ ${#slices[@]} -gt 0 ] || die "no slice was built"
$py plist "$out" "${slices[@]}"
echo "ios-xcframework: $out ($(du -sb "$out" | cut -f1) bytes): ${slices[*]}"

[ "$check" = 1 ] || exit 0
echo
echo "== checking $out"
find "$out" -type f | sort
$py check "$out" abi/symbols.txt
if command -v llvm-mc >/dev/null && command -v llvm-ar >/dev/null; then
  $py selftest "$work/selftest"
else
  skip "self-test of the fat-archive writer (no llvm-mc / llvm-ar: apt-get install llvm)"
fi
echo "ios-xcframework: ok, ${#slices[@]} slices checked: $out"
for s in "${skipped[@]}"; do
  echo "SKIPPED: $s"
done
