#!/usr/bin/env bash
# The C and C++ examples (examples/infer.c, train.c, example.cpp with include/electra.hpp):
# builds them with examples/Makefile (C99 / C++11, -Wall -Wextra -Werror -pedantic) against
# the library of scripts/lib-under-test.sh (target/release/libelectra.so unless told) and runs each one; infer and example run under valgrind (errors
# and definite/indirect leaks fail). Prints "N passed, N failed" last; exits non-zero on a failure.
#
#   bash tests/c/test_examples.sh
#   NO_VALGRIND=1 bash tests/c/test_examples.sh   # run directly (faster)
set -uo pipefail
cd "$(dirname "$0")/../.."

target=${CARGO_TARGET_DIR:-target}
out="$PWD/$target/examples-c"
fixture=tests/fixtures/emb_eq_hidden
passed=0
failed=0
failures=()

# check NAME COMMAND...: runs COMMAND (output to a log, shown on failure; its path is left in
# $last_log) and counts it.
last_log=
check() {
  local name=$1 log
  log="$out/log-$(tr -c 'A-Za-z0-9_\n' '-' <<<"$name").txt"
  last_log=$log
  shift
  echo "-- $name"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL: $name (exit status $?): $*" >&2
    tail -n 40 "$log" >&2
  fi
}

# Fails unless the command fails and its output contains the text.
fails_with() {
  local want=$1
  shift
  local output
  if output=$("$@" 2>&1); then
    echo "expected a failure, got success: $output"
    return 1
  fi
  echo "$output"
  grep -qF -- "$want" <<<"$output"
}

valgrind_run() {
  if [ -n "${NO_VALGRIND:-}" ]; then
    "$@"
  else
    # Only real errors and definite/indirect leaks fail: Rust's std and the thread pools keep
    # some thread-locals "still reachable" at exit, which is not a leak.
    valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
      --errors-for-leak-kinds=definite,indirect --error-exitcode=1 "$@"
  fi
}

# The library the C ABI and binding suites test (scripts/lib-under-test.sh).
# shellcheck source=../../scripts/lib-under-test.sh
. scripts/lib-under-test.sh
electra_lib_build || exit 1
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check "make -C examples" make -C examples --no-print-directory -B TARGET_DIR="$PWD/$target" LIBDIR="$ELECTRA_LIB_DIR"
if [ "$failed" -ne 0 ]; then
  echo "0 passed, 1 failed"
  exit 1
fi

check "infer (valgrind)" valgrind_run "$out/infer" "$fixture"
check "infer prints P(replaced) for every row" grep -q "row 2:.* -" "$last_log"
check "infer on a model directory that does not exist" \
  fails_with "electra_model_load failed: I/O error" "$out/infer" "$tmp/no-such-model"
check "infer without arguments" fails_with "usage:" "$out/infer"
check "train (12 steps, save, resume, export, load)" "$out/train" "$tmp/train" 12
check "train: resumed steps are bit-identical" grep -q "bit-identical" "$last_log"
check "train: export is a loadable pair layout" \
  test -f "$tmp/train/export/discriminator/model.safetensors" -a -f "$tmp/train/export/generator/config.json"
check "infer on the model train.c exported" "$out/infer" "$tmp/train/export"
check "example.cpp (valgrind)" valgrind_run "$out/example" "$fixture" "$tmp/example"
check "example.cpp: all checks passed" grep -q "^example: ok" "$last_log"
check "electra.hpp compiles as C++11/14/17 with -Wall -Wextra -Werror -pedantic" bash -c '
  for std in c++11 c++14 c++17; do
    ${CXX:-c++} -std=$std -Wall -Wextra -Werror -pedantic -fsyntax-only -Iinclude -x c++ include/electra.hpp || exit 1
  done'

echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  printf 'FAIL: %s\n' "${failures[@]}" >&2
  exit 1
fi
