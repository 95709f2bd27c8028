/* src/nn/sd_unet.c: Stable Diffusion's UNet (see ldmcl/sd_unet.h), recorded on a graph. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "blocks.h"
#include "fail.h"
#include "ldmcl/ops.h"
#include "ldmcl/sd_unet.h"

void ldm_sd_unet_config_sd1(ldm_sd_unet_config *c) {
    *c = (ldm_sd_unet_config){.in_channels = 4,
                              .out_channels = 4,
                              .model_channels = 320,
                              .channel_mult = {1, 2, 4, 4},
                              .n_levels = 4,
                              .attn_levels = {1, 1, 1, 0},
                              .num_res_blocks = 2,
                              .num_heads = 8,
                              .transformer_depth = 1,
                              .context_dim = 768,
                              .norm_groups = 32};
}

void ldm_sd_unet_config_sd2(ldm_sd_unet_config *c) {
    ldm_sd_unet_config_sd1(c);
    c->num_heads = 0;
    c->head_channels = 64;
    c->context_dim = 1024;
    c->linear_proj = 1;
}

#define LDM_SD_STR_(x) #x
#define LDM_SD_STR(x) LDM_SD_STR_(x)
#define BAD(...) LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "SD UNet config: " __VA_ARGS__)

int ldm_sd_unet_heads(const ldm_sd_unet_config *c, int channels) {
    return c->num_heads > 0 ? c->num_heads : channels / c->head_channels;
}

ldm_status ldm_sd_unet_config_check(const ldm_sd_unet_config *c) {
    if (c->in_channels < 1 || c->out_channels < 1 || c->model_channels < 1)
        return BAD("in_channels %d, out_channels %d and model_channels %d must be positive",
                   c->in_channels, c->out_channels, c->model_channels);
    if (c->n_levels < 1 || c->n_levels > LDM_SD_MAX_LEVELS)
        return BAD("%d levels (channel_mult): 1 to %d", c->n_levels, LDM_SD_MAX_LEVELS);
    if (c->num_res_blocks < 1 || c->num_res_blocks > LDM_SD_MAX_RES_BLOCKS ||
        c->transformer_depth < 1 || c->context_dim < 1)
        return BAD("num_res_blocks %d (1 to " LDM_SD_STR(
                       LDM_SD_MAX_RES_BLOCKS) "), transformer_depth %d and context_dim %d must be "
                                              "positive",
                   c->num_res_blocks, c->transformer_depth, c->context_dim);
    if ((c->num_heads > 0) == (c->head_channels > 0))
        return BAD("give either num_heads (%d) or head_channels (%d)", c->num_heads,
                   c->head_channels);
    if (c->norm_groups < 1 || c->model_channels % c->norm_groups)
        return BAD("model_channels %d is not divisible by norm_groups %d", c->model_channels,
                   c->norm_groups);
    for (int l = 0; l < c->n_levels; l++) {
        int ch = c->model_channels * c->channel_mult[l];
        if (c->channel_mult[l] < 1 || ch % c->norm_groups)
            return BAD("level %d: %d channels (mult %d) must be positive and divisible by "
                       "norm_groups %d",
                       l, ch, c->channel_mult[l], c->norm_groups);
        int heads = ldm_sd_unet_heads(c, ch);
        if (c->attn_levels[l] && (heads < 1 || ch % heads))
            return BAD("level %d: %d channels do not split into %d heads", l, ch, heads);
    }
    return LDM_OK;
}

/* Linear `name` (weight [out, in], bias [out] if bias) of x's last dimension. */
static ldm_tensor *linear(ldm_graph *g, const char *name, ldm_tensor *x, int out, int bias) {
    if (!x) return NULL;
    int in = ldm_tensor_dim(x, -1);
    ldm_tensor *w = nn_param(g, LDM_SHAPE(out, in), "%s.weight", name);
    ldm_tensor *b = bias ? nn_param(g, LDM_SHAPE(out), "%s.bias", name) : NULL;
    nn_init_fan_in(w, b, in);
    return ldm_linear(g, x, w, b);
}

static ldm_tensor *group_norm(ldm_graph *g, const char *name, ldm_tensor *x, int groups,
                              float eps) {
    if (!x) return NULL;
    int c = ldm_tensor_dim(x, 1);
    ldm_tensor *w = nn_param(g, LDM_SHAPE(c), "%s.weight", name);
    ldm_tensor *b = nn_param(g, LDM_SHAPE(c), "%s.bias", name);
    nn_init_norm(w, b);
    return ldm_group_norm(g, x, groups, eps, w, b);
}

static ldm_tensor *layer_norm(ldm_graph *g, const char *name, ldm_tensor *x) {
    if (!x) return NULL;
    int c = ldm_tensor_dim(x, -1);
    ldm_tensor *w = nn_param(g, LDM_SHAPE(c), "%s.weight", name);
    ldm_tensor *b = nn_param(g, LDM_SHAPE(c), "%s.bias", name);
    nn_init_norm(w, b);
    return ldm_layer_norm(g, x, 1e-5f, w, b);
}

/* The original zero-initialises the last layer of a residual branch (zero_module). */
static void zero_init(ldm_graph *g, const char *name) {
    char key[160];
    snprintf(key, sizeof key, "%s.weight", name);
    ldm_tensor *w = ldm_graph_find(g, key);
    snprintf(key, sizeof key, "%s.bias", name);
    ldm_tensor *b = ldm_graph_find(g, key);
    if (w) ldm_tensor_set_init(w, LDM_INIT_CONSTANT, 0.0f);
    if (b) ldm_tensor_set_init(b, LDM_INIT_CONSTANT, 0.0f);
}

/* buf (160 bytes) = the formatted name; module names here stay far below that. */
__attribute__((format(printf, 2, 3))) static char *name_at(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, 160, fmt, ap);
    va_end(ap);
    return buf;
}
#define NAME(buf, ...) name_at(buf, __VA_ARGS__)

static ldm_tensor *res_block_nodes(ldm_graph *g, const ldm_sd_unet_config *c, const char *p,
                                   ldm_tensor *x, ldm_tensor *emb, int cout) {
    if (!x) return NULL;
    char n[160];
    int cin = ldm_tensor_dim(x, 1), G = c->norm_groups;
    ldm_tensor *h = ldm_silu(g, group_norm(g, NAME(n, "%s.in_layers.0", p), x, G, 1e-5f));
    h = nn_conv(g, NAME(n, "%s.in_layers.2", p), h, cout, 3, 1, 1, 1);
    h = ldm_add_channels(g, h, linear(g, NAME(n, "%s.emb_layers.1", p), ldm_silu(g, emb), cout, 1));
    h = ldm_silu(g, group_norm(g, NAME(n, "%s.out_layers.0", p), h, G, 1e-5f));
    h = nn_conv(g, NAME(n, "%s.out_layers.3", p), h, cout, 3, 1, 1, 1);
    zero_init(g, n);
    ldm_tensor *skip = x;
    if (cin != cout) skip = nn_conv(g, NAME(n, "%s.skip_connection", p), x, cout, 1, 1, 0, 1);
    return ldm_add(g, skip, h);
}

/* attn1 (context NULL) or attn2 over tokens x [N, L, C]. */
static ldm_tensor *attention(ldm_graph *g, const char *p, ldm_tensor *x, ldm_tensor *context,
                             int heads) {
    if (!x) return NULL;
    char n[160];
    int c = ldm_tensor_dim(x, 2), d = context ? ldm_tensor_dim(context, 2) : c;
    ldm_tensor *wq = nn_param(g, LDM_SHAPE(c, c), "%s.to_q.weight", p);
    ldm_tensor *wk = nn_param(g, LDM_SHAPE(c, d), "%s.to_k.weight", p);
    ldm_tensor *wv = nn_param(g, LDM_SHAPE(c, d), "%s.to_v.weight", p);
    nn_init_fan_in(wq, NULL, c);
    nn_init_fan_in(wk, NULL, d);
    nn_init_fan_in(wv, NULL, d);
    ldm_tensor *a;
    if (!context) { /* one projection of the weights side by side: q, k, v */
        ldm_tensor *w = ldm_concat(g, ldm_concat(g, wq, wk, 0), wv, 0);
        a = ldm_attention_packed(g, ldm_linear(g, x, w, NULL), heads, 0, NULL);
    } else {
        ldm_tensor *kv = ldm_linear(g, context, ldm_concat(g, wk, wv, 0), NULL);
        a = ldm_attention_cross(g, ldm_linear(g, x, wq, NULL), kv, heads, NULL);
    }
    return linear(g, NAME(n, "%s.to_out.0", p), a, c, 1);
}

static ldm_tensor *transformer_block(ldm_graph *g, const char *p, ldm_tensor *x,
                                     ldm_tensor *context, int heads) {
    char n[160], m[160];
    int c = x ? ldm_tensor_dim(x, 2) : 0;
    x = ldm_add(g, x,
                attention(g, NAME(n, "%s.attn1", p), layer_norm(g, NAME(m, "%s.norm1", p), x), NULL,
                          heads));
    x = ldm_add(g, x,
                attention(g, NAME(n, "%s.attn2", p), layer_norm(g, NAME(m, "%s.norm2", p), x),
                          context, heads));
    ldm_tensor *h = linear(g, NAME(n, "%s.ff.net.0.proj", p),
                           layer_norm(g, NAME(m, "%s.norm3", p), x), 8 * c, 1);
    h = linear(g, NAME(n, "%s.ff.net.2", p), ldm_geglu(g, h), c, 1);
    return ldm_add(g, x, h);
}

static ldm_tensor *spatial_transformer_nodes(ldm_graph *g, const ldm_sd_unet_config *c,
                                             const char *p, ldm_tensor *x, ldm_tensor *context) {
    if (!x) return NULL;
    char n[160];
    int N = ldm_tensor_dim(x, 0), C = ldm_tensor_dim(x, 1), H = ldm_tensor_dim(x, 2);
    int W = ldm_tensor_dim(x, 3), heads = ldm_sd_unet_heads(c, C);
    ldm_tensor *h = group_norm(g, NAME(n, "%s.norm", p), x, c->norm_groups, 1e-6f);
    if (!c->linear_proj) h = nn_conv(g, NAME(n, "%s.proj_in", p), h, C, 1, 1, 0, 1);
    h = ldm_transpose12(g, ldm_reshape(g, h, LDM_SHAPE(N, C, H * W))); /* [N, HW, C] tokens */
    if (c->linear_proj) h = linear(g, NAME(n, "%s.proj_in", p), h, C, 1);
    for (int d = 0; d < c->transformer_depth; d++)
        h = transformer_block(g, NAME(n, "%s.transformer_blocks.%d", p, d), h, context, heads);
    if (c->linear_proj) {
        h = linear(g, NAME(n, "%s.proj_out", p), h, C, 1);
        zero_init(g, n);
    }
    h = ldm_reshape(g, ldm_transpose12(g, h), LDM_SHAPE(N, C, H, W));
    if (!c->linear_proj) {
        h = nn_conv(g, NAME(n, "%s.proj_out", p), h, C, 1, 1, 0, 1);
        zero_init(g, n);
    }
    return ldm_add(g, x, h);
}

/* Each ResBlock and transformer is a gradient-checkpointing segment (as diffusers checkpoints
 * them): recomputed in backward when the graph checkpoints. */
static ldm_tensor *res_block(ldm_graph *g, const ldm_sd_unet_config *c, const char *p,
                             ldm_tensor *x, ldm_tensor *emb, int cout) {
    ldm_graph_segment_begin(g);
    ldm_tensor *h = res_block_nodes(g, c, p, x, emb, cout);
    ldm_graph_segment_end(g);
    return h;
}

static ldm_tensor *spatial_transformer(ldm_graph *g, const ldm_sd_unet_config *c, const char *p,
                                       ldm_tensor *x, ldm_tensor *context) {
    ldm_graph_segment_begin(g);
    ldm_tensor *h = spatial_transformer_nodes(g, c, p, x, context);
    ldm_graph_segment_end(g);
    return h;
}

static ldm_status check_inputs(const ldm_sd_unet_config *c, ldm_tensor *x, ldm_tensor *t,
                               ldm_tensor *context) {
    char sx[64], sc[64];
    int f = 1 << (c->n_levels - 1);
    if (ldm_tensor_ndim(x) != 4 || ldm_tensor_dim(x, 1) != c->in_channels ||
        ldm_tensor_dim(x, 2) % f || ldm_tensor_dim(x, 3) % f)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "SD UNet: input '%s' %s must be [N, %d, H, W] with H and W multiples of %d",
                        ldm_tensor_name(x), ldm_shape_str(x, sx, sizeof sx), c->in_channels, f);
    int n = ldm_tensor_dim(x, 0);
    if (ldm_tensor_ndim(t) != 1 || ldm_tensor_dim(t, 0) != n)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "SD UNet: timesteps %s for %d samples",
                        ldm_shape_str(t, sx, sizeof sx), n);
    if (!context || ldm_tensor_ndim(context) != 3 || ldm_tensor_dim(context, 0) != n ||
        ldm_tensor_dim(context, 2) != c->context_dim)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "SD UNet: the context %s must be [%d, S, %d]",
                        context ? ldm_shape_str(context, sc, sizeof sc) : "(none)", n,
                        c->context_dim);
    return LDM_OK;
}

ldm_tensor *ldm_sd_unet(ldm_graph *g, const ldm_sd_unet_config *c, ldm_tensor *x, ldm_tensor *t,
                        ldm_tensor *context) {
    if (!x || !t || ldm_graph_status(g) != LDM_OK) return NULL;
    ldm_status st = ldm_sd_unet_config_check(c);
    if (st == LDM_OK) st = check_inputs(c, x, t, context);
    if (st != LDM_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", ldm_last_error());
        return LDM_GRAPH_FAIL(g, st, "%s", why);
    }
    char n[160];
    int mc = c->model_channels, temb = 4 * mc;
    ldm_tensor *emb = ldm_timestep_sinusoidal(g, t, mc, 1, 0.0f);
    emb = linear(g, "time_embed.0", emb, temb, 1);
    emb = linear(g, "time_embed.2", ldm_silu(g, emb), temb, 1);

    ldm_tensor *skips[LDM_SD_MAX_LEVELS * (LDM_SD_MAX_RES_BLOCKS + 1) + 1];
    int n_skips = 0, k = 0;
    ldm_tensor *h = nn_conv(g, "input_blocks.0.0", x, mc, 3, 1, 1, 1);
    skips[n_skips++] = h;
    for (int l = 0; l < c->n_levels; l++) {
        int ch = mc * c->channel_mult[l];
        for (int b = 0; b < c->num_res_blocks; b++) {
            k++;
            h = res_block(g, c, NAME(n, "input_blocks.%d.0", k), h, emb, ch);
            if (c->attn_levels[l])
                h = spatial_transformer(g, c, NAME(n, "input_blocks.%d.1", k), h, context);
            skips[n_skips++] = h;
        }
        if (l + 1 < c->n_levels) {
            k++;
            h = nn_conv(g, NAME(n, "input_blocks.%d.0.op", k), h, ch, 3, 2, 1, 1);
            skips[n_skips++] = h;
        }
    }
    int top = mc * c->channel_mult[c->n_levels - 1];
    h = res_block(g, c, "middle_block.0", h, emb, top);
    h = spatial_transformer(g, c, "middle_block.1", h, context);
    h = res_block(g, c, "middle_block.2", h, emb, top);

    k = 0;
    for (int l = c->n_levels - 1; l >= 0; l--) {
        int ch = mc * c->channel_mult[l];
        for (int b = 0; b <= c->num_res_blocks; b++, k++) {
            h = ldm_concat(g, h, skips[--n_skips], 1);
            h = res_block(g, c, NAME(n, "output_blocks.%d.0", k), h, emb, ch);
            int sub = 1;
            if (c->attn_levels[l])
                h = spatial_transformer(g, c, NAME(n, "output_blocks.%d.%d", k, sub++), h, context);
            if (l > 0 && b == c->num_res_blocks) {
                int hh = h ? ldm_tensor_dim(h, 2) : 0, ww = h ? ldm_tensor_dim(h, 3) : 0;
                h = ldm_resize_nearest(g, h, 2 * hh, 2 * ww);
                h = nn_conv(g, NAME(n, "output_blocks.%d.%d.conv", k, sub), h, ch, 3, 1, 1, 1);
            }
        }
    }
    h = ldm_silu(g, group_norm(g, "out.0", h, c->norm_groups, 1e-5f));
    h = nn_conv(g, "out.2", h, c->out_channels, 3, 1, 1, 1);
    zero_init(g, "out.2");
    return h;
}

ldm_status ldm_sd_unet_param_count(ldm_ctx *ctx, const ldm_sd_unet_config *c, size_t *count) {
    *count = 0;
    LDM_TRY(ldm_sd_unet_config_check(c));
    ldm_graph *g;
    LDM_TRY(ldm_graph_create(ctx, &g));
    int f = 1 << (c->n_levels - 1);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, c->in_channels, f, f));
    ldm_tensor *t = ldm_graph_input(g, "t", LDM_SHAPE(1));
    ldm_tensor *ctxt = ldm_graph_input(g, "context", LDM_SHAPE(1, 1, c->context_dim));
    ldm_sd_unet(g, c, x, t, ctxt);
    ldm_status st = ldm_graph_status(g);
    if (st != LDM_OK) st = ldm_restore_error(st, ldm_graph_error(g));
    for (size_t i = 0; i < ldm_graph_param_count(g) && st == LDM_OK; i++)
        *count += ldm_tensor_numel(ldm_graph_param_at(g, i));
    ldm_graph_destroy(g);
    return st;
}
