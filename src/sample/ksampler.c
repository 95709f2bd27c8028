/* src/sample/ksampler.c: the sigma-space samplers on the host (see ldmcl/ksampler.h), written from
 * their papers and k-diffusion's formulation:
 *   euler, heun, dpm2            Karras et al. 2022 (Algorithm 1/2; DPM-Solver-2 midpoint)
 *   euler_a, dpm++2s_a           ancestral steps: sigma_down, then fresh noise of sigma_up
 *   dpm++2m                      DPM-Solver++(2M), Lu et al. 2022
 *   dpm++2mv2                    2M with the step-ratio fix of A1111 discussion 8457
 *                                (stable-diffusion.cpp's variant)
 *   ipndm, ipndm_v               improved PNDM, Zhang & Chen 2023 (diff-sampler), fixed and
 *                                variable step Adams-Bashforth coefficients up to order 4
 *   lcm                          the consistency sampler: the denoised, renoised to the next level
 *   ddim_trailing, tcd           diffusers' DDIMScheduler (trailing spacing) and TCDScheduler
 *                                over the model's own timesteps, in DDPM space.
 * Every step ends at sigma 0 with x the model's last denoised estimate (or, for ddim_trailing,
 * the DDIM step to alphas_cumprod[0], as diffusers). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/ksampler.h"

enum { HISTORY = 3, TCD_ORIGINAL_STEPS = 50 };

typedef struct run {
    const ldm_denoiser *d;
    size_t n;
    int first, steps;                           /* the steps first .. steps-1 of the schedule's */
    float *den, *tmp, *z, *old, *hist[HISTORY]; /* hist[0] the newest derivative */
    int draws;
} run;

static ldm_status denoise(run *r, float *x, double sigma, float *out) {
    return r->d->denoise(r->d->user, x, sigma, out);
}

/* Reports step k of the schedule as step k - first of the run. */
static ldm_status after(run *r, int k, double sigma, const float *den) {
    return r->d->after_step
               ? r->d->after_step(r->d->user, k - r->first, r->steps - r->first, sigma, den)
               : LDM_OK;
}

/* x += scale * z with z a fresh draw. */
static ldm_status add_noise(run *r, float *x, double scale) {
    LDM_TRY(r->d->noise(r->d->user, r->draws++, r->z));
    for (size_t i = 0; i < r->n; i++)
        x[i] = (float)(x[i] + scale * r->z[i]);
    return LDM_OK;
}

/* k-diffusion's get_ancestral_step with eta 1. */
static void ancestral(double from, double to, double *down, double *up) {
    double u = sqrt(to * to * (from * from - to * to) / (from * from));
    *up = u < to ? u : to;
    *down = sqrt(to * to - *up * *up);
}

/* x += (x - den) / sigma * dt, the Euler step along the probability-flow ODE. */
static void euler_step(run *r, float *x, const float *den, double sigma, double dt) {
    for (size_t i = 0; i < r->n; i++)
        x[i] = (float)(x[i] + (x[i] - (double)den[i]) / sigma * dt);
}

static ldm_status euler(run *r, const double *sg, float *x, int ancestral_noise) {
    for (int k = r->first; k < r->steps; k++) {
        double s = sg[k], next = sg[k + 1], down = next, up = 0.0;
        LDM_TRY(denoise(r, x, s, r->den));
        LDM_TRY(after(r, k, s, r->den));
        if (ancestral_noise) ancestral(s, next, &down, &up);
        euler_step(r, x, r->den, s, down - s);
        if (ancestral_noise && next > 0) LDM_TRY(add_noise(r, x, up));
    }
    return LDM_OK;
}

/* heun (second evaluation at the next level, the derivatives averaged) and dpm2 (second
 * evaluation at the geometric midpoint); both end with an Euler step into sigma 0. */
static ldm_status second_order(run *r, const double *sg, float *x, int midpoint) {
    for (int k = r->first; k < r->steps; k++) {
        double s = sg[k], next = sg[k + 1];
        LDM_TRY(denoise(r, x, s, r->den));
        LDM_TRY(after(r, k, s, r->den));
        if (next == 0) {
            euler_step(r, x, r->den, s, next - s);
            continue;
        }
        double at = midpoint ? exp(0.5 * (log(s) + log(next))) : next;
        for (size_t i = 0; i < r->n; i++) /* tmp = x after the first stage, to sigma `at` */
            r->tmp[i] = (float)(x[i] + (x[i] - (double)r->den[i]) / s * (at - s));
        LDM_TRY(denoise(r, r->tmp, at, r->z));
        for (size_t i = 0; i < r->n; i++) {
            double d1 = (x[i] - (double)r->den[i]) / s, d2 = (r->tmp[i] - (double)r->z[i]) / at;
            double d = midpoint ? d2 : 0.5 * (d1 + d2);
            x[i] = (float)(x[i] + d * (next - s));
        }
    }
    return LDM_OK;
}

static ldm_status dpmpp_2s_ancestral(run *r, const double *sg, float *x) {
    for (int k = r->first; k < r->steps; k++) {
        double s = sg[k], next = sg[k + 1], down, up;
        LDM_TRY(denoise(r, x, s, r->den));
        LDM_TRY(after(r, k, s, r->den));
        ancestral(s, next, &down, &up);
        if (down == 0) {
            euler_step(r, x, r->den, s, down - s);
        } else {
            /* in lambda = -log sigma: h = log(s / down), the midpoint at sigma exp(-(t + h/2)) */
            double h = log(s) - log(down), mid = exp(-(-log(s) + 0.5 * h));
            double c1 = expm1(-0.5 * h);
            for (size_t i = 0; i < r->n; i++)
                r->tmp[i] = (float)(mid / s * x[i] - c1 * r->den[i]);
            LDM_TRY(denoise(r, r->tmp, mid, r->z));
            double c2 = expm1(-h);
            for (size_t i = 0; i < r->n; i++)
                x[i] = (float)(down / s * x[i] - c2 * r->z[i]);
        }
        if (next > 0) LDM_TRY(add_noise(r, x, up));
    }
    return LDM_OK;
}

/* DPM-Solver++(2M); v2 takes the exponential factor over the mean of the last two steps and the
 * ratio of the larger to the smaller. */
static ldm_status dpmpp_2m(run *r, const double *sg, float *x, int v2) {
    for (int k = r->first; k < r->steps; k++) {
        double s = sg[k], next = sg[k + 1];
        LDM_TRY(denoise(r, x, s, r->den));
        LDM_TRY(after(r, k, s, r->den));
        if (next == 0) {
            memcpy(x, r->den, r->n * sizeof *x);
        } else if (k == r->first) {
            double b = expm1(-(log(s) - log(next)));
            for (size_t i = 0; i < r->n; i++)
                x[i] = (float)(next / s * x[i] - b * r->den[i]);
        } else {
            double h = log(s) - log(next), h_last = log(sg[k - 1]) - log(s), ratio, b;
            if (v2) {
                double lo = h < h_last ? h : h_last, hi = h < h_last ? h_last : h;
                ratio = hi / lo;
                b = expm1(-0.5 * (hi + lo));
            } else {
                ratio = h_last / h;
                b = expm1(-h);
            }
            double cd = 1.0 + 1.0 / (2.0 * ratio), co = 1.0 / (2.0 * ratio);
            for (size_t i = 0; i < r->n; i++)
                x[i] = (float)(next / s * x[i] - b * (cd * r->den[i] - co * r->old[i]));
        }
        memcpy(r->old, r->den, r->n * sizeof *r->old);
    }
    return LDM_OK;
}

/* The weights of d_cur and the last three derivatives for iPNDM's step of order `order` (fixed
 * steps), or iPNDM-v's (h: this step and the three before, in sigma). */
static void ipndm_weights(int order, int variable, const double *h, double *c) {
    static const double FIXED[4][4] = {{1, 0, 0, 0},
                                       {1.5, -0.5, 0, 0},
                                       {23.0 / 12, -16.0 / 12, 5.0 / 12, 0},
                                       {55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24}};
    memcpy(c, FIXED[order - 1], 4 * sizeof *c);
    if (!variable || order == 1) return;
    double h0 = h[0], h1 = h[1];
    c[0] = (2 + h0 / h1) / 2;
    c[1] = -(h0 / h1) / 2;
    c[2] = c[3] = 0;
    if (order == 2) return;
    double h2 = h[2];
    double t1 = (1 - h0 / (3 * (h0 + h1)) * (h0 * (h0 + h1)) / (h1 * (h1 + h2))) / 2;
    c[0] += t1;
    c[1] -= (1 + h1 / h2) * t1;
    c[2] = t1 * h1 / h2;
    if (order == 3) return;
    double h3 = h[3];
    double t2 =
        ((1 - h0 / (3 * (h0 + h1))) / 2 + (1 - h0 / (2 * (h0 + h1))) * h0 / (6 * (h0 + h1 + h2))) *
        (h0 * (h0 + h1) * (h0 + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3));
    double q = h1 * (h1 + h2) / (h2 * (h2 + h3));
    c[0] += t2;
    c[1] -= (1 + h1 / h2 + q) * t2;
    c[2] += (h1 / h2 + q * (1 + h2 / h3)) * t2;
    c[3] = -t2 * q * h1 / h2;
}

static ldm_status ipndm(run *r, const double *sg, float *x, int variable) {
    for (int k = r->first; k < r->steps; k++) {
        double s = sg[k], next = sg[k + 1];
        LDM_TRY(denoise(r, x, s, r->den));
        LDM_TRY(after(r, k, s, r->den));
        float *d = r->tmp;
        for (size_t i = 0; i < r->n; i++)
            d[i] = (float)((x[i] - (double)r->den[i]) / s);
        int order = k - r->first + 1 < 4 ? k - r->first + 1 : 4;
        double h[4] = {next - s, 0, 0, 0}, c[4];
        for (int j = 1; j < order; j++)
            h[j] = sg[k - j + 1] - sg[k - j];
        ipndm_weights(order, variable, h, c);
        if (next == 0) {
            memcpy(x, r->den, r->n * sizeof *x);
        } else {
            for (size_t i = 0; i < r->n; i++) {
                double sum = c[0] * d[i];
                for (int j = 1; j < order; j++)
                    sum += c[j] * r->hist[j - 1][i];
                x[i] = (float)(x[i] + (next - s) * sum);
            }
        }
        float *oldest = r->hist[HISTORY - 1]; /* shift: the newest derivative first */
        memmove(r->hist + 1, r->hist, (HISTORY - 1) * sizeof r->hist[0]);
        r->hist[0] = oldest;
        memcpy(r->hist[0], d, r->n * sizeof *d);
    }
    return LDM_OK;
}

static ldm_status lcm(run *r, const double *sg, float *x) {
    for (int k = r->first; k < r->steps; k++) {
        LDM_TRY(denoise(r, x, sg[k], r->den));
        LDM_TRY(after(r, k, sg[k], r->den));
        memcpy(x, r->den, r->n * sizeof *x);
        if (sg[k + 1] > 0) LDM_TRY(add_noise(r, x, sg[k + 1]));
    }
    return LDM_OK;
}

/* TCD's timestep k of steps: (50 - floor(k 50 / steps)) (T / 50) - 1, TCDScheduler's picks
 * from the 50 original LCM steps. */
static int tcd_timestep(int T, int steps, int k) {
    int c = T / TCD_ORIGINAL_STEPS;
    return (TCD_ORIGINAL_STEPS - (int)floor(k * ((double)TCD_ORIGINAL_STEPS / steps))) * c - 1;
}

/* The timesteps of ddim_trailing (diffusers' "trailing" spacing: round(T - k T/steps) - 1,
 * rounding halves to even as numpy does, the previous one T/steps earlier) and tcd (the next
 * pick, 0 after the last). */
static void trailing_timesteps(ldm_sampler_method m, int T, int steps, int k, int *t, int *prev) {
    if (m == LDM_SAMPLER_DDIM_TRAILING) {
        *t = (int)nearbyint(T - k * ((double)T / steps)) - 1;
        *prev = *t - T / steps;
    } else {
        *t = tcd_timestep(T, steps, k);
        *prev = k + 1 >= steps ? 0 : tcd_timestep(T, steps, k + 1);
    }
}

/* ddim_trailing and tcd in DDPM space x_t = sqrt(ab) x: the denoiser sees x_t sqrt(sigma^2 + 1)
 * at sigma(t), its eps = (that - D) / sigma. */
static ldm_status ddim_family(run *r, ldm_sampler_method m, const ldm_schedule *s, float eta,
                              const float *init, float *x) {
    const double *ab = s->alphas_cumprod;
    if (init) { /* x_t = sqrt(ab) init + sqrt(1 - ab) noise at the first step's timestep */
        int t, prev;
        trailing_timesteps(m, s->T, r->steps, r->first, &t, &prev);
        for (size_t i = 0; i < r->n; i++)
            x[i] = (float)(sqrt(ab[t]) * init[i] + sqrt(1.0 - ab[t]) * x[i]);
    }
    for (int k = r->first; k < r->steps; k++) {
        int t, prev;
        trailing_timesteps(m, s->T, r->steps, k, &t, &prev);
        double sigma = ldm_schedule_sigma(s, t), up = sqrt(sigma * sigma + 1.0);
        for (size_t i = 0; i < r->n; i++)
            r->tmp[i] = (float)(x[i] * up);
        LDM_TRY(denoise(r, r->tmp, sigma, r->den));
        LDM_TRY(after(r, k, sigma, r->den));
        double a_t = ab[t], a_prev = prev >= 0 ? ab[prev] : ab[0];
        if (m == LDM_SAMPLER_DDIM_TRAILING) {
            double var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev), sd = eta * sqrt(var);
            double dir = 1 - a_prev - sd * sd;
            dir = dir > 0 ? sqrt(dir) : 0.0;
            for (size_t i = 0; i < r->n; i++) {
                double eps = (r->tmp[i] - (double)r->den[i]) / sigma;
                x[i] = (float)(sqrt(a_prev) * r->den[i] + dir * eps);
            }
            if (eta > 0) LDM_TRY(add_noise(r, x, sd));
        } else {
            int ts = (int)floor((1.0 - eta) * prev);
            double a_s = ab[ts];
            for (size_t i = 0; i < r->n; i++) {
                double eps = (r->tmp[i] - (double)r->den[i]) / sigma;
                x[i] = (float)(sqrt(a_s) * r->den[i] + sqrt(1 - a_s) * eps);
            }
            if (eta > 0 && k != r->steps - 1) {
                double keep = sqrt(a_prev / a_s);
                for (size_t i = 0; i < r->n; i++)
                    x[i] = (float)(keep * x[i]);
                LDM_TRY(add_noise(r, x, sqrt(1 - a_prev / a_s)));
            }
        }
    }
    return LDM_OK;
}

ldm_status ldm_ksampler_sigmas(ldm_sampler_method m, const ldm_schedule *s, ldm_sigma_schedule kind,
                               int steps, double *sigmas) {
    if (m != LDM_SAMPLER_DDIM_TRAILING && m != LDM_SAMPLER_TCD)
        return ldm_sigmas(s, kind, steps, sigmas);
    if (steps < 1 || steps > s->T)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s with %d steps: 1 to %d",
                        ldm_sampler_method_name(m), steps, s->T);
    if (m == LDM_SAMPLER_TCD && (steps > TCD_ORIGINAL_STEPS || s->T < TCD_ORIGINAL_STEPS))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "tcd with %d steps: it samples %d of the schedule's timesteps at most "
                        "(and needs T >= %d; this model has %d)",
                        steps, TCD_ORIGINAL_STEPS, TCD_ORIGINAL_STEPS, s->T);
    for (int k = 0; k < steps; k++) {
        int t, prev;
        trailing_timesteps(m, s->T, steps, k, &t, &prev);
        sigmas[k] = ldm_schedule_sigma(s, t);
    }
    sigmas[steps] = 0.0;
    return LDM_OK;
}

ldm_status ldm_ksample(ldm_sampler_method m, const ldm_schedule *s, const double *sigmas, int steps,
                       int first, float eta, const ldm_denoiser *d, const float *init, float *x) {
    if (m == LDM_SAMPLER_DDPM || m == LDM_SAMPLER_DDIM || (int)m < 0 || m >= LDM_SAMPLER_COUNT)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s is not a sigma-space sampler",
                        ldm_sampler_method_name(m));
    if (steps < 1 || first < 0 || first >= steps || !(sigmas[first] > 0))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s: steps %d to %d from sigma %g",
                        ldm_sampler_method_name(m), first, steps,
                        steps >= 1 && first >= 0 && first < steps ? sigmas[first] : 0.0);
    run r = {.d = d, .n = d->n, .first = first, .steps = steps};
    float *block = malloc((4 + HISTORY) * d->n * sizeof *block);
    if (!block) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory (%zu latents)", d->n);
    float **slots[4 + HISTORY] = {&r.den, &r.tmp, &r.z, &r.old, &r.hist[0], &r.hist[1], &r.hist[2]};
    for (int i = 0; i < 4 + HISTORY; i++)
        *slots[i] = block + (size_t)i * d->n;
    ldm_status st;
    if (m == LDM_SAMPLER_DDIM_TRAILING || m == LDM_SAMPLER_TCD) {
        st = ddim_family(&r, m, s, eta, init, x);
    } else {
        for (size_t i = 0; i < d->n; i++) /* k-diffusion's start: init + noise times sigma */
            x[i] = (float)((init ? init[i] : 0.0) + x[i] * sigmas[first]);
        switch (m) {
        case LDM_SAMPLER_EULER:
            st = euler(&r, sigmas, x, 0);
            break;
        case LDM_SAMPLER_EULER_A:
            st = euler(&r, sigmas, x, 1);
            break;
        case LDM_SAMPLER_HEUN:
            st = second_order(&r, sigmas, x, 0);
            break;
        case LDM_SAMPLER_DPM2:
            st = second_order(&r, sigmas, x, 1);
            break;
        case LDM_SAMPLER_DPMPP_2S_A:
            st = dpmpp_2s_ancestral(&r, sigmas, x);
            break;
        case LDM_SAMPLER_DPMPP_2M:
            st = dpmpp_2m(&r, sigmas, x, 0);
            break;
        case LDM_SAMPLER_DPMPP_2M_V2:
            st = dpmpp_2m(&r, sigmas, x, 1);
            break;
        case LDM_SAMPLER_IPNDM:
            st = ipndm(&r, sigmas, x, 0);
            break;
        case LDM_SAMPLER_IPNDM_V:
            st = ipndm(&r, sigmas, x, 1);
            break;
        default:
            st = lcm(&r, sigmas, x);
            break;
        }
    }
    free(block);
    return st;
}
