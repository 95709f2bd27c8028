#!/usr/bin/env bash
# tools/check_seed_unet.sh: the full-size parity check of the seed UNet (celebhq_text_cond,
# 118,506,500 parameters) against PyTorch, too heavy for CI on pocl: PyTorch writes the
# reference (output loss, every gradient, three Adam steps; about 1.4 GB, in $TMPDIR), then
# test_models runs its unet_seed case on it and prints the worst errors.
#   tools/check_seed_unet.sh [build-dir]      (needs python3-torch; about 10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
ref="${TMPDIR:-/tmp}/ldmcl-seed-unet.safetensors"
[ -f "$ref" ] || /usr/bin/python3 tools/refgen/make_refs.py --seed-unet "$ref"
LDMCL_SEED_UNET_REF="$ref" "$build/tests/test_models"
