#!/usr/bin/env bash
# tools/check_sd_full.sh: the full-size Stable Diffusion checks, too heavy for CI on pocl. For SD
# 1.5 and SD 2.1 (the published configs, random weights), diffusers writes a whole single-file
# checkpoint (F16, about 2 GB each) and one UNet forward at 64x64 latents, batch 1, in float64
# (tools/refgen/make_sd_refs.py --full); then test_sd_checkpoint loads the file as users would and
# compares its forward (bar 1e-4 norm-wise), printing the error and the time.
#   tools/check_sd_full.sh [build-dir] [sd15|sd21 ...]
# Needs a Python with torch, diffusers 0.31 and transformers 4.40 (make_sd_refs.py's docstring);
# $PYTHON names it (default python3). About 4 GB of disk in $TMPDIR and 12 GB of memory.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
kinds=${*:-sd15 sd21}
dir="${TMPDIR:-/tmp}/ldmcl-sd-full"
mkdir -p "$dir"
for kind in $kinds; do
    [ -f "$dir/$kind-reference.safetensors" ] ||
        "${PYTHON:-python3}" tools/refgen/make_sd_refs.py --full "$kind" --out "$dir"
    LDMCL_SD_FULL="$dir/$kind" "$build/tests/test_sd_checkpoint"
done
