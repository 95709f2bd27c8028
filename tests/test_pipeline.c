/* tests/test_pipeline.c: text to image from a model folder: a tiny text-conditioned model
 * (UNet, VQ-VAE, CLIP trained from scratch; random weights) written the way ldmcl-train writes
 * it, generated with DDIM and guidance: reproducible for a seed, different for another, a batch
 * of finite images; a missing file or a prompt that is not UTF-8 is named. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ldmcl/ldmcl.h"
#include "test_util.h"

static char g_dir[4096];

static void save_model(ldm_ctx *ctx, const ldm_run_config *c) {
    char path[4300];
    ldm_graph *g;
    /* UNet */
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_unet_cond cond = {ldm_graph_input(g, "ctx", LDM_SHAPE(1, 8, 8)), NULL, NULL};
    ldm_unet(g, &c->unet, ldm_graph_input(g, "x", LDM_SHAPE(1, 2, 4, 4)),
             ldm_graph_input(g, "t", LDM_SHAPE(1)), &cond);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 1, 0), LDM_OK);
    snprintf(path, sizeof path, "%s/unet.safetensors", g_dir);
    assert_status(ldm_graph_save(g, path, NULL), LDM_OK);
    ldm_graph_destroy(g);
    /* autoencoder */
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_ae_encoding enc;
    ldm_autoencoder_decode(g, &c->ae,
                           ldm_autoencoder_encode(g, &c->ae,
                                                  ldm_graph_input(g, "im", LDM_SHAPE(1, 1, 8, 8)),
                                                  0, NULL, 0, &enc));
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 2, 0), LDM_OK);
    snprintf(path, sizeof path, "%s/autoencoder.safetensors", g_dir);
    assert_status(ldm_graph_save(g, path, NULL), LDM_OK);
    ldm_graph_destroy(g);
    /* text encoder */
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_clip_text(g, &c->clip, ldm_graph_input(g, "ids", LDM_SHAPE(1, 8)), NULL, 0);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 3, 0), LDM_OK);
    snprintf(path, sizeof path, "%s/text_encoder.safetensors", g_dir);
    assert_status(ldm_graph_save(g, path, NULL), LDM_OK);
    ldm_graph_destroy(g);
}

static void generates_from_a_model_folder(void **state) {
    (void)state;
    const char *bpe = getenv("LDMCL_CLIP_BPE");
    if (!bpe || !*bpe) bpe = LDMCL_CLIP_BPE_DEFAULT;
    char ini[8192], path[4300];
    snprintf(ini, sizeof ini,
             "[dataset]\nresolution = 8\nchannels = 1\n"
             "[diffusion]\nnum_timesteps = 50\n"
             "[ldm]\ndown_channels = [8, 8]\nmid_channels = [8, 8]\ndown_sample = [False]\n"
             "attn_down = [True]\ntime_emb_dim = 8\nnorm_channels = 4\nnum_heads = 2\n"
             "conv_out_channels = 8\nnum_down_layers = 1\nnum_mid_layers = 1\nnum_up_layers = 1\n"
             "[autoencoder]\nz_channels = 2\ncodebook_size = 4\ndown_channels = [4, 8]\n"
             "mid_channels = [8, 8]\ndown_sample = [True]\nattn_down = [False]\n"
             "norm_channels = 4\nnum_heads = 2\nnum_down_layers = 1\nnum_mid_layers = 1\n"
             "num_up_layers = 1\n"
             "[text]\nencoder = clip_scratch\nvocab = %s\nwidth = 8\nlayers = 1\nheads = 2\n"
             "intermediate_size = 16\ncontext_length = 8\n",
             bpe);
    snprintf(path, sizeof path, "%s/model.ini", g_dir);
    test_write_file(path, ini, strlen(ini));
    ldm_run_config c;
    assert_status(ldm_run_config_read(path, &c), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    save_model(ctx, &c);

    ldm_pipeline_options o = {
        .method = LDM_SAMPLER_DDIM, .steps = 5, .guidance_scale = 2.0f, .batch = 2};
    ldm_pipeline *p;
    assert_status(ldm_pipeline_open(ctx, g_dir, &o, &p), LDM_OK);
    float a[2 * 64], b[2 * 64], d[2 * 64];
    assert_status(ldm_pipeline_generate(p, "a photo of a sneaker", NULL, 7, a), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a photo of a sneaker", NULL, 7, b), LDM_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_status(ldm_pipeline_generate(p, "a photo of a sneaker", "a bag", 8, d), LDM_OK);
    assert_true(memcmp(a, d, sizeof a) != 0);
    for (int i = 0; i < 2 * 64; i++)
        assert_true(isfinite(a[i]));
    assert_true(memcmp(a, a + 64, 64 * sizeof *a) != 0); /* a batch draws one noise per image */
    assert_status(ldm_pipeline_generate(p, "bad \xc3", NULL, 7, a), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "the prompt: ");
    assert_contains(ldm_last_error(), "byte offset 4");
    ldm_pipeline_destroy(p);

    snprintf(path, sizeof path, "%s/autoencoder.safetensors", g_dir);
    assert_int_equal(unlink(path), 0);
    assert_status(ldm_pipeline_open(ctx, g_dir, &o, &p), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "autoencoder.safetensors");
    ldm_ctx_destroy(ctx);
}

static int setup(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("model");
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    free(dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generates_from_a_model_folder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
