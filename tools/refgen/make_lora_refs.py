#!/usr/bin/env python3
"""tools/refgen/make_lora_refs.py: LoRA references, from diffusers' own LoRA loading.

    pip install "diffusers==0.31.0" "transformers==4.40.2" "peft==0.13.2" torch safetensors
    python3 tools/refgen/make_lora_refs.py [--out tests/ref/sd]

For the tiny SD 1.x and 2.x models of tests/ref/sd/ (make_sd_refs.py writes them), a random
LoRA in kohya's format (lora_unet_* / lora_te_*: .lora_down.weight, .lora_up.weight, .alpha;
F16 as the usual downloads): attention projections, the transformer's proj_in/proj_out and
feed-forward, a ResBlock's 3x3 convolution (LoCon) and its time projection, and the text
encoder's attention and MLP. diffusers' StableDiffusionPipeline.load_lora_weights reads it
(through peft) and fuse_lora merges it at a weight; the UNet's and the text encoder's outputs
then are the reference (<fam>_lora.safetensors beside the LoRA <fam>_lora_kohya.safetensors).
The script checks diffusers' result against its own float64 merge W += w * alpha / rank * up .
down before writing anything.

lora_train.safetensors: training with LoRA adapters, in peft (rank 2, alpha 3): the tiny SD 1.x
UNet adapted on every Linear and convolution of its blocks (kohya's scope), its text encoder on
attention and MLP; inputs, a target, the output, the MSE loss and every adapter's gradient,
adapters named as ldmcl records them (the original's module names + .lora_down.weight /
.lora_up.weight). lora_train_kohya.safetensors: the same adapters as a kohya file (what
ldm_sd_lora_save must write), checked to load in diffusers' load_lora_weights and give peft's
outputs.
"""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sd_refs import zero_mask_attention  # noqa: E402

WEIGHT = 0.7  # the LoRA's weight, <lora:NAME:0.7>


def kohya(prefix, name):
    return prefix + name.replace(".", "_")



def lora_for(module_names, modules, prefix, gen, rank=2):
    """Random kohya tensors for the given modules (Linear or Conv2d)."""
    out = {}
    for name in module_names:
        m = modules[name]
        r = min(rank, m.weight.shape[0], m.weight.shape[1])
        if isinstance(m, torch.nn.Conv2d):
            down = torch.randn(r, m.in_channels, *m.kernel_size, generator=gen) * 0.3
            up = torch.randn(m.out_channels, r, 1, 1, generator=gen) * 0.3
        else:
            down = torch.randn(r, m.in_features, generator=gen) * 0.3
            up = torch.randn(m.out_features, r, generator=gen) * 0.3
        key = kohya(prefix, name)
        out[key + ".lora_down.weight"] = down.half()
        out[key + ".lora_up.weight"] = up.half()
        # one alpha for all, as kohya's trainer writes (network_alpha); diffusers 0.31 does not
        # follow kohya where alphas differ or one is missing (alpha = rank): test_lora checks
        # those against its own arithmetic
        out[key + ".alpha"] = torch.tensor(1.5, dtype=torch.float16)
    return out


def merged(model, lora, prefix):
    """A float64 copy of model with the LoRA merged by hand."""
    import copy
    m = copy.deepcopy(model).to(torch.float64)
    mods = dict(m.named_modules())
    for key in lora:
        if not key.endswith(".lora_down.weight") or not key.startswith(prefix):
            continue
        base = key[: -len(".lora_down.weight")]
        down = lora[key].double()
        up = lora[base + ".lora_up.weight"].double()
        rank = down.shape[0]
        alpha = lora[base + ".alpha"].double().item() if base + ".alpha" in lora else rank
        name = next(n for n in mods if kohya(prefix, n) == base)
        w = mods[name].weight
        delta = (up.flatten(1) @ down.flatten(1)).reshape(w.shape)
        with torch.no_grad():
            w += WEIGHT * alpha / rank * delta
    return m


def family(src, fam, out_dir, seed):
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel
    folder = os.path.join(src, f"{fam}_diffusers")
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", variant="fp16",
                                                torch_dtype=torch.float32)
    text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder",
                                         torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", variant="fp16",
                                        torch_dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    umods = dict(unet.named_modules())
    unames = [n for n in umods if n.endswith((
        "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
        "attn2.to_v", "attn2.to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"))]
    unames += ["down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.0.time_emb_proj"]
    tmods = dict(text.named_modules())
    tnames = [n for n in tmods if n.endswith(("q_proj", "k_proj", "v_proj", "out_proj", "fc1",
                                              "fc2"))]
    lora = {**lora_for(unames, umods, "lora_unet_", gen), **lora_for(tnames, tmods, "lora_te_",
                                                                      gen)}
    lora_path = os.path.join(out_dir, f"{fam}_lora_kohya.safetensors")
    save_file(lora, lora_path, metadata={"ss_network_module": "networks.lora"})

    x = torch.randn(2, unet.config.in_channels, 8, 8, generator=gen)
    t = torch.tensor([17.5, 903.0])
    ids = torch.randint(0, text.config.vocab_size, (2, 77), generator=gen)
    ctx = torch.randn(2, 5, unet.config.cross_attention_dim, generator=gen)

    with torch.no_grad():
        want_unet = merged(unet, lora, "lora_unet_")(x.double(), t.double(),
                                                       encoder_hidden_states=ctx.double()).sample
        # (transformers 4.40 builds its causal mask in float32: the merged weights run in float32)
        want_text = merged(text, lora, "lora_te_").float()(ids).last_hidden_state

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unet,
                                   scheduler=EulerDiscreteScheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.load_lora_weights(lora_path, adapter_name="lora")
    pipe.fuse_lora(lora_scale=WEIGHT)
    with torch.no_grad():
        got_unet = pipe.unet(x, t, encoder_hidden_states=ctx).sample
        got_text = pipe.text_encoder(ids).last_hidden_state

    def err(a, b):
        return ((a.double() - b.double()).norm() / b.double().norm()).item()

    print(f"{fam}: diffusers' load_lora_weights + fuse_lora against a float64 merge: UNet "
          f"{err(got_unet, want_unet):.2e}, text encoder {err(got_text, want_text):.2e}")
    assert err(got_unet, want_unet) < 1e-5 and err(got_text, want_text) < 1e-5
    save_file({"unet.x": x, "unet.t": t, "unet.context": ctx, "unet.out": want_unet.float(),
               "text.ids": ids.float(), "text.out": want_text.float()},
              os.path.join(out_dir, f"{fam}_lora.safetensors"),
              metadata={"weight": str(WEIGHT), "adapters": str(len(unames) + len(tnames))})


RANK, ALPHA = 2, 3.0  # the training case's adapters: scale alpha / rank = 1.5


def with_peft(model, targets, gen):
    """peft's LoRA on the named Linear/Conv2d modules of model (float64), its adapters given
    random values (up not zero: every adapter then takes a gradient)."""
    from peft import LoraConfig, inject_adapter_in_model
    model = inject_adapter_in_model(LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=targets,
                                               init_lora_weights=False), model).double()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)
    return model


def adapters_of(model, name_of, out, kind):
    """The adapters' values and gradients under ldmcl's names: <module>.lora_down.weight (peft's
    lora_A) and .lora_up.weight (lora_B)."""
    for n, p in model.named_parameters():
        if "lora_" not in n:
            continue
        module = n.split(".lora_")[0]
        part = "lora_down" if ".lora_A." in n else "lora_up"
        name = f"{name_of(module)}.{part}.weight"
        out[f"{kind}.adapter.{name}"] = p.detach().float()
        out[f"{kind}.grad.{name}"] = p.grad.float()


def train_case(src, out_dir):
    """Training with LoRA: the tiny SD 1.x UNet with adapters on every Linear and convolution of
    its blocks (all_linear+conv) and its text encoder with adapters on attention and MLP (attn+ff), in peft;
    MSE loss against a target; the output, the loss and every adapter's gradient."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel
    from sd_names import unet_to_original
    folder = os.path.join(src, "sd1_diffusers")
    gen = torch.Generator().manual_seed(5151)
    out = {}
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", variant="fp16",
                                                torch_dtype=torch.float32)
    up_attn = [t.startswith("CrossAttn") for t in unet.config.up_block_types]
    L = unet.config.layers_per_block
    # kohya's scope: the blocks' Linear and Conv2d layers (not conv_in, conv_out nor the time
    # embedding, which diffusers' kohya reader does not map either)
    targets = [n for n, m in unet.named_modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
               and not n.startswith(("conv_in", "conv_out", "time_embedding"))]
    unet = with_peft(unet, targets, gen)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    t = torch.tensor([17.5, 903.0])
    ctx = torch.randn(2, 5, unet.config.cross_attention_dim, generator=gen)
    target = torch.randn(2, 4, 8, 8, generator=gen)
    import copy
    unet32 = copy.deepcopy(unet).float()
    y = unet(x.double(), t.double(), encoder_hidden_states=ctx.double()).sample
    loss = torch.nn.functional.mse_loss(y, target.double())
    loss.backward()
    # PyTorch's own float32 error in the adapters' gradients: the bar's floor (as model_case's)
    torch.nn.functional.mse_loss(unet32(x, t, encoder_hidden_states=ctx).sample, target).backward()
    g64 = {n: p.grad for n, p in unet.named_parameters() if p.grad is not None}
    fp32_err = max(((p.grad.double() - g64[n]).norm() / g64[n].norm()).item()
                   for n, p in unet32.named_parameters() if p.grad is not None)
    adapters_of(unet, lambda m: unet_to_original(m + ".weight", L, up_attn)[: -len(".weight")],
                out, "unet")
    out.update({"unet.x": x, "unet.t": t, "unet.context": ctx, "unet.target": target,
                "unet.out": y.detach().float(), "unet.loss": loss.detach().float().reshape(1)})
    # the text encoder in float32 (transformers 4.40 builds its causal mask in float32)
    text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder",
                                         torch_dtype=torch.float32)
    targets = [n for n, m in text.named_modules()
               if n.endswith(("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"))]
    text = with_peft(text, targets, gen).float()
    ids = torch.randint(0, text.config.vocab_size, (2, 77), generator=gen)
    h = text(ids).last_hidden_state
    target = torch.randn(h.shape, generator=gen)
    loss = torch.nn.functional.mse_loss(h, target)
    loss.backward()
    adapters_of(text, lambda m: m, out, "text")
    out.update({"text.ids": ids.float(), "text.target": target, "text.out": h.detach(),
                "text.loss": loss.detach().reshape(1)})
    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(out_dir, "lora_train.safetensors"),
              metadata={"rank": str(RANK), "alpha": str(ALPHA), "unet_targets": "all_linear+conv",
                        "unet_torch_fp32_grad_norm_err": repr(fp32_err),
                        "text_targets": "attn+ff"})
    # the same adapters as a kohya file (diffusers' module names: peft's), which ldmcl's
    # ldm_sd_lora_save must write tensor for tensor; diffusers' load_lora_weights reads it back
    # into the models without adapters and computes what peft computed
    kohya = {}
    for model, prefix in ((unet, "lora_unet_"), (text, "lora_te_")):
        for n, p in model.named_parameters():
            if "lora_" not in n:
                continue
            module = kohya(prefix, n.split(".lora_")[0])
            part = "lora_down" if ".lora_A." in n else "lora_up"
            kohya[f"{module}.{part}.weight"] = p.detach().float().contiguous()
            kohya[f"{module}.alpha"] = torch.tensor(ALPHA)
    kohya_path = os.path.join(out_dir, "lora_train_kohya.safetensors")
    save_file(kohya, kohya_path, metadata={"ss_network_module": "networks.lora",
                                           "ss_network_dim": str(RANK),
                                           "ss_network_alpha": f"{ALPHA:g}"})
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", variant="fp16"), text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder"),
        tokenizer=None, scheduler=EulerDiscreteScheduler(), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
        unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet", variant="fp16",
                                                  torch_dtype=torch.float32))
    pipe.load_lora_weights(kohya_path, adapter_name="trained")
    pipe.fuse_lora(lora_scale=1.0)
    with torch.no_grad():
        yd = pipe.unet(x, t, encoder_hidden_states=ctx).sample
        hd = pipe.text_encoder(ids).last_hidden_state
    eu = ((yd.double() - y.detach()).norm() / y.detach().norm()).item()
    et = ((hd.double() - h.detach().double()).norm() / h.detach().double().norm()).item()
    print(f"lora_train_kohya: diffusers' load_lora_weights of the trained adapters against peft: "
          f"UNet {eu:.2e}, text encoder {et:.2e}")
    assert eu < 1e-5 and et < 1e-5
    n_unet = sum(1 for k in out if k.startswith("unet.adapter.") and "lora_down" in k)
    n_text = sum(1 for k in out if k.startswith("text.adapter.") and "lora_down" in k)
    print(f"lora_train: {n_unet} UNet and {n_text} text encoder layers adapted; PyTorch float32's "
          f"UNet adapter gradients {fp32_err:.2e} norm-wise from float64 (worst)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "ref", "sd"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    zero_mask_attention()
    for i, fam in enumerate(("sd1", "sd2")):
        family(args.out, fam, args.out, 4242 + i)
    train_case(args.out, args.out)


if __name__ == "__main__":
    main()
