#!/usr/bin/env bash
# Tests of the Java binding on the host JVM: compiles src/main (the dev.electra API) and
# src/test (JUnit 4 suites mirroring the Go and C# ones: inference parity against
# tests/fixtures, errors, fine-tuning, pre-training, save/resume/export, threads sharing a model,
# close while in use, cancel) with javac into build/, then runs them with JUnitCore, which
# prints "OK (N tests)" or "FAILURES!!! Tests run: N, Failures: F" last and exits non-zero on
# any failure.
#
# Needs a JDK >= 11 and JUnit 4 with hamcrest (Debian 12: apt-get install
# openjdk-17-jdk-headless junit4). Builds the library of
# scripts/lib-under-test.sh first (target/release/libelectra.so with the `jni` feature unless
# told; its feature list must include jni), the one the C, Go and C# suites test (a no-op when it
# is up to date); ELECTRA_SKIP_BUILD=1 uses the library as it is. Arguments name test classes to run instead of
# all (e.g. dev.electra.TrainerTest).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

for tool in javac java; do
  command -v "$tool" >/dev/null || { echo "$tool not found (Debian: apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
done
junit=${JUNIT_JAR:-/usr/share/java/junit4.jar}
hamcrest=${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}
for jar in "$junit" "$hamcrest"; do
  [ -f "$jar" ] || { echo "missing $jar (Debian: apt-get install junit4)" >&2; exit 1; }
done
# shellcheck source=../../scripts/lib-under-test.sh
. "$repo/scripts/lib-under-test.sh"
electra_lib_build
lib="$ELECTRA_LIB_DIR/libelectra.so"
[ -f "$lib" ] || { echo "missing $lib" >&2; exit 1; }
# (grep without -q reads all of nm's output: with pipefail, -q exiting at the first match could
# fail the pipeline with nm's SIGPIPE.)
nm -D --defined-only "$lib" | grep ' Java_dev_electra_Native_' >/dev/null ||
  { echo "$lib has no JNI entry points: build it with --features jni" >&2; exit 1; }

out="$here/build"
rm -rf "$out"
mkdir -p "$out/classes" "$out/test-classes"
javac -encoding UTF-8 -Xlint:all -Werror --release 11 -d "$out/classes" $(find "$here/src/main/java" -name '*.java')
javac -encoding UTF-8 -Xlint:all,-processing,-try -Werror --release 11 -cp "$out/classes:$junit:$hamcrest" -d "$out/test-classes" \
  $(find "$here/src/test/java" -name '*.java')

if [ $# -gt 0 ]; then
  classes=("$@")
else
  classes=()
  for f in $(cd "$here/src/test/java" && find . -name '*Test.java' | sort); do
    f=${f#./}
    f=${f%.java}
    classes+=("${f//\//.}")
  done
fi

cd "$repo"
# junit LOG EXTRA_JVM_ARGS... -- CLASSES...: one JUnitCore run under -Xcheck:jni (the JVM checks
# every JNI call the library makes; a warning it prints fails the run).
junit() {
  local log=$1 jvm=()
  shift
  while [ "$1" != -- ]; do jvm+=("$1"); shift; done
  shift
  set +e
  timeout 600 java -Xcheck:jni -ea "${jvm[@]}" \
    -Djava.library.path="$ELECTRA_LIB_DIR" -Delectra.repo="$repo" \
    -cp "$out/classes:$out/test-classes:$junit:$hamcrest" \
    org.junit.runner.JUnitCore "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  set -e
  if grep -q 'WARNING in native method' "$log"; then
    echo "FAIL: -Xcheck:jni warnings (above)" >&2
    return 1
  fi
  return "$status"
}

if [ $# -eq 0 ]; then
  # The handles' safety net as older Android has it (no java.lang.ref.Cleaner before API 33):
  # the phantom-reference fallback, under the suites that forget handles.
  echo "-- with -Delectra.cleaner=phantom: dev.electra.InferenceTest dev.electra.ReclaimerTest"
  junit "$out/junit-phantom.log" -Delectra.cleaner=phantom -- dev.electra.InferenceTest dev.electra.ReclaimerTest \
    >"$out/junit-phantom.out" || { cat "$out/junit-phantom.out"; exit 1; }
  tail -n 2 "$out/junit-phantom.out"
  echo "-- every suite"
fi
junit "$out/junit.log" -- "${classes[@]}"
