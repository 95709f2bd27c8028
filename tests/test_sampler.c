/* tests/test_sampler.c: sampling chains with a small text-conditioned UNet: every method
 * (DDPM, DDIM and the sigma-space samplers) for epsilon and v models reproducible for a seed,
 * each sample of a batch the image a batch of one gives with seed + i, guidance over identical
 * conditions equal to no guidance (so the batched unconditional and conditional halves line up),
 * guidance that changes the result when the conditions differ, x0 previews and progress, and the
 * v-prediction DDIM step against its formula; a chain holding NaN/Inf is an error. (The
 * samplers' arithmetic is checked against k-diffusion and diffusers in test_ksampler.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ldmcl.h"
#include "test_util.h"

enum { N = 2, C = 4, H = 8, W = 8, S = 5, D = 6, T = 20 };

static ldm_unet_config small_unet(void) {
    return test_small_unet(D, T, 1);
}

static ldm_ctx *g_ctx;
static ldm_schedule *g_sched;
static ldm_unet_config g_unet;
static float g_context[N * S * D], g_empty[S * D];

static int setup(void **state) {
    (void)state;
    g_ctx = test_ctx_open(NULL, NULL);
    assert_status(ldm_schedule_create(LDM_SCHEDULE_LINEAR, T, 1e-3, 0.2, &g_sched), LDM_OK);
    g_unet = small_unet();
    ldm_rng_host(LDM_DIST_NORMAL, N * S * D, 3, 0, 0, g_context);
    ldm_rng_host(LDM_DIST_NORMAL, S * D, 3, 1, 0, g_empty);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ldm_schedule_destroy(g_sched);
    ldm_ctx_destroy(g_ctx);
    return 0;
}

static ldm_x0_hook g_hook;       /* the next sample()'s x0 previews */
static ldm_step_hook g_progress; /* and progress */
static ldm_prediction g_pred;    /* and prediction type */
static float g_eta;              /* and eta */
static int g_batch = N;          /* and batch (samples 0 .. g_batch of g_context) */

static ldm_sampler_config config(ldm_sampler_method method, int steps, float scale, uint64_t seed) {
    return (ldm_sampler_config){.unet = &g_unet,
                                .schedule = g_sched,
                                .batch = g_batch,
                                .height = H,
                                .width = W,
                                .context_len = S,
                                .guidance_scale = scale,
                                .method = method,
                                .steps = steps,
                                .eta = g_eta,
                                .prediction = g_pred,
                                .seed = seed,
                                .x0_hook = g_hook,
                                .progress = g_progress};
}

/* The UNet's parameters: fixed host draws. */
static void write_weights(ldm_sampler *s) {
    ldm_graph *g = ldm_sampler_graph(s);
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        size_t n = ldm_tensor_numel(p);
        float *v = malloc(n * sizeof *v);
        assert_non_null(v);
        ldm_rng_host(LDM_DIST_NORMAL, n, 5, (uint32_t)i, 0, v);
        for (size_t k = 0; k < n; k++)
            v[k] *= 0.2f;
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
}

/* Samples g_batch latents with write_weights' parameters. */
static void sample(ldm_sampler_method method, int steps, float scale, uint64_t seed,
                   const float *uncond, float *out) {
    ldm_sampler_config cfg = config(method, steps, scale, seed);
    ldm_sampler *s;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_OK);
    write_weights(s);
    assert_status(ldm_sampler_set_conditions(s, g_context, uncond, NULL, NULL), LDM_OK);
    assert_status(ldm_sampler_run(s, out), LDM_OK);
    ldm_sampler_destroy(s);
}

static void sampling_is_reproducible(void **state) {
    (void)state;
    float a[N * C * H * W], b[N * C * H * W];
    for (int m = 0; m < 2; m++) {
        ldm_sampler_method method = m ? LDM_SAMPLER_DDIM : LDM_SAMPLER_DDPM;
        sample(method, 5, 1.0f, 42, NULL, a);
        sample(method, 5, 1.0f, 42, NULL, b);
        assert_memory_equal(a, b, sizeof a);
        for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
            assert_true(isfinite(a[i]));
        sample(method, 5, 1.0f, 43, NULL, b);
        assert_memory_not_equal(a, b, sizeof a);
    }
}

static void guidance_lines_up_its_halves(void **state) {
    (void)state;
    float plain[N * C * H * W], guided[N * C * H * W], other[N * C * H * W];
    /* The same condition in both halves: eps_u = eps_c, so guidance changes nothing. */
    float same[S * D];
    memcpy(same, g_context, sizeof same); /* sample 0's context as the "empty" one ... */
    memcpy(g_context + S * D, g_context, sizeof same); /* ... and for sample 1 too */
    sample(LDM_SAMPLER_DDIM, 4, 1.0f, 7, NULL, plain);
    sample(LDM_SAMPLER_DDIM, 4, 5.0f, 7, same, guided);
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        assert_true(fabsf(plain[i] - guided[i]) <= 1e-4f * (fabsf(plain[i]) + 1e-2f));
    /* A different unconditional embedding: guidance moves the result. */
    sample(LDM_SAMPLER_DDIM, 4, 5.0f, 7, g_empty, other);
    double diff = 0;
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        diff += fabs(other[i] - plain[i]);
    assert_true(diff > 1e-3);
    ldm_rng_host(LDM_DIST_NORMAL, N * S * D, 3, 0, 0, g_context); /* restore */
}

static void bad_sampler_configs_are_refused(void **state) {
    (void)state;
    ldm_sampler_config cfg = config(LDM_SAMPLER_DDIM, T + 1, 1.0f, 1);
    ldm_sampler *s = NULL;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "DDIM with 21 steps");
    cfg.method = LDM_SAMPLER_EULER;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "21 sampling steps: 1 to 20");
    cfg.method = LDM_SAMPLER_TCD; /* TCD picks from 50 original steps: T = 20 is too short */
    cfg.steps = 4;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "needs T >= 50");
    cfg.method = LDM_SAMPLER_DDIM;
    cfg.eta = 1.5f;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "eta 1.5: 0 to 1");
    cfg.eta = 0.0f;
    cfg.method = LDM_SAMPLER_COUNT;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_ERR_INVALID_ARGUMENT);
    cfg.method = LDM_SAMPLER_DDPM;
    cfg.guidance_scale = 3.0f;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_OK);
    assert_status(ldm_sampler_set_conditions(s, g_context, NULL, NULL, NULL),
                  LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "the empty prompt's embedding");
    ldm_sampler_destroy(s);
}

static void ddim_v_step_follows_its_formula(void **state) {
    (void)state;
    enum { M = 16 };
    float hx[M], hv[M], hz[M], got[M];
    ldm_rng_host(LDM_DIST_NORMAL, M, 1, 0, 0, hx);
    ldm_rng_host(LDM_DIST_NORMAL, M, 1, 1, 0, hv);
    ldm_rng_host(LDM_DIST_NORMAL, M, 1, 2, 0, hz);
    ldm_arena *a;
    assert_status(ldm_arena_create(g_ctx, "v", 4096, &a), LDM_OK);
    ldm_buf x, v, z, out;
    assert_status(ldm_arena_take(a, M, "x", &x), LDM_OK);
    assert_status(ldm_arena_take(a, M, "v", &v), LDM_OK);
    assert_status(ldm_arena_take(a, M, "z", &z), LDM_OK);
    assert_status(ldm_arena_take(a, M, "out", &out), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, x, hx, M), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, v, hv, M), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, z, hz, M), LDM_OK);
    const int t = 12, tp = 7;
    const float eta = 0.3f;
    assert_status(ldm_ddim_step_v(ldm_ctx_immediate(g_ctx), g_sched, t, tp, eta, M, out, x, v, z),
                  LDM_OK);
    assert_status(ldm_buf_read(g_ctx, got, out, M), LDM_OK);
    double ab = g_sched->alphas_cumprod[t], ap = g_sched->alphas_cumprod[tp];
    double sigma = eta * sqrt((1 - ap) / (1 - ab)) * sqrt(1 - ab / ap);
    for (int i = 0; i < M; i++) {
        double x0 = sqrt(ab) * hx[i] - sqrt(1 - ab) * hv[i];
        double eps = sqrt(ab) * hv[i] + sqrt(1 - ab) * hx[i];
        double want = sqrt(ap) * x0 + sqrt(1 - ap - sigma * sigma) * eps + sigma * hz[i];
        assert_true(fabs(got[i] - want) <= 1e-5 * (fabs(want) + 1));
    }
    ldm_arena_destroy(a);
}

/* x0 previews: taken after the steps asked for, clamped to [-1, 1]; DDIM's last x0 (eta 0, to
 * t = -1) is its output. */
typedef struct previews {
    int calls, last_k, last_t;
    float last[N * C * H * W];
} previews;

static int want_first_and_last(void *user, int k, int steps) {
    (void)user;
    return k == 0 || k == steps - 1;
}

static ldm_status keep_preview(void *user, int k, int t, const float *x0) {
    previews *p = user;
    p->calls++;
    p->last_k = k;
    p->last_t = t;
    memcpy(p->last, x0, sizeof p->last);
    return LDM_OK;
}

static void x0_previews(void **state) {
    (void)state;
    size_t n = (size_t)N * g_unet.im_channels * H * W;
    assert_true(n <= sizeof((previews *)0)->last / sizeof(float));
    previews *p = calloc(1, sizeof *p);
    float *out = malloc(n * sizeof *out);
    g_hook = (ldm_x0_hook){want_first_and_last, keep_preview, p};
    sample(LDM_SAMPLER_DDIM, 5, 1.0f, 3, NULL, out);
    assert_int_equal(p->calls, 2);
    assert_int_equal(p->last_k, 4);
    assert_int_equal(p->last_t, 0);
    for (size_t i = 0; i < n; i++)
        assert_float_equal(p->last[i], fminf(fmaxf(out[i], -1.0f), 1.0f),
                           1e-5f * (1.0f + fabsf(out[i])));
    p->calls = 0;
    g_hook.want = NULL; /* every step */
    sample(LDM_SAMPLER_DDPM, 0, 1.0f, 3, NULL, out);
    assert_int_equal(p->calls, T);
    for (size_t i = 0; i < n; i++)
        assert_true(p->last[i] >= -1.0f && p->last[i] <= 1.0f); /* the reference's clamp */
    /* v-prediction: DDPM and DDIM previews too; DDIM's last is its output again */
    g_pred = LDM_PREDICT_V;
    p->calls = 0;
    sample(LDM_SAMPLER_DDPM, 0, 1.0f, 3, NULL, out);
    assert_int_equal(p->calls, T);
    p->calls = 0;
    g_hook.want = want_first_and_last;
    sample(LDM_SAMPLER_DDIM, 5, 1.0f, 3, NULL, out);
    assert_int_equal(p->calls, 2);
    for (size_t i = 0; i < n; i++)
        assert_float_equal(p->last[i], fminf(fmaxf(out[i], -1.0f), 1.0f),
                           1e-4f * (1.0f + fabsf(out[i])));
    /* a sigma-space sampler: its last denoised estimate is its output (euler's last step) */
    p->calls = 0;
    sample(LDM_SAMPLER_EULER, 5, 1.0f, 3, NULL, out);
    assert_int_equal(p->calls, 2);
    assert_int_equal(p->last_k, 4);
    for (size_t i = 0; i < n; i++)
        assert_float_equal(p->last[i], fminf(fmaxf(out[i], -1.0f), 1.0f),
                           1e-4f * (1.0f + fabsf(out[i])));
    g_pred = LDM_PREDICT_EPSILON;
    g_hook = (ldm_x0_hook){NULL, NULL, NULL};
    free(out);
    free(p);
}

/* A chain that holds NaN or infinite values is an error, never latents: NaN weights (written to
 * the device, as no file can bring them) show after the first step of four, an infinite weight
 * at the end of a one-step chain. */
static void non_finite_chains_are_errors(void **state) {
    (void)state;
    float out[N * C * H * W];
    ldm_sampler_config cfg = config(LDM_SAMPLER_DDIM, 4, 1.0f, 1);
    ldm_sampler *s;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_OK);
    ldm_graph *g = ldm_sampler_graph(s);
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        size_t n = ldm_tensor_numel(p);
        float *v = malloc(n * sizeof *v);
        assert_non_null(v);
        for (size_t k = 0; k < n; k++)
            v[k] = i == 0 ? NAN : 0.01f;
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
    assert_status(ldm_sampler_set_conditions(s, g_context, NULL, NULL, NULL), LDM_OK);
    assert_status(ldm_sampler_run(s, out), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(),
                    "the sampled latents hold 512 NaN/Inf values of 512 after step "
                    "1 of 4 (the first at element 0): the UNet's weights");
    ldm_sampler_destroy(s);
    /* one step: the check at the end (the early one is for longer chains) */
    cfg.steps = 1;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_OK);
    g = ldm_sampler_graph(s);
    size_t n0 = ldm_tensor_numel(ldm_graph_param_at(g, 0));
    float *v = malloc(n0 * sizeof *v);
    assert_non_null(v);
    for (size_t k = 0; k < n0; k++)
        v[k] = k == 3 ? INFINITY : 0.01f;
    assert_status(ldm_tensor_write(ldm_graph_param_at(g, 0), v), LDM_OK);
    free(v);
    assert_status(ldm_sampler_set_conditions(s, g_context, NULL, NULL, NULL), LDM_OK);
    assert_status(ldm_sampler_run(s, out), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "NaN/Inf values of 512 after step 1 of 1");
    ldm_sampler_destroy(s);
}

/* Every method, for epsilon and v models: finite, reproducible for a seed, another seed another
 * result; the progress hook sees every step once (heun and dpm2 evaluate twice per step). */
static int g_progress_calls;
static void count_step(void *user, int k, int steps) {
    (void)user;
    assert_int_equal(k, g_progress_calls);
    assert_true(k < steps);
    g_progress_calls++;
}

static void every_method_samples_both_predictions(void **state) {
    (void)state;
    enum { M = N * C * H * W };
    float a[M], b[M];
    g_progress = (ldm_step_hook){count_step, NULL};
    for (int v = 0; v < 2; v++) {
        g_pred = v ? LDM_PREDICT_V : LDM_PREDICT_EPSILON;
        for (int m = 0; m < LDM_SAMPLER_COUNT; m++) {
            if (m == LDM_SAMPLER_TCD) continue; /* needs T >= 50: bad_sampler_configs */
            int steps = m == LDM_SAMPLER_DDPM ? T : 3;
            g_eta = m == LDM_SAMPLER_DDIM_TRAILING || m == LDM_SAMPLER_DDIM ? 0.5f : 0.0f;
            g_progress_calls = 0;
            sample((ldm_sampler_method)m, steps, 2.0f, 42, g_empty, a);
            assert_int_equal(g_progress_calls, steps);
            for (int i = 0; i < M; i++)
                if (!isfinite(a[i]))
                    fail_msg("%s: element %d not finite", ldm_sampler_method_name(m), i);
            g_progress_calls = 0;
            sample((ldm_sampler_method)m, steps, 2.0f, 42, g_empty, b);
            assert_memory_equal(a, b, sizeof a);
            g_progress_calls = 0;
            sample((ldm_sampler_method)m, steps, 2.0f, 43, g_empty, b);
            assert_memory_not_equal(a, b, sizeof a);
        }
    }
    g_pred = LDM_PREDICT_EPSILON;
    g_eta = 0.0f;
    g_progress = (ldm_step_hook){NULL, NULL};
}

/* Sample 1 of a batch sampled with seed s is the sample a batch of one gives with seed s + 1
 * (its own condition), for the device steps and the host samplers, with noise at every step. */
static void batch_samples_reproduce_alone(void **state) {
    (void)state;
    enum { PER = C * H * W };
    static const ldm_sampler_method methods[] = {LDM_SAMPLER_DDPM, LDM_SAMPLER_DDIM,
                                                 LDM_SAMPLER_EULER_A, LDM_SAMPLER_LCM};
    float both[N * PER], alone[PER], ctx1[S * D];
    memcpy(ctx1, g_context, sizeof ctx1);
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        g_eta = methods[i] == LDM_SAMPLER_DDIM ? 1.0f : 0.0f;
        int steps = methods[i] == LDM_SAMPLER_DDPM ? T : 4;
        sample(methods[i], steps, 2.0f, 100, g_empty, both);
        memcpy(g_context, g_context + S * D, sizeof ctx1); /* sample 1's condition first */
        g_batch = 1;
        sample(methods[i], steps, 2.0f, 101, g_empty, alone);
        g_batch = N;
        memcpy(g_context, ctx1, sizeof ctx1);
        for (int k = 0; k < PER; k++)
            if (fabsf(both[PER + k] - alone[k]) > 1e-4f * (1.0f + fabsf(alone[k])))
                fail_msg("%s: sample 1 element %d is %g in the batch, %g alone",
                         ldm_sampler_method_name(methods[i]), k, both[PER + k], alone[k]);
    }
    g_eta = 0.0f;
}

/* Samples with an init (and mask) set before the run. */
static void sample_from(ldm_sampler_method method, int steps, uint64_t seed, const float *init,
                        float strength, const float *mask, float *out) {
    ldm_sampler_config cfg = config(method, steps, 2.0f, seed);
    ldm_sampler *s;
    assert_status(ldm_sampler_create(g_ctx, &cfg, &s), LDM_OK);
    write_weights(s);
    assert_status(ldm_sampler_set_conditions(s, g_context, g_empty, NULL, NULL), LDM_OK);
    assert_status(ldm_sampler_set_init(s, init, 1.5f, NULL), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "strength 1.5: it must be in (0, 1]");
    assert_status(ldm_sampler_set_init(s, init, strength, mask), LDM_OK);
    assert_status(ldm_sampler_run(s, out), LDM_OK);
    ldm_sampler_destroy(s);
}

static double mean_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d += fabs((double)a[i] - b[i]);
    return d / (double)n;
}

/* img2img: a low strength stays near the init, a full one does not; inpainting keeps the init
 * where the mask is 0 (all of it: the init exactly) and changes nothing where it is 1 (all of
 * it: img2img's result), for the device steps and the host samplers. */
static void img2img_and_inpainting(void **state) {
    (void)state;
    enum { M = N * C * H * W };
    static const ldm_sampler_method methods[] = {LDM_SAMPLER_DDIM, LDM_SAMPLER_DDPM,
                                                 LDM_SAMPLER_EULER_A, LDM_SAMPLER_DPMPP_2M,
                                                 LDM_SAMPLER_DDIM_TRAILING};
    float init[M], low[M], full[M], masked[M], zeros[N * H * W], ones[N * H * W];
    for (int i = 0; i < M; i++)
        init[i] = 0.8f * sinf(0.37f * (float)i);
    for (int i = 0; i < N * H * W; i++)
        zeros[i] = 0.0f, ones[i] = 1.0f;
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        ldm_sampler_method m = methods[i];
        int steps = m == LDM_SAMPLER_DDPM ? T : 10;
        sample_from(m, steps, 5, init, 0.2f, NULL, low);
        sample_from(m, steps, 5, init, 1.0f, NULL, full);
        double d_low = mean_abs_diff(low, init, M), d_full = mean_abs_diff(full, init, M);
        if (!(d_low < 0.5 * d_full))
            fail_msg("%s: strength 0.2 moved %g from the init, 1.0 %g", ldm_sampler_method_name(m),
                     d_low, d_full);
        sample_from(m, steps, 5, init, 0.6f, zeros, masked);
        for (int k = 0; k < M; k++)
            assert_float_equal(masked[k], init[k], 1e-6f);
        sample_from(m, steps, 5, init, 0.6f, NULL, low);
        sample_from(m, steps, 5, init, 0.6f, ones, masked);
        assert_memory_equal(low, masked, sizeof low);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sampling_is_reproducible),
        cmocka_unit_test(guidance_lines_up_its_halves),
        cmocka_unit_test(bad_sampler_configs_are_refused),
        cmocka_unit_test(ddim_v_step_follows_its_formula),
        cmocka_unit_test(x0_previews),
        cmocka_unit_test(non_finite_chains_are_errors),
        cmocka_unit_test(every_method_samples_both_predictions),
        cmocka_unit_test(batch_samples_reproduce_alone),
        cmocka_unit_test(img2img_and_inpainting),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
