/* ldmcl/ksampler.h: the sigma-space samplers (k-diffusion's formulation, as stable-diffusion.cpp,
 * ComfyUI and A1111 run them) over a discrete DDPM schedule, on the host.
 *
 * A model trained on timesteps t = 0 .. T-1 with cumulative alphas ab(t) is a denoiser of
 * x = x_t / sqrt(ab(t)) at noise level sigma(t) = sqrt((1 - ab(t)) / ab(t)) (k-diffusion's
 * CompVisDenoiser): the UNet sees c_in x with c_in = 1/sqrt(sigma^2 + 1) at the (fractional)
 * timestep whose log sigma interpolates the schedule's, and its prediction gives the denoised
 *   epsilon:  D = x - sigma eps
 *   v:        D = x / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) v   (CompVisVDenoiser).
 * The samplers see only D, so each works for both parameterisations. The arithmetic is double
 * precision over float arrays: the device time is the UNet's, these loops are a few passes over
 * the latents per step. */
#ifndef LDMCL_KSAMPLER_H
#define LDMCL_KSAMPLER_H

#include <stddef.h>

#include "ldmcl/diffusion.h"
#include "ldmcl/model.h"
#include "ldmcl/sample.h"

#ifdef __cplusplus
extern "C" {
#endif

/* sigma(t) for a fractional t in [0, T-1], log-linear between the schedule's integer steps, and
 * its inverse (clamped to [0, T-1]); both as k-diffusion's DiscreteSchedule (quantize off). */
double ldm_schedule_sigma(const ldm_schedule *s, double t);
double ldm_schedule_timestep(const ldm_schedule *s, double sigma);

/* sigmas[0 .. steps] of a sigma schedule, the last 0. ays needs steps >= 1 and every schedule
 * steps <= T (LDM_ERR_INVALID_ARGUMENT otherwise). */
ldm_status ldm_sigmas(const ldm_schedule *s, ldm_sigma_schedule kind, int steps, double *sigmas);

/* The denoised D of n values x at noise level sigma from the model's prediction (see above). */
void ldm_denoised_from_prediction(ldm_prediction p, double sigma, size_t n, const float *x,
                                  const float *pred, float *denoised);

/* What a sampler calls. denoise receives x (n values) at a noise level and writes D (it may
 * change x first, as inpainting puts back the known region at that level); noise fills
 * n standard normal values for the draw numbered `draw` (0, 1, ... in the order the sampler
 * draws; one per step at most); after_step (optional) sees the step's denoised prediction. An
 * error from any stops the run and is returned. */
typedef struct ldm_denoiser {
    size_t n;
    ldm_status (*denoise)(void *user, float *x, double sigma, float *denoised);
    ldm_status (*noise)(void *user, int draw, float *z);
    ldm_status (*after_step)(void *user, int k, int steps, double sigma, const float *denoised);
    void *user;
} ldm_denoiser;

/* The noise levels a method steps through: sigmas[0 .. steps] of the schedule for the
 * k-diffusion samplers; ddim_trailing and tcd take their own timesteps (diffusers' trailing
 * spacing; TCD's over 50 original steps), so their levels are sigma(t) of those. */
ldm_status ldm_ksampler_sigmas(ldm_sampler_method m, const ldm_schedule *s, ldm_sigma_schedule kind,
                               int steps, double *sigmas);

/* Runs a sigma-space method (not DDPM or DDIM) over steps first .. steps-1 of sigmas[0 .. steps]
 * (from ldm_ksampler_sigmas), from x = unit normal noise (n values, replaced by the sample): the
 * chain starts at x = noise sigma (txt2img: first 0, init NULL) or, from an init (img2img,
 * SDEdit), at x = init + noise sigma (in DDPM space sqrt(ab) init + sqrt(1 - ab) noise). eta:
 * ddim_trailing's and tcd's (gamma) stochasticity; the ancestral samplers use 1, as
 * k-diffusion's defaults. Steps are reported to after_step counted from first. */
ldm_status ldm_ksample(ldm_sampler_method m, const ldm_schedule *s, const double *sigmas, int steps,
                       int first, float eta, const ldm_denoiser *d, const float *init, float *x);

#ifdef __cplusplus
}
#endif
#endif
