/* tests/test_transfer.c: host writes, fills and buffer copies as kernels (kernel_transfers, the
 * path the Oclgrind simulator needs: src/core/transfer.c) give what the driver's commands give:
 * a new arena reads zero, writes, fills and copies at offsets into it land where they should and
 * nowhere else, a recorded fill replays, and a graph's training step computes the same bits.
 * The setting is on by default on the Oclgrind simulator only, and a bad $LDMCL_KERNEL_TRANSFERS
 * is refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

enum { N = 1000 };

static ldm_ctx *open_ctx(int kernel_transfers) {
    ldm_ctx_options o;
    test_ctx_options(&o, NULL, NULL);
    o.kernel_transfers = kernel_transfers;
    ldm_ctx *ctx = NULL;
    assert_status(ldm_ctx_create(&o, &ctx), LDM_OK);
    assert_int_equal(ldm_ctx_kernel_transfers(ctx), kernel_transfers);
    return ctx;
}

/* What an arena holds after a fixed series of writes, fills and copies at offsets. */
static void series(ldm_ctx *ctx, float *out) {
    ldm_arena *a;
    assert_status(ldm_arena_create(ctx, "series", N * 4, &a), LDM_OK);
    ldm_buf all = {ldm_arena_mem(a), 0};
    float data[7] = {1.5f, -2, 3, 1e-30f, -0.0f, 7, 8};
    assert_status(ldm_buf_write(ctx, (ldm_buf){all.mem, 100}, data, 7), LDM_OK);
    assert_status(ldm_buf_fill(ctx, (ldm_buf){all.mem, 3}, 2.5f, 5), LDM_OK);
    assert_status(ldm_buf_copy(ctx, (ldm_buf){all.mem, 501}, (ldm_buf){all.mem, 100}, 7, NULL),
                  LDM_OK);
    ldm_cmd *c;
    assert_status(ldm_cmd_create_recording(ctx, &c), LDM_OK);
    assert_status(ldm_cmd_fill(c, (ldm_buf){all.mem, 900}, -4.0f, 33), LDM_OK);
    assert_status(ldm_cmd_replay(c), LDM_OK);
    assert_status(ldm_cmd_replay(c), LDM_OK);
    assert_status(ldm_buf_read(ctx, out, all, N), LDM_OK);
    ldm_cmd_destroy(c);
    ldm_arena_destroy(a);
}

static void writes_fills_and_copies_land_in_place(void **state) {
    (void)state;
    float want[N] = {0}, got[N];
    const float data[7] = {1.5f, -2, 3, 1e-30f, -0.0f, 7, 8};
    memcpy(want + 100, data, sizeof data);
    for (int i = 3; i < 8; i++)
        want[i] = 2.5f;
    memcpy(want + 501, data, sizeof data);
    for (int i = 900; i < 933; i++)
        want[i] = -4.0f;
    for (int k = 0; k < 2; k++) {
        ldm_ctx *ctx = open_ctx(k);
        series(ctx, got);
        assert_memory_equal(got, want, sizeof want); /* bits: -0.0 stays negative */
        ldm_ctx_destroy(ctx);
    }
}

/* y = mean(silu(x W^T + b)); one forward and backward: the output and W's gradient. */
static void step(ldm_ctx *ctx, float *y, float *dw) {
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(3, 5));
    ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(4, 5));
    ldm_tensor *b = ldm_graph_param(g, "b", LDM_SHAPE(4));
    ldm_tensor *out = ldm_mean(g, ldm_silu(g, ldm_linear(g, x, w, b)));
    ldm_tensor_keep(out);
    assert_status(ldm_graph_backward(g, out), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    float xv[15], wv[20], bv[4];
    for (int i = 0; i < 20; i++)
        wv[i] = cosf(0.7f * (float)i);
    for (int i = 0; i < 15; i++)
        xv[i] = sinf((float)i);
    for (int i = 0; i < 4; i++)
        bv[i] = 0.1f * (float)i;
    assert_status(ldm_tensor_write(x, xv), LDM_OK);
    assert_status(ldm_tensor_write(w, wv), LDM_OK);
    assert_status(ldm_tensor_write(b, bv), LDM_OK);
    assert_status(ldm_graph_zero_grads(g), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(out, y), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(w), dw), LDM_OK);
    ldm_graph_destroy(g);
}

static void a_training_step_computes_the_same_bits(void **state) {
    (void)state;
    float y[2], dw[2][20];
    for (int k = 0; k < 2; k++) {
        ldm_ctx *ctx = open_ctx(k);
        step(ctx, &y[k], dw[k]);
        ldm_ctx_destroy(ctx);
    }
    assert_memory_equal(&y[0], &y[1], sizeof y[0]);
    assert_memory_equal(dw[0], dw[1], sizeof dw[0]);
    assert_true(y[0] != 0.0f);
}

static void the_setting_is_resolved_and_checked(void **state) {
    (void)state;
    ldm_ctx_options o;
    test_ctx_options(&o, NULL, NULL);
    ldm_ctx *ctx = NULL;
    assert_int_equal(unsetenv("LDMCL_KERNEL_TRANSFERS"), 0);
    assert_status(ldm_ctx_create(&o, &ctx), LDM_OK);
    int simulator = strstr(ldm_ctx_device_info(ctx)->platform_name, "Oclgrind") != NULL;
    assert_int_equal(ldm_ctx_kernel_transfers(ctx), simulator); /* on by default there only */
    ldm_ctx_destroy(ctx);
    assert_int_equal(setenv("LDMCL_KERNEL_TRANSFERS", "1", 1), 0);
    assert_status(ldm_ctx_create(&o, &ctx), LDM_OK);
    assert_int_equal(ldm_ctx_kernel_transfers(ctx), 1);
    ldm_ctx_destroy(ctx);
    assert_int_equal(setenv("LDMCL_KERNEL_TRANSFERS", "yes", 1), 0);
    ctx = NULL;
    assert_status(ldm_ctx_create(&o, &ctx), LDM_ERR_INVALID_ARGUMENT);
    assert_null(ctx);
    assert_contains(ldm_last_error(), "LDMCL_KERNEL_TRANSFERS is 'yes': 1, 0, or unset");
    assert_int_equal(unsetenv("LDMCL_KERNEL_TRANSFERS"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writes_fills_and_copies_land_in_place),
        cmocka_unit_test(a_training_step_computes_the_same_bits),
        cmocka_unit_test(the_setting_is_resolved_and_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
