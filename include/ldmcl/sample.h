/* ldmcl/sample.h: sampling latents with a UNet: the reference's DDPM ancestral sampler (all T
 * steps, its exact mean and variance) or DDIM (any number of steps, eta), with classifier-free
 * guidance eps_u + s (eps_c - eps_u) computed from one batched forward pass over the
 * unconditional and conditional inputs. The UNet is recorded once (forward only, memory reused
 * aggressively) and replayed at every step; the start noise and each step's noise come from the
 * counter-based generator keyed by the seed, so a run is reproducible on any device. */
#ifndef LDMCL_SAMPLE_H
#define LDMCL_SAMPLE_H

#include <stdint.h>

#include "ldmcl/diffusion.h"
#include "ldmcl/graph.h"
#include "ldmcl/model.h"
#include "ldmcl/unet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ldm_sampler_method { LDM_SAMPLER_DDPM = 0, LDM_SAMPLER_DDIM = 1 } ldm_sampler_method;

/* Previews of the x0 prediction while sampling: after step k (0-based, of `steps` in all) for
 * which want(user, k, steps) is nonzero, take(user, k, t, x0) receives it as host latents
 * [N, C, H, W], clamped to [-1, 1] as the reference saves them (the chain itself is not). An error
 * from take stops the run. Epsilon-prediction models only. */
typedef struct ldm_x0_hook {
    int (*want)(void *user, int k, int steps);
    ldm_status (*take)(void *user, int k, int t, const float *x0);
    void *user;
} ldm_x0_hook;

typedef struct ldm_sampler_config {
    const ldm_unet_config *unet;
    const ldm_schedule *schedule;
    int batch, height, width; /* latents [batch, im_channels, height, width] */
    int context_len;
    int mask_height, mask_width;
    float guidance_scale; /* > 1: classifier-free guidance (the reference's cf_guidance_scale) */
    ldm_sampler_method method;
    int steps; /* DDIM steps (DDPM always takes all T) */
    float eta; /* DDIM: 0 deterministic */
    ldm_prediction prediction;
    uint64_t seed;
    ldm_x0_hook x0_hook; /* zero: no previews */
    /* NULL: the UNet's weights are the sampler's own (load them through ldm_sampler_graph); else
     * they are this store's entries of the same names (a training step's: ldm_graph_params) */
    ldm_params *params;
} ldm_sampler_config;

typedef struct ldm_sampler ldm_sampler;

ldm_status ldm_sampler_create(ldm_ctx *ctx, const ldm_sampler_config *cfg, ldm_sampler **out);
void ldm_sampler_destroy(ldm_sampler *s);
/* The UNet's graph, to load parameters into (ldm_graph_load) or write them. */
ldm_graph *ldm_sampler_graph(ldm_sampler *s);

/* Conditions (host arrays; NULL for what the model does not use). context [N, S, D]; the
 * unconditional pass uses uncond_context [S, D] (the empty prompt's embedding) for every sample,
 * a zero class vector and a zero mask, as the reference's samplers do. */
ldm_status ldm_sampler_set_conditions(ldm_sampler *s, const float *context,
                                      const float *uncond_context, const float *class_onehot,
                                      const float *mask);

/* The seed of the next runs (the start noise and every step's noise). */
void ldm_sampler_set_seed(ldm_sampler *s, uint64_t seed);

/* Runs the whole chain; latents [N, C, H, W] receives x_0. NaN or infinite values in the chain
 * after the first step or at the end fail the run (LDM_ERR_FORMAT, naming the step). */
ldm_status ldm_sampler_run(ldm_sampler *s, float *latents);

#ifdef __cplusplus
}
#endif
#endif
