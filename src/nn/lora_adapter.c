/* src/nn/lora_adapter.c: LoRA adapters recorded in place of the targeted weights (see
 * ldmcl/lora_adapter.h): W + alpha / rank * up . down, the product formed once per use from the
 * two adapter parameters (GEMMs of rank columns, small beside the layer's own); and the adapters
 * merged into the weights for writing a model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "fail.h"
#include "ldmcl/lora_adapter.h"
#include "ldmcl/ops.h"

ldm_status ldm_lora_targets_parse(const char *text, unsigned *targets) {
    static const struct {
        const char *name;
        unsigned bits;
    } forms[] = {{"attn", LDM_LORA_ATTN},
                 {"attn+ff", LDM_LORA_ATTN | LDM_LORA_FF},
                 {"all_linear", LDM_LORA_ATTN | LDM_LORA_FF | LDM_LORA_LINEAR}};
    size_t n = strlen(text), conv = n >= 5 && !strcmp(text + n - 5, "+conv") ? 5 : 0;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        if (strlen(forms[i].name) == n - conv && !strncmp(text, forms[i].name, n - conv)) {
            *targets = forms[i].bits | (conv ? LDM_LORA_CONV : 0u);
            return LDM_OK;
        }
    return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                    "LoRA targets '%s': attn, attn+ff or all_linear, optionally +conv", text);
}

int ldm_lora_is_adapter(const char *name) {
    size_t n = strlen(name);
    return (n > 17 && !strcmp(name + n - 17, ".lora_down.weight")) ||
           (n > 15 && !strcmp(name + n - 15, ".lora_up.weight"));
}

unsigned ldm_lora_kind(const char *name, int ndim, const int *shape) {
    size_t n = strlen(name);
    int weight = (n > 7 && !strcmp(name + n - 7, ".weight")) ||
                 (n > 14 && !strcmp(name + n - 14, "in_proj_weight"));
    if (!weight || (ndim != 2 && ndim != 4) || ldm_lora_is_adapter(name) ||
        strstr(name, "embedding") || strstr(name, "norm"))
        return 0;
    if (strstr(name, ".attn1.") || strstr(name, ".attn2.") || strstr(name, "self_attn.") ||
        strstr(name, "in_proj_weight") || strstr(name, "context_proj.") ||
        (strstr(name, "attentions.") && strstr(name, ".out_proj.")))
        return LDM_LORA_ATTN;
    if (strstr(name, ".ff.net.") || strstr(name, ".mlp.")) return LDM_LORA_FF;
    /* kohya's scope: the blocks, not the UNets' first and last convolutions nor their time and
     * class embeddings (A1111, ComfyUI and diffusers read no adapters there) */
    static const char *outside[] = {"time_embed.", "input_blocks.0.", "out.",    "conv_in",
                                    "conv_out",    "cond_conv_in",    "t_proj.", "class_emb"};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++)
        if (!strncmp(name, outside[i], strlen(outside[i]))) return 0;
    if (ndim == 4 && (shape[2] > 1 || shape[3] > 1)) return LDM_LORA_CONV;
    return LDM_LORA_LINEAR;
}

/* The adapter parameter `module`.`part` of this shape: created on first use, found after. */
static ldm_tensor *adapter(ldm_graph *g, const char *module, const char *part, int ndim,
                           const int *shape, float init) {
    char name[300];
    snprintf(name, sizeof name, "%s.%s", module, part);
    ldm_tensor *t = ldm_graph_find(g, name);
    if (t) return t;
    t = ldm_graph_param(g, name, ndim, shape);
    if (t) ldm_tensor_set_init(t, init > 0 ? LDM_INIT_UNIFORM : LDM_INIT_CONSTANT, init);
    return t;
}

ldm_tensor *nn_lora_adapt(ldm_graph *g, const char *name, ldm_tensor *w) {
    const ldm_lora_config *c = ldm_graph_lora(g);
    if (!c || !w) return w;
    if (c->skip_prefix && !strncmp(name, c->skip_prefix, strlen(c->skip_prefix))) return w;
    int ndim = ldm_tensor_ndim(w), shape[LDM_MAX_DIMS];
    for (int d = 0; d < ndim; d++)
        shape[d] = ldm_tensor_dim(w, d);
    if (!(ldm_lora_kind(name, ndim, shape) & c->targets)) return w;
    char module[260];
    size_t n = strlen(name);
    snprintf(module, sizeof module, "%.*s", (int)(n - 7), name); /* less .weight / _weight */
    int out = shape[0], in = (int)(ldm_tensor_numel(w) / (size_t)out), r = c->rank;
    int down_shape[4] = {r, shape[1], ndim == 4 ? shape[2] : 1, ndim == 4 ? shape[3] : 1};
    int up_shape[4] = {out, r, 1, 1};
    ldm_tensor *down =
        adapter(g, module, "lora_down.weight", ndim, down_shape, 1.0f / sqrtf((float)in));
    ldm_tensor *up = adapter(g, module, "lora_up.weight", ndim, up_shape, 0.0f);
    if (!down || !up) return NULL;
    ldm_tensor *delta = ldm_matmul(g, ldm_reshape(g, up, LDM_SHAPE(out, r)),
                                   ldm_reshape(g, down, LDM_SHAPE(r, in)));
    ldm_tensor *adapted =
        ldm_axpby_t(g, 1.0f, w, c->alpha / (float)r, ldm_reshape(g, delta, ndim, shape));
    ldm_tensor_set_init_target(adapted, w); /* the layer's initialisation rule is W's */
    return adapted;
}

void ldm_lora_add_product(float *w, const float *up, const float *down, size_t out, size_t rank,
                          size_t in, double scale) {
    for (size_t o = 0; o < out; o++)
        for (size_t i = 0; i < in; i++) {
            double sum = 0;
            for (size_t r = 0; r < rank; r++)
                sum += (double)up[o * rank + r] * down[r * in + i];
            w[o * in + i] += (float)(scale * sum);
        }
}

struct ldm_lora_merged {
    int n;
    ldm_tensor **targets;
    float **kept; /* each target's values before the merge */
};

/* The weight an adapter pair's module adapts: <module>.weight, or <module>_weight
 * (in_proj_weight). */
static ldm_tensor *adapted_weight(ldm_graph *g, const char *module) {
    char name[320];
    snprintf(name, sizeof name, "%s.weight", module);
    ldm_tensor *t = ldm_graph_find(g, name);
    if (t) return t;
    snprintf(name, sizeof name, "%s_weight", module);
    return ldm_graph_find(g, name);
}

/* W += scale * up . down for the pair of down adapter d, W's values kept in m. */
static ldm_status merge_pair(ldm_graph *g, ldm_tensor *d, double alpha, ldm_lora_merged *m) {
    const char *name = ldm_tensor_name(d);
    char module[300], up_name[320];
    snprintf(module, sizeof module, "%.*s", (int)(strlen(name) - 17), name);
    snprintf(up_name, sizeof up_name, "%s.lora_up.weight", module);
    ldm_tensor *u = ldm_graph_find(g, up_name), *w = adapted_weight(g, module);
    if (!u || !w)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "LoRA adapter '%s': no %s", name,
                        u ? "weight it adapts" : "lora_up beside it");
    size_t rank = (size_t)ldm_tensor_dim(d, 0), n = ldm_tensor_numel(w);
    size_t out = (size_t)ldm_tensor_dim(w, 0), in = n / out;
    float *down = malloc(ldm_tensor_numel(d) * sizeof *down);
    float *up = malloc(ldm_tensor_numel(u) * sizeof *up), *kept = malloc(n * sizeof *kept);
    float *merged = malloc(n * sizeof *merged);
    ldm_status st =
        down && up && kept && merged ? LDM_OK : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (st == LDM_OK) st = ldm_tensor_read(d, down);
    if (st == LDM_OK) st = ldm_tensor_read(u, up);
    if (st == LDM_OK) st = ldm_tensor_read(w, kept);
    if (st == LDM_OK) {
        memcpy(merged, kept, n * sizeof *merged);
        ldm_lora_add_product(merged, up, down, out, rank, in, alpha / (double)rank);
        st = ldm_tensor_write(w, merged);
    }
    if (st == LDM_OK) { /* m has room: counted before */
        m->targets[m->n] = w;
        m->kept[m->n++] = kept;
        kept = NULL;
    }
    free(down);
    free(up);
    free(kept);
    free(merged);
    return st;
}

ldm_status ldm_lora_merge_adapters(ldm_graph *g, ldm_lora_merged **out) {
    *out = NULL;
    const ldm_lora_config *c = ldm_graph_lora(g);
    if (!c) return LDM_OK;
    size_t pairs = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++)
        pairs += strstr(ldm_tensor_name(ldm_graph_param_at(g, i)), ".lora_down.weight") != NULL;
    ldm_lora_merged *m = calloc(1, sizeof *m);
    if (m) m->targets = calloc(pairs + 1, sizeof *m->targets);
    if (m) m->kept = calloc(pairs + 1, sizeof *m->kept);
    if (!m || !m->targets || !m->kept) {
        ldm_lora_unmerge(m);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    ldm_status st = LDM_OK;
    for (size_t i = 0; st == LDM_OK && i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        if (strstr(ldm_tensor_name(p), ".lora_down.weight")) st = merge_pair(g, p, c->alpha, m);
    }
    if (st != LDM_OK) {
        ldm_lora_unmerge(m); /* what was merged goes back */
        return st;
    }
    *out = m;
    return LDM_OK;
}

ldm_status ldm_lora_unmerge(ldm_lora_merged *m) {
    if (!m) return LDM_OK;
    ldm_status st = LDM_OK;
    for (int i = 0; i < m->n; i++) {
        ldm_status e = ldm_tensor_write(m->targets[i], m->kept[i]);
        if (st == LDM_OK) st = e;
        free(m->kept[i]);
    }
    free(m->targets);
    free(m->kept);
    free(m);
    return st;
}
