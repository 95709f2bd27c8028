"""tools/refgen/refs_ops.py: the op families (elementwise to misc) of make_refs.py.
"""
import json  # noqa: F401
import math
import os
import sys
import zlib

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refs_common import Writer, family, norm_error, rel_error  # noqa: E402,F401


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
    # GEGLU (Stable Diffusion's feed-forward): the first half times GELU of the second.
    for shape in [(2, 5, 8), (1, 2), (3, 70)]:
        w.case("geglu_" + "x".join(map(str, shape)), "geglu", [("x", w.randn(*shape) * 2)],
               lambda x: x.chunk(2, -1)[0] * F.gelu(x.chunk(2, -1)[1]))


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
    # Nearest resizing: x2 (Stable Diffusion's Upsample), non-integer up and down.
    for shape, size in [((2, 3, 4, 5), (8, 10)), ((1, 2, 3, 5), (7, 4)), ((1, 1, 6, 6), (4, 9))]:
        tag = "x".join(map(str, shape)) + "_to_" + "x".join(map(str, size))
        w.case(f"resize_nearest_{tag}", "resize_nearest", [("x", w.randn(*shape))],
               lambda x, s=size: F.interpolate(x, size=s, mode="nearest"), height=size[0],
               width=size[1])


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


def packed_attention_case(w, n, l, heads, hd, causal):
    """A packed self-attention core case: qkv [n, l, 3 * heads * hd], drawn here."""
    c = heads * hd
    qkv = w.randn(n, l, 3 * c)
    w.case(f"attention_packed_{n}x{l}_h{heads}x{hd}{'_causal' if causal else ''}",
           "attention_packed", [("qkv", qkv)],
           lambda x, c=c, h=heads, ca=causal: attention_core(x[..., :c], x[..., c:2 * c],
                                                              x[..., 2 * c:], h, bool(ca)),
           heads=heads, causal=causal)


@family
def attention(w):
    # Packed self-attention cores: head dims 8, 24, 64; L=1; L=70 spans three query tiles (32)
    # and five key tiles (16) of the GPU layout; causal as in CLIP.
    for n, l, heads, hd, causal in [(2, 5, 2, 8, 0), (1, 1, 1, 8, 0), (1, 70, 2, 24, 0),
                                    (1, 33, 1, 64, 0), (2, 12, 2, 8, 1), (1, 70, 1, 24, 1)]:
        packed_attention_case(w, n, l, heads, hd, causal)
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
    # Cores small enough for the GPU simulator (all their tensors within 2000 elements) yet over
    # several query tiles (32) and key tiles (16) of the GPU layout, a head dim below its side
    # (8); drawn last so that the cases above stay as they were.
    for n, l, heads, hd, causal in [(1, 40, 1, 4, 0), (1, 37, 1, 4, 1)]:
        packed_attention_case(w, n, l, heads, hd, causal)
    q, kv = w.randn(1, 35, 8), w.randn(1, 20, 16)
    mask = torch.zeros(1, 20)
    mask[0, 17:] = 1  # the last key tile partly padded
    w.case("attention_cross_1x35x20_h1x8_mask", "attention_cross",
           [("q", q), ("kv", kv), ("mask", mask)],
           lambda q, kv, m: attention_core(q, kv[..., :8], kv[..., 8:], 1, mask=m),
           grads=["q", "kv"], heads=1)


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
    # (last: each case draws its upstream gradient, so earlier cases keep their values)
    # Stable Diffusion's timestep embedding of real-valued t (diffusers' get_timestep_embedding,
    # float64 here): cos first (flip_sin_to_cos) with shift 0, and sin first with shift 1.
    for t_vals, dim, flip, shift in [([0.0, 1.0, 480.25, 999.0], 32, 1, 0.0),
                                     ([3.5, 17.0], 6, 0, 1.0), ([2.0], 2, 1, 0.0)]:
        def sd_emb(t, dim=dim, flip=flip, shift=shift):
            half = dim // 2
            freq = torch.exp(-math.log(10000) * torch.arange(half, dtype=t.dtype) / (half - shift))
            e = t[:, None] * freq[None]
            e = torch.cat([torch.sin(e), torch.cos(e)], dim=-1)
            return torch.cat([e[:, half:], e[:, :half]], dim=-1) if flip else e

        w.case(f"timestep_sinusoidal_{len(t_vals)}x{dim}", "timestep_sinusoidal",
               [("t", torch.tensor(t_vals, dtype=torch.float32))], sd_emb, grads=[], dim=dim,
               cos_first=flip, freq_shift=shift)

