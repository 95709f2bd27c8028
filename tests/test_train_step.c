/* tests/test_train_step.c: the recorded diffusion training step draws t and noise on the device
 * exactly as the host twin of the generator says, applies the reference's condition dropout,
 * targets noise or velocity, and computes the same loss as the step written out by hand with
 * those draws; every run draws anew. With the CLIP text encoder recorded in the step, dropout
 * replaces ids by the empty prompt's and every gradient, the encoder's included, equals the
 * step written out by hand. diffusers' noise offset and min-SNR loss weighting follow their
 * formulas. */
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

/* The step recorded and compiled, its parameters set, the latents and context written. */
static ldm_graph *record_step(ldm_ctx *ctx, const ldm_diffusion_train_config *cfg,
                              ldm_diffusion_train_graph *tg) {
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    assert_status(ldm_diffusion_train_record(g, cfg, tg), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    set_params(g);
    assert_status(ldm_tensor_write(tg->latents, g_latents), LDM_OK);
    assert_status(ldm_tensor_write(tg->context, g_context), LDM_OK);
    return g;
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
    ldm_diffusion_train_config cfg = {.unet = &u,
                                      .schedule = s,
                                      .batch = N,
                                      .height = H,
                                      .width = W,
                                      .context_len = S,
                                      .cond_drop_prob = P_DROP,
                                      .prediction = LDM_PREDICT_EPSILON,
                                      .seed = SEED};
    ldm_diffusion_train_graph tg;
    ldm_graph *g = record_step(ctx, &cfg, &tg);
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

/* Token ids of the joint step: row i is <bos> (3 + i) 7 <eos> <pad>; the empty prompt <bos> <eos>.
 */
enum { VOCAB = 40, BOS = 38, EOS = 39 };
static const float g_empty_ids[S] = {BOS, EOS, EOS, EOS, EOS}, g_empty_mask[S] = {1, 1, 0, 0, 0};

static void prompt_ids(float *ids, float *mask) {
    for (int i = 0; i < N; i++) {
        const float row[S] = {BOS, (float)(3 + i), 7, EOS, EOS}, m[S] = {1, 1, 1, 1, 0};
        memcpy(ids + i * S, row, sizeof row);
        memcpy(mask + i * S, m, sizeof m);
    }
}

static float *read_all(ldm_tensor *t) {
    float *v = malloc(ldm_tensor_numel(t) * sizeof *v);
    assert_non_null(v);
    assert_status(ldm_tensor_read(t, v), LDM_OK);
    return v;
}

/* With the CLIP text encoder in the step, the loss and the gradient of every parameter (the
 * UNet's and the encoder's) equal those of the step written out by hand with the host's draws,
 * the dropped samples' ids replaced by the empty prompt's. */
static void text_encoder_trains_with_the_unet(void **state) {
    (void)state;
    make_data();
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, T, 0.00085, 0.012, &s), LDM_OK);
    ldm_unet_config u = small_unet();
    ldm_clip_text_config e = {.vocab_size = VOCAB,
                              .hidden_size = D,
                              .intermediate_size = 8,
                              .num_layers = 1,
                              .num_heads = 2,
                              .max_positions = S,
                              .layer_norm_eps = 1e-5f,
                              .act = LDM_CLIP_QUICK_GELU};
    ldm_diffusion_train_config cfg = {.unet = &u,
                                      .schedule = s,
                                      .batch = N,
                                      .height = H,
                                      .width = W,
                                      .context_len = S,
                                      .cond_drop_prob = P_DROP,
                                      .prediction = LDM_PREDICT_EPSILON,
                                      .seed = SEED,
                                      .text_encoder = &e};
    ldm_graph *a;
    assert_status(ldm_graph_create(ctx, &a), LDM_OK);
    ldm_diffusion_train_graph tg;
    assert_status(ldm_diffusion_train_record(a, &cfg, &tg), LDM_OK);
    assert_null(tg.context);
    assert_status(ldm_graph_compile(a), LDM_OK);
    set_params(a);
    float ids[N * S], mask[N * S];
    prompt_ids(ids, mask);
    assert_status(ldm_tensor_write(tg.latents, g_latents), LDM_OK);
    assert_status(ldm_tensor_write(tg.ids, ids), LDM_OK);
    assert_status(ldm_tensor_write(tg.ids_mask, mask), LDM_OK);
    assert_status(ldm_tensor_write(tg.empty_ids, g_empty_ids), LDM_OK);
    assert_status(ldm_tensor_write(tg.empty_mask, g_empty_mask), LDM_OK);
    assert_status(ldm_graph_zero_grads(a), LDM_OK);
    assert_status(ldm_graph_run(a), LDM_OK);

    /* The host's draws for step 0 and the ids they leave. */
    float t[N], *noise = malloc(sizeof g_latents), u01[N];
    float *context = malloc(sizeof g_context);
    assert_true(noise && context);
    host_draws(0, t, noise, context);
    ldm_rng_host(LDM_DIST_UNIFORM, N, SEED, LDM_STREAM_DROP_TEXT, 0, u01);
    int dropped = 0;
    for (int i = 0; i < N; i++)
        if (u01[i] < P_DROP) {
            memcpy(ids + i * S, g_empty_ids, sizeof g_empty_ids);
            memcpy(mask + i * S, g_empty_mask, sizeof g_empty_mask);
            dropped++;
        }
    ldm_graph *b;
    assert_status(ldm_graph_create(ctx, &b), LDM_OK);
    ldm_tensor *z0 = ldm_graph_input(b, "latents", LDM_SHAPE(N, C, H, W));
    ldm_tensor *tt = ldm_graph_input(b, "t", LDM_SHAPE(N));
    ldm_tensor *nz = ldm_graph_input(b, "noise", LDM_SHAPE(N, C, H, W));
    ldm_tensor *bi = ldm_graph_input(b, "ids", LDM_SHAPE(N, S));
    ldm_tensor *bm = ldm_graph_input(b, "mask", LDM_SHAPE(N, S));
    ldm_unet_cond cond = {ldm_clip_text(b, &e, bi, bm, 0), NULL, NULL};
    ldm_tensor *pred = ldm_unet(b, &u, ldm_add_noise(b, s, z0, nz, tt), tt, &cond);
    ldm_tensor *loss = ldm_mse_loss(b, pred, nz);
    ldm_tensor_keep(loss);
    assert_status(ldm_graph_backward(b, loss), LDM_OK);
    assert_status(ldm_graph_compile(b), LDM_OK);
    set_params(b);
    assert_status(ldm_tensor_write(z0, g_latents), LDM_OK);
    assert_status(ldm_tensor_write(tt, t), LDM_OK);
    assert_status(ldm_tensor_write(nz, noise), LDM_OK);
    assert_status(ldm_tensor_write(bi, ids), LDM_OK);
    assert_status(ldm_tensor_write(bm, mask), LDM_OK);
    assert_status(ldm_graph_zero_grads(b), LDM_OK);
    assert_status(ldm_graph_run(b), LDM_OK);
    float la, lb;
    assert_status(ldm_tensor_read(tg.loss, &la), LDM_OK);
    assert_status(ldm_tensor_read(loss, &lb), LDM_OK);
    if (fabsf(la - lb) > 1e-6f * fabsf(lb)) fail_msg("loss %.9g, by hand %.9g", la, lb);
    assert_int_equal(ldm_graph_param_count(a), ldm_graph_param_count(b));
    int clip_params = 0;
    double worst = 0;
    for (size_t i = 0; i < ldm_graph_param_count(a); i++) {
        ldm_tensor *pa = ldm_graph_param_at(a, i);
        ldm_tensor *pb = ldm_graph_find(b, ldm_tensor_name(pa));
        assert_non_null(pb);
        float *ga = read_all(ldm_tensor_grad(pa)), *gb = read_all(ldm_tensor_grad(pb));
        double e_norm = test_norm_err(ga, gb, ldm_tensor_numel(pa));
        worst = fmax(worst, e_norm);
        if (e_norm > 1e-5) fail_msg("gradient of %s off by %.3g", ldm_tensor_name(pa), e_norm);
        clip_params += strncmp(ldm_tensor_name(pa), "text_model.", 11) == 0;
        free(ga);
        free(gb);
    }
    printf("  joint step: %d of %d samples dropped to the empty prompt; %d encoder parameters "
           "trained; gradients %.2e from the step by hand\n",
           dropped, N, clip_params, worst);
    assert_int_equal(clip_params, 16 + 2 + 2); /* one layer's 16, embeddings, final norm */
    free(noise);
    free(context);
    ldm_graph_destroy(a);
    ldm_graph_destroy(b);
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
    ldm_diffusion_train_config cfg = {.unet = &u,
                                      .schedule = s,
                                      .batch = N,
                                      .height = H,
                                      .width = W,
                                      .context_len = S,
                                      .prediction = LDM_PREDICT_V,
                                      .seed = SEED};
    ldm_diffusion_train_graph tg;
    ldm_graph *g = record_step(ctx, &cfg, &tg);
    assert_null(tg.empty_context); /* no dropout */
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

/* diffusers' --noise_offset and --snr_gamma: the noise gains one draw per sample and channel
 * (scaled by the offset) and is the target; the loss is the batch mean of each sample's squared
 * error weighted by min(SNR, gamma) / SNR of its timestep. */
static void noise_offset_and_min_snr_loss(void **state) {
    (void)state;
    make_data();
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, T, 0.00085, 0.012, &s), LDM_OK);
    ldm_unet_config u = small_unet();
    const float gamma = 2.0f, offset = 0.1f;
    ldm_diffusion_train_config cfg = {.unet = &u,
                                      .schedule = s,
                                      .batch = N,
                                      .height = H,
                                      .width = W,
                                      .context_len = S,
                                      .prediction = LDM_PREDICT_EPSILON,
                                      .snr_gamma = gamma,
                                      .noise_offset = offset,
                                      .seed = SEED};
    ldm_diffusion_train_graph tg;
    ldm_graph *g;
    cfg.snr_gamma = -1.0f; /* refused with the value named */
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    assert_status(ldm_diffusion_train_record(g, &cfg, &tg), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "snr_gamma -1 must be 0 (off) or positive");
    ldm_graph_destroy(g);
    cfg.snr_gamma = gamma;
    g = record_step(ctx, &cfg, &tg);
    int weighted = 0, unweighted = 0;
    for (uint64_t step = 0; step < 2; step++) {
        assert_status(ldm_graph_run(g), LDM_OK);
        float t[N], loss, *noise = read_all(tg.noise), *pred = read_all(tg.prediction);
        float *target = read_all(tg.target), *want = malloc(sizeof g_latents), shift[N * C];
        assert_non_null(want);
        assert_status(ldm_tensor_read(tg.t, t), LDM_OK);
        assert_status(ldm_tensor_read(tg.loss, &loss), LDM_OK);
        ldm_rng_host(LDM_DIST_NORMAL, N * C * H * W, SEED, LDM_STREAM_NOISE, step, want);
        ldm_rng_host(LDM_DIST_NORMAL, N * C, SEED, LDM_STREAM_NOISE_OFFSET, step, shift);
        double total = 0;
        for (int n = 0; n < N; n++) {
            double ab = s->alphas_cumprod[(int)t[n]], snr = ab / (1 - ab);
            double w = (snr < gamma ? snr : gamma) / snr, se = 0;
            weighted += w < 0.999, unweighted += w == 1.0;
            for (int i = n * C * H * W; i < (n + 1) * C * H * W; i++) {
                double nz = want[i] + (double)offset * shift[i / (H * W)];
                assert_true(fabs(noise[i] - nz) <= 1e-6 * (fabs(nz) + 1));
                assert_true(target[i] == noise[i]);
                se += ((double)pred[i] - target[i]) * ((double)pred[i] - target[i]);
            }
            total += w * se / (C * H * W);
        }
        double want_loss = total / N;
        printf("  step %d: t %g %g %g, loss %.7g (by hand %.7g)\n", (int)step, (double)t[0],
               (double)t[1], (double)t[2], (double)loss, want_loss);
        assert_true(fabs(loss - want_loss) <= 1e-5 * want_loss);
        free(noise);
        free(pred);
        free(target);
        free(want);
    }
    assert_true(weighted > 0 && unweighted > 0); /* both sides of the clip were drawn */
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
    ldm_diffusion_train_config cfg = {.unet = &u,
                                      .schedule = s,
                                      .batch = N,
                                      .height = H,
                                      .width = W,
                                      .context_len = S,
                                      .cond_drop_prob = 0.1f,
                                      .prediction = LDM_PREDICT_V,
                                      .seed = SEED};
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
        cmocka_unit_test(text_encoder_trains_with_the_unet),
        cmocka_unit_test(v_prediction_target),
        cmocka_unit_test(noise_offset_and_min_snr_loss),
        cmocka_unit_test(metadata_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
