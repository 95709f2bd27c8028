/* tests/test_norm.c: GroupNorm, LayerNorm, BatchNorm2d (training and evaluation) and F.normalize
 * against PyTorch (tests/ref/norm.safetensors) with both kernel layouts (CPU, GPU), and
 * BatchNorm's running-statistics update. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const op_entry ops[] = {{"group_norm", b_group_norm, 0},
                               {"layer_norm", b_layer_norm, 0},
                               {"batch_norm", b_batch_norm, 0},
                               {"l2_normalize", b_l2_normalize, 0}};

static void norms_match_pytorch(void **state) {
    (void)state;
    run_ref_family_both_layouts("norm", ops, 4);
}

/* The GPU layout's split GroupNorm (each group's sums over several work-groups) against the same
 * references, every case split (norm_split_groups far above any case's groups, chunks of 4). */
static void group_norm_split_matches_pytorch(void **state) {
    (void)state;
    run_ref_family_gpu_tuned("norm", ops, 4, "norm_split_groups=100000 norm_split_min=4");
}

/* y and the gradients of x, weight and bias (dgb: 4 + 4) for the seed of GroupNorm over one
 * sample [1, 4, 64, 64] in 2 groups, by the GPU layout with `tunables`; *split: whether the split
 * kernels ran (from the profile), all of them or none. */
static void group_norm_once(const char *tunables, const float *hx, const float *hs, const float *wv,
                            const float *bv, float *y, float *dx, float *dgb, int *split) {
    assert_int_equal(setenv("LDMCL_CPU_KERNELS", "0", 1), 0);
    assert_int_equal(setenv("LDMCL_TUNABLES", tunables, 1), 0);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    assert_int_equal(unsetenv("LDMCL_TUNABLES"), 0);
    assert_int_equal(unsetenv("LDMCL_CPU_KERNELS"), 0);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, 4, 64, 64));
    ldm_tensor *seed = ldm_graph_input(g, "seed", LDM_SHAPE(1, 4, 64, 64));
    ldm_tensor *w = ldm_graph_param(g, "weight", LDM_SHAPE(4));
    ldm_tensor *b = ldm_graph_param(g, "bias", LDM_SHAPE(4));
    ldm_tensor_set_requires_grad(x, 1);
    ldm_tensor *out = ldm_group_norm(g, x, 2, 1e-5f, w, b);
    ldm_tensor_keep(out);
    assert_status(ldm_graph_backward_seeded(g, out, seed), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_tensor_write(x, hx), LDM_OK);
    assert_status(ldm_tensor_write(seed, hs), LDM_OK);
    assert_status(ldm_tensor_write(w, wv), LDM_OK);
    assert_status(ldm_tensor_write(b, bv), LDM_OK);
    assert_status(ldm_ctx_profile_begin(ctx), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_ctx_finish(ctx), LDM_OK);
    ldm_profile_entry prof[64];
    size_t np = ldm_ctx_profile_end(ctx, prof, 64);
    int stats = 0, sums = 0, params = 0;
    for (size_t i = 0; i < np && i < 64; i++) {
        stats |= strstr(prof[i].name, "group_norm_split_stats") != NULL;
        sums |= strstr(prof[i].name, "group_norm_bwd_split_sums") != NULL;
        params |= strstr(prof[i].name, "group_norm_bwd_params_split_sums") != NULL;
    }
    assert_int_equal(stats, sums);
    assert_int_equal(stats, params);
    *split = stats;
    assert_status(ldm_tensor_read(out, y), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(x), dx), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(w), dgb), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(b), dgb + 4), LDM_OK);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

/* The same GroupNorm on the host in double: y and the gradients for the seed. */
static void group_norm_host(const float *x, const float *seed, const float *w, const float *b,
                            float *y, float *dx, float *dgb) {
    enum { C = 4, G = 2, P = 64 * 64, M = C / G * P };
    double dg[C] = {0}, db[C] = {0};
    for (int g = 0; g < G; g++) {
        const float *xg = x + g * M, *sg = seed + g * M;
        double mu = 0, var = 0, m1 = 0, m2 = 0;
        for (int i = 0; i < M; i++)
            mu += xg[i];
        mu /= M;
        for (int i = 0; i < M; i++)
            var += (xg[i] - mu) * (xg[i] - mu);
        double r = 1.0 / sqrt(var / M + 1e-5);
        for (int i = 0; i < M; i++) {
            int c = g * (C / G) + i / P;
            double gy = sg[i] * w[c], xhat = (xg[i] - mu) * r;
            y[g * M + i] = (float)(xhat * w[c] + b[c]);
            m1 += gy / M;
            m2 += gy * xhat / M;
            dg[c] += sg[i] * xhat;
            db[c] += sg[i];
        }
        for (int i = 0; i < M; i++) {
            int c = g * (C / G) + i / P;
            double gy = sg[i] * w[c], xhat = (xg[i] - mu) * r;
            dx[g * M + i] = (float)(r * (gy - m1 - xhat * m2));
        }
    }
    for (int c = 0; c < C; c++) {
        dgb[c] = (float)dg[c];
        dgb[C + c] = (float)db[c];
    }
}

/* At one sample (2 groups, 4 channels) the GPU layout splits the statistics and dx by default on
 * a device of any size (4 work-groups per compute unit wanted), the weight and bias gradients
 * from 2 compute units; here both are split (norm_split_groups=64) and not (0), and both match
 * the host in double. */
static void group_norm_splits_at_small_batch(void **state) {
    (void)state;
    size_t n = 4 * 64 * 64;
    float *hx = malloc(n * sizeof *hx), *hs = malloc(n * sizeof *hs), *y = malloc(n * sizeof *y),
          *dx = malloc(n * sizeof *dx), *want_y = malloc(n * sizeof *y),
          *want_dx = malloc(n * sizeof *dx);
    float dgb[8], want_dgb[8];
    for (size_t i = 0; i < n; i++) {
        hx[i] = (float)((i * 7919) % 1013) * 0.01f - 3.0f + (float)(i / 4096);
        hs[i] = (float)((i * 104729) % 997) * 0.002f - 1.0f;
    }
    const float w[4] = {1.5f, 0.5f, -1, 2}, b[4] = {0.1f, 0, -0.2f, 1};
    group_norm_host(hx, hs, w, b, want_y, want_dx, want_dgb);
    for (int k = 0; k < 2; k++) {
        int split;
        group_norm_once(k ? "norm_split_groups=0" : "norm_split_groups=64", hx, hs, w, b, y, dx,
                        dgb, &split);
        assert_int_equal(split, !k);
        double ey = test_rel_err(y, want_y, NULL, n), edx = test_rel_err(dx, want_dx, NULL, n);
        double ep = test_rel_err(dgb, want_dgb, NULL, 8);
        printf("  %s: worst relative error against the host in double: y %.2e, dx %.2e, "
               "weight and bias gradients %.2e\n",
               k ? "one work-group per group" : "split", ey, edx, ep);
        assert_true(ey < OP_REL_TOL);
        assert_true(edx < OP_REL_TOL);
        assert_true(ep < OP_REL_TOL);
    }
    free(hx);
    free(hs);
    free(y);
    free(dx);
    free(want_y);
    free(want_dx);
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
        cmocka_unit_test(group_norm_split_matches_pytorch),
        cmocka_unit_test(group_norm_splits_at_small_batch),
        cmocka_unit_test(batch_norm_updates_running_statistics),
        cmocka_unit_test(batch_norm_gate_holds_running_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
