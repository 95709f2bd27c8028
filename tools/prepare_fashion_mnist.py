#!/usr/bin/env python3
"""tools/prepare_fashion_mnist.py: turns Debian's Fashion-MNIST (apt install dataset-fashion-mnist;
/usr/share/datasets/fashion-mnist/*.gz) into ldmcl's dataset layout: one 28x28 gray PNG per image
and a same-stem .txt of captions written from its label in several phrasings (one per line; the
trainer picks one per use):

    DEST/train/<class>/<index>.png   DEST/train/<class>/<index>.txt     (60,000)
    DEST/test/<class>/<index>.png    ...                                 (10,000)

    python3 tools/prepare_fashion_mnist.py DEST [--source DIR] [--limit N]

Plain Python (gzip, struct, zlib): no PyTorch or PIL needed. Safe to run again: existing files
are rewritten identically.
"""
import argparse
import gzip
import os
import re
import struct
import sys
import zlib

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle boot"]
# Other names a caption may use for a class.
SYNONYMS = {"t-shirt": ["t-shirt", "top", "tee"], "trouser": ["pair of trousers", "trouser"],
            "pullover": ["pullover", "sweater"], "dress": ["dress"], "coat": ["coat", "jacket"],
            "sandal": ["sandal"], "shirt": ["shirt"], "sneaker": ["sneaker", "running shoe"],
            "bag": ["bag", "handbag"], "ankle boot": ["ankle boot", "boot"]}
PHRASES = ["a photo of a {}", "a {}", "a black and white photo of a {}", "a picture of the {}",
           "{}", "a small {}", "an image of a {}", "a low-resolution photo of a {}"]


def article(phrase, noun):
    """The phrase with the noun, "a" before a vowel turned into "an"."""
    return re.sub(r"\b([Aa]) ([aeiou])", r"\1n \2", phrase.format(noun))


def captions(label, index):
    """Five captions for an image: phrasings and synonyms picked by its index."""
    names = SYNONYMS[CLASSES[label]]
    out = []
    for k in range(5):
        phrase = PHRASES[(index * 7 + k * 3) % len(PHRASES)]
        noun = names[(index + k) % len(names)]
        out.append(article(phrase, noun))
    return out


def read_idx(path, ndim):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    if magic != 0x800 + ndim:
        sys.exit(f"{path}: not an IDX file with {ndim} dimensions")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def png_gray(width, height, pixels):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest")
    ap.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=0, help="at most N images per split (0: all)")
    args = ap.parse_args()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = os.path.join(args.source, f"{prefix}-images-idx3-ubyte.gz")
        labels = os.path.join(args.source, f"{prefix}-labels-idx1-ubyte.gz")
        if not os.path.exists(images):
            sys.exit(f"{images} is missing: apt install dataset-fashion-mnist")
        (n, h, w), pixels = read_idx(images, 3)
        (nl,), label_bytes = read_idx(labels, 1)
        if nl != n:
            sys.exit(f"{labels}: {nl} labels for {n} images")
        count = min(n, args.limit) if args.limit else n
        for c in CLASSES:
            os.makedirs(os.path.join(args.dest, split, c.replace(" ", "_")), exist_ok=True)
        for i in range(count):
            label = label_bytes[i]
            stem = os.path.join(args.dest, split, CLASSES[label].replace(" ", "_"), f"{i:05d}")
            with open(stem + ".png", "wb") as f:
                f.write(png_gray(w, h, pixels[i * h * w:(i + 1) * h * w]))
            with open(stem + ".txt", "w", encoding="utf-8") as f:
                f.write("\n".join(captions(label, i)) + "\n")
        print(f"{args.dest}/{split}: {count} images in {len(CLASSES)} class folders")


if __name__ == "__main__":
    main()
