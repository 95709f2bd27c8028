/* src/sample/sampler.c: sampling with classifier-free guidance (see ldmcl/sample.h). The UNet
 * graph takes 2N samples with guidance (the N unconditional ones first) and N without; every
 * step copies x into its input, writes the timesteps, replays the graph and combines the
 * predictions. DDPM and DDIM then apply their step on the device (a v prediction turned into
 * epsilon where the step or a preview needs it); the sigma-space samplers (ldmcl/ksampler.h) run
 * on the host around the same UNet call, which scales x by c_in and reads the guided prediction
 * back as the denoised estimate. Sample i's noise is drawn with seed + i. The chain is checked
 * for NaN/Inf after the first step and at the end: garbage is an error, never latents. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/ksampler.h"
#include "ldmcl/ops.h"
#include "ldmcl/sample.h"

enum { STREAM_START = 9, STREAM_STEP = 10 };

struct ldm_sampler {
    ldm_ctx *ctx;
    ldm_sampler_config cfg;
    int cfg_on, rows; /* guidance on; samples per UNet pass (2N or N) */
    ldm_graph *g;
    ldm_tensor *x_in, *t, *context, *class_onehot, *mask, *eps;
    ldm_arena *arena; /* x, guided eps, z, x0 scratch */
    ldm_buf x, eps_g, z, x0;
    size_t n;                    /* elements of x */
    float *t_host, *x0_host;     /* x0_host: with an x0 hook */
    double *sigmas;              /* the sigma-space samplers' levels [steps + 1] */
    const float *init, *inpaint; /* img2img's start [n] and inpainting's mask [batch, H W] */
    float strength;
    float *noise0, *blend;      /* the start noise [n] (inpainting re-noises with it), scratch */
    float *host_in, *host_pred; /* their UNet input and guided prediction [n] */
    int calls;                  /* UNet evaluations of the current run */
};

/* The latents' channels. */
static int latent_channels(const ldm_sampler_config *c) {
    return c->sd_unet ? c->sd_unet->out_channels : c->unet->im_channels;
}

static int sigma_space(ldm_sampler_method m) {
    return m != LDM_SAMPLER_DDPM && m != LDM_SAMPLER_DDIM;
}

/* Stable Diffusion's UNet on x, t and the text; the inpainting UNet's extra channels
 * concatenated after x (after the samplers' input scaling, as diffusers does). */
static ldm_tensor *record_sd_unet(ldm_sampler *s) {
    const ldm_sd_unet_config *u = s->cfg.sd_unet;
    int r = s->rows, h = s->cfg.height, w = s->cfg.width, extra = u->in_channels - u->out_channels;
    ldm_tensor *x = s->x_in;
    s->context = ldm_graph_input(s->g, "context", LDM_SHAPE(r, s->cfg.context_len, u->context_dim));
    if (extra > 0) {
        s->mask = ldm_graph_input(s->g, "inpainting", LDM_SHAPE(r, extra, h, w));
        x = ldm_concat(s->g, x, s->mask, 1);
    }
    return ldm_sd_unet(s->g, u, x, s->t, s->context);
}

static ldm_status record_unet(ldm_sampler *s) {
    const ldm_unet_config *u = s->cfg.unet;
    int r = s->rows, c = latent_channels(&s->cfg), h = s->cfg.height, w = s->cfg.width;
    LDM_TRY(ldm_graph_create_in(s->ctx, s->cfg.params, &s->g));
    ldm_graph *g = s->g;
    if (s->cfg.params && s->cfg.lora) ldm_graph_set_lora(g, s->cfg.lora);
    s->x_in = ldm_graph_input(g, "x", LDM_SHAPE(r, c, h, w));
    s->t = ldm_graph_input(g, "t", LDM_SHAPE(r));
    if (s->cfg.sd_unet) {
        if (s->cfg.half_weights && !s->cfg.params) ldm_graph_set_half_weights(g, 1);
        s->eps = record_sd_unet(s);
        ldm_tensor_keep(s->eps);
        /* its own weights are frozen: they may then span several device buffers */
        for (size_t i = 0; !s->cfg.params && i < ldm_graph_param_count(g); i++)
            ldm_tensor_set_trainable(ldm_graph_param_at(g, i), 0);
        return ldm_graph_compile(g);
    }
    ldm_unet_cond cond = {NULL, NULL, NULL};
    if (u->text_embed_dim)
        cond.context = s->context =
            ldm_graph_input(g, "context", LDM_SHAPE(r, s->cfg.context_len, u->text_embed_dim));
    if (u->num_classes)
        cond.class_onehot = s->class_onehot =
            ldm_graph_input(g, "class", LDM_SHAPE(r, u->num_classes));
    if (u->image_cond_input_channels)
        cond.mask = s->mask = ldm_graph_input(
            g, "mask",
            LDM_SHAPE(r, u->image_cond_input_channels, s->cfg.mask_height, s->cfg.mask_width));
    s->eps = ldm_unet(g, u, s->x_in, s->t, &cond);
    ldm_tensor_keep(s->eps);
    return ldm_graph_compile(g);
}

ldm_status ldm_sampler_create(ldm_ctx *ctx, const ldm_sampler_config *cfg, ldm_sampler **out) {
    *out = NULL;
    if (!cfg->unet == !cfg->sd_unet)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "sampler: give one UNet configuration");
    LDM_TRY(cfg->unet ? ldm_unet_config_check(cfg->unet) : ldm_sd_unet_config_check(cfg->sd_unet));
    if (cfg->batch < 1 || cfg->height < 1 || cfg->width < 1)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "sampler: batch %d of %dx%d latents", cfg->batch,
                        cfg->height, cfg->width);
    if ((int)cfg->method < 0 || cfg->method >= LDM_SAMPLER_COUNT)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "sampler: unknown method %d", (int)cfg->method);
    if (cfg->method == LDM_SAMPLER_DDIM && (cfg->steps < 1 || cfg->steps > cfg->schedule->T))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "DDIM with %d steps: 1 to %d", cfg->steps,
                        cfg->schedule->T);
    if (cfg->eta < 0.0f || !(cfg->eta <= 1.0f))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "eta %g: 0 to 1", (double)cfg->eta);
    ldm_sampler *s = calloc(1, sizeof *s);
    if (!s) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    s->ctx = ctx;
    s->cfg = *cfg;
    s->cfg_on = cfg->guidance_scale > 1.0f;
    s->rows = cfg->batch * (s->cfg_on ? 2 : 1);
    s->n = (size_t)cfg->batch * latent_channels(cfg) * cfg->height * cfg->width;
    s->t_host = malloc((size_t)s->rows * sizeof *s->t_host);
    if (cfg->x0_hook.take) s->x0_host = malloc(s->n * sizeof *s->x0_host);
    ldm_status st = s->t_host && (s->x0_host || !cfg->x0_hook.take)
                        ? record_unet(s)
                        : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of memory");
    if (st == LDM_OK)
        st = ldm_arena_create(ctx, "sampler state", (uint64_t)(4 * s->n + 4 * 64) * 4, &s->arena);
    if (st == LDM_OK) st = ldm_arena_take(s->arena, s->n, "x", &s->x);
    if (st == LDM_OK) st = ldm_arena_take(s->arena, s->n, "guided eps", &s->eps_g);
    if (st == LDM_OK) st = ldm_arena_take(s->arena, s->n, "z", &s->z);
    if (st == LDM_OK) st = ldm_arena_take(s->arena, s->n, "x0", &s->x0);
    if (st == LDM_OK && sigma_space(cfg->method)) {
        s->sigmas = malloc((size_t)(cfg->steps > 0 ? cfg->steps + 1 : 1) * sizeof *s->sigmas);
        s->host_in = malloc(s->n * sizeof *s->host_in);
        s->host_pred = malloc(s->n * sizeof *s->host_pred);
        st = s->sigmas && s->host_in && s->host_pred
                 ? ldm_ksampler_sigmas(cfg->method, cfg->schedule, cfg->scheduler, cfg->steps,
                                       s->sigmas)
                 : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    if (st != LDM_OK) {
        ldm_sampler_destroy(s);
        return st;
    }
    *out = s;
    return LDM_OK;
}

void ldm_sampler_destroy(ldm_sampler *s) {
    if (!s) return;
    ldm_arena_destroy(s->arena);
    ldm_graph_destroy(s->g);
    free(s->t_host);
    free(s->x0_host);
    free(s->sigmas);
    free(s->noise0);
    free(s->blend);
    free(s->host_in);
    free(s->host_pred);
    free(s);
}

ldm_graph *ldm_sampler_graph(ldm_sampler *s) {
    return s->g;
}

/* Writes `per` floats per sample: with guidance the unconditional rows (uncond for each, or
 * zeros) then the conditional ones. */
static ldm_status write_rows(ldm_sampler *s, ldm_tensor *t, const float *cond, const float *uncond,
                             size_t per, const char *what) {
    if (!t) return LDM_OK;
    if (!cond)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "sampler: the model needs a %s condition", what);
    size_t n = (size_t)s->cfg.batch;
    float *rows = calloc((size_t)s->rows * per, sizeof *rows);
    if (!rows) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    float *c = rows;
    if (s->cfg_on) {
        for (size_t i = 0; i < n && uncond; i++)
            memcpy(rows + i * per, uncond, per * sizeof *rows);
        c = rows + n * per;
    }
    memcpy(c, cond, n * per * sizeof *rows);
    ldm_status st = ldm_tensor_write(t, rows);
    free(rows);
    return st;
}

/* Writes `per` floats per sample to both the unconditional and the conditional rows (the
 * inpainting UNet's mask and masked latents, which guidance keeps in both passes). */
static ldm_status write_rows_twice(ldm_sampler *s, ldm_tensor *t, const float *cond, size_t per,
                                   const char *what) {
    if (!t) return LDM_OK;
    if (!cond)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "sampler: the model needs a %s condition", what);
    size_t n = (size_t)s->cfg.batch;
    float *rows = malloc((size_t)s->rows * per * sizeof *rows);
    if (!rows) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    for (int copy = 0; copy < (s->cfg_on ? 2 : 1); copy++)
        memcpy(rows + (size_t)copy * n * per, cond, n * per * sizeof *rows);
    ldm_status st = ldm_tensor_write(t, rows);
    free(rows);
    return st;
}

ldm_status ldm_sampler_set_conditions(ldm_sampler *s, const float *context,
                                      const float *uncond_context, const float *class_onehot,
                                      const float *mask) {
    if (s->context && s->cfg_on && !uncond_context)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "sampler: guidance with text needs the empty prompt's embedding");
    if (s->cfg.sd_unet) {
        const ldm_sd_unet_config *u = s->cfg.sd_unet;
        size_t hw = (size_t)s->cfg.height * s->cfg.width;
        LDM_TRY(write_rows(s, s->context, context, uncond_context,
                           (size_t)s->cfg.context_len * u->context_dim, "text"));
        return write_rows_twice(s, s->mask, mask, (size_t)(u->in_channels - u->out_channels) * hw,
                                "inpainting");
    }
    const ldm_unet_config *u = s->cfg.unet;
    LDM_TRY(write_rows(s, s->context, context, uncond_context,
                       (size_t)s->cfg.context_len * u->text_embed_dim, "text"));
    LDM_TRY(write_rows(s, s->class_onehot, class_onehot, NULL, (size_t)u->num_classes, "class"));
    return write_rows(s, s->mask, mask, NULL,
                      (size_t)u->image_cond_input_channels * s->cfg.mask_height * s->cfg.mask_width,
                      "mask");
}

/* One UNet evaluation at timestep t; leaves the (guided) prediction for x in s->eps_g. */
static ldm_status predict(ldm_sampler *s, double t) {
    ldm_buf xin = ldm_tensor_buf(s->x_in), e = ldm_tensor_buf(s->eps);
    ldm_cmd *c = ldm_ctx_immediate(s->ctx);
    LDM_TRY(ldm_buf_copy(s->ctx, xin, s->x, s->n, NULL));
    if (s->cfg_on)
        LDM_TRY(ldm_buf_copy(s->ctx, (ldm_buf){xin.mem, xin.off + s->n}, s->x, s->n, NULL));
    for (int i = 0; i < s->rows; i++)
        s->t_host[i] = (float)t;
    LDM_TRY(ldm_tensor_write(s->t, s->t_host));
    s->calls++;
    LDM_TRY(ldm_graph_run(s->g));
    if (!s->cfg_on) return ldm_buf_copy(s->ctx, s->eps_g, e, s->n, NULL);
    return ldm_cfg_combine(c, s->n, s->cfg.guidance_scale, s->eps_g, e,
                           (ldm_buf){e.mem, e.off + s->n});
}

/* Fails when x (the chain after `step` of `steps`) holds NaN or infinite values. */
static ldm_status check_finite(const float *x, size_t n, int step, int steps) {
    size_t first = 0, bad = ldm_count_non_finite(x, n, &first);
    if (!bad) return LDM_OK;
    if (step == 1)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "the sampled latents hold %zu NaN/Inf values of %zu after step 1 of %d "
                        "(the first at element %zu): the UNet's weights or its conditions are not "
                        "finite, or its activations overflow",
                        bad, n, steps, first);
    return LDM_FAIL(LDM_ERR_FORMAT,
                    "the sampled latents hold %zu NaN/Inf values of %zu after step %d of %d (the "
                    "first at element %zu; they were finite after step 1): sampling diverged. "
                    "Try a lower guidance scale, or check the UNet's weights",
                    bad, n, step, steps, first);
}

void ldm_sampler_set_seed(ldm_sampler *s, uint64_t seed) {
    s->cfg.seed = seed;
}

/* Fills x (n values, the batch) with the draw (stream, step): sample i's slice keyed by seed + i.
 */
static ldm_status fill_noise(ldm_sampler *s, uint32_t stream, uint64_t step, ldm_buf x) {
    size_t per = s->n / (size_t)s->cfg.batch;
    ldm_buf none = {NULL, 0};
    for (int i = 0; i < s->cfg.batch; i++)
        LDM_TRY(ldm_rng_fill(ldm_ctx_immediate(s->ctx), LDM_DIST_NORMAL, per,
                             s->cfg.seed + (uint64_t)i, stream, step, none, 1.0f, 0.0f,
                             (ldm_buf){x.mem, x.off + (size_t)i * per}));
    return LDM_OK;
}

static void host_noise(ldm_sampler *s, uint32_t stream, uint64_t step, float *z) {
    size_t per = s->n / (size_t)s->cfg.batch;
    for (int i = 0; i < s->cfg.batch; i++)
        ldm_rng_host(LDM_DIST_NORMAL, per, s->cfg.seed + (uint64_t)i, stream, step,
                     z + (size_t)i * per);
}

static void report_step(ldm_sampler *s, int k, int steps) {
    if (s->cfg.progress.step) s->cfg.progress.step(s->cfg.progress.user, k, steps);
}

ldm_status ldm_sampler_set_init(ldm_sampler *s, const float *init, float strength,
                                const float *mask) {
    if (!init) {
        s->init = s->inpaint = NULL;
        return LDM_OK;
    }
    if (!(strength > 0.0f && strength <= 1.0f))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "strength %g: it must be in (0, 1]",
                        (double)strength);
    if (!s->noise0) s->noise0 = malloc(s->n * sizeof *s->noise0);
    if (!s->blend) s->blend = malloc(s->n * sizeof *s->blend);
    if (!s->noise0 || !s->blend) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    s->init = init;
    s->inpaint = mask;
    s->strength = strength;
    return LDM_OK;
}

/* The first step of `steps` an init starts at: the last max(1, floor(steps strength)) steps run
 * (diffusers' img2img, at least one). */
static int first_step(const ldm_sampler *s, int steps) {
    if (!s->init) return 0;
    int run = (int)((double)steps * s->strength);
    return steps - (run < 1 ? 1 : run);
}

/* Inpainting: x outside the mask (mask 0: keep) becomes init re-noised with the start noise,
 * x_known = a init + b noise0; inside (1: repaint) it stays. */
static void blend_known(const ldm_sampler *s, float *x, double a, double b) {
    size_t c = (size_t)latent_channels(&s->cfg), hw = s->n / (size_t)s->cfg.batch / c;
    for (size_t i = 0; i < s->n; i++) {
        double m = s->inpaint[i / (hw * c) * hw + i % hw];
        x[i] = (float)(m * x[i] + (1.0 - m) * (a * s->init[i] + b * s->noise0[i]));
    }
}

/* DDPM (t = T-1 .. 0) and DDIM (t_k = (steps-1-k) T/steps) with their steps on the device. */
static ldm_status run_discrete(ldm_sampler *s, float *latents) {
    const ldm_sampler_config *f = &s->cfg;
    ldm_cmd *c = ldm_ctx_immediate(s->ctx);
    ldm_buf none = {NULL, 0};
    LDM_TRY(fill_noise(s, STREAM_START, 0, s->x));
    int T = f->schedule->T, ddpm = f->method == LDM_SAMPLER_DDPM, steps = ddpm ? T : f->steps;
    int first = first_step(s, steps);
    if (s->init) { /* SDEdit: x_t = sqrt(ab) init + sqrt(1 - ab) noise at the first step's t */
        int t0 = ddpm ? T - 1 - first : (steps - 1 - first) * (T / steps);
        double ab = f->schedule->alphas_cumprod[t0];
        LDM_TRY(ldm_buf_read(s->ctx, s->noise0, s->x, s->n));
        for (size_t i = 0; i < s->n; i++)
            s->blend[i] = (float)(sqrt(ab) * s->init[i] + sqrt(1.0 - ab) * s->noise0[i]);
        LDM_TRY(ldm_buf_write(s->ctx, s->x, s->blend, s->n));
    }
    for (int k = first; k < steps; k++) {
        int t = ddpm ? T - 1 - k : (steps - 1 - k) * (T / steps);
        int t_prev = ddpm ? t - 1 : t - T / steps;
        LDM_TRY(predict(s, t));
        int noisy = ddpm ? t > 0 : f->eta > 0.0f;
        if (noisy) LDM_TRY(fill_noise(s, STREAM_STEP, (uint64_t)k, s->z));
        ldm_buf z = noisy ? s->z : none;
        const ldm_x0_hook *h = &f->x0_hook;
        int preview = h->take && (!h->want || h->want(h->user, k - first, steps - first));
        ldm_buf x0 = preview ? s->x0 : none;
        int v = f->prediction == LDM_PREDICT_V;
        if (v && (ddpm || preview)) { /* eps = sqrt(ab) v + sqrt(1 - ab) x_t */
            double ab = f->schedule->alphas_cumprod[t];
            LDM_TRY(ldm_axpby(c, s->n, s->eps_g, (float)sqrt(ab), s->eps_g, (float)sqrt(1.0 - ab),
                              s->x));
            v = 0;
        }
        if (ddpm)
            LDM_TRY(ldm_ddpm_step(c, f->schedule, t, s->n, s->x, x0, s->x, s->eps_g, z));
        else if (!v)
            LDM_TRY(ldm_ddim_step(c, f->schedule, t, t_prev < 0 ? -1 : t_prev, f->eta, s->n, s->x,
                                  x0, s->x, s->eps_g, z));
        else
            LDM_TRY(ldm_ddim_step_v(c, f->schedule, t, t_prev < 0 ? -1 : t_prev, f->eta, s->n, s->x,
                                    s->x, s->eps_g, z));
        if (s->inpaint) { /* the known region at t_prev (ab = 1 after the last step) */
            double ap = t_prev >= 0 ? f->schedule->alphas_cumprod[t_prev] : 1.0;
            LDM_TRY(ldm_buf_read(s->ctx, s->blend, s->x, s->n));
            blend_known(s, s->blend, sqrt(ap), sqrt(1.0 - ap));
            LDM_TRY(ldm_buf_write(s->ctx, s->x, s->blend, s->n));
        }
        if (k == first && steps - first > 1) { /* one early look (latents as scratch) */
            LDM_TRY(ldm_buf_read(s->ctx, latents, s->x, s->n));
            LDM_TRY(check_finite(latents, s->n, 1, steps - first));
        }
        if (preview) {
            LDM_TRY(ldm_buf_read(s->ctx, s->x0_host, s->x0, s->n));
            LDM_TRY(h->take(h->user, k - first, t, s->x0_host));
        }
        report_step(s, k - first, steps - first);
    }
    LDM_TRY(ldm_buf_read(s->ctx, latents, s->x, s->n));
    return check_finite(latents, s->n, steps - first, steps - first);
}

/* ---- the sigma-space samplers' view of the UNet ------------------------------------------ */

static ldm_status k_denoise(void *user, float *x, double sigma, float *denoised) {
    ldm_sampler *s = user;
    if (s->inpaint) blend_known(s, x, 1.0, sigma); /* x_known = init + sigma noise0 */
    double c_in = 1.0 / sqrt(sigma * sigma + 1.0);
    for (size_t i = 0; i < s->n; i++)
        s->host_in[i] = (float)(x[i] * c_in);
    LDM_TRY(ldm_buf_write(s->ctx, s->x, s->host_in, s->n));
    LDM_TRY(predict(s, ldm_schedule_timestep(s->cfg.schedule, sigma)));
    LDM_TRY(ldm_buf_read(s->ctx, s->host_pred, s->eps_g, s->n));
    ldm_denoised_from_prediction(s->cfg.prediction, sigma, s->n, x, s->host_pred, denoised);
    if (s->calls == 1) { /* NaN weights show in the first prediction */
        size_t first = 0, bad = ldm_count_non_finite(denoised, s->n, &first);
        if (bad)
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "the UNet's first prediction holds %zu NaN/Inf values of %zu (the "
                            "first at element %zu): the UNet's weights or its conditions are not "
                            "finite, or its activations overflow",
                            bad, s->n, first);
    }
    return LDM_OK;
}

static ldm_status k_noise(void *user, int draw, float *z) {
    host_noise(user, STREAM_STEP, (uint64_t)draw, z);
    return LDM_OK;
}

static ldm_status k_after_step(void *user, int k, int steps, double sigma, const float *den) {
    ldm_sampler *s = user;
    const ldm_x0_hook *h = &s->cfg.x0_hook;
    if (h->take && (!h->want || h->want(h->user, k, steps))) {
        for (size_t i = 0; i < s->n; i++) {
            float v = den[i];
            s->x0_host[i] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
        }
        double t = ldm_schedule_timestep(s->cfg.schedule, sigma);
        LDM_TRY(h->take(h->user, k, (int)lround(t), s->x0_host));
    }
    report_step(s, k, steps);
    return LDM_OK;
}

static ldm_status run_sigma_space(ldm_sampler *s, float *latents) {
    const ldm_sampler_config *f = &s->cfg;
    host_noise(s, STREAM_START, 0, latents);
    if (s->init) memcpy(s->noise0, latents, s->n * sizeof *latents);
    ldm_denoiser d = {s->n, k_denoise, k_noise, k_after_step, s};
    int first = first_step(s, f->steps);
    LDM_TRY(ldm_ksample(f->method, f->schedule, s->sigmas, f->steps, first, f->eta, &d, s->init,
                        latents));
    if (s->inpaint) blend_known(s, latents, 1.0, 0.0); /* the known region: the init itself */
    return check_finite(latents, s->n, f->steps - first, f->steps - first);
}

ldm_status ldm_sampler_run(ldm_sampler *s, float *latents) {
    s->calls = 0;
    return sigma_space(s->cfg.method) ? run_sigma_space(s, latents) : run_discrete(s, latents);
}
