/* ldmcl/model.h: a text-to-image model described apart from any training run: what a model
 * folder's model.ini holds, which ldmcl-sample opens and ldmcl-train writes. Its sections are
 * those of a training config (ldmcl/run_config.h embeds this description), read by the same
 * rules:
 *
 *   [dataset]      resolution, channels (the images)
 *   [diffusion]    num_timesteps, beta_start, beta_end, beta_schedule (linear | scaled_linear |
 *                  cosine), prediction_type (epsilon | v_prediction)
 *   [ldm]          down_channels, mid_channels, down_sample, attn_down, time_emb_dim,
 *                  norm_channels, num_heads, conv_out_channels, num_down_layers, num_mid_layers,
 *                  num_up_layers; image_condition_input_channels, image_condition_output_channels,
 *                  image_condition_h, image_condition_w (the reference's image_condition_config:
 *                  a one-hot segmentation mask as a condition; 0: none)
 *   [autoencoder]  kind (vqvae | vae), z_channels, codebook_size, down_channels, mid_channels,
 *                  down_sample, attn_down, norm_channels, num_heads, num_down_layers,
 *                  num_mid_layers, num_up_layers, latent_scaling (none | global | channel: see
 *                  ldm_latent_stats) and the statistics it resolved to (latent_mean,
 *                  latent_std), latent_patch (see ldm_latents_patchify)
 *   [text]         encoder (none | clip_frozen | clip_finetune | clip_scratch), clip_path (a
 *                  Hugging Face CLIP folder: config.json, model.safetensors, vocab.json,
 *                  merges.txt), vocab (OpenAI's bpe_simple_vocab_16e6.txt.gz, for clip_scratch),
 *                  width, layers, heads, intermediate_size, context_length, clip_skip
 *
 * Absent keys take the defaults of ldm_model_config_init (the reference's mnist settings where it
 * has them). Relative paths are relative to the INI file's folder. The UNet file of a model
 * folder records its prediction type and noise schedule in its metadata (ldm_diffusion_meta). */
#ifndef LDMCL_MODEL_H
#define LDMCL_MODEL_H

#include <stddef.h>

#include "ldmcl/autoencoder.h"
#include "ldmcl/clip.h"
#include "ldmcl/diffusion.h"
#include "ldmcl/ini.h"
#include "ldmcl/unet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_MODEL_PATH 4096
#define LDM_MODEL_MAX_LATENT_CHANNELS 64

/* What the UNet predicts: the noise (the reference) or v = alpha eps - sigma x0. */
typedef enum ldm_prediction { LDM_PREDICT_EPSILON = 0, LDM_PREDICT_V = 1 } ldm_prediction;

typedef enum ldm_text_mode {
    LDM_TEXT_NONE = 0,      /* unconditional */
    LDM_TEXT_CLIP_FROZEN,   /* a pretrained CLIP text encoder, frozen (the reference) */
    LDM_TEXT_CLIP_FINETUNE, /* a pretrained one, trained with the UNet */
    LDM_TEXT_CLIP_SCRATCH   /* a CLIP-architecture encoder trained from scratch with the UNet */
} ldm_text_mode;

/* How the LDM sees the autoencoder's latents: as they are (the reference), divided by their
 * standard deviation (the LDM paper's scale_by_std, Stable Diffusion's scale_factor), or each
 * channel standardised by its own mean and standard deviation. */
typedef enum ldm_latent_scaling {
    LDM_LATENT_NONE = 0,
    LDM_LATENT_GLOBAL,
    LDM_LATENT_CHANNEL
} ldm_latent_scaling;

typedef struct ldm_model_config {
    /* [dataset] */
    int resolution, channels;
    /* [diffusion] */
    int num_timesteps;
    double beta_start, beta_end;
    ldm_schedule_kind beta_schedule;
    ldm_prediction prediction_type;
    /* [ldm], [autoencoder] */
    ldm_unet_config unet;
    ldm_autoencoder_config ae;
    ldm_latent_scaling latent_scaling;
    int n_latent_stats; /* 0, or the LDM's latent channels when latent_mean and latent_std are
                           set (model.ini) */
    /* 1: the LDM sees the latents as they are (the reference); p > 1: each p x p patch of them as
     * channels, z_channels p^2 channels at 1/p the size (ldm_latents_patchify) */
    int latent_patch;
    float latent_mean[LDM_MODEL_MAX_LATENT_CHANNELS], latent_std[LDM_MODEL_MAX_LATENT_CHANNELS];
    /* [text] */
    ldm_text_mode text;
    char clip_path[LDM_MODEL_PATH], vocab[LDM_MODEL_PATH];
    ldm_clip_text_config clip; /* clip_scratch: from width, layers, ...; else read from clip_path */
    int context_length, clip_skip;
    /* [ldm] image_condition_h, image_condition_w: the size of the segmentation mask an
     * image-conditioned UNet (unet.image_cond_input_channels > 0) takes */
    int image_cond_h, image_cond_w;
} ldm_model_config;

/* The defaults: the reference's mnist model, text-conditioned by a small CLIP trained from
 * scratch. */
void ldm_model_config_init(ldm_model_config *m);

/* The model keys of an INI file read over m (path: the file, for messages and relative paths;
 * the keys are marked used, the caller checks for unknown ones); then ldm_model_config_check. */
ldm_status ldm_model_config_read_ini(ldm_ini *ini, const char *path, ldm_model_config *m);

/* Checks that the parts fit together (images and autoencoder, latents and UNet, text widths),
 * reads a pretrained CLIP's config.json, and fills in what follows from the rest (the UNet's
 * input channels and timesteps, the autoencoder's image channels). Errors name path. */
ldm_status ldm_model_config_check(ldm_model_config *m, const char *path);

/* A model.ini over the defaults: unknown or duplicate keys, bad values and inconsistent models
 * are errors naming file, line and key. */
ldm_status ldm_model_config_read(const char *path, ldm_model_config *m);

/* Writes m as a model.ini, atomically. vocab: the file name the folder's tokenizer vocabulary
 * has (clip_scratch), or NULL for m's own. A frozen CLIP keeps its clip_path. */
ldm_status ldm_model_config_write(const ldm_model_config *m, const char *path, const char *vocab);

/* The latents as the LDM sees them: channels (z_channels latent_patch^2) and height (the
 * autoencoder's latent height / latent_patch; images are square). */
int ldm_model_latent_channels(const ldm_model_config *m);
int ldm_model_latent_size(const ldm_model_config *m);

/* The statistics of a latent cache z [n, channels, hw] (hw values per channel and item) under a
 * scaling: per channel mean and standard deviation (channel), zero and the standard deviation of
 * all values (global), or zero and one (none). A constant channel (or cache) cannot be scaled:
 * an error naming it. */
ldm_status ldm_latent_stats(ldm_latent_scaling scaling, const float *z, size_t n, int channels,
                            size_t hw, float *mean, float *std);

/* z = (z - mean) / std per channel, or with inverse its undoing z = z * std + mean (before
 * decoding sampled latents). */
void ldm_latents_normalize(float *z, size_t n, int channels, size_t hw, const float *mean,
                           const float *std, int inverse);

/* Latent patches as channels (PyTorch's pixel_unshuffle): z [n, channels, h, w] -> out [n,
 * channels p^2, h / p, w / p] with out[c p^2 + i p + j][y][x] = z[c][y p + i][x p + j]; with
 * inverse, the other way (pixel_shuffle: out [n, channels / p^2, h p, w p] from z [n, channels,
 * h, w]). h and w (inverse: channels) must divide by p (p^2); z and out must not overlap. */
void ldm_latents_patchify(const float *z, float *out, size_t n, int channels, int h, int w, int p,
                          int inverse);

/* What a UNet file says of its diffusion, in its metadata (ldmcl writes these keys): */
#define LDM_META_PREDICTION "ldmcl.prediction_type"
#define LDM_META_SCHEDULE "ldmcl.beta_schedule"
#define LDM_META_TIMESTEPS "ldmcl.num_timesteps"
#define LDM_META_BETA_START "ldmcl.beta_start"
#define LDM_META_BETA_END "ldmcl.beta_end"
typedef struct ldm_diffusion_meta {
    ldm_prediction prediction;
    ldm_schedule_kind schedule;
    int num_timesteps;
    double beta_start, beta_end;
    int from_file; /* 1: the file said so; 0: the reference's defaults were assumed */
} ldm_diffusion_meta;

/* The metadata of a UNet file, or the reference's (epsilon, scaled_linear, 1000 steps, 0.00085
 * .. 0.012) for a file without them (a converted reference checkpoint). */
ldm_status ldm_diffusion_read_meta(const char *path, ldm_diffusion_meta *meta);

#ifdef __cplusplus
}
#endif
#endif
