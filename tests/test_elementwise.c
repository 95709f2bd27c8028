/* tests/test_elementwise.c: activations, exp, add/sub/scale/mul, detach, GEGLU and the per-channel
 * broadcast add against PyTorch (tests/ref/elementwise.safetensors), with accumulation and finite
 * differences. */
#include <string.h>

#include "op_harness.h"

static ldm_tensor *build_act(ldm_graph *g, ldm_tensor **in, const char *op) {
    if (!strcmp(op, "silu")) return ldm_silu(g, in[0]);
    if (!strcmp(op, "leaky_relu")) return ldm_leaky_relu(g, in[0], 0.2f);
    if (!strcmp(op, "gelu")) return ldm_gelu(g, in[0]);
    if (!strcmp(op, "relu")) return ldm_relu(g, in[0]);
    if (!strcmp(op, "exp")) return ldm_exp(g, in[0]);
    return ldm_quick_gelu(g, in[0]);
}

#define ACT_BUILDER(name)                                                                          \
    static ldm_tensor *b_##name(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {         \
        (void)n;                                                                                   \
        (void)p;                                                                                   \
        return build_act(g, in, #name);                                                            \
    }
ACT_BUILDER(silu)
ACT_BUILDER(leaky_relu)
ACT_BUILDER(gelu)
ACT_BUILDER(quick_gelu)
ACT_BUILDER(relu)
ACT_BUILDER(exp)

static ldm_tensor *b_add(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_add(g, in[0], in[1]);
}

static ldm_tensor *b_sub(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_sub(g, in[0], in[1]);
}

static ldm_tensor *b_mul(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_mul(g, in[0], in[1]);
}

static ldm_tensor *b_mul_self(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_mul(g, in[0], in[0]);
}

static ldm_tensor *b_mul_detach(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_mul(g, in[0], ldm_detach(g, in[0]));
}

static ldm_tensor *b_scale(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_scale(g, in[0], (float)case_number(p, "alpha"));
}

static ldm_tensor *b_affine(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_affine(g, in[0], (float)case_number(p, "alpha"), (float)case_number(p, "beta"));
}

static ldm_tensor *b_add_channels(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_add_channels(g, in[0], in[1]);
}

static ldm_tensor *b_geglu(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_geglu(g, in[0]);
}

static void elementwise_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {
        {"silu", b_silu, 0},
        {"leaky_relu", b_leaky_relu, 0},
        {"gelu", b_gelu, 0},
        {"quick_gelu", b_quick_gelu, 0},
        {"add", b_add, 0},
        {"sub", b_sub, 0},
        {"mul", b_mul, 0},
        {"mul_self", b_mul_self, 0},
        {"scale", b_scale, 0},
        {"add_channels", b_add_channels, 0},
        {"relu", b_relu, 0},
        {"exp", b_exp, 0},
        {"mul_detach", b_mul_detach, 0},
        {"affine", b_affine, 0},
        {"geglu", b_geglu, 0},
    };
    run_ref_family("elementwise", ops, (int)(sizeof ops / sizeof ops[0]));
}

static void shape_mismatch_is_a_recording_error(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *a = ldm_graph_input(g, "a", LDM_SHAPE(2, 3));
    ldm_tensor *b = ldm_graph_input(g, "b", LDM_SHAPE(3, 2));
    assert_null(ldm_add(g, a, b));
    assert_null(ldm_silu(g, ldm_add(g, a, b))); /* later calls do nothing */
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "add: 'a' [2, 3] and 'b' [3, 2] must have the same shape");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(elementwise_matches_pytorch),
        cmocka_unit_test(shape_mismatch_is_a_recording_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
