/* tests/test_misc.c: softmax, the sinusoidal timestep embeddings (the reference's, Stable
 * Diffusion's) and diffusers' min-SNR loss scale against PyTorch (tests/ref/misc.safetensors); the
 * min-SNR backward with timesteps that the memory planner could reuse. */
#include "ldmcl/diffusion.h"
#include "op_harness.h"

static ldm_tensor *b_softmax(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_softmax(g, in[0]);
}

static ldm_tensor *b_timestep(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_timestep_embedding(g, in[0], (int)case_number(p, "dim"), (int)case_number(p, "T"));
}

/* The schedule's tables are copied into the graph when the op is recorded. */
static ldm_tensor *b_snr_scale(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, (int)case_number(p, "T"),
                                      case_number(p, "beta_start"), case_number(p, "beta_end"), &s),
                  LDM_OK);
    ldm_tensor *out = ldm_snr_loss_scale(g, s, (float)case_number(p, "gamma"),
                                         (int)case_number(p, "v_prediction"), in[0], in[1]);
    ldm_schedule_destroy(s);
    return out;
}

static ldm_tensor *b_timestep_sinusoidal(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_timestep_sinusoidal(g, in[0], (int)case_number(p, "dim"),
                                   (int)case_number(p, "cos_first"),
                                   (float)case_number(p, "freq_shift"));
}

static void misc_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"softmax", b_softmax, 0},
                            {"timestep", b_timestep, 0},
                            {"snr_scale", b_snr_scale, 0},
                            {"timestep_sinusoidal", b_timestep_sinusoidal, 0}};
    run_ref_family("misc", ops, (int)(sizeof ops / sizeof ops[0]));
}

/* The gradient of x through loss = mean(linear(snr_loss_scale(x, t), w)), with t drawn on the
 * device (a planned activation) and kept to the end of the run or not: the min-SNR backward reads
 * t, so the planner must keep it alive until then either way. */
static void snr_backward(ldm_ctx *ctx, const ldm_schedule *s, int keep_t, float *dx) {
    enum { N = 4, D = 64 };
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_param(g, "x", LDM_SHAPE(N, D));
    ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(4 * D, D));
    ldm_tensor *t = ldm_random(g, LDM_DIST_INTEGER, LDM_SHAPE(N), 7, 0, (float)s->T, 0.0f);
    if (keep_t) ldm_tensor_keep(t);
    ldm_tensor *y = ldm_snr_loss_scale(g, s, 5.0f, 0, x, t);
    ldm_tensor *loss = ldm_mean(g, ldm_linear(g, y, w, NULL));
    assert_status(ldm_graph_backward(g, loss), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    static float hx[N * D], hw[4 * D * D];
    for (int i = 0; i < N * D; i++)
        hx[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 4 * D * D; i++)
        hw[i] = (float)(i % 5) * 0.25f - 0.5f;
    assert_status(ldm_tensor_write(x, hx), LDM_OK);
    assert_status(ldm_tensor_write(w, hw), LDM_OK);
    assert_status(ldm_graph_zero_grads(g), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(x), dx), LDM_OK);
    ldm_graph_destroy(g);
}

static void snr_scale_backward_reads_live_timesteps(void **state) {
    (void)state;
    if (op_simulator_budget()) skip(); /* the planner's test; its GEMMs are CLBlast's, slow there */
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, 1000, 0.00085, 0.012, &s),
                  LDM_OK);
    static float freed[4 * 64], kept[4 * 64];
    snr_backward(ctx, s, 0, freed);
    snr_backward(ctx, s, 1, kept);
    assert_memory_equal(freed, kept, sizeof kept);
    ldm_schedule_destroy(s);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(misc_matches_pytorch),
        cmocka_unit_test(snr_scale_backward_reads_live_timesteps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
