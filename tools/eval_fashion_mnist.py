#!/usr/bin/env python3
"""tools/eval_fashion_mnist.py: how recognisable a text-conditioned Fashion-MNIST model's images are.

1. A classifier (a small CNN, PyTorch on the CPU) is trained on the real Fashion-MNIST training split
   read from Debian's IDX files (apt install dataset-fashion-mnist), or loaded from --classifier when
   that file exists. Its accuracy on the real test split, per class, is the ceiling of step 3.
2. ldmcl-sample makes --per-class images for each class prompt ("a photo of a sneaker", ...).
3. Each prompt's images are classified: the fraction classified as the prompted class.
4. A Frechet distance between the generated images and the real test images in the classifier's
   penultimate (128-d) feature space (FID's formula with this classifier instead of Inception), and,
   as the floor it is compared with, the same distance between an equally large real training
   subset and the test split.
5. The autoencoder's ceiling: the model folder's autoencoder (loaded into tools/refgen/ae_torch.py)
   reconstructs the real test images (a VQ-VAE through its codebook, as the LDM's latent cache
   holds them, and without it; a VAE from its mean, as the cache holds them), and the classifier
   grades the reconstructions: an LDM on these latents can hardly do better than that.

    /usr/bin/python3 tools/eval_fashion_mnist.py --model runs/fashion-mnist/model \\
        [--sampler build/ldmcl-sample] [--per-class 100] [--steps 50] [--cfg-scale 5] \\
        [--sampling-method ddim] [--scheduler discrete] \\
        [--classifier build/data/fashion_mnist_classifier.pt] [--work DIR] [--json FILE] \\
        [--extra-prompt "a photo of a zorb=sneaker" ...]

Needs PyTorch, NumPy and Pillow (Debian: python3-torch python3-pil). The numbers are printed as a
Markdown table and, with --json, written to a file.
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle boot"]
PROMPTS = ["a photo of a t-shirt", "a photo of a pair of trousers", "a photo of a pullover",
           "a photo of a dress", "a photo of a coat", "a photo of a sandal", "a photo of a shirt",
           "a photo of a sneaker", "a photo of a bag", "a photo of an ankle boot"]


def read_idx(path):
    """An IDX file (gzip'ed) as a NumPy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, kind, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or kind != 0x08:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(source, prefix):
    images = read_idx(os.path.join(source, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(source, f"{prefix}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1), \
        torch.from_numpy(labels.astype(np.int64))


class Classifier(nn.Module):
    """Three 3x3 conv layers with batch norm, then a 128-d feature layer and the class logits."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.b1 = nn.BatchNorm2d(32)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.b2 = nn.BatchNorm2d(64)
        self.c3 = nn.Conv2d(64, 128, 3, padding=1)
        self.b3 = nn.BatchNorm2d(128)
        self.fc = nn.Linear(128 * 3 * 3, 128)
        self.out = nn.Linear(128, 10)
        self.drop = nn.Dropout(0.3)

    def features(self, x):
        x = (x - 0.286) / 0.353
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)   # 14
        x = F.max_pool2d(F.relu(self.b2(self.c2(x))), 2)   # 7
        x = F.max_pool2d(F.relu(self.b3(self.c3(x))), 2)   # 3
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x):
        return self.out(self.drop(self.features(x)))


def train_classifier(x, y, epochs, seed):
    torch.manual_seed(seed)
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * (len(x) // 128))
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        total = 0.0
        for i in range(len(x) // 128):
            idx = perm[i * 128:(i + 1) * 128]
            xb = x[idx]
            # a random shift of up to 2 pixels: a classifier less tied to exact positions
            dx, dy = np.random.randint(-2, 3, 2)
            xb = torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        print(f"classifier epoch {epoch + 1}/{epochs}: loss {total / (len(x) // 128):.4f}",
              flush=True)
    model.eval()
    return model


@torch.no_grad()
def run(model, x):
    """Logits and features of x, in batches."""
    logits, feats = [], []
    for i in range(0, len(x), 500):
        f = model.features(x[i:i + 500])
        feats.append(f)
        logits.append(model.out(f))
    return torch.cat(logits), torch.cat(feats).double().numpy()


def sqrtm_psd(a):
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet(f1, f2):
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    r1 = sqrtm_psd(s1)
    cross = sqrtm_psd(r1 @ s2 @ r1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross))


def read_model_ini(path):
    """The sections of a model folder's model.ini as dicts of strings."""
    sections, cur = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in ";#":
                continue
            if line.startswith("["):
                cur = sections.setdefault(line.strip("[]"), {})
            elif "=" in line and cur is not None:
                k, v = line.split("=", 1)
                cur[k.strip()] = v.strip()
    return sections


def autoencoder_ceiling(model_dir, classifier, x, y):
    """Classifier accuracy per class on the autoencoder's reconstructions of x, and their PSNR: a
    dict of named ways of encoding, the first one the latents the LDM trains on (a VQ-VAE's
    "codebook" and "no codebook"; a VAE's "mean")."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "refgen"))
    from ae_torch import Autoencoder  # noqa: E402
    ini = read_model_ini(os.path.join(model_dir, "model.ini"))["autoencoder"]
    lists = ("down_channels", "mid_channels", "down_sample", "attn_down")
    cfg = {k: (json.loads(v.replace("True", "true").replace("False", "false")) if k in lists
               else v if k == "kind" else int(v)) for k, v in ini.items()
           if k != "checkpoint" and not k.startswith("latent_")}
    cfg["im_channels"] = 1
    ae = Autoencoder(cfg)
    path = os.path.join(model_dir, "autoencoder.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header, data = json.loads(f.read(n)), f.read()
    state = {k: torch.from_numpy(np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]],
                                               np.float32).reshape(v["shape"]).copy())
             for k, v in header.items() if k != "__metadata__"}
    ae.load_state_dict(state)
    ae.eval()
    out = {}
    with torch.no_grad():
        z = ae.encoder(x * 2 - 1)
        ways = ((("codebook", ae.quantize(z)[0]), ("no codebook", z)) if cfg["kind"] == "vqvae"
                else (("mean", torch.chunk(z, 2, dim=1)[0]),))
        for name, lat in ways:
            rec = (ae.decode(lat).clamp(-1, 1) + 1) / 2
            pred = run(classifier, rec)[0].argmax(1)
            acc = [float((pred[y == c] == c).float().mean()) for c in range(10)]
            psnr = float(10 * np.log10(1 / ((rec - x) ** 2).mean().item()))
            out[name] = {"per_class": acc, "mean": float(np.mean(acc)), "psnr": psnr}
    return out


def read_png(path):
    im = Image.open(path).convert("L")
    if im.size != (28, 28):
        sys.exit(f"{path}: {im.size[0]}x{im.size[1]}, expected 28x28")
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).unsqueeze(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the model folder ldmcl-train wrote")
    ap.add_argument("--sampler", default="build/ldmcl-sample")
    ap.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--classifier", default="build/data/fashion_mnist_classifier.pt")
    ap.add_argument("--epochs", type=int, default=6, help="classifier training epochs")
    ap.add_argument("--per-class", type=int, default=100, help="generated images per prompt")
    ap.add_argument("--batch-size", type=int, default=50, help="ldmcl-sample's --batch-size")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg-scale", type=float, default=5.0)  # as the demo samples
    ap.add_argument("--sampling-method", default="ddim", help="any of ldmcl-sample's")
    ap.add_argument("--scheduler", default="discrete", help="the sigma schedule of the sigma-space samplers")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--work", default=None, help="where the generated PNGs go (default MODEL/eval)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--extra-prompt", action="append", default=[], metavar="TEXT=CLASS",
                    help="also grade TEXT's images as CLASS (one of the ten; repeatable; a "
                         "LoRA's new word, say): reported apart, not in the mean or the distance")
    ap.add_argument("--no-autoencoder-ceiling", action="store_true",
                    help="skip grading the autoencoder's reconstructions of the test images")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.per_class % args.batch_size:
        sys.exit("--per-class must be a multiple of --batch-size")

    x_train, y_train = load_split(args.source, "train")
    x_test, y_test = load_split(args.source, "t10k")
    if os.path.exists(args.classifier):
        model = Classifier()
        model.load_state_dict(torch.load(args.classifier))
        model.eval()
        print(f"classifier: {args.classifier}")
    else:
        t0 = time.time()
        model = train_classifier(x_train, y_train, args.epochs, seed=0)
        os.makedirs(os.path.dirname(os.path.abspath(args.classifier)), exist_ok=True)
        torch.save(model.state_dict(), args.classifier + ".tmp")
        os.replace(args.classifier + ".tmp", args.classifier)
        print(f"classifier trained in {time.time() - t0:.0f} s, saved to {args.classifier}")
    logits, test_feats = run(model, x_test)
    pred = logits.argmax(1)
    real_acc = [float((pred[y_test == c] == c).float().mean()) for c in range(10)]

    work = args.work or os.path.join(args.model, "eval")
    gen_acc, gen_feats, t0 = [], [], time.time()
    for c, prompt in enumerate(PROMPTS):
        d = os.path.join(work, CLASSES[c].replace(" ", "_"))
        os.makedirs(d, exist_ok=True)
        cmd = [args.sampler, "-m", args.model, "-p", prompt, "--steps", str(args.steps),
               "--cfg-scale", str(args.cfg_scale), "--sampling-method", args.sampling_method,
               "--scheduler", args.scheduler,
               "-s", str(args.seed + 1000 * c), "-b", str(args.per_class // args.batch_size),
               "--batch-size", str(args.batch_size), "-o", os.path.join(d, "%03d.png")]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        x = torch.stack([read_png(os.path.join(d, f"{i + 1:03d}.png"))
                         for i in range(args.per_class)])
        lg, feats = run(model, x)
        gen_acc.append(float((lg.argmax(1) == c).float().mean()))
        gen_feats.append(feats)
        print(f"{prompt}: {gen_acc[-1] * 100:.0f}% classified as {CLASSES[c]}", flush=True)
    extra_acc = []
    for k, spec in enumerate(args.extra_prompt):
        prompt, _, cls = spec.rpartition("=")
        if not prompt or cls not in CLASSES:
            sys.exit(f"--extra-prompt {spec!r}: TEXT=CLASS, CLASS one of {', '.join(CLASSES)}")
        c = CLASSES.index(cls)
        d = os.path.join(work, f"extra{k}")
        os.makedirs(d, exist_ok=True)
        cmd = [args.sampler, "-m", args.model, "-p", prompt, "--steps", str(args.steps),
               "--cfg-scale", str(args.cfg_scale), "--sampling-method", args.sampling_method,
               "--scheduler", args.scheduler,
               "-s", str(args.seed + 1000 * (len(PROMPTS) + k)),
               "-b", str(args.per_class // args.batch_size),
               "--batch-size", str(args.batch_size), "-o", os.path.join(d, "%03d.png")]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        x = torch.stack([read_png(os.path.join(d, f"{i + 1:03d}.png"))
                         for i in range(args.per_class)])
        counts = np.bincount(run(model, x)[0].argmax(1).numpy(), minlength=10)
        extra_acc.append((prompt, cls, float(counts[c]) / args.per_class, counts.tolist()))
        print(f"{prompt}: {counts[c] * 100 // args.per_class}% classified as {cls} (all classes: "
              + ", ".join(f"{CLASSES[j]} {counts[j]}" for j in range(10) if counts[j]) + ")",
              flush=True)
    sample_s = time.time() - t0
    gen_feats = np.concatenate(gen_feats)
    fd = frechet(gen_feats, test_feats)
    g = torch.Generator().manual_seed(0)
    subset = torch.randperm(len(x_train), generator=g)[:len(gen_feats)]
    fd_real = frechet(run(model, x_train[subset])[1], test_feats)

    ceiling = None if args.no_autoencoder_ceiling else \
        autoencoder_ceiling(args.model, model, x_test, y_test)
    ways = list(ceiling) if ceiling else []
    print("\n| prompt | classified as the prompted class | classifier on real test images |"
          + (f" on their reconstructions ({' / '.join(ways)}) |" if ceiling else ""))
    print("|---|---|---|" + ("---|" if ceiling else ""))
    for c in range(10):
        extra = (" " + " / ".join(f"{ceiling[w]['per_class'][c] * 100:.0f}%" for w in ways)
                 + " |") if ceiling else ""
        print(f"| {PROMPTS[c]} | {gen_acc[c] * 100:.0f}% | {real_acc[c] * 100:.1f}% |" + extra)
    extra = (" " + " / ".join(f"{ceiling[w]['mean'] * 100:.1f}%" for w in ways) + " |"
             ) if ceiling else ""
    print(f"| **mean** | **{np.mean(gen_acc) * 100:.1f}%** | {np.mean(real_acc) * 100:.1f}% |" + extra)
    for prompt, cls, acc, _ in extra_acc:
        print(f"| {prompt} (graded as {cls}) | {acc * 100:.0f}% | |" + (" |" if ceiling else ""))
    if ceiling:
        print("\nautoencoder reconstructions of the test images: PSNR "
              + ", ".join(f"{ceiling[w]['psnr']:.2f} dB ({w})" for w in ways))
    print(f"\nFrechet distance in the classifier's feature space, {len(gen_feats)} generated vs "
          f"the 10,000 test images: {fd:.2f} (real training images, same count, vs test: "
          f"{fd_real:.2f})")
    print(f"sampling: {args.per_class} images per prompt, {args.sampling_method} {args.steps} "
          f"steps, cfg {args.cfg_scale}, {sample_s:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"per_prompt": dict(zip(PROMPTS, gen_acc)), "mean": float(np.mean(gen_acc)),
                       "classifier_real_test": dict(zip(CLASSES, real_acc)),
                       "frechet": fd, "frechet_real_floor": fd_real,
                       "per_class": args.per_class, "steps": args.steps,
                       "cfg_scale": args.cfg_scale, "sampling_method": args.sampling_method,
                       "sampling_seconds": sample_s, "autoencoder_ceiling": ceiling,
                       "extra_prompts": [{"prompt": p, "class": c, "accuracy": a, "counts": n}
                                         for p, c, a, n in extra_acc]}, f,
                      indent=1)


if __name__ == "__main__":
    main()
