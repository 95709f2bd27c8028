/* src/nn/clip_text.c: the CLIP text encoder (see ldmcl/clip.h), recorded on a graph, and its
 * Hugging Face config.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "fail.h"
#include "json.h"
#include "ldmcl/clip.h"
#include "ldmcl/ops.h"

void ldm_clip_text_config_default(ldm_clip_text_config *c) {
    *c = (ldm_clip_text_config){.vocab_size = 49408,
                                .hidden_size = 512,
                                .intermediate_size = 2048,
                                .num_layers = 12,
                                .num_heads = 8,
                                .max_positions = 77,
                                .layer_norm_eps = 1e-5f,
                                .act = LDM_CLIP_QUICK_GELU};
}

#define BAD(...) LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "CLIP text config: " __VA_ARGS__)

ldm_status ldm_clip_text_config_check(const ldm_clip_text_config *c) {
    if (c->vocab_size < 1 || c->vocab_size > (1 << 24))
        return BAD("vocab_size = %d must be in [1, 2^24]", c->vocab_size);
    if (c->hidden_size < 1 || c->intermediate_size < 1 || c->num_layers < 1 || c->num_heads < 1 ||
        c->max_positions < 1)
        return BAD("hidden_size %d, intermediate_size %d, num_hidden_layers %d, "
                   "num_attention_heads %d and max_position_embeddings %d must be positive",
                   c->hidden_size, c->intermediate_size, c->num_layers, c->num_heads,
                   c->max_positions);
    if (c->hidden_size % c->num_heads)
        return BAD("hidden_size = %d is not divisible by num_attention_heads = %d", c->hidden_size,
                   c->num_heads);
    if (!(c->layer_norm_eps > 0)) return BAD("layer_norm_eps = %g", (double)c->layer_norm_eps);
    if (c->act != LDM_CLIP_QUICK_GELU && c->act != LDM_CLIP_GELU)
        return BAD("unknown activation %d", (int)c->act);
    return LDM_OK;
}

/* An integer member (absent: keep *out). */
static ldm_status int_key(const char *path, const ldm_json *o, const char *key, int *out) {
    const ldm_json *v = ldm_json_get(o, key);
    if (!v) return LDM_OK;
    if (v->type != LDM_JSON_NUMBER || !v->is_integer || v->integer < 1 || v->integer > (1 << 24))
        return LDM_FAIL(LDM_ERR_FORMAT, "%s: \"%s\" must be a positive integer", path, key);
    *out = (int)v->integer;
    return LDM_OK;
}

ldm_status ldm_clip_text_config_read(const char *path, ldm_clip_text_config *c) {
    ldm_clip_text_config_default(c);
    FILE *f = fopen(path, "rb");
    if (!f)
        return LDM_FAIL(LDM_ERR_NOT_FOUND,
                        "cannot open the CLIP config '%s' (a Hugging Face model folder's "
                        "config.json)",
                        path);
    char *text = NULL;
    size_t len = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && size < (1 << 24) && fseek(f, 0, SEEK_SET) == 0) {
            text = malloc((size_t)size + 1);
            if (text) len = fread(text, 1, (size_t)size, f);
            if (text && len != (size_t)size) {
                free(text);
                text = NULL;
            }
        }
    }
    fclose(f);
    if (!text) return LDM_FAIL(LDM_ERR_IO, "cannot read '%s' (or it exceeds 16 MiB)", path);
    char err[256];
    ldm_json *root = ldm_json_parse(text, len, err, sizeof err);
    free(text);
    if (!root) return LDM_FAIL(LDM_ERR_FORMAT, "%s: not valid JSON: %s", path, err);
    ldm_status st = LDM_OK;
    const ldm_json *o = root;
    const ldm_json *tc = ldm_json_get(root, "text_config");
    if (root->type != LDM_JSON_OBJECT)
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: not a JSON object", path);
    else if (tc && tc->type != LDM_JSON_OBJECT)
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: \"text_config\" must be an object", path);
    else if (tc)
        o = tc;
    if (st == LDM_OK) st = int_key(path, o, "vocab_size", &c->vocab_size);
    if (st == LDM_OK) st = int_key(path, o, "hidden_size", &c->hidden_size);
    if (st == LDM_OK) st = int_key(path, o, "intermediate_size", &c->intermediate_size);
    if (st == LDM_OK) st = int_key(path, o, "num_hidden_layers", &c->num_layers);
    if (st == LDM_OK) st = int_key(path, o, "num_attention_heads", &c->num_heads);
    if (st == LDM_OK) st = int_key(path, o, "max_position_embeddings", &c->max_positions);
    const ldm_json *eps = st == LDM_OK ? ldm_json_get(o, "layer_norm_eps") : NULL;
    if (eps && (eps->type != LDM_JSON_NUMBER || !(eps->number > 0)))
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: \"layer_norm_eps\" must be a positive number", path);
    else if (eps)
        c->layer_norm_eps = (float)eps->number;
    const ldm_json *act = st == LDM_OK ? ldm_json_get(o, "hidden_act") : NULL;
    if (act && act->type == LDM_JSON_STRING && !strcmp(act->string, "quick_gelu"))
        c->act = LDM_CLIP_QUICK_GELU;
    else if (act && act->type == LDM_JSON_STRING && !strcmp(act->string, "gelu"))
        c->act = LDM_CLIP_GELU;
    else if (act)
        st = LDM_FAIL(LDM_ERR_FORMAT,
                      "%s: \"hidden_act\" is %s%s%s; ldmcl supports \"quick_gelu\" and \"gelu\"",
                      path, act->type == LDM_JSON_STRING ? "\"" : "",
                      act->type == LDM_JSON_STRING ? act->string : "not a string",
                      act->type == LDM_JSON_STRING ? "\"" : "");
    ldm_json_free(root);
    if (st == LDM_OK) {
        st = ldm_clip_text_config_check(c);
        if (st != LDM_OK) ldm_error_prefix("%s", path);
    }
    return st;
}

/* Linear `name` (weight [out, in], bias [out]) initialised as HF's CLIPPreTrainedModel does:
 * weight N(0, std), bias 0. */
static ldm_tensor *linear(ldm_graph *g, const char *name, ldm_tensor *x, int out, float std) {
    if (!x) return NULL;
    int in = ldm_tensor_dim(x, -1);
    ldm_tensor *w = nn_param(g, LDM_SHAPE(out, in), "%s.weight", name);
    ldm_tensor *b = nn_param(g, LDM_SHAPE(out), "%s.bias", name);
    ldm_tensor_set_init(w, LDM_INIT_NORMAL, std);
    ldm_tensor_set_init(b, LDM_INIT_CONSTANT, 0.0f);
    return ldm_linear(g, x, w, b);
}

static ldm_tensor *layer_norm(ldm_graph *g, const char *name, ldm_tensor *x, float eps) {
    if (!x) return NULL;
    int d = ldm_tensor_dim(x, -1);
    ldm_tensor *w = nn_param(g, LDM_SHAPE(d), "%s.weight", name);
    ldm_tensor *b = nn_param(g, LDM_SHAPE(d), "%s.bias", name);
    nn_init_norm(w, b);
    return ldm_layer_norm(g, x, eps, w, b);
}

/* One CLIPEncoderLayer. ignore: [N, S] (1: a padding key) or NULL. */
static ldm_tensor *encoder_layer(ldm_graph *g, const ldm_clip_text_config *c, int i, ldm_tensor *h,
                                 ldm_tensor *ignore) {
    char p[96], name[160];
    snprintf(p, sizeof p, "text_model.encoder.layers.%d", i);
    int d = c->hidden_size;
    /* HF's initialisation: q, k, v and fc2 N(0, d^-1/2 (2L)^-1/2), out_proj N(0, d^-1/2), fc1
     * N(0, (2d)^-1/2) */
    float in_std = 1.0f / sqrtf((float)d) / sqrtf(2.0f * (float)c->num_layers);
    float out_std = 1.0f / sqrtf((float)d), fc_std = 1.0f / sqrtf(2.0f * (float)d);
    snprintf(name, sizeof name, "%s.layer_norm1", p);
    ldm_tensor *x = layer_norm(g, name, h, c->layer_norm_eps);
    snprintf(name, sizeof name, "%s.self_attn.q_proj", p);
    ldm_tensor *q = linear(g, name, x, d, in_std);
    snprintf(name, sizeof name, "%s.self_attn.k_proj", p);
    ldm_tensor *k = linear(g, name, x, d, in_std);
    snprintf(name, sizeof name, "%s.self_attn.v_proj", p);
    ldm_tensor *v = linear(g, name, x, d, in_std);
    ldm_tensor *qkv = ldm_concat(g, ldm_concat(g, q, k, 2), v, 2);
    ldm_tensor *a = ldm_attention_packed(g, qkv, c->num_heads, 1, ignore);
    snprintf(name, sizeof name, "%s.self_attn.out_proj", p);
    h = ldm_add(g, h, linear(g, name, a, d, out_std));
    snprintf(name, sizeof name, "%s.layer_norm2", p);
    x = layer_norm(g, name, h, c->layer_norm_eps);
    snprintf(name, sizeof name, "%s.mlp.fc1", p);
    x = linear(g, name, x, c->intermediate_size, fc_std);
    x = c->act == LDM_CLIP_GELU ? ldm_gelu(g, x) : ldm_quick_gelu(g, x);
    snprintf(name, sizeof name, "%s.mlp.fc2", p);
    return ldm_add(g, h, linear(g, name, x, d, in_std));
}

ldm_tensor *ldm_clip_text(ldm_graph *g, const ldm_clip_text_config *c, ldm_tensor *ids,
                          ldm_tensor *attention_mask, int skip) {
    if (!ids || ldm_graph_status(g) != LDM_OK) return NULL;
    ldm_status st = ldm_clip_text_config_check(c);
    if (st != LDM_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", ldm_last_error());
        return LDM_GRAPH_FAIL(g, st, "%s", why);
    }
    char si[64];
    if (ldm_tensor_ndim(ids) != 2 || ldm_tensor_dim(ids, 1) > c->max_positions)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "CLIP text: token ids '%s' %s must be [N, S] with S <= %d positions",
                              ldm_tensor_name(ids), ldm_shape_str(ids, si, sizeof si),
                              c->max_positions);
    int n = ldm_tensor_dim(ids, 0), s = ldm_tensor_dim(ids, 1);
    if (attention_mask &&
        (ldm_tensor_ndim(attention_mask) != 2 || ldm_tensor_dim(attention_mask, 0) != n ||
         ldm_tensor_dim(attention_mask, 1) != s))
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "CLIP text: the attention mask '%s' must be [%d, %d] like the ids",
                              ldm_tensor_name(attention_mask), n, s);
    if (skip < 0 || skip >= c->num_layers)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "CLIP text: skipping %d of %d layers",
                              skip, c->num_layers);
    int d = c->hidden_size;
    ldm_tensor *tok =
        nn_param(g, LDM_SHAPE(c->vocab_size, d), "text_model.embeddings.token_embedding.weight");
    ldm_tensor *pos = nn_param(g, LDM_SHAPE(c->max_positions, d),
                               "text_model.embeddings.position_embedding.weight");
    ldm_tensor_set_init(tok, LDM_INIT_NORMAL, 0.02f); /* HF's CLIP initialisation */
    ldm_tensor_set_init(pos, LDM_INIT_NORMAL, 0.02f);
    float *positions = malloc((size_t)n * (size_t)s * sizeof *positions);
    if (!positions) return LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
    for (int r = 0; r < n; r++)
        for (int j = 0; j < s; j++)
            positions[r * s + j] = (float)j;
    char pname[64];
    snprintf(pname, sizeof pname, "clip.position_ids.%dx%d", n, s);
    ldm_tensor *pid = ldm_graph_constant(g, pname, LDM_SHAPE(n, s), positions);
    free(positions);
    ldm_tensor *h = ldm_add(g, ldm_embedding(g, ids, tok), ldm_embedding(g, pid, pos));
    ldm_tensor *ignore = attention_mask ? ldm_affine(g, attention_mask, -1.0f, 1.0f) : NULL;
    for (int i = 0; i < c->num_layers - skip; i++)
        h = encoder_layer(g, c, i, h, ignore);
    return layer_norm(g, "text_model.final_layer_norm", h, c->layer_norm_eps);
}

ldm_status ldm_clip_text_param_count(ldm_ctx *ctx, const ldm_clip_text_config *c, size_t *count) {
    *count = 0;
    LDM_TRY(ldm_clip_text_config_check(c));
    ldm_graph *g;
    LDM_TRY(ldm_graph_create(ctx, &g));
    ldm_clip_text(g, c, ldm_graph_input(g, "ids", LDM_SHAPE(1, 1)), NULL, 0);
    ldm_status st = ldm_graph_status(g);
    if (st != LDM_OK) st = ldm_restore_error(st, ldm_graph_error(g));
    for (size_t i = 0; i < ldm_graph_param_count(g) && st == LDM_OK; i++)
        *count += ldm_tensor_numel(ldm_graph_param_at(g, i));
    ldm_graph_destroy(g);
    return st;
}
