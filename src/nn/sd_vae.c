/* src/nn/sd_vae.c: Stable Diffusion's KL autoencoder (see ldmcl/sd_vae.h), recorded on a graph. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "blocks.h"
#include "fail.h"
#include "ldmcl/ops.h"
#include "ldmcl/sd_vae.h"

void ldm_sd_vae_config_sd(ldm_sd_vae_config *c) {
    *c = (ldm_sd_vae_config){.in_channels = 3,
                             .out_channels = 3,
                             .ch = 128,
                             .ch_mult = {1, 2, 4, 4},
                             .n_levels = 4,
                             .num_res_blocks = 2,
                             .z_channels = 4,
                             .embed_dim = 4,
                             .norm_groups = 32,
                             .scaling_factor = 0.18215f};
}

#define BAD(...) LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "SD VAE config: " __VA_ARGS__)

ldm_status ldm_sd_vae_config_check(const ldm_sd_vae_config *c) {
    if (c->in_channels < 1 || c->out_channels < 1 || c->ch < 1 || c->z_channels < 1 ||
        c->embed_dim < 1)
        return BAD("in_channels %d, out_channels %d, ch %d, z_channels %d and embed_dim %d must be "
                   "positive",
                   c->in_channels, c->out_channels, c->ch, c->z_channels, c->embed_dim);
    if (c->n_levels < 1 || c->n_levels > LDM_SD_VAE_MAX_LEVELS || c->num_res_blocks < 1)
        return BAD("%d levels (1 to %d) and %d res blocks", c->n_levels, LDM_SD_VAE_MAX_LEVELS,
                   c->num_res_blocks);
    if (c->norm_groups < 1) return BAD("norm_groups %d", c->norm_groups);
    for (int l = 0; l < c->n_levels; l++)
        if (c->ch_mult[l] < 1 || (c->ch * c->ch_mult[l]) % c->norm_groups)
            return BAD("level %d: %d channels are not divisible by norm_groups %d", l,
                       c->ch * c->ch_mult[l], c->norm_groups);
    if (!(c->scaling_factor > 0.0f)) return BAD("scaling_factor %g", (double)c->scaling_factor);
    return LDM_OK;
}

/* buf (160 bytes) = the formatted name. */
__attribute__((format(printf, 2, 3))) static char *name_at(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, 160, fmt, ap);
    va_end(ap);
    return buf;
}

static ldm_tensor *norm(ldm_graph *g, const ldm_sd_vae_config *c, const char *name, ldm_tensor *x) {
    if (!x) return NULL;
    int ch = ldm_tensor_dim(x, 1);
    ldm_tensor *w = nn_param(g, LDM_SHAPE(ch), "%s.weight", name);
    ldm_tensor *b = nn_param(g, LDM_SHAPE(ch), "%s.bias", name);
    nn_init_norm(w, b);
    return ldm_group_norm(g, x, c->norm_groups, 1e-6f, w, b);
}

static ldm_tensor *resnet(ldm_graph *g, const ldm_sd_vae_config *c, const char *p, ldm_tensor *x,
                          int cout) {
    if (!x) return NULL;
    char n[160];
    int cin = ldm_tensor_dim(x, 1);
    ldm_tensor *h = ldm_silu(g, norm(g, c, name_at(n, "%s.norm1", p), x));
    h = nn_conv(g, name_at(n, "%s.conv1", p), h, cout, 3, 1, 1, 1);
    h = ldm_silu(g, norm(g, c, name_at(n, "%s.norm2", p), h));
    h = nn_conv(g, name_at(n, "%s.conv2", p), h, cout, 3, 1, 1, 1);
    if (cin != cout) x = nn_conv(g, name_at(n, "%s.nin_shortcut", p), x, cout, 1, 1, 0, 1);
    return ldm_add(g, x, h);
}

/* A 1x1 conv's weight [C, C, 1, 1] (and bias) as a Linear's [C, C]. */
static ldm_tensor *conv1x1_as_linear(ldm_graph *g, const char *name, int ch, ldm_tensor **bias) {
    ldm_tensor *w = nn_param(g, LDM_SHAPE(ch, ch, 1, 1), "%s.weight", name);
    *bias = nn_param(g, LDM_SHAPE(ch), "%s.bias", name);
    nn_init_fan_in(w, *bias, ch);
    return ldm_reshape(g, w, LDM_SHAPE(ch, ch));
}

/* Queries per chunk of the mid attention's scores: 1024 x 4096 floats (16 MiB) at 512x512. */
#define VAE_ATTENTION_CHUNK 1024

/* x + proj_out(one-head attention over the pixels of norm(x)); the head is 512 wide, above the
 * fused core's limit, so it is written with GEMMs a chunk of queries at a time. */
static ldm_tensor *attn_block(ldm_graph *g, const ldm_sd_vae_config *c, const char *p,
                              ldm_tensor *x) {
    if (!x) return NULL;
    char n[160];
    int N = ldm_tensor_dim(x, 0), C = ldm_tensor_dim(x, 1), H = ldm_tensor_dim(x, 2);
    int W = ldm_tensor_dim(x, 3);
    ldm_tensor *h = norm(g, c, name_at(n, "%s.norm", p), x);
    h = ldm_transpose12(g, ldm_reshape(g, h, LDM_SHAPE(N, C, H * W)));
    ldm_tensor *bq, *bk, *bv, *bo;
    ldm_tensor *wq = conv1x1_as_linear(g, name_at(n, "%s.q", p), C, &bq);
    ldm_tensor *wk = conv1x1_as_linear(g, name_at(n, "%s.k", p), C, &bk);
    ldm_tensor *wv = conv1x1_as_linear(g, name_at(n, "%s.v", p), C, &bv);
    ldm_tensor *wo = conv1x1_as_linear(g, name_at(n, "%s.proj_out", p), C, &bo);
    ldm_tensor *w = ldm_concat(g, ldm_concat(g, wq, wk, 0), wv, 0);
    ldm_tensor *b = ldm_concat(g, ldm_concat(g, bq, bk, 0), bv, 0);
    h = ldm_attention_one_head_chunked(g, ldm_linear(g, h, w, b), VAE_ATTENTION_CHUNK);
    h = ldm_linear(g, h, wo, bo);
    h = ldm_reshape(g, ldm_transpose12(g, h), LDM_SHAPE(N, C, H, W));
    return ldm_add(g, x, h);
}

static ldm_tensor *mid(ldm_graph *g, const ldm_sd_vae_config *c, const char *p, ldm_tensor *x) {
    char n[160];
    int ch = x ? ldm_tensor_dim(x, 1) : 0;
    x = resnet(g, c, name_at(n, "%s.mid.block_1", p), x, ch);
    x = attn_block(g, c, name_at(n, "%s.mid.attn_1", p), x);
    return resnet(g, c, name_at(n, "%s.mid.block_2", p), x, ch);
}

/* x [N, C, H, W] with a zero row below and a zero column to the right (the original's
 * F.pad(x, (0, 1, 0, 1)) before its stride-2 conv). */
static ldm_tensor *pad_right_bottom(ldm_graph *g, ldm_tensor *x) {
    if (!x) return NULL;
    int N = ldm_tensor_dim(x, 0), C = ldm_tensor_dim(x, 1), H = ldm_tensor_dim(x, 2);
    int W = ldm_tensor_dim(x, 3);
    ldm_tensor *zeros[2];
    int shapes[2][4] = {{N, C, H, 1}, {N, C, 1, W + 1}};
    for (int i = 0; i < 2; i++) {
        char name[96];
        snprintf(name, sizeof name, "zeros_%dx%dx%dx%d", shapes[i][0], shapes[i][1], shapes[i][2],
                 shapes[i][3]);
        zeros[i] = ldm_graph_find(g, name);
        if (zeros[i]) continue;
        size_t count = (size_t)shapes[i][0] * shapes[i][1] * shapes[i][2] * shapes[i][3];
        float *data = calloc(count, sizeof *data);
        if (!data) return LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
        zeros[i] = ldm_graph_constant(g, name, 4, shapes[i], data);
        free(data);
    }
    return ldm_concat(g, ldm_concat(g, x, zeros[0], 3), zeros[1], 2);
}

static ldm_status check_image(const ldm_sd_vae_config *c, ldm_tensor *x, int channels,
                              const char *what, int f) {
    char sx[64];
    if (ldm_tensor_ndim(x) != 4 || ldm_tensor_dim(x, 1) != channels || ldm_tensor_dim(x, 2) % f ||
        ldm_tensor_dim(x, 3) % f)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "SD VAE: %s '%s' %s must be [N, %d, H, W] with H and W multiples of %d",
                        what, ldm_tensor_name(x), ldm_shape_str(x, sx, sizeof sx), channels, f);
    (void)c;
    return LDM_OK;
}

static ldm_tensor *fail_with_last(ldm_graph *g, ldm_status st) {
    char why[512];
    snprintf(why, sizeof why, "%s", ldm_last_error());
    return LDM_GRAPH_FAIL(g, st, "%s", why);
}

ldm_tensor *ldm_sd_vae_encode(ldm_graph *g, const ldm_sd_vae_config *c, ldm_tensor *x,
                              ldm_tensor **logvar) {
    if (logvar) *logvar = NULL;
    if (!x || ldm_graph_status(g) != LDM_OK) return NULL;
    ldm_status st = ldm_sd_vae_config_check(c);
    if (st == LDM_OK) st = check_image(c, x, c->in_channels, "image", 1 << (c->n_levels - 1));
    if (st != LDM_OK) return fail_with_last(g, st);
    char n[160];
    ldm_tensor *h = nn_conv(g, "encoder.conv_in", x, c->ch, 3, 1, 1, 1);
    for (int l = 0; l < c->n_levels; l++) {
        for (int b = 0; b < c->num_res_blocks; b++)
            h = resnet(g, c, name_at(n, "encoder.down.%d.block.%d", l, b), h,
                       c->ch * c->ch_mult[l]);
        if (l + 1 < c->n_levels)
            h = nn_conv(g, name_at(n, "encoder.down.%d.downsample.conv", l), pad_right_bottom(g, h),
                        c->ch * c->ch_mult[l], 3, 2, 0, 1);
    }
    h = mid(g, c, "encoder", h);
    h = ldm_silu(g, norm(g, c, "encoder.norm_out", h));
    h = nn_conv(g, "encoder.conv_out", h, 2 * c->z_channels, 3, 1, 1, 1);
    h = nn_conv(g, "quant_conv", h, 2 * c->embed_dim, 1, 1, 0, 1);
    if (logvar) *logvar = ldm_narrow(g, h, 1, c->embed_dim, c->embed_dim);
    return ldm_narrow(g, h, 1, 0, c->embed_dim);
}

ldm_tensor *ldm_sd_vae_decode(ldm_graph *g, const ldm_sd_vae_config *c, ldm_tensor *z) {
    if (!z || ldm_graph_status(g) != LDM_OK) return NULL;
    ldm_status st = ldm_sd_vae_config_check(c);
    if (st == LDM_OK) st = check_image(c, z, c->embed_dim, "latent", 1);
    if (st != LDM_OK) return fail_with_last(g, st);
    char n[160];
    int top = c->ch * c->ch_mult[c->n_levels - 1];
    ldm_tensor *h = nn_conv(g, "post_quant_conv", z, c->z_channels, 1, 1, 0, 1);
    h = nn_conv(g, "decoder.conv_in", h, top, 3, 1, 1, 1);
    h = mid(g, c, "decoder", h);
    for (int l = c->n_levels - 1; l >= 0; l--) {
        for (int b = 0; b <= c->num_res_blocks; b++)
            h = resnet(g, c, name_at(n, "decoder.up.%d.block.%d", l, b), h, c->ch * c->ch_mult[l]);
        if (l > 0 && h) {
            h = ldm_resize_nearest(g, h, 2 * ldm_tensor_dim(h, 2), 2 * ldm_tensor_dim(h, 3));
            h = nn_conv(g, name_at(n, "decoder.up.%d.upsample.conv", l), h, c->ch * c->ch_mult[l],
                        3, 1, 1, 1);
        }
    }
    h = ldm_silu(g, norm(g, c, "decoder.norm_out", h));
    return nn_conv(g, "decoder.conv_out", h, c->out_channels, 3, 1, 1, 1);
}

ldm_status ldm_sd_vae_param_count(ldm_ctx *ctx, const ldm_sd_vae_config *c, size_t *count) {
    *count = 0;
    LDM_TRY(ldm_sd_vae_config_check(c));
    ldm_graph *g;
    LDM_TRY(ldm_graph_create(ctx, &g));
    int f = 1 << (c->n_levels - 1);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, c->in_channels, f, f));
    ldm_tensor *z = ldm_graph_input(g, "z", LDM_SHAPE(1, c->embed_dim, 1, 1));
    ldm_sd_vae_encode(g, c, x, NULL);
    ldm_sd_vae_decode(g, c, z);
    ldm_status st = ldm_graph_status(g);
    if (st != LDM_OK) st = ldm_restore_error(st, ldm_graph_error(g));
    for (size_t i = 0; i < ldm_graph_param_count(g) && st == LDM_OK; i++)
        *count += ldm_tensor_numel(ldm_graph_param_at(g, i));
    ldm_graph_destroy(g);
    return st;
}
