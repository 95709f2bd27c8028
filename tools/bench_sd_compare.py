#!/usr/bin/env python3
"""tools/bench_sd_compare.py: Stable Diffusion 1.5 on the CPU, side by side in one run: ldmcl
(ldmcl-bench --bench sd --model FILE), stable-diffusion.cpp (PyPI's stable-diffusion-cpp-python,
which builds it from source, CPU backend) and diffusers (PyTorch on the CPU), on the same
random-weight single file (tools/refgen/make_sd_refs.py --full sd15 writes it).

    tools/bench_sd_compare.py --model /tmp/ldmcl-sd-full/sd15.safetensors \\
        [--ldmcl-bench build/ldmcl-bench] [--sdcpp-python VENV/bin/python] [--diffusers-python P]

Seconds per guided sampling step (classifier-free guidance: the UNet on 2 samples) at 256x256 and
512x512, and the VAE decode of one image:
  ldmcl: its profiling-event medians (--warmup, --repeat);
  stable-diffusion.cpp: wall time of a txt2img run with 2 and with 4 steps (Euler), the
    difference halved (the text encoder, VAE and loading cancel out), and a run's VAE decode time
    from its log;
  diffusers: wall time of UNet2DConditionModel forwards at batch 2 and AutoencoderKL decodes
    (warm-up 1, median of --repeat), in float32, torch's threads = the CPU's cores.
Every figure on the same machine in one run; say which machine with them.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

SDCPP = r'''
import sys, time
from stable_diffusion_cpp import StableDiffusion
model, side, steps, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# every core, as ldmcl (pocl) and diffusers use: sd.cpp's own default (its count of physical
# cores) ran on one thread of this 2-vCPU VM
sd = StableDiffusion(model_path=model, verbose=True, n_threads=int(sys.argv[5]))
t = time.time()
sd.generate_image(prompt="a lighthouse at dawn", width=side, height=side, sample_steps=steps,
                  cfg_scale=7.0, sample_method="euler", seed=42)
print("WALL", time.time() - t)
'''

DIFFUSERS = r'''
import json, statistics, sys, time, torch
from diffusers import AutoencoderKL, UNet2DConditionModel
torch.set_num_threads(int(sys.argv[1]))
unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3).eval()
vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
    layers_per_block=2, latent_channels=4).eval()
out = {}
def timed(fn, n=int(sys.argv[3])):
    fn()
    ts = []
    for _ in range(n):
        t = time.time(); fn(); ts.append(time.time() - t)
    return statistics.median(ts)
with torch.no_grad():
    for side in [int(x) for x in sys.argv[2].split(",")]:
        lat = side // 8
        x, c = torch.randn(2, 4, lat, lat), torch.randn(2, 77, 768)
        out[f"step_{side}"] = timed(lambda: unet(x, torch.tensor([500.0, 500.0]), c))
        z = torch.randn(1, 4, lat, lat)
        out[f"vae_{side}"] = timed(lambda: vae.decode(z))
print("JSON", json.dumps(out))
'''


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode:
        sys.exit(f"{cmd[0]} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ldmcl-bench", default=os.path.join(HERE, "..", "build", "ldmcl-bench"))
    ap.add_argument("--sdcpp-python", help="a Python with stable-diffusion-cpp-python")
    ap.add_argument("--diffusers-python", help="a Python with torch and diffusers")
    ap.add_argument("--vocab", default=os.path.join(HERE, "..", "build", "data",
                                                     "bpe_simple_vocab_16e6.txt.gz"))
    ap.add_argument("--sides", default="256,512", help="image sides for sd.cpp and diffusers")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sides = [int(x) for x in args.sides.split(",")]
    rows = {}
    text = run([args.ldmcl_bench, "--bench", "sd", "--model", args.model, "--warmup",
                str(args.warmup), "--repeat", str(args.repeat)])
    for side, ms in re.findall(r"(\d+)x\d+, guided step \(UNet at batch 2\): (\d+) ms", text):
        rows.setdefault(int(side), {})["ldmcl_step"] = int(ms) / 1000
    for side, ms in re.findall(r"(\d+)x\d+, VAE decode of one image: (\d+) ms", text):
        rows.setdefault(int(side), {})["ldmcl_vae"] = int(ms) / 1000
    print(text)
    if args.sdcpp_python:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(SDCPP)
        for side in sides:
            walls, log = [], ""
            for steps in (2, 4):
                log = run([args.sdcpp_python, f.name, args.model, str(side), str(steps),
                           args.vocab, str(os.cpu_count())])
                walls.append(float(re.findall(r"WALL ([0-9.]+)", log)[-1]))
            rows.setdefault(side, {})["sdcpp_step"] = (walls[1] - walls[0]) / 2
            m = re.findall(r"latent \d+ decoded, taking ([0-9.]+)s", log) or \
                re.findall(r"decode.*?([0-9.]+) ?s", log)
            if m:
                rows[side]["sdcpp_vae"] = float(m[-1])
        os.unlink(f.name)
    if args.diffusers_python:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(DIFFUSERS)
        out = run([args.diffusers_python, f.name, str(os.cpu_count()), args.sides,
                   str(args.repeat)])
        os.unlink(f.name)
        d = json.loads(re.findall(r"JSON (.*)", out)[-1])
        for side in sides:
            rows.setdefault(side, {})["diffusers_step"] = d[f"step_{side}"]
            rows[side]["diffusers_vae"] = d[f"vae_{side}"]
    print("side   seconds per guided step (ldmcl / sd.cpp / diffusers)   VAE decode (same order)")
    for side in sorted(rows):
        r = rows[side]
        f = lambda k: f"{r[k]:.2f}" if k in r else "-"
        print(f"{side:4d}   {f('ldmcl_step'):>8} / {f('sdcpp_step'):>8} / {f('diffusers_step'):>8}"
              f"   {f('ldmcl_vae'):>7} / {f('sdcpp_vae'):>7} / {f('diffusers_vae'):>7}")


if __name__ == "__main__":
    main()
