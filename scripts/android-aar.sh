#!/usr/bin/env bash
# Assembles electra.aar (docs/MOBILE.md, "Android: the AAR") and checks it.
#
#   bash scripts/android-aar.sh [--profile dist] [--out target/electra.aar] [--ndk DIR]
#                               [--java-src DIR] [--package NAME] [--min-sdk 24] [--no-check]
#
# The AAR (a zip):
#   classes.jar                      the Java binding, compiled from --java-src (default
#                                    bindings/java/src/main/java) with javac --release 11; when
#                                    there are no Java sources, an empty jar and a SKIPPED line
#   jni/arm64-v8a/libelectra.so      aarch64-linux-android  (phones)
#   jni/x86_64/libelectra.so         x86_64-linux-android   (emulator)
#   AndroidManifest.xml              package (--package; default: the Java binding's top package)
#                                    and minSdk (--min-sdk, default 24)
#   R.txt                            empty (no resources)
#   proguard.txt                     consumer rules: keeps native methods and the binding's
#                                    classes (the JNI code looks them up by name)
#   headers/electra.h, electra.hpp   for apps that call the C API from their own native code
#
# The shared libraries are built with `--features jni` when Cargo.toml has that feature (the
# Java binding's JNI entry points), stripped (.dynsym stays), and linked:
#   - with the NDK when --ndk DIR (or ANDROID_NDK_HOME) is given: its clang for API --min-sdk;
#   - otherwise without it: rust-lld through scripts/android/link.sh, against stub libc.so,
#     libm.so, libdl.so and liblog.so generated here from scripts/android/stubs.txt (Android's
#     sonames; each symbol listed there was checked to exist in bionic at API 24) and GCC's
#     unwinder (libgcc_eh.a of gcc-aarch64-linux-gnu / the host gcc) as the static libunwind.a
#     rustc asks for, plus scripts/android/bionic-unwind.c. Needs gcc-aarch64-linux-gnu.
# A Rust target rustup cannot install, or a missing compiler for the stubs, is reported on its own
# line ("SKIPPED: ...") and that ABI is left out; the checks then run on what was built.
#
# Checks (unless --no-check): the zip listing; per .so the ELF machine, soname libelectra.so,
# DT_NEEDED only libc.so/libm.so/libdl.so/liblog.so, no GLIBC_* symbol versions, every LOAD
# segment 16 KB aligned, .hash and .gnu.hash, the exported electra_* functions equal to
# abi/symbols.txt, Java_* entry points present with the jni feature (and nothing else exported
# but electra_*, Java_* and JNI_OnLoad/JNI_OnUnload); classes.jar holds classes when built, and
# with both, each native method of classes.jar has its Java_* function (scripts/android/jni-names.py). Then
# a smoke test on an x86-64 host: the x86_64 library runs examples/infer.c over glibc (a shim
# for what bionic and glibc do differently: scripts/android/host-shim.c) and a panic is caught
# across its unwinder.
#
# The default profile is `cross` (dev's optimisation); scripts/mobile-check.sh passes
# `mobile-check` (unoptimised: quickest to build); ship with --profile dist (fat LTO; sizes in
# docs/MOBILE.md).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=cross
out=
ndk=${ANDROID_NDK_HOME:-}
java_src=
package=
min_sdk=24
check=1
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ndk) ndk=$2; shift 2 ;;
    --java-src) java_src=$2; shift 2 ;;
    --package) package=$2; shift 2 ;;
    --min-sdk) min_sdk=$2; shift 2 ;;
    --no-check) check=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "android-aar: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

target=${CARGO_TARGET_DIR:-target}
out=${out:-$target/$profile/electra.aar}
work=$target/android-aar/$profile
stubs_src=scripts/android/stubs.txt
die() {
  echo "android-aar: FAILED: $*" >&2
  exit 1
}
skipped=()
skip() {
  echo "SKIPPED: $*"
  skipped+=("$*")
}

# ABI directory, Rust target, compiler for the stubs (no NDK), ELF machine as readelf names it.
abis=(
  "arm64-v8a aarch64-linux-android aarch64-linux-gnu-gcc AArch64"
  "x86_64 x86_64-linux-android gcc Advanced Micro Devices X86-64"
)

features=()
jni=0
if grep -qE '^jni *=' Cargo.toml; then
  features=(--features jni)
  jni=1
fi

[ -n "$java_src" ] || { [ -d bindings/java/src/main/java ] && java_src=bindings/java/src/main/java; } || true
if [ -z "$package" ]; then
  package=io.electra
  if [ -n "$java_src" ] && [ -d "$java_src" ]; then
    # The shortest package the Java sources declare (the binding's top package).
    p=$(grep -rhoE '^package [A-Za-z0-9_.]+;' "$java_src" --include='*.java' | sed 's/^package //; s/;$//' |
      awk '{ print length($0), $0 }' | sort -n | head -n 1 | cut -d' ' -f2)
    [ -n "$p" ] && package=$p
  fi
fi

rm -rf "$work"
mkdir -p "$work/aar/jni" "$work/aar/headers"

# --- the shared libraries ---
host=$(rustc -vV | sed -n 's/^host: //p')
rust_lld=$(rustc --print sysroot)/lib/rustlib/$host/bin/rust-lld
if [ -n "$ndk" ]; then
  bin=$ndk/toolchains/llvm/prebuilt/linux-x86_64/bin
  [ -d "$bin" ] || die "--ndk $ndk: no $bin"
  strip_tool=$bin/llvm-strip
  echo "android-aar: linking with the NDK at $ndk (API $min_sdk)"
else
  [ -x "$rust_lld" ] || die "no rust-lld at $rust_lld (it ships with rustup's toolchains)"
  strip_tool=$(command -v llvm-strip || true)
  echo "android-aar: linking without the NDK: rust-lld + stub system libraries (scripts/android/link.sh)"
fi

# Stub shared libraries with Android's sonames, one function (or object) per symbol of stubs.txt,
# and libunwind.a = GCC's unwinder + bionic-unwind.c.
make_stubs() { # DIR CC
  local dir=$1 cc=$2 lib gcc_eh
  mkdir -p "$dir"
  for lib in libc libm libdl liblog; do
    awk -v lib="$lib" '!/^#/ && NF >= 2 && $1 == lib {
        if ($3 == "object") printf "char %s[8];\n", $2; else printf "void %s(void) {}\n", $2 }' "$stubs_src" >"$dir/$lib.c"
    "$cc" -shared -nostdlib -fPIC -fno-builtin -w -Wl,-soname,$lib.so -Wl,--hash-style=both \
      -o "$dir/$lib.so" "$dir/$lib.c"
  done
  gcc_eh=$("$cc" -print-file-name=libgcc_eh.a)
  [ -f "$gcc_eh" ] || die "$cc has no libgcc_eh.a"
  "$cc" -O2 -fPIC -ffreestanding -fno-stack-protector -c scripts/android/bionic-unwind.c -o "$dir/bionic-unwind.o"
  cp "$gcc_eh" "$dir/libunwind.a"
  chmod u+w "$dir/libunwind.a"
  ar rcs "$dir/libunwind.a" "$dir/bionic-unwind.o"
}

built=()
for entry in "${abis[@]}"; do
  read -r abi triple cc machine <<<"$entry"
  if ! rustup target list --installed | grep -qx "$triple" && ! rustup target add "$triple" >/dev/null 2>&1; then
    skip "jni/$abi/libelectra.so (rustup could not install the target $triple)"
    continue
  fi
  upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
  if [ -n "$ndk" ]; then
    clang=$bin/${triple}${min_sdk}-clang
    [ -x "$clang" ] || die "no $clang (--min-sdk $min_sdk)"
    export "CARGO_TARGET_${upper}_LINKER=$clang" "CC_${triple//-/_}=$clang" "AR_${triple//-/_}=$bin/llvm-ar"
  else
    if ! command -v "$cc" >/dev/null; then
      skip "jni/$abi/libelectra.so ($cc, which builds the stub system libraries, is missing: apt-get install gcc-aarch64-linux-gnu; or pass --ndk)"
      continue
    fi
    stubs=$work/stubs/$triple
    make_stubs "$stubs" "$cc"
    export "CARGO_TARGET_${upper}_LINKER=$PWD/scripts/android/link.sh"
    export ELECTRA_ANDROID_STUBS=$PWD/$stubs ELECTRA_RUST_LLD=$rust_lld
  fi
  start=$SECONDS
  cargo rustc --profile "$profile" --no-default-features "${features[@]}" --lib --crate-type cdylib,staticlib --target "$triple"
  dir=$(if [ "$profile" = dev ]; then echo debug; else echo "$profile"; fi)
  so=$target/$triple/$dir/libelectra.so
  [ -s "$so" ] || die "no $so"
  [ -s "$target/$triple/$dir/libelectra.a" ] || die "no $target/$triple/$dir/libelectra.a"
  mkdir -p "$work/aar/jni/$abi"
  cp "$so" "$work/aar/jni/$abi/libelectra.so"
  if [ -n "$strip_tool" ]; then
    "$strip_tool" --strip-unneeded "$work/aar/jni/$abi/libelectra.so"
  else
    skip "stripping jni/$abi/libelectra.so (no llvm-strip: apt-get install llvm)"
  fi
  echo "android-aar: jni/$abi/libelectra.so, $(stat -c %s "$work/aar/jni/$abi/libelectra.so") bytes ($((SECONDS - start))s)"
  built+=("$abi|$machine")
done

# --- classes.jar ---
if [ -n "$java_src" ] && [ -d "$java_src" ] && [ -n "$(find "$java_src" -name '*.java' -print -quit)" ]; then
  command -v javac >/dev/null || die "javac missing (apt-get install openjdk-17-jdk-headless)"
  mkdir -p "$work/classes"
  find "$java_src" -name '*.java' | sort >"$work/java-sources.txt"
  # 11: java.lang.ref.Cleaner and the other JDK 9+ APIs; D8 (Android Gradle Plugin) desugars it.
  javac --release 11 -nowarn -d "$work/classes" @"$work/java-sources.txt"
  jar --create --file "$work/aar/classes.jar" -C "$work/classes" .
  echo "android-aar: classes.jar from $java_src ($(wc -l <"$work/java-sources.txt") sources)"
  have_classes=1
else
  skip "classes.jar (bindings/java not present): the AAR carries an empty classes.jar (native libraries and headers only)"
  mkdir -p "$work/empty"
  jar --create --file "$work/aar/classes.jar" -C "$work/empty" .
  have_classes=0
fi

# --- manifest, R.txt, consumer rules, headers ---
cat >"$work/aar/AndroidManifest.xml" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android"
    package="$package">
    <uses-sdk android:minSdkVersion="$min_sdk" />
</manifest>
EOF
: >"$work/aar/R.txt"
cat >"$work/aar/proguard.txt" <<EOF
# libelectra: the JNI code finds the binding's classes, fields and constructors by name, and the
# native methods must keep their names; R8/ProGuard must neither rename nor remove them.
-keepclasseswithmembernames,includedescriptorclasses class * {
    native <methods>;
}
-keep class $package.** { *; }
EOF
cp include/electra.h include/electra.hpp "$work/aar/headers/"

mkdir -p "$(dirname "$out")"
rm -f "$out"
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
(cd "$work/aar" && zip -q -X -r "$out_abs" AndroidManifest.xml classes.jar R.txt proguard.txt headers jni)
echo "android-aar: $out, $(stat -c %s "$out") bytes"

[ "$check" = 1 ] || exit 0

# --- checks ---
echo
echo "== checking $out"
unzip -l "$out"
listing=$(unzip -Z1 "$out")
for f in AndroidManifest.xml classes.jar R.txt proguard.txt headers/electra.h headers/electra.hpp; do
  grep -qx "$f" <<<"$listing" || die "$out has no $f"
done
python3 - "$work/aar/AndroidManifest.xml" "$package" "$min_sdk" <<'EOF' || die "AndroidManifest.xml"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://schemas.android.com/apk/res/android}"
assert root.tag == "manifest" and root.get("package") == sys.argv[2], root.attrib
sdk = root.find("uses-sdk")
assert sdk is not None and sdk.get(ns + "minSdkVersion") == sys.argv[3]
print(f"AndroidManifest.xml: package {root.get('package')}, minSdk {sdk.get(ns + 'minSdkVersion')}")
EOF
if [ "$have_classes" = 1 ]; then
  n=$(unzip -Z1 "$work/aar/classes.jar" | grep -c '\.class$' || true)
  [ "$n" -gt 0 ] || die "classes.jar has no classes"
  echo "classes.jar: $n classes"
fi
checked=0
for b in "${built[@]}"; do
  abi=${b%%|*}
  machine=${b#*|}
  so=$work/aar/jni/$abi/libelectra.so
  grep -qx "jni/$abi/libelectra.so" <<<"$listing" || die "$out has no jni/$abi/libelectra.so"
  m=$(readelf -h "$so" | sed -n 's/^ *Machine: *//p')
  [ "$m" = "$machine" ] || die "jni/$abi/libelectra.so is $m, not $machine"
  soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
  [ "$soname" = libelectra.so ] || die "jni/$abi/libelectra.so: soname '$soname', expected libelectra.so"
  needed=$(readelf -d "$so" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort | tr '\n' ' ' | sed 's/ $//')
  for n in $needed; do
    case $n in libc.so | libm.so | libdl.so | liblog.so) ;; *) die "jni/$abi/libelectra.so needs $n (only libc.so, libm.so, libdl.so, liblog.so exist on every device)" ;; esac
  done
  if readelf -VW --dyn-syms "$so" | grep -q 'GLIBC_'; then
    die "jni/$abi/libelectra.so references GLIBC_* symbol versions"
  fi
  aligns=$(readelf -lW "$so" | awk '$1 == "LOAD" { print $NF }' | sort -u | tr '\n' ' ' | sed 's/ $//')
  for a in $aligns; do
    [ $((a)) -ge 16384 ] || die "jni/$abi/libelectra.so has a LOAD segment aligned to $a (< 16 KB)"
  done
  sections=$(readelf -SW "$so")
  grep -q ' \.gnu\.hash ' <<<"$sections" && grep -q ' \.hash ' <<<"$sections" ||
    die "jni/$abi/libelectra.so lacks .hash or .gnu.hash (--hash-style=both)"
  exports=$(llvm-nm -D --defined-only "$so" 2>/dev/null || nm -D --defined-only "$so")
  diff -u abi/symbols.txt <(awk '$2 == "T" && $3 ~ /^electra_/ { print $3 }' <<<"$exports" | sort) ||
    die "jni/$abi/libelectra.so: exported electra_* functions differ from abi/symbols.txt"
  njava=$(awk '$2 == "T" && $3 ~ /^Java_/' <<<"$exports" | wc -l)
  if [ "$jni" = 1 ] && [ "$njava" -eq 0 ]; then
    die "jni/$abi/libelectra.so: built with the jni feature but exports no Java_* function"
  fi
  if [ "$jni" = 1 ] && [ "$have_classes" = 1 ]; then
    # Every native method of classes.jar has its Java_* entry point (or JNI_OnLoad registers it).
    awk '$2 == "T" { print $3 }' <<<"$exports" >"$work/exports-$abi.txt"
    python3 scripts/android/jni-names.py "$work/classes" "$work/exports-$abi.txt" ||
      die "jni/$abi/libelectra.so lacks the JNI entry points of native methods in classes.jar"
  fi
  others=$(awk '$2 ~ /^[TDBRVWiu]$/ && $3 !~ /^(electra_|Java_|JNI_On(Load|Unload)$)/ { print $3 }' <<<"$exports" | head -n 5 | tr '\n' ' ')
  [ -z "$others" ] || die "jni/$abi/libelectra.so exports more than the C API and JNI: $others"
  echo "jni/$abi/libelectra.so: $m, soname $soname, NEEDED $needed, LOAD align $aligns, $(wc -l <abi/symbols.txt) electra_* = abi/symbols.txt, $njava Java_*"
  checked=$((checked + 1))
done
# --- smoke test: the x86_64 library runs on this host ---
# Android's x86_64 libelectra.so on an x86-64 Linux host, over glibc with scripts/android/host-shim.c
# (preloaded) standing in for what bionic has and glibc lacks or defines differently: examples/infer.c runs a fixture model through
# it (logits compared with the host's own build when scripts/lib-under-test.sh's exists), and a panic is
# caught across the same unwinder, linker and flags (scripts/android/smoke.rs).
if [ "$(uname -m)" != x86_64 ] || [ ! -f "$work/aar/jni/x86_64/libelectra.so" ] || ! command -v gcc >/dev/null; then
  skip "host smoke test of jni/x86_64/libelectra.so (needs an x86-64 Linux host with gcc and the x86_64 library)"
else
  smoke=$work/host-smoke
  mkdir -p "$smoke/shim" "$smoke/electra"
  gcc -shared -fPIC -O2 -Wl,-soname,libc.so -o "$smoke/shim/libc.so" scripts/android/host-shim.c
  gcc -shared -fPIC -Wl,-soname,libm.so -Wl,--no-as-needed -o "$smoke/shim/libm.so" -x c /dev/null -lm
  gcc -shared -fPIC -Wl,-soname,libdl.so -Wl,--no-as-needed -o "$smoke/shim/libdl.so" -x c /dev/null -ldl
  gcc -shared -fPIC -Wl,-soname,liblog.so -o "$smoke/shim/liblog.so" -x c /dev/null
  cp "$work/aar/jni/x86_64/libelectra.so" "$smoke/electra/"
  gcc -std=c99 -O2 -Iinclude examples/infer.c -o "$smoke/infer" -L"$smoke/electra" \
    -Wl,-rpath-link,"$smoke/shim" -lelectra -lm
  run() { LD_PRELOAD="$PWD/$smoke/shim/libc.so" LD_LIBRARY_PATH="$smoke/shim:$smoke/electra" "$@"; }
  model=tests/fixtures/emb_lt_hidden
  run "$smoke/infer" --logits "$model" >"$smoke/logits.txt" || die "examples/infer.c on the Android x86_64 library failed"
  n=$(wc -l <"$smoke/logits.txt")
  awk '$1 + 0 != $1 || $1 != $1 { exit 1 }' "$smoke/logits.txt" && [ "$n" -gt 0 ] ||
    die "examples/infer.c on the Android x86_64 library: no or non-numeric logits"
  # The host library to compare with: the one the C and binding suites test
  # (scripts/lib-under-test.sh; scripts/test.sh builds it before this suite), if it is there.
  # shellcheck source=lib-under-test.sh
  . scripts/lib-under-test.sh
  host=$ELECTRA_LIB_DIR
  cmp_note="(no $host/libelectra.so to compare with)"
  if [ -f "$host/libelectra.so" ]; then
    gcc -std=c99 -O2 -Iinclude examples/infer.c -o "$smoke/infer-host" -L"$host" \
      -Wl,-rpath,"$host" -lelectra -lm
    abi=$(sed -n 's/^#define ELECTRA_ABI_VERSION \([0-9][0-9]*\)$/\1/p' include/electra.h)
    ln -sf libelectra.so "$host/libelectra.so.$abi"
    "$smoke/infer-host" --logits "$model" >"$smoke/logits-host.txt"
    paste "$smoke/logits.txt" "$smoke/logits-host.txt" | awk '
      function abs(x) { return x < 0 ? -x : x }
      { if (abs($1 - $2) > 1e-5 * abs($2) + 1e-6) bad++ } END { exit bad > 0 }' ||
      die "the Android x86_64 library's logits differ from the host build's"
    cmp_note="= the host build's within 1e-5"
  fi
  echo "host smoke: examples/infer.c through jni/x86_64/libelectra.so: $n logits $cmp_note"
  triple=x86_64-linux-android
  upper=X86_64_LINUX_ANDROID
  linker_var=CARGO_TARGET_${upper}_LINKER
  ELECTRA_ANDROID_STUBS=$PWD/$work/stubs/$triple rustc --edition 2021 --crate-type cdylib --crate-name electra_smoke -C opt-level=1 -C panic=unwind \
    --target "$triple" -C linker="${!linker_var}" scripts/android/smoke.rs -o "$smoke/electra/libelectra_smoke.so"
  printf '#include <stdio.h>\nint smoke_catch_panics(void);\nint main(void) { int n = smoke_catch_panics(); printf("%%d\\n", n); return n != 2; }\n' >"$smoke/smoke.c"
  gcc -O2 "$smoke/smoke.c" -o "$smoke/smoke" -L"$smoke/electra" -Wl,-rpath-link,"$smoke/shim" -lelectra_smoke
  caught=$(run "$smoke/smoke") || die "the unwinder of the Android library did not catch a panic (caught: $caught of 2)"
  echo "host smoke: panics caught across the Android library's unwinder: $caught of 2 (calling thread, new thread)"
fi

[ "$jni" = 1 ] || skip "Java_* entry points check (Cargo.toml has no jni feature yet)"
echo "android-aar: ok, $checked of ${#abis[@]} ABIs built and checked: $out ($(stat -c %s "$out") bytes)"
for s in "${skipped[@]}"; do
  echo "SKIPPED: $s"
done
