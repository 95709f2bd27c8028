/* src/sample/sd_codec.c: Stable Diffusion's VAE for inference (see ldmcl/sd_model.h): one recorded
 * encoder and one decoder over the same weights, latents scaled by the model's scaling factor;
 * decoding a tile at a time with blended seams when asked. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/sd_model.h"

struct ldm_sd_codec {
    ldm_sd_vae_config cfg;
    int batch, height, width, lat_h, lat_w;
    int tile_h, tile_w, f; /* the decoder's latent size (a tile's, or the whole); pixels per cell */
    ldm_graph *enc, *dec;
    ldm_tensor *images, *mean, *latents, *decoded;
    float *scaled;          /* latents / scaling_factor */
    float *in, *out, *wsum; /* tiled: a tile's latents and image, the weights per pixel */
};

void ldm_sd_codec_destroy(ldm_sd_codec *k) {
    if (!k) return;
    ldm_graph_destroy(k->dec);
    ldm_graph_destroy(k->enc);
    free(k->scaled);
    free(k->in);
    free(k->out);
    free(k->wsum);
    free(k);
}

ldm_status ldm_sd_codec_create(ldm_ctx *ctx, const ldm_sd_model *m, int batch, int height,
                               int width, int tile, int half_weights, ldm_sd_codec **out) {
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
    k->f = f;
    k->tile_h = tile > 0 && tile < k->lat_h ? tile : k->lat_h;
    k->tile_w = tile > 0 && tile < k->lat_w ? tile : k->lat_w;
    int tiled = k->tile_h < k->lat_h || k->tile_w < k->lat_w;
    if (tiled && (k->tile_h < 4 || k->tile_w < 4 || k->tile_h % (1 << (c->n_levels - 1)) ||
                  k->tile_w % (1 << (c->n_levels - 1)))) {
        ldm_sd_codec_destroy(k);
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "SD VAE: tiles of %d latent cells (4 or more, a multiple of %d)", tile,
                        1 << (c->n_levels - 1));
    }
    if (tiled) {
        k->in = malloc((size_t)c->embed_dim * k->tile_h * k->tile_w * sizeof *k->in);
        k->out = malloc((size_t)c->out_channels * k->tile_h * k->tile_w * f * f * sizeof *k->out);
        k->wsum = malloc((size_t)height * width * sizeof *k->wsum);
        if (!k->in || !k->out || !k->wsum) {
            ldm_sd_codec_destroy(k);
            return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        }
    }
    k->scaled = malloc((size_t)batch * c->embed_dim * k->lat_h * k->lat_w * sizeof *k->scaled);
    ldm_status st = k->scaled ? ldm_graph_create(ctx, &k->enc)
                              : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (st == LDM_OK) {
        ldm_graph_set_half_weights(k->enc, half_weights);
        k->images =
            ldm_graph_input(k->enc, "images", LDM_SHAPE(batch, c->in_channels, height, width));
        k->mean = ldm_sd_vae_encode(k->enc, c, k->images, NULL);
        if (k->mean) ldm_tensor_keep(k->mean);
        st = ldm_graph_create_in(ctx, ldm_graph_params(k->enc), &k->dec);
    }
    if (st == LDM_OK) {
        ldm_graph_set_half_weights(k->dec, half_weights);
        k->latents = ldm_graph_input(
            k->dec, "latents", LDM_SHAPE(tiled ? 1 : batch, c->embed_dim, k->tile_h, k->tile_w));
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

/* The tiles' first cells along a side of n cells: every T - T/4, the last one ending at n. */
static int tile_starts(int n, int T, int *starts) {
    int step = T - T / 4, count = 0;
    for (int s = 0;; s += step) {
        if (s + T >= n) {
            starts[count++] = n - T;
            return count;
        }
        starts[count++] = s;
    }
}

/* The weight of pixel p of a tile side of `side` pixels: it ramps linearly over the first `ramp`
 * pixels where a tile lies before and over the last ones where one lies after. */
static float ramp_weight(int p, int side, int ramp, int before, int after) {
    float w = 1.0f;
    if (before && p < ramp) w = fminf(w, ((float)p + 0.5f) / (float)ramp);
    if (after && side - 1 - p < ramp) w = fminf(w, ((float)(side - 1 - p) + 0.5f) / (float)ramp);
    return w;
}

/* Decodes one sample's latents (divided by the scaling factor already) a tile at a time. */
static ldm_status decode_tiled(ldm_sd_codec *k, const float *z, float *image) {
    int C = k->cfg.embed_dim, O = k->cfg.out_channels, f = k->f, TH = k->tile_h, TW = k->tile_w;
    int *ys = malloc((size_t)(k->lat_h + k->lat_w + 2) * sizeof *ys), *xs = ys + k->lat_h + 1;
    if (!ys) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    int ny = tile_starts(k->lat_h, TH, ys), nx = tile_starts(k->lat_w, TW, xs);
    size_t plane = (size_t)k->height * k->width;
    memset(image, 0, (size_t)O * plane * sizeof *image);
    memset(k->wsum, 0, plane * sizeof *k->wsum);
    int ramp_y = TH / 4 * f, ramp_x = TW / 4 * f;
    ldm_status st = LDM_OK;
    for (int ty = 0; ty < ny && st == LDM_OK; ty++)
        for (int tx = 0; tx < nx && st == LDM_OK; tx++) {
            for (int c = 0; c < C; c++)
                for (int y = 0; y < TH; y++)
                    memcpy(k->in + ((size_t)c * TH + y) * TW,
                           z + ((size_t)c * k->lat_h + (size_t)(ys[ty] + y)) * k->lat_w + xs[tx],
                           (size_t)TW * sizeof *z);
            st = ldm_tensor_write(k->latents, k->in);
            if (st == LDM_OK) st = ldm_graph_run(k->dec);
            if (st == LDM_OK) st = ldm_tensor_read(k->decoded, k->out);
            for (int py = 0; py < TH * f && st == LDM_OK; py++) {
                float wy = ramp_weight(py, TH * f, ramp_y, ty > 0, ty + 1 < ny);
                size_t row = (size_t)(ys[ty] * f + py) * k->width + (size_t)xs[tx] * f;
                for (int px = 0; px < TW * f; px++) {
                    float w = wy * ramp_weight(px, TW * f, ramp_x, tx > 0, tx + 1 < nx);
                    k->wsum[row + px] += w;
                    for (int c = 0; c < O; c++)
                        image[c * plane + row + px] +=
                            w * k->out[((size_t)c * TH * f + py) * TW * f + px];
                }
            }
        }
    for (size_t i = 0; i < plane && st == LDM_OK; i++)
        for (int c = 0; c < O; c++)
            image[c * plane + i] /= k->wsum[i];
    free(ys);
    return st;
}

ldm_status ldm_sd_codec_decode(ldm_sd_codec *k, const float *latents, float *images) {
    size_t n = latent_count(k);
    for (size_t i = 0; i < n; i++)
        k->scaled[i] = latents[i] / k->cfg.scaling_factor;
    if (k->tile_h < k->lat_h || k->tile_w < k->lat_w) {
        size_t per_z = n / (size_t)k->batch;
        size_t per_img = (size_t)k->cfg.out_channels * k->height * k->width;
        for (int b = 0; b < k->batch; b++)
            LDM_TRY(decode_tiled(k, k->scaled + b * per_z, images + b * per_img));
        return LDM_OK;
    }
    LDM_TRY(ldm_tensor_write(k->latents, k->scaled));
    LDM_TRY(ldm_graph_run(k->dec));
    return ldm_tensor_read(k->decoded, images);
}
