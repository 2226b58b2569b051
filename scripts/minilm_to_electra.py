#!/usr/bin/env python3
"""Converts a BERT encoder directory (e.g. sentence-transformers all-MiniLM-L6-v2: a `BertModel`,
6 layers x 384, 12 heads, FFN 1536, uncased 30522 vocabulary) into an ELECTRA discriminator
directory that `electra finetune --model DIR` (and `electra embed`) accept.

    python scripts/minilm_to_electra.py SRC_DIR OUT_DIR [--seed 0]

SRC_DIR holds config.json, model.safetensors, vocab.txt and (optionally) tokenizer.json.

What it writes into OUT_DIR:
  model.safetensors  every `embeddings.*` / `encoder.*` tensor renamed `electra.<name>` (a leading
                     `bert.` is dropped first); `pooler.*` and `embeddings.position_ids` left out.
                     BERT has no embedding projection, so embedding_size = hidden_size.
                     Our loader reads a directory with "ElectraForPreTraining" as a discriminator
                     and demands every tensor of that tower, the replaced-token-detection head
                     included, so the converter ADDS `discriminator_predictions.dense.{weight,bias}`
                     (H x H, N(0, initializer_range), zero bias) and
                     `discriminator_predictions.dense_prediction.{weight,bias}` (1 x H, same) from a
                     seeded generator. `electra finetune` never uses them (it builds a fresh
                     classifier head on the encoder); `electra detect` on this directory would
                     print noise.
  config.json        model_type "electra", architectures ["ElectraForPreTraining"],
                     embedding_size = hidden_size, hidden_act "gelu", the rest from SRC's config.
  vocab.txt          copied.
  tokenizer.json     copied with "truncation" and "padding" set to null (our loader also switches
                     them off; HF's file pads/cuts to 128).

Only numpy and safetensors are needed.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

KEEP_CONFIG = [
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
    "initializer_range", "layer_norm_eps", "pad_token_id", "position_embedding_type",
]


def convert(src, out, seed):
    cfg_in = json.load(open(os.path.join(src, "config.json")))
    if cfg_in.get("model_type") not in ("bert", None):
        print(f"warning: source model_type is {cfg_in.get('model_type')!r}, expected 'bert'", file=sys.stderr)
    if cfg_in.get("hidden_act", "gelu") != "gelu":
        sys.exit(f"source hidden_act is {cfg_in['hidden_act']!r}; only gelu (erf) converts as is")
    tensors = load_file(os.path.join(src, "model.safetensors"))
    outt, dropped = {}, []
    for name, t in sorted(tensors.items()):
        base = name[len("bert."):] if name.startswith("bert.") else name
        if base.startswith("pooler.") or base == "embeddings.position_ids" or not (
                base.startswith("embeddings.") or base.startswith("encoder.")):
            dropped.append(name)
            continue
        outt["electra." + base] = np.ascontiguousarray(t.astype(np.float32))
    h = cfg_in["hidden_size"]
    std = cfg_in.get("initializer_range", 0.02)
    rng = np.random.default_rng(seed)
    outt["discriminator_predictions.dense.weight"] = (rng.standard_normal((h, h)) * std).astype(np.float32)
    outt["discriminator_predictions.dense.bias"] = np.zeros(h, np.float32)
    outt["discriminator_predictions.dense_prediction.weight"] = (rng.standard_normal((1, h)) * std).astype(np.float32)
    outt["discriminator_predictions.dense_prediction.bias"] = np.zeros(1, np.float32)

    cfg = {"architectures": ["ElectraForPreTraining"], "model_type": "electra"}
    cfg.update({k: cfg_in[k] for k in KEEP_CONFIG if k in cfg_in})
    cfg["embedding_size"] = h
    cfg["hidden_act"] = "gelu"

    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "model.safetensors.tmp")
    save_file(outt, tmp, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    shutil.copyfile(os.path.join(src, "vocab.txt"), os.path.join(out, "vocab.txt"))
    tj = os.path.join(src, "tokenizer.json")
    if os.path.exists(tj):
        tok = json.load(open(tj, encoding="utf-8"))
        tok["truncation"] = None
        tok["padding"] = None
        with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False)
    print(f"minilm_to_electra: {len(outt) - 4} encoder tensors + 4 added discriminator_predictions.* "
          f"(seed {seed}); dropped {dropped}; wrote {out}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0, help="seed of the added discriminator head")
    a = p.parse_args()
    convert(a.src, a.out, a.seed)


if __name__ == "__main__":
    main()
