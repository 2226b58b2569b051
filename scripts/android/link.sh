#!/usr/bin/env bash
# A cc-style (or ld-style: rustc may call it either way) linker for aarch64-linux-android and x86_64-linux-android without the NDK: rustc
# calls it as it would call the NDK's clang (CARGO_TARGET_<TRIPLE>_LINKER, set by
# scripts/android-aar.sh); it turns the -Wl, arguments into plain ones and runs rust-lld (the
# ld.lld that ships with rustup's toolchain) against the stub system libraries in
# $ELECTRA_ANDROID_STUBS (libc.so, libm.so, libdl.so, liblog.so with Android's sonames, and a
# static libunwind.a: GCC's unwinder + bionic-unwind.c), built by scripts/android-aar.sh from
# scripts/android/stubs.txt.
#
# Flags as the NDK's: 16 KB pages (-z max-page-size=16384, Google Play's Android 15 requirement),
# --hash-style=both, --no-undefined (a symbol missing from stubs.txt fails the link rather than
# the dlopen on a phone), --build-id, noexecstack, relro.
set -euo pipefail
stubs=${ELECTRA_ANDROID_STUBS:?scripts/android/link.sh: set ELECTRA_ANDROID_STUBS (scripts/android-aar.sh does)}
lld=${ELECTRA_RUST_LLD:-}
if [ -z "$lld" ]; then
  lld=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/rust-lld
fi
args=()
for a in "$@"; do
  case $a in
    -Wl,*)
      IFS=, read -ra parts <<<"${a#-Wl,}"
      args+=("${parts[@]}")
      ;;
    # Compiler-driver flags with no linker meaning (clang would consume them).
    -nodefaultlibs | -nostartfiles | -nostdlib | -fuse-ld=* | -m64 | -march=* | -fPIC | -fpic | -B* | -O | -O[0-9sz] | -g*) ;;
    -pie) args+=(-pie) ;;
    *) args+=("$a") ;;
  esac
done
exec "$lld" -flavor gnu "${args[@]}" -L "$stubs" \
  --hash-style=both -z max-page-size=16384 -z noexecstack -z relro -z now \
  --no-undefined --error-limit=0 --build-id=sha1
