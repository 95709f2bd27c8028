/* tests/test_train_state.c: a training run saved after two steps and resumed in a fresh graph,
 * optimizer and EMA continues exactly: the same losses (bit for bit, the random draws included)
 * and the same parameters, moments and averages as the run that never stopped. A truncated state
 * file is refused and changes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ldmcl.h"
#include "test_util.h"

enum { N = 2, C = 4, H = 8, W = 8, S = 5, D = 6 };

typedef struct run {
    ldm_graph *g;
    ldm_diffusion_train_graph tg;
    ldm_optimizer *opt;
    ldm_ema *ema;
    ldm_schedule *s;
} run;

static ldm_unet_config g_unet;

static void start(ldm_ctx *ctx, run *r, uint64_t param_seed) {
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, 1000, 0.00085, 0.012, &r->s),
                  LDM_OK);
    ldm_diffusion_train_config cfg = {.unet = &g_unet,
                                      .schedule = r->s,
                                      .batch = N,
                                      .height = H,
                                      .width = W,
                                      .context_len = S,
                                      .cond_drop_prob = 0.3f,
                                      .prediction = LDM_PREDICT_EPSILON,
                                      .seed = 99};
    assert_status(ldm_graph_create(ctx, &r->g), LDM_OK);
    assert_status(ldm_diffusion_train_record(r->g, &cfg, &r->tg), LDM_OK);
    assert_status(ldm_graph_compile(r->g), LDM_OK);
    assert_status(ldm_graph_init_params(r->g, param_seed, 0), LDM_OK);
    float lat[N * C * H * W], ctxv[N * S * D], empty[S * D];
    ldm_rng_host(LDM_DIST_NORMAL, N * C * H * W, 5, 0, 0, lat);
    ldm_rng_host(LDM_DIST_NORMAL, N * S * D, 5, 1, 0, ctxv);
    ldm_rng_host(LDM_DIST_NORMAL, S * D, 5, 2, 0, empty);
    assert_status(ldm_tensor_write(r->tg.latents, lat), LDM_OK);
    assert_status(ldm_tensor_write(r->tg.context, ctxv), LDM_OK);
    assert_status(ldm_tensor_write(r->tg.empty_context, empty), LDM_OK);
    ldm_adam_config a;
    ldm_adam_config_init(&a);
    a.lr = 1e-3f;
    assert_status(ldm_adam_create(r->g, &a, &r->opt), LDM_OK);
    assert_status(ldm_ema_create(r->g, 0.99f, 1, &r->ema), LDM_OK);
}

static float step(run *r) {
    assert_status(ldm_graph_zero_grads(r->g), LDM_OK);
    assert_status(ldm_graph_run(r->g), LDM_OK);
    assert_status(ldm_optimizer_step(r->opt), LDM_OK);
    assert_status(ldm_ema_update(r->ema), LDM_OK);
    float loss;
    assert_status(ldm_tensor_read(r->tg.loss, &loss), LDM_OK);
    return loss;
}

static void stop(run *r) {
    ldm_ema_destroy(r->ema);
    ldm_optimizer_destroy(r->opt);
    ldm_graph_destroy(r->g);
    ldm_schedule_destroy(r->s);
}

static float *flat(ldm_ctx *ctx, ldm_buf b, size_t n) {
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    assert_status(ldm_buf_read(ctx, v, b, n), LDM_OK);
    return v;
}

static void resume_continues_exactly(void **state) {
    (void)state;
    g_unet = test_small_unet(D, 1000, 1);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    char *dir = test_make_tmpdir("state");
    char path[4200], cut[4200];
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    snprintf(cut, sizeof cut, "%s/cut.safetensors", dir);

    run a;
    start(ctx, &a, 1);
    step(&a);
    step(&a);
    const char *meta[] = {"data_position", "4", NULL};
    assert_status(ldm_train_state_save(path, a.g, a.opt, a.ema, meta), LDM_OK);
    float want[2] = {step(&a), step(&a)};

    run b;
    start(ctx, &b, 2); /* other parameters: the state file must replace them */
    size_t count;
    ldm_graph_trainable_buf(b.g, &count);
    /* a truncated file changes nothing */
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);
    test_write_file(cut, bytes, len / 2);
    free(bytes);
    float *before = flat(ctx, ldm_graph_trainable_buf(b.g, &count), count);
    assert_status(ldm_train_state_load(cut, b.g, b.opt, b.ema), LDM_ERR_FORMAT);
    float *after = flat(ctx, ldm_graph_trainable_buf(b.g, &count), count);
    assert_memory_equal(before, after, count * sizeof *before);
    free(before);
    free(after);

    assert_status(ldm_train_state_load(path, b.g, b.opt, b.ema), LDM_OK);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    assert_string_equal(ldm_safetensors_metadata(st, "data_position"), "4");
    assert_string_equal(ldm_safetensors_metadata(st, "ldmcl.state.optimizer_steps"), "2");
    ldm_safetensors_close(st);
    float got[2] = {step(&b), step(&b)};
    printf("  losses after resuming: %.9g %.9g (uninterrupted: %.9g %.9g)\n", got[0], got[1],
           want[0], want[1]);
    assert_memory_equal(got, want, sizeof got);
    ldm_buf bufs_a[4] = {ldm_graph_trainable_buf(a.g, &count), ldm_optimizer_moment(a.opt, 1),
                         ldm_optimizer_moment(a.opt, 2), ldm_ema_buf(a.ema)};
    ldm_buf bufs_b[4] = {ldm_graph_trainable_buf(b.g, &count), ldm_optimizer_moment(b.opt, 1),
                         ldm_optimizer_moment(b.opt, 2), ldm_ema_buf(b.ema)};
    for (int k = 0; k < 4; k++) {
        float *x = flat(ctx, bufs_a[k], count), *y = flat(ctx, bufs_b[k], count);
        assert_memory_equal(x, y, count * sizeof *x);
        free(x);
        free(y);
    }
    stop(&a);
    stop(&b);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

/* Two runs (an autoencoder and its discriminator, say) in one file under their prefixes: loaded
 * back, each continues exactly; a file lacking one part changes neither. */
static void two_parts_in_one_file(void **state) {
    (void)state;
    g_unet = test_small_unet(D, 1000, 1);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    char *dir = test_make_tmpdir("state-parts");
    char path[4200];
    snprintf(path, sizeof path, "%s/pair.safetensors", dir);
    run a, c;
    start(ctx, &a, 1);
    start(ctx, &c, 3);
    step(&a);
    step(&c);
    step(&c);
    ldm_train_state_part saved[2] = {{NULL, a.g, a.opt, a.ema}, {"second.", c.g, c.opt, NULL}};
    assert_status(ldm_train_state_save_parts(path, saved, 2, NULL), LDM_OK);
    float want_a = step(&a), want_c = step(&c);

    run b, d;
    start(ctx, &b, 2);
    start(ctx, &d, 4);
    size_t count;
    ldm_graph_trainable_buf(b.g, &count);
    float *before = flat(ctx, ldm_graph_trainable_buf(b.g, &count), count);
    ldm_train_state_part wrong[2] = {{NULL, b.g, b.opt, b.ema}, {"third.", d.g, d.opt, NULL}};
    assert_status(ldm_train_state_load_parts(path, wrong, 2), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "third.");
    float *after = flat(ctx, ldm_graph_trainable_buf(b.g, &count), count);
    assert_memory_equal(before, after, count * sizeof *before); /* the first part is untouched */
    free(before);
    free(after);
    ldm_train_state_part right[2] = {{NULL, b.g, b.opt, b.ema}, {"second.", d.g, d.opt, NULL}};
    assert_status(ldm_train_state_load_parts(path, right, 2), LDM_OK);
    float got_b = step(&b), got_d = step(&d);
    assert_memory_equal(&got_b, &want_a, sizeof got_b);
    assert_memory_equal(&got_d, &want_c, sizeof got_d);
    stop(&a);
    stop(&b);
    stop(&c);
    stop(&d);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resume_continues_exactly),
        cmocka_unit_test(two_parts_in_one_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
