"""tools/refgen/refs_models.py: the model families of make_refs.py (blocks, diffusion, UNet, LPIPS,
CLIP, images, latents, autoencoder training).
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
from refs_ops import attention_core  # noqa: E402,F401


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


def model_case(w, name, module, inputs, target, opt, steps=3, call=None, store=None):
    """Loss = mse(module(*inputs), target); its gradients, and the parameters after `steps`
    optimizer steps, in float64 (and PyTorch float32 beside it for the error bar). call(m, *ins)
    runs the module when its forward takes keyword inputs; store(key, tensor) gives the name and
    the tensor (reshaped) a parameter, its gradient and its value after the steps are stored as
    (default: its state_dict key, as it is)."""
    call = call or (lambda m, *ins: m(*ins))
    store = store or (lambda k, v: (k, v))

    def put(kind, k, v):
        key, value = store(k, v)
        w.tensors[f"{name}.{kind}.{key}"] = value

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
    # A whole tensor whose exact gradient is zero (the key bias of a one-head attention with its
    # own tensor): float64 leaves rounding noise there, which no norm-wise bar can compare. The
    # tests check that ldmcl's is as negligible (<case>'s "zero_grads") and skip its steps.
    top = max(g.norm().item() for g in grads64.values())
    zero_grads = sorted(k for k, g in grads64.items() if g.norm().item() <= 1e-8 * top)
    for k in zero_grads:
        skip[k] = torch.ones_like(skip[k])
    nonzero = [k for k in grads64 if k not in zero_grads]
    kept = {k: (1 - skip[k]).bool() for k in skip}
    for i, x in enumerate(inputs):
        w.tensors[f"{name}.in.{i}"] = x
    w.tensors[f"{name}.target"] = target
    w.tensors[f"{name}.loss"] = loss64.float()
    w.tensors[f"{name}.out"] = out64.float()
    for k, v in params32.items():
        put("param", k, v)
    for k in grads64:
        put("grad", k, grads64[k].float())
        put("after", k, after64[k].float())
        if skip[k].any():
            put("skip", k, skip[k])
    w.meta[name] = json.dumps({
        "model": name, "n_inputs": len(inputs), "steps": steps, **opt,
        "torch_fp32_loss_err": rel_error(loss32, loss64),
        "torch_fp32_out_err": rel_error(out32, out64),
        "torch_fp32_out_norm_err": norm_error(out32, out64),
        "torch_fp32_grad_err": max(rel_error(grads32[k], grads64[k]) for k in nonzero),
        "torch_fp32_after_err": max(rel_error(after32[k][kept[k]], after64[k][kept[k]])
                                    for k in after64),
        # Norm-wise, per tensor: ||got - want|| / ||want|| for each gradient, and for each
        # parameter's change over the optimizer steps (zero-gradient elements left out).
        "torch_fp32_grad_norm_err": max(norm_error(grads32[k], grads64[k]) for k in nonzero),
        "torch_fp32_step_norm_err": max(
            norm_error((after32[k] - params32[k].to(torch.float32))[kept[k]],
                       (after64[k] - params32[k].to(torch.float64))[kept[k]]) for k in after64),
        **({"zero_grads": [store(k, grads64[k])[0] for k in zero_grads]} if zero_grads else {})})


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
