#!/usr/bin/env python3
"""The tiny ELECTRA pre-training of `electra pretrain`, in HuggingFace PyTorch, to compare training
dynamics and, through --save, what the model fine-tunes to (not bits: the random streams differ;
the examples are built, masked and weighted as ours build them, LayerNorm and bias weights are
exempt from weight decay as in ours, and torch's AdamW corrects bias as the tiny recipe's Adam does).

    ~/electra-pyenv/bin/python scripts/reference_pretrain.py [--steps 600] [--temperature 3] \
        [--seq-len 128] [--dropout 0.1] [--label-smoothing 0.2] [--rtd-head cls] \
        [--embedding-sharing full|disentangled|none] [--untie-generator-output] [--corpus FILE ...] \
        [--save DIR]

Same model as the `tiny` preset (discriminator 2 x 128, embeddings 64, generator 1/4 width sharing
the discriminator's embeddings, lm head tied), same objective (15% of positions, 85% [MASK],
Gumbel-max sampling, loss mlm + 50 * bce (--label-smoothing e: against e/2 and 1 - e/2, as
`"disc_label_smoothing"`, the tiny preset's default since 2026-12-06), clip 1.0, AdamW weight decay 0.01 (not on LayerNorm or bias) eps 1e-6, linear
warm-up over a tenth of the steps and decay), dropout as config.json says (HF's 0.1 by default,
as `electra pretrain`), on the bundled Moby-Dick text (or --corpus) with the bundled vocabulary
(or --vocab); prints the held-out discriminator AUC every 100 steps. --save writes the
discriminator as an HF directory with the vocabulary beside it, which `electra finetune --model`
reads unchanged: docs/REPLICATION.md fine-tunes ours and these with the same fine-tuner. Measured:
at temperature 1 the AUC rises to ~0.74 at step 100 and falls back to ~0.54 by step 200 as the
generator reaches unigram-level samples, as ours does; see README.md. --rtd-head cls and
--embedding-sharing are the options `rtd_head` and `embedding_sharing` of `electra pretrain`: the
[CLS]-aware detection head LayerNorm(h_[CLS] + h_i) (saved as discriminator_predictions.LayerNorm
with "rtd_head": "cls" in config.json, as ours), and DeBERTa-V3's gradient-disentangled sharing
(the discriminator's word, position and type tables are the generator's, detached, plus a delta
that starts at zero; saved folded; the embedding LayerNorm is each tower's own) or none.
--untie-generator-output is `"tie_generator_output": false`: the generator's lm head gets a
matrix of its own instead of the shared word table. Needs torch, transformers and
tokenizers (scripts/requirements.txt).
"""
import argparse
import glob
import os
import random
import shutil

import torch
import torch.nn.utils.parametrize
from tokenizers import BertWordPieceTokenizer
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def documents(files, tok):
    """Documents as lists of tokenized lines: a blank line or a file's end ends one (src/data/corpus.rs)."""
    docs, cur = [], []
    for f in files:
        for line in open(f, encoding="utf-8", errors="replace"):
            text = line.strip()
            if not text:
                if cur:
                    docs.append(cur)
                cur = []
                continue
            ids = tok.encode(text, add_special_tokens=False).ids
            if ids:
                cur.append(ids)
        if cur:
            docs.append(cur)
        cur = []
    return docs


def pack(docs, seq_len, cls, sep, rng):
    """(ids, len_a) examples as the original's build_pretraining_dataset.py and src/data/corpus.rs
    build them: lines accumulate to a target length (a random shorter one with probability 0.05)
    or the document's end; one segment with probability 0.1, else A up to (target - 3) / 2 and
    the rest in B; text beyond the length is dropped."""
    out, target = [], seq_len
    for doc in docs:
        pending, n = [], 0
        for i, ids in enumerate(doc):
            pending.append(ids)
            n += len(ids)
            if n < target and i + 1 < len(doc):
                continue
            first = 1 << 62 if rng.random() < 0.1 else (target - 3) // 2
            sa, sb = [], []
            for s in pending:
                if not sa or len(sa) + len(s) < first or (not sb and len(sa) < first and rng.random() < 0.5):
                    sa += s
                else:
                    sb += s
            sa = sa[: seq_len - 2]
            sb = sb[: max(0, seq_len - len(sa) - 3)]
            ids_ = [cls] + sa + [sep]
            len_a = len(ids_)
            if sb:
                ids_ += sb + [sep]
            out.append((ids_, len_a))
            target = rng.randint(5, seq_len) if rng.random() < 0.05 else seq_len
            pending, n = [], 0
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dropout", type=float, default=0.1, help="hidden and attention dropout (HF's default 0.1)")
    ap.add_argument("--label-smoothing", type=float, default=0.0,
                    help="replaced-token detection against e/2 and 1 - e/2 (electra pretrain's tiny default: 0.2)")
    ap.add_argument("--rtd-head", choices=["plain", "cls"], default="plain",
                    help="cls: detection on LayerNorm(h_[CLS] + h_i), as rtd_head \"cls\"")
    ap.add_argument("--embedding-sharing", choices=["full", "disentangled", "none"], default="full")
    ap.add_argument("--untie-generator-output", action="store_true",
                    help="the generator's lm head has its own output matrix, as tie_generator_output false")
    ap.add_argument("--corpus", nargs="+", help="text files (default: the bundled Moby-Dick)")
    ap.add_argument("--vocab", default=os.path.join(ROOT, "data/vocab.txt"))
    ap.add_argument("--save", help="write the discriminator here (HF layout + vocab.txt)")
    ap.add_argument("--packing", choices=["original", "chunks"], default="original",
                    help="original: examples built as electra pretrain (and the original) builds them; "
                         "chunks: 126-token slices across documents (this script before 2026-12-07; "
                         "masking now skips [UNK] as ours does, which the bundled corpus never yields)")
    ap.add_argument("--decay-norms-and-biases", action="store_true",
                    help="weight decay on LayerNorm and bias too (this script before 2026-12-07; "
                         "electra pretrain, as the original, exempts them)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    torch.set_num_threads(a.threads)

    tok = BertWordPieceTokenizer(a.vocab, lowercase=True)
    vocab = tok.get_vocab_size()
    cls, sep, mask_id = (tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[MASK]"))
    files = a.corpus or sorted(glob.glob(os.path.join(ROOT, "data/moby-dick/*.txt")))
    if a.packing == "chunks":
        text = "".join(open(f, encoding="utf-8").read() for f in files)
        ids = tok.encode(text, add_special_tokens=False).ids
        body = a.seq_len - 2
        chunks = [([cls] + ids[i : i + body] + [sep], body + 2) for i in range(0, len(ids) - body, body)]
        rng.shuffle(chunks)
        held_out, train = chunks[:128], chunks[128:]
        epoch_of = None
    else:
        docs = documents(files, tok)
        # Every 20th document is held out, as src/data/corpus.rs does.
        held_docs = [d for i, d in enumerate(docs) if i % 20 == 0]
        train_docs = [d for i, d in enumerate(docs) if i % 20 != 0]
        held_out = pack(held_docs, a.seq_len, cls, sep, random.Random(1234))[:128]
        # Each pass over the corpus packs anew (the packing RNG carries on) and is shuffled whole.
        def epoch_of():
            ex = pack(train_docs, a.seq_len, cls, sep, rng)
            rng.shuffle(ex)
            return ex
        train = epoch_of()

    drop = dict(hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout)
    dcfg = ElectraConfig(vocab_size=vocab, embedding_size=64, hidden_size=128, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=512, max_position_embeddings=128, **drop)
    gcfg = ElectraConfig(vocab_size=vocab, embedding_size=64, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=1, intermediate_size=128, max_position_embeddings=128,
                         tie_word_embeddings=not a.untie_generator_output, **drop)
    disc, gen = ElectraForPreTraining(dcfg), ElectraForMaskedLM(gcfg)
    tables = ("word_embeddings", "position_embeddings", "token_type_embeddings")
    if a.embedding_sharing == "full":
        gen.electra.embeddings = disc.electra.embeddings  # the original shares the whole embeddings module
        if not a.untie_generator_output:
            gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
    elif a.embedding_sharing == "disentangled":
        class Fold(torch.nn.Module):  # E_D = sg(E_G) + E_delta
            def __init__(self, g):
                super().__init__()
                self.g = g

            def forward(self, delta):
                return self.g.weight.detach() + delta

        for t in tables:
            dm, gm = getattr(disc.electra.embeddings, t), getattr(gen.electra.embeddings, t)
            with torch.no_grad():
                gm.weight.copy_(dm.weight)  # a new pair starts from equal tables, as ours
            torch.nn.utils.parametrize.register_parametrization(dm, "weight", Fold(gm))
            with torch.no_grad():
                dm.parametrizations.weight.original.zero_()
    if a.rtd_head == "cls":
        disc.discriminator_predictions.LayerNorm = torch.nn.LayerNorm(dcfg.hidden_size, eps=dcfg.layer_norm_eps)
        disc.config.rtd_head = "cls"
    named = {id(p): (n, p) for n, p in list(disc.named_parameters()) + list(gen.named_parameters())}
    params = [p for _, p in named.values()]
    exempt = lambda n: not a.decay_norms_and_biases and ("LayerNorm" in n or n.endswith("bias"))
    groups = [{"params": [p for n, p in named.values() if not exempt(n)], "weight_decay": 0.01},
              {"params": [p for n, p in named.values() if exempt(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.learning_rate, eps=1e-6)
    warm = max(1, a.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 1 - s / a.steps))
    k = int((0.15 + 0.005) * a.seq_len)  # the most masked positions per row (max_predictions)

    special = {tok.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}

    def batch(examples):
        """[B, T] ids, attention mask and segment ids from (ids, len_a) pairs, [PAD] after."""
        x = torch.zeros(len(examples), a.seq_len, dtype=torch.long)
        am, tt = torch.zeros_like(x), torch.zeros_like(x)
        for row, (ids, len_a) in enumerate(examples):
            x[row, : len(ids)] = torch.tensor(ids)
            am[row, : len(ids)] = 1
            tt[row, len_a : len(ids)] = 1
        return x, am, tt

    def step(xb, r):
        x, am, tt = xb
        gin, pos = x.clone(), torch.zeros_like(x, dtype=torch.bool)
        for row in range(x.shape[0]):
            # As src/pretrain/masking.rs: round-half-even 15% of the real tokens, at most k, drawn
            # without replacement among real non-special positions.
            real = int(am[row].sum())
            cand = [p for p in range(real) if int(x[row, p]) not in special]
            n = min(max(1, min(k, round(0.15 * real))), len(cand))
            for p in r.sample(cand, n):
                pos[row, p] = True
                if r.random() < 0.85:
                    gin[row, p] = mask_id
        logits = gen(input_ids=gin, attention_mask=am, token_type_ids=tt).logits[pos]
        mlm = torch.nn.functional.cross_entropy(logits, x[pos])
        with torch.no_grad():
            u = torch.rand_like(logits)
            sampled = (logits / a.temperature - torch.log(-torch.log(u + 1e-9) + 1e-9)).argmax(-1)
        corrupted = x.clone()
        corrupted[pos] = sampled
        labels = (corrupted != x).float()
        if a.rtd_head == "cls":
            h = disc.electra(input_ids=corrupted, attention_mask=am, token_type_ids=tt).last_hidden_state
            d = disc.discriminator_predictions(disc.discriminator_predictions.LayerNorm(h + h[:, :1]))
        else:
            d = disc(input_ids=corrupted, attention_mask=am, token_type_ids=tt).logits
        target = labels * (1 - a.label_smoothing) + a.label_smoothing / 2
        w = am.float()  # every real token counts, [PAD] none (the original's input_mask weights)
        bce = (torch.nn.functional.binary_cross_entropy_with_logits(d, target, reduction="none") * w).sum() / w.sum()
        real = am.bool()
        return mlm, bce, d[real], labels[real], (logits.argmax(-1) == x[pos]).float().mean().item()

    def auc(score, labels):
        ranks = torch.empty_like(score)
        ranks[torch.argsort(score)] = torch.arange(1, len(score) + 1, dtype=score.dtype)
        npos = labels.sum()
        return ((ranks[labels == 1].sum() - npos * (npos + 1) / 2) / (npos * (len(labels) - npos))).item()

    cursor = 0
    for s in range(a.steps + 1):
        if s % 100 == 0:
            disc.eval(), gen.eval()
            with torch.no_grad():
                torch.manual_seed(1234)
                _, bce, d, labels, acc = step(batch(held_out), random.Random(1234))
            print(f"step {s}: held-out discriminator AUC {auc(d.flatten(), labels.flatten()):.3f}, "
                  f"generator MLM accuracy {acc:.3f}", flush=True)
            disc.train(), gen.train()
            torch.manual_seed(a.seed * 100003 + s)
        if s == a.steps:
            break
        rows = []
        for _ in range(a.batch_size):
            if epoch_of is not None and cursor == len(train):
                train, cursor = epoch_of(), 0
            rows.append(train[cursor % len(train)])
            cursor += 1
        mlm, bce, *_ = step(batch(rows), rng)
        opt.zero_grad()
        (mlm + 50 * bce).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()

    if a.save:
        if a.embedding_sharing == "disentangled":
            for t in tables:  # fold: plain tables in the file
                torch.nn.utils.parametrize.remove_parametrizations(
                    getattr(disc.electra.embeddings, t), "weight", leave_parametrized=True)
        disc.save_pretrained(a.save, safe_serialization=True)
        shutil.copyfile(a.vocab, os.path.join(a.save, "vocab.txt"))
        print(f"saved the discriminator to {a.save}")


if __name__ == "__main__":
    main()
