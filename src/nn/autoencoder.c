/* src/nn/autoencoder.c: the reference's VQ-VAE and KL-VAE (see ldmcl/autoencoder.h), recorded
 * on a graph. */
#include <stdio.h>
#include <string.h>

#include "blocks.h"
#include "fail.h"
#include "ldmcl/autoencoder.h"
#include "ldmcl/ops.h"

void ldm_autoencoder_config_celebhq(ldm_autoencoder_config *c, ldm_autoencoder_kind kind) {
    *c = (ldm_autoencoder_config){.kind = kind,
                                  .im_channels = 3,
                                  .z_channels = 4,
                                  .codebook_size = 8192,
                                  .down_channels = {64, 128, 256, 256},
                                  .n_down = 4,
                                  .mid_channels = {256, 256},
                                  .n_mid = 2,
                                  .down_sample = {1, 1, 1},
                                  .attn_down = {0, 0, 0},
                                  .norm_channels = 32,
                                  .num_heads = 4,
                                  .num_down_layers = 2,
                                  .num_mid_layers = 2,
                                  .num_up_layers = 2};
}

void ldm_autoencoder_config_mnist(ldm_autoencoder_config *c, ldm_autoencoder_kind kind) {
    *c = (ldm_autoencoder_config){.kind = kind,
                                  .im_channels = 1,
                                  .z_channels = 3,
                                  .codebook_size = 20,
                                  .down_channels = {32, 64, 128},
                                  .n_down = 3,
                                  .mid_channels = {128, 128},
                                  .n_mid = 2,
                                  .down_sample = {1, 1},
                                  .attn_down = {0, 0},
                                  .norm_channels = 32,
                                  .num_heads = 16,
                                  .num_down_layers = 1,
                                  .num_mid_layers = 1,
                                  .num_up_layers = 1};
}

#define BAD(...) LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "autoencoder config: " __VA_ARGS__)

static ldm_status check_channels(const char *key, int i, int ch, int attn,
                                 const ldm_autoencoder_config *c) {
    if (ch < 1) return BAD("%s[%d] = %d must be positive", key, i, ch);
    if (ch % c->norm_channels)
        return BAD("%s[%d] = %d is not divisible by norm_channels = %d (GroupNorm)", key, i, ch,
                   c->norm_channels);
    if (attn && ch % c->num_heads)
        return BAD("%s[%d] = %d is not divisible by num_heads = %d (MultiheadAttention)", key, i,
                   ch, c->num_heads);
    return LDM_OK;
}

ldm_status ldm_autoencoder_config_check(const ldm_autoencoder_config *c) {
    if (c->kind != LDM_AE_VQVAE && c->kind != LDM_AE_VAE) return BAD("unknown kind %d", c->kind);
    if (c->im_channels < 1) return BAD("im_channels = %d must be positive", c->im_channels);
    if (c->z_channels < 1) return BAD("z_channels = %d must be positive", c->z_channels);
    if (c->kind == LDM_AE_VQVAE && (c->codebook_size < 1 || c->codebook_size > (1 << 24)))
        return BAD("codebook_size = %d must be in [1, 2^24]", c->codebook_size);
    if (c->n_down < 2 || c->n_down > LDM_AE_MAX_LEVELS)
        return BAD("down_channels needs 2 to %d entries, has %d", LDM_AE_MAX_LEVELS, c->n_down);
    if (c->n_mid < 2 || c->n_mid > LDM_AE_MAX_LEVELS)
        return BAD("mid_channels needs 2 to %d entries, has %d", LDM_AE_MAX_LEVELS, c->n_mid);
    if (c->norm_channels < 1 || c->num_heads < 1)
        return BAD("norm_channels (%d) and num_heads (%d) must be positive", c->norm_channels,
                   c->num_heads);
    int last = c->down_channels[c->n_down - 1];
    if (c->mid_channels[0] != last || c->mid_channels[c->n_mid - 1] != last)
        return BAD("mid_channels[0] = %d and the last mid_channels (%d) must equal the last "
                   "down_channels (%d)",
                   c->mid_channels[0], c->mid_channels[c->n_mid - 1], last);
    for (int i = 0; i < c->n_down; i++)
        LDM_TRY(check_channels("down_channels", i, c->down_channels[i],
                               i > 0 && c->attn_down[i - 1], c));
    for (int i = 0; i < c->n_mid; i++)
        LDM_TRY(check_channels("mid_channels", i, c->mid_channels[i], 1, c));
    if (c->num_down_layers < 1 || c->num_mid_layers < 1 || c->num_up_layers < 1)
        return BAD("num_down_layers, num_mid_layers and num_up_layers must be at least 1 (%d, %d, "
                   "%d)",
                   c->num_down_layers, c->num_mid_layers, c->num_up_layers);
    return LDM_OK;
}

int ldm_autoencoder_latent_size(const ldm_autoencoder_config *c, int image_size) {
    for (int i = 0; i < c->n_down - 1 && i < LDM_AE_MAX_LEVELS; i++)
        if (c->down_sample[i]) image_size /= 2;
    return image_size;
}

/* Records the config check (and the divisibility of the image) into the graph. */
static int check_into(ldm_graph *g, const ldm_autoencoder_config *c) {
    ldm_status st = ldm_autoencoder_config_check(c);
    if (st == LDM_OK) return 1;
    char why[512];
    snprintf(why, sizeof why, "%s", ldm_last_error());
    LDM_GRAPH_FAIL(g, st, "%s", why);
    return 0;
}

static ldm_tensor *norm_silu(ldm_graph *g, const char *name, ldm_tensor *x, int norm_channels) {
    if (!x) return NULL;
    int ch = ldm_tensor_dim(x, 1);
    ldm_tensor *w = nn_param(g, LDM_SHAPE(ch), "%s.weight", name);
    ldm_tensor *b = nn_param(g, LDM_SHAPE(ch), "%s.bias", name);
    nn_init_norm(w, b);
    return ldm_silu(g, ldm_group_norm(g, x, norm_channels, 1e-5f, w, b));
}

/* [N, C, H, W] <-> [N*H*W, C] (the reference's permute(0, 2, 3, 1) and back). */
static ldm_tensor *to_rows(ldm_graph *g, ldm_tensor *x) {
    int n = ldm_tensor_dim(x, 0), c = ldm_tensor_dim(x, 1);
    int p = ldm_tensor_dim(x, 2) * ldm_tensor_dim(x, 3);
    ldm_tensor *t = ldm_transpose12(g, ldm_reshape(g, x, LDM_SHAPE(n, c, p)));
    return ldm_reshape(g, t, LDM_SHAPE(n * p, c));
}

static ldm_tensor *from_rows(ldm_graph *g, ldm_tensor *rows, int n, int c, int h, int w) {
    ldm_tensor *t = ldm_transpose12(g, ldm_reshape(g, rows, LDM_SHAPE(n, h * w, c)));
    return ldm_reshape(g, t, LDM_SHAPE(n, c, h, w));
}

static ldm_tensor *quantize(ldm_graph *g, const ldm_autoencoder_config *c, ldm_tensor *z,
                            ldm_ae_encoding *enc) {
    int n = ldm_tensor_dim(z, 0), h = ldm_tensor_dim(z, 2), w = ldm_tensor_dim(z, 3);
    ldm_tensor *codebook =
        nn_param(g, LDM_SHAPE(c->codebook_size, c->z_channels), "embedding.weight");
    ldm_tensor_set_init(codebook, LDM_INIT_NORMAL, 1.0f); /* nn.Embedding's N(0, 1) */
    ldm_tensor *rows = to_rows(g, z);
    ldm_tensor *idx = ldm_vq_nearest(g, rows, codebook);
    ldm_tensor *q = ldm_embedding(g, idx, codebook);
    enc->commitment_loss = ldm_mse_loss(g, ldm_detach(g, q), rows);
    enc->codebook_loss = ldm_mse_loss(g, q, ldm_detach(g, rows));
    enc->indices = idx ? ldm_reshape(g, idx, LDM_SHAPE(n, h, w)) : NULL;
    ldm_tensor *st = ldm_add(g, rows, ldm_detach(g, ldm_sub(g, q, rows)));
    return from_rows(g, st, n, c->z_channels, h, w);
}

/* kl = 0.5 / N * sum(mean^2 + exp(logvar) - 1 - logvar). */
static ldm_tensor *kl_term(ldm_graph *g, ldm_tensor *mean, ldm_tensor *logvar) {
    if (!mean || !logvar) return NULL;
    ldm_tensor *t = ldm_add(g, ldm_mul(g, mean, mean), ldm_exp(g, logvar));
    t = ldm_sub(g, ldm_affine(g, t, 1.0f, -1.0f), logvar);
    return ldm_scale(g, ldm_sum(g, t), 0.5f / (float)ldm_tensor_dim(mean, 0));
}

ldm_tensor *ldm_autoencoder_encode(ldm_graph *g, const ldm_autoencoder_config *c, ldm_tensor *x,
                                   int sample, ldm_tensor *noise, uint64_t seed,
                                   ldm_ae_encoding *enc) {
    memset(enc, 0, sizeof *enc);
    if (!x || ldm_graph_status(g) != LDM_OK || !check_into(g, c)) return NULL;
    char sx[64];
    int h = ldm_tensor_ndim(x) == 4 ? ldm_tensor_dim(x, 2) : 0;
    int w = ldm_tensor_ndim(x) == 4 ? ldm_tensor_dim(x, 3) : 0;
    if (ldm_tensor_ndim(x) != 4 || ldm_tensor_dim(x, 1) != c->im_channels)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "autoencoder: images '%s' %s must be [N, %d, H, W]",
                              ldm_tensor_name(x), ldm_shape_str(x, sx, sizeof sx), c->im_channels);
    for (int i = 0; i < c->n_down - 1; i++)
        if (c->down_sample[i]) {
            if (h % 2 || w % 2)
                return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                                      "autoencoder: %dx%d images are %dx%d at encoder layer %d "
                                      "and cannot be halved (H and W must be divisible by 2 per "
                                      "downsampling)",
                                      ldm_tensor_dim(x, 2), ldm_tensor_dim(x, 3), h, w, i);
            h /= 2;
            w /= 2;
        }
    int nc = c->norm_channels, heads = c->num_heads;
    ldm_tensor *out = nn_conv(g, "encoder_conv_in", x, c->down_channels[0], 3, 1, 1, 1);
    char prefix[48];
    for (int i = 0; i < c->n_down - 1; i++) {
        snprintf(prefix, sizeof prefix, "encoder_layers.%d", i);
        out = nn_down_block(g, prefix, out, NULL, NULL, c->down_channels[i + 1], c->num_down_layers,
                            c->attn_down[i], c->down_sample[i], heads, nc);
    }
    for (int i = 0; i < c->n_mid - 1; i++) {
        snprintf(prefix, sizeof prefix, "encoder_mids.%d", i);
        out = nn_mid_block(g, prefix, out, NULL, NULL, c->mid_channels[i + 1], c->num_mid_layers,
                           heads, nc);
    }
    out = norm_silu(g, "encoder_norm_out", out, nc);
    int zc = c->kind == LDM_AE_VAE ? 2 * c->z_channels : c->z_channels;
    out = nn_conv(g, "encoder_conv_out", out, zc, 3, 1, 1, 1);
    out = nn_conv(g, "pre_quant_conv", out, zc, 1, 1, 0, 1);
    enc->pre_quant = out;
    if (!out) return NULL;
    if (c->kind == LDM_AE_VQVAE) {
        enc->latent = quantize(g, c, out, enc);
        return enc->latent;
    }
    enc->mean = ldm_narrow(g, out, 1, 0, c->z_channels);
    enc->logvar = ldm_narrow(g, out, 1, c->z_channels, c->z_channels);
    enc->kl = kl_term(g, enc->mean, enc->logvar);
    if (!sample) {
        enc->latent = enc->mean;
        return enc->latent;
    }
    int n = ldm_tensor_dim(x, 0);
    if (!noise)
        noise = ldm_random(g, LDM_DIST_NORMAL, LDM_SHAPE(n, c->z_channels, h, w), seed,
                           LDM_STREAM_VAE_NOISE, 1.0f, 0.0f);
    else if (ldm_tensor_numel(noise) != (size_t)n * (size_t)c->z_channels * (size_t)(h * w))
        return LDM_GRAPH_FAIL(
            g, LDM_ERR_INVALID_ARGUMENT, "autoencoder: noise '%s' %s must be [%d, %d, %d, %d]",
            ldm_tensor_name(noise), ldm_shape_str(noise, sx, sizeof sx), n, c->z_channels, h, w);
    ldm_tensor *std = ldm_exp(g, ldm_scale(g, enc->logvar, 0.5f));
    noise = ldm_reshape(g, noise, LDM_SHAPE(n, c->z_channels, h, w));
    enc->latent = ldm_add(g, enc->mean, ldm_mul(g, std, noise));
    return enc->latent;
}

ldm_tensor *ldm_autoencoder_decode(ldm_graph *g, const ldm_autoencoder_config *c, ldm_tensor *z) {
    if (!z || ldm_graph_status(g) != LDM_OK || !check_into(g, c)) return NULL;
    if (ldm_tensor_ndim(z) != 4 || ldm_tensor_dim(z, 1) != c->z_channels) {
        char sz[64];
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "autoencoder: latents '%s' %s must be [N, %d, h, w]",
                              ldm_tensor_name(z), ldm_shape_str(z, sz, sizeof sz), c->z_channels);
    }
    int nc = c->norm_channels, heads = c->num_heads;
    ldm_tensor *out = nn_conv(g, "post_quant_conv", z, c->z_channels, 1, 1, 0, 1);
    out = nn_conv(g, "decoder_conv_in", out, c->mid_channels[c->n_mid - 1], 3, 1, 1, 1);
    char prefix[48];
    for (int j = 0, i = c->n_mid - 1; i >= 1; i--, j++) {
        snprintf(prefix, sizeof prefix, "decoder_mids.%d", j);
        out = nn_mid_block(g, prefix, out, NULL, NULL, c->mid_channels[i - 1], c->num_mid_layers,
                           heads, nc);
    }
    for (int j = 0, i = c->n_down - 1; i >= 1; i--, j++) {
        snprintf(prefix, sizeof prefix, "decoder_layers.%d", j);
        out = nn_up_block(g, prefix, out, NULL, NULL, NULL, c->down_channels[i - 1],
                          c->num_up_layers, c->attn_down[i - 1], c->down_sample[i - 1], heads, nc);
    }
    out = norm_silu(g, "decoder_norm_out", out, nc);
    return nn_conv(g, "decoder_conv_out", out, c->im_channels, 3, 1, 1, 1);
}

ldm_status ldm_autoencoder_param_count(ldm_ctx *ctx, const ldm_autoencoder_config *c,
                                       size_t *count) {
    *count = 0;
    LDM_TRY(ldm_autoencoder_config_check(c));
    ldm_graph *g;
    LDM_TRY(ldm_graph_create(ctx, &g));
    int size = 1;
    for (int i = 0; i < c->n_down - 1; i++)
        size *= c->down_sample[i] ? 2 : 1;
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, c->im_channels, size, size));
    ldm_ae_encoding enc;
    ldm_autoencoder_decode(g, c, ldm_autoencoder_encode(g, c, x, 0, NULL, 0, &enc));
    ldm_status st = ldm_graph_status(g);
    if (st != LDM_OK) st = ldm_restore_error(st, ldm_graph_error(g));
    for (size_t i = 0; i < ldm_graph_param_count(g) && st == LDM_OK; i++)
        *count += ldm_tensor_numel(ldm_graph_param_at(g, i));
    ldm_graph_destroy(g);
    return st;
}
