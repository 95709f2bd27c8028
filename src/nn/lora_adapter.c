/* src/nn/lora_adapter.c: LoRA adapters recorded in place of the targeted weights (see
 * ldmcl/lora_adapter.h): W + alpha / rank * up . down, the product formed once per use from the
 * two adapter parameters (GEMMs of rank columns, small beside the layer's own). */
#include <math.h>
#include <stdio.h>
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
    return ldm_axpby_t(g, 1.0f, w, c->alpha / (float)r, ldm_reshape(g, delta, ndim, shape));
}
