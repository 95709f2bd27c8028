/* tests/test_pool.c: max pooling against PyTorch (tests/ref/pool.safetensors), and its shape
 * errors. */
#include "op_harness.h"

static ldm_tensor *b_max_pool2d(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_max_pool2d(g, in[0], (int)case_number(p, "k"), (int)case_number(p, "s"));
}

static void max_pool_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"max_pool2d", b_max_pool2d, 0}};
    run_ref_family("pool", ops, 1);
}

static void window_larger_than_the_image_is_an_error(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "feat", LDM_SHAPE(1, 2, 1, 4));
    assert_null(ldm_max_pool2d(g, x, 2, 2));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "max_pool2d: 'feat' [1, 2, 1, 4]");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(max_pool_matches_pytorch),
        cmocka_unit_test(window_larger_than_the_image_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
