/* src/sample/sd_codec.c: Stable Diffusion's VAE for inference (see ldmcl/sd_model.h): one recorded
 * encoder and one decoder over the same weights, latents scaled by the model's scaling factor. */
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/sd_model.h"

struct ldm_sd_codec {
    ldm_sd_vae_config cfg;
    int batch, height, width, lat_h, lat_w;
    ldm_graph *enc, *dec;
    ldm_tensor *images, *mean, *latents, *decoded;
    float *scaled; /* latents / scaling_factor */
};

void ldm_sd_codec_destroy(ldm_sd_codec *k) {
    if (!k) return;
    ldm_graph_destroy(k->dec);
    ldm_graph_destroy(k->enc);
    free(k->scaled);
    free(k);
}

ldm_status ldm_sd_codec_create(ldm_ctx *ctx, const ldm_sd_model *m, int batch, int height,
                               int width, ldm_sd_codec **out) {
    *out = NULL;
    const ldm_sd_vae_config *c = &m->vae;
    int f = 1 << (c->n_levels - 1);
    if (batch < 1 || height < f || width < f || height % f || width % f)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "SD VAE: batch %d of %dx%d images (sides multiples of %d)", batch, width,
                        height, f);
    ldm_sd_codec *k = calloc(1, sizeof *k);
    if (!k) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    *k = (ldm_sd_codec){.cfg = *c,
                        .batch = batch,
                        .height = height,
                        .width = width,
                        .lat_h = height / f,
                        .lat_w = width / f};
    k->scaled = malloc((size_t)batch * c->embed_dim * k->lat_h * k->lat_w * sizeof *k->scaled);
    ldm_status st = k->scaled ? ldm_graph_create(ctx, &k->enc)
                              : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (st == LDM_OK) {
        k->images =
            ldm_graph_input(k->enc, "images", LDM_SHAPE(batch, c->in_channels, height, width));
        k->mean = ldm_sd_vae_encode(k->enc, c, k->images, NULL);
        if (k->mean) ldm_tensor_keep(k->mean);
        st = ldm_graph_create_in(ctx, ldm_graph_params(k->enc), &k->dec);
    }
    if (st == LDM_OK) {
        k->latents =
            ldm_graph_input(k->dec, "latents", LDM_SHAPE(batch, c->embed_dim, k->lat_h, k->lat_w));
        k->decoded = ldm_sd_vae_decode(k->dec, c, k->latents);
        if (k->decoded) ldm_tensor_keep(k->decoded);
        for (size_t i = 0; i < ldm_graph_param_count(k->dec); i++)
            ldm_tensor_set_trainable(ldm_graph_param_at(k->dec, i), 0);
        for (size_t i = 0; i < ldm_graph_param_count(k->enc); i++)
            ldm_tensor_set_trainable(ldm_graph_param_at(k->enc, i), 0);
        st = ldm_graph_compile(k->enc);
    }
    if (st == LDM_OK) st = ldm_graph_compile(k->dec);
    if (st == LDM_OK) st = ldm_sd_load_vae(m, k->enc);
    if (st == LDM_OK) st = ldm_sd_load_vae(m, k->dec);
    if (st != LDM_OK) {
        ldm_sd_codec_destroy(k);
        return st;
    }
    *out = k;
    return LDM_OK;
}

static size_t latent_count(const ldm_sd_codec *k) {
    return (size_t)k->batch * k->cfg.embed_dim * k->lat_h * k->lat_w;
}

ldm_status ldm_sd_codec_encode(ldm_sd_codec *k, const float *images, float *latents) {
    LDM_TRY(ldm_tensor_write(k->images, images));
    LDM_TRY(ldm_graph_run(k->enc));
    LDM_TRY(ldm_tensor_read(k->mean, latents));
    size_t n = latent_count(k);
    for (size_t i = 0; i < n; i++)
        latents[i] *= k->cfg.scaling_factor;
    return LDM_OK;
}

ldm_status ldm_sd_codec_decode(ldm_sd_codec *k, const float *latents, float *images) {
    size_t n = latent_count(k);
    for (size_t i = 0; i < n; i++)
        k->scaled[i] = latents[i] / k->cfg.scaling_factor;
    LDM_TRY(ldm_tensor_write(k->latents, k->scaled));
    LDM_TRY(ldm_graph_run(k->dec));
    return ldm_tensor_read(k->decoded, images);
}
