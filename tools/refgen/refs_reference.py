"""tools/refgen/refs_reference.py: references that need more than PyTorch (make_refs.py --seed-unet,
--reference-repo): the full-size seed UNet, converted checkpoints of the reference repository and
its model folder with samples.
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
from refs_models import model_case  # noqa: E402
import st  # noqa: E402
from refs_ops import attention_core  # noqa: E402,F401


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
