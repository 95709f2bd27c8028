#!/usr/bin/env python3
"""tools/refgen/check_lpips_reference.py: checks tools/refgen/ae_torch.py's LPIPS (from which the
LPIPS test references are made) against the reference repository's own models/lpips.py, at full
size: a random torchvision VGG16 (no download: pretrained weights are swapped for random ones)
and the real LPIPS v0.1 linear layers, which the reference loads from its
models/weights/v0.1/vgg.pth (put them there: the repository ships an empty folder; the PyPI
package lpips has them as lpips/weights/v0.1/vgg.pth). Also checks that tools/convert_lpips.py's names are the reference module's state_dict names. Writes
nothing; prints the largest difference.

    PYTHONPATH=<dir with einops> python3 tools/refgen/check_lpips_reference.py REFERENCE_REPO
"""
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main():
    repo = sys.argv[1]
    sys.path.insert(0, repo)
    torch.manual_seed(5)
    random_vgg = torchvision.models.vgg16()  # random weights, built before the patch below
    torchvision.models.vgg16 = lambda pretrained=False, **kw: random_vgg
    from models import lpips as ref_lpips  # the reference's code, run beside ours
    ref = ref_lpips.LPIPS().eval()
    import ae_torch
    import convert_lpips
    lin = torch.load(os.path.join(repo, "models", "weights", "v0.1", "vgg.pth"), map_location="cpu")
    converted = convert_lpips.convert(random_vgg.state_dict(), lin)
    ours = ae_torch.LPIPS()
    missing = set(ours.state_dict()) - set(converted) - {"shift", "scale"}
    # (the reference's state_dict lists the linear layers twice: lin0 ... and lins.0 ...)
    ref_names = {k for k in ref.state_dict() if not k.startswith(("scaling_layer", "lins."))}
    assert set(converted) == ref_names, set(converted) ^ ref_names
    assert not missing, missing
    ours.load_state_dict({k: torch.from_numpy(v) for k, v in converted.items()}, strict=False)
    worst = 0.0
    for ch in (1, 3):
        a = torch.rand(2, ch, 64, 64) * 2 - 1
        b = torch.rand(2, ch, 64, 64) * 2 - 1
        with torch.no_grad():
            r, o = ref(a, b), ours(a, b)
        worst = max(worst, ((r - o).abs() / r.abs()).max().item())
        print(f"{ch}-channel: reference {r.flatten().tolist()}, ae_torch {o.flatten().tolist()}")
    print(f"largest relative difference {worst:.2e}; names match the reference's state_dict")
    assert worst < 1e-5


if __name__ == "__main__":
    main()
