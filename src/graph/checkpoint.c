/* src/io/checkpoint.c: saving and loading a graph's parameters as safetensors. Loading refuses
 * NaN and infinite values, naming the tensor: no model has them, and they would only surface as
 * black images or a NaN loss. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/safetensors.h"

#define LIST_MAX 2048 /* characters of each problem list in the message */

/* The file name of parameter t under a graph prefix (NULL: t is not under it). */
static const char *file_name(const ldm_tensor *t, const char *graph_prefix) {
    size_t plen = graph_prefix ? strlen(graph_prefix) : 0;
    if (plen && strncmp(t->name, graph_prefix, plen) != 0) return NULL;
    return t->name + plen;
}

ldm_status ldm_graph_save(ldm_graph *g, const char *path, const char *const *metadata_pairs) {
    return ldm_graph_save_subset(g, path, metadata_pairs, NULL, 0);
}

typedef struct subset {
    const char *graph_prefix;
    int trainable_only;
    ldm_param_filter filter;
    void *user;
} subset;

static ldm_status save_where(ldm_graph *g, const char *path, const char *const *metadata_pairs,
                             const subset *w);

ldm_status ldm_graph_save_subset(ldm_graph *g, const char *path, const char *const *metadata_pairs,
                                 const char *graph_prefix, int trainable_only) {
    subset w = {graph_prefix, trainable_only, NULL, NULL};
    return save_where(g, path, metadata_pairs, &w);
}

ldm_status ldm_graph_save_filtered(ldm_graph *g, const char *path,
                                   const char *const *metadata_pairs, ldm_param_filter filter,
                                   void *user) {
    subset w = {NULL, 0, filter, user};
    return save_where(g, path, metadata_pairs, &w);
}

static ldm_status save_where(ldm_graph *g, const char *path, const char *const *metadata_pairs,
                             const subset *w) {
    const char *graph_prefix = w->graph_prefix;
    int trainable_only = w->trainable_only;
    if (!g->compiled)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "saving '%s': compile the graph first", path);
    size_t n_all = ldm_graph_param_count(g), n = 0;
    ldm_st_entry *e = calloc(n_all ? n_all : 1, sizeof *e);
    int64_t(*shapes)[LDM_MAX_DIMS] = calloc(n_all ? n_all : 1, sizeof *shapes);
    float **data = calloc(n_all ? n_all : 1, sizeof *data);
    ldm_status st = e && shapes && data ? LDM_OK : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of memory");
    for (size_t i = 0; i < n_all && st == LDM_OK; i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        const char *name = file_name(t, graph_prefix);
        if (!name || (trainable_only && !t->trainable)) continue;
        if (w->filter && !w->filter(t->name, w->user)) continue;
        data[n] = malloc(t->numel * sizeof *data[n]);
        if (!data[n]) {
            st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory saving '%s'", path);
            break;
        }
        st = ldm_tensor_read(t, data[n]);
        for (int d = 0; d < t->ndim; d++)
            shapes[n][d] = t->shape[d];
        e[n] = (ldm_st_entry){name, t->ndim, shapes[n], data[n]};
        n++;
    }
    if (st == LDM_OK) st = ldm_safetensors_write(path, e, n, metadata_pairs);
    for (size_t i = 0; data && i < n_all; i++)
        free(data[i]);
    free(data);
    free(shapes);
    free(e);
    return st;
}

/* Appends ", name" (or "name") to a bounded problem list. */
static void add_to(char *list, size_t size, int *count, const char *item) {
    size_t used = strlen(list);
    if (used + strlen(item) + 8 < size)
        snprintf(list + used, size - used, "%s%s", *count ? ", " : "", item);
    else if (used + 5 < size && !strstr(list, "..."))
        snprintf(list + used, size - used, ", ...");
    (*count)++;
}

static int shape_matches(const ldm_st_tensor *f, const ldm_tensor *t) {
    /* A 0-d file tensor matches a one-element parameter (PyTorch scalars such as
     * num_batches_tracked). */
    if (f->ndim == 0) return t->numel == 1;
    if (f->ndim != t->ndim) return 0;
    for (int d = 0; d < t->ndim; d++)
        if (f->shape[d] != t->shape[d]) return 0;
    return 1;
}

ldm_status ldm_graph_load(ldm_graph *g, const char *path, const ldm_load_options *options) {
    if (!g->compiled)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "loading '%s': compile the graph first", path);
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    ldm_status status = ldm_graph_load_from(g, st, options);
    ldm_safetensors_close(st);
    return status;
}

/* Whether parameter t takes part in a load (trainable_only, skip). */
static int takes_part(const ldm_load_options *o, const ldm_tensor *t) {
    if (o->trainable_only && !t->trainable) return 0;
    return !o->skip || !o->skip(t->name, o->skip_user);
}

/* Where parameter t is in the file into src (NULL: not under the graph prefix); the name to
 * report. A parameter the map places nowhere gets its own name and row_start -1 (missing). */
static const char *stored_name(const ldm_tensor *t, const ldm_load_options *o,
                               ldm_load_source *src) {
    memset(src, 0, sizeof *src);
    const char *name = file_name(t, o->graph_prefix);
    if (!name) return NULL;
    if (o->map) {
        if (!o->map(name, src, o->map_user)) {
            snprintf(src->name, sizeof src->name, "%s", name);
            src->row_start = -1;
        }
        return src->name;
    }
    snprintf(src->name, sizeof src->name, "%s%s", o->file_prefix ? o->file_prefix : "", name);
    return src->name;
}

/* The file tensor of a source, or NULL when the file lacks it. */
static const ldm_st_tensor *source_tensor(const ldm_safetensors *st, const ldm_load_source *src) {
    return src->row_start < 0 ? NULL : ldm_safetensors_find(st, src->name);
}

/* Whether the source's part of file tensor f fits parameter t. */
static int source_fits(const ldm_st_tensor *f, const ldm_load_source *src, const ldm_tensor *t) {
    if (src->rows) {
        if (f->ndim < 1 || src->rows < 0 || src->row_start + src->rows > f->shape[0]) return 0;
        return f->numel / (uint64_t)f->shape[0] * (uint64_t)src->rows == t->numel &&
               (src->any_shape || (t->shape[0] == src->rows && f->ndim == t->ndim));
    }
    if (src->any_shape) return f->numel == t->numel;
    return shape_matches(f, t);
}

/* The source's values of parameter t into dst (t->numel floats). */
static ldm_status read_source(const ldm_safetensors *st, const ldm_st_tensor *f,
                              const ldm_load_source *src, float *dst) {
    if (!src->rows) return ldm_safetensors_read_f32(st, f, dst);
    float *all = malloc(f->numel * sizeof *all);
    if (!all) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_status status = ldm_safetensors_read_f32(st, f, all);
    uint64_t row = f->numel / (uint64_t)f->shape[0];
    if (status == LDM_OK)
        memcpy(dst, all + (uint64_t)src->row_start * row,
               (size_t)((uint64_t)src->rows * row) * sizeof *dst);
    free(all);
    return status;
}

ldm_status ldm_graph_load_from(ldm_graph *g, const ldm_safetensors *st,
                               const ldm_load_options *options) {
    ldm_load_options defaults = {0};
    const ldm_load_options *o = options ? options : &defaults;
    const char *path = ldm_safetensors_path(st);
    if (!g->compiled)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "loading '%s': compile the graph first", path);
    char *missing = calloc(3, LIST_MAX), *unexpected = missing + LIST_MAX;
    char *misshaped = unexpected + LIST_MAX;
    if (!missing) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    int n_missing = 0, n_unexpected = 0, n_misshaped = 0;
    size_t n = ldm_graph_param_count(g), n_file = ldm_safetensors_count(st);
    unsigned char *used = o->map ? calloc(n_file ? n_file : 1, 1) : NULL;
    if (o->map && !used) {
        free(missing);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    ldm_load_source src;
    for (size_t i = 0; i < n; i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        const char *name = stored_name(t, o, &src);
        if (!name || !takes_part(o, t)) continue;
        const ldm_st_tensor *f = source_tensor(st, &src);
        if (!f) {
            if (!o->allow_missing) add_to(missing, LIST_MAX, &n_missing, name);
            continue;
        }
        if (used) used[f - ldm_safetensors_at(st, 0)] = 1;
        if (!source_fits(f, &src, t)) {
            char item[256], ts[64];
            int len = snprintf(item, sizeof item, "%s (file [", name);
            for (int d = 0; d < f->ndim && len < (int)sizeof item; d++)
                len += snprintf(item + len, sizeof item - (size_t)len, "%s%lld", d ? ", " : "",
                                (long long)f->shape[d]);
            if (len < (int)sizeof item) /* else a long name and shape filled the item */
                snprintf(item + len, sizeof item - (size_t)len, "], model %s)",
                         ldm_shape_str(t, ts, sizeof ts));
            add_to(misshaped, LIST_MAX, &n_misshaped, item);
        }
    }
    size_t plen = o->only_prefix ? strlen(o->only_prefix) : 0;
    size_t flen = o->file_prefix && !o->map ? strlen(o->file_prefix) : 0;
    for (size_t i = 0; i < n_file && !o->allow_unexpected; i++) {
        const char *name = ldm_safetensors_at(st, i)->name;
        if (plen && strncmp(name, o->only_prefix, plen) != 0) continue;
        if (flen && strncmp(name, o->file_prefix, flen) != 0) continue;
        int ignored = 0;
        for (int k = 0; o->ignore && o->ignore[k] && !ignored; k++)
            ignored = strcmp(name, o->ignore[k]) == 0;
        if (ignored) continue;
        if (used) {
            if (!used[i]) add_to(unexpected, LIST_MAX, &n_unexpected, name);
            continue;
        }
        char full[256];
        snprintf(full, sizeof full, "%s%s", o->graph_prefix ? o->graph_prefix : "", name + flen);
        ldm_tensor *t = ldm_graph_find(g, full);
        if (!t || t->kind != TK_PARAM || t->init || !takes_part(o, t))
            add_to(unexpected, LIST_MAX, &n_unexpected, name);
    }
    free(used);
    ldm_status status = LDM_OK;
    if (n_missing || n_unexpected || n_misshaped) {
        status =
            LDM_FAIL(LDM_ERR_FORMAT,
                     "checkpoint '%s' does not fit the model: %d missing%s%s%s, %d "
                     "unexpected%s%s%s, %d with another shape%s%s%s",
                     path, n_missing, n_missing ? " (" : "", missing, n_missing ? ")" : "",
                     n_unexpected, n_unexpected ? " (" : "", unexpected, n_unexpected ? ")" : "",
                     n_misshaped, n_misshaped ? " (" : "", misshaped, n_misshaped ? ")" : "");
    }
    /* Convert everything on the host first, so a bad dtype changes nothing on the device. */
    float **values = status == LDM_OK ? calloc(n ? n : 1, sizeof *values) : NULL;
    if (status == LDM_OK && !values) status = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of memory");
    for (size_t i = 0; i < n && status == LDM_OK; i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        const char *name = stored_name(t, o, &src);
        if (!takes_part(o, t)) name = NULL;
        const ldm_st_tensor *f = name ? source_tensor(st, &src) : NULL;
        if (!f) continue;
        values[i] = malloc(t->numel * sizeof *values[i]);
        if (!values[i])
            status = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        else
            status = read_source(st, f, &src, values[i]);
        size_t first = 0,
               bad = status == LDM_OK ? ldm_count_non_finite(values[i], t->numel, &first) : 0;
        if (bad)
            status = LDM_FAIL(LDM_ERR_FORMAT,
                              "checkpoint '%s': tensor '%s' holds %zu NaN or infinite values of "
                              "%zu (the first at element %zu: %g). A corrupt file, or one saved "
                              "from a run that diverged: ldmcl loads only finite weights",
                              path, name, bad, t->numel, first, (double)values[i][first]);
    }
    for (size_t i = 0; i < n && status == LDM_OK && !o->check_only; i++)
        if (values[i]) status = ldm_tensor_write(ldm_graph_param_at(g, i), values[i]);
    for (size_t i = 0; values && i < n; i++)
        free(values[i]);
    free(values);
    free(missing);
    return status;
}
