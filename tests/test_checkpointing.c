/* tests/test_checkpointing.c: gradient checkpointing (ldm_graph_set_checkpointing): a training
 * step of ldmcl's UNet (tests/model_fixture.h's, with attention and text) and of the tiny SD 1.x
 * UNet (tests/ref/sd/), recorded twice from the same weights and inputs, plain and with the
 * blocks recomputed in backward, gives the same loss and every gradient bit for bit (also with
 * LoRA adapters, which then recompute too) while the planned activations shrink; unbalanced
 * segments are recording errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_fixture.h"
#include "sd_fixture.h"
#include "test_util.h"

typedef struct step_graph {
    ldm_graph *g;
    ldm_tensor *in[4], *loss;
} step_graph;

/* in[0..2]: x, t, context; in[3]: the target. */
typedef ldm_tensor *(*record_fn)(ldm_graph *g, const void *cfg, ldm_tensor **in);

static ldm_tensor *record_ldmcl(ldm_graph *g, const void *cfg, ldm_tensor **in) {
    ldm_unet_cond cond = {.context = in[2]};
    return ldm_unet(g, cfg, in[0], in[1], &cond);
}

static ldm_tensor *record_sd(ldm_graph *g, const void *cfg, ldm_tensor **in) {
    return ldm_sd_unet(g, cfg, in[0], in[1], in[2]);
}

static void make_step(ldm_ctx *ctx, int checkpointing, const ldm_lora_config *lora, const void *cfg,
                      record_fn rec, const int shapes[4][4], step_graph *s) {
    assert_status(ldm_graph_create(ctx, &s->g), LDM_OK);
    ldm_graph_set_checkpointing(s->g, checkpointing);
    assert_int_equal(ldm_graph_checkpointing(s->g), checkpointing);
    if (lora) ldm_graph_set_lora(s->g, lora);
    const char *names[4] = {"x", "t", "context", "target"};
    for (int i = 0; i < 4; i++) {
        int nd = 0;
        while (nd < 4 && shapes[i][nd])
            nd++;
        s->in[i] = ldm_graph_input(s->g, names[i], nd, shapes[i]);
    }
    s->loss = ldm_mse_loss(s->g, rec(s->g, cfg, s->in), s->in[3]);
    ldm_tensor_keep(s->loss);
    for (size_t i = 0; lora && i < ldm_graph_param_count(s->g); i++) {
        ldm_tensor *p = ldm_graph_param_at(s->g, i);
        ldm_tensor_set_trainable(p, ldm_lora_is_adapter(ldm_tensor_name(p)));
    }
    assert_status(ldm_graph_backward(s->g, s->loss), LDM_OK);
    assert_status(ldm_graph_compile(s->g), LDM_OK);
    assert_status(ldm_graph_init_params(s->g, 7, 0), LDM_OK);
    for (size_t i = 0; lora && i < ldm_graph_param_count(s->g); i++) {
        ldm_tensor *p = ldm_graph_param_at(s->g, i); /* lora_up nonzero: gradients everywhere */
        if (!strstr(ldm_tensor_name(p), ".lora_up.")) continue;
        size_t n = ldm_tensor_numel(p);
        float *v = malloc(n * sizeof *v);
        for (size_t k = 0; k < n; k++)
            v[k] = 0.01f * (float)((k * 7) % 13) - 0.06f;
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
    for (int i = 0; i < 4; i++) {
        size_t n = ldm_tensor_numel(s->in[i]);
        float *v = malloc(n * sizeof *v);
        for (size_t k = 0; k < n; k++)
            v[k] = i == 1 ? (float)(3 + 11 * k) : 0.1f * (float)((k * (5 + i)) % 17) - 0.8f;
        assert_status(ldm_tensor_write(s->in[i], v), LDM_OK);
        free(v);
    }
    assert_status(ldm_graph_run(s->g), LDM_OK);
}

/* The same step plain and checkpointed: the same loss and gradients, bit for bit; less memory. */
static void check_same(const char *what, const void *cfg, record_fn rec, const int shapes[4][4],
                       const ldm_lora_config *lora) {
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    step_graph a, b;
    make_step(ctx, 0, lora, cfg, rec, shapes, &a);
    make_step(ctx, 1, lora, cfg, rec, shapes, &b);
    float la, lb;
    assert_status(ldm_tensor_read(a.loss, &la), LDM_OK);
    assert_status(ldm_tensor_read(b.loss, &lb), LDM_OK);
    assert_true(la == lb);
    assert_int_equal(ldm_graph_param_count(a.g), ldm_graph_param_count(b.g));
    int compared = 0;
    for (size_t i = 0; i < ldm_graph_param_count(a.g); i++) {
        ldm_tensor *pa = ldm_graph_param_at(a.g, i), *pb = ldm_graph_param_at(b.g, i);
        assert_string_equal(ldm_tensor_name(pa), ldm_tensor_name(pb));
        ldm_tensor *ga = ldm_tensor_grad(pa), *gb = ldm_tensor_grad(pb);
        assert_int_equal(ga != NULL, gb != NULL);
        if (!ga) continue;
        size_t n = ldm_tensor_numel(pa);
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        assert_status(ldm_tensor_read(ga, x), LDM_OK);
        assert_status(ldm_tensor_read(gb, y), LDM_OK);
        if (memcmp(x, y, n * sizeof *x))
            fail_msg("%s: the gradient of %s differs", what, ldm_tensor_name(pa));
        free(x);
        free(y);
        compared++;
    }
    assert_true(compared > 10);
    ldm_graph_memory ma = ldm_graph_memory_report(a.g), mb = ldm_graph_memory_report(b.g);
    print_message("  %s: loss %.6g both ways, %d gradients bit for bit; planned activations "
                  "%.1f KiB plain, %.1f KiB checkpointed; %zu against %zu backward steps\n",
                  what, (double)la, compared, (double)ma.activation_bytes / 1024,
                  (double)mb.activation_bytes / 1024, ma.n_backward_steps, mb.n_backward_steps);
    assert_true(mb.activation_bytes < ma.activation_bytes);
    assert_true(mb.n_backward_steps > ma.n_backward_steps); /* the recomputed forwards */
    ldm_graph_destroy(a.g);
    ldm_graph_destroy(b.g);
    ldm_ctx_destroy(ctx);
}

static void ldmcl_unet(ldm_unet_config *u, int *ctx_len) {
    char dir_ini[4096];
    char *dir = test_make_tmpdir("ckpt");
    snprintf(dir_ini, sizeof dir_ini, "%s/model.ini", dir);
    char ini[8192];
    fixture_model_ini(ini, sizeof ini, "", "", "");
    test_write_file(dir_ini, ini, strlen(ini));
    ldm_model_config m;
    assert_status(ldm_model_config_read(dir_ini, &m), LDM_OK);
    *u = m.unet;
    *ctx_len = m.context_length;
    test_rmtree(dir);
    free(dir);
}

static void ldmcl_unet_step_is_the_same(void **state) {
    (void)state;
    ldm_unet_config u;
    int L;
    ldmcl_unet(&u, &L);
    const int shapes[4][4] = {
        {2, u.im_channels, 8, 8}, {2}, {2, L, u.text_embed_dim}, {2, u.im_channels, 8, 8}};
    check_same("ldmcl UNet", &u, record_ldmcl, shapes, NULL);
    ldm_lora_config lc = {.rank = 2, .alpha = 3};
    assert_status(ldm_lora_targets_parse("all_linear+conv", &lc.targets), LDM_OK);
    check_same("ldmcl UNet, LoRA", &u, record_ldmcl, shapes, &lc);
}

static void sd_unet_step_is_the_same(void **state) {
    (void)state;
    char path[4096];
    sd_fixture_model_path("sd1", "single", path, sizeof path);
    ldm_sd_model m;
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    const ldm_sd_unet_config *u = &m.unet;
    int f = 1 << (u->n_levels - 1);
    const int shapes[4][4] = {{1, u->in_channels, 2 * f, 2 * f},
                              {1},
                              {1, 4, u->context_dim},
                              {1, u->out_channels, 2 * f, 2 * f}};
    check_same("SD UNet", u, record_sd, shapes, NULL);
}

static void unbalanced_segments_are_errors(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_graph_segment_begin(g); /* off: nothing happens */
    ldm_graph_segment_end(g);
    ldm_graph_segment_end(g);
    ldm_graph_set_checkpointing(g, 1);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(4));
    ldm_tensor_set_requires_grad(x, 1);
    ldm_graph_segment_begin(g);
    ldm_tensor *y = ldm_mul(g, x, x);
    assert_status(ldm_graph_backward(g, ldm_sum(g, y)), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "began and never ended");
    ldm_graph_destroy(g);
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_graph_set_checkpointing(g, 1);
    ldm_graph_segment_end(g);
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "ended that never began");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ldmcl_unet_step_is_the_same),
        cmocka_unit_test(sd_unet_step_is_the_same),
        cmocka_unit_test(unbalanced_segments_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
