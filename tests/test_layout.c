/* tests/test_layout.c: transpose, concat, narrow and nearest resizing against PyTorch
 * (tests/ref/layout.safetensors). */
#include "op_harness.h"

static ldm_tensor *b_transpose(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_transpose12(g, in[0]);
}

static ldm_tensor *b_concat(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_concat(g, in[0], in[1], (int)case_number(p, "dim"));
}

static ldm_tensor *b_narrow(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_narrow(g, in[0], (int)case_number(p, "dim"), (int)case_number(p, "start"),
                      (int)case_number(p, "length"));
}

static ldm_tensor *b_resize(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_resize_nearest(g, in[0], (int)case_number(p, "height"),
                              (int)case_number(p, "width"));
}

static void layout_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"transpose12", b_transpose, 0},
                            {"concat", b_concat, 0},
                            {"narrow", b_narrow, 0},
                            {"resize_nearest", b_resize, 0}};
    run_ref_family("layout", ops, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(layout_matches_pytorch)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
