/* tests/test_misc.c: softmax, the reference's sinusoidal timestep embedding and diffusers'
 * min-SNR loss scale against PyTorch (tests/ref/misc.safetensors). */
#include "ldmcl/diffusion.h"
#include "op_harness.h"

static ldm_tensor *b_softmax(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n, (void)p;
    return ldm_softmax(g, in[0]);
}

static ldm_tensor *b_timestep(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_timestep_embedding(g, in[0], (int)case_number(p, "dim"), (int)case_number(p, "T"));
}

/* The schedule's tables are copied into the graph when the op is recorded. */
static ldm_tensor *b_snr_scale(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, (int)case_number(p, "T"),
                                      case_number(p, "beta_start"), case_number(p, "beta_end"), &s),
                  LDM_OK);
    ldm_tensor *out = ldm_snr_loss_scale(g, s, (float)case_number(p, "gamma"),
                                         (int)case_number(p, "v_prediction"), in[0], in[1]);
    ldm_schedule_destroy(s);
    return out;
}

static void misc_matches_pytorch(void **state) {
    (void)state;
    const op_entry ops[] = {
        {"softmax", b_softmax, 0}, {"timestep", b_timestep, 0}, {"snr_scale", b_snr_scale, 0}};
    run_ref_family("misc", ops, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(misc_matches_pytorch)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
