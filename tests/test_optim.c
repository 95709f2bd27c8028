/* tests/test_optim.c: the parameter EMA (with and without warm-up) against the formula computed
 * on the host, its exchange with the parameters, and the optimizer's refusal of a graph it cannot
 * train. (Adam and AdamW with clipping are checked against PyTorch in test_models.) */
#include <math.h>
#include <stdlib.h>

#include "ldmcl/optim.h"
#include "test_util.h"

static void ema_follows_the_formula(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    for (int warmup = 0; warmup < 2; warmup++) {
        ldm_graph *g;
        assert_status(ldm_graph_create(ctx, &g), LDM_OK);
        ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(5));
        ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(5));
        assert_status(ldm_graph_backward(g, ldm_sum(g, ldm_mul(g, w, x))), LDM_OK);
        assert_status(ldm_graph_compile(g), LDM_OK);
        float p[5] = {1, 2, 3, 4, 5};
        assert_status(ldm_tensor_write(w, p), LDM_OK);
        ldm_ema *e;
        assert_status(ldm_ema_create(g, 0.99f, warmup, &e), LDM_OK);
        double want[5];
        for (int i = 0; i < 5; i++)
            want[i] = p[i];
        for (int k = 0; k < 4; k++) {
            for (int i = 0; i < 5; i++)
                p[i] = p[i] * 0.5f - 1.0f;
            assert_status(ldm_tensor_write(w, p), LDM_OK);
            assert_status(ldm_ema_update(e), LDM_OK);
            double d = warmup ? fmin(0.99, (1.0 + k) / (10.0 + k)) : 0.99;
            for (int i = 0; i < 5; i++)
                want[i] = d * want[i] + (1 - d) * p[i];
        }
        float got[5];
        assert_status(ldm_buf_read(ctx, got, ldm_ema_buf(e), 5), LDM_OK);
        for (int i = 0; i < 5; i++)
            assert_true(fabs(got[i] - want[i]) <= 1e-5 * fabs(want[i]));
        ldm_ema_destroy(e);
        ldm_graph_destroy(g);
    }
    ldm_ctx_destroy(ctx);
}

/* Swapping puts the averages into the graph's parameters and the trained weights into the EMA,
 * with no memory taken; a second swap puts both back, bit for bit. */
static void ema_swaps_in_place(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(5));
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(5));
    assert_status(ldm_graph_backward(g, ldm_sum(g, ldm_mul(g, w, x))), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    const float p[5] = {1, 2, 3, 4, 5}, q[5] = {-3, 0.5f, 7, 1e-3f, -2};
    assert_status(ldm_tensor_write(w, p), LDM_OK);
    ldm_ema *e;
    assert_status(ldm_ema_create(g, 0.5f, 0, &e), LDM_OK);
    assert_status(ldm_tensor_write(w, q), LDM_OK);
    assert_status(ldm_ema_update(e), LDM_OK);
    float avg[5], got[5];
    assert_status(ldm_buf_read(ctx, avg, ldm_ema_buf(e), 5), LDM_OK);
    for (int i = 0; i < 5; i++)
        assert_float_equal(avg[i], 0.5f * p[i] + 0.5f * q[i], 1e-6);
    uint64_t bytes = ldm_ctx_device_bytes_in_use(ctx);
    assert_status(ldm_ema_swap(e), LDM_OK);
    assert_int_equal(ldm_ctx_device_bytes_in_use(ctx), bytes);
    assert_status(ldm_tensor_read(w, got), LDM_OK);
    assert_memory_equal(got, avg, sizeof got);
    assert_status(ldm_buf_read(ctx, got, ldm_ema_buf(e), 5), LDM_OK);
    assert_memory_equal(got, q, sizeof got);
    assert_status(ldm_ema_swap(e), LDM_OK);
    assert_status(ldm_tensor_read(w, got), LDM_OK);
    assert_memory_equal(got, q, sizeof got);
    assert_status(ldm_buf_read(ctx, got, ldm_ema_buf(e), 5), LDM_OK);
    assert_memory_equal(got, avg, sizeof got);
    ldm_ema_destroy(e);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

static void optimizer_needs_a_trainable_compiled_graph(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(3));
    ldm_tensor_keep(ldm_silu(g, x));
    assert_status(ldm_graph_compile(g), LDM_OK);
    ldm_adam_config cfg;
    ldm_adam_config_init(&cfg);
    ldm_optimizer *o = NULL;
    assert_status(ldm_adam_create(g, &cfg, &o), LDM_ERR_INVALID_ARGUMENT);
    assert_null(o);
    assert_contains(ldm_last_error(), "compiled graph with a backward pass");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ema_follows_the_formula),
        cmocka_unit_test(ema_swaps_in_place),
        cmocka_unit_test(optimizer_needs_a_trainable_compiled_graph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
