/* tests/test_autoencoder.c: parameter counts of the reference's autoencoders and discriminator
 * (exactly the numbers of REFERENCE.md section 4) and of LPIPS's VGG16, their configuration and
 * input checks, and the default initialisation of every parameter. The training step's parity
 * with PyTorch is in test_ae_train. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/autoencoder.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/discriminator.h"
#include "ldmcl/lpips.h"
#include "ldmcl/ops.h"
#include "ldmcl/safetensors.h"
#include "test_util.h"

static void parameter_counts_match_the_reference(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_autoencoder_config c;
    size_t n = 0;
    ldm_autoencoder_config_celebhq(&c, LDM_AE_VQVAE);
    assert_status(ldm_autoencoder_param_count(ctx, &c, &n), LDM_OK);
    assert_int_equal(n, 21994479);
    ldm_autoencoder_config_celebhq(&c, LDM_AE_VAE);
    assert_status(ldm_autoencoder_param_count(ctx, &c, &n), LDM_OK);
    assert_int_equal(n, 21970983);
    ldm_autoencoder_config_mnist(&c, LDM_AE_VQVAE);
    assert_status(ldm_autoencoder_param_count(ctx, &c, &n), LDM_OK);
    assert_int_equal(n, 2482392);
    ldm_autoencoder_config_mnist(&c, LDM_AE_VAE);
    assert_status(ldm_autoencoder_param_count(ctx, &c, &n), LDM_OK);
    assert_int_equal(n, 2485821);
    ldm_discriminator_config d;
    ldm_discriminator_config_default(&d, 3);
    assert_status(ldm_discriminator_param_count(ctx, &d, &n), LDM_OK);
    assert_int_equal(n, 663360);
    ldm_discriminator_config_default(&d, 1);
    assert_status(ldm_discriminator_param_count(ctx, &d, &n), LDM_OK);
    assert_int_equal(n, 661312);
    ldm_ctx_destroy(ctx);
}

/* VGG16's 13 convs (14,714,688) and the 1,472 lin weights; the scaling layer is a constant. */
static void lpips_has_vgg16_and_its_linear_layers(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_lpips_config c;
    ldm_lpips_config_default(&c);
    ldm_tensor *a = ldm_graph_input(g, "a", LDM_SHAPE(1, 3, 16, 16));
    ldm_tensor *b = ldm_graph_input(g, "b", LDM_SHAPE(1, 3, 16, 16));
    assert_non_null(ldm_lpips(g, &c, a, b, "lpips."));
    size_t vgg = 0, lin = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        const char *name = ldm_tensor_name(t);
        if (!strncmp(name, "lpips.net.", 10))
            vgg += ldm_tensor_numel(t);
        else if (!strncmp(name, "lpips.lin", 9))
            lin += ldm_tensor_numel(t);
        else
            fail_msg("unexpected parameter %s", name);
    }
    assert_int_equal(vgg, 14714688);
    assert_int_equal(lin, 1472);
    assert_non_null(ldm_graph_find(g, "lpips.net.slice5.28.bias"));
    assert_non_null(ldm_graph_find(g, "lpips.lin4.model.1.weight"));
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

static void expect_config_error(const ldm_autoencoder_config *c, const char *what) {
    assert_status(ldm_autoencoder_config_check(c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), what);
}

static void bad_configs_name_the_key(void **state) {
    (void)state;
    ldm_autoencoder_config c;
    ldm_autoencoder_config_mnist(&c, LDM_AE_VQVAE);
    assert_status(ldm_autoencoder_config_check(&c), LDM_OK);
    c.mid_channels[1] = 64;
    expect_config_error(&c, "the last mid_channels (64) must equal the last down_channels (128)");
    ldm_autoencoder_config_mnist(&c, LDM_AE_VQVAE);
    c.down_channels[1] = 48;
    expect_config_error(&c, "down_channels[1] = 48 is not divisible by norm_channels = 32");
    ldm_autoencoder_config_mnist(&c, LDM_AE_VQVAE);
    c.num_heads = 3;
    expect_config_error(&c, "mid_channels[0] = 128 is not divisible by num_heads = 3");
    ldm_autoencoder_config_mnist(&c, LDM_AE_VQVAE);
    c.codebook_size = 0;
    expect_config_error(&c, "codebook_size = 0");
    ldm_autoencoder_config_mnist(&c, LDM_AE_VAE);
    c.codebook_size = 0; /* the VAE has no codebook */
    assert_status(ldm_autoencoder_config_check(&c), LDM_OK);
    c.n_down = 1;
    expect_config_error(&c, "down_channels needs 2 to 8 entries, has 1");
}

static void images_that_cannot_be_halved_are_an_error(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_autoencoder_config c;
    ldm_autoencoder_config_mnist(&c, LDM_AE_VQVAE);
    ldm_tensor *x = ldm_graph_input(g, "images", LDM_SHAPE(2, 1, 26, 26));
    ldm_ae_encoding enc;
    assert_null(ldm_autoencoder_encode(g, &c, x, 0, NULL, 0, &enc));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "26x26 images are 13x13 at encoder layer 1");
    ldm_graph_destroy(g);
    assert_int_equal(ldm_autoencoder_latent_size(&c, 28), 7);

    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    x = ldm_graph_input(g, "images", LDM_SHAPE(2, 3, 28, 28));
    assert_null(ldm_autoencoder_encode(g, &c, x, 0, NULL, 0, &enc));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "images 'images' [2, 3, 28, 28] must be [N, 1, H, W]");
    ldm_graph_destroy(g);

    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_discriminator_config d;
    ldm_discriminator_config_default(&d, 1);
    x = ldm_graph_input(g, "images", LDM_SHAPE(2, 1, 8, 8));
    assert_null(ldm_discriminator(g, &d, x, NULL, 1, NULL));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "are too small: layer 3 gets 1x1");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

static float *read_param(ldm_graph *g, const char *name, size_t *n) {
    ldm_tensor *p = ldm_graph_find(g, name);
    if (!p) fail_msg("no parameter %s", name);
    *n = ldm_tensor_numel(p);
    float *v = malloc(*n * sizeof *v);
    assert_non_null(v);
    assert_status(ldm_tensor_read(p, v), LDM_OK);
    return v;
}

/* Every parameter of the autoencoders, the discriminator and the UNet variants has PyTorch's
 * default initialisation rule; spot checks of the values; a parameter without one is an error. */
static void parameters_get_pytorchs_initialisation(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_autoencoder_config c;
    ldm_autoencoder_config_mnist(&c, LDM_AE_VQVAE);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, 1, 28, 28));
    ldm_ae_encoding enc;
    ldm_autoencoder_decode(g, &c, ldm_autoencoder_encode(g, &c, x, 0, NULL, 0, &enc));
    ldm_discriminator_config d;
    ldm_discriminator_config_default(&d, 1);
    ldm_discriminator(g, &d, x, "disc.", 1, NULL);
    ldm_unet_config u = test_small_unet(6, 1000, 1);
    u.num_classes = 3;
    u.image_cond_input_channels = 5;
    u.image_cond_output_channels = 2;
    ldm_unet_cond cond = {ldm_graph_input(g, "ctx", LDM_SHAPE(1, 3, 6)),
                          ldm_graph_input(g, "cls", LDM_SHAPE(1, 3)),
                          ldm_graph_input(g, "mask", LDM_SHAPE(1, 5, 8, 8))};
    ldm_unet(g, &u, ldm_graph_input(g, "z", LDM_SHAPE(1, 4, 8, 8)),
             ldm_graph_input(g, "t", LDM_SHAPE(1)), &cond);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 42, 0), LDM_OK);
    size_t n;
    float *v = read_param(g, "encoder_conv_in.weight", &n); /* fan-in 9: +-1/3 */
    float top = 0;
    for (size_t i = 0; i < n; i++)
        top = fmaxf(top, fabsf(v[i]));
    assert_true(top <= 1.0f / 3.0f && top > 0.3f);
    free(v);
    v = read_param(g, "encoder_mids.0.attentions.0.in_proj_bias", &n);
    for (size_t i = 0; i < n; i++)
        assert_true(v[i] == 0.0f);
    free(v);
    v = read_param(g, "disc.layers.1.1.running_var", &n);
    for (size_t i = 0; i < n; i++)
        assert_true(v[i] == 1.0f);
    free(v);
    v = read_param(g, "embedding.weight", &n); /* N(0, 1) */
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i], ss += (double)v[i] * v[i];
    assert_true(fabs(s / (double)n) < 0.5 && fabs(ss / (double)n - 1.0) < 0.5);
    free(v);
    /* The same seed gives the same values; a parameter keeps its values whatever else exists. */
    float first = 0, again = 0;
    v = read_param(g, "class_emb.weight", &n);
    first = v[0];
    free(v);
    assert_status(ldm_graph_init_params(g, 42, 0), LDM_OK);
    v = read_param(g, "class_emb.weight", &n);
    again = v[0];
    free(v);
    assert_true(first == again);
    ldm_graph_destroy(g);

    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *w = ldm_graph_param(g, "mystery.weight", LDM_SHAPE(3, 2));
    ldm_tensor_keep(ldm_linear(g, ldm_graph_input(g, "x", LDM_SHAPE(1, 2)), w, NULL));
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 1, 0), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "parameter 'mystery.weight' has no initialisation rule");
    assert_status(ldm_graph_init_params(g, 1, 1), LDM_OK);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

static ldm_autoencoder_config converted_config(void) {
    ldm_autoencoder_config c = {.kind = LDM_AE_VQVAE,
                                .im_channels = 1,
                                .z_channels = 3,
                                .codebook_size = 6,
                                .down_channels = {4, 8, 8},
                                .n_down = 3,
                                .mid_channels = {8, 8},
                                .n_mid = 2,
                                .down_sample = {1, 1},
                                .attn_down = {0, 1},
                                .norm_channels = 2,
                                .num_heads = 2,
                                .num_down_layers = 1,
                                .num_mid_layers = 1,
                                .num_up_layers = 1};
    return c;
}

static void expect_close(const char *what, const float *got, const float *want, size_t n,
                         double tol) {
    double e = test_norm_err(got, want, n);
    printf("  converted reference %-20s %.2e norm-wise\n", what, e);
    if (e > tol) fail_msg("%s off by %.3g (norm-wise)", what, e);
}

/* A VQVAE and a Discriminator written by the reference's own classes (random weights), converted
 * by tools/convert_reference.py: the same quantized latents, codebook choices, reconstructions
 * and patch logits as the reference computes. */
static void converted_reference_autoencoder_computes_as_the_reference(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/converted_autoencoder_io.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *io;
    assert_status(ldm_safetensors_open(path, &io), LDM_OK);
    float *images = test_st_load(io, "images", NULL, NULL);
    float *want_latent = test_st_load(io, "latent", NULL, NULL);
    float *want_idx = test_st_load(io, "indices", NULL, NULL);
    float *want_out = test_st_load(io, "out", NULL, NULL);
    float *want_logits = test_st_load(io, "disc_logits", NULL, NULL);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_autoencoder_config c = converted_config();
    ldm_ae_codec *k;
    assert_status(ldm_ae_codec_create(ctx, &c, 2, 16, 16, 0, 0, &k), LDM_OK);
    snprintf(path, sizeof path, "%s/converted_vqvae.safetensors", LDMCL_TEST_REF_DIR);
    assert_status(ldm_ae_codec_load(k, path), LDM_OK);
    float latent[2 * 3 * 4 * 4], idx[2 * 4 * 4], out[2 * 16 * 16];
    assert_status(ldm_ae_codec_encode(k, images, latent, idx), LDM_OK);
    assert_memory_equal(idx, want_idx, sizeof idx);
    expect_close("latent", latent, want_latent, 2 * 3 * 4 * 4, 1e-5);
    assert_status(ldm_ae_codec_decode(k, latent, out), LDM_OK);
    expect_close("reconstruction", out, want_out, 2 * 16 * 16, 1e-5);
    /* The discriminator's file is not an autoencoder. */
    snprintf(path, sizeof path, "%s/converted_discriminator.safetensors", LDMCL_TEST_REF_DIR);
    assert_status(ldm_ae_codec_load(k, path), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(),
                    "13 tensors that are not the autoencoder's (layers.0.0.weight");
    ldm_ae_codec_destroy(k);

    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_discriminator_config d = {.im_channels = 1, .conv_channels = {4, 8, 8}, .n_conv = 3};
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(2, 1, 16, 16));
    ldm_tensor *logits = ldm_discriminator(g, &d, x, NULL, 1, NULL);
    ldm_tensor_keep(logits);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_load(g, path, NULL), LDM_OK);
    assert_status(ldm_tensor_write(x, images), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    float got_logits[2];
    assert_int_equal(ldm_tensor_numel(logits), 2);
    assert_status(ldm_tensor_read(logits, got_logits), LDM_OK);
    expect_close("discriminator logits", got_logits, want_logits, 2, 1e-5);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
    free(images);
    free(want_latent);
    free(want_idx);
    free(want_out);
    free(want_logits);
    ldm_safetensors_close(io);
}

/* tools/convert_lpips.py's output for a small VGG16-layout network loads under "lpips." and gives
 * PyTorch's LPIPS distances and their gradients (tests/ref/lpips.safetensors), for one- and
 * three-channel images. */
static void converted_lpips_matches_pytorch(void **state) {
    (void)state;
    char path[4096], key[64];
    snprintf(path, sizeof path, "%s/lpips.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *ref;
    assert_status(ldm_safetensors_open(path, &ref), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_lpips_config c = {{4, 6, 8, 8, 8}};
    for (int ch = 1; ch <= 3; ch += 2) {
        ldm_graph *g;
        assert_status(ldm_graph_create(ctx, &g), LDM_OK);
        ldm_tensor *a = ldm_graph_input(g, "a", LDM_SHAPE(2, ch, 16, 16));
        ldm_tensor *b = ldm_graph_input(g, "b", LDM_SHAPE(2, ch, 16, 16));
        ldm_tensor *dy = ldm_graph_input(g, "dy", LDM_SHAPE(1));
        ldm_tensor_set_requires_grad(a, 1);
        ldm_tensor *d = ldm_lpips(g, &c, a, b, "lpips.");
        ldm_tensor_keep(d);
        assert_status(ldm_graph_backward_seeded(g, d, dy), LDM_OK);
        assert_status(ldm_graph_compile(g), LDM_OK);
        snprintf(path, sizeof path, "%s/converted_lpips.safetensors", LDMCL_TEST_REF_DIR);
        ldm_load_options o = {.graph_prefix = "lpips."};
        assert_status(ldm_graph_load(g, path, &o), LDM_OK);
        const char *names[3] = {"in.a", "in.b", "dy"};
        ldm_tensor *ins[3] = {a, b, dy};
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof key, "lpips_%dch.%s", ch, names[i]);
            float *v = test_st_load(ref, key, NULL, NULL);
            assert_status(ldm_tensor_write(ins[i], v), LDM_OK);
            free(v);
        }
        assert_status(ldm_graph_zero_grads(g), LDM_OK);
        assert_status(ldm_graph_run(g), LDM_OK);
        float got, ga[2 * 3 * 256];
        assert_status(ldm_tensor_read(d, &got), LDM_OK);
        assert_status(ldm_tensor_read(ldm_tensor_grad(a), ga), LDM_OK);
        snprintf(key, sizeof key, "lpips_%dch.out", ch);
        float *want = test_st_load(ref, key, NULL, NULL);
        snprintf(key, sizeof key, "lpips_%dch.grad.a", ch);
        float *want_ga = test_st_load(ref, key, NULL, NULL);
        double e = test_rel_err(&got, want, NULL, 1);
        double eg = test_norm_err(ga, want_ga, (size_t)(2 * ch * 256));
        printf("  LPIPS %d-channel: distance %.6f (PyTorch %.6f), error %.2e; gradient %.2e "
               "norm-wise\n",
               ch, got, want[0], e, eg);
        assert_true(e <= 1e-4 && eg <= 1e-4);
        free(want);
        free(want_ga);
        ldm_graph_destroy(g);
    }
    ldm_ctx_destroy(ctx);
    ldm_safetensors_close(ref);
}

/* Images 0 and 1 of the converted reference's inputs, then image 0 again; an error at index 9. */
static ldm_status three_images(void *user, size_t index, float *image) {
    const float *images = user;
    if (index == 9) return ldm_set_error(LDM_ERR_FORMAT, "image 9 is unreadable");
    memcpy(image, images + (index % 2) * 256, 256 * sizeof *image);
    return LDM_OK;
}

/* A dataset encoded to a latent file in batches (the last one padded) holds what encoding each
 * batch gives; a failing image source writes nothing. */
static void dataset_encodes_to_a_latent_file(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/converted_autoencoder_io.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *io;
    assert_status(ldm_safetensors_open(path, &io), LDM_OK);
    float *images = test_st_load(io, "images", NULL, NULL);
    ldm_safetensors_close(io);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_autoencoder_config c = converted_config();
    ldm_ae_codec *k;
    assert_status(ldm_ae_codec_create(ctx, &c, 2, 16, 16, 0, 0, &k), LDM_OK);
    snprintf(path, sizeof path, "%s/converted_vqvae.safetensors", LDMCL_TEST_REF_DIR);
    assert_status(ldm_ae_codec_load(k, path), LDM_OK);
    float want[2 * 48];
    assert_status(ldm_ae_codec_encode(k, images, want, NULL), LDM_OK);
    char *dir = test_make_tmpdir("latents");
    char out[4200];
    snprintf(out, sizeof out, "%s/latents.safetensors", dir);
    const char *meta[] = {"source", "test", NULL};
    assert_status(ldm_ae_encode_dataset(k, 3, three_images, images, out, meta), LDM_OK);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(out, &st), LDM_OK);
    int ndim, shape[4];
    float *got = test_st_load(st, "latents", &ndim, shape);
    assert_int_equal(ndim, 4);
    assert_true(shape[0] == 3 && shape[1] == 3 && shape[2] == 4 && shape[3] == 4);
    assert_memory_equal(got, want, 2 * 48 * sizeof *got);
    assert_memory_equal(got + 2 * 48, want, 48 * sizeof *got);
    assert_string_equal(ldm_safetensors_metadata(st, "ldmcl.latent_count"), "3");
    assert_string_equal(ldm_safetensors_metadata(st, "source"), "test");
    ldm_safetensors_close(st);
    free(got);
    snprintf(out, sizeof out, "%s/broken.safetensors", dir);
    assert_status(ldm_ae_encode_dataset(k, 12, three_images, images, out, NULL), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "image 9 is unreadable");
    assert_false(test_file_exists(out));
    ldm_ae_codec_destroy(k);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
    free(images);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parameter_counts_match_the_reference),
        cmocka_unit_test(lpips_has_vgg16_and_its_linear_layers),
        cmocka_unit_test(bad_configs_name_the_key),
        cmocka_unit_test(images_that_cannot_be_halved_are_an_error),
        cmocka_unit_test(parameters_get_pytorchs_initialisation),
        cmocka_unit_test(converted_reference_autoencoder_computes_as_the_reference),
        cmocka_unit_test(dataset_encodes_to_a_latent_file),
        cmocka_unit_test(converted_lpips_matches_pytorch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
