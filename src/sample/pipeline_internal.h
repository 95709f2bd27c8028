/* src/sample/pipeline_internal.h: the pipeline's state, shared by pipeline.c (model folders) and
 * sd_pipeline.c (Stable Diffusion checkpoints). Private to the sample layer. */
#ifndef LDMCL_SAMPLE_PIPELINE_INTERNAL_H
#define LDMCL_SAMPLE_PIPELINE_INTERNAL_H

#include "ldmcl/autoencoder.h"
#include "ldmcl/clip.h"
#include "ldmcl/lora.h"
#include "ldmcl/pipeline.h"
#include "ldmcl/sd_model.h"
#include "ldmcl/tokenizer.h"

struct ldm_pipeline {
    ldm_model_config cfg;
    ldm_pipeline_options o;
    ldm_schedule *schedule;
    ldm_sampler *sampler;
    ldm_ae_codec *codec;
    ldm_ctx *ctx;
    ldm_clip_tokenizer *tokenizer;
    int owns_tokenizer;
    char *warned; /* the last prompt said to be cut (said once, not at every generation) */
    ldm_clip_encoder *encoder;      /* for the batch's prompts */
    int lat_h, lat_w, lat_channels; /* the UNet's latents */
    int img_h, img_w;               /* the images (the model's resolution, or -H/-W) */
    const char **prompts;           /* [batch]: the prompt of each image */
    float *context, *uncond, *latents;
    float *restored;            /* latents with the model's latent scaling undone, to decode */
    float *plain;               /* and with latent_patch undone: the autoencoder's latents */
    float *preview;             /* decoded x0 previews, with an x0 hook */
    float *init_lat, *mask_lat; /* img2img's latents and inpainting's mask on the latent grid */
    float *mask_cond;           /* a mask-conditioned UNet's segmentation mask, [batch, ...] */
    char unet_name[LDM_MODEL_PATH + 40]; /* the UNet's weights, for messages */
    char ae_path[LDM_MODEL_PATH + 32];
    ldm_sd_model *sd;       /* a Stable Diffusion checkpoint's (sd_pipeline.c), or NULL */
    ldm_sd_codec *sd_codec; /* its VAE */
    float *masked;          /* SD inpainting: the init images with the repainted part zeroed */
    ldm_lora_ref loras[LDM_LORA_MAX_REFS]; /* the LoRAs merged into the weights now */
    int n_loras;
    char **clean; /* [batch]: the prompts without their <lora:...> tags */
};

/* Takes the <lora:NAME:WEIGHT> tags out of prompts[0 .. batch) into p->clean (*use points at
 * them) and brings the LoRAs merged into the weights to what they name (every prompt of a batch
 * must name the same; the weights of one name add up): each LoRA whose weight changes is merged
 * with the difference. */
ldm_status ldm_pipeline_take_loras(ldm_pipeline *p, const char *const *prompts,
                                   const char *const **use);

/* The host arrays of the batch's prompts and their contexts (rows of context_length x hidden). */
ldm_status ldm_pipeline_alloc_text(ldm_pipeline *p);
/* Fails, naming the weights in `weights`, when the latents to decode or the decoded images (n_lat
 * and n_img values) hold NaN or infinite values. */
ldm_status ldm_pipeline_check_finite(const float *latents, size_t n_lat, const float *images,
                                     size_t n_img, const char *what, const char *weights);

/* The sampler's x0 hook that decodes previews for the options' hook (NULL take: none). */
ldm_x0_hook ldm_pipeline_preview_hook(ldm_pipeline *p);

/* Stable Diffusion: opens path (ldm_pipeline_is_sd) into p, whose options are set; decodes
 * latents as the UNet sees them; prepares img2img's and inpainting's latents (p->init_lat,
 * p->mask_lat, and for the inpainting UNet its 5 extra channels in p->mask_cond). */
ldm_status ldm_sd_pipeline_open(ldm_ctx *ctx, ldm_pipeline *p, const char *path);
ldm_status ldm_sd_pipeline_decode(ldm_pipeline *p, const float *latents, float *images);
ldm_status ldm_sd_pipeline_prepare_init(ldm_pipeline *p, const float *init_images,
                                        const float *mask);

#endif
