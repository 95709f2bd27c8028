/* src/train/train_state.c: saving and restoring a training run (see ldmcl/train_state.h). The
 * optimizer's moments and the EMA are flat buffers laid out like the trainable parameters: each
 * parameter's slice is saved under its name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/safetensors.h"
#include "ldmcl/train_state.h"

#define MAX_META 64

/* The slice of a flat buffer (laid out like the trainable parameters) that belongs to t. */
static ldm_buf slice(ldm_graph *g, ldm_buf flat, const ldm_tensor *t) {
    size_t count;
    ldm_buf base = ldm_graph_trainable_buf(g, &count);
    return (ldm_buf){flat.mem, flat.off + (t->buf.off - base.off)};
}

typedef struct entries {
    ldm_st_entry *e;
    int64_t (*shapes)[LDM_MAX_DIMS];
    char **names;
    float **data;
    size_t n, cap;
} entries;

static ldm_status add(entries *es, ldm_ctx *ctx, const char *prefix, const ldm_tensor *t,
                      ldm_buf buf) {
    if (es->n == es->cap) {
        size_t cap = es->cap ? 2 * es->cap : 256;
        ldm_st_entry *e = realloc(es->e, cap * sizeof *e);
        if (e) es->e = e;
        int64_t(*shapes)[LDM_MAX_DIMS] = realloc(es->shapes, cap * sizeof *shapes);
        if (shapes) es->shapes = shapes;
        char **names = realloc(es->names, cap * sizeof *names);
        if (names) es->names = names;
        float **data = realloc(es->data, cap * sizeof *data);
        if (data) es->data = data;
        if (!e || !shapes || !names || !data)
            return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        es->cap = cap;
    }
    size_t k = es->n;
    es->names[k] = malloc(strlen(prefix) + strlen(t->name) + 1);
    es->data[k] = malloc(t->numel * sizeof(float));
    if (!es->names[k] || !es->data[k]) {
        free(es->names[k]);
        free(es->data[k]);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory saving the training state");
    }
    sprintf(es->names[k], "%s%s", prefix, t->name);
    for (int d = 0; d < t->ndim; d++)
        es->shapes[k][d] = t->shape[d];
    es->e[k] = (ldm_st_entry){es->names[k], t->ndim, es->shapes[k], es->data[k]};
    es->n++;
    return ldm_buf_read(ctx, es->data[k], buf, t->numel);
}

static void free_entries(entries *es) {
    for (size_t i = 0; i < es->n; i++) {
        free(es->names[i]);
        free(es->data[i]);
    }
    free(es->e);
    free(es->shapes);
    free(es->names);
    free(es->data);
}

ldm_status ldm_train_state_save(const char *path, ldm_graph *g, ldm_optimizer *opt, ldm_ema *ema,
                                const char *const *metadata_pairs) {
    if (!g->compiled)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "saving '%s': compile the graph first", path);
    entries es = {0};
    ldm_status st = LDM_OK;
    for (size_t i = 0; i < ldm_graph_param_count(g) && st == LDM_OK; i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        st = add(&es, g->ctx, "", t, t->buf);
        if (st == LDM_OK && t->trainable && opt) {
            st = add(&es, g->ctx, "optimizer.exp_avg.", t,
                     slice(g, ldm_optimizer_moment(opt, 1), t));
            if (st == LDM_OK)
                st = add(&es, g->ctx, "optimizer.exp_avg_sq.", t,
                         slice(g, ldm_optimizer_moment(opt, 2), t));
        }
        if (st == LDM_OK && t->trainable && ema)
            st = add(&es, g->ctx, "ema.", t, slice(g, ldm_ema_buf(ema), t));
    }
    uint64_t graph_step = 0, opt_steps = 0, ema_updates = 0;
    if (st == LDM_OK) st = ldm_graph_get_step(g, &graph_step);
    if (st == LDM_OK && opt) st = ldm_optimizer_steps(opt, &opt_steps);
    if (st == LDM_OK && ema) st = ldm_ema_updates(ema, &ema_updates);
    char s_graph[32], s_opt[32], s_ema[32];
    snprintf(s_graph, sizeof s_graph, "%llu", (unsigned long long)graph_step);
    snprintf(s_opt, sizeof s_opt, "%llu", (unsigned long long)opt_steps);
    snprintf(s_ema, sizeof s_ema, "%llu", (unsigned long long)ema_updates);
    const char *meta[2 * MAX_META + 1];
    int m = 0;
    meta[m++] = "ldmcl.state.graph_step";
    meta[m++] = s_graph;
    if (opt) meta[m++] = "ldmcl.state.optimizer_steps", meta[m++] = s_opt;
    if (ema) meta[m++] = "ldmcl.state.ema_updates", meta[m++] = s_ema;
    for (int i = 0; metadata_pairs && metadata_pairs[i] && metadata_pairs[i + 1]; i += 2) {
        if (m + 2 > 2 * MAX_META) {
            st = LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "more than %d metadata pairs", MAX_META - 3);
            break;
        }
        meta[m++] = metadata_pairs[i];
        meta[m++] = metadata_pairs[i + 1];
    }
    meta[m] = NULL;
    for (size_t i = 0; i < es.n; i++) /* the shapes array moved as it grew */
        es.e[i].shape = es.shapes[i];
    if (st == LDM_OK) st = ldm_safetensors_write(path, es.e, es.n, meta);
    free_entries(&es);
    return st;
}

/* Reads "<prefix><name>" for every trainable parameter into host copies (all or nothing). */
static ldm_status read_group(ldm_safetensors *st, const char *path, ldm_graph *g,
                             const char *prefix, float ***out) {
    size_t n = ldm_graph_param_count(g);
    float **v = calloc(n ? n : 1, sizeof *v);
    if (!v) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_status s = LDM_OK;
    for (size_t i = 0; i < n && s == LDM_OK; i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        if (!t->trainable) continue;
        char name[300];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const ldm_st_tensor *f = ldm_safetensors_find(st, name);
        if (!f || f->numel != t->numel) {
            s = LDM_FAIL(LDM_ERR_FORMAT, "training state '%s': tensor '%s' is %s", path, name,
                         f ? "of another size" : "missing");
            break;
        }
        v[i] = malloc(t->numel * sizeof **v);
        s = v[i] ? ldm_safetensors_read_f32(st, f, v[i])
                 : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    if (s != LDM_OK) {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return s;
    }
    *out = v;
    return LDM_OK;
}

static void free_group(ldm_graph *g, float **v) {
    for (size_t i = 0; v && i < ldm_graph_param_count(g); i++)
        free(v[i]);
    free(v);
}

ldm_status ldm_train_state_load(const char *path, ldm_graph *g, ldm_optimizer *opt, ldm_ema *ema) {
    if (!g->compiled)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "loading '%s': compile the graph first", path);
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    uint64_t graph_step = 0, opt_steps = 0, ema_updates = 0;
    float **m = NULL, **v = NULL, **e = NULL;
    ldm_status s = ldm_safetensors_metadata_u64(st, "ldmcl.state.graph_step", &graph_step);
    if (s == LDM_OK && opt)
        s = ldm_safetensors_metadata_u64(st, "ldmcl.state.optimizer_steps", &opt_steps);
    if (s == LDM_OK && ema)
        s = ldm_safetensors_metadata_u64(st, "ldmcl.state.ema_updates", &ema_updates);
    if (s == LDM_OK && opt) s = read_group(st, path, g, "optimizer.exp_avg.", &m);
    if (s == LDM_OK && opt) s = read_group(st, path, g, "optimizer.exp_avg_sq.", &v);
    if (s == LDM_OK && ema) s = read_group(st, path, g, "ema.", &e);
    ldm_safetensors_close(st);
    /* Everything is on the host now: the parameters (checked by name and shape; the file's
     * optimizer and EMA tensors are not the model's), then the rest. */
    if (s == LDM_OK) {
        ldm_load_options o = {.allow_unexpected = 1};
        s = ldm_graph_load(g, path, &o);
    }
    for (size_t i = 0; s == LDM_OK && i < ldm_graph_param_count(g); i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        if (!t->trainable) continue;
        if (m) s = ldm_buf_write(g->ctx, slice(g, ldm_optimizer_moment(opt, 1), t), m[i], t->numel);
        if (s == LDM_OK && v)
            s = ldm_buf_write(g->ctx, slice(g, ldm_optimizer_moment(opt, 2), t), v[i], t->numel);
        if (s == LDM_OK && e)
            s = ldm_buf_write(g->ctx, slice(g, ldm_ema_buf(ema), t), e[i], t->numel);
    }
    if (s == LDM_OK) s = ldm_graph_set_step(g, graph_step);
    if (s == LDM_OK && opt) s = ldm_optimizer_set_steps(opt, opt_steps);
    if (s == LDM_OK && ema) s = ldm_ema_set_updates(ema, ema_updates);
    free_group(g, m);
    free_group(g, v);
    free_group(g, e);
    return s;
}
