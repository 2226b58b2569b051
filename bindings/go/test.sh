#!/usr/bin/env bash
# Tests of the Go binding: gofmt, go vet, then `go test -race` (inference parity against
# tests/fixtures, errors, training, save/resume/export, goroutines sharing a model, cancel).
#
# Needs Go >= 1.19 and a C compiler (Debian 12: apt-get install golang-go build-essential).
# Builds target/release/libelectra.so first, with the `jni` feature as bindings/java/test.sh
# does, so one release build serves the three binding suites (a no-op when it is up to date); set
# ELECTRA_SKIP_BUILD=1 to use the library as it is. Extra arguments go to `go test`
# (e.g. -run Trainer -v).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

command -v go >/dev/null || { echo "go not found (Debian: apt-get install golang-go)" >&2; exit 1; }
if [ "${ELECTRA_SKIP_BUILD:-0}" != 1 ]; then
  (cd "$repo" && cargo build --release --lib --features jni)
fi
# Executables record the soname (libelectra.so.1); cargo writes only libelectra.so.
ln -sf libelectra.so "$repo/target/release/libelectra.so.1"
[ -f "$repo/target/release/libelectra.so" ] || { echo "missing $repo/target/release/libelectra.so" >&2; exit 1; }
[ -f "$repo/include/electra.h" ] || { echo "missing $repo/include/electra.h" >&2; exit 1; }

cd "$here"
export CGO_ENABLED=1
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 5m "$@" ./...
