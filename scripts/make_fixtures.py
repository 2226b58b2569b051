#!/usr/bin/env python3
"""Generate the HF-transformers reference fixtures used by the Rust tests (tests/fixtures/).

How to run (from the repository root, with a venv made from scripts/requirements.txt kept OUTSIDE the repo):

    python3 -m venv ~/electra-pyenv
    ~/electra-pyenv/bin/pip install -r scripts/requirements.txt
    ~/electra-pyenv/bin/python scripts/make_fixtures.py            # writes tests/fixtures/
    ~/electra-pyenv/bin/python scripts/make_fixtures.py --out DIR  # writes elsewhere (e.g. to diff)

Everything runs on the CPU in float32, single-threaded, with fixed seeds; two runs produce byte-identical
files (checked with sha256sum). All dropout probabilities are 0.0, models are in eval mode, attention is
"eager". After HF init (initializer_range 0.2, so activations are not tiny) every LayerNorm weight is set to
1 + 0.1*randn, every LayerNorm bias, every Linear bias and generator_lm_head.bias to 0.1*randn.
HF init leaves word_embeddings row 0 (padding_idx = pad_token_id = 0) at zero; that is kept.

Cases (one folder each): emb_lt_hidden (E 8 < H 16, gelu), emb_eq_hidden (E = H = 16, gelu),
gelu_new_act (like emb_lt_hidden, hidden_act gelu_new, 4 heads, type_vocab_size 3),
relu_act (like emb_eq_hidden, hidden_act relu); and rtd_cls, a discriminator alone with the
[CLS]-aware detection head (see write_rtd_cls; `--case rtd_cls` writes it without touching the others,
whose bits depend on the exact torch build). Every case but rtd_cls has a discriminator (ElectraForPreTraining) and
a generator (ElectraForMaskedLM) that SHARE THE WHOLE `electra.embeddings` MODULE (word, position, token-type
embeddings and the embedding LayerNorm, as the original TF code does); the generator's lm head weight is tied
to those word embeddings. Note: generator hidden_act = disc hidden_act, but HF hard-codes "gelu" (erf) in
ElectraGeneratorPredictions and ElectraClassificationHead; only the encoder FFN and discriminator_predictions
use config.hidden_act.

Files written under <out>/<case>/:

  discriminator/{config.json, model.safetensors}   ElectraForPreTraining.save_pretrained (HF tensor names).
  generator/{config.json, model.safetensors}       ElectraForMaskedLM.save_pretrained. With transformers 5.x
      the file OMITS `generator_lm_head.weight` (tied to electra.embeddings.word_embeddings.weight; the loader
      must re-tie it). Its electra.embeddings.* tensors are bit-identical to the discriminator's.
      No `position_ids` buffer is saved (non-persistent in 5.x).
  generator_untied_file/ (emb_lt_hidden only): same config.json; model.safetensors written by hand with
      safetensors.torch.save_file: every generator tensor, PLUS `generator_lm_head.weight` (== word embeddings)
      PLUS `electra.embeddings.position_ids` int64 [1, max_pos] (to be ignored by loaders).
  expected.safetensors   forward outputs on the clean batch:
      input_ids i32 [B,T], attention_mask i32 [B,T], token_type_ids i32 [B,T],
      disc_logits f32 [B,T] (ElectraForPreTraining logits), disc_hidden f32 [B,T,H] (disc.electra(...)[0]),
      gen_logits f32 [B,T,V] (ElectraForMaskedLM logits), gen_hidden f32 [B,T,Hg] (gen.electra(...)[0]).
      Padding positions are included (HF masks keys only; queries at pad positions are well defined).
  train.safetensors (emb_lt_hidden, emb_eq_hidden): ELECTRA joint objective with the randomness as inputs:
      input_ids, attention_mask, token_type_ids       i32 [B,T]
      masked_positions i32 [B,N=3], masked_weights f32 [B,N]  (invalid slot: position 0, weight 0)
      mask_token_id i32 [1] (= 4)
      generator_input_ids i32 [B,T]   mask id at valid masked positions except the row's first slot (kept)
      mlm_logits f32 [B,N,V]          generator logits gathered at masked_positions
      sampled_ids i32 [B,N]           slot0 != original, slot1 == original, slot2 != original; invalid slot 0
      disc_input_ids i32 [B,T]        input_ids with sampled_ids scattered at valid positions
      disc_labels f32 [B,T]           (disc_input_ids != input_ids)
      disc_logits f32 [B,T]           discriminator logits on disc_input_ids (NOT the clean batch)
      gen_weight f32 [1] (1.0), disc_weight f32 [1] (50.0)
      mlm_loss f32 [1] = sum(w*CE)/(sum(w)+1e-6); disc_loss f32 [1] = sum(mask*BCE)/(sum(mask)+1e-6)
      loss f32 [1] = gen_weight*mlm_loss + disc_weight*disc_loss
      grad.discriminator.<name> f32 for every disc.named_parameters() name
      grad.generator.<name>     f32 for every gen.named_parameters() name (torch de-duplicates shared
          parameters, so the tied `generator_lm_head.weight` is NOT listed; its gradient is already summed
          into grad.generator.electra.embeddings.word_embeddings.weight). Shared embedding tensors appear under
          both scopes with identical (total) gradients. Row 0 of word_embeddings gets no gradient from the
          lookup (padding_idx) but does from the tied lm head.
      Optimizer (original ELECTRA AdamWeightDecay, implemented by hand), 5 steps on the same batch:
      opt.losses f32 [5] (joint loss before each update), opt.grad_norms f32 [5] (pre-clip global norm over
      unique parameters), opt.lrs f32 [5] (lr used at steps 0..4),
      opt.base_lr, opt.warmup, opt.total, opt.weight_decay, opt.eps, opt.beta1, opt.beta2, opt.max_grad_norm
      f32 [1] each, and step5.discriminator.<name> / step5.generator.<name> = weights after the 5 updates.
  classifier/{config.json, model.safetensors} (emb_lt_hidden only): ElectraForSequenceClassification,
      num_labels 3 (config has id2label/label2id with 3 entries), electra.* copied from the discriminator.
  cls_train.safetensors (emb_lt_hidden only): input_ids, attention_mask, token_type_ids i32 [B,T],
      labels i32 [B], cls_logits f32 [B,3], cls_loss f32 [1] (mean CE),
      grad.classifier.<name> f32 for every classifier parameter.
"""

import argparse
import copy
import hashlib
import json
import math
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (  # noqa: E402
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForPreTraining,
    ElectraForSequenceClassification,
)

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
torch.set_default_dtype(torch.float32)

MASK_ID = 4
CLS_ID, SEP_ID = 1, 2
FIRST_RANDOM_ID = 5  # real tokens other than CLS/SEP are drawn from [5, vocab)
N_PRED = 3
GEN_WEIGHT, DISC_WEIGHT = 1.0, 50.0
OPT = dict(base_lr=1e-2, warmup=2.0, total=10.0, weight_decay=0.01, eps=1e-6, beta1=0.9, beta2=0.999,
           max_grad_norm=1.0)
OPT_STEPS = 5

CASES = [
    dict(name="emb_lt_hidden", seed=1001, vocab=64, emb=8, hidden=16, heads=2, layers=2, inter=32, max_pos=32,
         type_vocab=2, act="gelu", gen=dict(hidden=4, heads=1, inter=16, layers=2),
         batch=3, seq=7, lengths=[7, 5, 3], train=True, untied_file=True, classifier=True),
    dict(name="emb_eq_hidden", seed=1002, vocab=50, emb=16, hidden=16, heads=1, layers=2, inter=24, max_pos=24,
         type_vocab=2, act="gelu", gen=dict(hidden=8, heads=2, inter=12, layers=1),
         batch=2, seq=13, lengths=[13, 9], train=True),
    dict(name="gelu_new_act", seed=1003, vocab=64, emb=8, hidden=16, heads=4, layers=2, inter=32, max_pos=32,
         type_vocab=3, act="gelu_new", gen=dict(hidden=4, heads=1, inter=16, layers=2),
         batch=1, seq=5, lengths=[5], token_types=[[0, 0, 1, 1, 2]]),
    dict(name="relu_act", seed=1004, vocab=50, emb=16, hidden=16, heads=1, layers=2, inter=24, max_pos=24,
         type_vocab=2, act="relu", gen=dict(hidden=8, heads=2, inter=12, layers=1),
         batch=2, seq=6, lengths=[6, 1]),
]


def make_config(c, hidden, heads, inter, layers, **extra):
    return ElectraConfig(
        vocab_size=c["vocab"], embedding_size=c["emb"], hidden_size=hidden, num_attention_heads=heads,
        num_hidden_layers=layers, intermediate_size=inter, max_position_embeddings=c["max_pos"],
        type_vocab_size=c["type_vocab"], hidden_act=c["act"], hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, classifier_dropout=None, initializer_range=0.2, layer_norm_eps=1e-12,
        pad_token_id=0, tie_word_embeddings=True, attn_implementation="eager", **extra)


@torch.no_grad()
def perturb(modules, gen, seen):
    """LayerNorm weight = 1 + 0.1 randn, LayerNorm bias / Linear bias = 0.1 randn (each tensor once)."""
    for model in modules:
        for _, mod in model.named_modules():
            if isinstance(mod, torch.nn.LayerNorm):
                if id(mod.weight) not in seen:
                    seen.add(id(mod.weight))
                    mod.weight.copy_(1.0 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                if id(mod.bias) not in seen:
                    seen.add(id(mod.bias))
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))
            elif isinstance(mod, torch.nn.Linear) and mod.bias is not None:
                if id(mod.bias) not in seen:  # includes generator_lm_head.bias
                    seen.add(id(mod.bias))
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))


def make_batch(c, gen):
    B, T, V = c["batch"], c["seq"], c["vocab"]
    ids = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    tt = torch.zeros(B, T, dtype=torch.long)
    for b, L in enumerate(c["lengths"]):
        row = torch.randint(FIRST_RANDOM_ID, V, (L,), generator=gen)
        row[0] = CLS_ID
        if L > 1:
            row[L - 1] = SEP_ID
        if L > 3:
            row[L // 2] = 3  # an extra fixed id in the middle
        ids[b, :L] = row
        mask[b, :L] = 1
        if "token_types" in c:
            tt[b, :L] = torch.tensor(c["token_types"][b][:L])
        else:
            tt[b, (L + 1) // 2:L] = 1  # first half 0, second half 1 of the real tokens
    return ids, mask, tt


def f32(x):
    return x.detach().to(torch.float32).contiguous().clone()


def i32(x):
    return x.detach().to(torch.int32).contiguous().clone()


def scalar(v):
    return torch.tensor([v], dtype=torch.float32)


def save_tensors(tensors, path):
    save_file({k: tensors[k] for k in sorted(tensors)}, path, metadata={"format": "pt"})


def build_models(c):
    disc_cfg = make_config(c, c["hidden"], c["heads"], c["inter"], c["layers"])
    g = c["gen"]
    gen_cfg = make_config(c, g["hidden"], g["heads"], g["inter"], g["layers"])
    torch.manual_seed(c["seed"])
    disc = ElectraForPreTraining(disc_cfg)
    gen = ElectraForMaskedLM(gen_cfg)
    # Share the whole embeddings module (word/pos/type + LayerNorm) and tie the lm head to it.
    gen.electra.embeddings = disc.electra.embeddings
    gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
    pgen = torch.Generator().manual_seed(c["seed"] + 1)
    perturb([disc, gen], pgen, set())
    disc.eval()
    gen.eval()
    assert gen.generator_lm_head.weight is disc.electra.embeddings.word_embeddings.weight
    assert gen.config._attn_implementation == "eager" and disc.config._attn_implementation == "eager"
    return disc, gen


def make_train_inputs(c, ids, mask, rgen):
    """Fixed masked positions / weights / generator input / sampled ids / corrupted input / labels."""
    B, T, V = ids.shape[0], ids.shape[1], c["vocab"]
    pos = torch.zeros(B, N_PRED, dtype=torch.long)
    w = torch.zeros(B, N_PRED, dtype=torch.float32)
    sampled = torch.zeros(B, N_PRED, dtype=torch.long)
    gen_in = ids.clone()
    corrupt = ids.clone()
    for b, L in enumerate(c["lengths"]):
        cand = torch.arange(1, L)  # real tokens except position 0
        k = min(N_PRED, len(cand))
        assert k >= 2, "each train row needs at least 2 valid slots"
        chosen = cand[torch.randperm(len(cand), generator=rgen)[:k]]
        pos[b, :k] = chosen
        w[b, :k] = 1.0
        for n in range(k):
            p = int(chosen[n])
            orig = int(ids[b, p])
            if n > 0:  # slot 0 keeps the original token in the generator input (the 15% keep rule)
                gen_in[b, p] = MASK_ID
            if n == 1:
                s = orig  # sample equal to original -> label 0
            else:
                s = orig
                while s == orig:
                    s = int(torch.randint(FIRST_RANDOM_ID, V, (1,), generator=rgen))
            sampled[b, n] = s
            corrupt[b, p] = s
    labels = (corrupt != ids).to(torch.float32)
    return pos, w, gen_in, sampled, corrupt, labels


def joint_loss(disc, gen, ids, mask, tt, pos, w, gen_in, corrupt, labels):
    B = ids.shape[0]
    gh = gen.electra(gen_in, attention_mask=mask, token_type_ids=tt)[0]
    rows = torch.arange(B)[:, None]
    gathered = gh[rows, pos]  # [B,N,Hg]
    mlm_logits = gen.generator_lm_head(gen.generator_predictions(gathered))  # [B,N,V]
    targets = ids[rows, pos]  # original ids at the masked positions
    ce = -torch.gather(F.log_softmax(mlm_logits, dim=-1), -1, targets[..., None])[..., 0]
    mlm_loss = (w * ce).sum() / (w.sum() + 1e-6)
    d_logits = disc(corrupt, attention_mask=mask, token_type_ids=tt).logits  # [B,T]
    mf = mask.to(torch.float32)
    bce = F.binary_cross_entropy_with_logits(d_logits, labels, reduction="none")
    disc_loss = (mf * bce).sum() / (mf.sum() + 1e-6)
    loss = GEN_WEIGHT * mlm_loss + DISC_WEIGHT * disc_loss
    return loss, mlm_loss, disc_loss, mlm_logits, d_logits


def unique_named_params(disc, gen):
    out, seen = [], set()
    for model in (disc, gen):
        for n, p in model.named_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append((n, p))
    return out


def lr_at(step):
    o = OPT
    return o["base_lr"] * (1.0 - min(step, o["total"]) / o["total"]) * min(1.0, step / o["warmup"])


def run_optimizer(disc, gen, batch):
    """Original ELECTRA AdamWeightDecayOptimizer (no bias correction), global-norm clip, ELECTRA lr schedule."""
    o = OPT
    params = unique_named_params(disc, gen)
    m = {id(p): torch.zeros_like(p) for _, p in params}
    v = {id(p): torch.zeros_like(p) for _, p in params}
    losses, norms, lrs = [], [], []
    for step in range(OPT_STEPS):
        for _, p in params:
            p.grad = None
        loss = joint_loss(disc, gen, *batch)[0]
        loss.backward()
        with torch.no_grad():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for _, p in params]
            g_norm = torch.sqrt(sum((g * g).sum() for g in grads))
            if float(g_norm) > o["max_grad_norm"]:  # TF clip_by_global_norm
                grads = [g * (o["max_grad_norm"] / g_norm) for g in grads]
            lr = float(torch.tensor(lr_at(step), dtype=torch.float32))
            for (name, p), g in zip(params, grads):
                mm, vv = m[id(p)], v[id(p)]
                mm.mul_(o["beta1"]).add_(g, alpha=1.0 - o["beta1"])
                vv.mul_(o["beta2"]).add_(g * g, alpha=1.0 - o["beta2"])
                update = mm / (vv.sqrt() + o["eps"])
                if not any(s in name for s in ("LayerNorm", "layer_norm", "bias")):
                    update = update + o["weight_decay"] * p
                p.sub_(lr * update)
        losses.append(float(loss.detach()))
        norms.append(float(g_norm))
        lrs.append(lr)
    for _, p in params:
        p.grad = None
    return losses, norms, lrs


def write_case(c, out_root):
    name = c["name"]
    cdir = os.path.join(out_root, name)
    if os.path.isdir(cdir):
        shutil.rmtree(cdir)
    os.makedirs(cdir)
    disc, gen = build_models(c)
    dgen = torch.Generator().manual_seed(c["seed"] + 2)
    ids, mask, tt = make_batch(c, dgen)

    disc.save_pretrained(os.path.join(cdir, "discriminator"), safe_serialization=True)
    gen.save_pretrained(os.path.join(cdir, "generator"), safe_serialization=True)
    # transformers 5.x drops the tied generator_lm_head.weight from the generator's model.safetensors.
    with safe_open(os.path.join(cdir, "generator", "model.safetensors"), "pt") as f:
        gen_keys = set(f.keys())
    lm_head_in_file = "generator_lm_head.weight" in gen_keys

    with torch.no_grad():
        disc_logits = disc(ids, attention_mask=mask, token_type_ids=tt).logits
        disc_hidden = disc.electra(ids, attention_mask=mask, token_type_ids=tt)[0]
        gen_logits = gen(ids, attention_mask=mask, token_type_ids=tt).logits
        gen_hidden = gen.electra(ids, attention_mask=mask, token_type_ids=tt)[0]
    save_tensors(dict(input_ids=i32(ids), attention_mask=i32(mask), token_type_ids=i32(tt),
                      disc_logits=f32(disc_logits), disc_hidden=f32(disc_hidden),
                      gen_logits=f32(gen_logits), gen_hidden=f32(gen_hidden)),
                 os.path.join(cdir, "expected.safetensors"))

    # Round-trip check: HF reloads of the saved folders reproduce the outputs.
    with torch.no_grad():
        d2 = ElectraForPreTraining.from_pretrained(os.path.join(cdir, "discriminator"), attn_implementation="eager")
        g2 = ElectraForMaskedLM.from_pretrained(os.path.join(cdir, "generator"), attn_implementation="eager")
        d2.eval()
        g2.eval()
        assert torch.equal(d2(ids, attention_mask=mask, token_type_ids=tt).logits, disc_logits)
        assert torch.equal(g2(ids, attention_mask=mask, token_type_ids=tt).logits, gen_logits)

    if c.get("untied_file"):
        udir = os.path.join(cdir, "generator_untied_file")
        os.makedirs(udir)
        shutil.copyfile(os.path.join(cdir, "generator", "config.json"), os.path.join(udir, "config.json"))
        sd = {k: t.detach().contiguous().clone() for k, t in gen.state_dict().items()}
        assert "generator_lm_head.weight" in sd
        sd["electra.embeddings.position_ids"] = torch.arange(c["max_pos"], dtype=torch.int64)[None, :].clone()
        save_tensors(sd, os.path.join(udir, "model.safetensors"))
        with torch.no_grad():
            g3 = ElectraForMaskedLM.from_pretrained(udir, attn_implementation="eager")
            g3.eval()
            assert torch.equal(g3(ids, attention_mask=mask, token_type_ids=tt).logits, gen_logits)

    if c.get("classifier"):
        write_classifier(c, cdir, disc, ids, mask, tt)

    if c.get("train"):
        write_train(c, cdir, disc, gen, ids, mask, tt)
    return lm_head_in_file


def write_classifier(c, cdir, disc, ids, mask, tt):
    cfg = make_config(c, c["hidden"], c["heads"], c["inter"], c["layers"], num_labels=3)
    torch.manual_seed(c["seed"] + 3)
    cls = ElectraForSequenceClassification(cfg)
    cls.electra.load_state_dict(disc.electra.state_dict())
    with torch.no_grad():
        pg = torch.Generator().manual_seed(c["seed"] + 4)
        for lin in (cls.classifier.dense, cls.classifier.out_proj):
            lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=pg))
    cls.eval()
    cls.save_pretrained(os.path.join(cdir, "classifier"), safe_serialization=True)
    labels = torch.tensor([2, 0, 1][: ids.shape[0]], dtype=torch.long)
    out = cls(ids, attention_mask=mask, token_type_ids=tt, labels=labels)
    manual = F.cross_entropy(out.logits, labels)
    assert torch.allclose(manual, out.loss)
    cls.zero_grad(set_to_none=True)
    out.loss.backward()
    t = dict(input_ids=i32(ids), attention_mask=i32(mask), token_type_ids=i32(tt), labels=i32(labels),
             cls_logits=f32(out.logits), cls_loss=f32(out.loss.reshape(1)))
    for n, p in cls.named_parameters():
        t[f"grad.classifier.{n}"] = f32(p.grad if p.grad is not None else torch.zeros_like(p))
    save_tensors(t, os.path.join(cdir, "cls_train.safetensors"))


def write_train(c, cdir, disc, gen, ids, mask, tt):
    rgen = torch.Generator().manual_seed(c["seed"] + 5)
    pos, w, gen_in, sampled, corrupt, labels = make_train_inputs(c, ids, mask, rgen)
    batch = (ids, mask, tt, pos, w, gen_in, corrupt, labels)
    # Work on copies (one deepcopy call keeps the sharing between the two models).
    disc, gen = copy.deepcopy((disc, gen))
    assert gen.electra.embeddings is disc.electra.embeddings
    assert gen.generator_lm_head.weight is disc.electra.embeddings.word_embeddings.weight
    for p in list(disc.parameters()) + list(gen.parameters()):
        p.grad = None
    loss, mlm_loss, disc_loss, mlm_logits, d_logits = joint_loss(disc, gen, *batch)
    loss.backward()
    # sanity: HF's own ElectraForPreTraining loss is the masked mean BCE
    with torch.no_grad():
        hf = disc(corrupt, attention_mask=mask, token_type_ids=tt, labels=labels).loss
        assert torch.allclose(hf, disc_loss, rtol=1e-5, atol=1e-6), (hf, disc_loss)
    t = dict(input_ids=i32(ids), attention_mask=i32(mask), token_type_ids=i32(tt),
             masked_positions=i32(pos), masked_weights=f32(w), mask_token_id=torch.tensor([MASK_ID], dtype=torch.int32),
             generator_input_ids=i32(gen_in), mlm_logits=f32(mlm_logits), sampled_ids=i32(sampled),
             disc_input_ids=i32(corrupt), disc_labels=f32(labels), disc_logits=f32(d_logits),
             gen_weight=scalar(GEN_WEIGHT), disc_weight=scalar(DISC_WEIGHT),
             mlm_loss=f32(mlm_loss.reshape(1)), disc_loss=f32(disc_loss.reshape(1)), loss=f32(loss.reshape(1)))
    for scope, model in (("discriminator", disc), ("generator", gen)):
        for n, p in model.named_parameters():
            t[f"grad.{scope}.{n}"] = f32(p.grad if p.grad is not None else torch.zeros_like(p))
    we = "electra.embeddings.word_embeddings.weight"
    assert torch.equal(t[f"grad.discriminator.{we}"], t[f"grad.generator.{we}"])

    losses, norms, lrs = run_optimizer(disc, gen, batch)
    assert abs(losses[0] - float(loss.detach())) <= 1e-6 * max(1.0, abs(float(loss.detach())))
    t["opt.losses"] = torch.tensor(losses, dtype=torch.float32)
    t["opt.grad_norms"] = torch.tensor(norms, dtype=torch.float32)
    t["opt.lrs"] = torch.tensor(lrs, dtype=torch.float32)
    for k, v in OPT.items():
        t[f"opt.{k}"] = scalar(v)
    for scope, model in (("discriminator", disc), ("generator", gen)):
        for n, p in model.named_parameters():
            t[f"step5.{scope}.{n}"] = f32(p)
    save_tensors(t, os.path.join(cdir, "train.safetensors"))


def summarize(out_root):
    total = 0
    for dirpath, _, files in sorted(os.walk(out_root)):
        for fn in sorted(files):
            path = os.path.join(dirpath, fn)
            size = os.path.getsize(path)
            total += size
            digest = hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]
            print(f"{os.path.relpath(path, out_root):55s} {size:9d} B  sha256 {digest}")
            if fn.endswith(".safetensors") and fn != "model.safetensors":
                with safe_open(path, "pt") as f:
                    for k in f.keys():
                        if k.startswith(("grad.", "step5.")):
                            continue
                        s = f.get_slice(k)
                        print(f"    {k:28s} {s.get_dtype():4s} {s.get_shape()}")
                    n_grad = sum(k.startswith("grad.") for k in f.keys())
                    n_step = sum(k.startswith("step5.") for k in f.keys())
                    if n_grad or n_step:
                        print(f"    (+ {n_grad} grad.* and {n_step} step5.* tensors)")
    print(f"total: {total} bytes ({total / 1024:.1f} KiB)")
    return total


RTD_CLS = dict(name="rtd_cls", seed=1005, vocab=64, emb=8, hidden=16, heads=2, layers=2, inter=32, max_pos=32,
               type_vocab=2, act="gelu", batch=2, seq=9, lengths=[9, 6])


@torch.no_grad()
def write_rtd_cls(out_root):
    """The [CLS]-aware detection head (`"rtd_head": "cls"`, DeBERTa's): HF's
    ElectraDiscriminatorPredictions on LayerNorm(h_[CLS] + h_i), the LayerNorm saved as
    discriminator_predictions.LayerNorm. Writes rtd_cls/discriminator/ (save_pretrained) and
    rtd_cls/expected.safetensors: input_ids, attention_mask, token_type_ids i32 [B,T], logits f32 [B,T]."""
    c = RTD_CLS
    cfg = make_config(c, c["hidden"], c["heads"], c["inter"], c["layers"])
    torch.manual_seed(c["seed"])
    disc = ElectraForPreTraining(cfg)
    disc.discriminator_predictions.LayerNorm = torch.nn.LayerNorm(c["hidden"], eps=cfg.layer_norm_eps)
    disc.config.rtd_head = "cls"
    gen = torch.Generator().manual_seed(c["seed"])
    perturb([disc], gen, set())
    disc.eval()
    ids, mask, tt = make_batch(c, gen)
    h = disc.electra(input_ids=ids, attention_mask=mask, token_type_ids=tt)[0]
    pred = disc.discriminator_predictions
    logits = pred(pred.LayerNorm(h + h[:, :1]))
    cdir = os.path.join(out_root, c["name"])
    disc.save_pretrained(os.path.join(cdir, "discriminator"), safe_serialization=True)
    save_tensors(dict(input_ids=i32(ids), attention_mask=i32(mask), token_type_ids=i32(tt), logits=f32(logits)),
                 os.path.join(cdir, "expected.safetensors"))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    ap.add_argument("--case", action="append",
                    help="write only this case (repeatable), leaving the others' files as they are")
    args = ap.parse_args()
    out_root = os.path.normpath(args.out)
    os.makedirs(out_root, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    for c in CASES:
        if args.case and c["name"] not in args.case:
            continue
        in_file = write_case(c, out_root)
        print(f"{c['name']}: generator/model.safetensors contains generator_lm_head.weight: {in_file}")
    if not args.case or RTD_CLS["name"] in args.case:
        write_rtd_cls(out_root)
    total = summarize(out_root)
    if total >= 5 * 1024 * 1024:
        sys.exit("fixtures exceed 5 MB")


if __name__ == "__main__":
    main()
