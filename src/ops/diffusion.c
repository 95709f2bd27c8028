/* src/ops/diffusion.c: schedules (host, double precision), add_noise and the min-SNR loss scale
 * as graph ops, and the DDPM/DDIM sampler steps and classifier-free guidance (cl/diffusion.cl). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/diffusion.h"
#include "ops_internal.h"

#define FILE_CL "diffusion.cl"

ldm_status ldm_schedule_kind_from_name(const char *name, ldm_schedule_kind *kind) {
    if (!strcmp(name, "linear"))
        *kind = LDM_SCHEDULE_LINEAR;
    else if (!strcmp(name, "scaled_linear"))
        *kind = LDM_SCHEDULE_SCALED_LINEAR;
    else if (!strcmp(name, "cosine") || !strcmp(name, "squaredcos_cap_v2"))
        *kind = LDM_SCHEDULE_COSINE;
    else
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "unknown beta schedule '%s' (linear, scaled_linear, cosine)", name);
    return LDM_OK;
}

static double cosine_alpha_bar(double t, int T) {
    const double half_pi = 1.57079632679489661923;
    double c = cos((t / T + 0.008) / 1.008 * half_pi);
    return c * c;
}

ldm_status ldm_schedule_create(ldm_schedule_kind kind, int T, double beta_start, double beta_end,
                               ldm_schedule **out) {
    *out = NULL;
    if (T < 1 || T > 100000)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "schedule of %d timesteps (1 to 100000)", T);
    if (kind != LDM_SCHEDULE_COSINE &&
        !(beta_start > 0 && beta_end > 0 && beta_start < 1 && beta_end < 1))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "betas %g to %g must lie in (0, 1)", beta_start,
                        beta_end);
    ldm_schedule *s = calloc(1, sizeof *s);
    double *mem = calloc(3 * (size_t)T, sizeof *mem);
    if (!s || !mem) {
        free(s);
        free(mem);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    s->kind = kind;
    s->T = T;
    s->betas = mem;
    s->alphas = mem + T;
    s->alphas_cumprod = mem + 2 * T;
    for (int i = 0; i < T; i++) {
        double f = T > 1 ? (double)i / (T - 1) : 0.0;
        if (kind == LDM_SCHEDULE_LINEAR)
            s->betas[i] = beta_start + f * (beta_end - beta_start);
        else if (kind == LDM_SCHEDULE_SCALED_LINEAR) {
            double b = sqrt(beta_start) + f * (sqrt(beta_end) - sqrt(beta_start));
            s->betas[i] = b * b;
        } else {
            double b = 1.0 - cosine_alpha_bar(i + 1, T) / cosine_alpha_bar(i, T);
            s->betas[i] = b < 0.999 ? b : 0.999;
        }
        s->alphas[i] = 1.0 - s->betas[i];
        s->alphas_cumprod[i] = s->alphas[i] * (i ? s->alphas_cumprod[i - 1] : 1.0);
    }
    *out = s;
    return LDM_OK;
}

void ldm_schedule_destroy(ldm_schedule *s) {
    if (!s) return;
    free(s->betas);
    free(s);
}

/* The constant tables sqrt(ab[t]) and sign * sqrt(1 - ab[t]) of a schedule; 0 after an error. */
static int schedule_tables(ldm_graph *g, const ldm_schedule *s, double sign, ldm_tensor **ta,
                           ldm_tensor **tb) {
    float *a = malloc(2 * (size_t)s->T * sizeof *a);
    if (!a) return LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory") != NULL;
    for (int i = 0; i < s->T; i++) {
        a[i] = (float)sqrt(s->alphas_cumprod[i]);
        a[s->T + i] = (float)(sign * sqrt(1.0 - s->alphas_cumprod[i]));
    }
    char na[80], nb[80];
    snprintf(na, sizeof na, "schedule_%p.sqrt_alpha_bar", (const void *)s);
    snprintf(nb, sizeof nb, "schedule_%p.%ssqrt_one_minus_alpha_bar", (const void *)s,
             sign < 0 ? "neg_" : "");
    *ta = ldm_graph_constant(g, na, 1, &s->T, a);
    *tb = ldm_graph_constant(g, nb, 1, &s->T, a + s->T);
    free(a);
    return *ta && *tb;
}

/* ---- add_noise ---------------------------------------------------------------------------- */

static ldm_status add_noise_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const ldm_tensor *x0 = n->in[0];
    size_t per = x0->numel / (size_t)x0->shape[0];
    LDM_TRY(ldm_check_count("add_noise", x0->numel));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "add_noise", NULL, &k));
    LDM_TRY(ldm_args_add_noise(k, (int)x0->numel, (int)per, n->in[3]->shape[0],
                               ldm_tensor_buf(n->out[0]), ldm_tensor_buf(x0),
                               ldm_tensor_buf(n->in[1]), ldm_tensor_buf(n->in[2]),
                               ldm_tensor_buf(n->in[3]), ldm_tensor_buf(n->in[4])));
    return ldm_launch_1d(c, k, x0->numel);
}

/* No backward: a gradient that would flow into x0 or the noise is a recording error. The
 * timesteps and the tables (inputs 2 to 4) never take one. */
static const ldm_op_class add_noise_op = {
    .name = "add_noise",
    .fwd = add_noise_fwd,
    .no_grad = LDM_INPUT(2) | LDM_INPUT(3) | LDM_INPUT(4),
};

ldm_tensor *ldm_add_noise(ldm_graph *g, const ldm_schedule *s, ldm_tensor *x0, ldm_tensor *noise,
                          ldm_tensor *t) {
    if (!x0 || !noise || !t) return NULL;
    if (!ldm_check_same_shape(g, "add_noise", x0, noise)) return NULL;
    if (t->numel != (size_t)x0->shape[0])
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "add_noise: '%s' needs one timestep per sample (%d), has %zu",
                              t->name, x0->shape[0], t->numel);
    ldm_tensor *ta, *tb;
    if (!schedule_tables(g, s, 1.0, &ta, &tb)) return NULL;
    ldm_tensor *in[5] = {x0, noise, t, ta, tb};
    ldm_node *n = ldm_graph_add_node(g, &add_noise_op, LDM_NO_PARAMS, "add_noise", in, 5, x0->ndim,
                                     x0->shape);
    return n ? n->out[0] : NULL;
}

ldm_tensor *ldm_velocity(ldm_graph *g, const ldm_schedule *s, ldm_tensor *x0, ldm_tensor *noise,
                         ldm_tensor *t) {
    if (!x0 || !noise || !t) return NULL;
    if (!ldm_check_same_shape(g, "velocity", x0, noise)) return NULL;
    /* v = sqrt(ab) noise - sqrt(1 - ab) x0: add_noise with the inputs swapped and the second
     * table negated. */
    ldm_tensor *ta, *tb;
    if (!schedule_tables(g, s, -1.0, &ta, &tb)) return NULL;
    ldm_tensor *in[5] = {noise, x0, t, ta, tb};
    ldm_node *n =
        ldm_graph_add_node(g, &add_noise_op, LDM_NO_PARAMS, "velocity", in, 5, x0->ndim, x0->shape);
    return n ? n->out[0] : NULL;
}

/* ---- min-SNR loss weight ------------------------------------------------------------------ */

static ldm_status launch_timestep_scale(ldm_cmd *c, const ldm_node *n, int acc, ldm_buf out,
                                        ldm_buf x) {
    const ldm_tensor *xt = n->in[0];
    LDM_TRY(ldm_check_count("snr_loss_scale", xt->numel));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "timestep_scale", NULL, &k));
    LDM_TRY(ldm_args_timestep_scale(k, (int)xt->numel, (int)(xt->numel / (size_t)xt->shape[0]),
                                    n->in[2]->shape[0], acc, out, x, ldm_tensor_buf(n->in[1]),
                                    ldm_tensor_buf(n->in[2])));
    return ldm_launch_1d(c, k, xt->numel);
}

static ldm_status snr_scale_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    return launch_timestep_scale(c, n, 0, ldm_tensor_buf(n->out[0]), ldm_tensor_buf(n->in[0]));
}

static ldm_status snr_scale_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    return a->din[0].mem ? launch_timestep_scale(c, n, a->acc[0], a->din[0], a->dout) : LDM_OK;
}

/* Inputs: x, t, the table sqrt(w[t]); the timesteps and the table take no gradient, and the
 * backward scales by the same table entries, so it reads both. */
static const ldm_op_class snr_scale_op = {
    .name = "snr_loss_scale",
    .fwd = snr_scale_fwd,
    .bwd = snr_scale_bwd,
    .bwd_reads = LDM_READS_IN(1) | LDM_READS_IN(2),
    .no_grad = LDM_INPUT(1) | LDM_INPUT(2),
};

double ldm_min_snr_weight(const ldm_schedule *s, int t, double gamma, int v_prediction) {
    double ab = s->alphas_cumprod[t < 0 ? 0 : t >= s->T ? s->T - 1 : t];
    double snr = ab / (1.0 - ab); /* ab < 1 for every schedule ldmcl builds */
    double clipped = snr < gamma ? snr : gamma;
    if (v_prediction) return clipped / (snr + 1.0);
    return snr < gamma ? 1.0 : gamma / snr; /* min(snr, gamma) / snr, also where snr is 0 */
}

ldm_tensor *ldm_snr_loss_scale(ldm_graph *g, const ldm_schedule *s, float gamma, int v_prediction,
                               ldm_tensor *x, ldm_tensor *t) {
    if (!x || !t) return NULL;
    if (!(gamma > 0.0f))
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "snr_loss_scale: gamma %g must be positive", (double)gamma);
    if (t->numel != (size_t)x->shape[0])
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "snr_loss_scale: '%s' needs one timestep per sample (%d), has %zu",
                              t->name, x->shape[0], t->numel);
    float *w = malloc((size_t)s->T * sizeof *w);
    if (!w) return LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
    for (int i = 0; i < s->T; i++)
        w[i] = (float)sqrt(ldm_min_snr_weight(s, i, gamma, v_prediction));
    char name[96];
    snprintf(name, sizeof name, "schedule_%p.sqrt_min_snr_%g_%s", (const void *)s, (double)gamma,
             v_prediction ? "v" : "epsilon");
    ldm_tensor *table = ldm_graph_constant(g, name, 1, &s->T, w);
    free(w);
    if (!table) return NULL;
    ldm_tensor *in[3] = {x, t, table};
    ldm_node *n = ldm_graph_add_node(g, &snr_scale_op, LDM_NO_PARAMS, "snr_loss_scale", in, 3,
                                     x->ndim, x->shape);
    return n ? n->out[0] : NULL;
}

/* Inputs: cond, u, [null]. Row n is dropped where u[n] < p (<= p when inclusive). */
typedef struct drop_params {
    float p;
    int inclusive, has_null;
} drop_params;

static ldm_status drop_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const drop_params *p = LDM_NODE_PARAMS(n, drop_params);
    const ldm_tensor *cond = n->in[0];
    size_t N = (size_t)cond->shape[0], R = cond->numel / N;
    LDM_TRY(ldm_check_count("drop_condition", cond->numel));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "drop_condition", NULL, &k));
    ldm_buf null = p->has_null ? ldm_tensor_buf(n->in[2]) : ldm_tensor_buf(cond);
    LDM_TRY(ldm_args_drop_condition(k, (int)N, (int)R, p->p, p->inclusive, p->has_null,
                                    ldm_tensor_buf(n->out[0]), ldm_tensor_buf(cond), null,
                                    ldm_tensor_buf(n->in[1])));
    return ldm_launch_1d(c, k, cond->numel);
}

/* Conditions are data (frozen text encoder, one-hot classes, masks): no backward; the random
 * draws never take a gradient. */
static const ldm_op_class drop_op = {
    .name = "drop_condition",
    .fwd = drop_fwd,
    .params_size = LDM_PARAMS_SIZE(drop_params),
    .no_grad = LDM_INPUT(1),
};

ldm_tensor *ldm_drop_condition(ldm_graph *g, ldm_tensor *cond, ldm_tensor *null_row, ldm_tensor *u,
                               float p, int inclusive) {
    if (!cond || !u) return NULL;
    size_t N = (size_t)cond->shape[0];
    if (u->numel != N || (null_row && null_row->numel != cond->numel / N))
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "drop_condition: '%s' needs one draw per sample (%zu, has %zu) and a "
                              "null row of %zu elements",
                              cond->name, N, u->numel, cond->numel / N);
    drop_params params = {p, inclusive != 0, null_row != NULL};
    ldm_tensor *in[3] = {cond, u, null_row};
    ldm_node *n = ldm_graph_add_node(g, &drop_op, LDM_PARAMS(params), "drop_condition", in,
                                     null_row ? 3 : 2, cond->ndim, cond->shape);
    return n ? n->out[0] : NULL;
}

/* ---- sampler steps ------------------------------------------------------------------------ */

static ldm_status step_kernel(ldm_cmd *c, size_t n, double c_x, double c_eps, double sigma,
                              double x0_x, double x0_eps, ldm_buf out, ldm_buf x0, ldm_buf xt,
                              ldm_buf eps, ldm_buf z) {
    LDM_TRY(ldm_check_count("diffusion step", n));
    if (sigma != 0.0 && !z.mem)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "a stochastic step needs noise z");
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "diffusion_step", NULL, &k));
    LDM_TRY(ldm_args_diffusion_step(k, (int)n, (float)c_x, (float)c_eps, (float)sigma, (float)x0_x,
                                    (float)x0_eps, x0.mem != NULL, out, ldm_unused_or(x0, out), xt,
                                    eps, ldm_unused_or(z, eps)));
    return ldm_launch_1d(c, k, n);
}

static ldm_status check_t(const ldm_schedule *s, int t) {
    if (t < 0 || t >= s->T)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "timestep %d outside [0, %d)", t, s->T);
    return LDM_OK;
}

ldm_status ldm_ddpm_step(ldm_cmd *c, const ldm_schedule *s, int t, size_t n, ldm_buf out,
                         ldm_buf x0, ldm_buf xt, ldm_buf eps, ldm_buf z) {
    LDM_TRY(check_t(s, t));
    double ab = s->alphas_cumprod[t], beta = s->betas[t], alpha = s->alphas[t];
    double c_x = 1.0 / sqrt(alpha), c_eps = -beta / (sqrt(1.0 - ab) * sqrt(alpha));
    double sigma = t > 0 ? sqrt((1.0 - s->alphas_cumprod[t - 1]) / (1.0 - ab) * beta) : 0.0;
    return step_kernel(c, n, c_x, c_eps, sigma, 1.0 / sqrt(ab), -sqrt(1.0 - ab) / sqrt(ab), out, x0,
                       xt, eps, z);
}

ldm_status ldm_ddim_step(ldm_cmd *c, const ldm_schedule *s, int t, int t_prev, float eta, size_t n,
                         ldm_buf out, ldm_buf x0, ldm_buf xt, ldm_buf eps, ldm_buf z) {
    LDM_TRY(check_t(s, t));
    if (t_prev >= t || t_prev < -1)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "DDIM from %d to %d: the target must be earlier",
                        t, t_prev);
    double ab = s->alphas_cumprod[t], ap = t_prev >= 0 ? s->alphas_cumprod[t_prev] : 1.0;
    double sigma = eta * sqrt((1.0 - ap) / (1.0 - ab)) * sqrt(1.0 - ab / ap);
    double dir = 1.0 - ap - sigma * sigma;
    dir = dir > 0 ? sqrt(dir) : 0.0;
    double x0_x = 1.0 / sqrt(ab), x0_eps = -sqrt(1.0 - ab) / sqrt(ab);
    return step_kernel(c, n, sqrt(ap) * x0_x, sqrt(ap) * x0_eps + dir, sigma, x0_x, x0_eps, out, x0,
                       xt, eps, z);
}

ldm_status ldm_ddim_step_v(ldm_cmd *c, const ldm_schedule *s, int t, int t_prev, float eta,
                           size_t n, ldm_buf out, ldm_buf xt, ldm_buf v, ldm_buf z) {
    LDM_TRY(check_t(s, t));
    if (t_prev >= t || t_prev < -1)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "DDIM from %d to %d: the target must be earlier",
                        t, t_prev);
    /* x0 = sqrt(ab) x_t - sqrt(1-ab) v and eps = sqrt(ab) v + sqrt(1-ab) x_t, into the DDIM
     * update out = sqrt(ap) x0 + sqrt(1 - ap - sigma^2) eps + sigma z. */
    double ab = s->alphas_cumprod[t], ap = t_prev >= 0 ? s->alphas_cumprod[t_prev] : 1.0;
    double sigma = eta * sqrt((1.0 - ap) / (1.0 - ab)) * sqrt(1.0 - ab / ap);
    double dir = 1.0 - ap - sigma * sigma;
    dir = dir > 0 ? sqrt(dir) : 0.0;
    double c_x = sqrt(ap) * sqrt(ab) + dir * sqrt(1.0 - ab);
    double c_v = -sqrt(ap) * sqrt(1.0 - ab) + dir * sqrt(ab);
    ldm_buf none = {NULL, 0};
    return step_kernel(c, n, c_x, c_v, sigma, sqrt(ab), -sqrt(1.0 - ab), out, none, xt, v, z);
}

ldm_status ldm_cfg_combine(ldm_cmd *c, size_t n, float scale, ldm_buf out, ldm_buf eps_uncond,
                           ldm_buf eps_cond) {
    return ldm_axpby(c, n, out, 1.0f - scale, eps_uncond, scale, eps_cond);
}
