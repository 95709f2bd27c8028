#!/usr/bin/env bash
# tools/golden_runs.sh: SHA-256s of what two fixed training runs write, for changes that must not
# change behaviour (a refactor): run it before and after, and compare the lists.
#   smoke:   configs/fashion_mnist_smoke.ini on the first 500 Fashion-MNIST training images
#   default: configs/fashion_mnist.ini on the first 12,000, with 100 steps in each stage
#            (max_train_steps = 100 twice; disc_start = 50 and validation_steps = 100 so that the
#            discriminator and a validation grid are in it)
# Each run gets a fresh folder; the lines are `sha256  run/file` for the loss logs (train_log.csv
# without its wall-clock column), the autoencoder and discriminator, the last checkpoint, the
# validation grids and every file of the model folder.
#   tools/golden_runs.sh [BUILD_DIR] [smoke|default|all]      (default: build all)
#   KEEP=1  keep the work folder (printed)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
which=${2:-all}
work=$(mktemp -d "${TMPDIR:-/tmp}/ldmcl-golden.XXXXXX")
[ -n "${KEEP:-}" ] && echo "golden: work folder $work" >&2 || trap 'rm -rf "$work"' EXIT
vocab="$build/data/bpe_simple_vocab_16e6.txt.gz"
[ -f "$vocab" ] || { echo "golden: $vocab is missing (tools/setup.sh)" >&2; exit 2; }

# run NAME CONFIG LIMIT [SED...]: the config with the dataset, vocabulary and output made
# absolute, then the sed expressions applied; prints the hashes.
run() {
    local name=$1 config=$2 limit=$3
    shift 3
    local data="$work/data-$limit"
    [ -d "$data" ] || python3 tools/prepare_fashion_mnist.py "$data" --limit "$limit" >/dev/null
    mkdir -p "$work/$name"
    sed -e "s#^path = .*#path = $data/train#" -e "s#^vocab = .*#vocab = $vocab#" \
        -e "s#^output_dir = .*#output_dir = out#" "$@" "$config" >"$work/$name/run.ini"
    (cd "$work/$name" && "$build/ldmcl-train" run.ini >train.out 2>&1) ||
        { echo "golden: the $name run failed:" >&2; tail -5 "$work/$name/train.out" >&2; exit 1; }
    local out="$work/$name/out"
    cut -d, -f1-3 "$out/train_log.csv" >"$work/$name/train_log.losses"
    (
        cd "$work/$name"
        sha256sum out/autoencoder_log.csv train_log.losses out/autoencoder.safetensors \
            out/discriminator.safetensors
        find out/checkpoints -name 'checkpoint-*' | sort | tail -1 | xargs sha256sum
        find out/samples out/model -type f 2>/dev/null | sort | xargs sha256sum
    ) | sed "s#  #  $name/#"
}

if [ "$which" = smoke ] || [ "$which" = all ]; then
    run smoke configs/fashion_mnist_smoke.ini 500
fi
if [ "$which" = default ] || [ "$which" = all ]; then
    # [autoencoder_train] max_train_steps comes before [train]'s in the file: both become 100
    run default configs/fashion_mnist.ini 12000 -e 's/^max_train_steps = .*/max_train_steps = 100/' \
        -e 's/^disc_start = .*/disc_start = 50/' -e 's/^validation_steps = .*/validation_steps = 100/'
fi
