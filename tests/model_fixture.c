/* tests/model_fixture.c: a tiny text-conditioned model folder (UNet, VQ-VAE, CLIP trained from
 * scratch; random weights from fixed seeds) written the way ldmcl-train writes it, for the
 * pipeline's and ldmcl-sample's tests (model_fixture.h). */
#include "model_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* Multiplies every parameter of g by k. */
static void scale_params(ldm_graph *g, float k) {
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        size_t n = ldm_tensor_numel(p);
        float *v = malloc(n * sizeof *v);
        assert_non_null(v);
        assert_status(ldm_tensor_read(p, v), LDM_OK);
        for (size_t j = 0; j < n; j++)
            v[j] *= k;
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
}

void fixture_save_model(ldm_ctx *ctx, const ldm_run_config *c, const char *dir, float unet_k,
                        float ae_k) {
    char path[4300];
    ldm_graph *g;
    /* UNet */
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_unet_cond cond = {ldm_graph_input(g, "ctx", LDM_SHAPE(1, 8, 8)), NULL, NULL};
    if (c->model.unet.image_cond_input_channels) /* a mask-conditioned UNet */
        cond.mask = ldm_graph_input(g, "mask",
                                    LDM_SHAPE(1, c->model.unet.image_cond_input_channels,
                                              c->model.image_cond_h, c->model.image_cond_w));
    int lat = ldm_model_latent_size(&c->model);
    ldm_unet(g, &c->model.unet,
             ldm_graph_input(g, "x", LDM_SHAPE(1, c->model.unet.im_channels, lat, lat)),
             ldm_graph_input(g, "t", LDM_SHAPE(1)), &cond);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 1, 0), LDM_OK);
    if (unet_k != 1.0f) scale_params(g, unet_k);
    snprintf(path, sizeof path, "%s/unet.safetensors", dir);
    assert_status(ldm_graph_save(g, path, NULL), LDM_OK);
    ldm_graph_destroy(g);
    /* autoencoder */
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_ae_encoding enc;
    ldm_autoencoder_decode(g, &c->model.ae,
                           ldm_autoencoder_encode(g, &c->model.ae,
                                                  ldm_graph_input(g, "im", LDM_SHAPE(1, 1, 8, 8)),
                                                  0, NULL, 0, &enc));
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 2, 0), LDM_OK);
    if (ae_k != 1.0f) scale_params(g, ae_k);
    snprintf(path, sizeof path, "%s/autoencoder.safetensors", dir);
    assert_status(ldm_graph_save(g, path, NULL), LDM_OK);
    ldm_graph_destroy(g);
    /* text encoder */
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_clip_text(g, &c->model.clip, ldm_graph_input(g, "ids", LDM_SHAPE(1, 8)), NULL, 0);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 3, 0), LDM_OK);
    snprintf(path, sizeof path, "%s/text_encoder.safetensors", dir);
    assert_status(ldm_graph_save(g, path, NULL), LDM_OK);
    ldm_graph_destroy(g);
}

void fixture_model_ini(char *ini, size_t size, const char *diffusion_extra, const char *ldm_extra,
                       const char *ae_extra) {
    const char *bpe = getenv("LDMCL_CLIP_BPE");
    if (!bpe || !*bpe) bpe = LDMCL_CLIP_BPE_DEFAULT;
    snprintf(ini, size,
             "[dataset]\nresolution = 8\nchannels = 1\n"
             "[diffusion]\nnum_timesteps = 50\n%s"
             "[ldm]\ndown_channels = [8, 8]\nmid_channels = [8, 8]\ndown_sample = [False]\n"
             "attn_down = [True]\ntime_emb_dim = 8\nnorm_channels = 4\nnum_heads = 2\n%s"
             "conv_out_channels = 8\nnum_down_layers = 1\nnum_mid_layers = 1\nnum_up_layers = 1\n"
             "[autoencoder]\nz_channels = 2\ncodebook_size = 4\ndown_channels = [4, 8]\n"
             "mid_channels = [8, 8]\ndown_sample = [True]\nattn_down = [False]\n"
             "norm_channels = 4\nnum_heads = 2\nnum_down_layers = 1\nnum_mid_layers = 1\n"
             "num_up_layers = 1\n%s"
             "[text]\nencoder = clip_scratch\nvocab = %s\nwidth = 8\nlayers = 1\nheads = 2\n"
             "intermediate_size = 16\ncontext_length = 8\n",
             diffusion_extra, ldm_extra, ae_extra, bpe);
}

void fixture_model_folder(ldm_ctx *ctx, const char *dir, const char *diffusion_extra,
                          const char *ldm_extra) {
    char ini[8192], path[4300];
    fixture_model_ini(ini, sizeof ini, diffusion_extra, ldm_extra, "");
    snprintf(path, sizeof path, "%s/model.ini", dir);
    test_write_file(path, ini, strlen(ini));
    ldm_run_config c; /* the model's part, as ldmcl-sample reads it */
    ldm_run_config_init(&c);
    assert_status(ldm_model_config_read(path, &c.model), LDM_OK);
    fixture_save_model(ctx, &c, dir, 1.0f, 1.0f);
}
