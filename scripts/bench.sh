#!/usr/bin/env bash
# Side-by-side benchmark: `electra bench` (fp32 and int8) against ONNX Runtime (fp32 and int8, the
# files a user deploys) and PyTorch + transformers on the same workloads, interleaved round by
# round (so background load hits every side alike), then a markdown table of medians over the
# rounds with ratios.
#
#   scripts/bench.sh [--threads N] [--rounds R] [--python PATH] [--quick] [--baseline BIN]
#
# Per round and workload, in this order: electra fp32, electra int8 (`--quantize int8`; skipped
# with a note when this build's `electra bench` has no such flag), [baseline], ONNX Runtime fp32,
# ONNX Runtime int8, PyTorch. Each is its own process, so its peak RSS is its own.
#
# ONNX Runtime: `scripts/bench_reference.py export` (a torch process) writes, once per preset, the
#   HF ElectraForPreTraining export (input_ids, attention_mask, token_type_ids; dynamic axes),
#   ORT's transformers optimizer with BERT fusions (model.opt.onnx) and its int8 dynamic
#   quantization (model.int8.onnx) into $ELECTRA_BENCH_CACHE/<preset> (default
#   /tmp/electra-bench-onnx/<preset>; export.json there records the fused and quantized op counts);
#   `scripts/bench_ort.py` (numpy + onnxruntime, never torch) times them.
# Timing: every electra and ORT measurement spends >= 2 s in timed calls (electra: --reps from a
#   first 1-rep calibration run per row; ORT: calls until 2 s); PyTorch uses fixed reps.
#
# --python: a Python with torch + transformers (+ onnxruntime, onnx for the ORT columns); default
#           $ELECTRA_PY or /work/pyenv/bin/python. See scripts/bench_reference.py for setup.
# --quick:  fewer repetitions, no calibration (smoke test).
# --baseline BIN: also run an earlier build's `electra` binary (e.g. one built from the previous
#           commit) in the same rounds, for before/after ratios of a change.
# --only-infer: leave out the train and fine-tuning rows.
# --no-long: leave out the 512-token rows (1x512 and 8x512 inference, 8x512 training).
#
# Rows: pre-training 32x128 and 8x512 (electra vs PyTorch), fine-tuning 32x128
# (ElectraForSequenceClassification, electra vs PyTorch), inference 1x128, 32x128, 1x512, 8x512
# (electra fp32/int8 vs ORT fp32/int8 and PyTorch).
# Needs target/release/electra (built if missing); raw JSON lines are kept in $OUT (default: a
# temporary file, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=2
ROUNDS=3
PY="${ELECTRA_PY:-/work/pyenv/bin/python}"
QUICK=0
BASELINE=""
ONLY_INFER=0
LONG=1
PRESET=small
MIN_SECONDS=2.0
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    --only-infer) ONLY_INFER=1; shift ;;
    --no-long) LONG=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN="${ELECTRA_BIN:-target/release/electra}"
[ -x "$BIN" ] || cargo build --release --bin electra
OUT="${OUT:-$(mktemp /tmp/electra-bench.XXXXXX.jsonl)}"
: > "$OUT"
CACHE="${ELECTRA_BENCH_CACHE:-/tmp/electra-bench-onnx}"

HAVE_TORCH=1
"$PY" -c "import torch, transformers" 2>/dev/null || { HAVE_TORCH=0; echo "note: $PY lacks torch/transformers; PyTorch column and ONNX export skipped" >&2; }
HAVE_ORT=1
"$PY" -c "import onnxruntime, onnx" 2>/dev/null || { HAVE_ORT=0; echo "note: onnxruntime/onnx not installed; ORT columns skipped" >&2; }
HAVE_INT8=1
"$BIN" bench infer --help 2>/dev/null | grep -q -- '--quantize' ||
  { HAVE_INT8=0; echo "note: $BIN bench has no --quantize flag; electra int8 column skipped" >&2; }

ONNX_DIR="$CACHE/$PRESET"
if [ "$HAVE_ORT" = 1 ]; then
  if [ -f "$ONNX_DIR/export.json" ]; then
    :
  elif [ "$HAVE_TORCH" = 1 ]; then
    echo "exporting the ONNX files into $ONNX_DIR (once per preset)" >&2
    "$PY" scripts/bench_reference.py export --preset "$PRESET" --cache "$CACHE" > /dev/null 2> "$OUT.export.log" ||
      { tail -5 "$OUT.export.log" >&2; echo "note: ONNX export failed; ORT columns skipped" >&2; HAVE_ORT=0; }
  else
    echo "note: no torch to export the ONNX files and none cached in $ONNX_DIR; ORT columns skipped" >&2
    HAVE_ORT=0
  fi
fi
if [ "$HAVE_ORT" = 1 ]; then
  python3 - "$ONNX_DIR/export.json" <<'PY' >&2
import json, sys
d = json.load(open(sys.argv[1]))
print(f"ONNX files (onnxruntime {d['onnxruntime']}, torch {d['torch']}): fused {d['fused_ops']}; "
      f"int8 {d['quantized_ops']}; max |logit diff| vs torch {d.get('max_abs_logit_diff_vs_torch')}")
PY
fi

# workload  batch  seq  reps(ours, --quick only)  reps(PyTorch)
if [ "$QUICK" = 1 ]; then
  JOBS="train 32 128 1 1
finetune 32 128 1 1
infer 1 128 10 10
infer 32 128 2 2
train 8 512 1 1
infer 1 512 2 2
infer 8 512 1 1"
  MIN_SECONDS=0.3
else
  JOBS="train 32 128 3 3
finetune 32 128 3 3
infer 1 128 50 50
infer 32 128 5 5
train 8 512 3 3
infer 1 512 10 10
infer 8 512 3 3"
fi
[ "$ONLY_INFER" = 1 ] && JOBS="$(grep -v '^train\|^finetune' <<< "$JOBS")"
[ "$LONG" = 0 ] && JOBS="$(grep -v ' 512 ' <<< "$JOBS")"

# tag IMPL: adds "impl" to each JSON line of stdin (replacing any the program printed).
tag() { python3 -c 'import json, sys
for l in sys.stdin:
    if l.strip().startswith("{"):
        print(json.dumps({**json.loads(l), "impl": sys.argv[1]}))' "$1"; }
# electra BIN IMPL WORKLOAD B T REPS [extra flags]: one measurement, appended to $OUT.
electra() {
  local bin=$1 impl=$2 w=$3 b=$4 t=$5 reps=$6
  shift 6
  "$bin" bench "$w" --preset "$PRESET" --batch-size "$b" --seq-len "$t" --threads "$THREADS" --reps "$reps" \
    --json "$@" | tag "$impl" >> "$OUT"
}
ort() { # ort IMPL FILE B T
  "$PY" scripts/bench_ort.py --model "$ONNX_DIR/$2" --impl "$1" --preset "$PRESET" --batch-size "$3" --seq-len "$4" \
    --threads "$THREADS" --min-seconds "$MIN_SECONDS" >> "$OUT" 2> "$OUT.err" ||
    { tail -3 "$OUT.err" >&2; echo "note: $1 ${3}x$4 failed" >&2; }
}
pytorch() {
  "$PY" scripts/bench_reference.py "$1" --preset "$PRESET" --batch-size "$2" --seq-len "$3" --threads "$THREADS" \
    --reps "$4" >> "$OUT" 2>/dev/null || echo "note: PyTorch $1 ${2}x$3 failed" >&2
}
# calibrate WORKLOAD B T [extra flags]: reps so that the timed calls take >= MIN_SECONDS.
calibrate() {
  local w=$1 b=$2 t=$3
  shift 3
  "$BIN" bench "$w" --preset "$PRESET" --batch-size "$b" --seq-len "$t" --threads "$THREADS" --reps 1 --json "$@" |
    python3 -c 'import json, math, sys
s = json.loads(sys.stdin.read())["median_seconds"]
print(max(3, math.ceil(float(sys.argv[1]) * 1.1 / s)))' "$MIN_SECONDS"
}

# Our inference rows time model directories as deployed: the fresh preset model saved once (f32)
# and its `electra quantize` copy (int8), so model_bytes is the file and peak RSS what loading it
# and running it costs (load_peak_rss_bytes: loading alone, before the first call).
MODELS=$(mktemp -d /tmp/electra-bench-models.XXXXXX)
trap 'rm -rf "$MODELS"' EXIT
"$BIN" bench infer --preset "$PRESET" --batch-size 1 --seq-len 8 --reps 1 --json --save-model "$MODELS/fp32" >/dev/null
FP32_FLAGS=(--model "$MODELS/fp32")
INT8_FLAGS=(--quantize int8)
if [ "$HAVE_INT8" = 1 ] && "$BIN" quantize --model "$MODELS/fp32" --out "$MODELS/int8" >&2; then
  INT8_FLAGS=(--model "$MODELS/int8")
fi
flags() { # flags WORKLOAD fp32|int8: our extra flags for that row
  if [ "$1" != infer ]; then return; fi
  if [ "$2" = int8 ]; then printf '%s\n' "${INT8_FLAGS[@]}"; else printf '%s\n' "${FP32_FLAGS[@]}"; fi
}

# The machine's FMA peak for the threads used (the probe of `electra bench gemm`), for each row's
# share of it.
PEAK=$("$BIN" bench gemm --preset "$PRESET" --batch-size 1 --seq-len 16 --threads "$THREADS" --json |
  python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["fma_peak_gflops"])') || PEAK=0
echo "measured FMA peak: $PEAK GFLOP/s on $THREADS threads" >&2

# Reps per row and side: fixed under --quick, else calibrated once before the rounds.
declare -A REPS
while read -r w b t reps rreps; do
  if [ "$QUICK" = 1 ]; then
    REPS[$w.$b.$t.fp32]=$reps
    REPS[$w.$b.$t.int8]=$reps
  else
    mapfile -t f32f < <(flags "$w" fp32)
    REPS[$w.$b.$t.fp32]=$(calibrate "$w" "$b" "$t" "${f32f[@]}")
    if [ "$w" = infer ] && [ "$HAVE_INT8" = 1 ]; then
      mapfile -t i8f < <(flags "$w" int8)
      REPS[$w.$b.$t.int8]=$(calibrate "$w" "$b" "$t" "${i8f[@]}" 2>/dev/null || echo 0)
    fi
    echo "calibrated: $w ${b}x$t electra reps fp32 ${REPS[$w.$b.$t.fp32]} int8 ${REPS[$w.$b.$t.int8]:--}" >&2
  fi
done <<< "$JOBS"

for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  while read -r w b t reps rreps; do
    mapfile -t f32f < <(flags "$w" fp32)
    mapfile -t i8f < <(flags "$w" int8)
    electra "$BIN" electra "$w" "$b" "$t" "${REPS[$w.$b.$t.fp32]}" "${f32f[@]}"
    if [ "$w" = infer ] && [ "$HAVE_INT8" = 1 ] && [ "${REPS[$w.$b.$t.int8]:-0}" != 0 ]; then
      electra "$BIN" electra-int8 "$w" "$b" "$t" "${REPS[$w.$b.$t.int8]}" "${i8f[@]}" ||
        echo "note: electra int8 ${b}x$t failed" >&2
    fi
    # The baseline binary may predate --model: it times its own fresh preset model.
    if [ -n "$BASELINE" ]; then electra "$BASELINE" baseline "$w" "$b" "$t" "${REPS[$w.$b.$t.fp32]}"; fi
    if [ "$w" = infer ] && [ "$HAVE_ORT" = 1 ]; then
      ort onnxruntime model.opt.onnx "$b" "$t"
      ort onnxruntime-int8 model.int8.onnx "$b" "$t"
    fi
    if [ "$HAVE_TORCH" = 1 ]; then pytorch "$w" "$b" "$t" "$rreps"; fi
  done <<< "$JOBS"
done

python3 - "$OUT" "$THREADS" "$ROUNDS" "$PEAK" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
key = lambda r: (r["workload"], r["batch_size"], r["seq_len"])
groups = {}
for r in rows:
    groups.setdefault(key(r), {}).setdefault(r["impl"], []).append(r)
bad = [r for r in rows if r["impl"] == "electra-int8" and r.get("quantize") != "int8"]
if bad:
    print(f"\nwarning: {len(bad)} electra int8 runs report quantize={bad[0].get('quantize')!r}, not 'int8'")
def med(rs, f):
    vals = [x[f] for x in rs if x.get(f) is not None]
    return statistics.median(vals) if vals else None
f = lambda v, fmt="{:.4f}": "-" if v is None else fmt.format(v)
ratio = lambda ours, theirs: "-" if not ours or not theirs else f"{theirs / ours:.2f}x"
mib = lambda v: "-" if not v else f"{v / 2**20:.0f}"
share = lambda gf: "-" if not gf else f"{gf:.0f}" + (f" ({100 * gf / peak:.0f}%)" if peak > 0 else "")
order = sorted(groups, key=lambda k: ({"train": 0, "finetune": 1}.get(k[0], 2), k[2], k[1]))
impls = ["electra", "electra-int8", "onnxruntime", "onnxruntime-int8", "pytorch"]
peak = float(sys.argv[4])
print(f"\n{len(rows)} runs, medians over {sys.argv[3]} rounds, {sys.argv[2]} threads, measured FMA peak {peak:.0f} GFLOP/s\n")
print("| workload | batch x seq | electra fp32 s | electra int8 s | ORT fp32 s | ORT int8 s | PyTorch s "
      "| fp32 vs ORT | int8 vs ORT int8 | int8 vs own fp32 | fp32 vs PyTorch "
      "| electra fp32 GFLOP/s (share of the FMA peak) "
      "| model MiB (electra fp32 / int8, ORT fp32 / int8) | peak RSS MiB (electra fp32 / int8, ORT fp32 / int8, PyTorch) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in order:
    g = groups[k]
    s = {i: med(g.get(i, []), "median_seconds") for i in impls}
    mb = {i: med(g.get(i, []), "model_bytes") for i in impls}
    rss = {i: med(g.get(i, []), "peak_rss_bytes") for i in impls}
    print(f"| {k[0]} | {k[1]}x{k[2]} | " + " | ".join(f(s[i]) for i in impls) + " | "
          f"{ratio(s['electra'], s['onnxruntime'])} | {ratio(s['electra-int8'], s['onnxruntime-int8'])} | "
          f"{ratio(s['electra-int8'], s['electra'])} | {ratio(s['electra'], s['pytorch'])} | "
          f"{share(med(g.get('electra', []), 'gflops'))} | "
          f"{mib(mb['electra'])} / {mib(mb['electra-int8'])}, {mib(mb['onnxruntime'])} / {mib(mb['onnxruntime-int8'])} | "
          f"{mib(rss['electra'])} / {mib(rss['electra-int8'])}, {mib(rss['onnxruntime'])} / "
          f"{mib(rss['onnxruntime-int8'])}, {mib(rss['pytorch'])} |")
print("\nRatios: their time / ours (higher is better for us); int8 vs own fp32: electra fp32 time / electra int8 time. "
      "ORT: ORT's transformers optimizer (BERT fusions) and its int8 dynamic quantization (which also makes the "
      "embedding tables int8), timed in a process without torch; model MiB: the weight file (electra: model_bytes "
      "of `electra bench --json`, '-' where this build does not print it; ORT: the .onnx file).")
print("\n| impl | workload | batch x seq | runs | median s per round | tokens/s | reps per run |")
print("|---|---|---|---|---|---|---|")
for k in order:
    for i in impls + ["baseline"]:
        rs = groups[k].get(i, [])
        if rs:
            print(f"| {i} | {k[0]} | {k[1]}x{k[2]} | {len(rs)} | " + ", ".join(f"{r['median_seconds']:.4f}" for r in rs)
                  + f" | {f(med(rs, 'tokens_per_second'), '{:.0f}')} | {', '.join(str(r['reps']) for r in rs)} |")
load = {i: med([r for g in groups.values() for r in g.get(i, [])], "load_peak_rss_bytes")
        for i in ("electra", "electra-int8")}
if load["electra"] or load["electra-int8"]:
    print(f"\nLoading the model directory alone (peak RSS before the first call, median of the infer runs): "
          f"electra fp32 {mib(load['electra'])} MiB, int8 {mib(load['electra-int8'])} MiB; the first call adds "
          "the inference copy of the weights (packed for the CPU kernels).")
if any("baseline" in g for g in groups.values()):
    print("\n| workload | batch x seq | electra s | baseline s | vs baseline | electra RSS MiB | baseline RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for k in order:
        e, b = groups[k].get("electra", []), groups[k].get("baseline", [])
        es, bs = med(e, "median_seconds"), med(b, "median_seconds")
        er, br = med(e, "peak_rss_bytes"), med(b, "peak_rss_bytes")
        r = "-" if not es or not bs else f"{bs / es:.3f}x"
        print(f"| {k[0]} | {k[1]}x{k[2]} | {f(es)} | {f(bs)} | {r} | {mib(er)} | {mib(br)} |")
    print("\nvs baseline: the baseline's time / ours (above 1: this build is faster).")
PY
echo "raw JSON lines: $OUT" >&2
