/* ldmcl/unet.h: the reference's conditional UNet (models/unet_cond_base.py; unet_base.py without
 * conditioning), built from its ldm_params keys, with parameters named as its state_dict:
 *   conv_in (or cond_conv_in + conv_in_concat with an image mask) -> t_proj(time embedding)
 *   (+ one-hot class x class_emb.weight) -> downs[i]: [resnet -> self-attn -> cross-attn] x n,
 *   4x4 s2 conv -> mids[i]: resnet, [self-attn -> cross-attn -> resnet] x n -> ups[j]: 4x4 s2
 *   transposed conv on in/2 channels, concat(upsampled, skip), [resnet -> self-attn ->
 *   cross-attn] x n -> norm_out -> SiLU -> conv_out.
 * Skips are pushed before each down block. Cross-attention exists in every block when the model
 * is text-conditioned. */
#ifndef LDMCL_UNET_H
#define LDMCL_UNET_H

#include <stddef.h>

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_UNET_MAX_LEVELS 8

typedef struct ldm_unet_config {
    int im_channels; /* channels of the latent */
    int down_channels[LDM_UNET_MAX_LEVELS], n_down;
    int mid_channels[LDM_UNET_MAX_LEVELS], n_mid;
    int down_sample[LDM_UNET_MAX_LEVELS]; /* n_down - 1 flags */
    int attn_down[LDM_UNET_MAX_LEVELS];   /* n_down - 1 flags */
    int time_emb_dim, norm_channels, num_heads, conv_out_channels;
    int num_down_layers, num_mid_layers, num_up_layers;
    int num_timesteps; /* the time embedding table covers [0, num_timesteps) */
    /* conditioning (condition_config); 0 when absent */
    int text_embed_dim;            /* text: cross-attention over a context [N, S, text_embed_dim] */
    int num_classes;               /* class: one-hot [N, num_classes] times class_emb.weight */
    int image_cond_input_channels; /* image: a mask [N, in, H, W] -> 1x1 conv -> concatenated */
    int image_cond_output_channels;
} ldm_unet_config;

/* celebhq_text_cond (the seed study's model): latent 4 channels, down [256, 384, 512, 768],
 * mid [768, 512], all downsample and attention, time_emb_dim 512, 32 groups, 16 heads,
 * conv_out 128, 2/2/2 layers, CLIP text 512; 118,506,500 parameters. */
void ldm_unet_config_celebhq_text(ldm_unet_config *c);

/* LDM_OK, or LDM_ERR_INVALID_ARGUMENT naming the first key that is wrong (the reference's
 * asserts, plus what its layers would reject: channels divisible by norm_channels and
 * num_heads, ...). */
ldm_status ldm_unet_config_check(const ldm_unet_config *c);

/* Conditioning inputs; NULL for what the model does not use. */
typedef struct ldm_unet_cond {
    ldm_tensor *context;      /* [N, S, text_embed_dim] */
    ldm_tensor *class_onehot; /* [N, num_classes] (all zero: no class) */
    ldm_tensor *mask;         /* [N, image_cond_input_channels, H', W'], resized to the latent */
} ldm_unet_cond;

/* Records the UNet on x [N, im_channels, H, W] and timesteps t [N] (float-valued integers),
 * creating its parameters on first use; returns the prediction [N, im_channels, H, W]. */
ldm_tensor *ldm_unet(ldm_graph *g, const ldm_unet_config *c, ldm_tensor *x, ldm_tensor *t,
                     const ldm_unet_cond *cond);

/* Number of parameters a configuration has (records it on a scratch graph). */
ldm_status ldm_unet_param_count(ldm_ctx *ctx, const ldm_unet_config *c, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
