/* tests/test_norm.c: GroupNorm, LayerNorm, BatchNorm2d (training and evaluation) and F.normalize
 * against PyTorch (tests/ref/norm.safetensors) with both kernel layouts (CPU, GPU), and
 * BatchNorm's running-statistics update. */
#include <math.h>
#include <stdio.h>
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
    return ldm_batch_norm(g, in[0], NULL, in[1], in[2], in[3], in[4],
                          (float)case_number(p, "momentum"), (float)case_number(p, "eps"),
                          (int)case_number(p, "training"));
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
    ldm_tensor_keep(ldm_batch_norm(g, x, NULL, w, b, rm, rv, 0.1f, 1e-5f, 1));
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

/* A gate on the update: at 1 the running statistics move exactly as without one, at 0 they stay;
 * the output (batch statistics) is the same either way. */
static void batch_norm_gate_holds_running_statistics(void **state) {
    (void)state;
    enum { N = 2, C = 3, P = 5 };
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(N, C, P));
    ldm_tensor *gate = ldm_graph_input(g, "gate", LDM_SHAPE(1));
    ldm_tensor *y[2], *rm[2], *rv[2];
    for (int k = 0; k < 2; k++) { /* 0: gated, 1: not */
        char name[32];
        snprintf(name, sizeof name, "w%d", k);
        ldm_tensor *w = ldm_graph_param(g, name, LDM_SHAPE(C));
        snprintf(name, sizeof name, "b%d", k);
        ldm_tensor *b = ldm_graph_param(g, name, LDM_SHAPE(C));
        snprintf(name, sizeof name, "rm%d", k);
        rm[k] = ldm_graph_param(g, name, LDM_SHAPE(C));
        snprintf(name, sizeof name, "rv%d", k);
        rv[k] = ldm_graph_param(g, name, LDM_SHAPE(C));
        ldm_tensor_set_trainable(rm[k], 0);
        ldm_tensor_set_trainable(rv[k], 0);
        y[k] = ldm_batch_norm(g, x, k ? NULL : gate, w, b, rm[k], rv[k], 0.1f, 1e-5f, 1);
        ldm_tensor_keep(y[k]);
    }
    assert_status(ldm_graph_compile(g), LDM_OK);
    float hx[N * C * P], ones[C] = {1, 1, 1}, zeros[C] = {0, 0, 0}, m0[C] = {0.25f, -1, 3},
                         v0[C] = {2, 0.5f, 1};
    for (int i = 0; i < N * C * P; i++)
        hx[i] = (float)((i * 5) % 13) * 0.37f - 2.0f;
    assert_status(ldm_tensor_write(x, hx), LDM_OK);
    for (int k = 0; k < 2; k++) {
        ldm_tensor *w = ldm_graph_find(g, k ? "w1" : "w0"), *b = ldm_graph_find(g, k ? "b1" : "b0");
        assert_status(ldm_tensor_write(w, ones), LDM_OK);
        assert_status(ldm_tensor_write(b, zeros), LDM_OK);
        assert_status(ldm_tensor_write(rm[k], m0), LDM_OK);
        assert_status(ldm_tensor_write(rv[k], v0), LDM_OK);
    }
    float on = 1.0f, off = 0.0f, m[2][C], v[2][C], out[2][N * C * P];
    assert_status(ldm_tensor_write(gate, &on), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    for (int k = 0; k < 2; k++) {
        assert_status(ldm_tensor_read(rm[k], m[k]), LDM_OK);
        assert_status(ldm_tensor_read(rv[k], v[k]), LDM_OK);
    }
    assert_memory_equal(m[0], m[1], sizeof m[0]); /* bit for bit */
    assert_memory_equal(v[0], v[1], sizeof v[0]);
    assert_true(m[0][0] != m0[0]);
    assert_status(ldm_tensor_write(gate, &off), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    float held_m[C], held_v[C];
    assert_status(ldm_tensor_read(rm[0], held_m), LDM_OK);
    assert_status(ldm_tensor_read(rv[0], held_v), LDM_OK);
    assert_memory_equal(held_m, m[0], sizeof held_m); /* unchanged by the gated pass */
    assert_memory_equal(held_v, v[0], sizeof held_v);
    for (int k = 0; k < 2; k++)
        assert_status(ldm_tensor_read(y[k], out[k]), LDM_OK);
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(norms_match_pytorch),
        cmocka_unit_test(batch_norm_updates_running_statistics),
        cmocka_unit_test(batch_norm_gate_holds_running_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
