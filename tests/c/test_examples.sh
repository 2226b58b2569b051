#!/usr/bin/env bash
# The C and C++ examples (examples/infer.c, train.c, example.cpp, embed_text.c and
# classify_text.cpp, the last two with include/electra.hpp): builds them with examples/Makefile
# (C99 / C++11, -Wall -Wextra -Werror -pedantic) against the library of
# scripts/lib-under-test.sh (target/release/libelectra.so unless told) and runs each one; infer,
# example, embed_text and classify_text run under valgrind (errors and definite/indirect leaks
# fail). The text examples run on a classifier that the `electra` command line of the same
# build fine-tunes here (built with the library's profile and features unless
# ELECTRA_SKIP_BUILD=1), and must print the numbers of `electra embed` and `electra predict`.
# Prints "N passed, N failed" last; exits non-zero on a failure.
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
    # some thread-locals "still reachable" at exit, which is not a leak. --fair-sched=yes: as
    # in tests/c/run.sh (threads take valgrind's one lock in turn).
    valgrind --quiet --fair-sched=yes --leak-check=full --show-leak-kinds=definite,indirect \
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

# --- The text examples. A model with a tokenizer: the fixture pair (vocabulary of 50) with a
# vocab.txt of as many entries (the command line wants them equal), fine-tuned for two epochs
# by the command line into a classifier with two labels (written with its tokenizer).
# The command line of the library's build (scripts/test.sh: the one `cargo test` built), or
# ELECTRA_CLI. It is built only when missing or older than the sources: `cargo build --bin`
# and `make lib` rebuild the library unit over each other (~3 minutes in release), so building
# it on every run would cost that every time.
cli=${ELECTRA_CLI:-$ELECTRA_LIB_DIR/electra}
if [ -z "${ELECTRA_CLI:-}" ] && [ "${ELECTRA_SKIP_BUILD:-0}" != 1 ] &&
  { [ ! -x "$cli" ] || [ -n "$(find src build.rs Cargo.toml Cargo.lock -newer "$cli" -print -quit)" ]; }; then
  check "cargo build --bin electra (profile $electra_lib_profile, features $electra_lib_features)" \
    cargo build --quiet --profile "$electra_lib_profile" --features "$electra_lib_features" --bin electra \
    --target-dir "$electra_lib_target"
fi
mkdir -p "$tmp/pre"
cp -r "$fixture/discriminator" "$fixture/generator" "$tmp/pre/"
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' the a an in on of to and is was white whale \
  whales swam swims sea ship ships captain sold sailed sank storm calm harbor deck crew boat fish \
  big small old new water waves harpoon sailor night day . , '!' '##s' '##ed' '##ing' \
  >"$tmp/pre/discriminator/vocab.txt"
printf '%s\t%s\n' sea 'the whale swam in the sea' ship 'the captain sold the ship' \
  sea 'a big fish in the calm sea' ship 'the crew sailed the old boat' \
  sea 'whales swim in the sea' ship 'the ship sank in the storm' >"$tmp/train.tsv"
cls=$tmp/cls
check "electra finetune: a classifier with a tokenizer" "$cli" finetune --model "$tmp/pre" --train "$tmp/train.tsv" \
  --out "$cls" --epochs 2 --batch-size 3 --seq-len 16 --threads 1
# The sentences of embed_text.c and classify_text.cpp.
sentences=("the whale swam in the sea" "a white whale swims" "the captain sold the ship")
check "embed_text (valgrind)" valgrind_run "$out/embed_text" "$cls"
embed_log=$last_log
embed_cli() { "$cli" embed --model "$cls" "${sentences[@]}" >"$tmp/embed.jsonl"; }
check "electra embed on the same sentences" embed_cli
# Every cosine embed_text prints is the one of `electra embed`'s vectors (to 1e-5).
same_cosines() {
  python3 - "$1" "$2" <<'PY'
import json, math, re, sys
vecs = [json.loads(l)["embedding"] for l in open(sys.argv[1])]
cos = lambda a, b: sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
got = re.findall(r"^cos\((\d), (\d)\) = (-?[0-9.]+)", open(sys.argv[2]).read(), re.M)
assert len(got) == 3, got
for i, j, c in got:
    want = cos(vecs[int(i)], vecs[int(j)])
    print(f"cos({i}, {j}): example {c}, electra embed {want:.6f}")
    assert abs(float(c) - want) < 1e-5, (i, j, c, want)
PY
}
check "embed_text prints the cosines of electra embed's vectors" same_cosines "$tmp/embed.jsonl" "$embed_log"
check "classify_text (valgrind)" valgrind_run "$out/classify_text" "$cls"
classify_log=$last_log
# Each sentence's probabilities and label names are those of `electra predict`, and the cosines
# those embed_text printed.
same_predictions() {
  local i=0 sentence
  for sentence in "${sentences[@]}"; do
    "$cli" predict --model "$cls" "$sentence" >"$tmp/predict-$i.txt" || return 1
    i=$((i + 1))
  done
  python3 - "$classify_log" "$embed_log" "$tmp" "${sentences[@]}" <<'PY'
import re, sys
log, embed_log, tmp, sentences = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3], sys.argv[4:]
for i, s in enumerate(sentences):
    block = log.split(s + "\n", 1)[1].split("\n")
    want = [l.split() for l in open(f"{tmp}/predict-{i}.txt").read().splitlines()]
    got = [l.split() for l in block[: len(want)]]
    print(s, got, want)
    assert [g[0] for g in got] == [w[0] for w in want] == ["sea", "ship"], (got, want)
    assert all(abs(float(g[1]) - float(w[1])) <= 1.5e-4 for g, w in zip(got, want)), (got, want)
    assert abs(sum(float(g[1]) for g in got) - 1) < 1e-3
cos = lambda t: re.findall(r"^cos\(\d, \d\) = -?[0-9.]+", t, re.M)
assert len(cos(log)) == 3 and cos(log) == cos(embed_log), (cos(log), cos(embed_log))
PY
}
check "classify_text prints electra predict's probabilities and labels, embed_text's cosines" same_predictions
check "embed_text on a model without a tokenizer" fails_with "tokenizer" "$out/embed_text" "$fixture"
check "classify_text on a model without a classifier" fails_with "(unsupported)" \
  "$out/classify_text" "$tmp/pre"

# The rest of electra.hpp's text wrappers (Tokenizer, detect_text, fill_mask, errors) on the
# pre-trained pair, whose tokenizer sits in discriminator/.
hpp_text() {
  cat >"$tmp/hpp_text.cpp" <<'CPP'
#include <cstdio>
#include <string>
#include <vector>

#include "electra.hpp"

#define REQUIRE(c) do { if (!(c)) { std::fprintf(stderr, "failed: %s (line %d)\n", #c, __LINE__); return 1; } } while (0)

int main(int, char **argv) {
    electra::Model model = electra::Model::load(argv[1]);
    electra::Tokenizer tok = model.tokenizer();
    REQUIRE(tok.info().vocab_size == 50 && tok.info().mask_id == 4);
    electra::Encoding e = tok.encode({"the whale", "whales sank."});
    REQUIRE(e.batch == 2 && e.seq_len == 5 && e.input_ids.size() == 10 && e.input_ids[0] == 2);
    REQUIRE(e.attention_mask[3] == 1 && e.attention_mask[4] == 0 && e.offsets[2 * 2] == 4 && e.offsets[2 * 2 + 1] == 9);
    REQUIRE(tok.decode(std::vector<int32_t>(e.input_ids.begin(), e.input_ids.begin() + 4)) == "the whale" && tok.decode(std::vector<int32_t>(1, 2), false) == "[CLS]");
    REQUIRE(tok.token_to_id("whale") == tok.encode({"whale"}).input_ids[1] && tok.token_to_id("kraken") == -1);
    REQUIRE(tok.id_to_token(4) == "[MASK]");
    electra::Tokenizer file = electra::Tokenizer::load(std::string(argv[1]) + "/discriminator/vocab.txt");
    REQUIRE(file.info().vocab_size == 50);
    electra::Session session(model);
    std::vector<electra_word_score> words = session.detect_text("the white whale, in the sea", electra::text_params(), file);
    REQUIRE(words.size() == 7 && words[3].start == 15 && words[3].end == 16 && words[6].end == 27);
    std::vector<std::vector<electra_token_score>> masks = session.fill_mask("the [MASK] swam in the [MASK].", 3);
    REQUIRE(masks.size() == 2 && masks[1].size() == 3 && masks[1][0].score >= masks[1][2].score);
    REQUIRE(session.fill_mask("[MASK]", 1000)[0].size() == model.info().vocab_size);
    std::vector<float> emb = session.embed_texts({"the whale", ""});
    REQUIRE(emb.size() == 2 * session.info().hidden_size);
    try {
        session.embed_texts({std::string("b\xff")});
        return 1;
    } catch (const electra::Error &err) {
        REQUIRE(err.status() == ELECTRA_ERR_INVALID_ARGUMENT && std::string(err.what()).find("UTF-8") != std::string::npos);
    }
    try {
        model.label_names();
        return 1;
    } catch (const electra::Error &err) {
        REQUIRE(err.status() == ELECTRA_ERR_UNSUPPORTED);
    }
    electra::Tokenizer moved = std::move(tok);
    try {
        tok.info();
        return 1;
    } catch (const electra::Error &err) {
        REQUIRE(err.status() == ELECTRA_ERR_INVALID_HANDLE);
    }
    std::printf("hpp_text: ok\n");
    return 0;
}
CPP
  ${CXX:-c++} -std=c++11 -Wall -Wextra -Werror -pedantic -g -Iinclude "$tmp/hpp_text.cpp" -o "$tmp/hpp_text" \
    -L"$ELECTRA_LIB_DIR" -Wl,-rpath,"$ELECTRA_LIB_DIR" -lelectra &&
    valgrind_run "$tmp/hpp_text" "$tmp/pre"
}
check "electra.hpp: Tokenizer, detect_text, fill_mask and their errors (valgrind)" hpp_text

check "electra.hpp compiles as C++11/14/17 with -Wall -Wextra -Werror -pedantic" bash -c '
  for std in c++11 c++14 c++17; do
    ${CXX:-c++} -std=$std -Wall -Wextra -Werror -pedantic -fsyntax-only -Iinclude -x c++ include/electra.hpp || exit 1
  done'

echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  printf 'FAIL: %s\n' "${failures[@]}" >&2
  exit 1
fi
