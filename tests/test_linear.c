/* tests/test_linear.c: Linear and Embedding against PyTorch (tests/ref/linear.safetensors), and
 * Linear on rows of a packed weight (ldm_view_rows), as multi-head attention uses it. */
#include <stdlib.h>
#include <string.h>

#include "op_harness.h"

static ldm_tensor *b_linear(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)p;
    return ldm_linear(g, in[0], in[1], n > 2 ? in[2] : NULL);
}

static ldm_tensor *b_embedding(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_embedding(g, in[0], in[1]);
}

static void linear_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"linear", b_linear, 0}, {"embedding", b_embedding, 0}};
    run_ref_family("linear", ops, 2);
}

/* y = x W[2:5]^T + b[2:5] through row views of a [6, 4] weight: the gradient lands in rows 2..4
 * of the weight's gradient and nowhere else. */
static void linear_on_weight_rows(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(3, 4));
    ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(6, 4));
    ldm_tensor *b = ldm_graph_param(g, "b", LDM_SHAPE(6));
    ldm_tensor *y = ldm_linear(g, x, ldm_view_rows(g, w, 2, 3), ldm_view_rows(g, b, 2, 3));
    ldm_tensor_keep(y);
    assert_status(ldm_graph_backward(g, ldm_sum(g, y)), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    float hx[12], hw[24], hb[6], got[9], gw[24], gb[6];
    for (int i = 0; i < 12; i++)
        hx[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < 24; i++)
        hw[i] = (float)(i % 7) * 0.5f - 1.0f;
    for (int i = 0; i < 6; i++)
        hb[i] = (float)i;
    assert_status(ldm_tensor_write(x, hx), LDM_OK);
    assert_status(ldm_tensor_write(w, hw), LDM_OK);
    assert_status(ldm_tensor_write(b, hb), LDM_OK);
    assert_status(ldm_graph_zero_grads(g), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(y, got), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(w), gw), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(b), gb), LDM_OK);
    for (int r = 0; r < 3; r++)
        for (int o = 0; o < 3; o++) {
            float want = hb[2 + o];
            for (int i = 0; i < 4; i++)
                want += hx[r * 4 + i] * hw[(2 + o) * 4 + i];
            assert_true(got[r * 3 + o] == want); /* small halves: exact */
        }
    for (int o = 0; o < 6; o++) {
        int used = o >= 2 && o < 5;
        assert_true(gb[o] == (used ? 3.0f : 0.0f));
        for (int i = 0; i < 4; i++) {
            float want = used ? hx[i] + hx[4 + i] + hx[8 + i] : 0.0f;
            assert_true(gw[o * 4 + i] == want);
        }
    }
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linear_matches_pytorch),
        cmocka_unit_test(linear_on_weight_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
