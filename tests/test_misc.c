/* tests/test_misc.c: softmax and the reference's sinusoidal timestep embedding against PyTorch
 * (tests/ref/misc.safetensors). */
#include "op_harness.h"

static ldm_tensor *b_softmax(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_softmax(g, in[0]);
}

static ldm_tensor *b_timestep(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_timestep_embedding(g, in[0], (int)case_number(p, "dim"), (int)case_number(p, "T"));
}

static void misc_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {{"softmax", b_softmax, 0}, {"timestep", b_timestep, 0}};
    run_ref_family("misc", ops, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(misc_matches_pytorch)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
