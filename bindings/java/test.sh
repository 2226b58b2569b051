#!/usr/bin/env bash
# Tests of the Java binding on the host JVM: compiles src/main (the dev.electra API) and
# src/test (JUnit 4 suites mirroring the Go and C# ones: inference parity against
# tests/fixtures, errors, fine-tuning, pre-training, save/resume/export, threads sharing a model,
# close while in use, cancel) with javac into build/, then runs them with JUnitCore, which
# prints "OK (N tests)" or "FAILURES!!! Tests run: N, Failures: F" last and exits non-zero on
# any failure.
#
# Needs a JDK >= 11 and JUnit 4 with hamcrest (Debian 12: apt-get install
# openjdk-17-jdk-headless junit4). Builds target/release/libelectra.so with the `jni` feature
# first, the feature set the Go and C# scripts build too (a no-op when it is up to date); set
# ELECTRA_SKIP_BUILD=1 to use the library as it is. Arguments name test classes to run instead of
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
if [ "${ELECTRA_SKIP_BUILD:-0}" != 1 ]; then
  (cd "$repo" && cargo build --release --lib --features jni)
fi
lib="$repo/target/release/libelectra.so"
[ -f "$lib" ] || { echo "missing $lib" >&2; exit 1; }
nm -D --defined-only "$lib" | grep -q ' Java_dev_electra_Native_' ||
  { echo "$lib has no JNI entry points: build it with --features jni" >&2; exit 1; }

out="$here/build"
rm -rf "$out"
mkdir -p "$out/classes" "$out/test-classes"
javac -Xlint:all -Werror --release 11 -d "$out/classes" $(find "$here/src/main/java" -name '*.java')
javac -Xlint:all,-processing,-try -Werror --release 11 -cp "$out/classes:$junit:$hamcrest" -d "$out/test-classes" \
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
# -Xcheck:jni: the JVM checks every JNI call the library makes (a warning here is a bug).
timeout 600 java -Xcheck:jni -ea \
  -Djava.library.path="$repo/target/release" -Delectra.repo="$repo" \
  -cp "$out/classes:$out/test-classes:$junit:$hamcrest" \
  org.junit.runner.JUnitCore "${classes[@]}" 2>&1 | tee "$out/junit.log"
status=${PIPESTATUS[0]}
if grep -q 'WARNING in native method' "$out/junit.log"; then
  echo "FAIL: -Xcheck:jni warnings (above)" >&2
  exit 1
fi
exit "$status"
