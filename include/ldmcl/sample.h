/* ldmcl/sample.h: sampling latents with a UNet: the reference's DDPM ancestral sampler (all T
 * steps, its exact mean and variance), DDIM (any number of steps, eta), or the sigma-space
 * samplers of k-diffusion and stable-diffusion.cpp (ldmcl/ksampler.h), with classifier-free
 * guidance eps_u + s (eps_c - eps_u) computed from one batched forward pass over the
 * unconditional and conditional inputs; from noise, or from an init (img2img, inpainting). The
 * UNet is recorded once (forward only, memory reused aggressively) and replayed at every step;
 * the start noise and each step's noise come from the counter-based generator keyed by the seed
 * and the sample's index, so a run is reproducible on any device. */
#ifndef LDMCL_SAMPLE_H
#define LDMCL_SAMPLE_H

#include <stdint.h>

#include "ldmcl/diffusion.h"
#include "ldmcl/graph.h"
#include "ldmcl/model.h"
#include "ldmcl/sd_unet.h"
#include "ldmcl/unet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* DDPM and DDIM run their steps on the device over integer timesteps (the reference's); the
 * others are the sigma-space samplers of k-diffusion and stable-diffusion.cpp (ldmcl/ksampler.h),
 * under the same names: euler, euler_a, heun, dpm2, dpm++2s_a, dpm++2m, dpm++2mv2, ipndm,
 * ipndm_v, lcm, ddim_trailing, tcd. */
typedef enum ldm_sampler_method {
    LDM_SAMPLER_DDPM = 0,
    LDM_SAMPLER_DDIM = 1,
    LDM_SAMPLER_EULER,
    LDM_SAMPLER_EULER_A,
    LDM_SAMPLER_HEUN,
    LDM_SAMPLER_DPM2,
    LDM_SAMPLER_DPMPP_2S_A,
    LDM_SAMPLER_DPMPP_2M,
    LDM_SAMPLER_DPMPP_2M_V2,
    LDM_SAMPLER_IPNDM,
    LDM_SAMPLER_IPNDM_V,
    LDM_SAMPLER_LCM,
    LDM_SAMPLER_DDIM_TRAILING,
    LDM_SAMPLER_TCD,
    LDM_SAMPLER_COUNT
} ldm_sampler_method;

/* The noise levels of the sigma-space samplers (stable-diffusion.cpp's --scheduler):
 * discrete (timesteps evenly spaced, k-diffusion's CompVisDenoiser.get_sigmas), karras (rho 7),
 * exponential (evenly spaced in log sigma), ays (Align Your Steps' 10-step levels for Stable
 * Diffusion 1.5, interpolated in log sigma to the step count and stretched to the model's sigma
 * range), sgm_uniform (steps + 1 evenly spaced timesteps, the last dropped) and simple (every
 * T/steps-th of the model's sigmas). DDPM and DDIM ignore it. */
typedef enum ldm_sigma_schedule {
    LDM_SIGMAS_DISCRETE = 0,
    LDM_SIGMAS_KARRAS,
    LDM_SIGMAS_EXPONENTIAL,
    LDM_SIGMAS_AYS,
    LDM_SIGMAS_SGM_UNIFORM,
    LDM_SIGMAS_SIMPLE,
    LDM_SIGMAS_COUNT
} ldm_sigma_schedule;

/* Names as stable-diffusion.cpp spells them ("euler_a", "dpm++2m", "karras", ...); an unknown
 * name is LDM_ERR_INVALID_ARGUMENT listing the known ones. */
ldm_status ldm_sampler_method_from_name(const char *name, ldm_sampler_method *out);
const char *ldm_sampler_method_name(ldm_sampler_method m);
ldm_status ldm_sigma_schedule_from_name(const char *name, ldm_sigma_schedule *out);
const char *ldm_sigma_schedule_name(ldm_sigma_schedule s);
/* Whether the method draws fresh noise at its steps (ddpm, euler_a, dpm++2s_a, lcm; ddim,
 * ddim_trailing and tcd when eta > 0). */
int ldm_sampler_method_is_stochastic(ldm_sampler_method m, float eta);

/* Previews of the x0 prediction while sampling: after step k (0-based, of `steps` in all) for
 * which want(user, k, steps) is nonzero, take(user, k, t, x0) receives it as host latents
 * [N, C, H, W], clamped to [-1, 1] as the reference saves them (the chain itself is not); t is
 * the step's timestep (rounded for the sigma-space samplers). An error from take stops the run.
 * Epsilon- and v-prediction models. */
typedef struct ldm_x0_hook {
    int (*want)(void *user, int k, int steps);
    ldm_status (*take)(void *user, int k, int t, const float *x0);
    void *user;
} ldm_x0_hook;

/* Progress: step(user, k, steps) after every step k (0-based) of a run. */
typedef struct ldm_step_hook {
    void (*step)(void *user, int k, int steps);
    void *user;
} ldm_step_hook;

typedef struct ldm_sampler_config {
    const ldm_unet_config *unet;
    /* or Stable Diffusion's UNet (unet NULL): text-conditioned; with 9 input channels (the
     * inpainting UNet) the set_conditions mask is its 5 extra channels [N, 5, H, W] (the mask
     * and the masked image's latents), given to the unconditional rows of guidance too */
    const ldm_sd_unet_config *sd_unet;
    int half_weights; /* SD's UNet on its own store: weights kept in half precision */
    const ldm_schedule *schedule;
    int batch, height, width; /* latents [batch, im_channels, height, width] */
    int context_len;
    int mask_height, mask_width;
    float guidance_scale; /* > 1: classifier-free guidance (the reference's cf_guidance_scale) */
    ldm_sampler_method method;
    int steps; /* sampling steps (DDPM always takes all T) */
    float eta; /* ddim, ddim_trailing, tcd: 0 deterministic; the ancestral samplers use 1 */
    ldm_prediction prediction;
    uint64_t seed;
    ldm_x0_hook x0_hook; /* zero: no previews */
    /* NULL: the UNet's weights are the sampler's own (load them through ldm_sampler_graph); else
     * they are this store's entries of the same names (a training step's: ldm_graph_params) */
    ldm_params *params;
    /* with params: the store's LoRA adapters (a LoRA training step's), applied as the step
     * applies them (ldm_graph_set_lora); NULL: none */
    const ldm_lora_config *lora;
    ldm_sigma_schedule scheduler; /* the sigma-space samplers' noise levels */
    ldm_step_hook progress;       /* zero: none */
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

/* img2img (SDEdit) and inpainting for the next runs: init [N, C, H, W] latents as the UNet sees
 * them; the chain runs the last max(1, floor(steps strength)) of its steps (strength in (0, 1]:
 * 1 starts from noise alone), from init noised to the first of them. mask [N, H, W] (NULL: none)
 * in [0, 1], 1 where the image is repainted: before every UNet evaluation the rest of x is put
 * back to init noised to that level (with the start noise), and the result keeps init there.
 * Both arrays are borrowed until the runs end; init NULL goes back to text-to-image. */
ldm_status ldm_sampler_set_init(ldm_sampler *s, const float *init, float strength,
                                const float *mask);

/* The seed of the next runs (the start noise and every step's noise). Sample i of the batch
 * draws its noise with seed + i, so each is the image a batch of one gives with that seed. */
void ldm_sampler_set_seed(ldm_sampler *s, uint64_t seed);

/* Runs the whole chain; latents [N, C, H, W] receives x_0. NaN or infinite values in the chain
 * after the first step or at the end fail the run (LDM_ERR_FORMAT, naming the step). */
ldm_status ldm_sampler_run(ldm_sampler *s, float *latents);

#ifdef __cplusplus
}
#endif
#endif
