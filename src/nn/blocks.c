/* src/nn/blocks.c: the reference's ResNet and attention sub-blocks (see blocks.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "blocks.h"
#include "fail.h"
#include "ldmcl/ops.h"

ldm_tensor *nn_param(ldm_graph *g, int ndim, const int *shape, const char *fmt, ...) {
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    ldm_tensor *t = ldm_graph_find(g, name);
    if (!t)
        return nn_lora_adapt(g, name, ldm_half_weight(g, ldm_graph_param(g, name, ndim, shape)));
    int same = ldm_tensor_ndim(t) == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = ldm_tensor_dim(t, d) == shape[d];
    if (!same || !ldm_tensor_is_param(t))
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "parameter '%s' is used with two different shapes", name);
    return nn_lora_adapt(g, name, ldm_half_weight(g, t));
}

void nn_init_fan_in(ldm_tensor *w, ldm_tensor *b, int fan_in) {
    float bound = 1.0f / sqrtf((float)fan_in);
    ldm_tensor_set_init(w, LDM_INIT_UNIFORM, bound);
    ldm_tensor_set_init(b, LDM_INIT_UNIFORM, bound);
}

void nn_init_norm(ldm_tensor *w, ldm_tensor *b) {
    ldm_tensor_set_init(w, LDM_INIT_CONSTANT, 1.0f);
    ldm_tensor_set_init(b, LDM_INIT_CONSTANT, 0.0f);
}

ldm_tensor *nn_conv(ldm_graph *g, const char *name, ldm_tensor *x, int cout, int k, int stride,
                    int pad, int bias) {
    if (!x) return NULL;
    int cin = ldm_tensor_dim(x, 1);
    ldm_tensor *w = nn_param(g, LDM_SHAPE(cout, cin, k, k), "%s.weight", name);
    ldm_tensor *b = bias ? nn_param(g, LDM_SHAPE(cout), "%s.bias", name) : NULL;
    nn_init_fan_in(w, b, cin * k * k);
    return ldm_conv2d(g, x, w, b, stride, pad);
}

/* conv(silu(group_norm(x))): a Sequential(GroupNorm, SiLU, Conv2d 3x3) at <prefix>.<seq>.<i>. */
static ldm_tensor *norm_silu_conv(ldm_graph *g, const char *prefix, const char *seq, int i,
                                  ldm_tensor *x, int out_channels, int norm_channels) {
    if (!x) return NULL;
    int cin = ldm_tensor_dim(x, 1);
    ldm_tensor *gw = nn_param(g, LDM_SHAPE(cin), "%s.%s.%d.0.weight", prefix, seq, i);
    ldm_tensor *gb = nn_param(g, LDM_SHAPE(cin), "%s.%s.%d.0.bias", prefix, seq, i);
    ldm_tensor *w =
        nn_param(g, LDM_SHAPE(out_channels, cin, 3, 3), "%s.%s.%d.2.weight", prefix, seq, i);
    ldm_tensor *b = nn_param(g, LDM_SHAPE(out_channels), "%s.%s.%d.2.bias", prefix, seq, i);
    nn_init_norm(gw, gb);
    nn_init_fan_in(w, b, cin * 9);
    ldm_tensor *h = ldm_silu(g, ldm_group_norm(g, x, norm_channels, 1e-5f, gw, gb));
    return ldm_conv2d(g, h, w, b, 1, 1);
}

ldm_tensor *nn_resnet(ldm_graph *g, const char *prefix, int i, ldm_tensor *x, ldm_tensor *t_emb,
                      int out_channels, int norm_channels) {
    if (!x) return NULL;
    int cin = ldm_tensor_dim(x, 1);
    ldm_tensor *h =
        norm_silu_conv(g, prefix, "resnet_conv_first", i, x, out_channels, norm_channels);
    if (t_emb) {
        int temb = ldm_tensor_dim(t_emb, 1);
        ldm_tensor *w =
            nn_param(g, LDM_SHAPE(out_channels, temb), "%s.t_emb_layers.%d.1.weight", prefix, i);
        ldm_tensor *b =
            nn_param(g, LDM_SHAPE(out_channels), "%s.t_emb_layers.%d.1.bias", prefix, i);
        nn_init_fan_in(w, b, temb);
        h = ldm_add_channels(g, h, ldm_linear(g, ldm_silu(g, t_emb), w, b));
    }
    h = norm_silu_conv(g, prefix, "resnet_conv_second", i, h, out_channels, norm_channels);
    ldm_tensor *rw = nn_param(g, LDM_SHAPE(out_channels, cin, 1, 1),
                              "%s.residual_input_conv.%d.weight", prefix, i);
    ldm_tensor *rb =
        nn_param(g, LDM_SHAPE(out_channels), "%s.residual_input_conv.%d.bias", prefix, i);
    nn_init_fan_in(rw, rb, cin);
    return ldm_add(g, h, ldm_conv2d(g, x, rw, rb, 1, 0));
}

/* x + attention over the tokens of GN(x); context NULL for self-attention. */
static ldm_tensor *attention(ldm_graph *g, const char *prefix, const char *norm, const char *attn,
                             int i, ldm_tensor *x, ldm_tensor *context, int heads,
                             int norm_channels) {
    if (!x) return NULL;
    int n = ldm_tensor_dim(x, 0), c = ldm_tensor_dim(x, 1), h = ldm_tensor_dim(x, 2);
    int w = ldm_tensor_dim(x, 3);
    ldm_tensor *nw = nn_param(g, LDM_SHAPE(c), "%s.%s.%d.weight", prefix, norm, i);
    ldm_tensor *nb = nn_param(g, LDM_SHAPE(c), "%s.%s.%d.bias", prefix, norm, i);
    ldm_tensor *iw = nn_param(g, LDM_SHAPE(3 * c, c), "%s.%s.%d.in_proj_weight", prefix, attn, i);
    ldm_tensor *ib = nn_param(g, LDM_SHAPE(3 * c), "%s.%s.%d.in_proj_bias", prefix, attn, i);
    ldm_tensor *ow = nn_param(g, LDM_SHAPE(c, c), "%s.%s.%d.out_proj.weight", prefix, attn, i);
    ldm_tensor *ob = nn_param(g, LDM_SHAPE(c), "%s.%s.%d.out_proj.bias", prefix, attn, i);
    /* nn.MultiheadAttention: xavier-uniform in_proj, zero biases, out_proj as a Linear's weight */
    nn_init_norm(nw, nb);
    ldm_tensor_set_init(iw, LDM_INIT_UNIFORM, sqrtf(6.0f / (float)(4 * c)));
    ldm_tensor_set_init(ib, LDM_INIT_CONSTANT, 0.0f);
    nn_init_fan_in(ow, NULL, c);
    ldm_tensor_set_init(ob, LDM_INIT_CONSTANT, 0.0f);
    ldm_tensor *a = ldm_reshape(g, x, LDM_SHAPE(n, c, h * w));
    a = ldm_transpose12(g, ldm_group_norm(g, a, norm_channels, 1e-5f, nw, nb));
    a = ldm_multihead_attention(g, a, context, iw, ib, ow, ob, heads, 0, NULL);
    a = ldm_reshape(g, ldm_transpose12(g, a), LDM_SHAPE(n, c, h, w));
    return ldm_add(g, x, a);
}

ldm_tensor *nn_self_attention(ldm_graph *g, const char *prefix, int i, ldm_tensor *x, int heads,
                              int norm_channels) {
    return attention(g, prefix, "attention_norms", "attentions", i, x, NULL, heads, norm_channels);
}

ldm_tensor *nn_cross_attention(ldm_graph *g, const char *prefix, int i, ldm_tensor *x,
                               ldm_tensor *context, int heads, int norm_channels) {
    if (!x || !context) return NULL;
    int c = ldm_tensor_dim(x, 1), d = ldm_tensor_dim(context, -1);
    ldm_tensor *pw = nn_param(g, LDM_SHAPE(c, d), "%s.context_proj.%d.weight", prefix, i);
    ldm_tensor *pb = nn_param(g, LDM_SHAPE(c), "%s.context_proj.%d.bias", prefix, i);
    nn_init_fan_in(pw, pb, d);
    ldm_tensor *ctx = ldm_linear(g, context, pw, pb);
    return attention(g, prefix, "cross_attention_norms", "cross_attentions", i, x, ctx, heads,
                     norm_channels);
}

ldm_tensor *nn_down_block(ldm_graph *g, const char *prefix, ldm_tensor *x, ldm_tensor *t_emb,
                          ldm_tensor *context, int out_channels, int layers, int attn,
                          int down_sample, int heads, int norm_channels) {
    ldm_tensor *out = x;
    for (int l = 0; l < layers; l++) {
        out = nn_resnet(g, prefix, l, out, t_emb, out_channels, norm_channels);
        if (attn) out = nn_self_attention(g, prefix, l, out, heads, norm_channels);
        if (context) out = nn_cross_attention(g, prefix, l, out, context, heads, norm_channels);
    }
    if (!down_sample) return out;
    char name[160];
    snprintf(name, sizeof name, "%s.down_sample_conv", prefix);
    return nn_conv(g, name, out, out_channels, 4, 2, 1, 1);
}

ldm_tensor *nn_mid_block(ldm_graph *g, const char *prefix, ldm_tensor *x, ldm_tensor *t_emb,
                         ldm_tensor *context, int out_channels, int layers, int heads,
                         int norm_channels) {
    ldm_tensor *out = nn_resnet(g, prefix, 0, x, t_emb, out_channels, norm_channels);
    for (int l = 0; l < layers; l++) {
        out = nn_self_attention(g, prefix, l, out, heads, norm_channels);
        if (context) out = nn_cross_attention(g, prefix, l, out, context, heads, norm_channels);
        out = nn_resnet(g, prefix, l + 1, out, t_emb, out_channels, norm_channels);
    }
    return out;
}

ldm_tensor *nn_up_block(ldm_graph *g, const char *prefix, ldm_tensor *x, ldm_tensor *skip,
                        ldm_tensor *t_emb, ldm_tensor *context, int out_channels, int layers,
                        int attn, int up_sample, int heads, int norm_channels) {
    ldm_tensor *out = x;
    if (up_sample && x) {
        int c = ldm_tensor_dim(x, 1);
        ldm_tensor *w = nn_param(g, LDM_SHAPE(c, c, 4, 4), "%s.up_sample_conv.weight", prefix);
        ldm_tensor *b = nn_param(g, LDM_SHAPE(c), "%s.up_sample_conv.bias", prefix);
        nn_init_fan_in(w, b, c * 16); /* ConvTranspose2d: fan-in from weight.size(1) */
        out = ldm_conv_transpose2d(g, out, w, b, 2, 1);
    }
    if (skip) out = ldm_concat(g, out, skip, 1);
    for (int l = 0; l < layers; l++) {
        out = nn_resnet(g, prefix, l, out, t_emb, out_channels, norm_channels);
        if (attn) out = nn_self_attention(g, prefix, l, out, heads, norm_channels);
        if (context) out = nn_cross_attention(g, prefix, l, out, context, heads, norm_channels);
    }
    return out;
}
