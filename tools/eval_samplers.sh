#!/usr/bin/env bash
# tools/eval_samplers.sh MODEL_DIR [OUT_DIR]: grades samplers on a Fashion-MNIST model with
# tools/eval_fashion_mnist.py (a CNN trained on the real images classifies 100 images per class
# prompt; a Frechet distance in its feature space) and prints a Markdown table: each sampler at
# the step count people use it with, guidance 5 as the demo samples, the same seeds. The README's
# table of samplers came from this script (on the default model, pocl on a 2-vCPU VM).
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
echo "| sampler | steps | scheduler | mean | shirts | Fréchet distance | sampling time (1,000 images) |"
echo "|---|---|---|---|---|---|---|"
for r in $runs; do
    IFS=: read -r method steps scheduler <<<"$r"
    /usr/bin/python3 - "$out/$method-$steps-$scheduler.json" "$method" "$steps" "$scheduler" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
shirt = d["per_prompt"]["a photo of a shirt"]
print(f"| `{sys.argv[2]}` | {sys.argv[3]} | {sys.argv[4]} | {100 * d['mean']:.1f}% | "
      f"{100 * shirt:.0f}% | {d['frechet']:.1f} | {d['sampling_seconds']:.0f} s |")
PY
done
