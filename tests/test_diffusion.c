/* tests/test_diffusion.c: noise schedules, add_noise with a timestep per sample, the reference's
 * DDPM posterior step, DDIM steps and classifier-free guidance against float64 PyTorch
 * (tests/ref/diffusion.safetensors); bad arguments rejected with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/diffusion.h"
#include "ldmcl/safetensors.h"
#include "op_harness.h"

static ldm_safetensors *g_st;
static ldm_ctx *g_ctx;
static ldm_arena *g_arena;

static float *load(const char *key, size_t *n) {
    const ldm_st_tensor *t = ldm_safetensors_find(g_st, key);
    if (!t) fail_msg("reference tensor '%s' missing", key);
    float *v = malloc(t->numel * sizeof *v);
    assert_non_null(v);
    assert_status(ldm_safetensors_read_f32(g_st, t, v), LDM_OK);
    if (n) *n = (size_t)t->numel;
    return v;
}

static double rel_err(const float *got, const float *want, size_t n) {
    double top = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        top = fmax(top, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1e-3 * top));
    return worst;
}

static void expect_close(const char *what, const float *got, const char *key) {
    size_t n;
    float *want = load(key, &n);
    double e = rel_err(got, want, n);
    if (e > OP_REL_TOL) fail_msg("%s: relative error %.3g", what, e);
    free(want);
}

static void schedules_match(void **state) {
    (void)state;
    struct {
        const char *name, *ref;
        double b0, b1;
    } cases[] = {{"scaled_linear", "scaled_linear", 0.00085, 0.012},
                 {"scaled_linear", "scaled_linear_mnist", 0.0015, 0.0195},
                 {"linear", "linear", 1e-4, 0.02},
                 {"cosine", "cosine", 0, 0}};
    for (int c = 0; c < 4; c++) {
        ldm_schedule_kind kind;
        assert_status(ldm_schedule_kind_from_name(cases[c].name, &kind), LDM_OK);
        ldm_schedule *s;
        assert_status(ldm_schedule_create(kind, 1000, cases[c].b0, cases[c].b1, &s), LDM_OK);
        float betas[1000], ab[1000];
        for (int i = 0; i < 1000; i++) {
            betas[i] = (float)s->betas[i];
            ab[i] = (float)s->alphas_cumprod[i];
        }
        char key[128];
        snprintf(key, sizeof key, "schedule.%s.betas", cases[c].ref);
        expect_close(cases[c].ref, betas, key);
        snprintf(key, sizeof key, "schedule.%s.alphas_cumprod", cases[c].ref);
        expect_close(cases[c].ref, ab, key);
        if (c == 0) assert_true(fabs(s->alphas_cumprod[999] - 0.00466) < 5e-6);
        if (c == 1) assert_true(fabs(s->alphas_cumprod[999] - 0.000142) < 5e-7);
        ldm_schedule_destroy(s);
    }
    ldm_schedule_kind kind;
    assert_status(ldm_schedule_kind_from_name("quadratic", &kind), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "unknown beta schedule 'quadratic'");
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_LINEAR, 1000, 0.5, 1.5, &s),
                  LDM_ERR_INVALID_ARGUMENT);
}

static void add_noise_matches(void **state) {
    (void)state;
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, 1000, 0.00085, 0.012, &s),
                  LDM_OK);
    ldm_graph *g;
    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    ldm_tensor *x0 = ldm_graph_input(g, "x0", LDM_SHAPE(3, 2, 4, 4));
    ldm_tensor *noise = ldm_graph_input(g, "noise", LDM_SHAPE(3, 2, 4, 4));
    ldm_tensor *t = ldm_graph_input(g, "t", LDM_SHAPE(3));
    ldm_tensor *y = ldm_add_noise(g, s, x0, noise, t);
    ldm_tensor_keep(y);
    assert_status(ldm_graph_compile(g), LDM_OK);
    float *hx = load("add_noise.x0", NULL), *hn = load("add_noise.noise", NULL);
    float *ht = load("add_noise.t", NULL), got[96];
    assert_status(ldm_tensor_write(x0, hx), LDM_OK);
    assert_status(ldm_tensor_write(noise, hn), LDM_OK);
    assert_status(ldm_tensor_write(t, ht), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(y, got), LDM_OK);
    expect_close("add_noise", got, "add_noise.out");
    free(hx);
    free(hn);
    free(ht);
    ldm_graph_destroy(g);
    ldm_schedule_destroy(s);
}

/* A trainable tensor feeding add_noise cannot get a gradient through it: an error, not a zero. */
static void no_backward_is_an_error(void **state) {
    (void)state;
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_LINEAR, 10, 1e-4, 0.02, &s), LDM_OK);
    ldm_graph *g;
    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(2, 3));
    ldm_tensor *noise = ldm_graph_input(g, "noise", LDM_SHAPE(2, 3));
    ldm_tensor *t = ldm_graph_input(g, "t", LDM_SHAPE(2));
    ldm_tensor *loss = ldm_mean(g, ldm_add_noise(g, s, w, noise, t));
    assert_status(ldm_graph_backward(g, loss), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "op add_noise ('add_noise') has no backward");
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    ldm_graph_destroy(g);
    ldm_schedule_destroy(s);
}

static void sampler_steps_match(void **state) {
    (void)state;
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, 1000, 0.00085, 0.012, &s),
                  LDM_OK);
    size_t n;
    float *hxt = load("step.xt", &n), *heps = load("step.eps", NULL), *hz = load("step.z", NULL);
    ldm_buf xt, eps, z, out, x0;
    assert_status(ldm_arena_take(g_arena, n, "xt", &xt), LDM_OK);
    assert_status(ldm_arena_take(g_arena, n, "eps", &eps), LDM_OK);
    assert_status(ldm_arena_take(g_arena, n, "z", &z), LDM_OK);
    assert_status(ldm_arena_take(g_arena, n, "out", &out), LDM_OK);
    assert_status(ldm_arena_take(g_arena, n, "x0", &x0), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, xt, hxt, n), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, eps, heps, n), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, z, hz, n), LDM_OK);
    ldm_cmd *c = ldm_ctx_immediate(g_ctx);
    float got[64];
    const int ts[3] = {500, 1, 0};
    for (int i = 0; i < 3; i++) {
        char key[64];
        assert_status(ldm_ddpm_step(c, s, ts[i], n, out, x0, xt, eps, z), LDM_OK);
        assert_status(ldm_buf_read(g_ctx, got, out, n), LDM_OK);
        snprintf(key, sizeof key, "ddpm.%d.out", ts[i]);
        expect_close(key, got, key);
        assert_status(ldm_buf_read(g_ctx, got, x0, n), LDM_OK);
        snprintf(key, sizeof key, "ddpm.%d.x0", ts[i]);
        expect_close(key, got, key);
    }
    struct {
        int t, tp;
        float eta;
        const char *key;
    } ddim[3] = {{600, 400, 0.0f, "ddim.600.400.0.0.out"},
                 {600, 400, 0.5f, "ddim.600.400.0.5.out"},
                 {20, -1, 0.0f, "ddim.20.-1.0.0.out"}};
    ldm_buf none = {NULL, 0};
    for (int i = 0; i < 3; i++) {
        assert_status(ldm_ddim_step(c, s, ddim[i].t, ddim[i].tp, ddim[i].eta, n, out, none, xt, eps,
                                    ddim[i].eta > 0 ? z : none),
                      LDM_OK);
        assert_status(ldm_buf_read(g_ctx, got, out, n), LDM_OK);
        expect_close(ddim[i].key, got, ddim[i].key);
    }
    assert_status(ldm_cfg_combine(c, n, 7.5f, out, eps, z), LDM_OK);
    assert_status(ldm_buf_read(g_ctx, got, out, n), LDM_OK);
    expect_close("cfg", got, "cfg.out");

    assert_status(ldm_ddpm_step(c, s, 1000, n, out, x0, xt, eps, z), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "timestep 1000 outside [0, 1000)");
    assert_status(ldm_ddpm_step(c, s, 5, n, out, x0, xt, eps, none), LDM_ERR_INVALID_ARGUMENT);
    assert_status(ldm_ddim_step(c, s, 10, 20, 0.0f, n, out, none, xt, eps, none),
                  LDM_ERR_INVALID_ARGUMENT);
    free(hxt);
    free(heps);
    free(hz);
    ldm_schedule_destroy(s);
}

static int setup(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/diffusion.safetensors", LDMCL_TEST_REF_DIR);
    assert_status(ldm_safetensors_open(path, &g_st), LDM_OK);
    g_ctx = test_ctx_open(NULL, NULL);
    assert_status(ldm_arena_create(g_ctx, "diffusion test", 1u << 20, &g_arena), LDM_OK);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ldm_arena_destroy(g_arena);
    ldm_ctx_destroy(g_ctx);
    ldm_safetensors_close(g_st);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schedules_match),
        cmocka_unit_test(add_noise_matches),
        cmocka_unit_test(no_backward_is_an_error),
        cmocka_unit_test(sampler_steps_match),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
