#!/usr/bin/env bash
# Side-by-side benchmark: `electra bench` against PyTorch + transformers and ONNX Runtime on the
# same workloads, interleaved round by round (so background load hits both sides alike), then a
# markdown table of medians over the rounds with ratios.
#
#   scripts/bench.sh [--threads N] [--rounds R] [--python PATH] [--quick] [--baseline BIN]
#
# --python: a Python with torch + transformers (+ onnxruntime, onnx for the ORT column); default
#           $ELECTRA_PY or /work/pyenv/bin/python. See scripts/bench_reference.py for setup.
# --quick:  fewer repetitions (smoke test).
# --baseline BIN: also run an earlier build's `electra` binary (e.g. one built from the previous
#           commit) in the same rounds, for before/after ratios of a change.
# Needs target/release/electra (cargo build --release --bin electra); raw JSON lines are kept in
# $OUT (default: a temporary file, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=2
ROUNDS=3
PY="${ELECTRA_PY:-/work/pyenv/bin/python}"
QUICK=0
BASELINE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN=target/release/electra
[ -x "$BIN" ] || cargo build --release --bin electra
OUT="${OUT:-$(mktemp /tmp/electra-bench.XXXXXX.jsonl)}"
: > "$OUT"

HAVE_TORCH=1
"$PY" -c "import torch, transformers" 2>/dev/null || { HAVE_TORCH=0; echo "note: $PY lacks torch/transformers; reference columns skipped" >&2; }
HAVE_ORT=1
"$PY" -c "import onnxruntime, onnx" 2>/dev/null || { HAVE_ORT=0; echo "note: onnxruntime/onnx not installed; ORT column skipped" >&2; }

# workload  batch  seq  reps(ours)  reps(reference)
if [ "$QUICK" = 1 ]; then
  JOBS="train 32 128 1 1
infer 1 128 10 10
infer 32 128 2 2"
else
  JOBS="train 32 128 3 3
infer 1 128 50 50
infer 32 128 5 5"
fi

ours() { "$BIN" bench "$1" --preset small --batch-size "$2" --seq-len "$3" --threads "$THREADS" --reps "$4" --json \
  | sed 's/^{/{"impl":"electra",/' >> "$OUT"; }
baseline() { "$BASELINE" bench "$1" --preset small --batch-size "$2" --seq-len "$3" --threads "$THREADS" --reps "$4" \
  --json | sed 's/^{/{"impl":"baseline",/' >> "$OUT"; }
ref() { "$PY" scripts/bench_reference.py "$1" --preset small --batch-size "$2" --seq-len "$3" --threads "$THREADS" \
  --reps "$4" >> "$OUT" 2>/dev/null || echo "note: reference $1 ${2}x$3 failed" >&2; }

for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  while read -r w b t reps rreps; do
    ours "$w" "$b" "$t" "$reps"
    if [ -n "$BASELINE" ]; then baseline "$w" "$b" "$t" "$reps"; fi
    if [ "$HAVE_TORCH" = 1 ]; then
      ref "$w" "$b" "$t" "$rreps"
      if [ "$w" = infer ] && [ "$HAVE_ORT" = 1 ]; then ref ort "$b" "$t" "$rreps"; fi
    fi
  done <<< "$JOBS"
done

python3 - "$OUT" "$THREADS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
key = lambda r: (r["workload"], r["batch_size"], r["seq_len"])
groups = {}
for r in rows:
    groups.setdefault(key(r), {}).setdefault(r["impl"], []).append(r)
def med(rs, f):
    return statistics.median(x[f] for x in rs) if rs else None
print(f"\n{len(rows)} runs, medians over rounds, {sys.argv[2]} threads\n")
print("| workload | batch x seq | electra s | PyTorch s | ORT s | electra tokens/s | vs PyTorch | vs ORT | electra GFLOP/s | electra peak RSS MiB | PyTorch peak RSS MiB | RSS ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in sorted(groups, key=lambda k: (k[0] != "train", k[1], k[2])):
    g = groups[k]
    e, p, o = g.get("electra", []), g.get("pytorch", []), g.get("onnxruntime", [])
    es, ps, os_ = med(e, "median_seconds"), med(p, "median_seconds"), med(o, "median_seconds")
    erss, prss = med(e, "peak_rss_bytes"), med(p, "peak_rss_bytes")
    f = lambda v, fmt="{:.4f}": "-" if v is None else fmt.format(v)
    ratio = lambda a, b: "-" if a is None or b is None else f"{b / a:.2f}x"
    print(f"| {k[0]} | {k[1]}x{k[2]} | {f(es)} | {f(ps)} | {f(os_)} | {f(med(e, 'tokens_per_second'), '{:.0f}')} | "
          f"{ratio(es, ps)} | {ratio(es, os_)} | {f(med(e, 'gflops'), '{:.1f}')} | {f(erss and erss / 2**20, '{:.0f}')} | "
          f"{f(prss and prss / 2**20, '{:.0f}')} | {'-' if not erss or not prss else f'{erss / prss:.2f}'} |")
print("\nvs PyTorch / vs ORT: their time / ours (higher is better for us). RSS ratio: ours / PyTorch's.")
if any("baseline" in g for g in groups.values()):
    print("\n| workload | batch x seq | electra s | baseline s | vs baseline | electra RSS MiB | baseline RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for k in sorted(groups, key=lambda k: (k[0] != "train", k[1], k[2])):
        e, b = groups[k].get("electra", []), groups[k].get("baseline", [])
        es, bs = med(e, "median_seconds"), med(b, "median_seconds")
        er, br = med(e, "peak_rss_bytes"), med(b, "peak_rss_bytes")
        r = "-" if not es or not bs else f"{bs / es:.3f}x"
        fmt = lambda v, f: "-" if v is None else f.format(v)
        print(f"| {k[0]} | {k[1]}x{k[2]} | {fmt(es, '{:.4f}')} | {fmt(bs, '{:.4f}')} | {r} | "
              f"{fmt(er and er / 2**20, '{:.0f}')} | {fmt(br and br / 2**20, '{:.0f}')} |")
    print("\nvs baseline: the baseline's time / ours (above 1: this build is faster).")
PY
echo "raw JSON lines: $OUT" >&2
