#!/usr/bin/env bash
# GPU check of the CUDA backend on a machine that has a GPU but no Rust toolchain and no network:
# build here, carry the binaries over, run one timed script there.
#
#   scripts/gpu-check.sh build   # here: release `electra` and conformance test binaries, cuda feature
#   scripts/gpu-check.sh run     # there, from the repo root, with $OUT set (its files come back)
#
# build: `cargo build --release --features cuda --bin electra` and the conformance test binary
#   (`cargo test --release --features cuda --test conformance --no-run`), copied into gpu-bundle/
#   (ignored by git) and stripped; fails if they add up to 50 MiB or more (the device tool carries
#   at most 64 MiB, the working tree included). Prints the device command to run next.
#
# run: everything goes to $OUT/gpu-check.log, each step's output to $OUT/steps/, and a markdown
#   summary to $OUT/gpu-check.md. Steps: nvidia-smi; find the CUDA libraries (libnvrtc, libcublas,
#   libcuda) and put their folders on LD_LIBRARY_PATH; the conformance suite on cpu and cuda:0;
#   `electra bench` infer 1x128, infer 32x128 and train 128x128 (ELECTRA-Small), fp32 and --tf32;
#   scripts/bench_reference.py (PyTorch) on the same shapes, train with --tf32 too. Every step has
#   its own timeout and all of them share one deadline (GPU_CHECK_DEADLINE seconds, default 330),
#   so the whole run ends in under 6 minutes; a failed step is logged and the next one runs, and
#   the exit status is 1 if any step failed.
#
# Environment of `run` (the defaults are the GPU check; the others test it on a CPU machine):
#   GPU_CHECK_DEVICE   cuda (default) or cpu: the --device of every bench, and the conformance
#                      backends (cuda: ELECTRA_TEST_BACKENDS=cpu,cuda; cpu: cpu only)
#   GPU_CHECK_PRESET   model preset (default small)
#   GPU_CHECK_REPS     repetitions of infer 1x128, infer 32x128 and train (default "200 50 10")
#   GPU_CHECK_TRAIN_BATCH  train batch size (default 128)
#   GPU_CHECK_THREADS  CPU threads of both sides (default 2; the GPU rows hardly use them)
#   GPU_CHECK_PYTHON   Python with torch + transformers (default /opt/torch/.venv/bin/python3,
#                      else python3)
#   GPU_CHECK_BUNDLE   folder of the binaries (default gpu-bundle)
#   GPU_CHECK_DEADLINE seconds the whole run may take (default 330)
#
# Test on a CPU machine (after `build`, or with GPU_CHECK_BUNDLE pointing at a folder holding
# `electra` and `conformance`):
#   OUT=/tmp/gc GPU_CHECK_DEVICE=cpu GPU_CHECK_PRESET=tiny GPU_CHECK_REPS="5 3 2" \
#     GPU_CHECK_TRAIN_BATCH=8 scripts/gpu-check.sh run
set -euo pipefail
cd "$(dirname "$0")/.."

BUNDLE="${GPU_CHECK_BUNDLE:-gpu-bundle}"
MAX_BUNDLE_MIB=50

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
build() {
  cargo build --release --features cuda --bin electra
  local json
  json=$(mktemp /tmp/gpu-check-build.XXXXXX.json)
  cargo test --release --features cuda --test conformance --no-run --message-format=json > "$json"
  # The test executable is the artifact of target "conformance" built as a test.
  local exe
  exe=$(python3 - "$json" <<'PY'
import json, sys
exe = None
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if (m.get("reason") == "compiler-artifact" and m["target"]["name"] == "conformance"
            and m["profile"]["test"] and m.get("executable")):
        exe = m["executable"]
if not exe:
    sys.exit("no conformance test executable in cargo's output")
print(exe)
PY
)
  rm -f "$json"
  mkdir -p "$BUNDLE"
  cp target/release/electra "$BUNDLE/electra"
  cp "$exe" "$BUNDLE/conformance"
  strip "$BUNDLE/electra" "$BUNDLE/conformance"
  # What `run` reports as the build it tested.
  {
    echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD -- src tests Cargo.toml Cargo.lock || echo ' (+ uncommitted changes)')"
    echo "built $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m), $(rustc --version), features cli+cuda"
    # The GPU machine's glibc must be at least the newest symbol version the binaries ask for.
    echo "needs glibc >= $(objdump -T "$BUNDLE/electra" "$BUNDLE/conformance" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | cut -d_ -f2)"
  } > "$BUNDLE/BUILD-INFO"
  cat "$BUNDLE/BUILD-INFO"
  local total tree
  ls -l "$BUNDLE"
  total=$(du -cb "$BUNDLE"/* | tail -1 | cut -f1)
  # The rest of what the device tool carries: tracked and untracked, not ignored, files.
  tree=$(git ls-files -co --exclude-standard -z | du --files0-from=- -cb 2>/dev/null | tail -1 | cut -f1)
  awk -v e="$(stat -c %s "$BUNDLE/electra")" -v c="$(stat -c %s "$BUNDLE/conformance")" -v t="$total" \
    -v w="$tree" -v max="$MAX_BUNDLE_MIB" 'BEGIN { m = 1048576
      printf "bundle: electra %.1f MiB, conformance %.1f MiB, total %.1f MiB (limit %d MiB); working tree %.1f MiB\n",
        e / m, c / m, t / m, max, w / m }'
  if [ "$total" -ge $((MAX_BUNDLE_MIB * 1048576)) ]; then
    echo "error: the bundle is over $MAX_BUNDLE_MIB MiB" >&2
    exit 1
  fi
  cat <<EOF

Next, on the GPU machine (device tool), from the repository root:
  run(command="bash scripts/gpu-check.sh run", carry=["$BUNDLE"], timeout_s=420)
Results come back as \$OUT/gpu-check.md (summary), \$OUT/gpu-check.log and \$OUT/steps/.
EOF
}

# ---------------------------------------------------------------------------------------------
run_check() {
  : "${OUT:?set OUT to a folder whose files come back}"
  mkdir -p "$OUT/steps"
  local log="$OUT/gpu-check.log"
  : > "$log"
  exec > >(tee -a "$log") 2>&1
  TEE_PID=$!

  DEVICE="${GPU_CHECK_DEVICE:-cuda}"
  PRESET="${GPU_CHECK_PRESET:-small}"
  read -r REPS_I1 REPS_I32 REPS_T <<< "${GPU_CHECK_REPS:-200 50 10}"
  TRAIN_B="${GPU_CHECK_TRAIN_BATCH:-128}"
  THREADS="${GPU_CHECK_THREADS:-2}"
  PY="${GPU_CHECK_PYTHON:-}"
  if [ -z "$PY" ]; then
    if [ -x /opt/torch/.venv/bin/python3 ]; then PY=/opt/torch/.venv/bin/python3; else PY=python3; fi
  fi
  START=$(date +%s)
  DEADLINE=$((START + ${GPU_CHECK_DEADLINE:-330}))
  FAILED=0
  : > "$OUT/steps.tsv"
  echo "gpu-check run: device $DEVICE, preset $PRESET, reps $REPS_I1/$REPS_I32/$REPS_T, train batch $TRAIN_B," \
    "python $PY, bundle $BUNDLE, started $(date -u +%H:%M:%SZ)"
  if [ -f "$BUNDLE/BUILD-INFO" ]; then cat "$BUNDLE/BUILD-INFO"; fi

  gpu_step nvidia-smi 20 nvidia-smi
  gpu_step gpu-name 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  find_cuda_libs

  local backends=cpu
  [ "$DEVICE" = cpu ] || backends=cpu,cuda
  step conformance 240 env ELECTRA_FIXTURES="$PWD/tests/fixtures" ELECTRA_TEST_BACKENDS="$backends" \
    "$BUNDLE/conformance" --test-threads 1
  # The suite passes when it skips a backend it cannot open; here that means the GPU went untested.
  if [ "$DEVICE" != cpu ] && grep -q 'cuda:0 skipped' "$OUT/steps/conformance.err" 2>/dev/null; then
    echo "== conformance: FAILED, cuda:0 was skipped (see above)"
    FAILED=1
  fi

  # Ours and PyTorch side by side per row, the summary's rows first, so that a run cut short by
  # the deadline still fills whole rows; our TF32 inference (no PyTorch counterpart) last.
  local ours=("$BUNDLE/electra" --device "$DEVICE" bench)
  local ref=("$PY" scripts/bench_reference.py)
  # Flags both sides take; ours adds --json (the reference always prints JSON).
  local shape=(--preset "$PRESET" --seq-len 128 --threads "$THREADS")
  local o=("${ours[@]}" infer "${shape[@]}" --json) p=("${ref[@]}" infer --device "$DEVICE" "${shape[@]}")
  step ours-infer-1-fp32 45 "${o[@]}" --batch-size 1 --reps "$REPS_I1"
  step pytorch-infer-1-fp32 60 "${p[@]}" --batch-size 1 --reps "$REPS_I1"
  step ours-infer-32-fp32 45 "${o[@]}" --batch-size 32 --reps "$REPS_I32"
  step pytorch-infer-32-fp32 60 "${p[@]}" --batch-size 32 --reps "$REPS_I32"
  local ot=("${ours[@]}" train "${shape[@]}" --json --batch-size "$TRAIN_B" --reps "$REPS_T")
  local pt=("${ref[@]}" train --device "$DEVICE" "${shape[@]}" --batch-size "$TRAIN_B" --reps "$REPS_T")
  step ours-train-fp32 60 "${ot[@]}"
  step pytorch-train-fp32 75 "${pt[@]}"
  step ours-train-tf32 60 "${ot[@]}" --tf32
  step pytorch-train-tf32 75 "${pt[@]}" --tf32
  step ours-infer-1-tf32 45 "${o[@]}" --batch-size 1 --reps "$REPS_I1" --tf32
  step ours-infer-32-tf32 45 "${o[@]}" --batch-size 32 --reps "$REPS_I32" --tf32

  summarize || { echo "summary failed"; FAILED=1; }
  echo "gpu-check run: $(( $(date +%s) - START )) s; $( [ "$FAILED" = 0 ] && echo 'every step passed' || echo 'some steps FAILED (see steps.tsv)')"
  echo "summary: $OUT/gpu-check.md"
  # Let tee write the last lines before the files are collected.
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null || true
  [ "$FAILED" = 0 ]
}

# step NAME BUDGET CMD...: runs CMD under `timeout` (BUDGET seconds, less if the deadline is
# nearer), stdout to $OUT/steps/NAME.out and stderr to NAME.err (kept if the run itself is
# killed), both into the log afterwards; records NAME, status and seconds in steps.tsv.
step() {
  local name=$1 budget=$2
  shift 2
  local now left rc=0 t0
  now=$(date +%s)
  left=$((DEADLINE - now))
  if [ "$left" -lt "$budget" ]; then budget=$left; fi
  echo
  echo "== $name ($budget s): $*"
  if [ "$budget" -lt 5 ]; then
    echo "== $name: SKIPPED, the run's deadline is reached"
    printf '%s\tskipped\t0\n' "$name" >> "$OUT/steps.tsv"
    FAILED=1
    return 0
  fi
  t0=$(date +%s)
  timeout -k 5 "$budget" "$@" > "$OUT/steps/$name.out" 2> "$OUT/steps/$name.err" || rc=$?
  cat "$OUT/steps/$name.out"
  cat "$OUT/steps/$name.err"
  local secs=$(( $(date +%s) - t0 ))
  if [ "$rc" = 0 ]; then
    echo "== $name: ok ($secs s)"
  else
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "== $name: TIMED OUT after $budget s"; fi
    echo "== $name: FAILED (status $rc, $secs s)"
    FAILED=1
  fi
  printf '%s\t%s\t%s\n' "$name" "$rc" "$secs" >> "$OUT/steps.tsv"
}

# gpu_step: a step the CPU test of this script has no hardware for: required on cuda, logged only
# on cpu.
gpu_step() {
  local was=$FAILED
  step "$@"
  if [ "$DEVICE" = cpu ]; then FAILED=$was; fi
}

# Finds libnvrtc, libcublas(Lt) and libcuda in the usual folders and Python's nvidia wheels, and
# puts their folders first on LD_LIBRARY_PATH. The build's CUDA 13.0 bindings ask for .so.13,
# then .so.12 and the unversioned names; a folder of unversioned links to what was found goes
# first as well, so an install with other version suffixes still loads.
find_cuda_libs() {
  echo
  echo "== cuda-libs"
  local dirs=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64
    /usr/lib/x86_64-linux-gnu /usr/lib64)
  local p sp
  for p in "$PY" python3; do
    command -v "$p" > /dev/null 2>&1 || continue
    while IFS= read -r sp; do
      [ -n "$sp" ] || continue
      for d in "$sp"/nvidia/*/lib "$sp"/nvidia/cu13/lib; do [ -d "$d" ] && dirs+=("$d"); done
    done < <("$p" -c 'import site, sysconfig
print("\n".join(dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()["purelib"]])))' 2>/dev/null || true)
  done
  mapfile -t dirs < <(printf '%s\n' "${dirs[@]}" | awk '!seen[$0]++')
  local found=() missing=0 shim lib name f
  shim=$(mktemp -d /tmp/gpu-check-libs.XXXXXX)
  SHIM=$shim
  trap 'rm -rf "$SHIM"' EXIT
  for lib in libnvrtc libcublas libcublasLt libcuda; do
    f=""
    for d in "${dirs[@]}"; do
      # Newest version first; the unversioned development link counts too.
      f=$(ls -1 "$d/$lib".so "$d/$lib".so.* 2>/dev/null | grep -E "/$lib\.so(\.[0-9]+)*$" | sort -V | tail -1 || true)
      [ -n "$f" ] && break
    done
    # Else wherever the loader's cache has it (the driver's libcuda.so.1 usually).
    if [ -z "$f" ]; then
      f=$( (ldconfig -p 2>/dev/null || true) | awk -v l="$lib.so" '$1 == l || index($1, l ".") == 1 { print $NF }' | sort -V | tail -1)
    fi
    if [ -z "$f" ]; then
      echo "$lib: NOT FOUND in ${dirs[*]}"
      missing=1
      continue
    fi
    echo "$lib: $f"
    found+=("$(dirname "$f")")
    name=$(basename "$f")
    if [ "$lib" != libcuda ] && [ ! -e "$(dirname "$f")/$lib.so" ] && ! [[ $name =~ \.so\.(12|11|10|9|1)$ ]]; then
      ln -sf "$f" "$shim/$lib.so"
      echo "  $shim/$lib.so -> $f (cudarc does not ask for $name)"
    fi
  done
  local path="" d
  if [ -n "$(ls -A "$shim")" ]; then path=$shim; else rmdir "$shim"; fi
  for d in $(printf '%s\n' "${found[@]}" | awk '!seen[$0]++'); do path="${path:+$path:}$d"; done
  export LD_LIBRARY_PATH="${path}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  local rc=0
  if [ "$missing" = 1 ]; then
    echo "== cuda-libs: FAILED (some libraries missing)"
    rc=1
    [ "$DEVICE" = cpu ] || FAILED=1
  else
    echo "== cuda-libs: ok"
  fi
  printf 'cuda-libs\t%s\t0\n' "$rc" >> "$OUT/steps.tsv"
}

# The markdown summary, from the steps' JSON lines and the conformance output (stdlib only).
summarize() {
  # Any Python 3 will do (stdlib only); the torch one where the system has none.
  local py
  py=$(command -v python3 || echo "$PY")
  "$py" - "$OUT" "$DEVICE" "$PRESET" "$TRAIN_B" "$BUNDLE" <<'PY'
import json, os, re, sys
out, device, preset, train_b, bundle = sys.argv[1:]
steps_dir = os.path.join(out, "steps")

def text(name, ext):
    try:
        return open(os.path.join(steps_dir, f"{name}.{ext}"), errors="replace").read()
    except OSError:
        return ""

def result(name):
    """The JSON object a bench step printed, or None."""
    for line in reversed(text(name, "out").splitlines()):
        if line.strip().startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None

status = {}
for line in open(os.path.join(out, "steps.tsv")):
    parts = line.rstrip("\n").split("\t")
    if len(parts) == 3:
        status[parts[0]] = (parts[1], parts[2])

ms = lambda r: None if r is None else r["median_seconds"] * 1e3
fmt = lambda v, f="{:.3f}": "n/a" if v is None else f.format(v)
rows = [
    ("inference 1x128", "ours-infer-1-fp32", "pytorch-infer-1-fp32", "< 0.5 ms and >= 2x", (2.0, 0.5)),
    ("inference 32x128", "ours-infer-32-fp32", "pytorch-infer-32-fp32", ">= 1.25x", (1.25, None)),
    (f"train {train_b}x128 fp32", "ours-train-fp32", "pytorch-train-fp32", ">= 1.5x", (1.5, None)),
    (f"train {train_b}x128 TF32", "ours-train-tf32", "pytorch-train-tf32", ">= 1.5x", (1.5, None)),
]
gpu = text("gpu-name", "out").strip().splitlines()
info = open(os.path.join(bundle, "BUILD-INFO")).read().strip().splitlines() if os.path.exists(
    os.path.join(bundle, "BUILD-INFO")) else []
torch_v = next((r.get("torch") for n in status if n.startswith("pytorch") for r in [result(n)] if r), None)
md = [f"# GPU check ({device}, ELECTRA-{preset.capitalize()})", ""]
md.append(f"GPU: {gpu[0] if gpu else 'n/a'}; build: {'; '.join(info) if info else 'n/a'}; "
          f"PyTorch: {torch_v or 'n/a'}.")
md += ["", "| workload | ours median ms | PyTorch median ms | ratio (PyTorch/ours) | target | verdict |",
       "|---|---|---|---|---|---|"]
for label, o, p, target, (min_ratio, max_ms) in rows:
    a, b = ms(result(o)), ms(result(p))
    ratio = b / a if a and b else None
    if ratio is None:
        verdict = "n/a"
    else:
        ok = ratio >= min_ratio and (max_ms is None or a < max_ms)
        verdict = "pass" if ok else "FAIL"
    md.append(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(ratio, '{:.2f}x')} | {target} | {verdict} |")

# Conformance: libtest's "test result:" lines, the CUDA skips and the failing tests.
conf_out, conf_err = text("conformance", "out"), text("conformance", "err")
counts = {"passed": 0, "failed": 0, "ignored": 0}
seen = False
for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", conf_out):
    seen = True
    for k, v in zip(("passed", "failed", "ignored"), m.groups()):
        counts[k] += int(v)
failing = re.findall(r"^test (\S+) \.\.\. FAILED", conf_out, re.M)
skips = len(re.findall(r"cuda:0 skipped", conf_err + conf_out))
rc = status.get("conformance", ("n/a", ""))[0]
md.append("")
if seen:
    line = (f"Conformance ({'cpu + cuda:0' if device != 'cpu' else 'cpu'}): {counts['passed']} passed, "
            f"{counts['failed']} failed, {counts['ignored']} ignored (status {rc})")
    if skips:
        line += f"; cuda:0 skipped in {skips} tests (no CUDA device)"
    md.append(line + ".")
    if failing:
        md.append("Failing: " + ", ".join(f"`{t}`" for t in failing) + ".")
else:
    md.append(f"Conformance: n/a (no test result; status {rc}; see steps/conformance.err).")

md += ["", "All runs (median ms; peak GPU memory: PyTorch's torch.cuda.max_memory_allocated):", "",
       "| step | status | s | device | tf32 | median ms | tokens/s | GFLOP/s | peak GPU MiB | peak RSS MiB |",
       "|---|---|---|---|---|---|---|---|---|---|"]
for name, (rc, secs) in status.items():
    r = result(name) or {}
    mib = lambda k: fmt(r[k] / 2**20, "{:.0f}") if r.get(k) else "n/a"
    md.append(f"| {name} | {'ok' if rc == '0' else rc} | {secs} | {r.get('device', 'n/a')} | "
              f"{r.get('tf32', 'n/a')} | {fmt(ms(r) if r else None)} | {fmt(r.get('tokens_per_second'), '{:.0f}')} | "
              f"{fmt(r.get('gflops'), '{:.1f}')} | {mib('peak_gpu_bytes')} | {mib('peak_rss_bytes')} |")
md += ["", "Ratio: PyTorch's median time / ours (above 1: we are faster). Targets: 1x128 under 0.5 ms and 2x "
       "PyTorch; 32x128 1.25x; training 1.5x, fp32 against fp32 and TF32 against TF32. Ours times each call "
       "with its host copies (ids up, logits down); PyTorch's inputs stay on the device."]
open(os.path.join(out, "gpu-check.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
}

case "${1:-}" in
  build) build ;;
  run) run_check ;;
  *) usage ;;
esac
