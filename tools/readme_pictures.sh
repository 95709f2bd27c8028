#!/usr/bin/env bash
# tools/readme_pictures.sh MODEL_DIR [OUT_DIR]: the README's pictures, from the Fashion-MNIST
# default's model folder (tools/demo_fashion_mnist.sh): the ten classes (one row per prompt), one
# prompt under several samplers, img2img at three strengths and inpainting, each a PNG in OUT_DIR
# (default docs/pictures). Every image comes from build/ldmcl-sample with the flags shown beside
# it; the rows are put together with Pillow (/usr/bin/python3, Debian's python3-pil).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tools/readme_pictures.sh MODEL_DIR [OUT_DIR]}
out=${2:-docs/pictures}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
sample=build/ldmcl-sample

# the ten classes: the demo's grid, 2x larger
$sample -m "$model" --prompt-file configs/fashion_mnist_prompts.txt --batch-size 8 --steps 50 \
    --cfg-scale 5 -s 1 -o "$work/classes-%03d.png" --grid "$out/classes.png" --scale 2 >/dev/null

# one prompt, one seed, several samplers (A1111's row of sampler comparisons)
runs=("ddim --steps 50" "euler_a --steps 20" "dpm++2m --scheduler karras --steps 20"
      "heun --scheduler karras --steps 10" "lcm --steps 8" "ddpm")
rows=()
for r in "${runs[@]}"; do
    name=$(echo "$r" | tr ' ' '_')
    # shellcheck disable=SC2086
    $sample -m "$model" -p "a photo of an ankle boot" --cfg-scale 5 -s 7 --batch-size 6 \
        --sampling-method $r -o "$work/s-$name.png" --grid "$work/row-$name.png" >/dev/null
    rows+=("$work/row-$name.png" "--sampling-method $r")
done

# img2img and inpainting from a real test image (the first ankle boot of the test split)
/usr/bin/python3 - "$work/boot.png" "$work/mask.png" <<'PY'
import gzip, sys
from PIL import Image
src = "/usr/share/datasets/fashion-mnist/"
labels = gzip.open(src + "t10k-labels-idx1-ubyte.gz").read()[8:]
images = gzip.open(src + "t10k-images-idx3-ubyte.gz").read()[16:]
i = labels.index(9)  # ankle boot
Image.frombytes("L", (28, 28), images[i * 784:(i + 1) * 784]).save(sys.argv[1])
mask = Image.new("L", (28, 28), 0)
mask.paste(255, (0, 0, 28, 14))  # repaint the top half
mask.save(sys.argv[2])
PY
for s in 0.4 0.6 0.8; do
    $sample -m "$model" -i "$work/boot.png" --strength $s -p "a photo of a sneaker" --cfg-scale 5 \
        -s 3 --batch-size 6 --sampling-method euler_a --steps 20 -o "$work/i2i-$s.png" \
        --grid "$work/row-i2i-$s.png" >/dev/null
    rows+=("$work/row-i2i-$s.png" "-i boot.png --strength $s -p 'a photo of a sneaker'")
done
$sample -m "$model" -i "$work/boot.png" --mask "$work/mask.png" --strength 1 \
    -p "a photo of a bag" --cfg-scale 5 -s 3 --batch-size 6 --steps 50 \
    -o "$work/inpaint.png" --grid "$work/row-inpaint.png" >/dev/null

/usr/bin/python3 - "$out" "$work" "${rows[@]}" <<'PY'
import sys
from PIL import Image, ImageDraw
out, work, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
K, PAD = 3, 6

def compose(path, items, lead=None):
    """items: (image path, caption); each row enlarged K times, its caption beside it."""
    ims = [(Image.open(p).convert("L"), c) for p, c in items]
    if lead:
        ims = [(Image.open(lead[0]).convert("L"), lead[1])] + ims
    w = max(im.width for im, _ in ims) * K + 2 * PAD + 7 * max(len(c) for _, c in ims)
    h = sum(im.height * K + PAD for im, _ in ims) + PAD
    canvas = Image.new("L", (w, h), 255)
    d, y = ImageDraw.Draw(canvas), PAD
    for im, caption in ims:
        canvas.paste(im.resize((im.width * K, im.height * K), Image.NEAREST), (PAD, y))
        d.rectangle((PAD - 1, y - 1, PAD + im.width * K, y + im.height * K), outline=128)
        d.text((2 * PAD + im.width * K, y + im.height * K // 2 - 5), caption, fill=0)
        y += im.height * K + PAD
    canvas.save(path)

pairs = list(zip(rows[0::2], rows[1::2]))
compose(f"{out}/samplers.png", [p for p in pairs if "--sampling-method" in p[1]])
compose(f"{out}/img2img.png", [p for p in pairs if "--strength" in p[1]],
        lead=(f"{work}/boot.png", "the init image (a real test image)"))
compose(f"{out}/inpainting.png",
        [(f"{work}/mask.png", "--mask mask.png: white repaints (the top half)"),
         (f"{work}/row-inpaint.png", "-i boot.png --mask mask.png -p 'a photo of a bag'")],
        lead=(f"{work}/boot.png", "the init image (boot.png)"))
PY
ls -l "$out"
