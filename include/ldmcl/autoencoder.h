/* ldmcl/autoencoder.h: stage one of a latent diffusion model, the reference's autoencoders
 * (models/vqvae.py, models/vae.py) built from its autoencoder_params keys, with parameters named
 * as their state_dicts:
 *   encoder: encoder_conv_in -> encoder_layers[i] (DownBlocks, no time embedding) ->
 *     encoder_mids[i] (MidBlocks with self-attention) -> encoder_norm_out -> SiLU ->
 *     encoder_conv_out (z channels; 2z for the VAE) -> pre_quant_conv (1x1);
 *   VQ-VAE: the nearest entry of the codebook `embedding.weight` [codebook_size, z] by L2
 *     distance, codebook loss mean((q - sg(z))^2), commitment loss mean((sg(q) - z)^2) and the
 *     straight-through latent z + sg(q - z);
 *   KL-VAE: mean and log-variance (the two halves of the channels), the sample
 *     mean + exp(logvar / 2) * noise, and the KL term (below);
 *   decoder: post_quant_conv (1x1) -> decoder_conv_in -> decoder_mids[i] -> decoder_layers[i]
 *     (UpBlocks: upsample first, no skips) -> decoder_norm_out -> SiLU -> decoder_conv_out.
 * The reference has no KL code; ldmcl uses the usual one (LDM, the maintainer's ControlNet repo):
 * kl = mean over the batch of 0.5 * sum over (c, h, w) of (mean^2 + exp(logvar) - 1 - logvar). */
#ifndef LDMCL_AUTOENCODER_H
#define LDMCL_AUTOENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_AE_MAX_LEVELS 8

typedef enum ldm_autoencoder_kind { LDM_AE_VQVAE = 0, LDM_AE_VAE = 1 } ldm_autoencoder_kind;

typedef struct ldm_autoencoder_config {
    ldm_autoencoder_kind kind;
    int im_channels;
    int z_channels;
    int codebook_size; /* VQ-VAE */
    int down_channels[LDM_AE_MAX_LEVELS], n_down;
    int mid_channels[LDM_AE_MAX_LEVELS], n_mid;
    int down_sample[LDM_AE_MAX_LEVELS]; /* n_down - 1 flags */
    int attn_down[LDM_AE_MAX_LEVELS];   /* n_down - 1 flags */
    int norm_channels, num_heads;
    int num_down_layers, num_mid_layers, num_up_layers;
} ldm_autoencoder_config;

/* The reference's configs: celebhq (3 x 256^2 -> 4 x 32^2; VQ-VAE 21,994,479 parameters, VAE
 * 21,970,983) and mnist (1 x 28^2 -> 3 x 7^2; 2,482,392 / 2,485,821). */
void ldm_autoencoder_config_celebhq(ldm_autoencoder_config *c, ldm_autoencoder_kind kind);
void ldm_autoencoder_config_mnist(ldm_autoencoder_config *c, ldm_autoencoder_kind kind);

/* LDM_OK, or LDM_ERR_INVALID_ARGUMENT naming the key that is wrong: the reference's asserts
 * (mid_channels[0] == mid_channels[-1] == down_channels[-1]) and what its layers would reject. */
ldm_status ldm_autoencoder_config_check(const ldm_autoencoder_config *c);

/* The latent's height for an image height (each downsampling halves it). */
int ldm_autoencoder_latent_size(const ldm_autoencoder_config *c, int image_size);

/* What the encoder recorded. Fields the kind does not have are NULL. */
typedef struct ldm_ae_encoding {
    ldm_tensor *latent;          /* VQ: the straight-through quantized latent; VAE: the sample
                                    (or the mean, when not sampling) [N, z, h, w] */
    ldm_tensor *pre_quant;       /* the encoder's output [N, z (2z), h, w] */
    ldm_tensor *indices;         /* VQ: codebook indices [N, h, w] (float-valued integers) */
    ldm_tensor *codebook_loss;   /* VQ: [1] */
    ldm_tensor *commitment_loss; /* VQ: [1] */
    ldm_tensor *mean, *logvar;   /* VAE: [N, z, h, w] */
    ldm_tensor *kl;              /* VAE: [1] */
} ldm_ae_encoding;

/* Records the encoder on images x [N, im_channels, H, W] (in [-1, 1]). For the VAE, sample = 1
 * draws the latent with noise (an input of the latent's shape, or NULL: drawn on the device from
 * seed and the graph's step counter); sample = 0 returns the mean. Parameters are created on first
 * use. Returns enc->latent (NULL after an error, kept in the graph). */
ldm_tensor *ldm_autoencoder_encode(ldm_graph *g, const ldm_autoencoder_config *c, ldm_tensor *x,
                                   int sample, ldm_tensor *noise, uint64_t seed,
                                   ldm_ae_encoding *enc);

/* Records the decoder on latents z [N, z_channels, h, w]; returns images [N, im_channels, H, W]. */
ldm_tensor *ldm_autoencoder_decode(ldm_graph *g, const ldm_autoencoder_config *c, ldm_tensor *z);

/* Number of parameters a configuration has. */
ldm_status ldm_autoencoder_param_count(ldm_ctx *ctx, const ldm_autoencoder_config *c,
                                       size_t *count);

/* An autoencoder for inference: an encoder graph and a decoder graph for batches of `batch`
 * images of height x width (and their latents). Encoding gives the VQ-VAE's quantized latent (as
 * the reference caches it) or the VAE's mean (vae_sample = 0: deterministic) or a sample (1, from
 * seed and a per-call counter). */
typedef struct ldm_ae_codec ldm_ae_codec;

ldm_status ldm_ae_codec_create(ldm_ctx *ctx, const ldm_autoencoder_config *c, int batch, int height,
                               int width, int vae_sample, uint64_t seed, ldm_ae_codec **out);
/* The same with the weights of a parameter store (NULL: its own; the encoder and decoder always
 * share one): a trainer's (ldm_graph_params of its generator), shared, not copied. */
ldm_status ldm_ae_codec_create_in(ldm_ctx *ctx, ldm_params *params, const ldm_autoencoder_config *c,
                                  int batch, int height, int width, int vae_sample, uint64_t seed,
                                  ldm_ae_codec **out);
void ldm_ae_codec_destroy(ldm_ae_codec *k);
/* Weights from a checkpoint (ldmcl's or a converted reference one): every tensor the encoder and
 * decoder need must be there, and every tensor there must be one of theirs. */
ldm_status ldm_ae_codec_load(ldm_ae_codec *k, const char *path);
/* images [batch, C, H, W] -> latents [batch, z, h, w]; indices [batch, h, w] of the VQ-VAE's
 * codebook entries when not NULL. Host arrays; waits. */
ldm_status ldm_ae_codec_encode(ldm_ae_codec *k, const float *images, float *latents,
                               float *indices);
/* latents [batch, z, h, w] -> images [batch, C, H, W] (not clamped). */
ldm_status ldm_ae_codec_decode(ldm_ae_codec *k, const float *latents, float *images);
/* The latent's shape [batch, z, h, w]. */
void ldm_ae_codec_latent_shape(const ldm_ae_codec *k, int shape[4]);

/* Encodes n images into one safetensors file: "latents" [n, z, h, w] (F32), with metadata
 * ldmcl.latent_count and the given pairs. next(user, i, image) writes image i ([C, H, W] in
 * [-1, 1]) and returns LDM_OK or an error, which stops the encoding (nothing is written then).
 * The last batch is padded by repeating its last image. */
typedef ldm_status (*ldm_image_source)(void *user, size_t index, float *image);
ldm_status ldm_ae_encode_dataset(ldm_ae_codec *k, size_t n, ldm_image_source next, void *user,
                                 const char *path, const char *const *metadata_pairs);

/* Stream of the VAE's sampling noise (rng.h). */
enum { LDM_STREAM_VAE_NOISE = 16 };

#ifdef __cplusplus
}
#endif
#endif
