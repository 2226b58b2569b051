#!/usr/bin/env bash
# Tests of the C# binding on mono: checks Electra.csproj, compiles the sources it lists (src/*.cs)
# into build/Electra.dll and tests/ into build/ElectraTests.exe with mcs, then runs it (inference
# parity against tests/fixtures, errors, training, save/resume/export, threads sharing a model,
# cancel, tokenizers and the text calls). The runner prints
# "N passed, N failed" last and exits non-zero on any failure.
#
# Needs mcs and mono (Debian 12: apt-get install mono-mcs mono-runtime). Builds
# the library of scripts/lib-under-test.sh first (target/release/libelectra.so with the `jni`
# feature unless told), the one the C and the other binding suites test (a no-op when it is up to
# date); ELECTRA_SKIP_BUILD=1 uses the library as it is. An optional argument selects the tests whose name contains it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

for tool in mcs mono; do
  command -v "$tool" >/dev/null || { echo "$tool not found (Debian: apt-get install mono-mcs mono-runtime)" >&2; exit 1; }
done
# shellcheck source=../../scripts/lib-under-test.sh
. "$repo/scripts/lib-under-test.sh"
electra_lib_build

out="$here/build"
mkdir -p "$out"
# Electra.csproj (the NuGet package, built with `dotnet pack` elsewhere) is the one list of the
# binding's sources: tools/Csproj.cs checks it (well-formed XML, SDK-style, netstandard2.0,
# Cargo.toml's version, runtimes/<rid>/native/ layout) and prints the files it compiles.
mcs -warnaserror+ -r:System.Xml.dll -out:"$out/Csproj.exe" "$here/tools/Csproj.cs"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
sources=$(mono "$out/Csproj.exe" "$here/Electra.csproj" "$version")
mapfile -t sources <<<"$sources"
mcs -unsafe -target:library -warnaserror+ -out:"$out/Electra.dll" "${sources[@]}"
mcs -warnaserror+ -r:"$out/Electra.dll" -out:"$out/ElectraTests.exe" "$here"/tests/*.cs

cd "$repo"
export ELECTRA_REPO="$repo"
export LD_LIBRARY_PATH="$ELECTRA_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
timeout 300 mono --debug "$out/ElectraTests.exe" "$@"
