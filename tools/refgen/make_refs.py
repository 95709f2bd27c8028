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
committed; CI does not need PyTorch.
"""
import argparse
import json
import math
import os
import sys
import zlib

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

FAMILIES = {}


def family(fn):
    FAMILIES[fn.__name__] = fn
    return fn


def rel_error(got, want):
    """The tests' measure: max |got - want| / max(|want|, 1e-3 max|want|)."""
    got, want = got.detach().double(), want.detach().double()
    top = want.abs().max().item() if want.numel() else 0.0
    if top == 0.0:
        return 0.0 if torch.equal(got, want) else float("inf")
    return ((got - want).abs() / want.abs().clamp(min=1e-3 * top)).max().item()


def norm_error(got, want):
    """||got - want|| / ||want|| over a tensor (0 when both are zero)."""
    got, want = got.detach().double(), want.detach().double()
    den = want.norm().item()
    num = (got - want).norm().item()
    return 0.0 if num == 0.0 else (num / den if den > 0 else float("inf"))


class Writer:
    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.tensors = {}
        self.meta = {}

    def randn(self, *shape, away_from_zero=0.0):
        x = torch.randn(*shape, generator=self.gen, dtype=torch.float32)
        if away_from_zero:
            x = torch.sign(x) * (x.abs() + away_from_zero)
        return x

    def case(self, name, op, inputs, fn, grads=None, **params):
        """inputs: list of (name, float32 tensor); fn(*float64 tensors) -> output tensor.
        grads: names of the inputs that take a gradient (default: all)."""
        names = [n for n, _ in inputs]
        grads = names if grads is None else grads
        args = []
        for n, v in inputs:
            a = v.detach().to(torch.float64).clone()
            a.requires_grad_(n in grads)
            args.append(a)
        out = fn(*args)
        dy = self.randn(*out.shape).to(torch.float64)
        if grads:
            (out * dy).sum().backward()
        for (n, v), a in zip(inputs, args):
            self.tensors[f"{name}.in.{n}"] = v
            if n in grads:
                self.tensors[f"{name}.grad.{n}"] = a.grad.to(torch.float32)
        self.tensors[f"{name}.out"] = out.detach().to(torch.float32)
        self.tensors[f"{name}.dy"] = dy.to(torch.float32)
        # PyTorch's own float32 error on this case, by the tests' measure: where the math is
        # ill-conditioned (attention gradients) even PyTorch misses 1e-4, and the tests hold
        # ldmcl to at most twice PyTorch's float32 error there.
        args32 = [v.detach().clone().requires_grad_(n in grads) for n, v in inputs]
        out32 = fn(*args32)
        if grads:
            (out32 * dy.to(torch.float32)).sum().backward()
        grad_err = max([rel_error(a32.grad, a.grad) for (n, _), a32, a in zip(inputs, args32, args)
                        if n in grads] or [0.0])
        self.meta[name] = json.dumps({"op": op, "inputs": names, "grads": grads,
                                      "torch_fp32_out_err": rel_error(out32, out),
                                      "torch_fp32_grad_err": grad_err, **params})

    def save(self, path):
        st.write(path, {k: v.numpy() for k, v in self.tensors.items()}, self.meta)
        print(f"{path}: {len(self.meta)} cases, {os.path.getsize(path)} bytes")


@family
def elementwise(w):
    acts = {
        "silu": F.silu,
        "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
        "gelu": F.gelu,
        "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
        "relu": F.relu,
        "exp": torch.exp,
    }
    for shape in [(2, 3, 5, 7), (1,), (3, 111)]:
        tag = "x".join(map(str, shape))
        for act, fn in acts.items():
            # Keep leaky_relu's kink away from finite-difference steps.
            x = w.randn(*shape, away_from_zero=0.05 if act in ("leaky_relu", "relu") else 0.0)
            w.case(f"{act}_{tag}", act, [("x", x * 2)], fn)
        a, b = w.randn(*shape), w.randn(*shape)
        w.case(f"add_{tag}", "add", [("a", a), ("b", b)], lambda a, b: a + b)
        w.case(f"sub_{tag}", "sub", [("a", a), ("b", b)], lambda a, b: a - b)
        w.case(f"mul_{tag}", "mul", [("a", a), ("b", b)], lambda a, b: a * b)
        w.case(f"scale_{tag}", "scale", [("x", a)], lambda x: 0.37 * x, alpha=0.37)
        w.case(f"affine_{tag}", "affine", [("x", a)], lambda x: 2 * x - 1, alpha=2.0, beta=-1.0)
    for shape in [(2, 3, 5, 7), (1, 1, 1, 1), (3, 4, 9)]:
        tag = "x".join(map(str, shape))
        x, v = w.randn(*shape), w.randn(*shape[:2])
        w.case(f"add_channels_{tag}", "add_channels", [("x", x), ("v", v)],
               lambda x, v: x + v.reshape(v.shape + (1,) * (x.dim() - 2)))
    # The same tensor on both sides: gradients of one input accumulate within one node.
    a = w.randn(4, 5)
    w.case("mul_self_4x5", "mul_self", [("a", a)], lambda a: a * a)
    # detach: only the first factor carries a gradient.
    w.case("mul_detach_3x7", "mul_detach", [("a", w.randn(3, 7))], lambda a: a * a.detach(),
           finite_differences=False)


@family
def reduce(w):
    for n in [1, 257, 1000]:
        x, t = w.randn(n), w.randn(n)
        w.case(f"sum_{n}", "sum", [("x", x)], lambda x: x.sum().reshape(1))
        w.case(f"mean_{n}", "mean", [("x", x)], lambda x: x.mean().reshape(1))
        w.case(f"mse_{n}", "mse", [("a", x), ("b", t)], lambda a, b: F.mse_loss(a, b).reshape(1))
        # Keep |a - b| away from L1's kink.
        t2 = x + w.randn(n, away_from_zero=0.05)
        w.case(f"l1_{n}", "l1", [("a", x), ("b", t2)], lambda a, b: F.l1_loss(a, b).reshape(1))
    x = w.randn(2, 1, 5, 5)
    for target in [0.0, 1.0]:
        w.case(f"mse_const_{int(target)}", "mse_const", [("x", x)],
               lambda x: F.mse_loss(x, torch.full_like(x, target)).reshape(1), target=target)
    # Losses against a target that takes no gradient.
    a, b = w.randn(3, 4, 6), w.randn(3, 4, 6)
    w.case("mse_target_3x4x6", "mse", [("a", a), ("b", b)], lambda a, b: F.mse_loss(a, b).reshape(1),
           grads=["a"])


@family
def linear(w):
    for lead, i, o in [((2, 3), 5, 7), ((1,), 1, 1), ((4,), 33, 17), ((2, 77), 16, 24)]:
        tag = "x".join(map(str, lead + (i, o)))
        x, wt, b = w.randn(*lead, i), w.randn(o, i) * 0.3, w.randn(o)
        w.case(f"linear_{tag}", "linear", [("x", x), ("w", wt), ("b", b)], F.linear)
        w.case(f"linear_nobias_{tag}", "linear", [("x", x), ("w", wt)], lambda x, wt: F.linear(x, wt))
    # Fewer rows than entries (a vocabulary: per-row gradient sums, repeated tokens) and more.
    for v, d, idx in [(10, 8, [[3, 1, 3], [9, 0, 3]]), (77, 5, [list(range(77))]), (1, 1, [[0]]),
                      (500, 4, [[49, 7, 499, 7, 0], [7, 49, 1, 2, 3]])]:
        index = torch.tensor(idx, dtype=torch.float32)
        table = w.randn(v, d)
        w.case(f"embedding_{v}x{d}", "embedding", [("index", index), ("w", table)],
               lambda i, t: F.embedding(i.long(), t), grads=["w"])


@family
def layout(w):
    for shape in [(2, 3, 5), (1, 1, 1), (3, 17, 33)]:
        w.case("transpose12_" + "x".join(map(str, shape)), "transpose12", [("x", w.randn(*shape))],
               lambda x: x.transpose(1, 2).contiguous())
    a, b = w.randn(2, 3, 4, 5), w.randn(2, 2, 4, 5)
    w.case("concat_dim1", "concat", [("a", a), ("b", b)], lambda a, b: torch.cat([a, b], 1), dim=1)
    a, b = w.randn(1, 3, 1), w.randn(2, 3, 1)
    w.case("concat_dim0", "concat", [("a", a), ("b", b)], lambda a, b: torch.cat([a, b], 0), dim=0)
    x = w.randn(2, 5, 3)
    w.case("narrow_dim1", "narrow", [("x", x)], lambda x: x.narrow(1, 1, 2), dim=1, start=1, length=2)
    w.case("narrow_dim2", "narrow", [("x", x)], lambda x: x.narrow(2, 2, 1), dim=2, start=2, length=1)


@family
def norm(w):
    # H*W = 1 with 3 channels per group: with 2 the gradient of x is eps/var times its terms,
    # which no float32 computation resolves (PyTorch's float32 neither).
    for shape, groups in [((2, 4, 3, 5), 2), ((1, 6, 1, 1), 2), ((2, 64, 8, 8), 32), ((3, 4, 7), 4),
                          ((2, 1, 5, 5), 1)]:
        tag = "x".join(map(str, shape)) + f"_g{groups}"
        x = w.randn(*shape) * 2 + 0.5
        gamma, beta = 1 + 0.5 * w.randn(shape[1]), w.randn(shape[1])
        w.case(f"group_norm_{tag}", "group_norm", [("x", x), ("gamma", gamma), ("beta", beta)],
               lambda x, g, b, G=groups: F.group_norm(x, G, g, b, 1e-5), groups=groups, eps=1e-5)
    for shape in [(2, 3, 8), (2, 77, 32), (5, 300)]:
        tag = "x".join(map(str, shape))
        x = w.randn(*shape) * 2 - 0.5
        gamma, beta = 1 + 0.5 * w.randn(shape[-1]), w.randn(shape[-1])
        w.case(f"layer_norm_{tag}", "layer_norm", [("x", x), ("gamma", gamma), ("beta", beta)],
               lambda x, g, b: F.layer_norm(x, (x.shape[-1],), g, b, 1e-5), eps=1e-5)
    # (3, 2, 1, 1): 3 values per channel, for the reason given for GroupNorm above.
    for shape in [(4, 3, 5, 5), (3, 2, 1, 1), (3, 5, 6)]:
        tag = "x".join(map(str, shape))
        x = w.randn(*shape) * 1.5 + 0.3
        c = shape[1]
        gamma, beta = 1 + 0.5 * w.randn(c), w.randn(c)
        rm, rv = 0.1 * w.randn(c), 1 + 0.2 * w.randn(c).abs()
        for training in [1, 0]:
            w.case(f"batch_norm_{'train' if training else 'eval'}_{tag}", "batch_norm",
                   [("x", x), ("gamma", gamma), ("beta", beta), ("running_mean", rm),
                    ("running_var", rv)],
                   lambda x, g, b, m, v, t=training: F.batch_norm(
                       x, m.detach().clone(), v.detach().clone(), g, b, bool(t), 0.1, 1e-5),
                   grads=["x", "gamma", "beta"], training=training, momentum=0.1, eps=1e-5)

    # F.normalize over channels (LPIPS), norms well above eps.
    for shape in [(2, 5, 3, 4), (1, 64, 2, 2), (3, 2, 5)]:
        x = w.randn(*shape)
        w.case("l2_normalize_" + "x".join(map(str, shape)), "l2_normalize", [("x", x)],
               lambda x: F.normalize(x, dim=1), eps=1e-12)


def distinct(w, *shape, step=0.05):
    """Values spaced by step in random order: no ties within a pooling window, and none that a
    finite-difference step could swap."""
    n = math.prod(shape)
    perm = torch.randperm(n, generator=w.gen).to(torch.float32)
    return ((perm - n / 2) * step).reshape(shape)


@family
def pool(w):
    # VGG16's 2x2 s2 pools, odd sizes (floor mode), and overlapping 3x3 s2 windows.
    for shape, k, s in [((2, 3, 8, 8), 2, 2), ((1, 2, 7, 5), 2, 2), ((2, 2, 7, 7), 3, 2),
                        ((1, 1, 3, 3), 3, 1), ((1, 2, 4, 6), 2, 1)]:
        tag = "x".join(map(str, shape)) + f"_k{k}s{s}"
        w.case(f"max_pool2d_{tag}", "max_pool2d", [("x", distinct(w, *shape))],
               lambda x, k=k, s=s: F.max_pool2d(x, k, s), k=k, s=s)


@family
def vq(w):
    # The reference's quantize: argmin of torch.cdist. Rows near a codebook entry, and far ones.
    for r, k, d in [(10, 5, 3), (64, 20, 3), (7, 300, 4), (1, 1, 2)]:
        e = w.randn(k, d)
        z = e[torch.randint(0, k, (r,), generator=w.gen)] + 0.3 * w.randn(r, d)
        z[: r // 3] = 3 * w.randn(r // 3, d)
        w.case(f"vq_nearest_{r}x{d}_k{k}", "vq_nearest", [("z", z), ("codebook", e)],
               lambda z, e: torch.cdist(z[None], e[None])[0].argmin(-1).to(z.dtype), grads=[])


@family
def conv(w):
    # (N, Cin, H, W, Cout, k, stride, pad): the seed's 3x3 s1 p1, 1x1, 4x4 s2 p1 downsample, odd
    # sizes, C=1, a 1x1 image, and more samples than fit one chunk never (chunks are large).
    for n, cin, h, wd, cout, k, s, p in [(2, 3, 5, 7, 4, 3, 1, 1), (1, 1, 1, 1, 1, 1, 1, 0),
                                          (2, 4, 6, 6, 3, 1, 1, 0), (2, 3, 8, 9, 5, 4, 2, 1),
                                          (3, 2, 5, 5, 2, 3, 2, 0), (1, 5, 4, 4, 1, 3, 1, 1)]:
        tag = f"{n}x{cin}x{h}x{wd}_{cout}k{k}s{s}p{p}"
        x = w.randn(n, cin, h, wd)
        weight = w.randn(cout, cin, k, k) * (1.0 / (cin * k * k) ** 0.5)
        b = w.randn(cout)
        w.case(f"conv2d_{tag}", "conv2d", [("x", x), ("w", weight), ("b", b)],
               lambda x, wt, b, s=s, p=p: F.conv2d(x, wt, b, s, p), stride=s, pad=p)
        w.case(f"conv2d_nobias_{tag}", "conv2d", [("x", x), ("w", weight)],
               lambda x, wt, s=s, p=p: F.conv2d(x, wt, None, s, p), stride=s, pad=p)
    # The reference's upsampler is ConvTranspose2d(C, C, 4, 2, 1); also odd sizes and 3x3 s1.
    for n, cin, h, wd, cout, k, s, p in [(2, 3, 4, 5, 3, 4, 2, 1), (1, 1, 1, 1, 2, 4, 2, 1),
                                          (2, 4, 3, 3, 2, 3, 1, 1), (1, 2, 3, 2, 3, 3, 2, 0)]:
        tag = f"{n}x{cin}x{h}x{wd}_{cout}k{k}s{s}p{p}"
        x = w.randn(n, cin, h, wd)
        weight = w.randn(cin, cout, k, k) * (1.0 / (cin * k * k) ** 0.5)
        b = w.randn(cout)
        w.case(f"conv_transpose2d_{tag}", "conv_transpose2d", [("x", x), ("w", weight), ("b", b)],
               lambda x, wt, b, s=s, p=p: F.conv_transpose2d(x, wt, b, s, p), stride=s, pad=p)


def attention_core(q, k, v, heads, causal=False, mask=None):
    """q [N, L, C], k, v [N, S, C] -> [N, L, C]: softmax(q k^T / sqrt(C/heads)) v per head."""
    n, l, c = q.shape
    s = k.shape[1]
    hd = c // heads
    q = q.reshape(n, l, heads, hd).transpose(1, 2)
    k = k.reshape(n, s, heads, hd).transpose(1, 2)
    v = v.reshape(n, s, heads, hd).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if causal:
        scores = scores.masked_fill(torch.ones(l, s, dtype=torch.bool).triu(1), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(mask.bool()[:, None, None, :], float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, l, c)


@family
def attention(w):
    # Packed self-attention cores: head dims 8, 24, 64; L=1; L=70 spans two query blocks (64)
    # and three key tiles (32); causal as in CLIP.
    for n, l, heads, hd, causal in [(2, 5, 2, 8, 0), (1, 1, 1, 8, 0), (1, 70, 2, 24, 0),
                                    (1, 33, 1, 64, 0), (2, 12, 2, 8, 1), (1, 70, 1, 24, 1)]:
        c = heads * hd
        qkv = w.randn(n, l, 3 * c)
        w.case(f"attention_packed_{n}x{l}_h{heads}x{hd}{'_causal' if causal else ''}",
               "attention_packed", [("qkv", qkv)],
               lambda x, c=c, h=heads, ca=causal: attention_core(x[..., :c], x[..., c:2 * c],
                                                                  x[..., 2 * c:], h, bool(ca)),
               heads=heads, causal=causal)
    # Cross-attention cores over S=77 text tokens, with and without a key padding mask.
    for n, l, s_len, heads, hd, use_mask in [(2, 7, 77, 2, 8, 0), (2, 9, 77, 1, 24, 1),
                                             (1, 1, 5, 1, 64, 0)]:
        c = heads * hd
        q, kv = w.randn(n, l, c), w.randn(n, s_len, 2 * c)
        inputs = [("q", q), ("kv", kv)]
        mask = None
        if use_mask:
            mask = torch.zeros(n, s_len)
            mask[0, 40:] = 1  # padding after token 40 of the first sample
            mask[1, 3:9] = 1
            inputs.append(("mask", mask))
        w.case(f"attention_cross_{n}x{l}x{s_len}_h{heads}x{hd}{'_mask' if use_mask else ''}",
               "attention_cross", inputs,
               lambda q, kv, m=None, c=c, h=heads: attention_core(q, kv[..., :c], kv[..., c:], h,
                                                                  mask=m),
               grads=["q", "kv"], heads=heads)
    # Full nn.MultiheadAttention(batch_first=True): self, causal self, cross with padding mask.
    # The last three: small enough for the GPU simulator (tests/sim/run.sh), drawn after the
    # others so that those stay as they were.
    for n, l, s_len, c, heads, kind in [(2, 9, 9, 24, 3, "self"), (1, 12, 12, 16, 2, "causal"),
                                        (2, 6, 77, 16, 2, "cross"), (1, 3, 3, 8, 2, "self"),
                                        (1, 4, 4, 8, 2, "causal"), (2, 3, 5, 8, 2, "cross")]:
        x = w.randn(n, l, c)
        wi, bi = w.randn(3 * c, c) / math.sqrt(c), w.randn(3 * c) * 0.1
        wo, bo = w.randn(c, c) / math.sqrt(c), w.randn(c) * 0.1
        inputs = [("x", x)]
        if kind == "cross":
            inputs.append(("context", w.randn(n, s_len, c)))
            mask = torch.zeros(n, s_len)
            mask[1, min(50, s_len - 2):] = 1
            inputs.append(("mask", mask))
        inputs += [("in_proj_weight", wi), ("in_proj_bias", bi), ("out_proj_weight", wo),
                   ("out_proj_bias", bo)]

        def mha(*a, kind=kind, heads=heads, c=c, l=l):
            x = a[0]
            if kind == "cross":
                ctx, m, wi, bi, wo, bo = a[1:]
            else:
                ctx, m, (wi, bi, wo, bo) = x, None, a[1:]
            attn_mask = torch.ones(l, l, dtype=torch.bool).triu(1) if kind == "causal" else None
            out, _ = F.multi_head_attention_forward(
                x.transpose(0, 1), ctx.transpose(0, 1), ctx.transpose(0, 1), c, heads, wi, bi,
                None, None, False, 0.0, wo, bo, training=False,
                key_padding_mask=None if m is None else m.bool(), need_weights=False,
                attn_mask=attn_mask)
            return out.transpose(0, 1)

        grads = [name for name, _ in inputs if name != "mask"]
        w.case(f"mha_{kind}_{n}x{l}x{s_len}_c{c}h{heads}", "mha_" + kind, inputs, mha, grads=grads,
               heads=heads)


@family
def misc(w):
    for shape in [(2, 5), (3, 77), (1, 1), (2, 300)]:
        x = w.randn(*shape) * 3
        w.case("softmax_" + "x".join(map(str, shape)), "softmax", [("x", x)],
               lambda x: torch.softmax(x, -1))
    # The reference's get_time_embedding (models/blocks.py), t as integers.
    for t_vals, dim in [([0, 1, 500, 999], 256), ([7, 999], 8), ([3], 2)]:
        t = torch.tensor(t_vals, dtype=torch.float32)

        def emb(t, dim=dim):
            half = dim // 2
            factor = 10000 ** (torch.arange(0, half, dtype=t.dtype) / half)
            e = t.long().to(t.dtype)[:, None].repeat(1, half) / factor
            return torch.cat([torch.sin(e), torch.cos(e)], dim=-1)

        w.case(f"timestep_{len(t_vals)}x{dim}", "timestep", [("t", t)], emb, grads=[], dim=dim,
               T=1000)
    # diffusers' min-SNR-gamma loss weight (train_text_to_image.py, --snr_gamma) as a per-sample
    # scale sqrt(w(t)) of prediction - target, on the mnist schedule (float64 throughout).
    betas = torch.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, 1000, dtype=torch.float64) ** 2
    ab = torch.cumprod(1 - betas, 0)
    t = torch.tensor([0.0, 40.0, 120.0, 999.0])
    x = w.randn(4, 2, 3)
    for gamma, pred in [(5.0, "epsilon"), (1.0, "v_prediction")]:
        def snr_scale(x, t, gamma=gamma, pred=pred):
            snr = ab[t.long()] / (1 - ab[t.long()])
            weight = torch.stack([snr, gamma * torch.ones_like(snr)], dim=1).min(dim=1)[0]
            weight = weight / snr if pred == "epsilon" else weight / (snr + 1)
            return weight.sqrt()[:, None, None].to(x.dtype) * x

        w.case(f"snr_scale_{pred}", "snr_scale", [("x", x), ("t", t)], snr_scale, grads=["x"],
               gamma=gamma, v_prediction=int(pred == "v_prediction"), beta_start=0.0015,
               beta_end=0.0195, T=1000)


class ResBlock(torch.nn.Module):
    """The reference's ResNet sub-block with a time embedding (REFERENCE.md section 3)."""

    def __init__(self, cin, cout, temb, groups):
        super().__init__()
        nn = torch.nn
        self.resnet_conv_first = nn.Sequential(nn.GroupNorm(groups, cin), nn.SiLU(),
                                               nn.Conv2d(cin, cout, 3, 1, 1))
        self.t_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(temb, cout))
        self.resnet_conv_second = nn.Sequential(nn.GroupNorm(groups, cout), nn.SiLU(),
                                                nn.Conv2d(cout, cout, 3, 1, 1))
        self.residual_input_conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x, t_emb):
        h = self.resnet_conv_first(x)
        h = h + self.t_emb_layers(t_emb)[:, :, None, None]
        h = self.resnet_conv_second(h)
        return h + self.residual_input_conv(x)


class AttnBlock(torch.nn.Module):
    """The reference's self-attention then cross-attention sub-blocks."""

    def __init__(self, c, heads, ctx_dim, groups):
        super().__init__()
        nn = torch.nn
        self.attention_norm = nn.GroupNorm(groups, c)
        self.attention = nn.MultiheadAttention(c, heads, batch_first=True)
        self.cross_attention_norm = nn.GroupNorm(groups, c)
        self.cross_attention = nn.MultiheadAttention(c, heads, batch_first=True)
        self.context_proj = nn.Linear(ctx_dim, c)

    def forward(self, x, context):
        n, c, h, w = x.shape
        a = self.attention_norm(x.reshape(n, c, h * w)).transpose(1, 2)
        a, _ = self.attention(a, a, a)
        out = x + a.transpose(1, 2).reshape(n, c, h, w)
        a = self.cross_attention_norm(out.reshape(n, c, h * w)).transpose(1, 2)
        ctx = self.context_proj(context)
        a, _ = self.cross_attention(a, ctx, ctx)
        return out + a.transpose(1, 2).reshape(n, c, h, w)


class SkipStack(torch.nn.Module):
    """Down, middle, up and a skip concatenated as the reference's UpBlockUnet does."""

    def __init__(self, cin, c, cout):
        super().__init__()
        nn = torch.nn
        self.conv_in = nn.Conv2d(cin, c, 3, 1, 1)
        self.down = nn.Conv2d(c, c, 4, 2, 1)
        self.mid = nn.Conv2d(c, c, 3, 1, 1)
        self.up = nn.ConvTranspose2d(c, c, 4, 2, 1)
        self.conv_out = nn.Conv2d(2 * c, cout, 3, 1, 1)

    def forward(self, x):
        s = self.conv_in(x)
        h = self.up(F.silu(self.mid(self.down(s))))
        return self.conv_out(torch.cat([h, s], 1))


def model_case(w, name, module, inputs, target, opt, steps=3, call=None):
    """Loss = mse(module(*inputs), target); its gradients, and the parameters after `steps`
    optimizer steps, in float64 (and PyTorch float32 beside it for the error bar). call(m, *ins)
    runs the module when its forward takes keyword inputs."""
    call = call or (lambda m, *ins: m(*ins))
    params32 = {k: v.detach().clone() for k, v in module.state_dict().items()}
    results = {}
    for dtype in (torch.float64, torch.float32):
        m = module.to(dtype)
        m.load_state_dict({k: v.to(dtype) for k, v in params32.items()})
        ins = [x.to(dtype) for x in inputs]
        out = call(m, *ins)
        loss = F.mse_loss(out, target.to(dtype))
        m.zero_grad()
        loss.backward()
        grads = {k: p.grad.detach().clone() for k, p in m.named_parameters()}
        o = (torch.optim.AdamW if opt.get("decoupled") else torch.optim.Adam)(
            m.parameters(), lr=opt["lr"], weight_decay=opt.get("weight_decay", 0.0),
            eps=opt.get("eps", 1e-8))
        for _ in range(steps):
            o.zero_grad()
            F.mse_loss(call(m, *ins), target.to(dtype)).backward()
            if opt.get("max_grad_norm"):
                torch.nn.utils.clip_grad_norm_(m.parameters(), opt["max_grad_norm"])
            o.step()
        after = {k: p.detach().clone() for k, p in m.named_parameters()}
        results[dtype] = (loss.detach().reshape(1), grads, after, out.detach())
    loss64, grads64, after64, out64 = results[torch.float64]
    loss32, grads32, after32, out32 = results[torch.float32]
    # Elements whose exact gradient is zero (the key bias of attention: softmax ignores a shift of
    # all scores) get Adam updates of lr * sign(rounding noise) in any precision; the comparison
    # of parameters after the steps leaves them out (<case>.skip.<name> marks them with 1).
    skip = {k: (g.abs() <= 1e-12 * max(g.abs().max().item(), 1e-30)).float()
            for k, g in grads64.items()}
    kept = {k: (1 - skip[k]).bool() for k in skip}
    for i, x in enumerate(inputs):
        w.tensors[f"{name}.in.{i}"] = x
    w.tensors[f"{name}.target"] = target
    w.tensors[f"{name}.loss"] = loss64.float()
    w.tensors[f"{name}.out"] = out64.float()
    for k, v in params32.items():
        w.tensors[f"{name}.param.{k}"] = v
    for k in grads64:
        w.tensors[f"{name}.grad.{k}"] = grads64[k].float()
        w.tensors[f"{name}.after.{k}"] = after64[k].float()
        if skip[k].any():
            w.tensors[f"{name}.skip.{k}"] = skip[k]
    w.meta[name] = json.dumps({
        "model": name, "n_inputs": len(inputs), "steps": steps, **opt,
        "torch_fp32_loss_err": rel_error(loss32, loss64),
        "torch_fp32_out_err": rel_error(out32, out64),
        "torch_fp32_out_norm_err": norm_error(out32, out64),
        "torch_fp32_grad_err": max(rel_error(grads32[k], grads64[k]) for k in grads64),
        "torch_fp32_after_err": max(rel_error(after32[k][kept[k]], after64[k][kept[k]])
                                    for k in after64),
        # Norm-wise, per tensor: ||got - want|| / ||want|| for each gradient, and for each
        # parameter's change over the optimizer steps (zero-gradient elements left out).
        "torch_fp32_grad_norm_err": max(norm_error(grads32[k], grads64[k]) for k in grads64),
        "torch_fp32_step_norm_err": max(
            norm_error((after32[k] - params32[k].to(torch.float32))[kept[k]],
                       (after64[k] - params32[k].to(torch.float64))[kept[k]]) for k in after64)})


@family
def models(w):
    torch.manual_seed(1234)
    res = ResBlock(8, 16, 12, 4)
    x, t_emb = w.randn(2, 8, 6, 5), w.randn(2, 12)
    model_case(w, "resblock", res, [x, t_emb], w.randn(2, 16, 6, 5), {"lr": 1e-2})
    attn = AttnBlock(16, 2, 12, 4)
    x, ctx = w.randn(2, 16, 3, 5), w.randn(2, 7, 12)
    model_case(w, "attnblock", attn, [x, ctx], w.randn(2, 16, 3, 5),
               {"lr": 1e-2, "decoupled": 1, "weight_decay": 0.01, "max_grad_norm": 0.5})
    stack = SkipStack(3, 8, 2)
    model_case(w, "skipstack", stack, [w.randn(2, 3, 8, 6)], w.randn(2, 2, 8, 6), {"lr": 1e-2})


@family
def diffusion(w):
    """Schedules, add_noise and sampler steps, from the formulas of REFERENCE.md (float64)."""
    d = torch.float64
    T = 1000
    scheds = {
        "scaled_linear": torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, T, dtype=d) ** 2,
        "scaled_linear_mnist": torch.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, T, dtype=d) ** 2,
        "linear": torch.linspace(1e-4, 0.02, T, dtype=d),
    }
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    scheds["cosine"] = torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(T)], dtype=d)
    for name, betas in scheds.items():
        w.tensors[f"schedule.{name}.betas"] = betas.float()
        w.tensors[f"schedule.{name}.alphas_cumprod"] = torch.cumprod(1 - betas, 0).float()
    betas = scheds["scaled_linear"]
    alphas = 1 - betas
    ab = torch.cumprod(alphas, 0)
    x0, noise = w.randn(3, 2, 4, 4), w.randn(3, 2, 4, 4)
    t = torch.tensor([0.0, 500.0, 999.0])
    ti = t.long()
    out = ab[ti].sqrt()[:, None, None, None] * x0.to(d) + (1 - ab[ti]).sqrt()[:, None, None, None] * noise.to(d)
    for k, v in {"x0": x0, "noise": noise, "t": t, "out": out}.items():
        w.tensors[f"add_noise.{k}"] = v.float()
    xt, eps, z = w.randn(2, 3, 5), w.randn(2, 3, 5), w.randn(2, 3, 5)
    for k, v in {"xt": xt, "eps": eps, "z": z}.items():
        w.tensors[f"step.{k}"] = v
    xt, eps, z = xt.to(d), eps.to(d), z.to(d)
    for tt in [500, 1, 0]:  # the reference's sample_prev_timestep
        x0p = ((xt - (1 - ab[tt]).sqrt() * eps) / ab[tt].sqrt()).clamp(-1, 1)
        mean = (xt - betas[tt] * eps / (1 - ab[tt]).sqrt()) / alphas[tt].sqrt()
        if tt > 0:
            var = (1 - ab[tt - 1]) / (1 - ab[tt]) * betas[tt]
            mean = mean + var.sqrt() * z
        w.tensors[f"ddpm.{tt}.out"] = mean.float()
        w.tensors[f"ddpm.{tt}.x0"] = x0p.float()
    for tt, tp, eta in [(600, 400, 0.0), (600, 400, 0.5), (20, -1, 0.0)]:
        a_t, a_p = ab[tt], (ab[tp] if tp >= 0 else torch.tensor(1.0, dtype=d))
        x0p = (xt - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        sigma = eta * ((1 - a_p) / (1 - a_t)).sqrt() * (1 - a_t / a_p).sqrt()
        prev = a_p.sqrt() * x0p + (1 - a_p - sigma ** 2).clamp(min=0).sqrt() * eps + sigma * z
        w.tensors[f"ddim.{tt}.{tp}.{eta}.out"] = prev.float()
    w.tensors["cfg.out"] = (eps + 7.5 * (z - eps)).float()  # eps_uncond = eps, eps_cond = z
    w.meta["diffusion"] = json.dumps({"T": T})


@family
def unet(w):
    """The reference UNet (tools/refgen/unet_torch.py) at a small configuration, in each
    conditioning variant: output, loss, every gradient and three Adam steps."""
    import unet_torch
    base = dict(im_channels=4, down_channels=[4, 8, 8], mid_channels=[8, 8],
                down_sample=[True, True], attn_down=[True, False], time_emb_dim=8,
                norm_channels=2, num_heads=2, conv_out_channels=4, num_down_layers=2,
                num_mid_layers=1, num_up_layers=1, num_timesteps=1000)
    variants = {"text": dict(text_embed_dim=6), "class": dict(num_classes=3),
                "image": dict(image_cond_input_channels=18, image_cond_output_channels=3),
                "uncond": {}}
    for name, extra in variants.items():
        torch.manual_seed(4321)
        cfg = dict(base, **extra)
        model = unet_torch.UNet(cfg)
        x, t = w.randn(2, 4, 8, 8), torch.tensor([17.0, 903.0])
        inputs, keys = [x, t], []
        if name == "text":
            inputs.append(w.randn(2, 5, 6))
            keys.append("context")
        if name == "class":
            inputs.append(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))  # sample 1: dropped
            keys.append("class_onehot")
        if name == "image":
            inputs.append((torch.rand(2, 18, 16, 16, generator=w.gen) > 0.7).float())
            keys.append("mask")

        def call(m, x, t, *cond, keys=tuple(keys)):
            return m(x, t, **dict(zip(keys, cond)))

        model_case(w, f"unet_{name}", model, inputs, w.randn(2, 4, 8, 8), {"lr": 1e-3},
                   call=call)
        meta = json.loads(w.meta[f"unet_{name}"])
        meta["config"] = cfg
        w.meta[f"unet_{name}"] = json.dumps(meta)


@family
def lpips(w):
    """tools/convert_lpips.py on a VGG16-layout state_dict of small widths (torchvision names) and
    LPIPS linear layers (random), and the LPIPS distances (tools/refgen/ae_torch.py) of two image
    pairs, one- and three-channel: the converted file must give them. The converted file is
    written beside this family's (converted_lpips.safetensors)."""
    import subprocess
    import tempfile
    import ae_torch
    widths = [4, 6, 8, 8, 8]
    torch.manual_seed(31)
    model = ae_torch.LPIPS(widths)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.startswith("lin"):
                p.abs_()
    sd = model.state_dict()
    vgg = {}
    for k, v in sd.items():  # net.sliceS.N.weight -> features.N.weight
        if k.startswith("net."):
            vgg["features." + k.split(".", 2)[2]] = v
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # VGG16 files carry these; the converter drops them
    lin = {k: v for k, v in sd.items() if k.startswith("lin")}
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(vgg, os.path.join(tmp, "vgg16.pth"))
        torch.save(lin, os.path.join(tmp, "vgg.pth"))
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..",
                                                     "convert_lpips.py"),
                        os.path.join(tmp, "vgg16.pth"), os.path.join(tmp, "vgg.pth"),
                        os.path.join(w.out_dir, "converted_lpips.safetensors")], check=True)
    for ch in (1, 3):
        a, b = w.randn(2, ch, 16, 16).clamp(-1, 1), w.randn(2, ch, 16, 16).clamp(-1, 1)
        w.case(f"lpips_{ch}ch", "lpips", [("a", a), ("b", b)],
               lambda a, b, m=model: m.to(a.dtype)(a, b).mean().reshape(1), grads=["a"],
               widths=widths)


@family
def clip_text(w):
    """transformers' CLIPTextModel at tiny random configurations (quick_gelu and gelu), with and
    without padding: the last hidden state, the penultimate layer through the final layer norm
    ("clip skip"), and the gradient of every parameter of an MSE loss on the last hidden state.
    Needs transformers (PYTHONPATH with transformers 4.x)."""
    from transformers import CLIPTextConfig, CLIPTextModel
    configs = {
        "quick": dict(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, max_position_embeddings=12, hidden_act="quick_gelu",
                      layer_norm_eps=1e-5),
        "gelu": dict(vocab_size=60, hidden_size=12, intermediate_size=20, num_hidden_layers=3,
                     num_attention_heads=3, max_position_embeddings=9, hidden_act="gelu",
                     layer_norm_eps=1e-6),
    }
    for name, cfg in configs.items():
        torch.manual_seed(77)
        model = CLIPTextModel(CLIPTextConfig(**cfg)).eval()
        with torch.no_grad():  # HF's initialisation leaves biases and layer norms trivial
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=w.gen))
        s = cfg["max_position_embeddings"] - 1
        ids = torch.randint(0, cfg["vocab_size"], (2, s), generator=w.gen)
        for padded in (0, 1):
            mask = torch.ones(2, s, dtype=torch.long)
            if padded:
                mask[0, s - 3:] = 0
                mask[1, 2:] = 0
            case = f"clip_{name}_{'padded' if padded else 'full'}"
            params32 = {k: v.detach().clone() for k, v in model.named_parameters()}
            target = w.randn(2, s, cfg["hidden_size"])
            res = {}
            for dtype in (torch.float64, torch.float32):
                m = model.to(dtype)
                m.zero_grad()
                torch.set_default_dtype(dtype)  # HF builds its causal mask in the default dtype
                o = m(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                torch.set_default_dtype(torch.float32)
                out = o.last_hidden_state
                skip1 = m.text_model.final_layer_norm(o.hidden_states[-2])
                F.mse_loss(out, target.to(dtype)).backward()
                res[dtype] = (out.detach(), skip1.detach(),
                              {k: p.grad.detach().clone() for k, p in m.named_parameters()})
            (o64, s64, g64), (o32, s32, g32) = res[torch.float64], res[torch.float32]
            w.tensors[f"{case}.in.ids"] = ids.float()
            w.tensors[f"{case}.in.mask"] = mask.float()
            w.tensors[f"{case}.target"] = target
            w.tensors[f"{case}.out"] = o64.float()
            w.tensors[f"{case}.out_skip1"] = s64.float()
            for k, v in params32.items():
                w.tensors[f"{case}.param.{k}"] = v.float()
                w.tensors[f"{case}.grad.{k}"] = g64[k].float()
            # The key projection's bias has no gradient in exact arithmetic: left out here (the
            # test holds it to 1e-4 of the largest gradient's norm).
            top = max(v.norm().item() for v in g64.values())
            w.meta[case] = json.dumps({
                "config": cfg, "padded": padded,
                "torch_fp32_out_norm_err": max(norm_error(o32, o64), norm_error(s32, s64)),
                "torch_fp32_grad_norm_err": max(norm_error(g32[k], g64[k]) for k in g64
                                                if g64[k].norm().item() > 1e-6 * top)})
            model.float()


@family
def image(w):
    """The reference's dataset transform (torchvision Resize(s), CenterCrop(s), ToTensor, 2x - 1)
    of a JPEG and a PNG written here (tests/ref/image_sample.jpg, image_sample.png; PIL decodes
    them with the system's libjpeg-turbo and libpng): shrinking, enlarging, gray and RGB."""
    import numpy as np
    import torchvision.transforms as T
    from PIL import Image
    yy, xx = np.mgrid[0:24, 0:40]
    rgb = np.stack([(xx * 6) % 256, (yy * 10 + xx * 3) % 256, ((xx - yy) * 7) % 256], -1)
    jpg = os.path.join(w.out_dir, "image_sample.jpg")
    png = os.path.join(w.out_dir, "image_sample.png")
    Image.fromarray(rgb.astype(np.uint8)).save(jpg, quality=90)
    Image.fromarray(rgb.astype(np.uint8)[:, :30]).save(png)
    for name, path in (("jpg", jpg), ("png", png)):
        for mode in ("RGB", "L"):
            im = Image.open(path).convert(mode)
            for size in (16, 24, 48):
                t = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor()])(im) * 2 - 1
                key = f"{name}_{mode}_{size}"
                w.tensors[key] = t.float()
                w.meta[key] = json.dumps({"file": os.path.basename(path), "channels": 3 if mode == "RGB" else 1, "size": size})


@family
def latents(w):
    """latent_patch: PyTorch's pixel_unshuffle (patches as channels) of latent batches."""
    for n, c, h, wd, p in [(2, 3, 4, 6, 2), (1, 2, 6, 3, 3), (1, 1, 2, 2, 1)]:
        z = w.randn(n, c, h, wd)
        key = f"patch{p}_{n}x{c}x{h}x{wd}"
        w.tensors[key + ".in"] = z
        w.tensors[key + ".out"] = torch.nn.functional.pixel_unshuffle(z, p)
        w.meta[key] = json.dumps({"p": p})


def ae_step(models, im, noise, cfg, dtype):
    """One generator step and one discriminator step of the reference's autoencoder training in
    dtype: loss terms, gradients, then one Adam step of each optimizer (betas 0.5, 0.999)."""
    import ae_torch
    ae, disc, lpips = (m.to(dtype) for m in models)
    im = im.to(dtype)
    noise = noise.to(dtype) if noise is not None else None
    g_loss, terms, out, q = ae_torch.generator_loss(ae, disc, lpips, im, cfg, noise)
    ae.zero_grad()
    g_loss.backward()
    disc.zero_grad()  # the reference would keep the generator loss's gradient here; ldmcl does not
    d_loss, d_terms = ae_torch.discriminator_loss(disc, out, im, cfg)
    d_loss.backward()
    res = {"loss." + k: v.detach().reshape(1) for k, v in {**terms, **d_terms}.items()}
    res["loss.g_total"], res["loss.d_total"] = g_loss.detach().reshape(1), d_loss.detach().reshape(1)
    res["out"] = out.detach()
    for prefix, m in (("ae", ae), ("disc", disc)):
        for k, p in m.named_parameters():
            res[f"grad.{prefix}.{k}"] = p.grad.detach().clone()
        opt = torch.optim.Adam(m.parameters(), lr=cfg["lr"], betas=(0.5, 0.999))
        opt.step()
        for k, v in m.state_dict().items():
            if not k.endswith("num_batches_tracked"):
                res[f"after.{prefix}.{k}"] = v.detach().clone()
    return res, q


@family
def ae_train(w):
    """The reference's autoencoder training at small configurations (tools/refgen/ae_torch.py):
    a one-channel VQ-VAE and a three-channel KL-VAE, each with the PatchGAN discriminator and
    LPIPS (random weights): every loss term, the output, every gradient of one generator and one
    discriminator step, and the parameters after one Adam step of each."""
    import ae_torch
    base = dict(z_channels=3, codebook_size=6, down_channels=[4, 8, 8], mid_channels=[8, 8],
                down_sample=[True, True], attn_down=[False, True], norm_channels=2, num_heads=2,
                num_down_layers=1, num_mid_layers=1, num_up_layers=1)
    train = dict(acc_steps=2, disc_weight=0.5, codebook_weight=1.0, commitment_beta=0.2,
                 perceptual_weight=1.0, kl_weight=0.1, lr=1e-3, disc_start=0)
    disc_channels, lpips_widths = [4, 8, 8], [4, 6, 8, 8, 8]
    for kind, im_ch, seed in (("vqvae", 1, 7), ("vae", 3, 8)):
        cfg = dict(base, kind=kind, im_channels=im_ch)
        while True:  # reseed until every argmin has a clear margin (float32 picks the same)
            torch.manual_seed(seed)
            ae = ae_torch.Autoencoder(cfg)
            disc = ae_torch.Discriminator(im_ch, disc_channels)
            lpips = ae_torch.LPIPS(lpips_widths)
            with torch.no_grad():
                for k, p in lpips.named_parameters():
                    if k.startswith("lin"):
                        p.abs_()  # the learned LPIPS weights are non-negative
                for m in disc.modules():  # running statistics away from their defaults
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.running_mean.normal_(0, 0.1)
                        m.running_var.uniform_(0.5, 1.5)
            im = torch.rand(2, im_ch, 16, 16) * 2 - 1
            noise = torch.randn(2, 3, 4, 4) if kind == "vae" else None
            if kind == "vae":
                break
            with torch.no_grad():
                margin = ae.double().encode(im.double())[1]["margin"]
            ae.float()
            if margin > 1e-3:
                break
            seed += 100
        states = [{k: v.detach().clone() for k, v in m.state_dict().items()}
                  for m in (ae, disc, lpips)]
        runs = {}
        for dtype in (torch.float64, torch.float32):
            models = [type(m)(*a) for m, a in ((ae, (cfg,)), (disc, (im_ch, disc_channels)),
                                               (lpips, (lpips_widths,)))]
            for m, st_ in zip(models, states):
                m.load_state_dict(st_)
            runs[dtype], q = ae_step(models, im, noise, train, dtype)
        r64, r32 = runs[torch.float64], runs[torch.float32]
        name = f"ae_{kind}"
        w.tensors[f"{name}.in.images"] = im
        if noise is not None:
            w.tensors[f"{name}.in.noise"] = noise
        for prefix, st_ in zip(("ae", "disc", "lpips"), states):
            for k, v in st_.items():
                if not k.endswith("num_batches_tracked") and k not in ("shift", "scale"):
                    w.tensors[f"{name}.param.{prefix}.{k}"] = v.float()
        for k, v in r64.items():
            w.tensors[f"{name}.{k}"] = v.float()
        grads = [k for k in r64 if k.startswith("grad.")]
        # Elements whose exact gradient is zero (attention's key bias) get Adam updates of
        # lr * sign(rounding noise) in any precision, and Adam's first step lr * g / (|g| + eps)
        # amplifies the relative error of g by eps / (|g| + eps): elements with |g| within 100 eps
        # (1e-6) are ill-conditioned. <name>.skip.<param> marks them with 1 and the comparison
        # after the step leaves them out (their gradients are compared like the others).
        kept = {}
        for k in grads:
            g = r64[k]
            skip = (g.abs() <= max(1e-10 * g.abs().max().item(), 100 * 1e-8)).float()
            pk = k[len("grad."):]
            kept["after." + pk] = (1 - skip).bool()
            if skip.any():
                w.tensors[f"{name}.skip.{pk}"] = skip
        after_err = {k: rel_error(r32[k][kept[k]], r64[k][kept[k]]) if k in kept
                     else rel_error(r32[k], r64[k]) for k in r64 if k.startswith("after.")}
        # Norm-wise, per tensor: the change of each parameter over the Adam step (element-wise,
        # near-zero gradients make Adam's first step ill-conditioned in any precision).
        before = {f"after.{p}.{k}": v for p, st_ in zip(("ae", "disc"), states) for k, v in st_.items()}
        step_err = {k: norm_error((r32[k] - before[k].float())[kept[k]],
                                  (r64[k] - before[k].double())[kept[k]])
                    for k in kept}
        w.meta[name] = json.dumps({
            "model": name, "config": cfg, "train": train, "disc_channels": disc_channels,
            "lpips_widths": lpips_widths,
            "torch_fp32_loss_err": max(rel_error(r32[k], r64[k]) for k in r64 if k.startswith("loss.")),
            "torch_fp32_out_norm_err": norm_error(r32["out"], r64["out"]),
            "torch_fp32_grad_norm_err": max(norm_error(r32[k], r64[k]) for k in grads),
            "torch_fp32_after_err": max(after_err.values()),
            "torch_fp32_step_norm_err": max(step_err.values())})


def seed_unet(path):
    """The seed configuration celebhq_text_cond (118,506,500 parameters) at batch 1, latent
    4x32x32, context 77x512: output loss, every gradient and three Adam steps, in the format of
    the unet family. About 1.4 GB: written to `path`, not committed (tools/check_seed_unet.sh)."""
    import unet_torch
    cfg = dict(im_channels=4, down_channels=[256, 384, 512, 768], mid_channels=[768, 512],
               down_sample=[True, True, True], attn_down=[True, True, True], time_emb_dim=512,
               norm_channels=32, num_heads=16, conv_out_channels=128, num_down_layers=2,
               num_mid_layers=2, num_up_layers=2, num_timesteps=1000, text_embed_dim=512)
    torch.manual_seed(1111)
    model = unet_torch.UNet(cfg)
    print(f"seed UNet: {sum(p.numel() for p in model.parameters())} parameters")
    w = Writer(seed=1111)
    x, t, ctx = w.randn(1, 4, 32, 32), torch.tensor([731.0]), w.randn(1, 77, 512)
    model_case(w, "unet_seed", model, [x, t, ctx], w.randn(1, 4, 32, 32), {"lr": 5e-6},
               call=lambda m, x, t, c: m(x, t, context=c))
    meta = json.loads(w.meta["unet_seed"])
    meta["config"] = cfg
    w.meta["unet_seed"] = json.dumps(meta)
    w.save(path)


def converted(out_dir, repo):
    """A checkpoint written by the reference repository's own Unet class (random weights), put
    through tools/convert_reference.py, and the reference's outputs for fixed inputs: the test
    that converted checkpoints load and compute what the reference computes. Needs the reference
    repository (explainingai-code/StableDiffusion-PyTorch) checked out at `repo`, and einops."""
    import subprocess
    import tempfile
    sys.path.insert(0, repo)
    from models.unet_cond_base import Unet as ReferenceUnet  # the reference's code, not ours
    cfg = dict(down_channels=[4, 8, 8], mid_channels=[8, 8], down_sample=[True, True],
               attn_down=[True, False], time_emb_dim=8, norm_channels=2, num_heads=2,
               conv_out_channels=4, num_down_layers=2, num_mid_layers=1, num_up_layers=1,
               condition_config=dict(condition_types=["text"],
                                     text_condition_config=dict(text_embed_dim=6)))
    torch.manual_seed(2468)
    model = ReferenceUnet(4, cfg).eval()
    g = torch.Generator().manual_seed(13579)
    x, ctx = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 5, 6, generator=g)
    t = torch.tensor([11, 640])
    with torch.no_grad():
        out = model(x, t, {"text": ctx})
    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "ddpm_ckpt_text_cond_clip.pth")
        torch.save(model.state_dict(), pth)
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..",
                                                     "convert_reference.py"), pth,
                        os.path.join(out_dir, "converted_unet.safetensors")], check=True)
    ldm = dict(cfg, im_channels=4, num_timesteps=1000, text_embed_dim=6)
    del ldm["condition_config"]
    st.write(os.path.join(out_dir, "converted_unet_io.safetensors"),
             {"x": x.numpy(), "t": t.float().numpy(), "context": ctx.numpy(), "out": out.numpy()},
             {"config": json.dumps(ldm)})
    print(f"{out_dir}/converted_unet*.safetensors from the reference's Unet")
    converted_autoencoder(out_dir, repo)


def converted_autoencoder(out_dir, repo):
    """The same for the reference's VQVAE and Discriminator classes: a small one-channel VQ-VAE's
    quantized latent, codebook indices and reconstruction of fixed images (eval mode, as
    infer_vqvae.py), and the discriminator's logits in training mode (batch statistics)."""
    import subprocess
    import tempfile
    sys.path.insert(0, repo)
    from models.vqvae import VQVAE as ReferenceVQVAE  # the reference's code, not ours
    from models.discriminator import Discriminator as ReferenceDiscriminator
    cfg = dict(z_channels=3, codebook_size=6, down_channels=[4, 8, 8], mid_channels=[8, 8],
               down_sample=[True, True], attn_down=[False, True], norm_channels=2, num_heads=2,
               num_down_layers=1, num_mid_layers=1, num_up_layers=1)
    seed = 97
    while True:  # every codebook choice must be clear of ties (float32 on both sides)
        torch.manual_seed(seed)
        vq = ReferenceVQVAE(1, cfg).eval()
        disc = ReferenceDiscriminator(im_channels=1, conv_channels=[4, 8, 8])
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(2, 1, 16, 16, generator=g) * 2 - 1
        with torch.no_grad():
            z = vq.pre_quant_conv(vq.encoder_conv_out(torch.nn.functional.silu(
                vq.encoder_norm_out(_ref_encoder_trunk(vq, x)))))
            rows = z.permute(0, 2, 3, 1).reshape(-1, 3).double()
            d2 = ((rows[:, None] - vq.embedding.weight.double()[None]) ** 2).sum(-1)
            top2 = d2.topk(2, largest=False).values
            if (top2[:, 1] - top2[:, 0]).min().item() > 1e-3:
                break
        seed += 1
    with torch.no_grad():
        out, quant, _ = vq(x)
        _, _, idx = vq.quantize(z)
        logits = disc.train()(x)
    with tempfile.TemporaryDirectory() as tmp:
        for model, kind in ((vq, "vqvae"), (disc, "discriminator")):
            pth = os.path.join(tmp, f"{kind}_ckpt.pth")
            torch.save(model.state_dict(), pth)
            subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..",
                                                         "convert_reference.py"), pth,
                            os.path.join(out_dir, f"converted_{kind}.safetensors"),
                            "--kind", kind], check=True)
    st.write(os.path.join(out_dir, "converted_autoencoder_io.safetensors"),
             {"images": x.numpy(), "latent": quant.numpy(), "indices": idx.float().numpy(),
              "out": out.numpy(), "disc_logits": logits.numpy()},
             {"config": json.dumps(dict(cfg, im_channels=1)),
              "disc_channels": json.dumps([4, 8, 8])})
    print(f"{out_dir}/converted_vqvae, converted_discriminator from the reference's classes")


def reference_pipeline(out_dir, repo, lib_path):
    """A whole text-conditioned model of the reference, sampled as its
    tools/sample_ddpm_text_cond.py does: a tiny CLIP (transformers' CLIPTextModel and
    CLIPTokenizer, saved as a Hugging Face folder), the reference's Unet and VQVAE (random
    weights, saved as the reference saves them: a state_dict .pth) and its YAML config, put
    together by tools/reference_model.py into tests/ref/reference_model/; then the reference's
    sampling loop (its LinearNoiseScheduler, get_text_representation, guidance against the empty
    prompt, vae.decode) run in float64 with ldmcl's random numbers (ldm_rng_host from
    lib_path, the streams of src/sample/sampler.c) in place of torch.randn. The test: ldmcl's
    pipeline on that folder gives the same images."""
    import ctypes
    import shutil
    import subprocess
    import tempfile
    import yaml
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from transformers.models.clip.tokenization_clip import bytes_to_unicode
    sys.path.insert(0, repo)
    from models.unet_cond_base import Unet as ReferenceUnet  # the reference's code, not ours
    from models.vqvae import VQVAE as ReferenceVQVAE
    from scheduler.linear_noise_scheduler import LinearNoiseScheduler
    from utils.text_utils import get_text_representation

    lib = ctypes.CDLL(lib_path)
    lib.ldm_rng_host.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_uint64, ctypes.c_uint32,
                                 ctypes.c_uint64, ctypes.POINTER(ctypes.c_float)]
    lib.ldm_rng_host.restype = None

    def ldmcl_randn(shape, seed, stream, step):
        n = math.prod(shape)
        buf = (ctypes.c_float * n)()
        lib.ldm_rng_host(1, n, seed, stream, step, buf)  # LDM_DIST_NORMAL
        return torch.tensor(list(buf), dtype=torch.float64).reshape(shape)

    cfg = {
        "dataset_params": {"im_path": "unused", "im_channels": 1, "im_size": 8, "name": "tiny"},
        "diffusion_params": {"num_timesteps": 20, "beta_start": 0.002, "beta_end": 0.2},
        "ldm_params": {
            "down_channels": [8, 16, 16], "mid_channels": [16, 16], "down_sample": [True, False],
            "attn_down": [True, True], "time_emb_dim": 8, "norm_channels": 4, "num_heads": 2,
            "conv_out_channels": 8, "num_down_layers": 1, "num_mid_layers": 1,
            "num_up_layers": 1,
            "condition_config": {"condition_types": ["text"], "text_condition_config": {
                "text_embed_model": "clip", "train_text_embed_model": False,
                "text_embed_dim": 8, "cond_drop_prob": 0.1}}},
        "autoencoder_params": {
            "z_channels": 2, "codebook_size": 5, "down_channels": [4, 8], "mid_channels": [8, 8],
            "down_sample": [True], "attn_down": [False], "norm_channels": 2, "num_heads": 2,
            "num_down_layers": 1, "num_mid_layers": 1, "num_up_layers": 1},
        "train_params": {"task_name": "tiny", "cf_guidance_scale": 3.0,
                         "ldm_ckpt_name": "ddpm_ckpt_text_cond_clip.pth",
                         "vqvae_autoencoder_ckpt_name": "vqvae_autoencoder_ckpt.pth"},
    }
    prompt, seed = "the photo of an ankle boot, on white", 4242
    # a CLIP vocabulary in OpenAI's layout: the 256 byte symbols, with and without </w>, a few
    # merges, the two special tokens
    chars = list(bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("o", "n</w>"), ("o", "o"), ("b", "oo"),
              ("boo", "t</w>")]
    tokens = chars + [c + "</w>" for c in chars] + [a + b for a, b in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    torch.manual_seed(8642)
    unet = ReferenceUnet(cfg["autoencoder_params"]["z_channels"], cfg["ldm_params"]).eval()
    vqvae = ReferenceVQVAE(1, cfg["autoencoder_params"]).eval()
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokens), hidden_size=8, intermediate_size=16, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu")).eval()
    with torch.no_grad():
        clip.text_model.embeddings.token_embedding.weight.normal_(0, 0.5)
        for m in (unet, vqvae, clip):  # away from the trivial initial biases and norms
            for p in m.parameters():
                p.add_(0.05 * torch.randn(p.shape))
    with tempfile.TemporaryDirectory() as tmp:
        clip_dir = os.path.join(tmp, "clip")
        os.makedirs(clip_dir)
        with open(os.path.join(clip_dir, "vocab.json"), "w") as f:
            json.dump({t: i for i, t in enumerate(tokens)}, f)
        with open(os.path.join(clip_dir, "merges.txt"), "w") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        tokenizer = CLIPTokenizer(os.path.join(clip_dir, "vocab.json"),
                                  os.path.join(clip_dir, "merges.txt"))
        tokenizer.save_pretrained(clip_dir)
        clip.config.bos_token_id, clip.config.eos_token_id = len(tokens) - 2, len(tokens) - 1
        clip.save_pretrained(clip_dir, safe_serialization=True)
        run = os.path.join(tmp, "tiny")
        os.makedirs(run)
        torch.save(unet.state_dict(), os.path.join(run, cfg["train_params"]["ldm_ckpt_name"]))
        torch.save(vqvae.state_dict(),
                   os.path.join(run, cfg["train_params"]["vqvae_autoencoder_ckpt_name"]))
        yml = os.path.join(tmp, "tiny_text_cond.yaml")
        with open(yml, "w") as f:
            yaml.safe_dump(cfg, f)
        model_dir = os.path.join(out_dir, "reference_model")
        shutil.rmtree(model_dir, ignore_errors=True)
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..",
                                                     "reference_model.py"), yml, model_dir,
                        "--clip", clip_dir, "--copy-clip", "--run-dir", tmp], check=True)

    # The reference's sampling loop (tools/sample_ddpm_text_cond.py), in float64.
    d = cfg["diffusion_params"]
    sched = LinearNoiseScheduler(d["num_timesteps"], d["beta_start"], d["beta_end"])
    T, scale = d["num_timesteps"], cfg["train_params"]["cf_guidance_scale"]
    shape = (1, 2, 4, 4)
    import scheduler.linear_noise_scheduler as ref_sched_module
    step = {"k": 0}
    real_torch = ref_sched_module.torch

    class NoiseFromLdmcl:  # the scheduler's torch, with randn drawn from ldmcl's stream
        def __getattr__(self, name):
            return getattr(real_torch, name)

        @staticmethod
        def randn(shape_):
            return ldmcl_randn(tuple(shape_), seed, 10, step["k"]).to(torch.get_default_dtype())

    import models.unet_cond_base as ref_unet_module
    time_embedding = ref_unet_module.get_time_embedding  # float32 by construction: cast

    def sample(dtype):
        ref_unet_module.get_time_embedding = lambda ts, dim: time_embedding(ts, dim).to(dtype)
        ref_sched_module.torch = NoiseFromLdmcl()
        torch.set_default_dtype(dtype)  # HF builds its causal mask in the default dtype
        m_unet, m_vqvae, m_clip = unet.to(dtype), vqvae.to(dtype), clip.to(dtype)
        for k in ("betas", "alphas", "alpha_cum_prod", "sqrt_alpha_cum_prod",
                  "sqrt_one_minus_alpha_cum_prod"):
            setattr(sched, k, getattr(sched, k).to(dtype))
        try:
            with torch.no_grad():
                cond = {"text": get_text_representation([prompt], tokenizer, m_clip, "cpu")}
                uncond = {"text": get_text_representation([""], tokenizer, m_clip, "cpu")}
                xt = ldmcl_randn(shape, seed, 9, 0).to(dtype)  # STREAM_START
                for k, i in enumerate(reversed(range(T))):
                    step["k"] = k
                    t = (torch.ones((xt.shape[0],)) * i).long()
                    eps_c = m_unet(xt, t, cond)
                    eps_u = m_unet(xt, t, uncond)
                    eps = eps_u + scale * (eps_c - eps_u)
                    xt, _ = sched.sample_prev_timestep(xt, eps.to(dtype), torch.as_tensor(i))
                    xt = xt.to(dtype)
                return xt, m_vqvae.decode(xt)
        finally:
            ref_sched_module.torch = real_torch
            ref_unet_module.get_time_embedding = time_embedding
            torch.set_default_dtype(torch.float32)

    lat32, im32 = sample(torch.float32)
    lat64, im64 = sample(torch.float64)
    st.write(os.path.join(out_dir, "reference_model_samples.safetensors"),
             {"latents": lat64.float().numpy(), "images": im64.float().numpy()},
             {"prompt": prompt, "seed": str(seed), "guidance": str(scale),
              "sampler": "ddpm (the reference's LinearNoiseScheduler.sample_prev_timestep)",
              "torch_fp32_images_rel_err": str(rel_error(im32, im64))})
    print(f"{out_dir}/reference_model/ and reference_model_samples.safetensors: the reference's "
          f"pipeline, |images| <= {im64.abs().max().item():.3f}, latents "
          f"{lat64.abs().max().item():.3f}; PyTorch float32 against float64: images "
          f"{rel_error(im32, im64):.2e}, latents {rel_error(lat32, lat64):.2e}")


def _ref_encoder_trunk(vq, x):
    out = vq.encoder_conv_in(x)
    for down in vq.encoder_layers:
        out = down(out)
    for mid in vq.encoder_mids:
        out = mid(out)
    return out


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
