/* src/sample/sd_lora.c: kohya-format LoRA files merged into a Stable Diffusion model's loaded
 * weights (see ldmcl/lora.h): each adapter's module named back to the parameter ldmcl records,
 * every shape checked before any weight changes, then W += scale * up . down on the host. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fail.h"
#include "internal.h"
#include "ldmcl/lora.h"
#include "ldmcl/lora_adapter.h"
#include "ldmcl/safetensors.h"
#include "sd_internal.h"
#include "sd_names.h"

ldm_status ldm_lora_find(const char *dir, const char *name, char *path, size_t size) {
    struct stat sb;
    size_t n = strlen(name);
    int has_ext = n > 12 && !strcmp(name + n - 12, ".safetensors");
    if (snprintf(path, size, "%s/%s%s", dir, name, has_ext ? "" : ".safetensors") >= (int)size)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "LoRA '%s': the path is too long", name);
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) return LDM_OK;
    static const char *pickles[] = {".ckpt", ".pt"};
    for (size_t i = 0; i < sizeof pickles / sizeof pickles[0] && !has_ext; i++) {
        char other[4096];
        snprintf(other, sizeof other, "%s/%s%s", dir, name, pickles[i]);
        if (stat(other, &sb) == 0) return ldm_sd_refuse_by_extension(other);
    }
    return LDM_FAIL(LDM_ERR_NOT_FOUND,
                    "LoRA '%s': no file '%s' (--lora-model-dir names the folder)", name, path);
}

/* One adapted layer of the file. */
typedef struct adapter {
    char module[200]; /* the key less its suffix: lora_unet_... or lora_te_... */
    const ldm_st_tensor *down, *up, *alpha;
    float alpha_value; /* alpha, or the rank without one */
    ldm_tensor *target;
} adapter;

typedef struct lora_file {
    const char *path;
    ldm_safetensors *st;
    adapter *a;
    int n, cap;
} lora_file;

static ldm_status refuse(const lora_file *f, const char *key, const char *what) {
    return LDM_FAIL(LDM_ERR_FORMAT, "LoRA '%s', tensor '%s': %s", f->path, key, what);
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

static adapter *adapter_of(lora_file *f, const char *module, size_t len) {
    for (int i = 0; i < f->n; i++)
        if (strlen(f->a[i].module) == len && !strncmp(f->a[i].module, module, len)) return &f->a[i];
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        adapter *more = realloc(f->a, (size_t)cap * sizeof *more);
        if (!more) return NULL;
        f->a = more;
        f->cap = cap;
    }
    adapter *a = &f->a[f->n++];
    memset(a, 0, sizeof *a);
    snprintf(a->module, sizeof a->module, "%.*s", (int)len, module);
    return a;
}

/* Sorts a tensor of the file into its adapter, or refuses what ldmcl does not apply. */
static ldm_status classify(lora_file *f, const ldm_st_tensor *t) {
    static const struct {
        const char *mark, *what;
    } other[] = {
        {"hada_", "a LoHa adapter (LyCORIS): ldmcl applies LoRA (lora_down/lora_up) only"},
        {"lokr_", "a LoKr adapter (LyCORIS): ldmcl applies LoRA (lora_down/lora_up) only"},
        {"dora_scale", "a DoRA adapter: ldmcl applies LoRA (lora_down/lora_up) only"},
        {"lora_A", "the diffusers/peft format: ldmcl reads kohya's (lora_unet_*.lora_down.weight,"
                   " as A1111, ComfyUI and stable-diffusion.cpp)"},
        {"lora_B", "the diffusers/peft format: ldmcl reads kohya's (lora_unet_*.lora_down.weight,"
                   " as A1111, ComfyUI and stable-diffusion.cpp)"},
    };
    const char *key = t->name;
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (strstr(key, other[i].mark)) return refuse(f, key, other[i].what);
    if (!strncmp(key, "lora_te1_", 9) || !strncmp(key, "lora_te2_", 9))
        return refuse(f, key, "an SDXL LoRA (two text encoders): ldmcl runs SD 1.x and 2.x");
    if (strncmp(key, "lora_unet_", 10) && strncmp(key, "lora_te_", 8))
        return refuse(f, key,
                      "not a kohya LoRA tensor (lora_unet_* or lora_te_*, with .lora_down.weight, "
                      ".lora_up.weight, .alpha)");
    static const char *suffix[] = {".lora_down.weight", ".lora_up.weight", ".alpha"};
    for (int s = 0; s < 3; s++) {
        if (!ends_with(key, suffix[s])) continue;
        size_t len = strlen(key) - strlen(suffix[s]);
        if (len >= sizeof f->a[0].module) return refuse(f, key, "the name is too long");
        adapter *a = adapter_of(f, key, len);
        if (!a) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        const ldm_st_tensor **slot = s == 0 ? &a->down : s == 1 ? &a->up : &a->alpha;
        if (*slot) return refuse(f, key, "stored twice");
        *slot = t;
        return LDM_OK;
    }
    return refuse(f, key, "neither .lora_down.weight, .lora_up.weight nor .alpha");
}

/* diffusers' module names hold '_' themselves; kohya replaced the dots by '_' too. Words that
 * belong together, longest first. */
static const char *const compounds[] = {
    "transformer_blocks", "final_layer_norm", "time_embedding", "conv_norm_out", "conv_shortcut",
    "time_emb_proj", "down_blocks", "layer_norm1", "layer_norm2", "text_model", "up_blocks",
    "mid_block", "self_attn", "proj_out", "out_proj", "linear_1", "linear_2", "proj_in", "conv_out",
    "conv_in", "to_out", "q_proj", "k_proj", "v_proj", "to_q", "to_k", "to_v",
    /* the original's names (A1111-style files) */
    "input_blocks", "middle_block", "output_blocks", "skip_connection", "time_embed", "emb_layers",
    "in_layers", "out_layers"};

/* kohya's module name (less lora_unet_ / lora_te_) -> the dotted module path. */
static int dotted(const char *s, char *out, size_t size) {
    size_t o = 0;
    while (*s) {
        size_t len = strcspn(s, "_");
        for (size_t i = 0; i < sizeof compounds / sizeof compounds[0]; i++) {
            size_t n = strlen(compounds[i]);
            if (!strncmp(s, compounds[i], n) && (s[n] == '_' || !s[n])) {
                len = n;
                break;
            }
        }
        if (o + len + 2 > size) return 0;
        if (o) out[o++] = '.';
        memcpy(out + o, s, len);
        o += len;
        s += len;
        if (*s == '_') s++;
    }
    out[o] = '\0';
    return o > 0;
}

/* ldmcl's own UNet (m NULL): the weight whose kohya name (lora_unet_ + its name less .weight or
 * _weight, '_' for '.') is the adapter's, as ldm_sd_lora_save writes them. */
static ldm_tensor *ldmcl_target(const adapter *a, ldm_graph *unet) {
    for (size_t i = 0; i < ldm_graph_param_count(unet); i++) {
        ldm_tensor *p = ldm_graph_param_at(unet, i);
        const char *name = ldm_tensor_name(p);
        size_t n = strlen(name);
        if (n <= 7 || (strcmp(name + n - 7, ".weight") && strcmp(name + n - 7, "_weight")))
            continue;
        char key[320];
        snprintf(key, sizeof key, "lora_unet_%.*s", (int)(n - 7), name);
        for (char *c = key; *c; c++)
            if (*c == '.') *c = '_';
        if (!strcmp(key, a->module)) return p;
    }
    return NULL;
}

static const char *model_name(const ldm_sd_model *m) {
    return m ? m->path : "the model";
}

/* The parameter an adapter changes: a weight of the UNet (diffusers' module path, or the
 * original's; ldmcl's own names when m is NULL) or of the text encoder (Hugging Face's CLIP
 * names). NULL: the model has none. */
static ldm_tensor *target_of(const ldm_sd_model *m, const adapter *a, ldm_graph *unet,
                             ldm_graph *text) {
    int is_te = !strncmp(a->module, "lora_te_", 8);
    if (!is_te && !m) return ldmcl_target(a, unet);
    char path[256], name[300];
    if (!dotted(a->module + (is_te ? 8 : 10), path, sizeof path)) return NULL;
    snprintf(name, sizeof name, "%s.weight", path);
    if (is_te) return ldm_graph_find(text, name);
    int up_attn[LDM_SD_MAX_LEVELS] = {0};
    for (int i = 0; i < m->unet.n_levels; i++)
        up_attn[i] = m->unet.attn_levels[m->unet.n_levels - 1 - i];
    char original[300];
    ldm_tensor *t = NULL;
    if (ldm_sd_unet_name_from_diffusers(name, m->unet.num_res_blocks, up_attn, m->unet.n_levels,
                                        original, sizeof original))
        t = ldm_graph_find(unet, original);
    return t ? t : ldm_graph_find(unet, name);
}

/* Reads what the merge will read, so that a value it cannot use (not a number, infinite, a dtype
 * that does not convert) is refused before any weight changes; alpha kept. */
static ldm_status check_values(lora_file *f, adapter *a, int rank) {
    a->alpha_value = (float)rank;
    if (a->alpha) {
        LDM_TRY(ldm_safetensors_read_f32(f->st, a->alpha, &a->alpha_value));
        if (!isfinite(a->alpha_value))
            return refuse(f, a->alpha->name, "alpha is not a finite number");
    }
    const ldm_st_tensor *parts[2] = {a->down, a->up};
    for (int i = 0; i < 2; i++) {
        float *v = malloc((parts[i]->numel ? parts[i]->numel : 1) * sizeof *v);
        if (!v) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        ldm_status st = ldm_safetensors_read_f32(f->st, parts[i], v);
        size_t first = 0, bad = st == LDM_OK ? ldm_count_non_finite(v, parts[i]->numel, &first) : 0;
        free(v);
        LDM_TRY(st);
        if (bad)
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "LoRA '%s', tensor '%s': %zu NaN or infinite values (the first at "
                            "element %zu)",
                            f->path, parts[i]->name, bad, first);
    }
    return LDM_OK;
}

/* Finds and checks every adapter's target; changes nothing. */
static ldm_status check(const ldm_sd_model *m, lora_file *f, ldm_graph *unet, ldm_graph *text) {
    for (int i = 0; i < f->n; i++) {
        adapter *a = &f->a[i];
        if (!a->down || !a->up)
            return LDM_FAIL(LDM_ERR_FORMAT, "LoRA '%s': '%s' has no %s", f->path, a->module,
                            a->down ? ".lora_up.weight" : ".lora_down.weight");
        int is_te = !strncmp(a->module, "lora_te_", 8);
        const ldm_st_tensor *d = a->down, *u = a->up;
        int64_t rank = d->ndim >= 2 ? d->shape[0] : 0;
        int up_ok = (u->ndim == 2 || (u->ndim == 4 && u->shape[2] == 1 && u->shape[3] == 1)) &&
                    u->shape[1] == rank;
        if (rank < 1 || (d->ndim != 2 && d->ndim != 4) || !up_ok)
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "LoRA '%s': '%s': lora_down [rank, in(, kh, kw)] and lora_up [out, "
                            "rank(, 1, 1)] do not fit each other",
                            f->path, a->module);
        if (a->alpha && a->alpha->numel != 1)
            return refuse(f, a->alpha->name, "alpha must be one number");
        LDM_TRY(check_values(f, a, (int)rank));
        if (!(is_te ? text : unet)) continue; /* that model is not given: left out */
        a->target = target_of(m, a, unet, text);
        if (!a->target || !ldm_tensor_is_param(a->target))
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "LoRA '%s': '%s' names no weight of %s's %s (a LoRA of another kind of "
                            "model?)",
                            f->path, a->module, model_name(m), is_te ? "text encoder" : "UNet");
        uint64_t want = (uint64_t)u->shape[0] * (d->numel / (uint64_t)rank);
        if (ldm_tensor_numel(a->target) != want || ldm_tensor_dim(a->target, 0) != u->shape[0])
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "LoRA '%s': '%s' changes a [%lld x %llu] weight, but %s is [%d x %zu] "
                            "in %s (a LoRA of another base model?)",
                            f->path, a->module, (long long)u->shape[0],
                            (unsigned long long)(d->numel / (uint64_t)rank),
                            ldm_tensor_name(a->target), ldm_tensor_dim(a->target, 0),
                            ldm_tensor_numel(a->target) / (size_t)ldm_tensor_dim(a->target, 0),
                            model_name(m));
    }
    return LDM_OK;
}

/* W += scale * up . down for one adapter (host arithmetic in double per element's sum). */
static ldm_status merge_one(lora_file *f, const adapter *a, float weight) {
    const ldm_st_tensor *d = a->down, *u = a->up;
    size_t rank = (size_t)d->shape[0], in = (size_t)(d->numel / rank), out = (size_t)u->shape[0],
           n = out * in;
    float *down = malloc(d->numel * sizeof *down), *up = malloc(u->numel * sizeof *up);
    float *w = malloc(n * sizeof *w);
    ldm_status st = down && up && w ? LDM_OK : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of memory");
    if (st == LDM_OK) st = ldm_safetensors_read_f32(f->st, d, down);
    if (st == LDM_OK) st = ldm_safetensors_read_f32(f->st, u, up);
    if (st == LDM_OK) st = ldm_tensor_read(a->target, w);
    if (st == LDM_OK) {
        double scale = (double)weight * a->alpha_value / (double)rank;
        ldm_lora_add_product(w, up, down, out, rank, in, scale);
        st = ldm_tensor_write(a->target, w);
    }
    free(down);
    free(up);
    free(w);
    return st;
}

ldm_status ldm_sd_lora_merge(const ldm_sd_model *m, const char *file, float weight, ldm_graph *unet,
                             ldm_graph *text, int *merged) {
    *merged = 0;
    LDM_TRY(ldm_sd_refuse_by_extension(file));
    lora_file f = {.path = file};
    ldm_status st = ldm_safetensors_open(file, &f.st);
    for (size_t i = 0; st == LDM_OK && i < ldm_safetensors_count(f.st); i++)
        st = classify(&f, ldm_safetensors_at(f.st, i));
    if (st == LDM_OK && f.n == 0)
        st = LDM_FAIL(LDM_ERR_FORMAT, "LoRA '%s' holds no adapters", file);
    if (st == LDM_OK) st = check(m, &f, unet, text);
    for (int i = 0; st == LDM_OK && i < f.n; i++) {
        if (!f.a[i].target) continue;
        st = merge_one(&f, &f.a[i], weight);
        if (st == LDM_OK) (*merged)++;
    }
    free(f.a);
    ldm_safetensors_close(f.st);
    return st;
}

/* One tensor to write, its name and shape owned here. */
typedef struct out_tensor {
    char name[300];
    int64_t shape[LDM_MAX_DIMS];
    float *data;
} out_tensor;

/* The kohya module name of an adapter's module (its graph name less .lora_*.weight): diffusers'
 * module path for SD's UNet, the parameter's own name for a text encoder and for ldmcl's UNet
 * (m NULL). */
static int kohya_name(const ldm_sd_model *m, const char *module, int is_te, char *out,
                      size_t size) {
    char path[300];
    if (is_te || !m) {
        snprintf(path, sizeof path, "%s", module);
    } else {
        int up_attn[LDM_SD_MAX_LEVELS] = {0};
        for (int i = 0; i < m->unet.n_levels; i++)
            up_attn[i] = m->unet.attn_levels[m->unet.n_levels - 1 - i];
        char weight[320], key[320];
        snprintf(weight, sizeof weight, "%s.weight", module);
        if (!ldm_sd_unet_name_to_diffusers(weight, m->unet.num_res_blocks, up_attn,
                                           m->unet.n_levels, key, sizeof key))
            return 0;
        snprintf(path, sizeof path, "%.*s", (int)(strlen(key) - 7), key);
    }
    if (snprintf(out, size, "%s%s", is_te ? "lora_te_" : "lora_unet_", path) >= (int)size) return 0;
    for (char *c = out; *c; c++)
        if (*c == '.') *c = '_';
    return 1;
}

/* Adds graph g's adapters (and one alpha per module) to the list. */
static ldm_status collect(const ldm_sd_model *m, ldm_graph *g, int is_te, float alpha,
                          out_tensor **list, int *n, int *cap) {
    for (size_t i = 0; g && i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        const char *name = ldm_tensor_name(p);
        if (!ldm_lora_is_adapter(name)) continue;
        /* a text encoder recorded with ldmcl's UNet in one step */
        int te = is_te || !strncmp(name, "text_model.", 11);
        int down = strstr(name, ".lora_down.weight") != NULL;
        size_t len = strlen(name) - strlen(down ? ".lora_down.weight" : ".lora_up.weight");
        char module[300], kohya[260];
        snprintf(module, sizeof module, "%.*s", (int)len, name);
        if (!kohya_name(m, module, te, kohya, sizeof kohya))
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "LoRA adapter '%s': no kohya name for its layer", name);
        if (*n + 2 > *cap) {
            int c = *cap ? 2 * *cap : 128;
            out_tensor *more = realloc(*list, (size_t)c * sizeof *more);
            if (!more) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
            *list = more;
            *cap = c;
        }
        out_tensor *t = &(*list)[(*n)++];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s.%s", kohya,
                 down ? "lora_down.weight" : "lora_up.weight");
        for (int d = 0; d < ldm_tensor_ndim(p); d++)
            t->shape[d] = ldm_tensor_dim(p, d);
        t->data = malloc(ldm_tensor_numel(p) * sizeof *t->data);
        if (!t->data) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        LDM_TRY(ldm_tensor_read(p, t->data));
        if (!down) continue;
        out_tensor *a = &(*list)[(*n)++];
        memset(a, 0, sizeof *a);
        snprintf(a->name, sizeof a->name, "%s.alpha", kohya);
        a->data = malloc(sizeof *a->data);
        if (!a->data) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        a->data[0] = alpha;
    }
    return LDM_OK;
}

ldm_status ldm_sd_lora_save(const ldm_sd_model *m, ldm_graph *unet, ldm_graph *text,
                            const char *path, int *saved) {
    *saved = 0;
    const ldm_lora_config *c = unet ? ldm_graph_lora(unet) : text ? ldm_graph_lora(text) : NULL;
    if (!c)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "LoRA '%s': the graphs hold no adapters", path);
    out_tensor *list = NULL;
    int n = 0, cap = 0;
    ldm_status st = collect(m, unet, 0, c->alpha, &list, &n, &cap);
    if (st == LDM_OK && text)
        st = collect(m, text, 1, ldm_graph_lora(text)->alpha, &list, &n, &cap);
    ldm_st_entry *e = st == LDM_OK ? calloc(n ? (size_t)n : 1, sizeof *e) : NULL;
    if (st == LDM_OK && !e) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    for (int i = 0; st == LDM_OK && i < n; i++) {
        int nd = 0; /* alpha: a scalar */
        while (nd < LDM_MAX_DIMS && list[i].shape[nd])
            nd++;
        e[i] = (ldm_st_entry){list[i].name, nd, list[i].shape, list[i].data};
        *saved += strstr(list[i].name, ".lora_down.weight") != NULL;
    }
    char dim[32], alpha[32];
    snprintf(dim, sizeof dim, "%d", c->rank);
    snprintf(alpha, sizeof alpha, "%g", (double)c->alpha);
    const char *meta[] = {"ss_network_module",
                          "networks.lora",
                          "ss_network_dim",
                          dim,
                          "ss_network_alpha",
                          alpha,
                          NULL};
    if (st == LDM_OK) st = ldm_safetensors_write(path, e, (size_t)n, meta);
    for (int i = 0; i < n; i++)
        free(list[i].data);
    free(list);
    free(e);
    if (st != LDM_OK) *saved = 0;
    return st;
}
