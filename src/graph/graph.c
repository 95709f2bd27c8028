/* src/graph/graph.c: the recording side of a graph: tensors (parameters, inputs, activations,
 * views), nodes, the sticky first error, and tensor accessors. */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"
#include "params.h"

ldm_status ldm_graph_create(ldm_ctx *ctx, ldm_graph **out) {
    ldm_graph *g = calloc(1, sizeof *g);
    if (!g) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    g->ctx = ctx;
    ldm_status st = ldm_params_create(ctx, &g->store);
    if (st != LDM_OK) {
        free(g);
        return st;
    }
    *out = g;
    return LDM_OK;
}

ldm_status ldm_graph_create_in(ldm_ctx *ctx, ldm_params *params, ldm_graph **out) {
    if (!params) return ldm_graph_create(ctx, out);
    if (params->ctx != ctx)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "a graph and its parameter store must be on the same context");
    *out = NULL;
    ldm_graph *g = calloc(1, sizeof *g);
    if (!g) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    g->ctx = ctx;
    g->store = params;
    ldm_params_retain(params);
    *out = g;
    return LDM_OK;
}

ldm_params *ldm_graph_params(const ldm_graph *g) {
    return g->store;
}

void ldm_graph_destroy(ldm_graph *g) {
    if (!g) return;
    ldm_cmd_destroy(g->cmd);
    ldm_params_release(g->store);
    ldm_arena_destroy(g->constants);
    ldm_arena_destroy(g->inputs);
    ldm_arena_destroy(g->leaf_grads);
    for (int i = 0; i < g->n_banks; i++)
        ldm_arena_destroy(g->activations[i]);
    for (int i = 0; i < g->n_tensors; i++) {
        free(g->tensors[i]->init);
        free(g->tensors[i]);
    }
    for (int i = 0; i < g->n_nodes; i++)
        free(g->nodes[i]);
    for (int i = 0; i < g->n_clones; i++)
        free(g->clones[i]);
    free(g->clones);
    free(g->tensors);
    free(g->nodes);
    free(g->params);
    free(g->steps);
    free(g->bwd_end);
    free(g->error);
    free(g);
}

ldm_ctx *ldm_graph_ctx(const ldm_graph *g) {
    return g->ctx;
}

ldm_status ldm_graph_status(const ldm_graph *g) {
    return g->status;
}

const char *ldm_graph_error(const ldm_graph *g) {
    return g->error ? g->error : "";
}

/* Keeps the message of the first failure; later ones are consequences. */
static void keep_first_error(ldm_graph *g, ldm_status st) {
    if (g->status != LDM_OK) return;
    g->status = st;
    g->error = ldm_strdup(ldm_last_error());
}

ldm_tensor *ldm_graph_fail_at(ldm_graph *g, const char *file, int line, ldm_status st,
                              const char *fmt, ...) {
    if (g->status != LDM_OK) return NULL;
    va_list ap;
    va_start(ap, fmt);
    ldm_vfail_at(file, line, st, fmt, ap);
    va_end(ap);
    keep_first_error(g, st);
    return NULL;
}

#define GROW(arr, n, cap, first)                                                                   \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            int new_cap_ = (cap) ? (cap)*2 : (first);                                              \
            void *grown_ = realloc((arr), (size_t)new_cap_ * sizeof *(arr));                       \
            if (!grown_) return LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");      \
            (arr) = grown_;                                                                        \
            (cap) = new_cap_;                                                                      \
        }                                                                                          \
    } while (0)

ldm_tensor *ldm_graph_new_tensor(ldm_graph *g, const char *name, tensor_kind kind, int ndim,
                                 const int *shape) {
    if (g->status != LDM_OK) return NULL;
    if (g->compiled)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "tensor '%s' added after the graph was compiled", name);
    if (ndim < 1 || ndim > LDM_MAX_DIMS)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "tensor '%s' has %d dimensions; ldmcl takes 1 to %d", name, ndim,
                              LDM_MAX_DIMS);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                                  "tensor '%s' has size %d in dimension %d", name, shape[i], i);
        if (numel > SIZE_MAX / 4 / (size_t)shape[i])
            return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                                  "tensor '%s' has more elements than a size_t counts in bytes "
                                  "(dimension %d of %d)",
                                  name, i, shape[i]);
        numel *= (size_t)shape[i];
    }
    GROW(g->tensors, g->n_tensors, g->cap_tensors, 64);
    ldm_tensor *t = calloc(1, sizeof *t);
    if (!t) return LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
    t->g = g;
    t->id = g->n_tensors;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    t->kind = kind;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = numel;
    t->producer = -1;
    g->tensors[g->n_tensors++] = t;
    return t;
}

ldm_tensor *ldm_graph_param(ldm_graph *g, const char *name, int ndim, const int *shape) {
    if (g->status != LDM_OK) return NULL;
    if (!name || !*name)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "a parameter needs a name");
    if (ldm_graph_find(g, name))
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "parameter '%s' is defined twice", name);
    GROW(g->params, g->n_params, g->cap_params, 64);
    ldm_tensor *t = ldm_graph_new_tensor(g, name, TK_PARAM, ndim, shape);
    if (!t) return NULL;
    ldm_param_entry *e = ldm_params_find(g->store, name);
    if (e) { /* another graph's parameter in the same store */
        int same = e->ndim == ndim;
        for (int d = 0; same && d < ndim; d++)
            same = e->shape[d] == shape[d];
        if (!same) {
            char want[64];
            return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                                  "parameter '%s' is %s here but has another shape in the "
                                  "parameter store",
                                  name, ldm_shape_str(t, want, sizeof want));
        }
    } else if (!(e = ldm_params_add(g->store, name, ndim, shape, t))) {
        keep_first_error(g, LDM_ERR_INVALID_ARGUMENT);
        return NULL;
    }
    t->entry = e;
    /* in an allocated store the entry's place is fixed: a frozen one stays frozen */
    t->trainable = g->store->allocated ? e->trainable : 1;
    t->requires_grad = t->trainable;
    g->params[g->n_params++] = t;
    return t;
}

ldm_tensor *ldm_graph_constant(ldm_graph *g, const char *name, int ndim, const int *shape,
                               const float *data) {
    ldm_tensor *t = ldm_graph_find(g, name);
    if (t && t->init) return t; /* the same constant, recorded again */
    if (t)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "constant '%s': the name is taken",
                              name);
    t = ldm_graph_new_tensor(g, name, TK_PARAM, ndim, shape);
    if (!t) return NULL;
    t->init = malloc(t->numel * sizeof *t->init);
    if (!t->init) return LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
    memcpy(t->init, data, t->numel * sizeof *t->init);
    return t; /* frozen (trainable 0) and not among the parameters */
}

ldm_tensor *ldm_graph_input(ldm_graph *g, const char *name, int ndim, const int *shape) {
    return ldm_graph_new_tensor(g, name, TK_INPUT, ndim, shape);
}

ldm_tensor *ldm_graph_scratch(ldm_graph *g, const char *name, size_t numel) {
    if (numel > SIZE_MAX / 4)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "scratch '%s' of %zu elements is more than a size_t counts in bytes",
                              name, numel);
    int one[1] = {1};
    ldm_tensor *t = ldm_graph_new_tensor(g, name, TK_SCRATCH, 1, one);
    if (!t) return NULL;
    t->numel = numel; /* the size; shape[0] only shows it, saturated at INT_MAX */
    t->shape[0] = numel > (size_t)INT_MAX ? INT_MAX : (int)numel;
    return t;
}

void ldm_tensor_set_init(ldm_tensor *t, ldm_init kind, float a) {
    for (int hops = 0; t && t->init_to && hops < 8; hops++)
        t = t->init_to;
    if (!t || t->kind != TK_PARAM) return;
    t->init_kind = kind;
    t->init_a = a;
}

void ldm_tensor_set_init_target(ldm_tensor *t, ldm_tensor *param) {
    if (t && param && t != param) t->init_to = param;
}

void ldm_tensor_set_trainable(ldm_tensor *t, int trainable) {
    if (!t || t->kind != TK_PARAM) return;
    t->trainable = trainable != 0;
    t->requires_grad = t->trainable;
}

void ldm_tensor_set_requires_grad(ldm_tensor *t, int requires_grad) {
    if (!t || t->kind != TK_INPUT) return;
    t->requires_grad = requires_grad != 0;
}

void ldm_tensor_keep(ldm_tensor *t) {
    if (t) ldm_storage(t)->keep = 1;
}

void ldm_tensor_set_name(ldm_tensor *t, const char *name) {
    if (t && name) snprintf(t->name, sizeof t->name, "%s", name);
}

const char *ldm_shape_str(const ldm_tensor *t, char *buf, size_t size) {
    int n = snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && n > 0 && (size_t)n < size; i++)
        n += snprintf(buf + n, size - (size_t)n, "%s%d", i ? ", " : "", t->shape[i]);
    if (n > 0 && (size_t)n < size) snprintf(buf + n, size - (size_t)n, "]");
    return buf;
}

int ldm_check_same_shape(ldm_graph *g, const char *op, const ldm_tensor *a, const ldm_tensor *b) {
    int same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++)
        same = a->shape[i] == b->shape[i];
    if (same) return 1;
    char sa[64], sb[64];
    LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "%s: '%s' %s and '%s' %s must have the same shape",
                   op, a->name, ldm_shape_str(a, sa, sizeof sa), b->name,
                   ldm_shape_str(b, sb, sizeof sb));
    return 0;
}

ldm_tensor *ldm_reshape(ldm_graph *g, ldm_tensor *t, int ndim, const int *shape) {
    if (!t || g->status != LDM_OK) return NULL;
    char name[160];
    snprintf(name, sizeof name, "%.120s.view", t->name);
    ldm_tensor *v = ldm_graph_new_tensor(g, name, TK_ACTIVATION, ndim, shape);
    if (!v) return NULL;
    if (v->numel != t->numel) {
        char sa[64], sb[64];
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "reshape of '%s' %s to %s changes its size", t->name,
                              ldm_shape_str(t, sa, sizeof sa), ldm_shape_str(v, sb, sizeof sb));
    }
    ldm_tensor *base = ldm_storage(t);
    if (base->kind == TK_PARAM || base->kind == TK_INPUT) {
        /* A view of a leaf is a leaf of the same kind on the same storage. */
        v->kind = base->kind;
    }
    v->base = base;
    v->view_off = t->view_off;
    v->requires_grad = base->requires_grad;
    v->trainable = base->trainable;
    v->producer = base->producer;
    return v;
}

ldm_tensor *ldm_view_rows(ldm_graph *g, ldm_tensor *t, int start, int count) {
    if (!t || g->status != LDM_OK) return NULL;
    ldm_tensor *base = ldm_storage(t);
    if ((base->kind != TK_PARAM && base->kind != TK_INPUT) || t->base)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "view_rows of '%s': only a parameter or an input (not a view or a "
                              "computed tensor) can be viewed by rows",
                              t->name);
    if (start < 0 || count < 1 || start + count > t->shape[0])
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "view_rows of '%s': rows [%d, %d) outside its %d rows", t->name,
                              start, start + count, t->shape[0]);
    int shape[LDM_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = count;
    char name[160];
    snprintf(name, sizeof name, "%.120s[%d:%d]", t->name, start, start + count);
    ldm_tensor *v = ldm_graph_new_tensor(g, name, base->kind, t->ndim, shape);
    if (!v) return NULL;
    v->base = base;
    v->view_off = (size_t)start * (t->numel / (size_t)t->shape[0]);
    v->requires_grad = base->requires_grad;
    v->trainable = base->trainable;
    return v;
}

ldm_node *ldm_graph_add_node(ldm_graph *g, const ldm_op_class *op, const void *params,
                             size_t params_size, const char *label, ldm_tensor *const *in, int n_in,
                             int ndim, const int *shape) {
    if (g->status != LDM_OK) return NULL;
    for (int i = 0; i < n_in; i++)
        if (!in[i]) {
            LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "%s: input %d is missing", op->name, i);
            return NULL;
        }
    if (g->has_backward) {
        LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                       "%s recorded after the backward pass was generated", op->name);
        return NULL;
    }
    if (params_size != op->params_size || params_size > LDM_NODE_PARAMS_BYTES ||
        (params_size && !params)) {
        LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                       "%s: recorded with %zu bytes of parameters, its op class takes %zu",
                       op->name, params_size, op->params_size);
        return NULL;
    }
    if (op->n_saved < 0 || op->n_saved >= LDM_MAX_OUT ||
        (op->bwd_reads & ~(LDM_READS_SAVED(op->n_saved) - 1u)) != 0) {
        LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                       "op class %s: saves %d tensors (at most %d) and its backward may read only "
                       "those, its inputs and its result",
                       op->name, op->n_saved, LDM_MAX_OUT - 1);
        return NULL;
    }
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        ldm_node **grown = realloc(g->nodes, (size_t)cap * sizeof *grown);
        if (!grown) {
            LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
            return NULL;
        }
        g->nodes = grown;
        g->cap_nodes = cap;
    }
    ldm_node *n = calloc(1, sizeof *n);
    if (!n) {
        LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
        return NULL;
    }
    n->op = op;
    if (params_size) memcpy(n->params.bytes, params, params_size);
    n->index = g->n_nodes;
    snprintf(n->label, sizeof n->label, "%s", label && *label ? label : op->name);
    char name[160];
    snprintf(name, sizeof name, "%.120s.out", n->label);
    ldm_tensor *out = ldm_graph_new_tensor(g, name, TK_ACTIVATION, ndim, shape);
    if (!out) {
        free(n);
        return NULL;
    }
    memcpy(n->in, in, (size_t)n_in * sizeof *in);
    n->n_in = n_in;
    n->out[0] = out;
    n->n_out = 1;
    out->producer = n->index;
    for (int i = 0; i < n_in; i++) {
        if (ldm_op_no_grad(op, i)) continue;
        if (in[i]->requires_grad) out->requires_grad = 1;
    }
    n->segment = g->segment;
    g->nodes[g->n_nodes++] = n;
    return n;
}

ldm_tensor *ldm_node_add_saved(ldm_graph *g, ldm_node *n, int ndim, const int *shape) {
    if (!n || g->status != LDM_OK) return NULL;
    if (n->n_out > n->op->n_saved)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "%s: op %s saves %d tensors, and one more was added", n->label,
                              n->op->name, n->op->n_saved);
    char name[160];
    snprintf(name, sizeof name, "%.120s.saved%d", n->label, n->n_out);
    ldm_tensor *t = ldm_graph_new_tensor(g, name, TK_ACTIVATION, ndim, shape);
    if (!t) return NULL;
    t->producer = n->index;
    n->out[n->n_out++] = t;
    return t;
}

/* ---- accessors -------------------------------------------------------------------------- */

ldm_tensor *ldm_tensor_grad(const ldm_tensor *t) {
    return t ? t->grad : NULL;
}

const char *ldm_tensor_name(const ldm_tensor *t) {
    return t->name;
}

int ldm_tensor_ndim(const ldm_tensor *t) {
    return t->ndim;
}

int ldm_tensor_dim(const ldm_tensor *t, int i) {
    if (i < 0) i += t->ndim;
    return i >= 0 && i < t->ndim ? t->shape[i] : 1;
}

size_t ldm_tensor_numel(const ldm_tensor *t) {
    return t->numel;
}

void ldm_graph_set_half_weights(ldm_graph *g, int on) {
    g->half_weights = on != 0;
}

int ldm_graph_half_weights(const ldm_graph *g) {
    return g->half_weights;
}

void ldm_graph_set_lora(ldm_graph *g, const ldm_lora_config *c) {
    if (c) {
        g->lora = *c;
    } else {
        memset(&g->lora, 0, sizeof g->lora);
    }
}

const ldm_lora_config *ldm_graph_lora(const ldm_graph *g) {
    return g->lora.rank > 0 ? &g->lora : NULL;
}

int ldm_tensor_is_half(const ldm_tensor *t) {
    return t && t->kind == TK_PARAM && t->entry && t->entry->half;
}

ldm_buf ldm_tensor_buf(const ldm_tensor *t) {
    if (!t->base) return t->buf;
    return (ldm_buf){t->base->buf.mem, t->base->buf.off + t->view_off};
}

int ldm_tensor_is_param(const ldm_tensor *t) {
    return t->kind == TK_PARAM;
}

int ldm_tensor_is_trainable(const ldm_tensor *t) {
    return t->kind == TK_PARAM && t->trainable;
}

int ldm_graph_is_compiled(const ldm_graph *g) {
    return g->compiled;
}

size_t ldm_graph_param_count(const ldm_graph *g) {
    return (size_t)g->n_params;
}

ldm_tensor *ldm_graph_param_at(const ldm_graph *g, size_t i) {
    return i < (size_t)g->n_params ? g->params[i] : NULL;
}

ldm_tensor *ldm_graph_find(const ldm_graph *g, const char *name) {
    for (int i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i]->name, name) == 0) return g->tensors[i];
    return NULL;
}
