#!/usr/bin/env bash
# `make install` and what a C/C++ project sees of it: builds the library (make lib; PROFILE=dist
# by default, i.e. fat LTO and stripped, in target/dist), checks the soname carries the ABI
# version, installs into a temporary DESTDIR (LICENSE under share/doc/electra among the files),
# checks the exported symbols of the installed (stripped) library against abi/symbols.txt, then
# builds examples/infer.c and
# examples/example.cpp against the installed tree with pkg-config (shared and static) and with
# CMake find_package(electra) (electra::electra and electra::electra_static), and runs them.
# Needs pkg-config and cmake. Prints "N passed, N failed" last; exits non-zero on a failure.
#
#   bash tests/c/test_install.sh
#   PROFILE=release bash tests/c/test_install.sh   # quicker build, no LTO (rebuilds the release lib)
set -uo pipefail
cd "$(dirname "$0")/../.."

profile=${PROFILE:-dist}
case $profile in dev | test) dir=debug ;; bench) dir=release ;; *) dir=$profile ;; esac
target=${CARGO_TARGET_DIR:-target}
lib="$target/$dir/libelectra.so"
fixture=$PWD/tests/fixtures/emb_eq_hidden
prefix=/usr/local
passed=0
failed=0
failures=()

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
root=$dest$prefix

check() {
  local name=$1 log="$tmp/log.txt"
  shift
  echo "-- $name"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL: $name: $*" >&2
    tail -n 40 "$log" >&2
  fi
}

for tool in pkg-config cmake readelf nm; do
  command -v "$tool" >/dev/null || { echo "test_install.sh: $tool is not installed" >&2; exit 1; }
done

echo "-- make lib PROFILE=$profile"
make --no-print-directory lib PROFILE="$profile" || exit 1

abi_header=$(sed -n 's/^#define ELECTRA_ABI_VERSION \([0-9][0-9]*\)$/\1/p' include/electra.h)
abi_src=$(sed -n 's/^pub const ELECTRA_ABI_VERSION: u32 = \([0-9][0-9]*\);.*/\1/p' src/ffi/mod.rs)
soname_is_versioned() {
  local soname
  soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
  echo "SONAME of $lib: $soname; ELECTRA_ABI_VERSION: $abi_header (header), $abi_src (src/ffi/mod.rs)"
  [ -n "$abi_header" ] && [ "$abi_header" = "$abi_src" ] && [ "$soname" = "libelectra.so.$abi_header" ]
}
check "soname is libelectra.so.<ELECTRA_ABI_VERSION>" soname_is_versioned

check "make install DESTDIR=... PREFIX=$prefix" make --no-print-directory install-files PROFILE="$profile" \
  DESTDIR="$dest" PREFIX="$prefix"
check "installed files" bash -c "
  set -e
  cd '$root'
  test -x lib/libelectra.so.$abi_header -a ! -L lib/libelectra.so.$abi_header
  test \"\$(readlink lib/libelectra.so)\" = libelectra.so.$abi_header
  test -f lib/libelectra.a -a -f include/electra.h -a -f include/electra.hpp
  test -f lib/pkgconfig/electra.pc
  test -f lib/cmake/electra/electraConfig.cmake -a -f lib/cmake/electra/electraConfigVersion.cmake
  cmp '$PWD/LICENSE' share/doc/electra/LICENSE"

exported_symbols_match() {
  diff -u abi/symbols.txt <(nm -D --defined-only "$root/lib/libelectra.so.$abi_header" |
    awk '$2 == "T" && $3 ~ /^electra_/ { print $3 }' | sort)
}
check "installed (stripped) library exports exactly abi/symbols.txt" exported_symbols_match
check "libelectra.a defines every function of abi/symbols.txt" bash -c "
  diff -u abi/symbols.txt <(nm --defined-only '$root/lib/libelectra.a' 2>/dev/null |
    awk '\$2 == \"T\" && \$3 ~ /^electra_/ { print \$3 }' | sort -u)"

# pkg-config: PKG_CONFIG_SYSROOT_DIR prefixes -I/-L with DESTDIR, as for a staged install.
export PKG_CONFIG_PATH=$root/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
CC=${CC:-cc}
CXX=${CXX:-c++}
warn=(-Wall -Wextra -Werror -pedantic)
mkdir -p "$tmp/bin"
check "pkg-config --modversion electra" bash -c \
  "test \"\$(pkg-config --modversion electra)\" = \"\$(sed -n 's/^version = \"\\(.*\\)\"/\\1/p' Cargo.toml | head -n 1)\""
# shellcheck disable=SC2046
check "infer.c with pkg-config --cflags --libs electra" \
  "$CC" -std=c99 "${warn[@]}" examples/infer.c -o "$tmp/bin/infer_pc" $(pkg-config --cflags --libs electra) -lm
check "infer (pkg-config build) runs against the installed libelectra.so.$abi_header" bash -c "
  set -e
  export LD_LIBRARY_PATH='$root/lib'
  ldd '$tmp/bin/infer_pc' | grep -q 'libelectra.so.$abi_header => $root/lib/libelectra.so.$abi_header'
  '$tmp/bin/infer_pc' '$fixture' | grep -q 'P(replaced)'"
# shellcheck disable=SC2046
check "example.cpp with pkg-config" \
  "$CXX" -std=c++11 "${warn[@]}" examples/example.cpp -o "$tmp/bin/example_pc" $(pkg-config --cflags --libs electra)
check "example (pkg-config build) runs" env LD_LIBRARY_PATH="$root/lib" "$tmp/bin/example_pc" "$fixture" "$tmp/work-pc"
# pkgconf prefixes variables with the sysroot too, freedesktop's pkg-config does not.
pc_libdir=$(pkg-config --variable=libdir electra)
case $pc_libdir in "$dest"/*) ;; *) pc_libdir=$dest$pc_libdir ;; esac
# shellcheck disable=SC2046
check "infer.c linked statically (libelectra.a + native_static_libs)" \
  "$CC" -std=c99 "${warn[@]}" examples/infer.c -o "$tmp/bin/infer_static" $(pkg-config --cflags electra) \
  "$pc_libdir/libelectra.a" $(pkg-config --variable=native_static_libs electra)
check "infer (static) runs without libelectra.so" bash -c "
  set -e
  ! ldd '$tmp/bin/infer_static' | grep -q libelectra
  '$tmp/bin/infer_static' '$fixture' | grep -q 'P(replaced)'"
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

# CMake: a consumer project using find_package(electra 0.1 REQUIRED).
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
major_minor=${version%.*}
mkdir -p "$tmp/cmake-app"
cat >"$tmp/cmake-app/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(electra_consumer C CXX)
find_package(electra $major_minor REQUIRED)
message(STATUS "electra \${electra_VERSION}, ABI \${electra_ABI_VERSION}")
add_executable(infer $PWD/examples/infer.c)
set_target_properties(infer PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options(infer PRIVATE -Wall -Wextra -Werror -pedantic)
target_link_libraries(infer PRIVATE electra::electra m)
add_executable(infer_static $PWD/examples/infer.c)
set_target_properties(infer_static PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_link_libraries(infer_static PRIVATE electra::electra_static m)
add_executable(example $PWD/examples/example.cpp)
set_target_properties(example PROPERTIES CXX_STANDARD 11 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
target_compile_options(example PRIVATE -Wall -Wextra -Werror -pedantic)
target_link_libraries(example PRIVATE electra::electra)
EOF
check "cmake: find_package(electra $major_minor) configures" \
  cmake -S "$tmp/cmake-app" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$root" -DCMAKE_BUILD_TYPE=Release
check "cmake: build infer, infer_static, example" cmake --build "$tmp/cmake-build"
check "cmake: infer (electra::electra, rpath from CMake) runs" bash -c "
  set -e
  ldd '$tmp/cmake-build/infer' | grep -q 'libelectra.so.$abi_header => $root/lib/'
  '$tmp/cmake-build/infer' '$fixture' | grep -q 'P(replaced)'"
check "cmake: infer_static (electra::electra_static) runs" bash -c "
  set -e
  ! ldd '$tmp/cmake-build/infer_static' | grep -q libelectra
  '$tmp/cmake-build/infer_static' '$fixture' | grep -q 'P(replaced)'"
check "cmake: example (C++ wrapper) runs" "$tmp/cmake-build/example" "$fixture" "$tmp/work-cmake"
version_refused() {
  local want=$1
  mkdir -p "$tmp/v$want"
  printf 'cmake_minimum_required(VERSION 3.16)\nproject(v NONE)\nfind_package(electra %s REQUIRED)\n' "$want" \
    >"$tmp/v$want/CMakeLists.txt"
  ! cmake -S "$tmp/v$want" -B "$tmp/v$want/build" -DCMAKE_PREFIX_PATH="$root"
}
check "cmake: find_package(electra 99.0) is refused" version_refused 99.0
check "cmake: find_package(electra ${version%%.*}.$((${major_minor#*.} + 1))) is refused" \
  version_refused "${version%%.*}.$((${major_minor#*.} + 1))"
check "cmake: the installed tree can be moved" bash -c "
  set -e
  mkdir -p '$tmp/moved'
  cp -a '$root' '$tmp/moved/prefix'
  cmake -S '$tmp/cmake-app' -B '$tmp/cmake-moved' -DCMAKE_PREFIX_PATH='$tmp/moved/prefix' >/dev/null
  grep -q '$tmp/moved/prefix/lib/libelectra.so.$abi_header' '$tmp/cmake-moved/CMakeCache.txt' ||
    grep -rq '$tmp/moved/prefix/lib/libelectra.so.$abi_header' '$tmp/cmake-moved'"

check "make uninstall removes everything it installed" bash -c "
  set -e
  make --no-print-directory uninstall DESTDIR='$dest' PREFIX='$prefix'
  test -z \"\$(find '$dest' -type f -o -type l)\""

echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  printf 'FAIL: %s\n' "${failures[@]}" >&2
  exit 1
fi
