#!/usr/bin/env python3
"""Classify lines of text in HuggingFace PyTorch with a classifier `electra finetune` saved,
honouring its pooling: a [CLS] head (the default) is HF's own ElectraForSequenceClassification;
a mean-pooled one (`--pool mean`, `"classifier_pooling": "mean"` in config.json) loads in the same
class, which keeps the key but pools [CLS], so the masked mean is taken here and handed to the
same head. Prints one JSON array of label probabilities per line, as `electra predict --json`'s
"probs" (equal to 6 digits on the sentences we tried).

    ~/electra-pyenv/bin/python scripts/hf_classify.py CLASSIFIER_DIR TEXTS.txt

Needs torch, transformers and tokenizers (scripts/requirements.txt).
"""
import json
import sys

import torch
from transformers import AutoTokenizer, ElectraForSequenceClassification


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, texts_path = sys.argv[1:]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = ElectraForSequenceClassification.from_pretrained(model_dir).eval()
    texts = [line.rstrip("\n") for line in open(texts_path, encoding="utf-8")]
    x = tok(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        h = model.electra(**x).last_hidden_state  # [B, T, H]
        if getattr(model.config, "classifier_pooling", "cls") == "mean":
            m = x["attention_mask"].unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1)  # the mean over non-padding tokens
            # ElectraClassificationHead reads features[:, 0, :]: the pooled state goes there.
            logits = model.classifier(pooled.unsqueeze(1))
        else:
            logits = model.classifier(h)
    for p in logits.softmax(-1).tolist():
        print(json.dumps(p))


if __name__ == "__main__":
    main()
