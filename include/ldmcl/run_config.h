/* ldmcl/run_config.h: the INI configuration of a training run (ldmcl-train): the model it trains
 * (ldmcl/model.h, what a model folder's model.ini holds) and how. Sections follow the reference's
 * YAML (dataset_params, diffusion_params, ldm_params, autoencoder_params, condition_config,
 * train_params); training keys are named after diffusers' train_text_to_image.py arguments:
 *
 *   the model's sections and keys (ldmcl/model.h: [dataset] resolution and channels,
 *                  [diffusion], [ldm], [autoencoder], [text]), and beside them:
 *   [model]        pretrained (an ldmcl model folder, as ldmcl-train writes one: the model is
 *                  its model.ini, the keys of the model's sections above read over it; the LDM
 *                  stage starts from its weights and its autoencoder encodes the latents: no
 *                  stage one)
 *   [lora]         rank (0: off), alpha (0, the default: the rank), targets (attn | attn+ff |
 *                  all_linear, each optionally +conv; default attn), dropout (0 only, for now),
 *                  text_encoder (adapters on a text encoder trained in the step too):
 *                  LoRA adapters on a pretrained model, the only trained values
 *   [dataset]      path, random_flip, caption_extension, shuffle_caption, keep_tokens,
 *                  caption_tag_dropout_rate (sd-scripts' caption augmentations,
 *                  ldmcl/caption_tags.h)
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
 *                  validation_guidance_scale, validation_sampling_steps,
 *                  gradient_checkpointing
 *
 * Absent keys take the defaults of ldm_run_config_init (the reference's mnist settings where it
 * has them). Unknown and duplicate keys, bad values and inconsistent models are errors naming
 * file, line and key. Relative paths are relative to the config file's folder. */
#ifndef LDMCL_RUN_CONFIG_H
#define LDMCL_RUN_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "ldmcl/ae_train.h"
#include "ldmcl/caption_tags.h"
#include "ldmcl/graph.h"
#include "ldmcl/ini.h"
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

/* Stage one, [autoencoder_train]: the autoencoder's training step, given whole to
 * ldm_ae_trainer_create (its defaults are ldm_ae_train_config_init's; the model, the image size
 * and the seed are the run's, filled in when the config is read), and the stage's loop. */
typedef struct ldm_run_autoencoder {
    ldm_ae_train_config step; /* train_batch_size, learning_rate, gradient_accumulation_steps,
                                 disc_start, disc_weight, codebook_weight, commitment_beta,
                                 kl_weight, perceptual_weight */
    int steps;                /* max_train_steps */
    int epochs;               /* num_train_epochs (see ldm_run_diffusion.epochs) */
    char lpips_path[LDM_RUN_PATH];
} ldm_run_autoencoder;

/* Stage two, [train] (and [text] cond_drop_prob): the LDM's training. */
typedef struct ldm_run_diffusion {
    int batch, max_steps, acc_steps, lr_warmup_steps, checkpointing_steps, checkpoints_limit;
    /* num_train_epochs: > 0 when it was given and max_train_steps was not (max_train_steps wins,
     * as in diffusers); ldm_run_config_resolve_epochs turns it into steps once the dataset is
     * counted */
    int epochs;
    float lr, ema_decay, max_grad_norm, validation_guidance_scale;
    float snr_gamma, noise_offset; /* diffusers' --snr_gamma, --noise_offset; 0: off */
    float cond_drop_prob;          /* [text] cond_drop_prob */
    ldm_lr_schedule lr_schedule;
    char resume[LDM_RUN_PATH]; /* "", "latest" or a path */
    int use_ema, validation_steps, validation_sampling_steps, n_validation_prompts;
    char validation_prompts[LDM_RUN_MAX_PROMPTS][256];
    /* [model] pretrained: the model folder the UNet (and a trained text encoder) start from;
     * "": from scratch */
    char pretrained[LDM_RUN_PATH];
    /* [lora]: adapters on the UNet (rank 0: none, every weight trained) and, with
     * lora_text_encoder, on a text encoder trained in the step */
    ldm_lora_config lora;
    int lora_text_encoder;
    int gradient_checkpointing; /* the UNet's blocks recomputed in backward (ldm_graph_set_...) */
} ldm_run_diffusion;

typedef struct ldm_run_config {
    char path[LDM_RUN_PATH]; /* the config file */
    ldm_model_config model;  /* the model trained */
    /* [dataset] */
    char dataset_path[LDM_RUN_PATH];
    int random_flip;
    char caption_extension[32];
    ldm_caption_tags caption_tags; /* applied to the LDM stage's captions */
    /* [autoencoder] */
    char ae_checkpoint[LDM_RUN_PATH];
    /* [train], for both stages */
    char output_dir[LDM_RUN_PATH];
    uint64_t seed;
    ldm_run_autoencoder ae_train; /* stage one */
    ldm_run_diffusion ldm_train;  /* stage two */
} ldm_run_config;

/* The defaults: the reference's mnist configs, text-conditioned by a small CLIP trained from
 * scratch (the model's: ldm_model_config_init). */
void ldm_run_config_init(ldm_run_config *c);

/* Reads an INI file over the defaults and checks the whole run (models, sizes, paths). */
ldm_status ldm_run_config_read(const char *path, ldm_run_config *c);

/* The same from a parsed INI (path: the config's, for relative paths and messages); the INI then
 * holds every key the reader asked for with its resolved value (ldm_ini_lookup_at). */
ldm_status ldm_run_config_read_ini(ldm_ini *ini, const char *path, ldm_run_config *c);

/* The config at path as the reader resolves it, defaults included, as INI text to f: every key
 * it reads, section by section ([section] headers in the order first read). Reading that text
 * back gives the same config. */
ldm_status ldm_run_config_print(const char *path, FILE *f);

/* Stage one's training step, complete: the [autoencoder_train] section with the run's model,
 * image size and seed. */
void ldm_run_autoencoder_step(const ldm_run_config *c, ldm_ae_train_config *out);

/* The learning rate of stage two at a step (0-based) under its schedule with warm-up. */
float ldm_run_lr_at(const ldm_run_config *c, int step);

/* Steps from epochs over a dataset of `images` images, `ldm_images` of them for the LDM stage
 * (kohya's N_concept folders count N times there): ceil(epochs * images / (batch *
 * accumulation)) for each stage whose epochs are set (the epochs are then cleared). */
void ldm_run_config_resolve_epochs(ldm_run_config *c, size_t images, size_t ldm_images);

#ifdef __cplusplus
}
#endif
#endif
