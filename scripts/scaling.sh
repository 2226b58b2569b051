#!/usr/bin/env bash
# Data-parallel scaling on this machine: one process x 2 threads against 2 MPI ranks x 1 thread
# (same global batch, same preset), interleaved, from the metrics.jsonl each run writes:
# tokens/s over the steps after the first, and the seconds per step in the gradient all-reduce
# and in all collectives. Then the bytes all-reduced per step for each preset.
#
#   bash scripts/scaling.sh                 # small, 16 x 128 tokens per step, 6 steps, 2 rounds
#   PRESET=tiny STEPS=20 BATCH=32 bash scripts/scaling.sh
#
# Needs OpenMPI (openmpi-bin, libopenmpi-dev) and libclang-dev; builds `electra` with --features mpi.
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${PRESET:-small}
STEPS=${STEPS:-6}
BATCH=${BATCH:-16} # global rows per step
SEQ=${SEQ:-128}
ROUNDS=${ROUNDS:-2}

cargo build --release --features mpi --bin electra --quiet
exe=target/release/electra
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(pretrain --preset "$PRESET" --steps "$STEPS" --seq-len "$SEQ" --eval-every 0 --eval-batches 1 --log-every 1)
mpirun_=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2)

# mean tokens/s, all-reduce s/step, collective s/step over steps 2.. of a metrics.jsonl
summarize() {
  python3 - "$1" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
rows = [r for r in rows if r["step"] >= 2]
tps = sum(r["tokens_per_second"] for r in rows) / len(rows)
ar = sum(r.get("allreduce_seconds", 0.0) for r in rows) / len(rows)
co = sum(r.get("collective_seconds", 0.0) for r in rows) / len(rows)
print(f"{tps:.0f} {ar:.4f} {co:.4f}")
EOF
}

echo "preset $PRESET, $BATCH x $SEQ tokens per step (global), $STEPS steps, $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
printf '%-28s %10s %14s %16s\n' "configuration" "tokens/s" "all-reduce s" "collectives s"
for round in $(seq "$ROUNDS"); do
  out="$work/one-$round"
  "$exe" "${common[@]}" --out "$out" --batch-size "$BATCH" --threads 2 >/dev/null 2>&1
  read -r tps ar co < <(summarize "$out/metrics.jsonl")
  printf '%-28s %10s %14s %16s\n' "1 process x 2 threads" "$tps" "-" "-"
  out="$work/mpi-$round"
  "${mpirun_[@]}" "$exe" "${common[@]}" --out "$out" --batch-size $((BATCH / 2)) --threads 1 --distributed mpi >/dev/null 2>&1
  read -r tps ar co < <(summarize "$out/metrics.jsonl")
  printf '%-28s %10s %14s %16s\n' "2 ranks x 1 thread (MPI)" "$tps" "$ar" "$co"
done

echo
echo "bytes all-reduced per step (the pair's gradients in f32, shared embeddings once):"
for p in tiny small base large; do
  "$exe" pretrain --preset "$p" --steps 0 --out "$work/size-$p" --eval-batches 1 2>&1 |
    sed -n "s/.*objective, \([0-9.]*\)M parameters.*/$p \1/p" |
    awk '{ printf "  %-6s %8.2fM parameters  %8.1f MB\n", $1, $2, $2 * 4 }'
done
