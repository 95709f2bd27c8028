/* src/train/train_state.c: saving and restoring a training run (see ldmcl/train_state.h). The
 * optimizer's moments and the EMA are flat buffers laid out like the trainable parameters: each
 * parameter's slice is saved under its name. Several graphs (an autoencoder and its
 * discriminator) go into one file, each part's names under its own prefix, so that they are
 * written and replaced as one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/safetensors.h"
#include "ldmcl/train_state.h"
#include "siphash.h"

#define MAX_META 64

/* The slice of a flat buffer (laid out like the trainable parameters) that belongs to t. */
static ldm_buf slice(ldm_graph *g, ldm_buf flat, const ldm_tensor *t) {
    size_t count;
    ldm_buf base = ldm_graph_trainable_buf(g, &count);
    return (ldm_buf){flat.mem, flat.off + (ldm_tensor_buf(t).off - base.off)};
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
    const char *tname = ldm_tensor_name(t);
    size_t numel = ldm_tensor_numel(t);
    es->names[k] = malloc(strlen(prefix) + strlen(tname) + 1);
    es->data[k] = malloc(numel * sizeof(float));
    if (!es->names[k] || !es->data[k]) {
        free(es->names[k]);
        free(es->data[k]);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory saving the training state");
    }
    sprintf(es->names[k], "%s%s", prefix, tname);
    int ndim = ldm_tensor_ndim(t);
    for (int d = 0; d < ndim; d++)
        es->shapes[k][d] = ldm_tensor_dim(t, d);
    es->e[k] = (ldm_st_entry){es->names[k], ndim, es->shapes[k], es->data[k]};
    es->n++;
    return ldm_buf_read(ctx, es->data[k], buf, numel);
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

/* The metadata key of one of a part's counters: "ldmcl.state." + prefix + what. */
static void counter_key(char *out, size_t size, const char *prefix, const char *what) {
    snprintf(out, size, "ldmcl.state.%s%s", prefix ? prefix : "", what);
}

/* Adds a part's tensors: parameters under prefix + name, its moments and averages. */
static ldm_status add_part(entries *es, const ldm_train_state_part *p) {
    ldm_graph *g = p->g;
    ldm_ctx *ctx = ldm_graph_ctx(g);
    const char *pre = p->prefix ? p->prefix : "";
    char name[256];
    ldm_status st = LDM_OK;
    for (size_t i = 0; i < ldm_graph_param_count(g) && st == LDM_OK; i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        int trainable = ldm_tensor_is_trainable(t);
        st = add(es, ctx, pre, t, ldm_tensor_buf(t));
        if (st == LDM_OK && trainable && p->opt) {
            snprintf(name, sizeof name, "%soptimizer.exp_avg.", pre);
            st = add(es, ctx, name, t, slice(g, ldm_optimizer_moment(p->opt, 1), t));
            snprintf(name, sizeof name, "%soptimizer.exp_avg_sq.", pre);
            if (st == LDM_OK)
                st = add(es, ctx, name, t, slice(g, ldm_optimizer_moment(p->opt, 2), t));
        }
        snprintf(name, sizeof name, "%sema.", pre);
        if (st == LDM_OK && trainable && p->ema)
            st = add(es, ctx, name, t, slice(g, ldm_ema_buf(p->ema), t));
    }
    return st;
}

ldm_status ldm_train_state_save(const char *path, ldm_graph *g, ldm_optimizer *opt, ldm_ema *ema,
                                const char *const *metadata_pairs) {
    ldm_train_state_part part = {NULL, g, opt, ema};
    return ldm_train_state_save_parts(path, &part, 1, metadata_pairs);
}

ldm_status ldm_train_state_save_parts(const char *path, const ldm_train_state_part *parts,
                                      int n_parts, const char *const *metadata_pairs) {
    if (n_parts < 1 || n_parts > LDM_TRAIN_STATE_MAX_PARTS)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "saving '%s': %d parts (1 to %d)", path, n_parts,
                        LDM_TRAIN_STATE_MAX_PARTS);
    for (int k = 0; k < n_parts; k++)
        if (!ldm_graph_is_compiled(parts[k].g))
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "saving '%s': compile the graph first", path);
    entries es = {0};
    ldm_status st = LDM_OK;
    enum { counters = 3 * LDM_TRAIN_STATE_MAX_PARTS };
    char keys[counters][128], values[counters][32];
    const char *meta[2 * MAX_META + 1];
    int m = 0, c = 0;
    for (int k = 0; k < n_parts && st == LDM_OK; k++) {
        const ldm_train_state_part *p = &parts[k];
        st = add_part(&es, p);
        uint64_t graph_step = 0, opt_steps = 0, ema_updates = 0;
        if (st == LDM_OK) st = ldm_graph_get_step(p->g, &graph_step);
        if (st == LDM_OK && p->opt) st = ldm_optimizer_steps(p->opt, &opt_steps);
        if (st == LDM_OK && p->ema) st = ldm_ema_updates(p->ema, &ema_updates);
        const char *what[3] = {"graph_step", p->opt ? "optimizer_steps" : NULL,
                               p->ema ? "ema_updates" : NULL};
        uint64_t value[3] = {graph_step, opt_steps, ema_updates};
        for (int w = 0; w < 3 && st == LDM_OK; w++) {
            if (!what[w]) continue;
            counter_key(keys[c], sizeof keys[c], p->prefix, what[w]);
            snprintf(values[c], sizeof values[c], "%llu", (unsigned long long)value[w]);
            meta[m++] = keys[c];
            meta[m++] = values[c];
            c++;
        }
    }
    for (int i = 0; metadata_pairs && metadata_pairs[i] && metadata_pairs[i + 1]; i += 2) {
        if (m + 2 > 2 * MAX_META) {
            st = LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "more than %d metadata pairs", MAX_META - c);
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

ldm_status ldm_train_state_check_same(ldm_job *job, const ldm_train_state_part *parts,
                                      int n_parts) {
    if (ldm_job_size(job) == 1) return LDM_OK;
    entries es = {0};
    ldm_status st = LDM_OK;
    for (int k = 0; k < n_parts && st == LDM_OK; k++)
        st = add_part(&es, &parts[k]);
    /* one hash per tensor (a fixed key: the same on every rank), then the counters */
    size_t n = es.n + 3 * (size_t)n_parts;
    uint64_t *mine = st == LDM_OK ? calloc(2 * n, sizeof *mine) : NULL;
    if (st == LDM_OK && !mine) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    static const unsigned char key[16] = "ldmcl same state";
    for (size_t i = 0; st == LDM_OK && i < es.n; i++) {
        size_t numel = 1;
        for (int d = 0; d < es.e[i].ndim; d++) /* es.shapes: the array moved as it grew */
            numel *= (size_t)es.shapes[i][d];
        mine[i] = ldm_siphash24(key, es.data[i], numel * sizeof(float));
    }
    for (int k = 0; st == LDM_OK && k < n_parts; k++) {
        uint64_t *c = mine + es.n + 3 * (size_t)k;
        st = ldm_graph_get_step(parts[k].g, &c[0]);
        if (st == LDM_OK && parts[k].opt) st = ldm_optimizer_steps(parts[k].opt, &c[1]);
        if (st == LDM_OK && parts[k].ema) st = ldm_ema_updates(parts[k].ema, &c[2]);
    }
    uint64_t *first = mine ? mine + n : NULL;
    if (st == LDM_OK) {
        memcpy(first, mine, n * sizeof *first);
        st = ldm_job_broadcast(job, first, n * sizeof *first, 0, "rank 0's state hashes");
    }
    size_t differs = n;
    for (size_t i = 0; st == LDM_OK && i < n && differs == n; i++)
        if (mine[i] != first[i]) differs = i;
    /* every rank learns whether some rank differs (then each that does names its tensor) */
    int all_same = 1, bad = -1;
    if (st == LDM_OK)
        st = ldm_job_agree(job, differs == n, &all_same, &bad, "comparing the training states");
    if (st == LDM_OK && !all_same) {
        const char *what = "";
        char counter[64];
        if (differs < es.n) {
            what = es.names[differs];
        } else if (differs < n) {
            static const char *const counters[3] = {"graph step counter", "optimizer step count",
                                                    "EMA update count"};
            size_t c = differs - es.n;
            snprintf(counter, sizeof counter, "part %zu's %s", c / 3, counters[c % 3]);
            what = counter;
        }
        st = differs < n
                 ? LDM_FAIL(LDM_ERR_JOB,
                            "rank %d's training state differs from rank 0's: tensor '%s' (the "
                            "ranks must hold identical parameters, moments and averages; the run "
                            "stops, its last checkpoint is rank 0's)",
                            ldm_job_rank(job), what)
                 : LDM_FAIL(LDM_ERR_JOB,
                            "rank %d's training state differs from rank 0's (rank %d names the "
                            "tensor); the run stops, its last checkpoint is rank 0's",
                            bad, bad);
    }
    free(mine);
    free_entries(&es);
    return st;
}

/* Reads "<prefix><name>" for every trainable parameter into host copies (all or nothing). */
static ldm_status read_group(const ldm_safetensors *st, ldm_graph *g, const char *part_prefix,
                             const char *prefix, float ***out) {
    const char *path = ldm_safetensors_path(st);
    size_t n = ldm_graph_param_count(g);
    float **v = calloc(n ? n : 1, sizeof *v);
    if (!v) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_status s = LDM_OK;
    for (size_t i = 0; i < n && s == LDM_OK; i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        if (!ldm_tensor_is_trainable(t)) continue;
        size_t numel = ldm_tensor_numel(t);
        char name[384];
        snprintf(name, sizeof name, "%s%s%s", part_prefix ? part_prefix : "", prefix,
                 ldm_tensor_name(t));
        const ldm_st_tensor *f = ldm_safetensors_find(st, name);
        if (!f || f->numel != numel) {
            s = LDM_FAIL(LDM_ERR_FORMAT, "training state '%s': tensor '%s' is %s", path, name,
                         f ? "of another size" : "missing");
            break;
        }
        v[i] = malloc(numel * sizeof **v);
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

/* One part read into host memory and checked against its graph. */
typedef struct loaded_part {
    uint64_t graph_step, opt_steps, ema_updates;
    float **m, **v, **e;
} loaded_part;

static ldm_status read_counter(const ldm_safetensors *st, const char *prefix, const char *what,
                               uint64_t *out) {
    char key[128];
    counter_key(key, sizeof key, prefix, what);
    return ldm_safetensors_metadata_u64(st, key, out);
}

static ldm_status read_part(const ldm_safetensors *st, const ldm_train_state_part *p,
                            loaded_part *l) {
    ldm_status s = read_counter(st, p->prefix, "graph_step", &l->graph_step);
    if (s == LDM_OK && p->opt) s = read_counter(st, p->prefix, "optimizer_steps", &l->opt_steps);
    if (s == LDM_OK && p->ema) s = read_counter(st, p->prefix, "ema_updates", &l->ema_updates);
    if (s == LDM_OK && p->opt) s = read_group(st, p->g, p->prefix, "optimizer.exp_avg.", &l->m);
    if (s == LDM_OK && p->opt) s = read_group(st, p->g, p->prefix, "optimizer.exp_avg_sq.", &l->v);
    if (s == LDM_OK && p->ema) s = read_group(st, p->g, p->prefix, "ema.", &l->e);
    /* the parameters by name and shape (the file's optimizer and EMA tensors and the other parts'
     * tensors are not this model's), converted but not written yet */
    ldm_load_options o = {.allow_unexpected = 1, .file_prefix = p->prefix, .check_only = 1};
    if (s == LDM_OK) s = ldm_graph_load_from(p->g, st, &o);
    return s;
}

static ldm_status apply_part(const ldm_safetensors *st, const ldm_train_state_part *p,
                             const loaded_part *l) {
    ldm_graph *g = p->g;
    ldm_ctx *ctx = ldm_graph_ctx(g);
    ldm_load_options o = {.allow_unexpected = 1, .file_prefix = p->prefix};
    ldm_status s = ldm_graph_load_from(g, st, &o);
    for (size_t i = 0; s == LDM_OK && i < ldm_graph_param_count(g); i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        if (!ldm_tensor_is_trainable(t)) continue;
        size_t numel = ldm_tensor_numel(t);
        if (l->m)
            s = ldm_buf_write(ctx, slice(g, ldm_optimizer_moment(p->opt, 1), t), l->m[i], numel);
        if (s == LDM_OK && l->v)
            s = ldm_buf_write(ctx, slice(g, ldm_optimizer_moment(p->opt, 2), t), l->v[i], numel);
        if (s == LDM_OK && l->e)
            s = ldm_buf_write(ctx, slice(g, ldm_ema_buf(p->ema), t), l->e[i], numel);
    }
    if (s == LDM_OK) s = ldm_graph_set_step(g, l->graph_step);
    if (s == LDM_OK && p->opt) s = ldm_optimizer_set_steps(p->opt, l->opt_steps);
    if (s == LDM_OK && p->ema) s = ldm_ema_set_updates(p->ema, l->ema_updates);
    return s;
}

ldm_status ldm_train_state_load(const char *path, ldm_graph *g, ldm_optimizer *opt, ldm_ema *ema) {
    ldm_train_state_part part = {NULL, g, opt, ema};
    return ldm_train_state_load_parts(path, &part, 1);
}

ldm_status ldm_train_state_load_parts(const char *path, const ldm_train_state_part *parts,
                                      int n_parts) {
    if (n_parts < 1 || n_parts > LDM_TRAIN_STATE_MAX_PARTS)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "loading '%s': %d parts (1 to %d)", path, n_parts,
                        LDM_TRAIN_STATE_MAX_PARTS);
    for (int k = 0; k < n_parts; k++)
        if (!ldm_graph_is_compiled(parts[k].g))
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "loading '%s': compile the graph first",
                            path);
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    loaded_part l[LDM_TRAIN_STATE_MAX_PARTS];
    memset(l, 0, sizeof l);
    /* Everything of every part is read and checked before anything changes. */
    ldm_status s = LDM_OK;
    for (int k = 0; k < n_parts && s == LDM_OK; k++)
        s = read_part(st, &parts[k], &l[k]);
    for (int k = 0; k < n_parts && s == LDM_OK; k++)
        s = apply_part(st, &parts[k], &l[k]);
    for (int k = 0; k < n_parts; k++) {
        free_group(parts[k].g, l[k].m);
        free_group(parts[k].g, l[k].v);
        free_group(parts[k].g, l[k].e);
    }
    ldm_safetensors_close(st);
    return s;
}
