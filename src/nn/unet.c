/* src/nn/unet.c: the reference's conditional UNet (see ldmcl/unet.h), recorded on a graph. */
#include <stdio.h>
#include <string.h>

#include "blocks.h"
#include "fail.h"
#include "ldmcl/ops.h"
#include "ldmcl/unet.h"

void ldm_unet_config_celebhq_text(ldm_unet_config *c) {
    memset(c, 0, sizeof *c);
    *c = (ldm_unet_config){.im_channels = 4,
                           .down_channels = {256, 384, 512, 768},
                           .n_down = 4,
                           .mid_channels = {768, 512},
                           .n_mid = 2,
                           .down_sample = {1, 1, 1},
                           .attn_down = {1, 1, 1},
                           .time_emb_dim = 512,
                           .norm_channels = 32,
                           .num_heads = 16,
                           .conv_out_channels = 128,
                           .num_down_layers = 2,
                           .num_mid_layers = 2,
                           .num_up_layers = 2,
                           .num_timesteps = 1000,
                           .text_embed_dim = 512};
}

#define BAD(...) LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "UNet config: " __VA_ARGS__)

static ldm_status check_channels(const char *key, int i, int ch, const ldm_unet_config *c) {
    if (ch < 1) return BAD("%s[%d] = %d must be positive", key, i, ch);
    if (ch % c->norm_channels)
        return BAD("%s[%d] = %d is not divisible by norm_channels = %d (GroupNorm)", key, i, ch,
                   c->norm_channels);
    if (ch % c->num_heads)
        return BAD("%s[%d] = %d is not divisible by num_heads = %d (MultiheadAttention)", key, i,
                   ch, c->num_heads);
    return LDM_OK;
}

ldm_status ldm_unet_config_check(const ldm_unet_config *c) {
    if (c->im_channels < 1) return BAD("im_channels = %d must be positive", c->im_channels);
    if (c->n_down < 2 || c->n_down > LDM_UNET_MAX_LEVELS)
        return BAD("down_channels needs 2 to %d entries, has %d", LDM_UNET_MAX_LEVELS, c->n_down);
    if (c->n_mid < 2 || c->n_mid > LDM_UNET_MAX_LEVELS)
        return BAD("mid_channels needs 2 to %d entries, has %d", LDM_UNET_MAX_LEVELS, c->n_mid);
    if (c->norm_channels < 1 || c->num_heads < 1)
        return BAD("norm_channels (%d) and num_heads (%d) must be positive", c->norm_channels,
                   c->num_heads);
    if (c->mid_channels[0] != c->down_channels[c->n_down - 1])
        return BAD("mid_channels[0] = %d must equal the last down_channels (%d)",
                   c->mid_channels[0], c->down_channels[c->n_down - 1]);
    if (c->mid_channels[c->n_mid - 1] != c->down_channels[c->n_down - 2])
        return BAD("the last mid_channels (%d) must equal the second-to-last down_channels (%d)",
                   c->mid_channels[c->n_mid - 1], c->down_channels[c->n_down - 2]);
    for (int i = 0; i < c->n_down; i++)
        LDM_TRY(check_channels("down_channels", i, c->down_channels[i], c));
    for (int i = 0; i < c->n_mid; i++)
        LDM_TRY(check_channels("mid_channels", i, c->mid_channels[i], c));
    LDM_TRY(check_channels("conv_out_channels", 0, c->conv_out_channels, c));
    if (c->time_emb_dim < 2 || c->time_emb_dim % 2)
        return BAD("time_emb_dim = %d must be even and positive", c->time_emb_dim);
    if (c->num_down_layers < 1 || c->num_mid_layers < 1 || c->num_up_layers < 1)
        return BAD("num_down_layers, num_mid_layers and num_up_layers must be at least 1 (%d, %d, "
                   "%d)",
                   c->num_down_layers, c->num_mid_layers, c->num_up_layers);
    if (c->num_timesteps < 1) return BAD("num_timesteps = %d", c->num_timesteps);
    if (c->text_embed_dim < 0 || c->num_classes < 0 || c->image_cond_input_channels < 0 ||
        (c->image_cond_input_channels > 0) != (c->image_cond_output_channels > 0))
        return BAD("condition sizes: text_embed_dim %d, num_classes %d, image channels %d -> %d",
                   c->text_embed_dim, c->num_classes, c->image_cond_input_channels,
                   c->image_cond_output_channels);
    return LDM_OK;
}

static ldm_tensor *time_embedding(ldm_graph *g, const ldm_unet_config *c, ldm_tensor *t,
                                  const ldm_unet_cond *cond) {
    int d = c->time_emb_dim;
    ldm_tensor *e = ldm_timestep_embedding(g, t, d, c->num_timesteps);
    ldm_tensor *w0 = nn_param(g, LDM_SHAPE(d, d), "t_proj.0.weight");
    ldm_tensor *b0 = nn_param(g, LDM_SHAPE(d), "t_proj.0.bias");
    ldm_tensor *w2 = nn_param(g, LDM_SHAPE(d, d), "t_proj.2.weight");
    ldm_tensor *b2 = nn_param(g, LDM_SHAPE(d), "t_proj.2.bias");
    nn_init_fan_in(w0, b0, d);
    nn_init_fan_in(w2, b2, d);
    e = ldm_linear(g, ldm_silu(g, ldm_linear(g, e, w0, b0)), w2, b2);
    if (c->num_classes > 0) { /* einsum('b n, n d -> b d', onehot, class_emb.weight) */
        ldm_tensor *emb = nn_param(g, LDM_SHAPE(c->num_classes, d), "class_emb.weight");
        ldm_tensor_set_init(emb, LDM_INIT_NORMAL, 1.0f); /* nn.Embedding */
        e = ldm_add(g, e, ldm_matmul(g, cond->class_onehot, emb));
    }
    return e;
}

static ldm_status check_inputs(ldm_graph *g, const ldm_unet_config *c, ldm_tensor *x, ldm_tensor *t,
                               const ldm_unet_cond *cond) {
    char sx[64];
    if (ldm_tensor_ndim(x) != 4 || ldm_tensor_dim(x, 1) != c->im_channels)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "UNet: input '%s' %s must be [N, %d, H, W]",
                        ldm_tensor_name(x), ldm_shape_str(x, sx, sizeof sx), c->im_channels);
    int n = ldm_tensor_dim(x, 0), h = ldm_tensor_dim(x, 2), w = ldm_tensor_dim(x, 3);
    for (int i = 0; i < c->n_down - 1; i++)
        if (c->down_sample[i]) {
            if (h % 2 || w % 2)
                return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                                "UNet: a %dx%d latent is %dx%d at down block %d and cannot be "
                                "halved (H and W must be divisible by 2 per downsampling)",
                                ldm_tensor_dim(x, 2), ldm_tensor_dim(x, 3), h, w, i);
            h /= 2;
            w /= 2;
        }
    if (ldm_tensor_numel(t) != (size_t)n)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "UNet: %zu timesteps for %d samples",
                        ldm_tensor_numel(t), n);
    const ldm_tensor *ctx = cond ? cond->context : NULL, *cls = cond ? cond->class_onehot : NULL;
    const ldm_tensor *mask = cond ? cond->mask : NULL;
    if ((c->text_embed_dim > 0) != (ctx != NULL) ||
        (ctx && (ldm_tensor_ndim(ctx) != 3 || ldm_tensor_dim(ctx, 0) != n ||
                 ldm_tensor_dim(ctx, 2) != c->text_embed_dim)))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "UNet: text conditioning needs a context [%d, S, %d] exactly when "
                        "text_embed_dim is set (it is %d)",
                        n, c->text_embed_dim, c->text_embed_dim);
    if ((c->num_classes > 0) != (cls != NULL) ||
        (cls && (ldm_tensor_ndim(cls) != 2 || ldm_tensor_dim(cls, 0) != n ||
                 ldm_tensor_dim(cls, 1) != c->num_classes)))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "UNet: class conditioning needs a one-hot [%d, %d] exactly when "
                        "num_classes is set",
                        n, c->num_classes);
    if ((c->image_cond_input_channels > 0) != (mask != NULL) ||
        (mask && (ldm_tensor_ndim(mask) != 4 || ldm_tensor_dim(mask, 0) != n ||
                  ldm_tensor_dim(mask, 1) != c->image_cond_input_channels ||
                  ldm_tensor_dim(mask, 2) % ldm_tensor_dim(x, 2))))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "UNet: image conditioning needs a mask [%d, %d, H', W'] with H' a multiple "
                        "of the latent height, exactly when image channels are set",
                        n, c->image_cond_input_channels);
    (void)g;
    return LDM_OK;
}

ldm_tensor *ldm_unet(ldm_graph *g, const ldm_unet_config *c, ldm_tensor *x, ldm_tensor *t,
                     const ldm_unet_cond *cond) {
    if (!x || !t || ldm_graph_status(g) != LDM_OK) return NULL;
    ldm_status st = ldm_unet_config_check(c);
    if (st == LDM_OK) st = check_inputs(g, c, x, t, cond);
    if (st != LDM_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", ldm_last_error());
        return LDM_GRAPH_FAIL(g, st, "%s", why);
    }
    ldm_tensor *context = cond ? cond->context : NULL;
    int nc = c->norm_channels, heads = c->num_heads;
    ldm_tensor *out;
    if (c->image_cond_input_channels > 0) {
        ldm_tensor *m =
            ldm_resize_nearest(g, cond->mask, ldm_tensor_dim(x, 2), ldm_tensor_dim(x, 3));
        m = nn_conv(g, "cond_conv_in", m, c->image_cond_output_channels, 1, 1, 0, 0);
        out = nn_conv(g, "conv_in_concat", ldm_concat(g, x, m, 1), c->down_channels[0], 3, 1, 1, 1);
    } else {
        out = nn_conv(g, "conv_in", x, c->down_channels[0], 3, 1, 1, 1);
    }
    ldm_tensor *t_emb = time_embedding(g, c, t, cond);

    ldm_tensor *skips[LDM_UNET_MAX_LEVELS];
    char prefix[32];
    for (int i = 0; i < c->n_down - 1; i++) {
        skips[i] = out;
        snprintf(prefix, sizeof prefix, "downs.%d", i);
        ldm_graph_segment_begin(g); /* gradient checkpointing: a block at a time */
        out = nn_down_block(g, prefix, out, t_emb, context, c->down_channels[i + 1],
                            c->num_down_layers, c->attn_down[i], c->down_sample[i], heads, nc);
        ldm_graph_segment_end(g);
    }
    for (int i = 0; i < c->n_mid - 1; i++) {
        snprintf(prefix, sizeof prefix, "mids.%d", i);
        ldm_graph_segment_begin(g);
        out = nn_mid_block(g, prefix, out, t_emb, context, c->mid_channels[i + 1],
                           c->num_mid_layers, heads, nc);
        ldm_graph_segment_end(g);
    }
    /* UpBlockUnet(in = 2 down[i]): the upsample runs on in // 2 = the incoming channels, which
     * the config check guarantees; attention is always on. */
    for (int j = 0, i = c->n_down - 2; i >= 0; i--, j++) {
        snprintf(prefix, sizeof prefix, "ups.%d", j);
        int cout = i > 0 ? c->down_channels[i - 1] : c->conv_out_channels;
        ldm_graph_segment_begin(g);
        out = nn_up_block(g, prefix, out, skips[i], t_emb, context, cout, c->num_up_layers, 1,
                          c->down_sample[i], heads, nc);
        ldm_graph_segment_end(g);
    }
    int co = c->conv_out_channels;
    ldm_tensor *nw = nn_param(g, LDM_SHAPE(co), "norm_out.weight");
    ldm_tensor *nb = nn_param(g, LDM_SHAPE(co), "norm_out.bias");
    nn_init_norm(nw, nb);
    out = ldm_group_norm(g, out, nc, 1e-5f, nw, nb);
    return nn_conv(g, "conv_out", ldm_silu(g, out), c->im_channels, 3, 1, 1, 1);
}

ldm_status ldm_unet_param_count(ldm_ctx *ctx, const ldm_unet_config *c, size_t *count) {
    *count = 0;
    ldm_graph *g;
    LDM_TRY(ldm_graph_create(ctx, &g));
    int hw = 1;
    for (int i = 0; i < c->n_down - 1 && i < LDM_UNET_MAX_LEVELS; i++)
        hw *= c->down_sample[i] ? 2 : 1;
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, c->im_channels, 2 * hw, 2 * hw));
    ldm_tensor *t = ldm_graph_input(g, "t", LDM_SHAPE(1));
    ldm_unet_cond cond = {NULL, NULL, NULL};
    if (c->text_embed_dim > 0)
        cond.context = ldm_graph_input(g, "context", LDM_SHAPE(1, 1, c->text_embed_dim));
    if (c->num_classes > 0)
        cond.class_onehot = ldm_graph_input(g, "class", LDM_SHAPE(1, c->num_classes));
    if (c->image_cond_input_channels > 0)
        cond.mask =
            ldm_graph_input(g, "mask", LDM_SHAPE(1, c->image_cond_input_channels, 2 * hw, 2 * hw));
    ldm_unet(g, c, x, t, &cond);
    ldm_status st = ldm_graph_status(g);
    if (st != LDM_OK) st = ldm_restore_error(st, ldm_graph_error(g));
    for (size_t i = 0; i < ldm_graph_param_count(g) && st == LDM_OK; i++)
        *count += ldm_tensor_numel(ldm_graph_param_at(g, i));
    ldm_graph_destroy(g);
    return st;
}
