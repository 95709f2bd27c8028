#!/usr/bin/env python3
"""tools/refgen/make_refs.py: writes the PyTorch reference files the op tests compare against.

    python3 tools/refgen/make_refs.py [--out tests/ref] [family ...]

Needs PyTorch on the CPU (Debian: apt install python3-torch). Each op family gets
tests/ref/<family>.safetensors. Every case stores, in float32:
    <case>.in.<name>    the inputs (activations and parameters), drawn with a fixed seed
    <case>.out          the op's result
    <case>.dy           a random upstream gradient
    <case>.grad.<name>  d sum(out * dy) / d input, for the inputs that take a gradient
and the metadata entry <case> holds a JSON object: the op, its parameters, the input names in
order and which of them take a gradient. Results are computed in float64 from the float32 inputs,
so the reference carries no float32 rounding of its own. The files are small (kilobytes) and
committed; CI does not need PyTorch. The families live in refs_ops.py and refs_models.py, what
needs more than PyTorch in refs_reference.py, the shared Writer in refs_common.py.
"""
import argparse
import os
import sys
import zlib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the families register themselves, in this order, when their modules are imported
import refs_ops  # noqa: E402,F401
import refs_models  # noqa: E402,F401
from refs_common import FAMILIES, Writer  # noqa: E402
from refs_reference import converted, reference_pipeline, seed_unet  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "ref"))
    ap.add_argument("families", nargs="*", help=f"default: all of {', '.join(FAMILIES)}")
    ap.add_argument("--reference-repo", help="a checkout of the reference repository: also write "
                    "the converted-checkpoint references and the reference model folder with its "
                    "samples (needs einops, transformers 4.x, PyYAML and --ldmcl-lib)")
    ap.add_argument("--ldmcl-lib", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                         "build", "libldmcl.so"),
                    help="ldmcl's shared library, whose random numbers the reference pipeline's "
                    "sampling draws (with --reference-repo)")
    ap.add_argument("--seed-unet", metavar="PATH", help="only write the full-size seed UNet "
                    "reference (about 1.4 GB) to PATH")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.seed_unet:
        seed_unet(args.seed_unet)
        return
    os.makedirs(args.out, exist_ok=True)
    for name in FAMILIES:
        if args.families and name not in args.families:
            continue
        w = Writer(seed=zlib.crc32(name.encode()))
        w.out_dir = args.out
        FAMILIES[name](w)
        w.save(os.path.join(args.out, f"{name}.safetensors"))
    if args.reference_repo:
        converted(args.out, args.reference_repo)
        reference_pipeline(args.out, args.reference_repo, args.ldmcl_lib)


if __name__ == "__main__":
    main()
