#!/usr/bin/env python3
"""tools/refgen/make_tokenizer_refs.py: writes tests/ref/clip_tokenizer_corpus.jsonl, the ids
Hugging Face's CLIPTokenizer (the reference's tokenizer: slow, no ftfy) gives a corpus of prompts
with the real CLIP vocabulary (OpenAI's bpe_simple_vocab_16e6.txt.gz, turned into vocab.json +
merges.txt as the Hugging Face conversion does), padded to 77 with <|endoftext|>. One JSON object
per line: {"text": ..., "ids": [...]}, the ids before the padding (the attention mask's ones). Also reports on how many
prompts CLIPTokenizerFast disagrees (documented in the README).

    PYTHONPATH=<transformers 4.x> python3 tools/refgen/make_tokenizer_refs.py BPE.txt.gz
"""
import gzip
import json
import os
import random
import sys
import tempfile


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
          + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def hf_files(bpe_path, out_dir):
    """vocab.json and merges.txt from OpenAI's file (what openai/clip-vit-base-patch16 ships)."""
    merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


CLASSES = ["t-shirt", "top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle boot"]
ADJECTIVES = ["red", "blue", "faded", "vintage", "oversized", "tiny", "shiny", "black-and-white",
              "hand-made", "ultra-soft", "100% cotton", "2nd-hand", "xx-large", "waterproof"]
PHRASES = ["a photo of a {}", "a {}", "an image of the {}", "{} on a white background",
           "A {} WITH STRIPES", "the {}, folded", "{}!!!", "is it a {}?", "my {} (size 42)",
           "a {} -- worn", "{}; {}", "\"{}\"", "a {}'s shadow", "two {}s & a {}",
           "close-up of a {} at 3:45pm"]
SPECIAL = [
    "", " ", "   ", "\t\n", "a  b   c", "  leading and trailing  ", "tab\tseparated\tvalues",
    "new\nline\r\nand\rreturns", "it's", "don't", "I'M HERE", "they'll", "we've", "she'd",
    "you're", "'s 't 're 've 'm 'll 'd", "rock'n'roll", "O'Neil's", "'quoted'", "it\u2019s curly",
    "'\u017f long s", "'K kelvin", "caf\u00e9", "cafe\u0301 (combining)", "na\u00efve", "\u00c5ngstr\u00f6m",
    "stra\u00dfe", "STRASSE", "\u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2", "\u039f\u0394\u039f\u03a3", "\u039f\u0394\u039f\u03a3 \u039f\u0394\u039f\u03a3.",
    "\u03a3", "A\u03a3B", "A\u03a3", "\u0391\u0399\u03a3\u0398\u0397\u03a3\u0399\u03a3", "\u041c\u043e\u0441\u043a\u0432\u0430 \u2014 \u0433\u043e\u0440\u043e\u0434",
    "\u6771\u4eac\u30bf\u30ef\u30fc", "\u4e2d\u6587\u5b57\u7b26\u6d4b\u8bd5", "\ud55c\uad6d\uc5b4 \ubb38\uc7a5", "\u1100\u1161\u11a8 jamo",
    "\u0130stanbul", "\u0131\u015f\u0131k", "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8", "\u13a0\u13a1\u13a2 Cherokee", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0661\u0662\u0663",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u0967\u0968\u0969", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22", "emoji \U0001f642\U0001f44d\U0001f3fd",
    "family \U0001f468\u200d\U0001f469\u200d\U0001f467", "flags \U0001f1eb\U0001f1f7\U0001f1ef\U0001f1f5", "\u2764\ufe0f love",
    "\uff11\uff12\uff13 fullwidth \uff21\uff22\uff23", "\u2160\u2161\u216b roman", "x\u00b2 + y\u00b3 \u00bd \u2153",
    "\U0001d400\U0001d401\U0001d402 math", "\ufb01ne ligature", "\u00a0non-breaking\u00a0space",
    "zero\u200bwidth", "soft\u00adhyphen", "line\u2028separator\u2029para", "control\x01\x07chars",
    "null\x00byte", "replacement\ufffdchar", "bidi \u202eoverride", "<|endoftext|>",
    "a <|startoftext|> b <|endoftext|> c", "<|ENDOFTEXT|>", "<|endoftext|>text<|endoftext|>",
    "<|endoftext", "numbers 1234567890 3.14159 -42 1e-5 0x1F", "$9.99 \u20ac5 \u00a310 \u00a5100",
    "email@example.com http://x.org/a?b=c#d", "C++ & C# | Java; Python: 3.11",
    "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", "...", "?!?!", "\u2026 ellipsis", "\u00ab\u00bb \u201c\u201d",
    "\u00bfQu\u00e9 tal? \u00a1Bien!", "Ma\u00f1ana", "\u00e6\u00f8\u00e5 \u00c6\u00d8\u00c5", "\u1e9e capital sharp s",
    "\u01c4 \u01c5 \u01c6 digraphs", "\u0345 ypogegrammeni", "\u1f88 \u1fbc", "\u2126 ohm \u212a kelvin \u212b angstrom",
    "HELLO World", "camelCaseWord", "snake_case_word", "kebab-case-word", "ALLCAPS123abc",
]


def corpus():
    rng = random.Random(1234)
    prompts = list(SPECIAL)
    while len(prompts) < 900:
        phrase = rng.choice(PHRASES)
        fill = [" ".join(rng.sample(ADJECTIVES, rng.randint(0, 2)) + [rng.choice(CLASSES)]).strip()
                for _ in range(phrase.count("{}"))]
        text = phrase.format(*fill)
        if rng.random() < 0.2:
            text = text.upper()
        if rng.random() < 0.2:
            text = text.replace(" ", "  " * rng.randint(1, 3))
        if rng.random() < 0.15:
            text += " " + rng.choice(SPECIAL[20:])
        prompts.append(text)
    pool = [c for p in SPECIAL for c in p] + list("abcdefghijklmnopqrstuvwxyz      .,'-!?0123456789")
    while len(prompts) < 1000:  # random character soup, some very long
        n = rng.choice([5, 20, 80, 300])
        prompts.append("".join(rng.choice(pool) for _ in range(n)))
    for k in range(20):  # very long prompts (truncated to 77)
        prompts.append(" ".join(rng.choice(CLASSES + ADJECTIVES) for _ in range(40 + 10 * k)))
    return prompts


def main():
    bpe = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "ref", "clip_tokenizer_corpus.jsonl")
    from transformers import CLIPTokenizer, CLIPTokenizerFast
    with tempfile.TemporaryDirectory() as tmp:
        hf_files(bpe, tmp)
        slow = CLIPTokenizer(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"),
                             pad_token="<|endoftext|>")
        fast = CLIPTokenizerFast(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"),
                                 pad_token="<|endoftext|>")
        assert slow.fix_text is None, "uninstall ftfy: the reference's tokenizer runs without it"
        prompts = corpus()
        differ = []
        with open(out, "w", encoding="utf-8") as f:
            for p in prompts:
                enc = slow(p, padding="max_length", max_length=77, truncation=True)
                ids, mask = enc["input_ids"], enc["attention_mask"]
                assert len(ids) == 77
                n = sum(mask)
                assert ids[n:] == [slow.pad_token_id] * (77 - n) and mask[n:] == [0] * (77 - n)
                f.write(json.dumps({"text": p, "ids": ids[:n]}) + "\n")
                if fast(p, padding="max_length", max_length=77, truncation=True)["input_ids"] != ids:
                    differ.append(p)
    print(f"{out}: {len(prompts)} prompts; CLIPTokenizerFast differs on {len(differ)}:")
    for p in differ:
        print("   ", repr(p)[:100])


if __name__ == "__main__":
    main()
