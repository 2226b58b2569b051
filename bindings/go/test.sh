#!/usr/bin/env bash
# Tests of the Go binding: gofmt, go vet, then `go test -race` (inference parity against
# tests/fixtures, errors, training, save/resume/export, goroutines sharing a model, cancel).
#
# Needs Go >= 1.19 and a C compiler (Debian 12: apt-get install golang-go build-essential).
# Builds the library of scripts/lib-under-test.sh first (target/release/libelectra.so with the
# `jni` feature unless told), the one the C and the other binding suites test (a no-op when it
# is up to date); ELECTRA_SKIP_BUILD=1 uses the library as it is. Extra arguments go to `go test`
# (e.g. -run Trainer -v).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

command -v go >/dev/null || { echo "go not found (Debian: apt-get install golang-go)" >&2; exit 1; }
# shellcheck source=../../scripts/lib-under-test.sh
. "$repo/scripts/lib-under-test.sh"
electra_lib_build
# native.go links ../../target/release; another library directory comes first on the link line
# and, through LD_LIBRARY_PATH, at run time.
export CGO_LDFLAGS="-L$ELECTRA_LIB_DIR -Wl,-rpath,$ELECTRA_LIB_DIR${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
export LD_LIBRARY_PATH="$ELECTRA_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
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
