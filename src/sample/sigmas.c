/* src/sample/sigmas.c: noise levels of a discrete DDPM schedule as k-diffusion sees them
 * (sigma(t) and its inverse), the sigma schedules of the sigma-space samplers, and the sampler
 * and schedule names (see ldmcl/ksampler.h, ldmcl/sample.h). */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/ksampler.h"

static const char *const METHOD_NAMES[LDM_SAMPLER_COUNT] = {
    [LDM_SAMPLER_DDPM] = "ddpm",
    [LDM_SAMPLER_DDIM] = "ddim",
    [LDM_SAMPLER_EULER] = "euler",
    [LDM_SAMPLER_EULER_A] = "euler_a",
    [LDM_SAMPLER_HEUN] = "heun",
    [LDM_SAMPLER_DPM2] = "dpm2",
    [LDM_SAMPLER_DPMPP_2S_A] = "dpm++2s_a",
    [LDM_SAMPLER_DPMPP_2M] = "dpm++2m",
    [LDM_SAMPLER_DPMPP_2M_V2] = "dpm++2mv2",
    [LDM_SAMPLER_IPNDM] = "ipndm",
    [LDM_SAMPLER_IPNDM_V] = "ipndm_v",
    [LDM_SAMPLER_LCM] = "lcm",
    [LDM_SAMPLER_DDIM_TRAILING] = "ddim_trailing",
    [LDM_SAMPLER_TCD] = "tcd",
};

static const char *const SCHEDULE_NAMES[LDM_SIGMAS_COUNT] = {
    [LDM_SIGMAS_DISCRETE] = "discrete",       [LDM_SIGMAS_KARRAS] = "karras",
    [LDM_SIGMAS_EXPONENTIAL] = "exponential", [LDM_SIGMAS_AYS] = "ays",
    [LDM_SIGMAS_SGM_UNIFORM] = "sgm_uniform", [LDM_SIGMAS_SIMPLE] = "simple",
};

/* "a, b, c" of names[0 .. n) into buf. */
static const char *name_list(const char *const *names, int n, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}

/* The index of name in names[0 .. n), or an error naming what it is and the known names. */
static ldm_status find_name(const char *const *names, int n, const char *name, const char *what,
                            int *out) {
    for (int i = 0; i < n; i++)
        if (name && !strcmp(name, names[i])) {
            *out = i;
            return LDM_OK;
        }
    char buf[256];
    return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "unknown %s '%s' (known: %s)", what, name ? name : "",
                    name_list(names, n, buf, sizeof buf));
}

ldm_status ldm_sampler_method_from_name(const char *name, ldm_sampler_method *out) {
    int i;
    LDM_TRY(find_name(METHOD_NAMES, LDM_SAMPLER_COUNT, name, "sampling method", &i));
    *out = (ldm_sampler_method)i;
    return LDM_OK;
}

const char *ldm_sampler_method_name(ldm_sampler_method m) {
    return (int)m >= 0 && m < LDM_SAMPLER_COUNT ? METHOD_NAMES[m] : "unknown";
}

ldm_status ldm_sigma_schedule_from_name(const char *name, ldm_sigma_schedule *out) {
    int i;
    LDM_TRY(find_name(SCHEDULE_NAMES, LDM_SIGMAS_COUNT, name, "scheduler", &i));
    *out = (ldm_sigma_schedule)i;
    return LDM_OK;
}

const char *ldm_sigma_schedule_name(ldm_sigma_schedule s) {
    return (int)s >= 0 && s < LDM_SIGMAS_COUNT ? SCHEDULE_NAMES[s] : "unknown";
}

int ldm_sampler_method_is_stochastic(ldm_sampler_method m, float eta) {
    switch (m) {
    case LDM_SAMPLER_DDPM:
    case LDM_SAMPLER_EULER_A:
    case LDM_SAMPLER_DPMPP_2S_A:
    case LDM_SAMPLER_LCM:
        return 1;
    case LDM_SAMPLER_DDIM:
    case LDM_SAMPLER_DDIM_TRAILING:
    case LDM_SAMPLER_TCD:
        return eta > 0.0f;
    default:
        return 0;
    }
}

/* log sigma(t) of integer t: 0.5 log((1 - ab) / ab). */
static double log_sigma_at(const ldm_schedule *s, int t) {
    double ab = s->alphas_cumprod[t];
    return 0.5 * log((1.0 - ab) / ab);
}

double ldm_schedule_sigma(const ldm_schedule *s, double t) {
    double top = s->T - 1;
    t = t < 0 ? 0 : t > top ? top : t;
    int lo = (int)floor(t), hi = (int)ceil(t);
    double w = t - lo;
    return exp((1.0 - w) * log_sigma_at(s, lo) + w * log_sigma_at(s, hi));
}

double ldm_schedule_timestep(const ldm_schedule *s, double sigma) {
    if (!(sigma > 0) || s->T < 2) return 0.0;
    double ls = log(sigma);
    int count = 0; /* log sigma(t) rises with t: the t whose level is at most sigma's */
    for (int t = 0; t < s->T; t++)
        count += ls - log_sigma_at(s, t) >= 0;
    int lo = count - 1 < 0 ? 0 : count - 1;
    if (lo > s->T - 2) lo = s->T - 2;
    double a = log_sigma_at(s, lo), b = log_sigma_at(s, lo + 1);
    double w = (a - ls) / (a - b);
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (1.0 - w) * lo + w * (lo + 1);
}

/* Align Your Steps' 10-step noise levels for Stable Diffusion 1.5 (NVIDIA's published table, as
 * stable-diffusion.cpp and ComfyUI use it). */
static const double AYS_SD15[11] = {14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520,
                                    1.8841921177,  1.3943805092, 0.9642583904, 0.6523686016,
                                    0.3977456272,  0.1515232662, 0.0291671582};

/* The table log-linearly interpolated to steps + 1 levels, stretched in log sigma from the table's
 * range to [lo, hi], the last level 0. */
static void ays_sigmas(int steps, double lo, double hi, double *out) {
    const int k = 11;
    double tab_hi = log(AYS_SD15[0]), tab_lo = log(AYS_SD15[k - 1]);
    for (int i = 0; i <= steps; i++) {
        /* position i of steps + 1 on [0, 1], read from the high end */
        double x = steps ? (double)i / steps : 0.0, p = x * (k - 1);
        int j = (int)floor(p);
        if (j >= k - 1) j = k - 2;
        double f = p - j, ls = (1.0 - f) * log(AYS_SD15[j]) + f * log(AYS_SD15[j + 1]);
        double u = (ls - tab_lo) / (tab_hi - tab_lo);
        out[i] = exp(log(lo) + u * (log(hi) - log(lo)));
    }
    out[steps] = 0.0;
}

ldm_status ldm_sigmas(const ldm_schedule *s, ldm_sigma_schedule kind, int steps, double *sigmas) {
    if (steps < 1 || steps > s->T)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%d sampling steps: 1 to %d (the schedule's T)",
                        steps, s->T);
    int n = steps, top = s->T - 1;
    double lo = ldm_schedule_sigma(s, 0), hi = ldm_schedule_sigma(s, top);
    for (int i = 0; i < n; i++) {
        double r = n > 1 ? (double)i / (n - 1) : 0.0; /* 0 .. 1 over the n levels */
        switch (kind) {
        case LDM_SIGMAS_DISCRETE:
            sigmas[i] = ldm_schedule_sigma(s, top - r * top);
            break;
        case LDM_SIGMAS_KARRAS: {
            double a = pow(hi, 1.0 / 7.0), b = pow(lo, 1.0 / 7.0);
            sigmas[i] = pow(a + r * (b - a), 7.0);
            break;
        }
        case LDM_SIGMAS_EXPONENTIAL:
            sigmas[i] = exp(log(hi) + r * (log(lo) - log(hi)));
            break;
        case LDM_SIGMAS_SGM_UNIFORM:
            sigmas[i] = ldm_schedule_sigma(s, top - (double)i * top / n);
            break;
        case LDM_SIGMAS_SIMPLE:
            sigmas[i] = ldm_schedule_sigma(s, top - (int)((double)i * s->T / n));
            break;
        case LDM_SIGMAS_AYS:
            break;
        default:
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "unknown sigma schedule %d", (int)kind);
        }
    }
    if (kind == LDM_SIGMAS_AYS) ays_sigmas(n, lo, hi, sigmas);
    sigmas[n] = 0.0;
    return LDM_OK;
}

void ldm_denoised_from_prediction(ldm_prediction p, double sigma, size_t n, const float *x,
                                  const float *pred, float *denoised) {
    if (p == LDM_PREDICT_V) {
        double skip = 1.0 / (sigma * sigma + 1.0), out = -sigma / sqrt(sigma * sigma + 1.0);
        for (size_t i = 0; i < n; i++)
            denoised[i] = (float)(skip * x[i] + out * pred[i]);
    } else {
        for (size_t i = 0; i < n; i++)
            denoised[i] = (float)(x[i] - sigma * pred[i]);
    }
}
