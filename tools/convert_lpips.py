#!/usr/bin/env python3
"""tools/convert_lpips.py: writes the LPIPS perceptual network ldmcl uses (the reference's
models/lpips.py: VGG16 features + the LPIPS v0.1 linear layers) into one safetensors file.

    python3 tools/convert_lpips.py VGG16.pth LIN.pth lpips_vgg.safetensors

VGG16.pth  torchvision's ImageNet VGG16 state_dict (features.N.weight / .bias), e.g. the file
           torchvision downloads for vgg16(pretrained=True) / VGG16_Weights.IMAGENET1K_V1:
           ~/.cache/torch/hub/checkpoints/vgg16-397923af.pth. Get it on a machine with network
           access with: python3 -c "import torchvision; torchvision.models.vgg16(pretrained=True)"
LIN.pth    the LPIPS v0.1 'vgg' linear layers (lin0.model.1.weight ... lin4.model.1.weight):
           the reference repository's models/weights/v0.1/vgg.pth, or lpips/weights/v0.1/vgg.pth
           in the PyPI package `lpips` (pip download lpips; unzip the wheel).

Needs PyTorch on the CPU (Debian: apt install python3-torch); torchvision is not needed. The
output names are the reference LPIPS module's: net.slice1.0.weight ... net.slice5.28.bias,
lin0.model.1.weight ... lin4.model.1.weight. The classifier layers of VGG16 are left out.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "refgen"))
import st  # noqa: E402

# VGG16's feature convs (torchvision indices) and the LPIPS slice each falls in.
SLICES = {0: 1, 2: 1, 5: 2, 7: 2, 10: 3, 12: 3, 14: 3, 17: 4, 19: 4, 21: 4, 24: 5, 26: 5, 28: 5}


def load(path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # PyTorch before 1.13 has no weights_only
        obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise SystemExit(f"{path}: not a state_dict of tensors")
    return obj


def convert(vgg, lin):
    out = {}
    for idx, s in SLICES.items():
        for part in ("weight", "bias"):
            key = f"features.{idx}.{part}"
            if key not in vgg:
                raise SystemExit(f"VGG16 state_dict: '{key}' missing (is it torchvision's vgg16?)")
            out[f"net.slice{s}.{idx}.{part}"] = vgg[key]
    widths = [out[f"net.slice{s}.{i}.bias"].numel() for s, i in
              ((1, 2), (2, 7), (3, 14), (4, 21), (5, 28))]
    for k in range(5):
        key = f"lin{k}.model.1.weight"
        if key not in lin:
            raise SystemExit(f"LPIPS linear layers: '{key}' missing (is it LPIPS v0.1 vgg.pth?)")
        if tuple(lin[key].shape) != (1, widths[k], 1, 1):
            raise SystemExit(f"LPIPS linear layers: '{key}' has shape {tuple(lin[key].shape)}, "
                             f"the VGG stage has {widths[k]} channels")
        out[key] = lin[key]
    return {k: v.detach().to(torch.float32).contiguous().numpy() for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vgg16", help="torchvision VGG16 state_dict (.pth)")
    ap.add_argument("lin", help="LPIPS v0.1 vgg linear layers (.pth)")
    ap.add_argument("output", help="safetensors file to write")
    args = ap.parse_args()
    tensors = convert(load(args.vgg16), load(args.lin))
    st.write(args.output, tensors, {"format": "ldmcl", "kind": "lpips", "version": "0.1",
                                    "net": "vgg16", "source": os.path.basename(args.vgg16) + " + " +
                                    os.path.basename(args.lin),
                                    "converted_by": "tools/convert_lpips.py"})
    print(f"{args.output}: {len(tensors)} tensors, {sum(v.size for v in tensors.values())} values")


if __name__ == "__main__":
    main()
