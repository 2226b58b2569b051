#!/usr/bin/env bash
# The main job: pre-train a tiny ELECTRA on the bundled corpus (Moby-Dick, public domain) for a few
# minutes, watch the held-out discriminator AUC climb, then ask the discriminator which word of a
# sentence was replaced.
#
#   bash scripts/demo.sh [RUN_DIR]        (default runs/demo; about 3 minutes on 2 cores after the build)
#
# RUN_DIR ends up with metrics.jsonl, curves.svg (training and held-out curves), summary.json,
# checkpoint/ (resumable: electra pretrain --resume RUN_DIR --steps N) and final/ (the pair layout,
# loadable by HF transformers and electra_model_load, tokenizer included).
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/demo}"

cargo build --release --bin electra
electra=target/release/electra

# A previous demo in the same place is replaced; anything else there is left alone.
if [ -e "$run" ]; then
    [ -f "$run/metrics.jsonl" ] || { echo "demo: $run exists and is not an earlier run; pass another RUN_DIR" >&2; exit 1; }
    rm -rf "$run"
fi

# Defaults: the tiny preset (2 layers x 128, generator 1/4 width), 600 steps of 32 x 128 tokens,
# the bundled corpus and vocabulary, evaluation on held-out chapters every 100 steps.
"$electra" pretrain --out "$run"

original="call me ishmael. some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on shore."
planted="call me ishmael. some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on cheese."
echo
echo "== detect: the original sentence"
"$electra" detect --model "$run/final" "$original"
echo
echo "== detect: the same sentence with 'shore' replaced by 'cheese'"
"$electra" detect --model "$run/final" "$planted"
echo
echo "curves: $run/curves.svg   model: $run/final   fill-mask: $electra fill-mask --model $run/final \"the [MASK] sat on the deck\""
