/* ldmcl/diffusion.h: noise schedules and the diffusion process: add_noise with a timestep per
 * sample (training), the reference's DDPM posterior step, the DDIM step, and classifier-free
 * guidance. Schedules are computed in double precision on the host.
 *   linear:         betas = linspace(beta_start, beta_end, T)                      (DDPM)
 *   scaled_linear:  betas = linspace(sqrt(beta_start), sqrt(beta_end), T)^2        (the reference)
 *   cosine:         alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + 0.008)/1.008) * pi/2),
 *                   betas = min(1 - alpha_bar(t+1)/alpha_bar(t), 0.999)            (Nichol,
 * Dhariwal) */
#ifndef LDMCL_DIFFUSION_H
#define LDMCL_DIFFUSION_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ldm_schedule_kind {
    LDM_SCHEDULE_LINEAR,
    LDM_SCHEDULE_SCALED_LINEAR,
    LDM_SCHEDULE_COSINE
} ldm_schedule_kind;

typedef struct ldm_schedule {
    ldm_schedule_kind kind;
    int T;
    double *betas, *alphas, *alphas_cumprod; /* [T] each */
} ldm_schedule;

/* beta_start and beta_end are unused by cosine. Names: "linear", "scaled_linear", "cosine". */
ldm_status ldm_schedule_create(ldm_schedule_kind kind, int T, double beta_start, double beta_end,
                               ldm_schedule **out);
ldm_status ldm_schedule_kind_from_name(const char *name, ldm_schedule_kind *kind);
void ldm_schedule_destroy(ldm_schedule *s);

/* Graph op: sqrt(ab[t_n]) * x0 + sqrt(1 - ab[t_n]) * noise; x0, noise [N, ...], t [N]
 * (float-valued integers). Takes no gradient: its inputs are data. */
ldm_tensor *ldm_add_noise(ldm_graph *g, const ldm_schedule *s, ldm_tensor *x0, ldm_tensor *noise,
                          ldm_tensor *t);

/* Graph op: the v-prediction target sqrt(ab[t_n]) * noise - sqrt(1 - ab[t_n]) * x0. */
ldm_tensor *ldm_velocity(ldm_graph *g, const ldm_schedule *s, ldm_tensor *x0, ldm_tensor *noise,
                         ldm_tensor *t);

/* The min-SNR-gamma loss weight of timestep t (Hang et al. 2023, diffusers' --snr_gamma), with
 * SNR(t) = ab/(1 - ab): min(SNR, gamma) / SNR for epsilon prediction, min(SNR, gamma) /
 * (SNR + 1) for v-prediction. */
double ldm_min_snr_weight(const ldm_schedule *s, int t, double gamma, int v_prediction);

/* Graph op: sqrt(w(t_n)) * x for x [N, ...] and t [N] (float-valued integers), w the weight
 * above; the gradient flows to x. mean(out^2) with x = prediction - target is diffusers'
 * min-SNR loss, mean over the batch of w(t_n) * mean((prediction - target)^2). */
ldm_tensor *ldm_snr_loss_scale(ldm_graph *g, const ldm_schedule *s, float gamma, int v_prediction,
                               ldm_tensor *x, ldm_tensor *t);

/* Graph op: classifier-free-guidance dropout. Sample n of cond [N, ...] becomes null_row (one
 * sample's worth, e.g. the empty prompt's embedding; NULL: zeros) where u[n] < p (u[n] <= p when
 * inclusive), else stays. The reference drops text where uniform < p and keeps a class where
 * uniform > p (so inclusive for classes). No backward. */
ldm_tensor *ldm_drop_condition(ldm_graph *g, ldm_tensor *cond, ldm_tensor *null_row, ldm_tensor *u,
                               float p, int inclusive);

/* The reference's sample_prev_timestep (scheduler/linear_noise_scheduler.py):
 *   mean = (x_t - beta_t eps / sqrt(1 - ab_t)) / sqrt(alpha_t);  out = mean + sigma_t z,
 *   sigma_t = sqrt((1 - ab_{t-1}) / (1 - ab_t) * beta_t), 0 at t = 0;
 *   x0 = clamp((x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), -1, 1) (x0.mem NULL: not wanted). */
ldm_status ldm_ddpm_step(ldm_cmd *c, const ldm_schedule *s, int t, size_t n, ldm_buf out,
                         ldm_buf x0, ldm_buf xt, ldm_buf eps, ldm_buf z);
/* DDIM (Song et al. 2021, eq. 12) from t to t_prev (-1: the end, ab = 1):
 *   x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t),
 *   sigma = eta sqrt((1 - ab_prev)/(1 - ab_t)) sqrt(1 - ab_t/ab_prev),
 *   out = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z. */
ldm_status ldm_ddim_step(ldm_cmd *c, const ldm_schedule *s, int t, int t_prev, float eta, size_t n,
                         ldm_buf out, ldm_buf x0, ldm_buf xt, ldm_buf eps, ldm_buf z);
/* DDIM from a v-prediction: x0 = sqrt(ab) x_t - sqrt(1-ab) v, eps = sqrt(ab) v + sqrt(1-ab) x_t,
 * then the step above. */
ldm_status ldm_ddim_step_v(ldm_cmd *c, const ldm_schedule *s, int t, int t_prev, float eta,
                           size_t n, ldm_buf out, ldm_buf xt, ldm_buf v, ldm_buf z);
/* Classifier-free guidance: out = eps_u + scale * (eps_c - eps_u). */
ldm_status ldm_cfg_combine(ldm_cmd *c, size_t n, float scale, ldm_buf out, ldm_buf eps_uncond,
                           ldm_buf eps_cond);

#ifdef __cplusplus
}
#endif
#endif
