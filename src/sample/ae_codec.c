/* src/sample/ae_codec.c: an autoencoder for inference, encoding and decoding batches, and
 * encoding a dataset into a latent file (see ldmcl/autoencoder.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/autoencoder.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/safetensors.h"

struct ldm_ae_codec {
    ldm_ctx *ctx;
    ldm_autoencoder_config cfg;
    int batch, height, width, lat_h, lat_w;
    ldm_graph *enc, *dec;
    ldm_tensor *images, *latent, *indices; /* encoder graph */
    ldm_tensor *latents_in, *decoded;      /* decoder graph */
    int encodes;                           /* calls so far: the VAE sample's step */
};

ldm_status ldm_ae_codec_create(ldm_ctx *ctx, const ldm_autoencoder_config *c, int batch, int height,
                               int width, int vae_sample, uint64_t seed, ldm_ae_codec **out) {
    return ldm_ae_codec_create_in(ctx, NULL, c, batch, height, width, vae_sample, seed, out);
}

ldm_status ldm_ae_codec_create_in(ldm_ctx *ctx, ldm_params *params, const ldm_autoencoder_config *c,
                                  int batch, int height, int width, int vae_sample, uint64_t seed,
                                  ldm_ae_codec **out) {
    *out = NULL;
    LDM_TRY(ldm_autoencoder_config_check(c));
    if (batch < 1 || height < 1 || width < 1)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "autoencoder: batch %d of %dx%d images", batch,
                        height, width);
    ldm_ae_codec *k = calloc(1, sizeof *k);
    if (!k) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    k->ctx = ctx;
    k->cfg = *c;
    k->batch = batch;
    k->height = height;
    k->width = width;
    k->lat_h = ldm_autoencoder_latent_size(c, height);
    k->lat_w = ldm_autoencoder_latent_size(c, width);
    ldm_status st = ldm_graph_create_in(ctx, params, &k->enc);
    if (st == LDM_OK) {
        k->images =
            ldm_graph_input(k->enc, "images", LDM_SHAPE(batch, c->im_channels, height, width));
        ldm_ae_encoding e;
        k->latent = ldm_autoencoder_encode(k->enc, c, k->images, vae_sample, NULL, seed, &e);
        k->indices = e.indices;
        if (k->latent) ldm_tensor_keep(k->latent);
        if (k->indices) ldm_tensor_keep(k->indices);
    }
    /* the decoder in the encoder's store: one set of weights. Both are recorded before either
     * compiles (the first compile allocates the store). */
    if (st == LDM_OK) st = ldm_graph_create_in(ctx, ldm_graph_params(k->enc), &k->dec);
    if (st == LDM_OK) {
        k->latents_in =
            ldm_graph_input(k->dec, "latents", LDM_SHAPE(batch, c->z_channels, k->lat_h, k->lat_w));
        k->decoded = ldm_autoencoder_decode(k->dec, c, k->latents_in);
        if (k->decoded) ldm_tensor_keep(k->decoded);
    }
    if (st == LDM_OK) st = ldm_graph_compile(k->enc);
    if (st == LDM_OK) st = ldm_graph_compile(k->dec);
    if (st != LDM_OK) {
        ldm_ae_codec_destroy(k);
        return st;
    }
    *out = k;
    return LDM_OK;
}

void ldm_ae_codec_destroy(ldm_ae_codec *k) {
    if (!k) return;
    ldm_graph_destroy(k->enc);
    ldm_graph_destroy(k->dec);
    free(k);
}

ldm_status ldm_ae_codec_load(ldm_ae_codec *k, const char *path) {
    /* Every file tensor must belong to the encoder or the decoder: check before loading. */
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    char stray[1024] = "";
    int n_stray = 0;
    for (size_t i = 0; i < ldm_safetensors_count(st); i++) {
        const char *name = ldm_safetensors_at(st, i)->name;
        if (ldm_graph_find(k->enc, name) || ldm_graph_find(k->dec, name)) continue;
        size_t used = strlen(stray);
        if (used + strlen(name) + 8 < sizeof stray)
            snprintf(stray + used, sizeof stray - used, "%s%s", n_stray ? ", " : "", name);
        n_stray++;
    }
    ldm_safetensors_close(st);
    if (n_stray)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "autoencoder checkpoint '%s' has %d tensors that are not the autoencoder's "
                        "(%s): is it another model, or another configuration?",
                        path, n_stray, stray);
    ldm_load_options o = {.allow_unexpected = 1};
    LDM_TRY(ldm_graph_load(k->enc, path, &o));
    return ldm_graph_load(k->dec, path, &o);
}

ldm_status ldm_ae_codec_encode(ldm_ae_codec *k, const float *images, float *latents,
                               float *indices) {
    LDM_TRY(ldm_tensor_write(k->images, images));
    LDM_TRY(ldm_graph_set_step(k->enc, (uint64_t)k->encodes++));
    LDM_TRY(ldm_graph_run(k->enc));
    LDM_TRY(ldm_tensor_read(k->latent, latents));
    if (indices && k->indices) LDM_TRY(ldm_tensor_read(k->indices, indices));
    return LDM_OK;
}

ldm_status ldm_ae_codec_decode(ldm_ae_codec *k, const float *latents, float *images) {
    LDM_TRY(ldm_tensor_write(k->latents_in, latents));
    LDM_TRY(ldm_graph_run(k->dec));
    return ldm_tensor_read(k->decoded, images);
}

void ldm_ae_codec_latent_shape(const ldm_ae_codec *k, int shape[4]) {
    shape[0] = k->batch;
    shape[1] = k->cfg.z_channels;
    shape[2] = k->lat_h;
    shape[3] = k->lat_w;
}

ldm_status ldm_ae_encode_dataset(ldm_ae_codec *k, size_t n, ldm_image_source next, void *user,
                                 const char *path, const char *const *metadata_pairs) {
    if (n == 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "encoding an empty dataset to '%s'", path);
    size_t img = (size_t)k->cfg.im_channels * (size_t)k->height * (size_t)k->width;
    size_t lat = (size_t)k->cfg.z_channels * (size_t)k->lat_h * (size_t)k->lat_w;
    float *images = malloc((size_t)k->batch * img * sizeof *images);
    float *batch_lat = malloc((size_t)k->batch * lat * sizeof *batch_lat);
    float *all = malloc(n * lat * sizeof *all);
    ldm_status st = images && batch_lat && all
                        ? LDM_OK
                        : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory for %zu latents", n);
    for (size_t first = 0; first < n && st == LDM_OK; first += (size_t)k->batch) {
        size_t count = n - first < (size_t)k->batch ? n - first : (size_t)k->batch;
        for (size_t b = 0; b < count && st == LDM_OK; b++)
            st = next(user, first + b, images + b * img);
        for (size_t b = count; b < (size_t)k->batch && st == LDM_OK; b++)
            memcpy(images + b * img, images + (count - 1) * img, img * sizeof *images);
        if (st == LDM_OK) st = ldm_ae_codec_encode(k, images, batch_lat, NULL);
        if (st == LDM_OK) memcpy(all + first * lat, batch_lat, count * lat * sizeof *all);
    }
    if (st == LDM_OK) {
        char count_text[32];
        snprintf(count_text, sizeof count_text, "%zu", n);
        size_t n_pairs = 0;
        while (metadata_pairs && metadata_pairs[2 * n_pairs])
            n_pairs++;
        const char **meta = calloc(2 * n_pairs + 3, sizeof *meta);
        if (!meta) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        if (st == LDM_OK) {
            meta[0] = "ldmcl.latent_count";
            meta[1] = count_text;
            for (size_t i = 0; i < 2 * n_pairs; i++)
                meta[2 + i] = metadata_pairs[i];
            int64_t shape[4] = {(int64_t)n, k->cfg.z_channels, k->lat_h, k->lat_w};
            ldm_st_entry e = {"latents", 4, shape, all};
            st = ldm_safetensors_write(path, &e, 1, meta);
        }
        free(meta);
    }
    free(images);
    free(batch_lat);
    free(all);
    return st;
}
