/* tests/test_train_step.c: the recorded diffusion training step draws t and noise on the device
 * exactly as the host twin of the generator says, applies the reference's condition dropout,
 * targets noise or velocity, and computes the same loss as the step written out by hand with
 * those draws; every run draws anew. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ldmcl.h"
#include "test_util.h"

enum { N = 3, C = 4, H = 8, W = 8, S = 5, D = 6, T = 1000 };
#define SEED 7u
#define P_DROP 0.5f

static ldm_unet_config small_unet(void) {
    return test_small_unet(D, T, 1);
}

/* Deterministic parameters: parameter i from host normal draws of stream 100 + i. */
static void set_params(ldm_graph *g) {
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        size_t n = ldm_tensor_numel(p);
        float *v = malloc(n * sizeof *v);
        assert_non_null(v);
        ldm_rng_host(LDM_DIST_NORMAL, n, 99, (uint32_t)(100 + i), 0, v);
        for (size_t k = 0; k < n; k++)
            v[k] *= 0.2f;
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
}

static float g_latents[N * C * H * W], g_context[N * S * D], g_empty[S * D];

static void make_data(void) {
    ldm_rng_host(LDM_DIST_NORMAL, N * C * H * W, 1, 0, 0, g_latents);
    ldm_rng_host(LDM_DIST_NORMAL, N * S * D, 1, 1, 0, g_context);
    ldm_rng_host(LDM_DIST_NORMAL, S * D, 1, 2, 0, g_empty);
}

/* The host's view of step `step`'s draws. */
static void host_draws(uint64_t step, float *t, float *noise, float *context) {
    float u[N];
    ldm_rng_host(LDM_DIST_UNIFORM, N, SEED, LDM_STREAM_T, step, u);
    for (int i = 0; i < N; i++)
        t[i] = fminf(floorf(u[i] * T), T - 1);
    ldm_rng_host(LDM_DIST_NORMAL, N * C * H * W, SEED, LDM_STREAM_NOISE, step, noise);
    ldm_rng_host(LDM_DIST_UNIFORM, N, SEED, LDM_STREAM_DROP_TEXT, step, u);
    for (int i = 0; i < N; i++)
        memcpy(context + i * S * D, u[i] < P_DROP ? g_empty : g_context + i * S * D,
               sizeof g_empty);
}

/* The same step written out with explicit t, noise and (dropped) context: its loss. */
static float loss_by_hand(ldm_ctx *ctx, ldm_schedule *s, const float *t, const float *noise,
                          const float *context) {
    ldm_unet_config u = small_unet();
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *z0 = ldm_graph_input(g, "latents", LDM_SHAPE(N, C, H, W));
    ldm_tensor *tt = ldm_graph_input(g, "t", LDM_SHAPE(N));
    ldm_tensor *nz = ldm_graph_input(g, "noise", LDM_SHAPE(N, C, H, W));
    ldm_tensor *cx = ldm_graph_input(g, "context", LDM_SHAPE(N, S, D));
    ldm_unet_cond cond = {cx, NULL, NULL};
    ldm_tensor *pred = ldm_unet(g, &u, ldm_add_noise(g, s, z0, nz, tt), tt, &cond);
    ldm_tensor *loss = ldm_mse_loss(g, pred, nz);
    ldm_tensor_keep(loss);
    assert_status(ldm_graph_compile(g), LDM_OK);
    set_params(g);
    assert_status(ldm_tensor_write(z0, g_latents), LDM_OK);
    assert_status(ldm_tensor_write(tt, t), LDM_OK);
    assert_status(ldm_tensor_write(nz, noise), LDM_OK);
    assert_status(ldm_tensor_write(cx, context), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    float l;
    assert_status(ldm_tensor_read(loss, &l), LDM_OK);
    ldm_graph_destroy(g);
    return l;
}

static void step_draws_and_loss_match_the_host(void **state) {
    (void)state;
    make_data();
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, T, 0.00085, 0.012, &s), LDM_OK);
    ldm_unet_config u = small_unet();
    ldm_diffusion_train_config cfg = {&u, s, N, H, W, S, 0, 0, P_DROP, LDM_PREDICT_EPSILON, SEED};
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_diffusion_train_graph tg;
    assert_status(ldm_diffusion_train_record(g, &cfg, &tg), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    set_params(g);
    assert_status(ldm_tensor_write(tg.latents, g_latents), LDM_OK);
    assert_status(ldm_tensor_write(tg.context, g_context), LDM_OK);
    assert_status(ldm_tensor_write(tg.empty_context, g_empty), LDM_OK);
    int dropped_somewhere = 0, kept_somewhere = 0;
    for (uint64_t step = 0; step < 3; step++) {
        assert_status(ldm_graph_run(g), LDM_OK);
        uint64_t counter;
        assert_status(ldm_graph_get_step(g, &counter), LDM_OK);
        assert_int_equal(counter, step + 1);
        float t[N], want_t[N], *noise = malloc(sizeof g_latents);
        float *want_noise = malloc(sizeof g_latents), *context = malloc(sizeof g_context);
        assert_true(noise && want_noise && context);
        host_draws(step, want_t, want_noise, context);
        assert_status(ldm_tensor_read(tg.t, t), LDM_OK);
        assert_status(ldm_tensor_read(tg.noise, noise), LDM_OK);
        assert_memory_equal(t, want_t, sizeof t);
        assert_memory_equal(noise, want_noise, sizeof g_latents);
        for (int i = 0; i < N; i++) {
            assert_true(t[i] >= 0 && t[i] < T && t[i] == floorf(t[i]));
            int dropped = memcmp(context + i * S * D, g_empty, sizeof g_empty) == 0;
            dropped_somewhere |= dropped;
            kept_somewhere |= !dropped;
        }
        float loss, want = loss_by_hand(ctx, s, t, noise, context);
        assert_status(ldm_tensor_read(tg.loss, &loss), LDM_OK);
        if (fabsf(loss - want) > 1e-6f * fabsf(want))
            fail_msg("step %d: loss %.9g, written out by hand %.9g", (int)step, loss, want);
        free(noise);
        free(want_noise);
        free(context);
    }
    assert_true(dropped_somewhere && kept_somewhere); /* p = 0.5 over 9 draws */
    ldm_graph_destroy(g);
    ldm_schedule_destroy(s);
    ldm_ctx_destroy(ctx);
}

static void v_prediction_target(void **state) {
    (void)state;
    make_data();
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_COSINE, T, 0, 0, &s), LDM_OK);
    ldm_unet_config u = small_unet();
    ldm_diffusion_train_config cfg = {&u, s, N, H, W, S, 0, 0, 0.0f, LDM_PREDICT_V, SEED};
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_diffusion_train_graph tg;
    assert_status(ldm_diffusion_train_record(g, &cfg, &tg), LDM_OK);
    assert_null(tg.empty_context); /* no dropout */
    assert_status(ldm_graph_compile(g), LDM_OK);
    set_params(g);
    assert_status(ldm_tensor_write(tg.latents, g_latents), LDM_OK);
    assert_status(ldm_tensor_write(tg.context, g_context), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    float t[N], *noise = malloc(sizeof g_latents), *target = malloc(sizeof g_latents);
    assert_true(noise && target);
    assert_status(ldm_tensor_read(tg.t, t), LDM_OK);
    assert_status(ldm_tensor_read(tg.noise, noise), LDM_OK);
    assert_status(ldm_tensor_read(tg.target, target), LDM_OK);
    for (int i = 0; i < N * C * H * W; i++) {
        double ab = s->alphas_cumprod[(int)t[i / (C * H * W)]];
        double v = sqrt(ab) * noise[i] - sqrt(1 - ab) * g_latents[i];
        assert_true(fabs(target[i] - v) <= 1e-6 * (fabs(v) + 1));
    }
    free(noise);
    free(target);
    ldm_graph_destroy(g);
    ldm_schedule_destroy(s);
    ldm_ctx_destroy(ctx);
}

/* The prediction type and schedule travel with the model. */
static void metadata_round_trip(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_COSINE, T, 0, 0, &s), LDM_OK);
    ldm_unet_config u = small_unet();
    ldm_diffusion_train_config cfg = {&u, s, N, H, W, S, 0, 0, 0.1f, LDM_PREDICT_V, SEED};
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_diffusion_train_graph tg;
    assert_status(ldm_diffusion_train_record(g, &cfg, &tg), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    char *dir = test_make_tmpdir("meta"), path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *extra[] = {"ldmcl.step", "12", NULL};
    assert_status(ldm_diffusion_save(g, path, &cfg, extra), LDM_OK);
    ldm_diffusion_meta m;
    assert_status(ldm_diffusion_read_meta(path, &m), LDM_OK);
    assert_true(m.from_file);
    assert_int_equal(m.prediction, LDM_PREDICT_V);
    assert_int_equal(m.schedule, LDM_SCHEDULE_COSINE);
    assert_int_equal(m.num_timesteps, T);
    assert_true(m.beta_start == s->betas[0] && m.beta_end == s->betas[T - 1]);
    /* A converted reference checkpoint has none of it: the reference's defaults. */
    char ref[4200];
    snprintf(ref, sizeof ref, "%s/converted_unet.safetensors", LDMCL_TEST_REF_DIR);
    assert_status(ldm_diffusion_read_meta(ref, &m), LDM_OK);
    assert_false(m.from_file);
    assert_int_equal(m.prediction, LDM_PREDICT_EPSILON);
    assert_int_equal(m.schedule, LDM_SCHEDULE_SCALED_LINEAR);
    test_rmtree(dir);
    free(dir);
    ldm_graph_destroy(g);
    ldm_schedule_destroy(s);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(step_draws_and_loss_match_the_host),
        cmocka_unit_test(v_prediction_target),
        cmocka_unit_test(metadata_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
