#!/usr/bin/env python3
"""tools/convert_reference.py: converts a checkpoint of the reference implementation
(explainingai-code/StableDiffusion-PyTorch: a torch.save'd state_dict, .pth) to safetensors that
ldmcl loads by name.

    python3 tools/convert_reference.py ddpm_ckpt_text_cond_clip.pth unet.safetensors \\
        [--kind unet|vqvae|vae|discriminator]

Needs PyTorch on the CPU (Debian: apt install python3-torch). Tensors are written as float32
under their state_dict names; the kind and the source file go into the metadata. BatchNorm's
num_batches_tracked counters (discriminator) are left out: with the fixed momentum 0.1 nothing
reads them. Loading is restricted to tensors (weights_only) where this PyTorch supports it,
since a .pth is a pickle.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "refgen"))
import st  # noqa: E402


def load_state_dict(path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # PyTorch before 1.13 has no weights_only
        obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise SystemExit(f"{path}: not a state_dict of tensors")
    return obj


def convert(src, dst, kind):
    """src (a reference .pth state_dict) -> dst (safetensors, float32, metadata kind and source).
    Returns the number of tensors and of parameters written."""
    sd = load_state_dict(src)
    dropped = [k for k in sd if k.endswith(".num_batches_tracked")]
    tensors = {k: v.detach().to(torch.float32).contiguous().numpy() for k, v in sd.items()
               if k not in dropped}
    if dropped:
        print(f"left out {len(dropped)} BatchNorm num_batches_tracked counters")
    st.write(dst, tensors, {"format": "ldmcl", "kind": kind,
                            "source": os.path.basename(src),
                            "converted_by": "tools/convert_reference.py"})
    return len(tensors), sum(v.size for v in tensors.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", help="reference checkpoint (.pth state_dict)")
    ap.add_argument("output", help="safetensors file to write")
    ap.add_argument("--kind", default="unet", choices=["unet", "vqvae", "vae", "discriminator"])
    args = ap.parse_args()
    n, count = convert(args.input, args.output, args.kind)
    print(f"{args.output}: {n} tensors, {count} parameters")


if __name__ == "__main__":
    main()
