#!/usr/bin/env python3
"""Generate the tokenizer parity fixtures used by tests/tokenizer.rs (tests/fixtures/tokenizer/).

How to run (from the repository root, with the venv of scripts/requirements.txt: transformers 5.24,
tokenizers 0.23.3):

    ~/electra-pyenv/bin/python scripts/make_tokenizer_fixtures.py            # reuse the committed vocab.txt
    ~/electra-pyenv/bin/python scripts/make_tokenizer_fixtures.py --retrain  # also retrain vocab.txt

Files written under tests/fixtures/tokenizer/:

  vocab.txt   A small BERT-uncased-style vocabulary (3,000 entries: [PAD] [UNK] [CLS] [SEP] [MASK] at 0..4, the
              alphabet, ## pieces, merges), trained with tokenizers.BertWordPieceTokenizer (lowercase, strip accents,
              clean text, CJK split, limit_alphabet 1000, min_frequency 2) on data/moby-dick/moby-dick-1.txt plus
              the SUPPLEMENT lines below (so a few CJK, Greek, Cyrillic characters and an emoji are in the vocabulary
              and both the known and [UNK] paths are exercised). HF's trainer seeds its hash maps randomly, so a
              retrain gives a slightly different vocabulary; the committed file is the reference and is reused
              unless --retrain is given.
  hf/         BertTokenizerFast(vocab=vocab.txt).save_pretrained(): tokenizer.json + tokenizer_config.json as HF
              writes them (tests load this tokenizer.json and must get the same ids as from vocab.txt).
  hf_truncating/tokenizer.json   The same with truncation (max_length 8) and fixed padding (length 16) switched on,
              as many hub tokenizer.json files ship; our loader must switch both off.
  cases.json  {"transformers", "tokenizers", "vocab_size", "cases": [{"text", "fast", "slow", "decoded"}, ...]}
              fast    = BertTokenizerFast(vocab=...).encode(text, add_special_tokens=False)
              slow    = BertTokenizerLegacy(vocab_file=...).encode(text, add_special_tokens=False)
                        (transformers 5's pure-Python BasicTokenizer + WordpieceTokenizer; in 5.x
                        "BertTokenizerFast" is an alias of BertTokenizer, the tokenizers-backed class)
              decoded = the fast tokenizer's backend decode(fast, skip_special_tokens=False)
              The Rust tokenizer must equal `fast` everywhere; `slow` is recorded to document where the two
              HF implementations disagree (the summary is printed and stored under "fast_vs_slow").

Pitfall found while writing this: in transformers 5.x `BertTokenizerFast(vocab_file=path)` silently IGNORES the
file and builds a 5-token vocabulary (everything becomes [UNK]); pass `vocab=path` (or from_pretrained(dir)).
The script asserts that the fast tokenizer really has the vocabulary's size.

  encode.json (also written alone by --encode-only, which needs only the `tokenizers` wheel)
              {"tokenizers", "single": [...], "pairs": [...], "truncated": [...], "batches": [...]}: what
              tokenizers.Tokenizer.from_file("hf/tokenizer.json") gives WITH special tokens for every text of
              cases.json ("single"), for consecutive texts as pairs ("pairs"), with enable_truncation(max_length)
              for pairs and single texts ("truncated", max_length 6 / 9 / 16), and with enable_padding() over
              batches of 5 ("batches"). Each encoding: ids, type_ids, attention_mask, offsets ([start, end) in
              CHARACTERS of its own text, as the Python binding reports them; the Rust test converts to bytes),
              word_ids (null for special and padding tokens). Checks electra_tokenizer_encode / encode_batch.

Everything is deterministic (fixed seeds); two runs without --retrain write byte-identical files.
"""

import argparse
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

SUPPLEMENT = [
    "我爱北京天安门。鲸鱼在大海里游泳。白鲸记是一本书。",
    "日本語のテキストと漢字、ひらがな、カタカナ。捕鯨船。",
    "Ωμέγα και άλφα: η φάλαινα κολυμπά στη θάλασσα.",
    "Москва, кит и море. Белый кит плывёт.",
    "Café, naïve, résumé, façade, Zürich, Ångström, São Paulo, Øresund, Łódź.",
    "I love whales 🐋 and the sea 🌊!",
]

CASES = [
    # empty and whitespace
    "", " ", "   ", "\t", "\n", "\r\n", " \t \n \r ", "a    b", "a\t\tb\n\nc", "  leading and trailing  ",
    "\u00a0non\u00a0breaking\u00a0space", "en\u2002space em\u2003space ideographic\u3000space",
    "line\u2028separator and paragraph\u2029separator",
    # case and accents
    "Call me Ishmael.", "CALL ME ISHMAEL.", "cAlL mE iShMaEl.", "The WHALE, the Whale, the whale.",
    "Café naïve résumé façade Zürich Ångström São Paulo", "Øresund Łódź Straße ﬁne ligature",
    "e\u0301 decomposed acute, a\u0308 decomposed umlaut", "ÀÁÂÃÄÅ àáâãäå ÈÉÊË ÌÍÎÏ ÒÓÔÕÖ ÙÚÛÜ Ýÿ Ññ Çç",
    "İstanbul ıi", "ǅungla ǈubljana", "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ １２３",
    # CJK and other scripts
    "我爱北京天安门", "白鲸记 Moby Dick 是一本书。", "日本語のテキスト、ひらがな、カタカナ。", "한국어 텍스트 고래",
    "鲸", "鯨", "漢字abc漢字", "Ωμέγα και άλφα", "Москва и кит", "مرحبا بالعالم", "שלום עולם", "สวัสดีครับ",
    "नमस्ते दुनिया", "𠀀𠀁 CJK extension B", "ᄀᄁ Hangul jamo",
    # punctuation
    "Hello, world!", "Wait... what?!", "!!!???...;;;:::", "\"quoted\" 'single' “curly” ‘curly’ «guillemets»",
    "—em dash— –en dash– - hyphen", "(parens) [brackets] {braces} <angles>", "a/b\\c|d", "50% off & more #1 @home",
    "~tilde` `backtick^caret", "don't won't it's rock'n'roll", "U.S.A. e.g. i.e. Mr. Starbuck",
    "§ ¶ † ‡ • … ‰ ′ ″ ‹ › ¿ ¡", "$100 €50 £20 ¥1000 ₹5", "+-*/=<>", "©®™",
    # numbers
    "1", "12345", "1,000,000", "3.14159", "2024-01-01", "10:45pm", "½ ¼ ¾ ² ³ ⅓", "1st 2nd 3rd 4th", "0x1F 0b1010",
    "١٢٣ ٤٥٦", "一二三 四五六",
    # emoji and symbols
    "I ❤️ whales 🐋🐳", "👨‍👩‍👧 family", "👍🏽 thumbs", "🇺🇸 flag", "😀😃😄😁", "♠♣♥♦ ★☆", "→ ← ↑ ↓ ⇒",
    # control and invisible characters
    "nul\x00char", "bell\x07char", "esc\x1b[31mred\x1b[0m", "del\x7fchar", "zero\u200bwidth space",
    "zero\u200cwidth\u200dnon-joiner", "bom\ufeffhere", "soft\u00adhyphen", "replacement\ufffdchar",
    "\x01\x02\x03\x04", "left\u200eto\u200fright", "c1\x85control\x9fchars", "private\ue000use",
    "noncharacter\ufdd0", "tab\tinside\tline",
    # special tokens in text
    "[MASK]", "the [MASK] whale", "[mask] lowercase", "[CLS] hello [SEP]", "[PAD][PAD]", "[UNK]", "[ MASK ]",
    "##ing", "un##known", "[MASK][MASK]", "x[MASK]y",
    # long words
    "a" * 99, "a" * 100, "a" * 101, "whale" * 20, "whale" * 21, "b" * 300, "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "é" * 100 + " accented run", "e\u0301" * 60,
    "漢" * 150, "ab-" * 60, "x" * 100 + "." + "y" * 100, "🐋" * 120,
    # misc
    "https://example.com/path?query=1&x=2#frag", "someone@example.com", "fn main() { println!(\"hi\"); }",
    "snake_case camelCase PascalCase kebab-case", "C++ C# F# .NET", "#hashtag @mention", "    indented code",
]


def supplement_and_sample_lines():
    """Moby-Dick lines (every 23rd of parts 2..4, deterministic) that the vocabulary was NOT trained on."""
    lines = []
    for part in (2, 3, 4):
        with open(os.path.join(ROOT, "data", "moby-dick", f"moby-dick-{part}.txt"), encoding="utf-8") as f:
            lines += [l.rstrip("\n") for l in f]
    return [l for i, l in enumerate(lines) if i % 23 == 0]


def random_cases(vocab, n, seed):
    rng = random.Random(seed)
    words = [t for t in vocab if not t.startswith("##") and not t.startswith("[") and len(t) > 1]
    pieces = [t[2:] for t in vocab if t.startswith("##")]
    ranges = [(0x20, 0x7E), (0xA0, 0x17F), (0x370, 0x3FF), (0x400, 0x4FF), (0x4E00, 0x4E80), (0x3040, 0x30FF),
              (0x1F300, 0x1F64F), (0x2000, 0x206F), (0x0300, 0x036F), (0x0, 0x1F)]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.45:
                w = rng.choice(words)
                if rng.random() < 0.3:
                    w += rng.choice(pieces)
                if rng.random() < 0.2:
                    w = w.upper() if rng.random() < 0.5 else w.capitalize()
                parts.append(w)
            elif r < 0.75:
                parts.append(rng.choice(",.;:!?'\"()-—…"))
            else:
                lo, hi = rng.choice(ranges)
                parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 4))))
        sep = [" ", "", "  ", "\t"]
        out.append("".join(p + rng.choice(sep) for p in parts))
    return out


def write_encode_cases(out_dir):
    """encode.json: full encodings (special tokens, pairs, truncation, padding) from the tokenizers wheel."""
    import tokenizers
    from tokenizers import Tokenizer

    with open(os.path.join(out_dir, "cases.json"), encoding="utf-8") as f:
        texts = [c["text"] for c in json.load(f)["cases"]]
    texts += ["whale " * 2000, "x" * 10000, "  \t\n  ".join(["a", "b", "c"]) + " " * 500, ""]

    def tok():
        t = Tokenizer.from_file(os.path.join(out_dir, "hf", "tokenizer.json"))
        t.no_truncation()
        t.no_padding()
        return t

    def rec(e):
        return {"ids": e.ids, "type_ids": e.type_ids, "attention_mask": e.attention_mask,
                "offsets": [list(o) for o in e.offsets], "word_ids": e.word_ids}

    t = tok()
    single = [{"text": x, **rec(t.encode(x))} for x in texts]
    pairs = [{"a": a, "b": b, **rec(t.encode(a, b))} for a, b in zip(texts[::2], texts[1::2])]
    truncated = []
    for max_length in (6, 9, 16):
        t = tok()
        t.enable_truncation(max_length=max_length)
        for a, b in zip(texts[::7], texts[3::7]):
            truncated.append({"max_length": max_length, "a": a, "b": b, **rec(t.encode(a, b))})
            truncated.append({"max_length": max_length, "a": a, "b": None, **rec(t.encode(a))})
    t = tok()
    t.enable_padding()
    batches = []
    for i in range(0, 60, 5):
        group = texts[i:i + 5]
        batches.append({"texts": group, "rows": [rec(e) for e in t.encode_batch(group)]})
    out = {"tokenizers": tokenizers.__version__, "single": single, "pairs": pairs, "truncated": truncated,
           "batches": batches}
    with open(os.path.join(out_dir, "encode.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retrain", action="store_true", help="retrain vocab.txt (differs slightly run to run)")
    ap.add_argument("--encode-only", action="store_true", help="only write encode.json (needs only tokenizers)")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    if args.encode_only:
        write_encode_cases(args.out)
        return

    import tokenizers
    import transformers
    from transformers import BertTokenizerFast
    from transformers.models.bert import BertTokenizerLegacy

    os.makedirs(args.out, exist_ok=True)
    vocab_path = os.path.join(args.out, "vocab.txt")
    if args.retrain or not os.path.exists(vocab_path):
        from tokenizers import BertWordPieceTokenizer
        train_file = os.path.join(args.out, "train.tmp.txt")
        with open(os.path.join(ROOT, "data", "moby-dick", "moby-dick-1.txt"), encoding="utf-8") as f:
            text = f.read()
        with open(train_file, "w", encoding="utf-8") as f:
            f.write(text + "\n" + "\n".join(SUPPLEMENT * 3) + "\n")
        wp = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
        wp.train([train_file], vocab_size=3000, min_frequency=2, limit_alphabet=1000,
                 special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False)
        os.remove(train_file)
        vocab = sorted(wp.get_vocab().items(), key=lambda kv: kv[1])
        assert [i for _, i in vocab] == list(range(len(vocab)))
        with open(vocab_path, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(t + "\n" for t, _ in vocab))
    with open(vocab_path, encoding="utf-8") as f:
        vocab = [l.rstrip("\n") for l in f]

    fast = BertTokenizerFast(vocab=vocab_path)
    assert len(fast) == len(vocab), f"fast tokenizer did not load the vocabulary ({len(fast)} != {len(vocab)})"
    slow = BertTokenizerLegacy(vocab_file=vocab_path)
    assert len(slow) == len(vocab)

    hf_dir = os.path.join(args.out, "hf")
    fast.save_pretrained(hf_dir)
    for extra in ("special_tokens_map.json", "vocab.txt"):  # keep only tokenizer.json + tokenizer_config.json
        p = os.path.join(hf_dir, extra)
        if os.path.exists(p):
            os.remove(p)
    with open(os.path.join(hf_dir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    tj["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}
    tj["padding"] = {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                     "pad_type_id": 0, "pad_token": "[PAD]"}
    os.makedirs(os.path.join(args.out, "hf_truncating"), exist_ok=True)
    with open(os.path.join(args.out, "hf_truncating", "tokenizer.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(tj, f, ensure_ascii=False, indent=2)
        f.write("\n")

    texts = CASES + SUPPLEMENT + supplement_and_sample_lines() + random_cases(vocab, 120, seed=1851)
    seen, unique = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    cases, diffs = [], []
    backend = fast.backend_tokenizer
    for t in unique:
        f_ids = fast.encode(t, add_special_tokens=False)
        assert f_ids == backend.encode(t, add_special_tokens=False).ids
        s_ids = slow.encode(t, add_special_tokens=False)
        decoded = backend.decode(f_ids, skip_special_tokens=False)
        cases.append({"text": t, "fast": f_ids, "slow": s_ids, "decoded": decoded})
        if f_ids != s_ids:
            diffs.append({"text": t, "fast": fast.convert_ids_to_tokens(f_ids),
                          "slow": slow.convert_ids_to_tokens(s_ids)})
    out = {
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "vocab_size": len(vocab),
        "fast_vs_slow": diffs,
        "cases": cases,
    }
    with open(os.path.join(args.out, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_unk = sum(1 for c in cases if 1 in c["fast"])
    print(f"{len(cases)} sentences ({n_unk} with [UNK]), vocab {len(vocab)}; fast != slow on {len(diffs)}:",
          file=sys.stderr)
    for d in diffs:
        print(f"  {d['text']!r}\n    fast {d['fast']}\n    slow {d['slow']}", file=sys.stderr)
    write_encode_cases(args.out)


if __name__ == "__main__":
    main()
