"""tools/refgen/sd_names.py: the names of Stable Diffusion's UNet parameters in diffusers'
layout (UNet2DConditionModel) turned into the original repository's (openaimodel.UNetModel, the
single-file checkpoint's model.diffusion_model.*), which ldmcl records. Written from the two
models' module structure: diffusers' down_blocks.i.{resnets,attentions}.j are the original's
input_blocks.(1 + i (L + 1) + j).{0,1}, its downsamplers the block after them; up_blocks.i the
output_blocks i (L + 1) + j, L = layers_per_block.
"""
import re

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
          "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def _resnet(rest):
    head, _, tail = rest.partition(".")
    return f"{RESNET[head]}.{tail}"


def unet_to_original(key, layers_per_block, up_has_attention):
    """key: a diffusers UNet2DConditionModel state_dict key. up_has_attention[i]: whether
    up_blocks.i has attentions (its upsampler then follows the SpatialTransformer)."""
    L = layers_per_block
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for a, b in fixed.items():
        if key.startswith(a + "."):
            return b + key[len(a):]
    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        k = 1 + i * (L + 1) + j
        return f"input_blocks.{k}.0.{_resnet(rest)}" if kind == "resnets" else \
            f"input_blocks.{k}.1.{rest}"
    m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key)
    if m:
        return f"input_blocks.{1 + int(m[1]) * (L + 1) + L}.0.op.{m[2]}"
    m = re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key)
    if m:
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    m = re.match(r"mid_block\.attentions\.0\.(.*)", key)
    if m:
        return f"middle_block.1.{m[1]}"
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        k = i * (L + 1) + j
        return f"output_blocks.{k}.0.{_resnet(rest)}" if kind == "resnets" else \
            f"output_blocks.{k}.1.{rest}"
    m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key)
    if m:
        i = int(m[1])
        return f"output_blocks.{i * (L + 1) + L}.{2 if up_has_attention[i] else 1}.conv.{m[2]}"
    raise KeyError(f"no original name for diffusers UNet key {key!r}")
