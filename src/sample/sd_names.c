/* src/sample/sd_names.c: where Stable Diffusion's parameters are in the files users have (see
 * sd_names.h): diffusers' folder layout renamed to the original repository's names that ldmcl
 * records, and OpenCLIP's text tower (2.x single files) read as Hugging Face's CLIPTextModel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "sd_names.h"

/* diffusers' ResnetBlock2D members beside the original's ResBlock members (the UNet's), and the
 * lookup either way: to_original, diffusers' -> the original's; else the reverse. */
static const char *const resnet_members[][2] = {
    {"norm1", "in_layers.0"},  {"conv1", "in_layers.2"},  {"time_emb_proj", "emb_layers.1"},
    {"norm2", "out_layers.0"}, {"conv2", "out_layers.3"}, {"conv_shortcut", "skip_connection"}};

static const char *resnet_member(const char *m, int to_original) {
    for (size_t i = 0; i < sizeof resnet_members / sizeof resnet_members[0]; i++)
        if (!strcmp(m, resnet_members[i][!to_original])) return resnet_members[i][to_original];
    return NULL;
}

/* diffusers' ResnetBlock2D member -> the original's (UNet: ResBlock; VAE: ResnetBlock). */
static const char *unet_resnet(const char *m) {
    return resnet_member(m, 1);
}

static const char *vae_resnet(const char *m) {
    if (!strcmp(m, "conv_shortcut")) return "nin_shortcut";
    if (!strcmp(m, "norm1") || !strcmp(m, "conv1") || !strcmp(m, "norm2") || !strcmp(m, "conv2"))
        return m;
    return NULL;
}

/* Splits "member.leaf" (leaf: weight or bias) at its last dot into member (in buf) and leaf. */
static int split_leaf(const char *rest, char *member, size_t size, const char **leaf) {
    const char *dot = strrchr(rest, '.');
    if (!dot || (size_t)(dot - rest) >= size) return 0;
    memcpy(member, rest, (size_t)(dot - rest));
    member[dot - rest] = '\0';
    *leaf = dot + 1;
    return 1;
}

#define PUT(...) (snprintf(out, size, __VA_ARGS__) < (int)size)

int ldm_sd_unet_name_from_diffusers(const char *key, int layers_per_block,
                                    const int *up_has_attention, int n_levels, char *out,
                                    size_t size) {
    static const char *fixed[][2] = {{"time_embedding.linear_1.", "time_embed.0."},
                                     {"time_embedding.linear_2.", "time_embed.2."},
                                     {"conv_in.", "input_blocks.0.0."},
                                     {"conv_norm_out.", "out.0."},
                                     {"conv_out.", "out.2."}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        size_t n = strlen(fixed[i][0]);
        if (!strncmp(key, fixed[i][0], n)) return PUT("%s%s", fixed[i][1], key + n);
    }
    int L = layers_per_block, a, b, len = 0;
    char kind[16], member[96];
    const char *leaf;
    if (sscanf(key, "down_blocks.%d.%15[a-z].%d.%n", &a, kind, &b, &len) == 3 && len) {
        int k = 1 + a * (L + 1) + b;
        if (!strcmp(kind, "attentions")) return PUT("input_blocks.%d.1.%s", k, key + len);
        if (!strcmp(kind, "resnets") && split_leaf(key + len, member, sizeof member, &leaf) &&
            unet_resnet(member))
            return PUT("input_blocks.%d.0.%s.%s", k, unet_resnet(member), leaf);
        if (!strcmp(kind, "downsamplers") && b == 0 && !strncmp(key + len, "conv.", 5))
            return PUT("input_blocks.%d.0.op.%s", 1 + a * (L + 1) + L, key + len + 5);
        return 0;
    }
    if (sscanf(key, "mid_block.%15[a-z].%d.%n", kind, &b, &len) == 2 && len) {
        if (!strcmp(kind, "attentions") && b == 0) return PUT("middle_block.1.%s", key + len);
        if (!strcmp(kind, "resnets") && (b == 0 || b == 1) &&
            split_leaf(key + len, member, sizeof member, &leaf) && unet_resnet(member))
            return PUT("middle_block.%d.%s.%s", 2 * b, unet_resnet(member), leaf);
        return 0;
    }
    if (sscanf(key, "up_blocks.%d.%15[a-z].%d.%n", &a, kind, &b, &len) == 3 && len && a >= 0 &&
        a < n_levels) {
        int k = a * (L + 1) + b;
        if (!strcmp(kind, "attentions")) return PUT("output_blocks.%d.1.%s", k, key + len);
        if (!strcmp(kind, "resnets") && split_leaf(key + len, member, sizeof member, &leaf) &&
            unet_resnet(member))
            return PUT("output_blocks.%d.0.%s.%s", k, unet_resnet(member), leaf);
        if (!strcmp(kind, "upsamplers") && b == 0 && !strncmp(key + len, "conv.", 5))
            return PUT("output_blocks.%d.%d.conv.%s", a * (L + 1) + L, up_has_attention[a] ? 2 : 1,
                       key + len + 5);
    }
    return 0;
}

/* The original's ResBlock member -> diffusers' (the reverse of unet_resnet). */
static const char *unet_resnet_diffusers(const char *m) {
    return resnet_member(m, 0);
}

int ldm_sd_unet_name_to_diffusers(const char *name, int layers_per_block,
                                  const int *up_has_attention, int n_levels, char *out,
                                  size_t size) {
    static const char *fixed[][2] = {{"time_embed.0.", "time_embedding.linear_1."},
                                     {"time_embed.2.", "time_embedding.linear_2."},
                                     {"input_blocks.0.0.", "conv_in."},
                                     {"out.0.", "conv_norm_out."},
                                     {"out.2.", "conv_out."}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        size_t n = strlen(fixed[i][0]);
        if (!strncmp(name, fixed[i][0], n)) return PUT("%s%s", fixed[i][1], name + n);
    }
    int L = layers_per_block, k, j, len = 0;
    char member[96];
    const char *leaf;
    if (sscanf(name, "input_blocks.%d.%d.%n", &k, &j, &len) == 2 && len && k >= 1) {
        int a = (k - 1) / (L + 1), b = (k - 1) % (L + 1);
        if (a >= n_levels) return 0;
        if (b < L && j == 1) return PUT("down_blocks.%d.attentions.%d.%s", a, b, name + len);
        if (b < L && j == 0 && split_leaf(name + len, member, sizeof member, &leaf) &&
            unet_resnet_diffusers(member))
            return PUT("down_blocks.%d.resnets.%d.%s.%s", a, b, unet_resnet_diffusers(member),
                       leaf);
        if (b == L && j == 0 && !strncmp(name + len, "op.", 3))
            return PUT("down_blocks.%d.downsamplers.0.conv.%s", a, name + len + 3);
        return 0;
    }
    if (sscanf(name, "middle_block.%d.%n", &j, &len) == 1 && len) {
        if (j == 1) return PUT("mid_block.attentions.0.%s", name + len);
        if ((j == 0 || j == 2) && split_leaf(name + len, member, sizeof member, &leaf) &&
            unet_resnet_diffusers(member))
            return PUT("mid_block.resnets.%d.%s.%s", j / 2, unet_resnet_diffusers(member), leaf);
        return 0;
    }
    if (sscanf(name, "output_blocks.%d.%d.%n", &k, &j, &len) == 2 && len && k >= 0) {
        int a = k / (L + 1), b = k % (L + 1);
        if (a >= n_levels) return 0;
        if (j == 0 && split_leaf(name + len, member, sizeof member, &leaf) &&
            unet_resnet_diffusers(member))
            return PUT("up_blocks.%d.resnets.%d.%s.%s", a, b, unet_resnet_diffusers(member), leaf);
        if (j == 1 && up_has_attention[a])
            return PUT("up_blocks.%d.attentions.%d.%s", a, b, name + len);
        if (b == L && j == (up_has_attention[a] ? 2 : 1) && !strncmp(name + len, "conv.", 5))
            return PUT("up_blocks.%d.upsamplers.0.conv.%s", a, name + len + 5);
    }
    return 0;
}

int ldm_sd_vae_name_from_diffusers(const char *key, int n_levels, char *out, size_t size,
                                   int *any_shape) {
    *any_shape = 0;
    static const char *fixed[][2] = {{"encoder.conv_in.", "encoder.conv_in."},
                                     {"encoder.conv_out.", "encoder.conv_out."},
                                     {"encoder.conv_norm_out.", "encoder.norm_out."},
                                     {"decoder.conv_in.", "decoder.conv_in."},
                                     {"decoder.conv_out.", "decoder.conv_out."},
                                     {"decoder.conv_norm_out.", "decoder.norm_out."},
                                     {"quant_conv.", "quant_conv."},
                                     {"post_quant_conv.", "post_quant_conv."}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        size_t n = strlen(fixed[i][0]);
        if (!strncmp(key, fixed[i][0], n)) return PUT("%s%s", fixed[i][1], key + n);
    }
    char part[8], kind[16], member[96];
    const char *leaf;
    int a, b, len = 0;
    if (sscanf(key, "%7[a-z].mid_block.%15[a-z].%d.%n", part, kind, &b, &len) == 3 && len &&
        (!strcmp(part, "encoder") || !strcmp(part, "decoder"))) {
        if (!split_leaf(key + len, member, sizeof member, &leaf)) return 0;
        if (!strcmp(kind, "resnets") && (b == 0 || b == 1) && vae_resnet(member))
            return PUT("%s.mid.block_%d.%s.%s", part, b + 1, vae_resnet(member), leaf);
        static const char *attn[][2] = {
            {"group_norm", "norm"},   {"to_q", "q"},  {"to_k", "k"}, {"to_v", "v"},
            {"to_out.0", "proj_out"}, {"query", "q"}, {"key", "k"},  {"value", "v"},
            {"proj_attn", "proj_out"}};
        for (size_t i = 0; !strcmp(kind, "attentions") && b == 0 && i < 9; i++)
            if (!strcmp(member, attn[i][0])) {
                *any_shape = i > 0; /* diffusers' Linear [C, C] is the original's 1x1 conv */
                return PUT("%s.mid.attn_1.%s.%s", part, attn[i][1], leaf);
            }
        return 0;
    }
    if (sscanf(key, "encoder.down_blocks.%d.%15[a-z].%d.%n", &a, kind, &b, &len) == 3 && len) {
        if (!split_leaf(key + len, member, sizeof member, &leaf)) return 0;
        if (!strcmp(kind, "resnets") && vae_resnet(member))
            return PUT("encoder.down.%d.block.%d.%s.%s", a, b, vae_resnet(member), leaf);
        if (!strcmp(kind, "downsamplers") && b == 0 && !strcmp(member, "conv"))
            return PUT("encoder.down.%d.downsample.conv.%s", a, leaf);
        return 0;
    }
    if (sscanf(key, "decoder.up_blocks.%d.%15[a-z].%d.%n", &a, kind, &b, &len) == 3 && len &&
        a >= 0 && a < n_levels) {
        if (!split_leaf(key + len, member, sizeof member, &leaf)) return 0;
        int level = n_levels - 1 - a; /* diffusers counts from the deepest level */
        if (!strcmp(kind, "resnets") && vae_resnet(member))
            return PUT("decoder.up.%d.block.%d.%s.%s", level, b, vae_resnet(member), leaf);
        if (!strcmp(kind, "upsamplers") && b == 0 && !strcmp(member, "conv"))
            return PUT("decoder.up.%d.upsample.conv.%s", level, leaf);
    }
    return 0;
}

int ldm_sd_openclip_source(const char *hf_name, int hidden, const char *prefix,
                           ldm_load_source *src) {
    static const char *fixed[][2] = {
        {"text_model.embeddings.token_embedding.weight", "token_embedding.weight"},
        {"text_model.embeddings.position_embedding.weight", "positional_embedding"},
        {"text_model.final_layer_norm.weight", "ln_final.weight"},
        {"text_model.final_layer_norm.bias", "ln_final.bias"}};
    memset(src, 0, sizeof *src);
    char *out = src->name;
    size_t size = sizeof src->name;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(hf_name, fixed[i][0])) return PUT("%s%s", prefix, fixed[i][1]);
    int layer, len = 0;
    char member[96];
    const char *leaf;
    if (sscanf(hf_name, "text_model.encoder.layers.%d.%n", &layer, &len) != 1 || !len ||
        !split_leaf(hf_name + len, member, sizeof member, &leaf))
        return 0;
    static const char *map[][2] = {{"layer_norm1", "ln_1"},
                                   {"layer_norm2", "ln_2"},
                                   {"self_attn.out_proj", "attn.out_proj"},
                                   {"mlp.fc1", "mlp.c_fc"},
                                   {"mlp.fc2", "mlp.c_proj"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(member, map[i][0]))
            return PUT("%stransformer.resblocks.%d.%s.%s", prefix, layer, map[i][1], leaf);
    static const char *qkv[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(member, qkv[i])) { /* rows i*hidden .. of the packed in-projection */
            src->row_start = (int64_t)i * hidden;
            src->rows = hidden;
            return PUT("%stransformer.resblocks.%d.attn.in_proj_%s", prefix, layer, leaf);
        }
    return 0;
}

/* ---- a table from graph names to sources ------------------------------------------------- */

typedef struct entry {
    char *graph_name;
    ldm_load_source src;
} entry;

struct ldm_sd_name_table {
    entry *e;
    size_t n, cap;
};

static int by_name(const void *a, const void *b) {
    return strcmp(((const entry *)a)->graph_name, ((const entry *)b)->graph_name);
}

ldm_status ldm_sd_name_table_create(ldm_sd_name_table **out) {
    *out = calloc(1, sizeof **out);
    return *out ? LDM_OK : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
}

ldm_status ldm_sd_name_table_add(ldm_sd_name_table *t, const char *graph_name,
                                 const ldm_load_source *src) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 256;
        entry *e = realloc(t->e, cap * sizeof *e);
        if (!e) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        t->e = e;
        t->cap = cap;
    }
    size_t len = strlen(graph_name) + 1;
    char *name = malloc(len);
    if (!name) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    memcpy(name, graph_name, len);
    t->e[t->n++] = (entry){name, *src};
    return LDM_OK;
}

ldm_status ldm_sd_name_table_finish(ldm_sd_name_table *t, const char *what) {
    qsort(t->e, t->n, sizeof *t->e, by_name);
    for (size_t i = 1; i < t->n; i++)
        if (!strcmp(t->e[i].graph_name, t->e[i - 1].graph_name))
            return LDM_FAIL(LDM_ERR_FORMAT, "%s: tensors '%s' and '%s' are both '%s'", what,
                            t->e[i - 1].src.name, t->e[i].src.name, t->e[i].graph_name);
    return LDM_OK;
}

int ldm_sd_name_table_map(const char *name, ldm_load_source *src, void *user) {
    const ldm_sd_name_table *t = user;
    entry key = {(char *)name, {{0}, 0, 0, 0}};
    const entry *e = t->n ? bsearch(&key, t->e, t->n, sizeof *t->e, by_name) : NULL;
    if (!e) return 0;
    *src = e->src;
    return 1;
}

void ldm_sd_name_table_destroy(ldm_sd_name_table *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].graph_name);
    free(t->e);
    free(t);
}
