#!/usr/bin/env bash
# Tests of the C# binding on mono: compiles src/ into build/Electra.dll and tests/ into
# build/ElectraTests.exe with mcs, then runs it (inference parity against tests/fixtures,
# errors, training, save/resume/export, threads sharing a model, cancel). The runner prints
# "N passed, N failed" last and exits non-zero on any failure.
#
# Needs mcs and mono (Debian 12: apt-get install mono-mcs mono-runtime). Builds
# target/release/libelectra.so first, with the `jni` feature as bindings/java/test.sh does, so one
# release build serves the three binding suites (a no-op when it is up to date); set ELECTRA_SKIP_BUILD=1
# to use the library as it is. An optional argument selects the tests whose name contains it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

for tool in mcs mono; do
  command -v "$tool" >/dev/null || { echo "$tool not found (Debian: apt-get install mono-mcs mono-runtime)" >&2; exit 1; }
done
if [ "${ELECTRA_SKIP_BUILD:-0}" != 1 ]; then
  (cd "$repo" && cargo build --release --lib --features jni)
fi
# Executables record the soname (libelectra.so.1); cargo writes only libelectra.so.
ln -sf libelectra.so "$repo/target/release/libelectra.so.1"
[ -f "$repo/target/release/libelectra.so" ] || { echo "missing $repo/target/release/libelectra.so" >&2; exit 1; }

out="$here/build"
mkdir -p "$out"
mcs -unsafe -target:library -warnaserror+ -out:"$out/Electra.dll" "$here"/src/*.cs
mcs -warnaserror+ -r:"$out/Electra.dll" -out:"$out/ElectraTests.exe" "$here"/tests/*.cs

cd "$repo"
export ELECTRA_REPO="$repo"
export LD_LIBRARY_PATH="$repo/target/release${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
timeout 300 mono --debug "$out/ElectraTests.exe" "$@"
