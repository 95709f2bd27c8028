"""tools/refgen/sd_names.py: the names of Stable Diffusion's UNet parameters in diffusers'
layout (UNet2DConditionModel) turned into the original repository's (openaimodel.UNetModel, the
single-file checkpoint's model.diffusion_model.*), which ldmcl records. Written from the two
models' module structure: diffusers' down_blocks.i.{resnets,attentions}.j are the original's
input_blocks.(1 + i (L + 1) + j).{0,1}, its downsamplers the block after them; up_blocks.i the
output_blocks i (L + 1) + j, L = layers_per_block.

The KL autoencoder's: diffusers' encoder.down_blocks.i / decoder.up_blocks.i are the original's
encoder.down.i / decoder.up.(levels - 1 - i) (diffusers counts decoder levels from the deepest),
resnets.j is block.j, mid_block.resnets.0/1 mid.block_1/2, and the mid attention's group_norm,
to_q, to_k, to_v, to_out.0 (Linear [C, C]) are attn_1's norm, q, k, v, proj_out (1x1 convs
[C, C, 1, 1]: vae_to_original says to reshape).
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


VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
              "conv_shortcut": "nin_shortcut"}
VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_original(key, levels):
    """key: a diffusers AutoencoderKL state_dict key -> (original name, whether a Linear weight
    becomes a 1x1 conv's)."""
    for part in ("encoder", "decoder"):
        for a, b in (("conv_norm_out", "norm_out"), ("conv_in", "conv_in"),
                     ("conv_out", "conv_out")):
            if key.startswith(f"{part}.{a}."):
                return f"{part}.{b}.{key.split('.')[-1]}", False
    for a in ("quant_conv", "post_quant_conv"):
        if key.startswith(a + "."):
            return key, False
    m = re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(\w+)\.(\w+)$", key)
    if m:
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{VAE_RESNET[m[3]]}.{m[4]}", False
    m = re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)$", key)
    if m:
        return f"{m[1]}.mid.attn_1.{VAE_ATTN[m[2]]}.{m[3]}", m[2] != "group_norm" and m[3] == "weight"
    m = re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(\w+)$", key)
    if m:
        return f"encoder.down.{m[1]}.block.{m[2]}.{VAE_RESNET[m[3]]}.{m[4]}", False
    m = re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)$", key)
    if m:
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}", False
    m = re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(\w+)$", key)
    if m:
        return f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{VAE_RESNET[m[3]]}.{m[4]}", False
    m = re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)$", key)
    if m:
        return f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}", False
    raise KeyError(f"no original name for diffusers AutoencoderKL key {key!r}")
