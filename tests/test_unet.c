/* tests/test_unet.c: the UNet's parameter counts for the reference's configurations (exactly the
 * numbers of REFERENCE.md section 4) and its configuration checks. The forward/backward parity
 * with PyTorch is in test_models. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/checkpoint.h"
#include "ldmcl/safetensors.h"
#include "ldmcl/unet.h"
#include "test_util.h"

static ldm_unet_config mnist(void) {
    ldm_unet_config c = {.im_channels = 3,
                         .down_channels = {128, 256, 256, 256},
                         .n_down = 4,
                         .mid_channels = {256, 256},
                         .n_mid = 2,
                         .attn_down = {1, 1, 1},
                         .time_emb_dim = 256,
                         .norm_channels = 32,
                         .num_heads = 16,
                         .conv_out_channels = 128,
                         .num_down_layers = 2,
                         .num_mid_layers = 2,
                         .num_up_layers = 2,
                         .num_timesteps = 1000};
    return c;
}

static void parameter_counts_match_the_reference(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    struct {
        const char *name;
        size_t want;
    } cases[6] = {{"celebhq_text_cond", 118506500},
                  {"celebhq_text_cond_bert", 120013828},
                  {"celebhq_text_image_cond", 118513466},
                  {"celebhq", 103523076},
                  {"mnist", 19846019},
                  {"mnist_class_cond", 19848579}};
    ldm_unet_config c[6];
    ldm_unet_config_celebhq_text(&c[0]);
    c[1] = c[0];
    c[1].text_embed_dim = 768;
    c[2] = c[0];
    c[2].image_cond_input_channels = 18;
    c[2].image_cond_output_channels = 3;
    c[3] = c[0];
    c[3].text_embed_dim = 0;
    c[4] = mnist();
    c[5] = mnist();
    c[5].num_classes = 10;
    for (int i = 0; i < 6; i++) {
        size_t n = 0;
        assert_status(ldm_unet_param_count(ctx, &c[i], &n), LDM_OK);
        if (n != cases[i].want)
            fail_msg("%s: %zu parameters, the reference has %zu", cases[i].name, n, cases[i].want);
    }
    ldm_ctx_destroy(ctx);
}

static void bad_configs_are_named(void **state) {
    (void)state;
    ldm_unet_config c;
    ldm_unet_config_celebhq_text(&c);
    assert_status(ldm_unet_config_check(&c), LDM_OK);
    c.mid_channels[0] = 512;
    assert_status(ldm_unet_config_check(&c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(),
                    "mid_channels[0] = 512 must equal the last down_channels (768)");
    ldm_unet_config_celebhq_text(&c);
    c.mid_channels[1] = 384;
    assert_status(ldm_unet_config_check(&c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "second-to-last down_channels (512)");
    ldm_unet_config_celebhq_text(&c);
    c.down_channels[1] = 392;
    assert_status(ldm_unet_config_check(&c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "down_channels[1] = 392 is not divisible by norm_channels");
    ldm_unet_config_celebhq_text(&c);
    c.num_heads = 7;
    assert_status(ldm_unet_config_check(&c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "not divisible by num_heads = 7");
    ldm_unet_config_celebhq_text(&c);
    c.time_emb_dim = 511;
    assert_status(ldm_unet_config_check(&c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "time_emb_dim = 511 must be even");

    /* Inputs that do not fit are recording errors. */
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_unet_config_celebhq_text(&c);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(2, 4, 12, 12));
    ldm_tensor *t = ldm_graph_input(g, "t", LDM_SHAPE(2));
    ldm_unet_cond none = {NULL, NULL, NULL};
    assert_null(ldm_unet(g, &c, x, t, &none));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "a 12x12 latent is 3x3 at down block 2 and cannot be halved");
    ldm_graph_destroy(g);
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    x = ldm_graph_input(g, "x", LDM_SHAPE(2, 4, 16, 16));
    t = ldm_graph_input(g, "t", LDM_SHAPE(2));
    assert_null(ldm_unet(g, &c, x, t, &none));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "text conditioning needs a context [2, S, 512]");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

static float *read_all(ldm_safetensors *st, const char *name) {
    const ldm_st_tensor *t = ldm_safetensors_find(st, name);
    if (!t) fail_msg("tensor '%s' missing", name);
    float *v = malloc(t->numel * sizeof *v);
    assert_non_null(v);
    assert_status(ldm_safetensors_read_f32(st, t, v), LDM_OK);
    return v;
}

/* A checkpoint written by the reference repository's own Unet class and converted by
 * tools/convert_reference.py loads by name, strictly, and gives the reference's outputs. */
static void converted_reference_checkpoint_matches(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/converted_unet_io.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *io;
    assert_status(ldm_safetensors_open(path, &io), LDM_OK);
    ldm_unet_config c = test_small_unet(6, 1000, 2);
    assert_contains(ldm_safetensors_metadata(io, "config"), "\"down_channels\": [4, 8, 8]");
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(2, 4, 8, 8));
    ldm_tensor *t = ldm_graph_input(g, "t", LDM_SHAPE(2));
    ldm_tensor *ctxt = ldm_graph_input(g, "context", LDM_SHAPE(2, 5, 6));
    ldm_unet_cond cond = {ctxt, NULL, NULL};
    ldm_tensor *y = ldm_unet(g, &c, x, t, &cond);
    ldm_tensor_keep(y);
    assert_status(ldm_graph_compile(g), LDM_OK);
    snprintf(path, sizeof path, "%s/converted_unet.safetensors", LDMCL_TEST_REF_DIR);
    assert_status(ldm_graph_load(g, path, NULL), LDM_OK); /* strict: every name must match */
    float *hx = read_all(io, "x"), *ht = read_all(io, "t"), *hc = read_all(io, "context");
    float *want = read_all(io, "out"), got[2 * 4 * 8 * 8];
    assert_status(ldm_tensor_write(x, hx), LDM_OK);
    assert_status(ldm_tensor_write(t, ht), LDM_OK);
    assert_status(ldm_tensor_write(ctxt, hc), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(y, got), LDM_OK);
    double num = 0, den = 0, top = 0, worst = 0;
    for (int i = 0; i < 512; i++)
        top = fmax(top, fabs(want[i]));
    for (int i = 0; i < 512; i++) {
        num += (got[i] - want[i]) * (double)(got[i] - want[i]);
        den += (double)want[i] * want[i];
        worst = fmax(worst, fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1e-3 * top));
    }
    print_message(
        "  converted reference checkpoint: output error %.2e norm-wise, %.2e element-wise "
        "(the reference computes its time embedding in float32, ldmcl in double)\n",
        sqrt(num / den), worst);
    assert_true(sqrt(num / den) <= 1e-4);
    free(hx);
    free(ht);
    free(hc);
    free(want);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
    ldm_safetensors_close(io);
}

/* One forward pass of the Fashion-MNIST default's UNet (7x7 latents, attention, text) over a
 * batch of B; params from ldm_graph_init_params(seed 7). */
static void default_unet_forward(ldm_ctx *ctx, int B, const float *hx, const float *ht,
                                 const float *hc, float *out) {
    ldm_unet_config c = {.im_channels = 3,
                         .down_channels = {32, 64, 64},
                         .n_down = 3,
                         .mid_channels = {64, 64},
                         .n_mid = 2,
                         .down_sample = {0, 0},
                         .attn_down = {1, 1},
                         .time_emb_dim = 64,
                         .norm_channels = 16,
                         .num_heads = 4,
                         .conv_out_channels = 32,
                         .num_down_layers = 1,
                         .num_mid_layers = 1,
                         .num_up_layers = 1,
                         .num_timesteps = 1000,
                         .text_embed_dim = 16};
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(B, 3, 7, 7));
    ldm_tensor *t = ldm_graph_input(g, "t", LDM_SHAPE(B));
    ldm_tensor *ctxt = ldm_graph_input(g, "context", LDM_SHAPE(B, 5, 16));
    ldm_unet_cond cond = {ctxt, NULL, NULL};
    ldm_tensor *y = ldm_unet(g, &c, x, t, &cond);
    ldm_tensor_keep(y);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 7, 0), LDM_OK);
    assert_status(ldm_tensor_write(x, hx), LDM_OK);
    assert_status(ldm_tensor_write(t, ht), LDM_OK);
    assert_status(ldm_tensor_write(ctxt, hc), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(y, out), LDM_OK);
    ldm_graph_destroy(g);
}

/* A batch of 16 gives each item what a batch of 1 gives it. */
static void batch_items_are_independent(void **state) {
    (void)state;
    enum { B = 16, X = 3 * 49, CT = 5 * 16 };
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    float *hx = malloc(B * X * sizeof *hx), *hc = malloc(B * CT * sizeof *hc), ht[B];
    float *all = malloc(B * X * sizeof *all), one[X];
    ldm_rng_host(LDM_DIST_NORMAL, B * X, 1, 0, 0, hx);
    ldm_rng_host(LDM_DIST_NORMAL, B * CT, 2, 0, 0, hc);
    for (int b = 0; b < B; b++)
        ht[b] = (float)(37 * b % 1000);
    default_unet_forward(ctx, B, hx, ht, hc, all);
    double worst = 0;
    for (int b = 0; b < B; b++) {
        default_unet_forward(ctx, 1, hx + b * X, ht + b, hc + b * CT, one);
        for (int i = 0; i < X; i++)
            worst = fmax(worst, fabs(one[i] - all[b * X + i]) / (1.0 + fabs(one[i])));
    }
    print_message("  batch 16 vs 16 batches of 1: worst difference %.2e\n", worst);
    assert_true(worst < 1e-4);
    free(hx);
    free(hc);
    free(all);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_items_are_independent),
        cmocka_unit_test(parameter_counts_match_the_reference),
        cmocka_unit_test(bad_configs_are_named),
        cmocka_unit_test(converted_reference_checkpoint_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
