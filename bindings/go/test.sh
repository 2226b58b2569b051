#!/usr/bin/env bash
# Tests of the Go binding: gofmt, go vet, then `go test -race` (inference parity against
# tests/fixtures, tokenizer parity with HF, text calls, errors, training, save/resume/export,
# goroutines sharing a model, cancel), then the module as a user gets it: a copy of bindings/go
# outside the repository, required through a `replace` by a consumer module that builds the
# README's example with only PKG_CONFIG_PATH set (and once more with CGO_CFLAGS/CGO_LDFLAGS).
#
# Needs Go >= 1.19, pkg-config and a C compiler (Debian 12: apt-get install golang-go
# pkg-config build-essential). Builds the library of scripts/lib-under-test.sh first
# (target/release/libelectra.so with the `jni` feature unless told), the one the C and the other
# binding suites test (a no-op when it is up to date); ELECTRA_SKIP_BUILD=1 uses the library as
# it is. Extra arguments go to `go test` (e.g. -run Trainer -v).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

command -v go >/dev/null || { echo "go not found (Debian: apt-get install golang-go)" >&2; exit 1; }
command -v pkg-config >/dev/null || { echo "pkg-config not found (Debian: apt-get install pkg-config)" >&2; exit 1; }
# shellcheck source=../../scripts/lib-under-test.sh
. "$repo/scripts/lib-under-test.sh"
electra_lib_build
[ -f "$repo/include/electra.h" ] || { echo "missing $repo/include/electra.h" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# native.go takes its flags from `pkg-config electra`: an electra.pc made from electra.pc.in as
# `make install` makes it, pointing at the repository's include/ and the library under test.
mkdir -p "$tmp/pkgconfig"
version=$(sed -n 's/^version = "\([^"]*\)".*/\1/p' "$repo/Cargo.toml" | head -n 1)
sed -e "s|@PREFIX@|$repo|g" -e "s|@LIBDIR@|$ELECTRA_LIB_DIR|g" -e "s|@INCLUDEDIR@|$repo/include|g" \
  -e "s|@VERSION@|$version|g" -e "s|@NATIVE_STATIC_LIBS@||g" "$repo/electra.pc.in" >"$tmp/pkgconfig/electra.pc"
export PKG_CONFIG_PATH="$tmp/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# The library is found at run time through LD_LIBRARY_PATH (the .pc file sets no rpath, as an
# installed one does not).
export LD_LIBRARY_PATH="$ELECTRA_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CGO_ENABLED=1
unset CGO_CFLAGS CGO_LDFLAGS

cd "$here"
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 5m "$@" ./...

# --- The module outside the repository -------------------------------------------------------
echo "-- the module outside the repository (consumer module with a replace directive)"
mod="$tmp/electra-go"
app="$tmp/consumer"
mkdir -p "$mod" "$app/cmd/mkmodel" "$app/cmd/embed" "$tmp/bin"
for f in go.mod README.md ./*.go; do
  case $f in *_test.go) ;; *) cp "$f" "$mod/" ;; esac
done
cat >"$app/go.mod" <<MOD
module example.com/consumer

go 1.19

require github.com/electra-project/electra/bindings/go v0.0.0

replace github.com/electra-project/electra/bindings/go => $mod
MOD
# A tiny model with the tokenizer fixture beside its discriminator, made through the binding.
cat >"$app/cmd/mkmodel/main.go" <<'GO'
package main

import (
	"log"
	"os"
	"path/filepath"

	electra "github.com/electra-project/electra/bindings/go"
)

// mkmodel VOCAB_TXT DIR
func main() {
	t, err := electra.NewTrainer("tiny", map[string]interface{}{"vocab_size": 3000, "mask_token_id": 4,
		"special_token_ids": []int{0, 1, 2, 3, 4}, "seed": 1})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	if err := t.Export(os.Args[2]); err != nil {
		log.Fatal(err)
	}
	vocab, err := os.ReadFile(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(os.Args[2], "discriminator", "vocab.txt"), vocab, 0o644); err != nil {
		log.Fatal(err)
	}
}
GO
# The README's example, as written there (the ```go block after "<!-- example: embed -->").
awk '/<!-- example: embed -->/ { on = 1; next } on && /^```go/ { inblock = 1; next } inblock && /^```/ { exit } inblock' \
  "$here/README.md" >"$app/cmd/embed/main.go"
grep -q 'EmbedTexts' "$app/cmd/embed/main.go" || { echo "no example found in README.md" >&2; exit 1; }
# No network, no flags but PKG_CONFIG_PATH.
(cd "$app" && env GOFLAGS=-mod=mod GOPROXY=off go build -o "$tmp/bin/" ./...)
"$tmp/bin/mkmodel" "$repo/tests/fixtures/tokenizer/vocab.txt" "$tmp/model"
out="$("$tmp/bin/embed" "$tmp/model")"
echo "$out"
[ "$(printf '%s\n' "$out" | grep -cE '^-?[01]\.[0-9]{3} ')" = 3 ] || { echo "the example printed no 3 similarities" >&2; exit 1; }
# The documented override without an electra.pc: PKG_CONFIG=true and the flags by hand.
(cd "$app" && env -u PKG_CONFIG_PATH PKG_CONFIG=true CGO_CFLAGS="-I$repo/include" \
  CGO_LDFLAGS="-L$ELECTRA_LIB_DIR -lelectra" GOFLAGS=-mod=mod GOPROXY=off go build -o "$tmp/bin/embed2" ./cmd/embed)
[ "$("$tmp/bin/embed2" "$tmp/model")" = "$out" ] || { echo "the CGO_CFLAGS/CGO_LDFLAGS build differs" >&2; exit 1; }
echo "-- module outside the repository: ok"
