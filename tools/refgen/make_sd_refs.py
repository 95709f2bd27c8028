#!/usr/bin/env python3
"""tools/refgen/make_sd_refs.py: the Stable Diffusion references, from diffusers' models.

    pip install "diffusers==0.31.0" "transformers==4.40.2" torch safetensors numpy
    python3 tools/refgen/make_sd_refs.py [--out tests/ref]

Writes tests/ref/sd_unet_sd1.safetensors, sd_unet_sd2.safetensors (a file per case, each under
1 MiB): diffusers' UNet2DConditionModel at tiny configurations of
the 1.x family (1x1-conv projections, fixed heads) and the 2.x family (linear projections, 64-
channel heads scaled down, 9 input channels as the inpainting UNet), with random weights stored
under the original repository's names (tools/refgen/sd_names.py), each a model case as
make_refs.py writes them (refs_models.model_case: output, MSE loss, every gradient and three Adam
steps, in float64 with PyTorch float32's error beside it) with its ldmcl configuration;
tests/ref/sd_vae_encode.safetensors, sd_vae_decode.safetensors: the encoder and the decoder of a
tiny AutoencoderKL likewise;
tests/ref/sd/: tiny whole SD 1.x and 2.x models in the single-file and diffusers layouts with
what diffusers and transformers compute from them (sd_checkpoints below).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refs_common import Writer  # noqa: E402
from refs_models import model_case  # noqa: E402
from sd_names import unet_to_original, vae_to_original  # noqa: E402

# ldmcl's ldm_sd_unet_config and the diffusers arguments of the same model.
UNETS = {
    "sd_unet_sd1": (
        dict(in_channels=4, out_channels=4, model_channels=4, channel_mult=[1, 2, 2],
             attn_levels=[1, 1, 0], num_res_blocks=2, num_heads=2, head_channels=0,
             transformer_depth=1, context_dim=12, linear_proj=0, norm_groups=4),
        dict(in_channels=4, out_channels=4, block_out_channels=(4, 8, 8), layers_per_block=2,
             down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
             up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
             cross_attention_dim=12, attention_head_dim=2, norm_num_groups=4), 5),
    "sd_unet_sd2": (
        dict(in_channels=9, out_channels=4, model_channels=8, channel_mult=[1, 2],
             attn_levels=[1, 0], num_res_blocks=1, num_heads=0, head_channels=4,
             transformer_depth=1, context_dim=20, linear_proj=1, norm_groups=4),
        dict(in_channels=9, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
             down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
             up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=20,
             attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=4), 7),
}


def zero_mask_attention():
    """diffusers' attention scores are baddbmm(torch.empty(..), q, k^T, beta=0) without a mask;
    torch 1.13's CPU baddbmm still reads that input, and uninitialised memory (NaN bits) left by
    an earlier float64 run turned whole float32 runs into NaN. An all-zero mask (beta=1) instead."""
    from diffusers.models import attention_processor as ap
    scores = ap.Attention.get_attention_scores

    def with_zero_mask(self, query, key, attention_mask=None):
        if attention_mask is None:
            attention_mask = torch.zeros(query.shape[0], query.shape[1], key.shape[1],
                                         dtype=query.dtype)
        return scores(self, query, key, attention_mask)

    ap.Attention.get_attention_scores = with_zero_mask


def sd_unet(w):
    from diffusers import UNet2DConditionModel
    zero_mask_attention()
    for name, (cfg, dcfg, seq) in UNETS.items():
        torch.manual_seed(2024)
        model = UNet2DConditionModel(sample_size=8, **dcfg)
        # diffusers zero-initialises nothing here, but give every weight a visible size
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=w.gen))
        up_attn = [t.startswith("CrossAttn") for t in dcfg["up_block_types"]]

        def store(k, v, L=dcfg["layers_per_block"], up_attn=up_attn):
            return unet_to_original(k, L, up_attn), v

        x = w.randn(2, cfg["in_channels"], 8, 8)
        t = torch.tensor([17.5, 903.0])  # real-valued, as k-diffusion's samplers pass them
        context = w.randn(2, seq, cfg["context_dim"])

        def call(m, x, t, c):
            return m(x, t, encoder_hidden_states=c).sample

        model_case(w, name, model, [x, t, context], w.randn(2, 4, 8, 8), {"lr": 1e-3},
                   call=call, store=store)
        meta = json.loads(w.meta[name])
        meta["sd_config"] = cfg
        w.meta[name] = json.dumps(meta)


# ldmcl's ldm_sd_vae_config and diffusers' AutoencoderKL arguments of the same model.
VAE = (dict(in_channels=3, out_channels=3, ch=8, ch_mult=[1, 2, 2], num_res_blocks=2,
            z_channels=4, embed_dim=4, norm_groups=4),
       dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16),
            layers_per_block=2, latent_channels=4, norm_num_groups=4, sample_size=16))


def sd_vae(w):
    """The encoder (x -> the posterior's mean and log-variance side by side) and the decoder
    (unscaled latents -> images) of a tiny AutoencoderKL, each a model case."""
    from diffusers import AutoencoderKL
    cfg, dcfg = VAE
    torch.manual_seed(77)
    vae = AutoencoderKL(**dcfg)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=w.gen))

    class Part(torch.nn.Module):
        def __init__(self, **parts):
            super().__init__()
            for k, v in parts.items():
                setattr(self, k, v)

    def store(k, v):
        key, conv = vae_to_original(k, len(cfg["ch_mult"]))
        return key, (v.reshape(*v.shape, 1, 1) if conv else v)

    enc = Part(encoder=vae.encoder, quant_conv=vae.quant_conv)
    dec = Part(post_quant_conv=vae.post_quant_conv, decoder=vae.decoder)
    x = w.randn(2, 3, 16, 16).clamp(-1, 1)
    model_case(w, "sd_vae_encode", enc, [x], w.randn(2, 8, 4, 4), {"lr": 1e-3},
               call=lambda m, x: m.quant_conv(m.encoder(x)), store=store)
    z = w.randn(2, 4, 4, 4)
    model_case(w, "sd_vae_decode", dec, [z], w.randn(2, 3, 16, 16), {"lr": 1e-3},
               call=lambda m, z: m.decoder(m.post_quant_conv(z)), store=store)
    for name in ("sd_vae_encode", "sd_vae_decode"):
        meta = json.loads(w.meta[name])
        meta["vae_config"] = cfg
        w.meta[name] = json.dumps(meta)


TEXT = {  # transformers' CLIPTextConfig of the tiny text encoders
    "sd1": dict(vocab_size=64, hidden_size=12, intermediate_size=20, num_hidden_layers=2,
                num_attention_heads=3, max_position_embeddings=77, hidden_act="quick_gelu"),
    "sd2": dict(vocab_size=64, hidden_size=20, intermediate_size=24, num_hidden_layers=3,
                num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu"),
}


def openclip_text(state):
    """Hugging Face CLIPTextModel tensors -> OpenCLIP's text tower (the 2.x single file's
    cond_stage_model.model.*), q, k, v packed into in_proj."""
    out, layers = {}, 1 + max(int(k.split(".")[3]) for k in state if ".layers." in k)
    e = "text_model.embeddings."
    out["token_embedding.weight"] = state[e + "token_embedding.weight"]
    out["positional_embedding"] = state[e + "position_embedding.weight"]
    out["ln_final.weight"] = state["text_model.final_layer_norm.weight"]
    out["ln_final.bias"] = state["text_model.final_layer_norm.bias"]
    for i in range(layers):
        a, b = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for leaf in ("weight", "bias"):
            out[b + "attn.in_proj_" + leaf] = torch.cat(
                [state[a + f"self_attn.{p}_proj.{leaf}"] for p in "qkv"], 0)
            for x, y in (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                         ("self_attn.out_proj", "attn.out_proj"), ("mlp.fc1", "mlp.c_fc"),
                         ("mlp.fc2", "mlp.c_proj")):
                out[b + y + "." + leaf] = state[a + x + "." + leaf]
    width = out["token_embedding.weight"].shape[1]
    out["text_projection"] = torch.randn(width, width)  # not used for conditioning
    out["logit_scale"] = torch.tensor(4.6)
    return out


def sd_checkpoints(out_dir, lib_path):
    """Tiny SD 1.x and 2.x (inpainting, v-prediction) models with random weights, in both layouts
    users have: the original single file (F16, OpenCLIP for 2.x) and diffusers' folder (the UNet
    as the .fp16 variant), and what diffusers/transformers compute with those very (F16-rounded)
    weights: tests/ref/sd_checkpoints.safetensors."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel
    import shutil
    gen = torch.Generator().manual_seed(99)
    want = {}
    for fam, unet_name in (("sd1", "sd_unet_sd1"), ("sd2", "sd_unet_sd2")):
        cfg, dcfg, seq = UNETS[unet_name]
        torch.manual_seed(5 + len(fam))
        unet = UNet2DConditionModel(sample_size=8, **dcfg)
        vae = AutoencoderKL(**VAE[1])
        text = CLIPTextModel(CLIPTextConfig(**TEXT[fam]))
        for m in (unet, vae, text):
            with torch.no_grad():
                for p in m.parameters():  # F16-representable values, all visibly non-zero
                    p.copy_((p + 0.05 * torch.randn(p.shape, generator=gen)).half().float())
            m.eval()
        if fam == "sd2":  # the v-prediction test (ComfyUI's) reads this bias' spread
            unet.up_blocks[-1].attentions[-1].transformer_blocks[0].norm1.bias.data.copy_(
                (0.2 * torch.randn(8, generator=gen)).half().float())
        up_attn = [t.startswith("CrossAttn") for t in dcfg["up_block_types"]]
        single = {}
        for k, v in unet.state_dict().items():
            single["model.diffusion_model." + unet_to_original(k, dcfg["layers_per_block"],
                                                               up_attn)] = v
        for k, v in vae.state_dict().items():
            name, conv = vae_to_original(k, len(VAE[0]["ch_mult"]))
            single["first_stage_model." + name] = v.reshape(*v.shape, 1, 1) if conv else v
        ts = {k: v for k, v in text.state_dict().items() if "position_ids" not in k}
        if fam == "sd1":
            for k, v in ts.items():
                single["cond_stage_model.transformer." + k] = v
        else:
            for k, v in openclip_text(ts).items():
                single["cond_stage_model.model." + k] = v
        overrides = {"unet": {"norm_groups": cfg["norm_groups"]},
                     "vae": {"norm_groups": VAE[0]["norm_groups"]},
                     "text": {"num_heads": TEXT[fam]["num_attention_heads"]}}
        if cfg["num_heads"]:
            overrides["unet"]["num_heads"] = cfg["num_heads"]
        else:
            overrides["unet"]["head_channels"] = cfg["head_channels"]
        save_file({k: v.half().contiguous() for k, v in single.items()},
                  os.path.join(out_dir, f"{fam}_single.safetensors"),
                  metadata={"ldmcl.sd_config": json.dumps(overrides)})
        folder = os.path.join(out_dir, f"{fam}_diffusers")
        shutil.rmtree(folder, ignore_errors=True)
        unet.half().save_pretrained(os.path.join(folder, "unet"), variant="fp16")
        unet.float()
        vae.half().save_pretrained(os.path.join(folder, "vae"), variant="fp16")
        vae.float()
        cut = text
        if fam == "sd2":  # diffusers' 2.x folders hold the encoder cut at its penultimate layer
            cut = CLIPTextModel(CLIPTextConfig(**dict(TEXT[fam], num_hidden_layers=2)))
            cut.load_state_dict({k: v for k, v in text.state_dict().items()
                                 if ".layers.2." not in k})
        cut.save_pretrained(os.path.join(folder, "text_encoder"), safe_serialization=True)
        os.makedirs(os.path.join(folder, "scheduler"), exist_ok=True)
        with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
            json.dump({"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                       "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
                       "prediction_type": "v_prediction" if fam == "sd2" else "epsilon"}, f)
        # what the models compute, in float64
        x = torch.randn(1, cfg["in_channels"], 8, 8, generator=gen)
        t = torch.tensor([321.75])
        ids = torch.randint(0, TEXT[fam]["vocab_size"], (1, 77), generator=gen)
        z = torch.randn(1, 4, 4, 4, generator=gen)
        image = torch.rand(1, 3, 16, 16, generator=gen) * 2 - 1
        with torch.no_grad():
            torch.set_default_dtype(torch.float64)  # transformers' causal mask in float64
            hs = text.double()(ids, output_hidden_states=True).hidden_states
            torch.set_default_dtype(torch.float32)
            context = text.text_model.final_layer_norm(hs[-2] if fam == "sd2" else hs[-1])
            out = unet.double()(x.double(), t.double(), encoder_hidden_states=context).sample
            decoded = vae.double().decode(z.double()).sample
            mean = vae.encode(image.double()).latent_dist.mean
        want.update({f"{fam}.text.ids": ids.float(), f"{fam}.text.out": context.float(),
                     f"{fam}.unet.x": x, f"{fam}.unet.t": t, f"{fam}.unet.out": out.float(),
                     f"{fam}.vae.z": z, f"{fam}.vae.decoded": decoded.float(),
                     f"{fam}.vae.image": image, f"{fam}.vae.mean": mean.float()})
        if fam == "sd1":
            want.update(trajectory(unet, text, ids, gen, lib_path))
    save_file({k: v.float().contiguous() for k, v in want.items()},
              os.path.join(out_dir, "sd_checkpoints.safetensors"))


def trajectory(unet, text, ids, gen, lib_path):
    """4 steps of Euler over Karras sigmas with guidance 7.5, as diffusers' EulerDiscreteScheduler
    steps them (use_karras_sigmas, linspace spacing: the model's whole sigma range) with the tiny
    1.x UNet, from ldmcl's start noise for seed 42 (ldm_rng_host through ctypes) times the first
    sigma, as k-diffusion and stable-diffusion.cpp start (diffusers' pipeline would multiply by
    sqrt(sigma^2 + 1) under linspace spacing). float64."""
    import ctypes
    import math
    from diffusers import EulerDiscreteScheduler
    lib = ctypes.CDLL(lib_path)
    lib.ldm_rng_host.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_uint64, ctypes.c_uint32,
                                 ctypes.c_uint64, ctypes.POINTER(ctypes.c_float)]
    shape = (1, 4, 8, 8)
    buf = (ctypes.c_float * math.prod(shape))()
    lib.ldm_rng_host(1, len(buf), 42, 9, 0, buf)  # normal; the sampler's start stream
    noise = torch.tensor(list(buf), dtype=torch.float64).reshape(shape)
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                   beta_schedule="scaled_linear", use_karras_sigmas=True,
                                   timestep_spacing="linspace")
    sched.set_timesteps(4)
    uncond_ids = torch.randint(0, 64, (1, 77), generator=gen)
    with torch.no_grad():
        torch.set_default_dtype(torch.float64)
        ctx = [text.text_model.final_layer_norm(text(i, output_hidden_states=True).hidden_states[-1])
               for i in (uncond_ids, ids)]
        torch.set_default_dtype(torch.float32)
        context = torch.cat(ctx, 0)
        x = noise * sched.sigmas[0].double()
        for t in sched.timesteps:
            x_in = sched.scale_model_input(x, t)
            eps = unet(torch.cat([x_in] * 2), t.double().repeat(2),
                       encoder_hidden_states=context).sample
            eps = eps[:1] + 7.5 * (eps[1:] - eps[:1])
            x = sched.step(eps, t, x).prev_sample
    return {"sd1.trajectory.uncond": ctx[0].float(), "sd1.trajectory.cond": ctx[1].float(),
            "sd1.trajectory.latents": x.float(),
            "sd1.trajectory.sigmas": sched.sigmas.float()}


FULL = {  # the published configs (diffusers' config.json of SD 1.5 and SD 2.1)
    "sd15": dict(cross_attention_dim=768, attention_head_dim=8),
    "sd21": dict(cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
                 use_linear_projection=True),
}


def sd_full(kind, dir_):
    """A full-size SD 1.5 or 2.1 UNet with random weights (F16-representable) as a whole single
    file (with a VAE and a text encoder of the family, random too) and one UNet forward at 64x64
    latents, batch 1, in float64: dir_/<kind>.safetensors and dir_/<kind>-reference.safetensors.
    Seeded: the same files every time."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(4321)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, **FULL[kind]).eval()
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                        latent_channels=4).eval()
    width = FULL[kind]["cross_attention_dim"]
    text = CLIPTextModel(CLIPTextConfig(
        hidden_size=width, intermediate_size=4 * width, num_hidden_layers=12 if kind == "sd15" else 24,
        num_attention_heads=width // 64, hidden_act="quick_gelu" if kind == "sd15" else "gelu"))
    with torch.no_grad():  # diffusers zero-initialises some layers: give them values too
        for p in unet.parameters():
            p.copy_((p + 0.02 * torch.randn(p.shape, generator=gen)).half().float())
    up_attn = [not t.startswith("Up") for t in unet.config.up_block_types]
    single = {"model.diffusion_model." + unet_to_original(k, 2, up_attn): v
              for k, v in unet.state_dict().items()}
    for k, v in vae.state_dict().items():
        name, conv = vae_to_original(k, 4)
        single["first_stage_model." + name] = v.reshape(*v.shape, 1, 1) if conv else v
    ts = {k: v for k, v in text.state_dict().items() if "position_ids" not in k}
    if kind == "sd15":
        single.update({"cond_stage_model.transformer." + k: v for k, v in ts.items()})
    else:
        single.update({"cond_stage_model.model." + k: v for k, v in openclip_text(ts).items()})
    save_file({k: v.half().contiguous() for k, v in single.items()},
              os.path.join(dir_, f"{kind}.safetensors"))
    del single, vae, text
    x = torch.randn(1, 4, 64, 64, generator=gen)
    t = torch.tensor([500.0])
    context = torch.randn(1, 77, width, generator=gen)
    with torch.no_grad():
        out = unet.double()(x.double(), t.double(), encoder_hidden_states=context.double()).sample
    save_file({"x": x, "t": t, "context": context, "out": out.float().contiguous()},
              os.path.join(dir_, f"{kind}-reference.safetensors"))
    print(f"{dir_}/{kind}.safetensors: {sum(p.numel() for p in unet.parameters())} UNet parameters")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "ref"))
    ap.add_argument("--ldmcl-lib", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                         "build", "libldmcl.so"),
                    help="ldmcl's shared library, whose random numbers the trajectory starts from")
    ap.add_argument("--full", metavar="KIND", choices=sorted(FULL),
                    help="only write the full-size check's model and reference into --out")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.full:
        zero_mask_attention()
        sd_full(args.full, args.out)
        return
    w = Writer(seed=20261207)
    sd_unet(w)
    w.save_each(args.out)
    w = Writer(seed=20261208)
    sd_vae(w)
    w.save_each(args.out)
    sd_dir = os.path.join(args.out, "sd")
    os.makedirs(sd_dir, exist_ok=True)
    sd_checkpoints(sd_dir, args.ldmcl_lib)


if __name__ == "__main__":
    main()
