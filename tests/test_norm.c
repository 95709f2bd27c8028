/* tests/test_norm.c: GroupNorm, LayerNorm, BatchNorm2d (training and evaluation) and F.normalize
 * against PyTorch (tests/ref/norm.safetensors) with both kernel layouts (CPU, GPU), and
 * BatchNorm's running-statistics update. */
#include <math.h>
#include <stdlib.h>

#include "op_harness.h"

static ldm_tensor *b_group_norm(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_group_norm(g, in[0], (int)case_number(p, "groups"), (float)case_number(p, "eps"),
                          in[1], in[2]);
}

static ldm_tensor *b_layer_norm(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_layer_norm(g, in[0], (float)case_number(p, "eps"), in[1], in[2]);
}

static ldm_tensor *b_batch_norm(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_batch_norm(g, in[0], in[1], in[2], in[3], in[4], (float)case_number(p, "momentum"),
                          (float)case_number(p, "eps"), (int)case_number(p, "training"));
}

static ldm_tensor *b_l2_normalize(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_l2_normalize(g, in[0], (float)case_number(p, "eps"));
}

static void norms_match_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"group_norm", b_group_norm, 0},
                            {"layer_norm", b_layer_norm, 0},
                            {"batch_norm", b_batch_norm, 0},
                            {"l2_normalize", b_l2_normalize, 0}};
    run_ref_family_both_layouts("norm", ops, 4);
}

/* One training step moves the running statistics 10% towards the batch's (variance unbiased). */
static void batch_norm_updates_running_statistics(void **state) {
    (void)state;
    enum { N = 3, C = 2, P = 4 };
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(N, C, P));
    ldm_tensor *w = ldm_graph_param(g, "weight", LDM_SHAPE(C));
    ldm_tensor *b = ldm_graph_param(g, "bias", LDM_SHAPE(C));
    ldm_tensor *rm = ldm_graph_param(g, "running_mean", LDM_SHAPE(C));
    ldm_tensor *rv = ldm_graph_param(g, "running_var", LDM_SHAPE(C));
    ldm_tensor_set_trainable(rm, 0);
    ldm_tensor_set_trainable(rv, 0);
    ldm_tensor_keep(ldm_batch_norm(g, x, w, b, rm, rv, 0.1f, 1e-5f, 1));
    assert_status(ldm_graph_compile(g), LDM_OK);
    float hx[N * C * P], ones[C] = {1, 1}, zeros[C] = {0, 0}, m0[C] = {0.5f, -1}, v0[C] = {2, 3};
    for (int i = 0; i < N * C * P; i++)
        hx[i] = (float)((i * 7) % 11) - 4.0f;
    assert_status(ldm_tensor_write(x, hx), LDM_OK);
    assert_status(ldm_tensor_write(w, ones), LDM_OK);
    assert_status(ldm_tensor_write(b, zeros), LDM_OK);
    assert_status(ldm_tensor_write(rm, m0), LDM_OK);
    assert_status(ldm_tensor_write(rv, v0), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    float got_m[C], got_v[C];
    assert_status(ldm_tensor_read(rm, got_m), LDM_OK);
    assert_status(ldm_tensor_read(rv, got_v), LDM_OK);
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int n = 0; n < N; n++)
            for (int p = 0; p < P; p++)
                s += hx[(n * C + c) * P + p];
        double mean = s / (N * P);
        for (int n = 0; n < N; n++)
            for (int p = 0; p < P; p++) {
                double d = hx[(n * C + c) * P + p] - mean;
                ss += d * d;
            }
        double var_unbiased = ss / (N * P - 1);
        assert_true(fabs(got_m[c] - (0.9 * m0[c] + 0.1 * mean)) < 1e-6);
        assert_true(fabs(got_v[c] - (0.9 * v0[c] + 0.1 * var_unbiased)) < 1e-5);
    }
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(norms_match_pytorch),
        cmocka_unit_test(batch_norm_updates_running_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
