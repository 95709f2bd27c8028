#!/usr/bin/env python3
"""tools/reference_model.py: assembles the model folder that `ldmcl-sample -m` reads from a
text-conditioned run of the reference implementation (explainingai-code/StableDiffusion-PyTorch):
its YAML config, its UNet and VQ-VAE checkpoints (.pth) and the Hugging Face CLIP folder it used.

    python3 tools/reference_model.py config/celebhq_text_cond.yaml MODEL_DIR \\
        --clip PATH/clip-vit-base-patch16 [--run-dir DIR] [--unet PTH] [--vqvae PTH] [--copy-clip]

MODEL_DIR gets model.ini (the YAML's dataset_params, diffusion_params, ldm_params and
autoencoder_params in ldmcl's keys; the text encoder frozen CLIP at 77 tokens, as the reference
pads), unet.safetensors and autoencoder.safetensors (converted as tools/convert_reference.py does).
The checkpoints default to where the reference writes them: RUN_DIR/task_name/ldm_ckpt_name and
RUN_DIR/task_name/vqvae_autoencoder_ckpt_name (RUN_DIR: the current folder). model.ini names the
CLIP folder by its absolute path; --copy-clip copies the files ldmcl reads into MODEL_DIR/clip
instead (a folder with only pytorch_model.bin gets its text model's tensors written as
clip/model.safetensors). Then:

    ldmcl-sample -m MODEL_DIR -p "She is a woman with blond hair." --sampling-method ddpm \\
        --cfg-scale 1 -o out.png

samples as the reference's tools/sample_ddpm_text_cond.py does (the same 1000-step sampler,
guidance against the empty prompt). Needs PyTorch and PyYAML (Debian: python3-torch python3-yaml).
"""
import argparse
import json
import os
import shutil
import sys

try:
    import yaml
except ImportError:
    raise SystemExit("reference_model.py needs PyYAML: apt install python3-yaml (or pip install pyyaml)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_reference  # noqa: E402

UNET_KEYS = ["down_channels", "mid_channels", "down_sample", "attn_down", "time_emb_dim",
             "norm_channels", "num_heads", "conv_out_channels", "num_down_layers",
             "num_mid_layers", "num_up_layers"]
VQVAE_KEYS = ["z_channels", "codebook_size", "down_channels", "mid_channels", "down_sample",
              "attn_down", "norm_channels", "num_heads", "num_down_layers", "num_mid_layers",
              "num_up_layers"]
# Files of a Hugging Face CLIP folder that ldmcl reads (the tokenizer's special tokens are optional).
CLIP_FILES = ["config.json", "vocab.json", "merges.txt", "tokenizer_config.json",
              "special_tokens_map.json"]
CONTEXT_LENGTH = 77  # the reference's get_text_representation pads and truncates to 77 tokens


def fail(msg):
    raise SystemExit(f"reference_model.py: {msg}")


def section(cfg, path, name):
    s = cfg.get(name)
    if not isinstance(s, dict):
        fail(f"{path}: no {name} section")
    return s


def value(v):
    """A YAML value in ldmcl's INI syntax: lists as [a, b], booleans True/False."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, (int, float)):
        return repr(v)
    try:  # PyYAML reads 1e-5 (no dot) as a string
        return repr(float(v))
    except (TypeError, ValueError):
        fail(f"unexpected value {v!r}")


def model_section(params, keys, path, name, allowed_extra=()):
    unknown = sorted(set(params) - set(keys) - set(allowed_extra))
    if unknown:
        fail(f"{path}: {name}: key(s) ldmcl does not know: {', '.join(unknown)}")
    missing = [k for k in keys if k not in params]
    if missing:
        fail(f"{path}: {name}: missing {', '.join(missing)}")
    return [f"{k} = {value(params[k])}" for k in keys]


def text_condition(ldm, path):
    cond = ldm.get("condition_config")
    if cond is None:
        return None
    types = cond.get("condition_types", [])
    if sorted(types) not in (["text"], ["image", "text"]):
        fail(f"{path}: ldm_params.condition_config.condition_types = {types}: ldmcl-sample "
             "takes text prompts, with or without a segmentation mask (['text'] or "
             "['text', 'image'])")
    text = cond.get("text_condition_config") or {}
    model = text.get("text_embed_model")
    if model != "clip":
        fail(f"{path}: text_embed_model = {model!r}: ldmcl's text encoders are CLIP's ('clip')")
    if text.get("train_text_embed_model", False):
        fail(f"{path}: train_text_embed_model = True: the reference saves no fine-tuned text "
             "encoder with its UNet, so there is nothing to convert")
    return text


def clip_hidden_size(clip_dir):
    path = os.path.join(clip_dir, "config.json")
    try:
        with open(path) as f:
            c = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    return c.get("text_config", c).get("hidden_size", 512)


def copy_clip(src, dst):
    os.makedirs(dst, exist_ok=True)
    for name in CLIP_FILES:
        if os.path.exists(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    if os.path.exists(os.path.join(src, "model.safetensors")):
        shutil.copyfile(os.path.join(src, "model.safetensors"),
                        os.path.join(dst, "model.safetensors"))
        return
    pth = os.path.join(src, "pytorch_model.bin")
    if not os.path.exists(pth):
        fail(f"{src}: neither model.safetensors nor pytorch_model.bin")
    import torch
    sd = convert_reference.load_state_dict(pth)
    text = {k: v.to(torch.float32).contiguous().numpy() for k, v in sd.items()
            if k.startswith("text_model.")}
    if not text:
        fail(f"{pth}: no text_model.* tensors")
    convert_reference.st.write(os.path.join(dst, "model.safetensors"), text,
                               {"format": "pt", "source": "pytorch_model.bin"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="the reference's YAML config of the run")
    ap.add_argument("out", help="model folder to write")
    ap.add_argument("--clip", help="the Hugging Face CLIP folder the run used "
                    "(openai/clip-vit-base-patch16 for the reference's configs)")
    ap.add_argument("--run-dir", default=".", help="where the reference ran (task_name is "
                    "relative to it)")
    ap.add_argument("--unet", help="the UNet checkpoint (default: from the config)")
    ap.add_argument("--vqvae", help="the VQ-VAE checkpoint (default: from the config)")
    ap.add_argument("--copy-clip", action="store_true", help="copy the CLIP files into OUT/clip")
    args = ap.parse_args()

    try:
        with open(args.config) as f:
            cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        fail(f"{args.config}: {e}")
    if not isinstance(cfg, dict):
        fail(f"{args.config}: not a YAML mapping")
    data = section(cfg, args.config, "dataset_params")
    diff = section(cfg, args.config, "diffusion_params")
    ldm = section(cfg, args.config, "ldm_params")
    ae = section(cfg, args.config, "autoencoder_params")
    train = cfg.get("train_params") or {}
    text = text_condition(ldm, args.config)

    lines = ["; model.ini: a model of the reference implementation, assembled by "
             "tools/reference_model.py",
             f"; from {os.path.basename(args.config)}",
             "[dataset]",
             f"resolution = {data.get('im_size')}",
             f"channels = {data.get('im_channels')}",
             "[diffusion]",
             f"num_timesteps = {diff.get('num_timesteps')}",
             f"beta_start = {value(diff.get('beta_start'))}",
             f"beta_end = {value(diff.get('beta_end'))}",
             "beta_schedule = scaled_linear",  # the reference's linspace of square roots, squared
             "prediction_type = epsilon",
             "[ldm]"]
    lines += model_section(ldm, UNET_KEYS, args.config, "ldm_params", ["condition_config"])
    image = (ldm.get("condition_config") or {}).get("image_condition_config")
    if image and "image" in ldm["condition_config"].get("condition_types", []):
        # the segmentation mask a celebhq_text_image_cond UNet takes (ldmcl-sample --mask)
        lines += [f"image_condition_input_channels = {image['image_condition_input_channels']}",
                  f"image_condition_output_channels = {image['image_condition_output_channels']}",
                  f"image_condition_h = {image['image_condition_h']}",
                  f"image_condition_w = {image['image_condition_w']}"]
    lines += ["[autoencoder]", "kind = vqvae"]
    lines += model_section(ae, VQVAE_KEYS, args.config, "autoencoder_params")
    lines.append("[text]")
    if text is None:
        lines.append("encoder = none")
    else:
        if not args.clip:
            fail("the config conditions on CLIP text features: --clip names the Hugging Face "
                 "CLIP folder the run used")
        width = clip_hidden_size(args.clip)
        if text.get("text_embed_dim") != width:
            fail(f"{args.config}: text_embed_dim = {text.get('text_embed_dim')} but "
                 f"{args.clip}/config.json has hidden_size {width}")
        clip_path = "clip" if args.copy_clip else os.path.abspath(args.clip)
        lines += ["encoder = clip_frozen", f"clip_path = {clip_path}",
                  f"context_length = {CONTEXT_LENGTH}"]

    task = os.path.join(args.run_dir, str(train.get("task_name", "")))
    unet = args.unet or os.path.join(task, str(train.get("ldm_ckpt_name", "")))
    vqvae = args.vqvae or os.path.join(task, str(train.get("vqvae_autoencoder_ckpt_name", "")))
    for what, path in (("UNet", unet), ("VQ-VAE", vqvae)):
        if not os.path.isfile(path):
            fail(f"the {what} checkpoint {path} does not exist")

    os.makedirs(args.out, exist_ok=True)
    if text is not None and args.copy_clip:
        copy_clip(args.clip, os.path.join(args.out, "clip"))
    for src, name, kind in ((unet, "unet", "unet"), (vqvae, "autoencoder", "vqvae")):
        n, count = convert_reference.convert(src, os.path.join(args.out, f"{name}.safetensors"),
                                             kind)
        print(f"{args.out}/{name}.safetensors: {n} tensors, {count} parameters from {src}")
    tmp = os.path.join(args.out, "model.ini.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, os.path.join(args.out, "model.ini"))
    scale = train.get("cf_guidance_scale", 1.0)
    print(f"{args.out}/model.ini written; the reference samples with --sampling-method ddpm "
          f"--cfg-scale {scale}")


if __name__ == "__main__":
    main()
