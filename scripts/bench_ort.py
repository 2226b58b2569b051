#!/usr/bin/env python3
"""Times an ONNX discriminator (from `scripts/bench_reference.py export`) in ONNX Runtime, in a
process that never imports torch, as a user deploys it.

    python scripts/bench_ort.py --model /tmp/electra-bench-onnx/small/model.opt.onnx \\
        --impl onnxruntime --batch-size 1 --seq-len 128 --threads 2

Session: CPUExecutionProvider, intra_op_num_threads = --threads, inter_op_num_threads 1,
ORT_ENABLE_ALL, ORT_SEQUENTIAL (ORT's other defaults, thread spinning included, kept).
Inputs: the token ids of `electra bench` (same seeded LCG), a full attention mask,
token_type_ids zeros (int64). Timing: --warmup calls (at least 3), then calls until
--min-seconds have elapsed and at least --min-reps calls were made; the median call is reported.

Prints one JSON line with the keys of `electra bench --json`: impl, workload "infer",
batch_size, seq_len, threads, median_seconds, tokens_per_second, peak_rss_bytes (ru_maxrss of
this process), model_bytes (the .onnx file, plus external data beside it if any), reps, and the
onnxruntime version.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_reference import random_ids  # noqa: E402  (pure Python; bench_reference imports torch lazily)


def model_bytes(path):
    import onnx

    n = os.path.getsize(path)
    m = onnx.load(path, load_external_data=False)
    seen = set()
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location" and e.value not in seen:
                seen.add(e.value)
                n += os.path.getsize(os.path.join(os.path.dirname(path), e.value))
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="an .onnx file from bench_reference.py export")
    p.add_argument("--impl", default="onnxruntime", help='label of the JSON line, e.g. "onnxruntime-int8"')
    p.add_argument("--preset", default="small", help="only copied into the JSON line")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vocab-size", type=int, default=30522)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--min-reps", type=int, default=3)
    a = p.parse_args()

    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    b, t = a.batch_size, a.seq_len
    ids = np.array(random_ids(a.vocab_size, b * t), dtype=np.int64).reshape(b, t)
    feed = {"input_ids": ids, "attention_mask": np.ones((b, t), np.int64),
            "token_type_ids": np.zeros((b, t), np.int64)}
    names = {i.name for i in sess.get_inputs()}
    feed = {k: v for k, v in feed.items() if k in names}
    for _ in range(max(3, a.warmup)):
        out = sess.run(["logits"], feed)[0]
    assert out.shape == (b, t), out.shape
    times = []
    start = time.perf_counter()
    while len(times) < a.min_reps or time.perf_counter() - start < a.min_seconds:
        t0 = time.perf_counter()
        sess.run(["logits"], feed)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    assert "torch" not in sys.modules, "bench_ort.py must not import torch"
    print(json.dumps({
        "impl": a.impl, "workload": "infer", "preset": a.preset, "batch_size": b, "seq_len": t,
        "threads": a.threads, "median_seconds": med, "tokens_per_second": b * t / med,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "model_bytes": model_bytes(a.model), "reps": len(times), "onnxruntime": ort.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
