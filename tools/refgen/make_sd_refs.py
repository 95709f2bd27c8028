#!/usr/bin/env python3
"""tools/refgen/make_sd_refs.py: the Stable Diffusion references, from diffusers' models.

    pip install "diffusers==0.31.0" "transformers==4.40.2" torch safetensors numpy
    python3 tools/refgen/make_sd_refs.py [--out tests/ref]

Writes tests/ref/sd_unet.safetensors: diffusers' UNet2DConditionModel at tiny configurations of
the 1.x family (1x1-conv projections, fixed heads) and the 2.x family (linear projections, 64-
channel heads scaled down, 9 input channels as the inpainting UNet), with random weights stored
under the original repository's names (tools/refgen/sd_names.py), each a model case as
make_refs.py writes them (refs_models.model_case: output, MSE loss, every gradient and three Adam
steps, in float64 with PyTorch float32's error beside it) with its ldmcl configuration;
tests/ref/sd_vae.safetensors: the encoder and the decoder of a tiny AutoencoderKL likewise.
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
        dict(in_channels=4, out_channels=4, model_channels=8, channel_mult=[1, 2, 2],
             attn_levels=[1, 1, 0], num_res_blocks=2, num_heads=2, head_channels=0,
             transformer_depth=1, context_dim=12, linear_proj=0, norm_groups=4),
        dict(in_channels=4, out_channels=4, block_out_channels=(8, 16, 16), layers_per_block=2,
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "ref"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    w = Writer(seed=20261207)
    sd_unet(w)
    w.save(os.path.join(args.out, "sd_unet.safetensors"))
    w = Writer(seed=20261208)
    sd_vae(w)
    w.save(os.path.join(args.out, "sd_vae.safetensors"))


if __name__ == "__main__":
    main()
