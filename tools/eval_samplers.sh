#!/usr/bin/env bash
# tools/eval_samplers.sh MODEL_DIR [OUT_DIR]: grades samplers on a Fashion-MNIST model with
# tools/eval_fashion_mnist.py (a CNN trained on the real images classifies 100 images per class
# prompt; a Frechet distance in its feature space) and prints a Markdown table: each sampler at
# the step count people use it with, guidance 5 as the demo samples, the same seeds, and what it
# costs in UNet evaluations (each one batched over the conditional and unconditional inputs).
# The README's table of samplers came from this script (on the default model).
#   SAMPLERS="ddim:50:discrete euler_a:20:discrete ..."   other runs (method:steps:scheduler)
#   PER_CLASS=100                                        images per class prompt
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tools/eval_samplers.sh MODEL_DIR [OUT_DIR]}
out=${2:-$model/eval-samplers}
mkdir -p "$out"
runs=${SAMPLERS:-"ddim:50:discrete euler_a:20:discrete ddim:20:discrete dpm++2m:20:karras heun:10:karras dpm++2s_a:10:karras lcm:8:discrete"}
for r in $runs; do
    IFS=: read -r method steps scheduler <<<"$r"
    json=$out/$method-$steps-$scheduler.json
    [ -f "$json" ] && continue
    echo "eval_samplers: $method, $steps steps, $scheduler" >&2
    /usr/bin/python3 tools/eval_fashion_mnist.py --model "$model" --per-class "${PER_CLASS:-100}" \
        --sampling-method "$method" --steps "$steps" --scheduler "$scheduler" --cfg-scale 5 \
        --no-autoencoder-ceiling --work "$out/images-$method-$steps-$scheduler" --json "$json" \
        >&2
    rm -rf "$out/images-$method-$steps-$scheduler"
done
echo "| sampler | steps | scheduler | UNet evaluations per image | mean | shirts | Fréchet distance |"
echo "|---|---|---|---|---|---|---|"
for r in $runs; do
    IFS=: read -r method steps scheduler <<<"$r"
    case $method in
    heun | dpm2 | dpm++2s_a) calls=$((2 * steps - 1)) ;; # a second evaluation but at the last step
    *) calls=$steps ;;
    esac
    /usr/bin/python3 - "$out/$method-$steps-$scheduler.json" "$method" "$steps" "$scheduler" \
        "$calls" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
shirt = d["per_prompt"]["a photo of a shirt"]
print(f"| `{sys.argv[2]}` | {sys.argv[3]} | {sys.argv[4]} | {sys.argv[5]} | "
      f"{100 * d['mean']:.1f}% | {100 * shirt:.0f}% | {d['frechet']:.1f} |")
PY
done
