/* ldmcl/pipeline.h: text to image with a trained model folder, as ldmcl-train writes it (or as a
 * person assembles one around converted reference checkpoints):
 *   model.ini                 the model's description (ldmcl/model.h: diffusion, ldm,
 *                             autoencoder, text, dataset resolution and channels)
 *   unet.safetensors          the UNet (ldmcl metadata: prediction type and schedule)
 *   autoencoder.safetensors   the autoencoder
 *   text_encoder.safetensors  the CLIP text encoder when it was trained (clip_finetune,
 *                             clip_scratch); a frozen one is read from the config's clip_path
 *   the tokenizer's files     the config's vocab (clip_scratch) or clip_path's vocab.json and
 *                             merges.txt
 * A prompt (and an optional negative prompt, the unconditional branch of guidance; "" by
 * default) is tokenized and encoded (one recorded encoder for the batch), the latents sampled (any
 * sampler of ldmcl/sample.h, classifier-free guidance; from an init image for img2img and
 * inpainting), then decoded (after undoing model.ini's latent_scaling, if
 * any). Every file is checked when opened (weights must be finite); errors name it. Latents or
 * images holding NaN or infinite values are an error naming the weights to suspect, never a result.
 */
#ifndef LDMCL_PIPELINE_H
#define LDMCL_PIPELINE_H

#include <stdint.h>

#include "ldmcl/graph.h"
#include "ldmcl/model.h"
#include "ldmcl/sample.h"
#include "ldmcl/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_pipeline_options {
    ldm_sampler_method method; /* ldmcl/sample.h (0 = DDPM: all T steps) */
    int steps;                 /* sampling steps (not DDPM's) */
    float guidance_scale;      /* > 1: classifier-free guidance */
    float eta;
    int batch; /* images per generation */
    /* x0 previews (ldmcl/sample.h), decoded: take() receives images [batch, C, height, width]
     * (decoder output, about [-1, 1]) */
    ldm_x0_hook x0_hook;
    ldm_sigma_schedule scheduler; /* the sigma-space samplers' levels (discrete: 0) */
    ldm_step_hook progress;       /* after every sampling step (zero: none) */
    int height, width;            /* of the images (0: the model's resolution); multiples of the
                                     autoencoder's and the UNet's downsampling */
    /* Stable Diffusion checkpoints (ldmcl/sd_model.h) */
    const char *tokenizer; /* CLIP's vocabulary (bpe_simple_vocab_16e6.txt.gz or a Hugging Face
                              tokenizer folder) for a single file, which holds none; NULL: a
                              diffusers folder's tokenizer/ */
    int clip_skip;         /* A1111's: 0 or 1 the model's own layer, 2 one layer earlier, ... */
    int prediction;        /* 0: what the model says; 1 epsilon; 2 v */
    int half_weights;      /* 1: the UNet's, VAE's and text encoder's weights stay in half
                              precision on the device (half their memory; float arithmetic) */
    int vae_tile;          /* > 0: decode a tile of this many latent cells at a time, seams
                              blended (ldm_sd_codec_create; stable-diffusion.cpp's 32) */
    const char *lora_dir;  /* where prompts' <lora:NAME:WEIGHT> tags find NAME.safetensors
                              (kohya's format, ldmcl/lora.h; merged into the weights while a
                              prompt names them); NULL: a prompt with a tag is an error */
} ldm_pipeline_options;

typedef struct ldm_pipeline ldm_pipeline;

/* model_dir: a model folder (model.ini), or a Stable Diffusion 1.x/2.x checkpoint as users have
 * it (a .safetensors single file or a diffusers folder: ldmcl/sd_model.h; its resolution is
 * 512, or 768 for 2.x v-prediction; 8 pixels per latent). */
ldm_status ldm_pipeline_open(ldm_ctx *ctx, const char *model_dir, const ldm_pipeline_options *o,
                             ldm_pipeline **out);
/* The Stable Diffusion model a pipeline runs (NULL for a model folder's). */
struct ldm_sd_model;
const struct ldm_sd_model *ldm_pipeline_sd_model(const ldm_pipeline *p);
/* Whether path is a Stable Diffusion checkpoint (a file, or a folder with unet/config.json and no
 * model.ini) rather than a model folder. */
int ldm_pipeline_is_sd(const char *path);

/* A pipeline over weights already on the device, as a training run makes its validation grids:
 * the UNet's and the text encoder's entries of parameter stores, bound, not copied (what a
 * training step changes, the next generation uses), and the autoencoder read once from its file.
 * model: the model's description, with latent_mean and latent_std when it has latent_scaling. */
typedef struct ldm_pipeline_weights {
    ldm_params *unet;              /* the store with the UNet's entries */
    ldm_params *text;              /* the store with text_model.* (NULL without a text encoder) */
    ldm_clip_tokenizer *tokenizer; /* borrowed: it must outlive the pipeline (NULL without text) */
    const char *autoencoder;       /* the autoencoder's safetensors file */
    const ldm_lora_config *lora;   /* the stores' LoRA adapters (the UNet's; a text encoder's
                                      trained in the step), as the training step applies them
                                      (ldm_graph_lora of the step); NULL: none */
} ldm_pipeline_weights;
ldm_status ldm_pipeline_create(ldm_ctx *ctx, const ldm_model_config *model,
                               const ldm_pipeline_weights *w, const ldm_pipeline_options *o,
                               ldm_pipeline **out);
void ldm_pipeline_destroy(ldm_pipeline *p);

/* The model's description (its channels), and the images' height and width (the model's
 * resolution unless the options said otherwise). */
const ldm_model_config *ldm_pipeline_config(const ldm_pipeline *p);
void ldm_pipeline_image_size(const ldm_pipeline *p, int *height, int *width);

/* batch images [batch, C, height, width] (decoder output, about [-1, 1]) for a prompt; the start
 * noise and every step's noise from seed. */
ldm_status ldm_pipeline_generate(ldm_pipeline *p, const char *prompt, const char *negative,
                                 uint64_t seed, float *images);

/* The same with a prompt per image: prompts[0 .. batch) (a validation grid's). */
ldm_status ldm_pipeline_generate_each(ldm_pipeline *p, const char *const *prompts,
                                      const char *negative, uint64_t seed, float *images);

/* A mask-conditioned UNet's condition (model.ini [ldm] image_condition_*, the reference's
 * image_condition_config) for the next generations: mask [batch, image_condition_input_channels,
 * image_condition_h, image_condition_w], one-hot segmentation classes, copied. The
 * unconditional branch of guidance sees zeros, as the reference's sampler. Generating without
 * one is an error saying so. */
ldm_status ldm_pipeline_set_mask_condition(ldm_pipeline *p, const float *mask);

/* img2img (SDEdit) and inpainting: init_images [batch, C, height, width] (about [-1, 1]) are
 * encoded by the autoencoder (and patched and scaled as model.ini says), noised to the step that
 * strength (0, 1] selects, and the rest of the chain denoises them (ldm_sampler_set_init). mask
 * [batch, height, width] (NULL: img2img) in [0, 1], 1 where the image is repainted (white, as
 * A1111), averaged over each latent cell: elsewhere the latents keep the init's, re-noised to
 * every step's level. Any sampler. */
ldm_status ldm_pipeline_generate_from(ldm_pipeline *p, const char *prompt, const char *negative,
                                      uint64_t seed, const float *init_images, const float *mask,
                                      float strength, float *images);

/* The two halves of ldm_pipeline_generate: the sampled latents as the UNet sees them ([batch,
 * ldm_model_latent_channels, ldm_model_latent_size, same]: normalised when model.ini has
 * latent_scaling, patches as channels with latent_patch), and their decoding (the scaling and
 * the patching undone first; latents are not changed). */
ldm_status ldm_pipeline_generate_latents(ldm_pipeline *p, const char *prompt, const char *negative,
                                         uint64_t seed, float *latents);
ldm_status ldm_pipeline_decode(ldm_pipeline *p, const float *latents, float *images);

#ifdef __cplusplus
}
#endif
#endif
