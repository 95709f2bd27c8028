/* ldmcl/run_config.h: the INI configuration of a training run (ldmcl-train): the model it trains
 * (ldmcl/model.h, what a model folder's model.ini holds) and how. Sections follow the reference's
 * YAML (dataset_params, diffusion_params, ldm_params, autoencoder_params, condition_config,
 * train_params); training keys are named after diffusers' train_text_to_image.py arguments:
 *
 *   the model's sections and keys (ldmcl/model.h: [dataset] resolution and channels,
 *                  [diffusion], [ldm], [autoencoder], [text]), and beside them:
 *   [dataset]      path, random_flip, caption_extension
 *   [autoencoder]  checkpoint (a trained autoencoder: no stage one)
 *   [text]         cond_drop_prob
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

#include <stdint.h>

#include "ldmcl/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_RUN_PATH LDM_MODEL_PATH
#define LDM_RUN_MAX_PROMPTS 16

typedef enum ldm_lr_schedule {
    LDM_LR_CONSTANT = 0,
    LDM_LR_CONSTANT_WITH_WARMUP,
    LDM_LR_LINEAR,
    LDM_LR_COSINE
} ldm_lr_schedule;

typedef struct ldm_run_config {
    char path[LDM_RUN_PATH]; /* the config file */
    ldm_model_config model;  /* the model trained */
    /* [dataset] */
    char dataset_path[LDM_RUN_PATH];
    int random_flip;
    char caption_extension[32];
    /* [autoencoder] */
    char ae_checkpoint[LDM_RUN_PATH];
    /* [text] */
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
 * scratch (the model's: ldm_model_config_init). */
void ldm_run_config_init(ldm_run_config *c);

/* Reads an INI file over the defaults and checks the whole run (models, sizes, paths). */
ldm_status ldm_run_config_read(const char *path, ldm_run_config *c);

/* The learning rate at a step (0-based) under the schedule with warm-up. */
float ldm_run_lr_at(const ldm_run_config *c, int step);

/* Steps from epochs over a dataset of `images` images: ceil(epochs * images / (batch *
 * accumulation)) for each stage whose epochs are set (the epochs are then cleared). */
void ldm_run_config_resolve_epochs(ldm_run_config *c, size_t images);

#ifdef __cplusplus
}
#endif
#endif
