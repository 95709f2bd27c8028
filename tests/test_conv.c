/* tests/test_conv.c: Conv2d and ConvTranspose2d against PyTorch (tests/ref/conv.safetensors):
 * 3x3 s1 p1, 1x1, 4x4 s2 p1, odd sizes, C=1 and a 1x1 image; with and without bias; with the
 * kernels laid out for CPUs and for GPUs, and the GPU layout in both its variants (conv_batched).
 * A bad LDMCL_CPU_KERNELS is an error. */
#include "op_harness.h"

static ldm_tensor *b_conv(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    return ldm_conv2d(g, in[0], in[1], n > 2 ? in[2] : NULL, (int)case_number(p, "stride"),
                      (int)case_number(p, "pad"));
}

static ldm_tensor *b_convt(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    return ldm_conv_transpose2d(g, in[0], in[1], n > 2 ? in[2] : NULL,
                                (int)case_number(p, "stride"), (int)case_number(p, "pad"));
}

/* Both layouts of im2col/col2im: the one for the test device's type and the other. */
static void conv_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"conv2d", b_conv, 0}, {"conv_transpose2d", b_convt, 0}};
    run_ref_family_both_layouts("conv", ops, 2);
}

/* The GPU layout's other variant (its default: columns per sample and strided-batched GEMMs on
 * the images in place): one GEMM per chunk of samples and transposed copies (conv_batched=0). */
static void conv_unbatched_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"conv2d", b_conv, 0}, {"conv_transpose2d", b_convt, 0}};
    run_ref_family_gpu_tuned("conv", ops, 2, "conv_batched=0");
}

static void bad_geometry_is_a_recording_error(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, 3, 2, 2));
    ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(4, 3, 5, 5));
    assert_null(ldm_conv2d(g, x, w, NULL, 1, 0));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "conv2d: no output for input 2x2, kernel 5x5");
    ldm_graph_destroy(g);
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    x = ldm_graph_input(g, "x", LDM_SHAPE(1, 3, 8, 8));
    w = ldm_graph_param(g, "w", LDM_SHAPE(4, 2, 3, 3));
    assert_null(ldm_conv2d(g, x, w, NULL, 1, 1));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "weight 'w' [4, 2, 3, 3]");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

static void bad_cpu_kernels_setting_is_an_error(void **state) {
    (void)state;
    assert_int_equal(setenv("LDMCL_CPU_KERNELS", "yes", 1), 0);
    ldm_ctx_options o;
    test_ctx_options(&o, NULL, NULL);
    ldm_ctx *ctx = NULL;
    assert_status(ldm_ctx_create(&o, &ctx), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "LDMCL_CPU_KERNELS is 'yes'");
    o.cpu_kernels = 0; /* the option wins over the environment */
    assert_status(ldm_ctx_create(&o, &ctx), LDM_OK);
    assert_int_equal(ldm_ctx_cpu_kernels(ctx), 0);
    ldm_ctx_destroy(ctx);
    assert_int_equal(unsetenv("LDMCL_CPU_KERNELS"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_matches_pytorch),
        cmocka_unit_test(conv_unbatched_matches_pytorch),
        cmocka_unit_test(bad_geometry_is_a_recording_error),
        cmocka_unit_test(bad_cpu_kernels_setting_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
