#!/usr/bin/env python3
"""Reference timings for `electra bench`: the same workloads in PyTorch + transformers, and the
ONNX files that scripts/bench_ort.py times in ONNX Runtime.

train/infer print one JSON object per line with the keys of `electra bench --json` plus "impl"
("pytorch"); scripts/bench.sh runs every side and tabulates the ratios.

Workloads (same shapes, presets and hyper-parameters as `electra bench`):

  train  one ELECTRA pre-training step: ElectraForMaskedLM generator (hidden = H/4, the paper's
         small generator) sharing the discriminator's whole embeddings module (word, position, type,
         LayerNorm) with its lm head tied to the word embeddings; 15% of positions masked; generator
         head evaluated at the masked positions only (as the original ELECTRA code and ours do; pass
         --full-mlm-logits for HF's default of logits at every position); Gumbel-max sampling;
         ElectraForPreTraining discriminator on the corrupted batch; loss = mlm + 50 * bce; backward;
         global-norm clipping at 1.0; AdamW (lr 5e-4, weight decay 0.01 except LayerNorm and biases).
  finetune  one fine-tuning step of ElectraForSequenceClassification (the preset's discriminator
         size, two labels, HF's [CLS] head, dropout 0.1 in train mode as HF fine-tunes): cross-entropy,
         backward, global-norm clipping at 1.0, AdamW (lr 3e-4, weight decay 0.01 except LayerNorm
         and biases): `electra finetune`'s step (its layer-wise rates change no cost).
  infer  ElectraForPreTraining discriminator logits, eager PyTorch under torch.inference_mode().
  export what a user deploys to ONNX Runtime, built once per preset into --cache/<preset>/: the
         discriminator exported with torch.onnx.export (input_ids, attention_mask, token_type_ids;
         dynamic batch/sequence), then ORT's transformers optimizer with BERT fusions
         (model.opt.onnx), then int8 dynamic quantization (model.int8.onnx); see export_onnx.
         The timing is scripts/bench_ort.py, a process that never imports torch.

Each invocation runs one workload in a fresh process so that peak RSS (ru_maxrss) is its own.
Timing: one warm-up, then --reps timed repetitions; the median is reported.

--device cuda (train, infer): model and inputs live on the GPU (the masking and sampling random
streams too, so no step waits on the host); three warm-ups (cuBLAS heuristics, the caching
allocator), then each repetition is timed between two torch.cuda.synchronize() calls. Inference
inputs stay on the device and the logits are not copied back (`electra bench` uploads its ids and
downloads its logits inside each timed call, so this favours PyTorch slightly); AdamW is the fused
CUDA one. Matrix products are fp32 (TF32 off, so results match fp32) unless --tf32. The JSON adds
"device", "tf32" and, on cuda, "peak_gpu_bytes" (torch.cuda.max_memory_allocated) and "gpu".

Environment: a venv OUTSIDE the repository with torch, transformers and (for `export`) onnxruntime +
onnx + onnxscript:

    python3 -m venv ~/electra-pyenv
    ~/electra-pyenv/bin/pip install -r scripts/requirements.txt onnxruntime onnx onnxscript

torch from PyPI is a large download (it pulls the CUDA wheels, several GB); everything but
--device cuda runs on the CPU, so for that the CPU-only wheel of the same version works as well.

Usage:
    python scripts/bench_reference.py train --batch-size 32 --seq-len 128 --threads 2 --reps 5
    python scripts/bench_reference.py infer --batch-size 1 --seq-len 128 --threads 2 --reps 50
    python scripts/bench_reference.py train --device cuda --batch-size 128 --seq-len 128 --reps 10 [--tf32]
    python scripts/bench_reference.py export --preset small        # prints the cached export.json
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings

PRESETS = {"tiny": (2, 128, 64), "small": (12, 256, 128), "base": (12, 768, 768), "large": (24, 1024, 1024)}


def configs(preset, seq_len):
    from transformers import ElectraConfig

    layers, hidden, emb = PRESETS[preset]
    max_pos = max(128 if preset == "tiny" else 512, seq_len)
    common = dict(
        vocab_size=30522,
        embedding_size=emb,
        num_hidden_layers=layers,
        max_position_embeddings=max_pos,
        type_vocab_size=2,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-12,
    )
    disc = ElectraConfig(hidden_size=hidden, num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                         **common)
    frac = 1 / 3 if preset == "base" else 0.25
    gh = max(1, round(hidden * frac))
    gen = ElectraConfig(hidden_size=gh, num_attention_heads=max(1, gh // 64), intermediate_size=4 * gh, **common)
    for c in (disc, gen):
        c._attn_implementation = "eager"
    return disc, gen


def encoder_flops(cfg, n, t):
    """Matrix-product FLOPs of one encoder forward (the formula of src/cli/bench.rs)."""
    h, i, e = cfg.hidden_size, cfg.intermediate_size, cfg.embedding_size
    per_layer = 2.0 * n * (4.0 * h * h + 2.0 * h * i) + 4.0 * n * t * h
    proj = 2.0 * n * e * h if e != h else 0.0
    return per_layer * cfg.num_hidden_layers + proj


def random_ids(vocab, n, seed=7):
    """The id stream of `electra bench` (same LCG), so both sides see the same tokens."""
    mask64 = (1 << 64) - 1
    x = (seed * 6364136223846793005 + 1442695040888963407) & mask64
    out = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & mask64
        out.append(5 + (x >> 33) % (vocab - 5))
    return out


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(fn, reps, dev):
    import torch

    cuda = dev.type == "cuda"
    # GPU: work is queued asynchronously; synchronizing on both sides of a repetition times the
    # work itself, not its launch.
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(3 if cuda else 1):  # warm-up
        fn()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_train(args):
    import torch
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    torch.manual_seed(0)
    dev = torch.device(args.device)
    b, t = args.batch_size, args.seq_len
    dcfg, gcfg = configs(args.preset, t)
    disc = ElectraForPreTraining(dcfg)
    gen = ElectraForMaskedLM(gcfg)
    # Share the whole embeddings module (the original code's sharing) and tie the lm head to it.
    gen.electra.embeddings = disc.electra.embeddings
    gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
    # Moved after the sharing, so the shared and tied tensors stay one tensor on the device.
    disc.to(dev).train()
    gen.to(dev).train()
    params = {id(p): (n, p) for m in (disc, gen) for n, p in m.named_parameters()}.values()
    decay = [p for n, p in params if not ("LayerNorm" in n or "bias" in n)]
    no_decay = [p for n, p in params if "LayerNorm" in n or "bias" in n]
    # On the GPU the fused AdamW kernel, the fastest torch offers for fp32 weights there: the
    # reference to beat, not a slow default.
    fused = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=5e-4, betas=(0.9, 0.999), eps=1e-6, **fused)
    all_params = decay + no_decay
    ids = torch.tensor(random_ids(dcfg.vocab_size, b * t), dtype=torch.long).view(b, t).to(dev)
    attn = torch.ones(b, t, dtype=torch.long, device=dev)
    n_mask = round(0.15 * t)
    gen_stream = torch.Generator(device=dev).manual_seed(1)

    def step():
        # Mask n_mask distinct positions per row; 85% -> [MASK], as the original.
        pos = torch.rand(b, t, generator=gen_stream, device=dev).argsort(dim=1)[:, :n_mask]
        rows = torch.arange(b, device=dev).unsqueeze(1).expand_as(pos)
        masked_in = ids.clone()
        to_mask = torch.rand(b, n_mask, generator=gen_stream, device=dev) < 0.85
        # The same positions as indexing with to_mask, without the host sync boolean indexing costs.
        masked_in[rows, pos] = torch.where(to_mask, 103, masked_in[rows, pos])
        targets = ids[rows, pos]
        hidden = gen.electra(masked_in, attention_mask=attn)[0]
        if args.full_mlm_logits:
            logits = gen.generator_lm_head(gen.generator_predictions(hidden))[rows, pos]
        else:
            logits = gen.generator_lm_head(gen.generator_predictions(hidden[rows, pos]))
        mlm = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        with torch.no_grad():
            u = torch.rand(logits.shape, generator=gen_stream, device=dev)
            sampled = (logits + (-torch.log(-torch.log(u + 1e-9) + 1e-9))).argmax(-1)
            corrupted = ids.clone()
            corrupted[rows, pos] = sampled
            labels = (corrupted != ids).float()
        dl = disc(corrupted, attention_mask=attn).logits
        bce = torch.nn.functional.binary_cross_entropy_with_logits(dl, labels)
        loss = mlm + 50.0 * bce
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(all_params, 1.0)
        opt.step()

    med = timed(step, args.reps, dev)
    masked = n_mask * b
    fwd = (encoder_flops(dcfg, b * t, t) + encoder_flops(gcfg, b * t, t) + 2.0 * b * t * dcfg.hidden_size ** 2
           + 2.0 * masked * (gcfg.hidden_size * gcfg.embedding_size + gcfg.embedding_size * gcfg.vocab_size))
    return med, 3.0 * fwd


def bench_finetune(args):
    import torch
    from transformers import ElectraForSequenceClassification

    torch.manual_seed(0)
    dev = torch.device(args.device)
    b, t = args.batch_size, args.seq_len
    dcfg, _ = configs(args.preset, t)
    dcfg.num_labels = 2
    # Dropout as `electra finetune` applies it by default (config.json's 0.1, the head's too).
    dcfg.hidden_dropout_prob = dcfg.attention_probs_dropout_prob = 0.1
    model = ElectraForSequenceClassification(dcfg).to(dev).train()
    named = list(model.named_parameters())
    decay = [p for n, p in named if not ("LayerNorm" in n or "bias" in n)]
    no_decay = [p for n, p in named if "LayerNorm" in n or "bias" in n]
    fused = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.999), eps=1e-6, **fused)
    ids = torch.tensor(random_ids(dcfg.vocab_size, b * t), dtype=torch.long).view(b, t).to(dev)
    attn = torch.ones(b, t, dtype=torch.long, device=dev)
    labels = (torch.arange(b, device=dev) % 2).long()

    def step():
        loss = model(ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decay + no_decay, 1.0)
        opt.step()

    med = timed(step, args.reps, dev)
    head = 2.0 * b * dcfg.hidden_size * (dcfg.hidden_size + 2)
    return med, 3.0 * (encoder_flops(dcfg, b * t, t) + head)


def bench_infer(args):
    import torch
    from transformers import ElectraForPreTraining

    torch.manual_seed(0)
    dev = torch.device(args.device)
    b, t = args.batch_size, args.seq_len
    dcfg, _ = configs(args.preset, t)
    disc = ElectraForPreTraining(dcfg).eval().to(dev)
    ids = torch.tensor(random_ids(dcfg.vocab_size, b * t), dtype=torch.long).view(b, t).to(dev)
    attn = torch.ones(b, t, dtype=torch.long, device=dev)

    def run():
        with torch.inference_mode():
            disc(ids, attention_mask=attn).logits

    return timed(run, args.reps, dev), infer_flops(dcfg, b, t)


def infer_flops(dcfg, b, t):
    return encoder_flops(dcfg, b * t, t) + 2.0 * b * t * dcfg.hidden_size ** 2


def export_onnx(args):
    """The ONNX files a user deploys, built once per preset and cached in --cache/<preset>/:

      model.onnx       ElectraForPreTraining (random init, torch.manual_seed(0)) exported with
                       torch.onnx.export (TorchScript exporter, opset 17): inputs input_ids,
                       attention_mask, token_type_ids (int64, dynamic batch and sequence axes),
                       output logits;
      model.opt.onnx   ORT's transformers optimizer with the BERT fusions
                       (python -m onnxruntime.transformers.optimizer --model_type bert);
      model.int8.onnx  onnxruntime.quantization.quantize_dynamic of model.opt.onnx (per-channel,
                       QInt8 weights, default op types: MatMul, Attention and EmbedLayerNormalization,
                       so the embedding tables are int8 as well);
      export.json      versions, the optimizer's output, and the op counts of each file.

    Reuses the files when export.json is there (delete the folder to rebuild). Prints export.json."""
    import collections
    import subprocess

    import onnx

    d = os.path.join(args.cache, args.preset)
    info_path = os.path.join(d, "export.json")
    if os.path.exists(info_path):
        print(open(info_path).read().strip())
        return 0
    import onnxruntime
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import ElectraForPreTraining

    os.makedirs(d, exist_ok=True)
    raw, opt, q8 = (os.path.join(d, f) for f in ("model.onnx", "model.opt.onnx", "model.int8.onnx"))
    torch.manual_seed(0)
    b, t = 2, 128
    dcfg, _ = configs(args.preset, t)
    disc = ElectraForPreTraining(dcfg).eval()
    ids = torch.tensor(random_ids(dcfg.vocab_size, b * t), dtype=torch.long).view(b, t)
    attn = torch.ones(b, t, dtype=torch.long)
    types = torch.zeros(b, t, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    export_kw = dict(input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                     dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "logits": axes},
                     opset_version=17, do_constant_folding=True)
    with torch.no_grad():
        try:
            torch.onnx.export(disc, (ids, attn, types), raw + ".tmp", dynamo=False, **export_kw)
        except TypeError:
            torch.onnx.export(disc, (ids, attn, types), raw + ".tmp", **export_kw)
    os.replace(raw + ".tmp", raw)
    heads, hidden = dcfg.num_attention_heads, dcfg.hidden_size
    cmd = [sys.executable, "-m", "onnxruntime.transformers.optimizer", "--input", raw, "--output", opt,
           "--model_type", "bert", "--num_heads", str(heads), "--hidden_size", str(hidden)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not os.path.exists(opt):
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"optimizer failed: {' '.join(cmd)}")
    # DefaultTensorType: ORT's shape inference gives no type for outputs of the fused contrib ops
    # (EmbedLayerNormalization feeds embeddings_project), and quantize_dynamic refuses without it.
    quantize_dynamic(opt, q8 + ".tmp", per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    os.replace(q8 + ".tmp", q8)

    # Check: each file's logits against PyTorch's on the export inputs (int8: expect ~1e-2).
    with torch.no_grad():
        want = disc(ids, attention_mask=attn, token_type_ids=types).logits.numpy()
    feed = {"input_ids": ids.numpy(), "attention_mask": attn.numpy(), "token_type_ids": types.numpy()}
    diffs = {}
    for f in (raw, opt, q8):
        got = onnxruntime.InferenceSession(f, providers=["CPUExecutionProvider"]).run(["logits"], feed)[0]
        diffs[os.path.basename(f)] = float(abs(got - want).max())

    def ops(path):
        return dict(sorted(collections.Counter(n.op_type for n in onnx.load(path).graph.node).items()))

    fused = ["Attention", "MultiHeadAttention", "SkipLayerNormalization", "LayerNormalization",
             "EmbedLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "MatMul"]
    quant = ["MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "DynamicQuantizeLinear", "MatMul", "Attention",
             "QEmbedLayerNormalization"]
    o, q = ops(opt), ops(q8)
    info = {
        "preset": args.preset, "num_heads": heads, "hidden_size": hidden, "seed": 0,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
        "optimizer_command": " ".join(cmd[1:]),
        # The optimizer logs "Optimized operators: {...}" (its fused-node counts) on stderr.
        "optimizer_log": [l for l in (res.stdout + res.stderr).splitlines() if "perator" in l or "used" in l],
        "fused_ops": {k: o.get(k, 0) for k in fused},
        "quantized_ops": {k: q.get(k, 0) for k in quant},
        "ops": {"model.onnx": ops(raw), "model.opt.onnx": o, "model.int8.onnx": q},
        "max_abs_logit_diff_vs_torch": diffs,
        "bytes": {f: os.path.getsize(os.path.join(d, f)) for f in ("model.onnx", "model.opt.onnx", "model.int8.onnx")},
    }
    with open(info_path + ".tmp", "w") as f:
        json.dump(info, f)
    os.replace(info_path + ".tmp", info_path)
    print(json.dumps(info))
    return 0


def default_cache():
    return os.environ.get("ELECTRA_BENCH_CACHE") or os.path.join(tempfile.gettempdir(), "electra-bench-onnx")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=["train", "finetune", "infer", "export"])
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="train/infer: where to run")
    p.add_argument("--tf32", action="store_true",
                   help="cuda: TF32 tensor-core matrix products (off by default, so results match fp32)")
    p.add_argument("--full-mlm-logits", action="store_true",
                   help="train: generator logits at every position (HF ElectraForMaskedLM's default)")
    p.add_argument("--cache", default=default_cache(),
                   help="export: folder of the ONNX files, one subfolder per preset "
                        "(default $ELECTRA_BENCH_CACHE or /tmp/electra-bench-onnx)")
    args = p.parse_args()
    warnings.filterwarnings("ignore")

    if args.workload == "export":
        try:
            import onnx, onnxruntime  # noqa: F401,E401
        except ImportError:
            print("onnxruntime/onnx are not installed; no ONNX export", file=sys.stderr)
            return 3
        return export_onnx(args)

    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    extra = {}
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("--device cuda: torch sees no CUDA device", file=sys.stderr)
            return 3
        set_tf32(torch, args.tf32)
        torch.cuda.reset_peak_memory_stats()
    fn = {"train": bench_train, "finetune": bench_finetune, "infer": bench_infer}[args.workload]
    med, flops = fn(args)
    if args.device == "cuda":
        extra = {"peak_gpu_bytes": torch.cuda.max_memory_allocated(), "gpu": torch.cuda.get_device_name(),
                 "cuda": torch.version.cuda}
    n = args.batch_size * args.seq_len
    print(json.dumps({
        "workload": args.workload, "impl": "pytorch",
        "preset": args.preset, "batch_size": args.batch_size, "seq_len": args.seq_len, "threads": args.threads,
        "device": args.device, "tf32": args.device == "cuda" and args.tf32,
        "median_seconds": med, "tokens_per_second": n / med, "gflops": flops / med / 1e9,
        "peak_rss_bytes": peak_rss_bytes(), "reps": args.reps,
        "torch": torch.__version__, **extra,
    }))
    return 0


def set_tf32(torch, on):
    """TF32 for fp32 matrix products (and convolutions, which ELECTRA has none of), on or off
    explicitly: cuDNN's legacy default is on. torch >= 2.9 has per-backend fp32_precision and
    warns about the legacy allow_tf32 flags, so those are the fallback."""
    mode = "tf32" if on else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
    else:
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


if __name__ == "__main__":
    sys.exit(main())
