/* ldmcl/sd_unet.h: Stable Diffusion's UNet (1.x and 2.x; the original repository's
 * openaimodel.UNetModel with SpatialTransformer, diffusers' UNet2DConditionModel), recorded on a
 * graph with parameters named as the original's state_dict without "model.diffusion_model.":
 *   time_embed (sinusoid of model_channels, cos first -> Linear -> SiLU -> Linear, 4x wide)
 *   input_blocks.0.0 conv_in; per level l and block b: input_blocks.k.0 ResBlock
 *     (in_layers GroupNorm SiLU conv, + emb_layers.1(SiLU(emb)), out_layers GroupNorm SiLU conv,
 *     + skip_connection 1x1 conv where channels change), input_blocks.k.1 SpatialTransformer where
 *     the level has attention; then input_blocks.k.0.op (3x3 stride-2 conv) below the last level
 *   middle_block: ResBlock, SpatialTransformer, ResBlock
 *   output_blocks: per level from the deepest, num_res_blocks + 1 blocks of ResBlock on
 *     concat(h, skip) (+ SpatialTransformer), the last one of a level above 0 ending in Upsample
 *     (nearest x2, 3x3 conv .conv)
 *   out: GroupNorm, SiLU, 3x3 conv.
 * SpatialTransformer: GroupNorm (eps 1e-6), proj_in (1x1 conv, or Linear with linear_proj),
 * transformer_blocks.d: x + attn1(norm1 x) (self), x + attn2(norm2 x, context), x +
 * ff(norm3 x) (ff.net.0.proj -> GEGLU -> ff.net.2); attentions to_q, to_k, to_v without bias and
 * to_out.0; proj_out; + the input. */
#ifndef LDMCL_SD_UNET_H
#define LDMCL_SD_UNET_H

#include <stddef.h>

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_SD_MAX_LEVELS 6
#define LDM_SD_MAX_RES_BLOCKS 6

typedef struct ldm_sd_unet_config {
    int in_channels, out_channels; /* 4 and 4; 9 in for the inpainting UNet */
    int model_channels;            /* 320 */
    int channel_mult[LDM_SD_MAX_LEVELS], n_levels;
    int attn_levels[LDM_SD_MAX_LEVELS]; /* level l has SpatialTransformers (1/0) */
    int num_res_blocks;
    int num_heads;         /* > 0: heads per attention (1.x: 8) ... */
    int head_channels;     /* ... or > 0: channels / head_channels heads (2.x: 64) */
    int transformer_depth; /* BasicTransformerBlocks per SpatialTransformer (1) */
    int context_dim;       /* 768 (CLIP ViT-L/14), 1024 (OpenCLIP ViT-H/14) */
    int linear_proj;       /* proj_in/out as Linear (2.x) instead of 1x1 conv (1.x) */
    int norm_groups;       /* 32 */
} ldm_sd_unet_config;

/* SD 1.x (v1-inference.yaml): 859,520,964 parameters; in_channels 9 for the inpainting UNet. */
void ldm_sd_unet_config_sd1(ldm_sd_unet_config *c);
/* SD 2.x (v2-inference.yaml, 512 and 768-v alike): 865,910,724 parameters. */
void ldm_sd_unet_config_sd2(ldm_sd_unet_config *c);

/* LDM_OK, or LDM_ERR_INVALID_ARGUMENT naming the first value that is wrong. */
ldm_status ldm_sd_unet_config_check(const ldm_sd_unet_config *c);

/* Heads of the attentions at `channels`. */
int ldm_sd_unet_heads(const ldm_sd_unet_config *c, int channels);

/* Records the UNet on x [N, in_channels, H, W] (H, W divisible by 2^(levels-1)), timesteps t [N]
 * (real-valued) and context [N, S, context_dim]; creates its parameters on first use; returns
 * [N, out_channels, H, W]. */
ldm_tensor *ldm_sd_unet(ldm_graph *g, const ldm_sd_unet_config *c, ldm_tensor *x, ldm_tensor *t,
                        ldm_tensor *context);

/* Number of parameters of a configuration (recorded on a scratch graph). */
ldm_status ldm_sd_unet_param_count(ldm_ctx *ctx, const ldm_sd_unet_config *c, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
