/* ldmcl/run_config.h: the INI configuration of a training run (ldmcl-train; ldmcl-sample reads
 * the model parts back). Sections follow the reference's YAML (dataset_params, diffusion_params,
 * ldm_params, autoencoder_params, condition_config, train_params); training keys are named after
 * diffusers' train_text_to_image.py arguments:
 *
 *   [dataset]      path, resolution, channels, random_flip, caption_extension
 *   [diffusion]    num_timesteps, beta_start, beta_end, beta_schedule (linear | scaled_linear |
 *                  cosine), prediction_type (epsilon | v_prediction)
 *   [ldm]          down_channels, mid_channels, down_sample, attn_down, time_emb_dim,
 *                  norm_channels, num_heads, conv_out_channels, num_down_layers, num_mid_layers,
 *                  num_up_layers
 *   [autoencoder]  kind (vqvae | vae), z_channels, codebook_size, down_channels, mid_channels,
 *                  down_sample, attn_down, norm_channels, num_heads, num_down_layers,
 *                  num_mid_layers, num_up_layers, checkpoint (a trained autoencoder: no stage one),
 *                  latent_scaling (none | global | channel: see ldm_latent_stats), and in a
 *                  model.ini the statistics it resolved to: latent_mean, latent_std;
 *                  latent_patch (see ldm_latents_patchify)
 *   [text]         encoder (none | clip_frozen | clip_finetune | clip_scratch), clip_path (a
 *                  Hugging Face CLIP folder: config.json, model.safetensors, vocab.json,
 *                  merges.txt), vocab (OpenAI's bpe_simple_vocab_16e6.txt.gz, for clip_scratch),
 *                  width, layers, heads, intermediate_size, context_length, clip_skip,
 *                  cond_drop_prob
 *   [autoencoder_train]  train_batch_size, learning_rate, max_train_steps,
 *                  gradient_accumulation_steps, disc_start, disc_weight, codebook_weight,
 *                  commitment_beta, kl_weight, perceptual_weight, lpips_path
 *   [train]        output_dir, seed, train_batch_size, learning_rate, lr_scheduler (constant |
 *                  constant_with_warmup | linear | cosine), lr_warmup_steps, max_train_steps,
 *                  gradient_accumulation_steps, checkpointing_steps, checkpoints_total_limit,
 *                  resume_from_checkpoint (latest | none | a path), use_ema, ema_decay,
 *                  max_grad_norm, snr_gamma (min-SNR loss weighting; 0: off), noise_offset,
 *                  validation_prompts (separated by " | "), validation_steps,
 *                  validation_guidance_scale, validation_sampling_steps
 *
 * Absent keys take the defaults of ldm_run_config_init (the reference's mnist settings where it
 * has them). Unknown and duplicate keys, bad values and inconsistent models are errors naming
 * file, line and key. Relative paths are relative to the config file's folder. */
#ifndef LDMCL_RUN_CONFIG_H
#define LDMCL_RUN_CONFIG_H

#include "ldmcl/autoencoder.h"
#include "ldmcl/clip.h"
#include "ldmcl/diffusion.h"
#include "ldmcl/train.h"
#include "ldmcl/unet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_RUN_PATH 4096
#define LDM_RUN_MAX_PROMPTS 16

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

#define LDM_RUN_MAX_LATENT_CHANNELS 64

typedef enum ldm_lr_schedule {
    LDM_LR_CONSTANT = 0,
    LDM_LR_CONSTANT_WITH_WARMUP,
    LDM_LR_LINEAR,
    LDM_LR_COSINE
} ldm_lr_schedule;

typedef struct ldm_run_config {
    char path[LDM_RUN_PATH]; /* the config file */
    /* [dataset] */
    char dataset_path[LDM_RUN_PATH];
    int resolution, channels, random_flip;
    char caption_extension[32];
    /* [diffusion] */
    int num_timesteps;
    double beta_start, beta_end;
    ldm_schedule_kind beta_schedule;
    ldm_prediction prediction_type;
    /* [ldm], [autoencoder] */
    ldm_unet_config unet;
    ldm_autoencoder_config ae;
    char ae_checkpoint[LDM_RUN_PATH];
    ldm_latent_scaling latent_scaling;
    int n_latent_stats; /* 0, or the LDM's latent channels when latent_mean and latent_std are
                           set (model.ini) */
    /* 1: the LDM sees the latents as they are (the reference); p > 1: each p x p patch of them as
     * channels, z_channels p^2 channels at 1/p the size (ldm_latents_patchify) */
    int latent_patch;
    float latent_mean[LDM_RUN_MAX_LATENT_CHANNELS], latent_std[LDM_RUN_MAX_LATENT_CHANNELS];
    /* [text] */
    ldm_text_mode text;
    char clip_path[LDM_RUN_PATH], vocab[LDM_RUN_PATH];
    ldm_clip_text_config clip; /* clip_scratch: from width, layers, ...; else read from clip_path */
    int context_length, clip_skip;
    float cond_drop_prob;
    /* [autoencoder_train] */
    int ae_batch, ae_steps, ae_acc_steps, ae_disc_start;
    int ae_epochs; /* num_train_epochs (see epochs) */
    float ae_lr, ae_disc_weight, ae_codebook_weight, ae_commitment_beta, ae_kl_weight,
        ae_perceptual_weight;
    char lpips_path[LDM_RUN_PATH];
    /* [train] */
    char output_dir[LDM_RUN_PATH];
    uint64_t seed;
    int batch, max_steps, acc_steps, lr_warmup_steps, checkpointing_steps, checkpoints_limit;
    /* num_train_epochs: > 0 when it was given and max_train_steps was not (max_train_steps wins,
     * as in diffusers); ldm_run_config_resolve_epochs turns it into steps once the dataset is
     * counted */
    int epochs;
    float lr, ema_decay, max_grad_norm, validation_guidance_scale;
    float snr_gamma, noise_offset; /* diffusers' --snr_gamma, --noise_offset; 0: off */
    ldm_lr_schedule lr_schedule;
    char resume[LDM_RUN_PATH]; /* "", "latest" or a path */
    int use_ema, validation_steps, validation_sampling_steps, n_validation_prompts;
    char validation_prompts[LDM_RUN_MAX_PROMPTS][256];
} ldm_run_config;

/* The defaults: the reference's mnist configs, text-conditioned by a small CLIP trained from
 * scratch. */
void ldm_run_config_init(ldm_run_config *c);

/* Reads an INI file over the defaults and checks the whole run (models, sizes, paths). */
ldm_status ldm_run_config_read(const char *path, ldm_run_config *c);

/* Writes the model sections (dataset resolution and channels, diffusion, ldm, autoencoder, text)
 * as the model.ini of a model folder, atomically. vocab: the file name the folder's tokenizer
 * vocabulary has (clip_scratch), or NULL. A frozen CLIP keeps its clip_path. */
ldm_status ldm_run_config_write_model(const ldm_run_config *c, const char *path, const char *vocab);

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

/* The latents as the LDM sees them: channels (z_channels latent_patch^2) and height (the
 * autoencoder's latent height / latent_patch; resolution is square). */
int ldm_run_latent_channels(const ldm_run_config *c);
int ldm_run_latent_size(const ldm_run_config *c);

/* Latent patches as channels (PyTorch's pixel_unshuffle): z [n, channels, h, w] -> out [n,
 * channels p^2, h / p, w / p] with out[c p^2 + i p + j][y][x] = z[c][y p + i][x p + j]; with
 * inverse, the other way (pixel_shuffle: out [n, channels / p^2, h p, w p] from z [n, channels,
 * h, w]). h and w (inverse: channels) must divide by p (p^2); z and out must not overlap. */
void ldm_latents_patchify(const float *z, float *out, size_t n, int channels, int h, int w, int p,
                          int inverse);

/* The learning rate at a step (0-based) under the schedule with warm-up. */
float ldm_run_lr_at(const ldm_run_config *c, int step);

/* Steps from epochs over a dataset of `images` images: ceil(epochs * images / (batch *
 * accumulation)) for each stage whose epochs are set (the epochs are then cleared). */
void ldm_run_config_resolve_epochs(ldm_run_config *c, size_t images);

#ifdef __cplusplus
}
#endif
#endif
