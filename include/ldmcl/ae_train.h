/* ldmcl/ae_train.h: training the autoencoder (stage one), as the reference's train_vqvae.py does:
 *   generator loss = ( MSE(out, x) + codebook_weight * codebook + commitment_beta * commitment
 *                      [VQ-VAE] or kl_weight * KL [VAE] + perceptual_weight * LPIPS(out, x)
 *                      + disc_weight * MSE(D(out), 1) [from step disc_start + 1] ) / acc_steps,
 *   discriminator loss = disc_weight * (MSE(D(sg(out)), 0) + MSE(D(x), 1)) / 2 / acc_steps
 *                        [from step disc_start + 1],
 * two Adam optimizers (betas 0.5, 0.999 by default), both stepping every acc_steps steps.
 *
 * Two recorded graphs on one parameter store: the discriminator's (its two passes, fake then
 * real), which trains the discriminator's entries, and the generator's (autoencoder, LPIPS and the
 * same discriminator entries, not trained there, so the adversarial gradient reaches the decoder
 * but not the discriminator). No parameter is copied between them. The generator graph's
 * BatchNorms move their running statistics only in adversarial steps (gated by the graph's
 * "adversarial" input), so they see the same three batches per step as the reference's. Before
 * disc_start the generator graph still runs the discriminator (its term weighted by 0: one
 * recorded graph serves the whole run); the g_adv it logs then is the real discriminator's
 * opinion of the reconstruction, which the reference does not compute.
 *
 * Where ldmcl differs from the reference, deliberately: the generator loss's gradient does not
 * reach the discriminator's parameters (the reference lets it accumulate into them before
 * optimizer_d steps), and there is no extra unconditional optimizer step at the end of an epoch.
 * With perceptual_weight > 0 LPIPS weights must be loaded (ldm_ae_trainer_load_lpips) before the
 * first step: a random perceptual network is never used. */
#ifndef LDMCL_AE_TRAIN_H
#define LDMCL_AE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/autoencoder.h"
#include "ldmcl/discriminator.h"
#include "ldmcl/graph.h"
#include "ldmcl/job.h"
#include "ldmcl/lpips.h"
#include "ldmcl/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_ae_train_config {
    ldm_autoencoder_config ae;
    ldm_discriminator_config disc; /* used when disc_weight > 0 */
    ldm_lpips_config lpips;        /* used when perceptual_weight > 0 */
    int batch, height, width;      /* images [batch, ae.im_channels, height, width] in [-1, 1] */
    float codebook_weight, commitment_beta, kl_weight, perceptual_weight, disc_weight;
    int disc_start; /* the adversarial terms count from step disc_start + 1 (steps count from 1) */
    int acc_steps;  /* optimizers step every acc_steps steps */
    float lr, beta1, beta2;
    uint64_t seed;      /* the VAE's sampling noise */
    int external_noise; /* VAE: the noise is the input `vae_noise`, written by the caller */
    ldm_job *job;       /* data parallelism (NULL: alone): batch is this rank's part of a batch
                           job-size times larger; the last micro-batch before the optimizers
                           step averages both graphs' gradients over the job, losses are the
                           job's means (with losses asked for: a collective per micro-batch),
                           and the BatchNorms' running statistics are averaged after each
                           adversarial step (the running variance then leaves out the spread of
                           the ranks' batch means) */
} ldm_ae_train_config;

/* The reference's train_params for an autoencoder config: codebook 1, commitment 0.2, KL 5e-6,
 * perceptual 1, disc weight 0.5, acc_steps 1, lr 1e-4 (mnist's autoencoder_lr), betas (0.5,
 * 0.999), seed 1111; disc_start 1000; batch, height and width are left to the caller. */
void ldm_ae_train_config_init(ldm_ae_train_config *c, const ldm_autoencoder_config *ae);

typedef struct ldm_ae_losses {
    int step;          /* the step these are from (1-based) */
    int adversarial;   /* the adversarial terms counted */
    float recon;       /* MSE(out, x) */
    float codebook;    /* VQ-VAE */
    float commitment;  /* VQ-VAE */
    float kl;          /* VAE */
    float perceptual;  /* LPIPS (0 when off) */
    float g_adv;       /* MSE(D(out), 1), computed even before disc_start (0 when off) */
    float g_total;     /* the generator loss (divided by acc_steps, as backpropagated) */
    float d_fake;      /* MSE(D(sg(out)), 0) (adversarial steps only) */
    float d_real;      /* MSE(D(x), 1) */
    float d_total;     /* the discriminator loss (divided by acc_steps) */
    int codebook_used; /* VQ-VAE: distinct entries this batch chose */
} ldm_ae_losses;

typedef struct ldm_ae_trainer ldm_ae_trainer;

/* Records and compiles both graphs and creates the optimizers. Parameters start as left by
 * compile (zeros): initialise them (ldm_ae_trainer_init_params) or load a checkpoint. */
ldm_status ldm_ae_trainer_create(ldm_ctx *ctx, const ldm_ae_train_config *cfg,
                                 ldm_ae_trainer **out);
void ldm_ae_trainer_destroy(ldm_ae_trainer *t);

/* PyTorch's default initialisation of every layer (ldm_graph_init_params): convs and linears
 * uniform in +-1/sqrt(fan_in), attention's in_proj xavier-uniform with zero biases, norms weight 1
 * and bias 0, running variance 1, the codebook N(0, 1) as nn.Embedding. LPIPS is left alone. */
ldm_status ldm_ae_trainer_init_params(ldm_ae_trainer *t, uint64_t seed);

/* Loads the LPIPS network (tools/convert_lpips.py's file). */
ldm_status ldm_ae_trainer_load_lpips(ldm_ae_trainer *t, const char *path);

/* One training step on images [batch, C, H, W] (host, row-major, in [-1, 1]): the generator
 * pass and backward, the discriminator's when adversarial, then the optimizer steps when the step
 * count reaches a multiple of acc_steps. losses (may be NULL) are read back when given, which
 * waits for the device. */
ldm_status ldm_ae_trainer_step(ldm_ae_trainer *t, const float *images, ldm_ae_losses *losses);

/* The pieces of a step, for checks: forward and backward of both graphs (accumulating
 * gradients), and the optimizer steps (then zeroing the gradients). */
ldm_status ldm_ae_trainer_forward_backward(ldm_ae_trainer *t, const float *images,
                                           ldm_ae_losses *losses);
ldm_status ldm_ae_trainer_apply(ldm_ae_trainer *t);

/* Saves the autoencoder and the discriminator as two safetensors files (reference names; either
 * path may be NULL); loads them back (a NULL path leaves that model as it is). */
ldm_status ldm_ae_trainer_save(ldm_ae_trainer *t, const char *ae_path, const char *disc_path,
                               const char *const *metadata_pairs);
ldm_status ldm_ae_trainer_load(ldm_ae_trainer *t, const char *ae_path, const char *disc_path);

/* A resumable state (ldmcl/train_state.h) in one file, written atomically: the generator
 * graph's parameters, Adam moments and random-draw counter, the discriminator's (without one:
 * none) under "discriminator_state.", and the trainer's step count. Save between steps whose
 * gradients were applied (a multiple of acc_steps). Loading restores all of it, step count
 * included, or nothing. */
ldm_status ldm_ae_trainer_save_state(ldm_ae_trainer *t, const char *path,
                                     const char *const *metadata_pairs);
ldm_status ldm_ae_trainer_load_state(ldm_ae_trainer *t, const char *path);

/* Data parallelism: LDM_ERR_JOB naming the tensor when this rank's state is not rank 0's
 * (ldm_train_state_check_same). A collective. */
ldm_status ldm_ae_trainer_check_same(ldm_ae_trainer *t);

/* The graphs (generator: autoencoder parameters under their names, LPIPS under "lpips.", and the
 * discriminator's parameters, shared with its graph; discriminator: its parameters), the output
 * reconstruction of the last step, and the VAE noise input (NULL unless external_noise). */
ldm_graph *ldm_ae_trainer_generator(ldm_ae_trainer *t);
ldm_graph *ldm_ae_trainer_discriminator(ldm_ae_trainer *t); /* NULL without one */
ldm_tensor *ldm_ae_trainer_output(ldm_ae_trainer *t);
ldm_tensor *ldm_ae_trainer_noise(ldm_ae_trainer *t);
int ldm_ae_trainer_steps(const ldm_ae_trainer *t);

#ifdef __cplusplus
}
#endif
#endif
