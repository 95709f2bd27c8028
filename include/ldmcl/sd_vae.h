/* ldmcl/sd_vae.h: Stable Diffusion's KL autoencoder (the original repository's
 * AutoencoderKL, diffusers' AutoencoderKL; the same for SD 1.x and 2.x), recorded on a graph with
 * parameters named as the original's state_dict without "first_stage_model.":
 *   encoder: conv_in -> down.i.block.j (ResnetBlocks: norm1 SiLU conv1 norm2 SiLU conv2, +
 *     nin_shortcut 1x1 where channels change), down.i.downsample.conv (zero pad right and bottom
 *     by 1, 3x3 stride 2) below the last level -> mid.block_1, mid.attn_1 (one head: norm, q, k, v,
 *     proj_out as 1x1 convs), mid.block_2 -> norm_out SiLU conv_out (2 z channels) -> quant_conv
 *   decoder: post_quant_conv -> conv_in -> mid -> up.i.block.j (num_res_blocks + 1 per level, the
 *     deepest level first), up.i.upsample.conv (nearest x2, 3x3) above level 0 -> norm_out SiLU
 *     conv_out.
 * GroupNorms have eps 1e-6. Latents for the UNet are the posterior's mean (or a sample) times
 * scaling_factor; decoding divides by it first. */
#ifndef LDMCL_SD_VAE_H
#define LDMCL_SD_VAE_H

#include <stddef.h>

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_SD_VAE_MAX_LEVELS 6

typedef struct ldm_sd_vae_config {
    int in_channels, out_channels; /* 3, 3 */
    int ch;                        /* 128 */
    int ch_mult[LDM_SD_VAE_MAX_LEVELS], n_levels;
    int num_res_blocks;   /* 2 */
    int z_channels;       /* 4 (the encoder's conv_out gives 2 z: mean and log-variance) */
    int embed_dim;        /* 4: the latent's channels after quant_conv */
    int norm_groups;      /* 32 */
    float scaling_factor; /* 0.18215 */
} ldm_sd_vae_config;

/* SD 1.x and 2.x: 83,653,863 parameters. */
void ldm_sd_vae_config_sd(ldm_sd_vae_config *c);

/* LDM_OK, or LDM_ERR_INVALID_ARGUMENT naming the first value that is wrong. */
ldm_status ldm_sd_vae_config_check(const ldm_sd_vae_config *c);

/* Records the encoder on images x [N, in_channels, H, W] in [-1, 1] (H, W multiples of
 * 2^(levels-1)); returns the posterior's mean [N, embed_dim, H/f, W/f] (unscaled) and, when
 * logvar is not NULL, its log-variance (the original clamps it to [-30, 20] before drawing a
 * sample; a caller that draws does so). */
ldm_tensor *ldm_sd_vae_encode(ldm_graph *g, const ldm_sd_vae_config *c, ldm_tensor *x,
                              ldm_tensor **logvar);

/* Records the decoder on unscaled latents z [N, embed_dim, h, w]; returns images
 * [N, out_channels, h f, w f] (about [-1, 1]). */
ldm_tensor *ldm_sd_vae_decode(ldm_graph *g, const ldm_sd_vae_config *c, ldm_tensor *z);

/* Number of parameters of encoder and decoder together (recorded on a scratch graph). */
ldm_status ldm_sd_vae_param_count(ldm_ctx *ctx, const ldm_sd_vae_config *c, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
