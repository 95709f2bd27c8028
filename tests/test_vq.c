/* tests/test_vq.c: the nearest codebook entry against torch.cdist + argmin
 * (tests/ref/vq.safetensors), ties, and a codebook of the wrong width. */
#include "op_harness.h"

static ldm_tensor *b_vq_nearest(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_vq_nearest(g, in[0], in[1]);
}

static void nearest_entry_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"vq_nearest", b_vq_nearest, 0}};
    run_ref_family("vq", ops, 1);
}

/* Equal distances go to the first entry, as torch.argmin. */
static void ties_go_to_the_first_entry(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *z = ldm_graph_input(g, "z", LDM_SHAPE(3, 2));
    ldm_tensor *e = ldm_graph_input(g, "codebook", LDM_SHAPE(4, 2));
    ldm_tensor *idx = ldm_vq_nearest(g, z, e);
    ldm_tensor_keep(idx);
    assert_status(ldm_graph_compile(g), LDM_OK);
    const float hz[] = {0, 0, 5, 5, 1, 1};
    const float he[] = {1, 0, 0, 1, 5, 5, 5, 5}; /* (0,0) is 1 from entries 0 and 1 */
    assert_status(ldm_tensor_write(z, hz), LDM_OK);
    assert_status(ldm_tensor_write(e, he), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    float got[3];
    assert_status(ldm_tensor_read(idx, got), LDM_OK);
    assert_float_equal(got[0], 0.0f, 0.0f);
    assert_float_equal(got[1], 2.0f, 0.0f);
    assert_float_equal(got[2], 0.0f, 0.0f); /* (1,1): 1 from entries 0 and 1 */
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

static void codebook_of_another_width_is_an_error(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *z = ldm_graph_input(g, "z", LDM_SHAPE(2, 8, 3));
    ldm_tensor *e = ldm_graph_param(g, "embedding.weight", LDM_SHAPE(16, 4));
    assert_null(ldm_vq_nearest(g, z, e));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "needs a codebook [K, 3], got 'embedding.weight' [16, 4]");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nearest_entry_matches_pytorch),
        cmocka_unit_test(ties_go_to_the_first_entry),
        cmocka_unit_test(codebook_of_another_width_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
