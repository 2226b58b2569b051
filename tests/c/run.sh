#!/usr/bin/env bash
# The C ABI from C: builds libelectra.so (scripts/lib-under-test.sh: release unless told), checks the header compiles as C99 and C++11
# without warnings, checks the exported symbols against abi/symbols.txt, then builds each
# tests/c/test_*.c against include/electra.h and runs it under valgrind.
#
#   bash tests/c/run.sh                  # everything
#   NO_VALGRIND=1 bash tests/c/run.sh    # run the C tests directly (faster)
#   UPDATE_SYMBOLS=1 bash tests/c/run.sh # rewrite abi/symbols.txt after a deliberate ABI change
set -euo pipefail
cd "$(dirname "$0")/../.."

target=${CARGO_TARGET_DIR:-target}
# shellcheck source=../../scripts/lib-under-test.sh
. scripts/lib-under-test.sh
libdir=$ELECTRA_LIB_DIR
lib="$libdir/libelectra.so"
out="$target/c"
mkdir -p "$out"
CC=${CC:-cc}
CXX=${CXX:-c++}
warn=(-Wall -Wextra -Werror -pedantic)

# The library the binding suites test too (scripts/lib-under-test.sh). The JNI entry points of
# its default `jni` feature add only Java_dev_electra_* symbols; the checks here look at
# electra_* alone.
electra_lib_build

echo "-- include/electra.h compiles as C99, C11 and C++11/17"
for std in c99 c11; do
  "$CC" -std=$std "${warn[@]}" -fsyntax-only -x c include/electra.h
done
for std in c++11 c++17; do
  "$CXX" -std=$std "${warn[@]}" -fsyntax-only -x c++ include/electra.h
done

echo "-- exported symbols match abi/symbols.txt and the header"
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^electra_/ { print $3 }' | sort)
declared=$(grep -oE '\<electra_[a-z0-9_]+\(' include/electra.h | tr -d '(' | sort -u)
if [ -n "${UPDATE_SYMBOLS:-}" ]; then
  printf '%s\n' "$exported" > abi/symbols.txt
  echo "wrote abi/symbols.txt"
fi
if ! diff -u abi/symbols.txt <(printf '%s\n' "$exported"); then
  echo "FAIL: libelectra.so exports other electra_* functions than abi/symbols.txt lists (diff above)." >&2
  echo "If the ABI change is deliberate: UPDATE_SYMBOLS=1 bash tests/c/run.sh, and bump" >&2
  echo "ELECTRA_ABI_VERSION when a function was removed or changed." >&2
  exit 1
fi
if ! diff -u <(printf '%s\n' "$declared") <(printf '%s\n' "$exported"); then
  echo "FAIL: the functions declared in include/electra.h differ from those exported (diff above)." >&2
  echo "Regenerate the header: UPDATE_HEADER=1 cargo test --test header" >&2
  exit 1
fi
echo "$(printf '%s\n' "$exported" | wc -l) functions"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=()
# Every tests/c/test_*.c is one program: C99, no warnings, run from the repository root with a
# fresh scratch directory as its only argument, printing "N passed, N failed" last. Built first,
# then run side by side (valgrind runs a program on one core), each one's output shown whole.
names=()
for src in tests/c/test_*.c; do
  name=$(basename "$src" .c)
  echo "-- build $src (C99)"
  "$CC" -std=c99 "${warn[@]}" -g -O1 -Iinclude "$src" -o "$out/$name" \
    -L"$libdir" -lelectra -Wl,-rpath,"$libdir" -lpthread -lm
  names+=("$name")
done
pids=()
for name in "${names[@]}"; do
  if [ -n "${NO_VALGRIND:-}" ]; then
    "$out/$name" "$tmp/$name" >"$out/$name.log" 2>&1 &
  else
    # Only real errors and definite/indirect leaks fail: Rust's std and the thread pools keep
    # some thread-locals "still reachable" at exit, which is not a leak. --fair-sched=yes:
    # valgrind runs one thread at a time, and its default lock lets a thread that calls the
    # library in a loop (test_free_while_in_use's stepper) take it back again and again while
    # the thread that would stop it waits: the run took 2 minutes or over 20, by chance.
    valgrind --quiet --fair-sched=yes --leak-check=full --show-leak-kinds=definite,indirect \
      --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
      "$out/$name" "$tmp/$name" >"$out/$name.log" 2>&1 &
  fi
  pids+=($!)
done
for k in "${!names[@]}"; do
  name=${names[$k]}
  status=0
  wait "${pids[$k]}" || status=$?
  echo "-- run $name$([ -n "${NO_VALGRIND:-}" ] || echo " under valgrind")"
  cat "$out/$name.log"
  [ "$status" -eq 0 ] || failed+=("$name")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAIL: ${failed[*]}" >&2
  exit 1
fi
