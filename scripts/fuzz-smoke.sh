#!/usr/bin/env bash
# A bounded smoke run of every fuzz target (fuzz/, see fuzz/README.md): builds the fuzz crate on
# stable with `cargo fuzz build -s none`, then runs each target for FUZZ_SECONDS seconds
# (default 20) on its committed seeds. Fails on the first crash, leak or timeout; the input that
# caused it is left in fuzz/artifacts/TARGET/. New inputs the fuzzer finds go to a scratch
# directory, so the committed seed corpora never grow.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-10}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked --version 0.13.2" >&2
  exit 1
fi
cargo fuzz build -s none --dev

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# One target on one core: run as many side by side as there are cores, in groups.
jobs=${FUZZ_JOBS:-$(nproc)}
run_target() {
  local t=$1
  mkdir -p "$scratch/$t"
  # -rss_limit_mb: a target that tries to allocate gigabytes fails here, as it would hurt a host.
  cargo fuzz run -s none --dev "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 >"$scratch/$t.log" 2>&1
}
report() {
  local t=$1 status=$2
  echo "-- fuzz $t for ${seconds}s"
  if [ "$status" -ne 0 ]; then
    # Lines cut: cargo fuzz prints the whole failing input as a byte list.
    tail -n 60 "$scratch/$t.log" | cut -c1-400
    echo "FAIL: fuzz target $t (the input is in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$scratch/$t.log" || true
}
targets=($(cargo fuzz list))
for ((g = 0; g < ${#targets[@]}; g += jobs)); do
  group=("${targets[@]:g:jobs}")
  pids=()
  for t in "${group[@]}"; do
    run_target "$t" &
    pids+=($!)
  done
  for k in "${!group[@]}"; do
    status=0
    wait "${pids[$k]}" || status=$?
    report "${group[$k]}" "$status"
  done
done
echo "fuzz smoke: every target ran ${seconds}s without a crash"
