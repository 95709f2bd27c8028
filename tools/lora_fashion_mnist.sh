#!/usr/bin/env bash
# tools/lora_fashion_mnist.sh [plain|prior]: the README's LoRA experiment. On the default's model
# (trained by tools/demo_fashion_mnist.sh into runs/fashion-mnist/model) it
#   1. writes data/fashion-mnist-zorb: the sneakers of data/fashion-mnist/train, each captioned
#      "a photo of a zorb" (a word the model never saw); with `prior`,
#      data/fashion-mnist-zorb-prior in kohya's layout: 2_zorb/ (600 of those sneakers, twice per
#      epoch) and 1_classes/ (2,400 training images of all ten classes, their own captions);
#   2. grades the pretrained model (tools/eval_fashion_mnist.py: the ten class prompts and "a
#      photo of a zorb" graded as sneaker) into runs/fashion-mnist-lora/before.json;
#   3. trains configs/fashion_mnist_lora.ini (_prior.ini) (LoRA rank 8 on the UNet, 300 steps;
#      --resume);
#   4. grades the LoRA's model folder (the adapters merged in) into OUT/after.json
#      (OUT: runs/fashion-mnist-lora, runs/fashion-mnist-lora-prior).
#   EVAL_ARGS="--per-class 100 --steps 50"   passed to eval_fashion_mnist.py (its defaults)
# Needs PyTorch for grading (Debian: python3-torch python3-pil).
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-plain}
case "$variant" in
plain) suffix="" config=configs/fashion_mnist_lora.ini ;;
prior) suffix="-prior" config=configs/fashion_mnist_lora_prior.ini ;;
*)
    echo "lora: plain or prior, not '$variant'" >&2
    exit 2
    ;;
esac
base=runs/fashion-mnist/model
out=runs/fashion-mnist-lora$suffix
[ -f "$base/unet.safetensors" ] || {
    echo "lora: $base is missing: run tools/demo_fashion_mnist.sh first" >&2
    exit 1
}
data=data/fashion-mnist-zorb
if [ ! -f "$data/.prepared" ]; then
    rm -rf "$data"
    mkdir -p "$data/zorb"
    for png in data/fashion-mnist/train/sneaker/*.png; do
        stem=$(basename "$png" .png)
        cp "$png" "$data/zorb/$stem.png"
        echo "a photo of a zorb" >"$data/zorb/$stem.txt"
    done
    echo "lora: $data: $(ls "$data/zorb" | grep -c png) sneakers captioned \"a photo of a zorb\""
    touch "$data/.prepared"
fi
if [ "$variant" = prior ] && [ ! -f "$data-prior/.prepared" ]; then
    rm -rf "$data-prior"
    mkdir -p "$data-prior/2_zorb" "$data-prior/1_classes"
    for png in $(ls "$data"/zorb/*.png | head -600); do
        cp "$png" "${png%.png}.txt" "$data-prior/2_zorb/"
    done
    for class in data/fashion-mnist/train/*/; do
        for png in $(ls "$class"*.png | head -240); do
            name=$(basename "$class")-$(basename "$png" .png)
            cp "$png" "$data-prior/1_classes/$name.png"
            cp "${png%.png}.txt" "$data-prior/1_classes/$name.txt"
        done
    done
    touch "$data-prior/.prepared"
fi
mkdir -p "$out"
# shellcheck disable=SC2086
grade() {
    /usr/bin/python3 tools/eval_fashion_mnist.py --model "$1" --work "$out/eval-$2" \
        --json "$out/$2.json" --no-autoencoder-ceiling \
        --extra-prompt "a photo of a zorb=sneaker" ${EVAL_ARGS:-}
}
[ -f "$out/before.json" ] || grade "$base" before
build/ldmcl-train "$config" --resume
grade "$out/model" after
