/* ldmcl/train.h: one training step of latent diffusion, recorded once on a graph and replayed:
 *   t ~ U{0..T-1} and noise ~ N(0, I) drawn on the device (keyed by seed and the graph's step
 *   counter), x_t = add_noise(z0, noise, t) with the schedule, classifier-free-guidance dropout
 *   of the conditions (text: the empty prompt's embedding where u < p; class and mask: zero where
 *   u <= p, as the reference), prediction = UNet(x_t, t, conditions), loss = MSE(prediction,
 *   target) with target = noise (epsilon) or sqrt(ab) noise - sqrt(1 - ab) z0 (v), then the
 *   backward pass. An optimizer (optim.h) steps on the gradients. */
#ifndef LDMCL_TRAIN_H
#define LDMCL_TRAIN_H

#include <stdint.h>

#include "ldmcl/diffusion.h"
#include "ldmcl/graph.h"
#include "ldmcl/model.h"
#include "ldmcl/clip.h"
#include "ldmcl/unet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_diffusion_train_config {
    const ldm_unet_config *unet;
    const ldm_schedule *schedule;
    int batch, height, width;    /* latents [batch, unet->im_channels, height, width] */
    int context_len;             /* text tokens S (77 for CLIP) when text-conditioned */
    int mask_height, mask_width; /* the mask's size when image-conditioned */
    float cond_drop_prob;        /* 0: no dropout */
    ldm_prediction prediction;
    /* diffusers' --snr_gamma: each sample's squared error weighted by the min-SNR-gamma weight of
     * its timestep (ldm_min_snr_weight); 0: unweighted, as the reference. */
    float snr_gamma;
    /* diffusers' --noise_offset: noise + noise_offset * one normal draw per sample and channel
     * (LDM_STREAM_NOISE_OFFSET), broadcast over the image; the target takes it too. 0: none. */
    float noise_offset;
    uint64_t seed;
    /* Text from token ids: the CLIP text encoder recorded in the step, its parameters trained with
     * the UNet's (fine-tuning loaded weights, or from scratch as the LDM paper); dropout replaces
     * a sample's ids and mask by the empty prompt's. NULL: the context is an input (a frozen
     * encoder, ldm_clip_encoder, runs outside the step). */
    const ldm_clip_text_config *text_encoder;
    int text_skip; /* clip skip of the encoder's output (0: the last hidden state) */
    /* LoRA (the graph's ldm_graph_set_lora): every parameter but the adapters is frozen before
     * the backward pass, so only adapters get gradients */
    int adapters_only;
} ldm_diffusion_train_config;

/* The tensors of a recorded step. Inputs to write before each run: latents, and the conditions
 * the model uses (empty_context once). The others are kept for inspection. */
typedef struct ldm_diffusion_train_graph {
    ldm_tensor *latents;                /* [N, C, H, W] */
    ldm_tensor *context;                /* [N, S, D] or NULL */
    ldm_tensor *empty_context;          /* [S, D] or NULL (needed with text and dropout) */
    ldm_tensor *ids, *ids_mask;         /* with text_encoder: token ids and mask [N, S] */
    ldm_tensor *empty_ids, *empty_mask; /* with text_encoder and dropout: the empty prompt's [S] */
    ldm_tensor *class_onehot;           /* [N, K] or NULL */
    ldm_tensor *mask;                   /* [N, M, H', W'] or NULL */
    ldm_tensor *t, *noise;              /* drawn this run */
    ldm_tensor *prediction, *target, *loss;
} ldm_diffusion_train_graph;

ldm_status ldm_diffusion_train_record(ldm_graph *g, const ldm_diffusion_train_config *cfg,
                                      ldm_diffusion_train_graph *out);

/* Saves the graph's UNet parameters (a text encoder recorded in the step, text_model.*, is left
 * out: save it with ldm_graph_save_subset; so are LoRA adapters, ldmcl/lora_adapter.h) with what
 * sampling needs to know in the metadata: ldmcl.prediction_type (epsilon | v_prediction),
 * ldmcl.beta_schedule (linear | scaled_linear | cosine), ldmcl.num_timesteps, ldmcl.beta_start,
 * ldmcl.beta_end; plus extra pairs (may be NULL). Files lacking them (converted reference
 * checkpoints) read back as the reference's defaults (ldm_diffusion_read_meta, ldmcl/model.h). */
ldm_status ldm_diffusion_save(ldm_graph *g, const char *path, const ldm_diffusion_train_config *cfg,
                              const char *const *extra_pairs);

/* Streams of the step's random draws (seed, stream, step). */
enum {
    LDM_STREAM_T = 1,
    LDM_STREAM_NOISE = 2,
    LDM_STREAM_DROP_TEXT = 3,
    LDM_STREAM_DROP_CLASS = 4,
    LDM_STREAM_DROP_MASK = 5,
    LDM_STREAM_NOISE_OFFSET = 6
};

#ifdef __cplusplus
}
#endif
#endif
