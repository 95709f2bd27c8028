/* tests/test_reduce.c: sum, mean, MSE and L1 losses against PyTorch
 * (tests/ref/reduce.safetensors) with both kernel layouts, and long reductions against exact
 * host sums. */
#include <stdlib.h>

#include "op_harness.h"

static ldm_tensor *b_sum(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_sum(g, in[0]);
}

static ldm_tensor *b_mean(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_mean(g, in[0]);
}

static ldm_tensor *b_mse(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_mse_loss(g, in[0], in[1]);
}

static ldm_tensor *b_l1(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_l1_loss(g, in[0], in[1]);
}

static ldm_tensor *b_mse_const(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_mse_loss_const(g, in[0], (float)case_number(p, "target"));
}

static void reductions_match_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"sum", b_sum, 0},
                            {"mean", b_mean, 0},
                            {"mse", b_mse, 0},
                            {"l1", b_l1, 0},
                            {"mse_const", b_mse_const, 0}};
    run_ref_family_both_layouts("reduce", ops, (int)(sizeof ops / sizeof ops[0]));
}

/* Lengths past 256 * 1024 use chunks longer than a work-group; small integers keep every
 * partial sum exact, so the device must match the host exactly. */
static void long_sums_are_exact(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    const size_t sizes[] = {262145, 1000003};
    for (int s = 0; s < 2; s++) {
        size_t n = sizes[s];
        float *x = malloc(n * sizeof *x);
        assert_non_null(x);
        double want = 0.0;
        for (size_t i = 0; i < n; i++) {
            x[i] = (float)((int)(i * 2654435761u % 17) - 8);
            want += x[i];
        }
        ldm_graph *g;
        assert_status(ldm_graph_create(ctx, &g), LDM_OK);
        ldm_tensor *t = ldm_graph_input(g, "x", 1, (const int[]){(int)n});
        ldm_tensor *sum = ldm_sum(g, t);
        ldm_tensor_keep(sum);
        assert_status(ldm_graph_compile(g), LDM_OK);
        assert_status(ldm_tensor_write(t, x), LDM_OK);
        assert_status(ldm_graph_run(g), LDM_OK);
        float got;
        assert_status(ldm_tensor_read(sum, &got), LDM_OK);
        assert_true((double)got == want);
        ldm_graph_destroy(g);
        free(x);
    }
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reductions_match_pytorch),
        cmocka_unit_test(long_sums_are_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
