#!/usr/bin/env bash
# tools/fetch_clip_vocab.sh [DEST_DIR]: puts OpenAI's CLIP BPE vocabulary
# (bpe_simple_vocab_16e6.txt.gz, MIT-licensed) into DEST_DIR (default build/data), taking it out of
# the open-clip-torch wheel on PyPI and checking its SHA-256. The tokenizer test and the demo use
# it; ldmcl itself never downloads anything. Needs python3 with pip (Debian: python3-pip).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-build/data}
file=$dest/bpe_simple_vocab_16e6.txt.gz
sha=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
if [ -f "$file" ] && echo "$sha  $file" | sha256sum -c --quiet 2>/dev/null; then
    exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check -q -d "$tmp" \
    open_clip_torch==3.3.0
python3 -m zipfile -e "$tmp"/open_clip_torch-3.3.0-py3-none-any.whl "$tmp/wheel"
cp "$tmp/wheel/open_clip/bpe_simple_vocab_16e6.txt.gz" "$file.part"
if ! echo "$sha  $file.part" | sha256sum -c --quiet; then
    rm -f "$file.part"
    echo "fetch_clip_vocab: the vocabulary in the wheel has another SHA-256" >&2
    exit 1
fi
mv "$file.part" "$file"
echo "fetch_clip_vocab: $file"
