/* src/graph/backward.c: generates the backward pass from the recorded forward pass.
 * With gradient checkpointing, a checkpointed segment's nodes are run again (cloned) right
 * before its backward steps, which read the clones (recompute_segment).
 *
 * Nodes are visited in reverse. A node gets a backward step when a gradient reached its result
 * and one of its inputs needs a gradient. Each input's gradient lives with the input's storage
 * (a view shares its base's gradient). Activation gradients are overwritten by the first step
 * that writes them (in backward order) and accumulated by later ones, so a tensor used several
 * times (residuals, skips, a shared context) sums its gradients. Gradients of leaves (parameters,
 * inputs that ask) always accumulate, across runs too, until ldm_graph_zero_grads.
 *
 * Rule for op backwards: input gradients are written in input order, and a backward never reads
 * an input gradient it writes, so one node may take the same tensor twice (x * x). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

static ldm_tensor *grad_of(ldm_graph *g, ldm_tensor *t) {
    ldm_tensor *s = ldm_storage(t);
    if (s->grad) return s->grad;
    char name[160];
    snprintf(name, sizeof name, "grad(%s)", s->name);
    ldm_tensor *gt = ldm_graph_input(g, name, s->ndim, s->shape);
    if (!gt) return NULL;
    gt->kind = TK_GRAD;
    gt->producer = -1;
    gt->owner = s;
    s->grad = gt;
    return gt;
}

static int is_leaf(const ldm_tensor *s) {
    return s->kind == TK_PARAM || s->kind == TK_INPUT;
}

static ldm_status add_step(ldm_graph *g, const ldm_bwd_step *st) {
    if (g->n_steps == g->cap_steps) {
        int cap = g->cap_steps ? g->cap_steps * 2 : 64;
        ldm_bwd_step *grown = realloc(g->steps, (size_t)cap * sizeof *grown);
        if (!grown) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        g->steps = grown;
        g->cap_steps = cap;
    }
    g->steps[g->n_steps++] = *st;
    return LDM_OK;
}

/* Gradient checkpointing: what the backward of segment s reads is computed again just before
 * it, so the forward's tensors inside a segment die with the forward. Each node of the segment,
 * in forward order, is cloned to read the clones of what the segment computes (map: tensor id
 * -> its clone) and the originals of everything else (the segment's inputs, parameters), and
 * runs as a recompute step; clone_of[k] is node k's clone, whose tensors its backward reads. */
typedef struct recompute_map {
    ldm_tensor **map; /* by tensor id, for the ids the forward recorded */
    int n_map;
    ldm_node **clone_of; /* by forward node index */
    char *done;          /* by segment */
} recompute_map;

static ldm_tensor *recomputed(ldm_graph *g, const recompute_map *r, ldm_tensor *t) {
    ldm_tensor *s = ldm_storage(t);
    ldm_tensor *c = s->id < r->n_map ? r->map[s->id] : NULL;
    if (!c) return t; /* from outside the segment */
    return t->base ? ldm_graph_view_like(g, t, c) : c;
}

static ldm_status recompute_segment(ldm_graph *g, int segment, recompute_map *r) {
    for (int k = 0; k < g->n_nodes; k++) {
        ldm_node *n = g->nodes[k];
        if (n->segment != segment) continue;
        ldm_tensor *in[LDM_MAX_IN];
        for (int i = 0; i < n->n_in; i++)
            in[i] = recomputed(g, r, n->in[i]);
        ldm_node *c = ldm_graph_clone_node(g, n, in);
        if (!c) return g->status;
        for (int o = 0; o < n->n_out; o++)
            if (n->out[o]->id < r->n_map) r->map[n->out[o]->id] = c->out[o];
        r->clone_of[k] = c;
        ldm_bwd_step step;
        memset(&step, 0, sizeof step);
        step.recompute = 1;
        step.node = c;
        LDM_TRY(add_step(g, &step));
    }
    r->done[segment] = 1;
    return LDM_OK;
}

ldm_status ldm_graph_build_backward(ldm_graph *g) {
    ldm_tensor *loss = ldm_storage(g->loss);
    char *written = calloc((size_t)g->n_tensors + 1, 1);
    if (!written) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    recompute_map r = {NULL, g->n_tensors, NULL, NULL};
    if (g->n_segments) {
        r.map = calloc((size_t)g->n_tensors + 1, sizeof *r.map);
        r.clone_of = calloc((size_t)g->n_nodes + 1, sizeof *r.clone_of);
        r.done = calloc((size_t)g->n_segments + 1, 1);
        if (!r.map || !r.clone_of || !r.done) {
            free(r.map);
            free(r.clone_of);
            free(r.done);
            free(written);
            return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        }
    }
    ldm_status st = g->segment_depth ? LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                                                "a checkpoint segment began and never ended")
                                     : LDM_OK;
    if (!grad_of(g, loss))
        st = g->status;
    else
        written[loss->id] = 1;

    for (int k = g->n_nodes - 1; k >= 0 && st == LDM_OK; k--) {
        ldm_node *n = g->nodes[k];
        ldm_tensor *out = ldm_storage(n->out[0]);
        if (!out->grad || !written[out->id]) continue;
        int needed = 0;
        for (int i = 0; i < n->n_in; i++)
            if (!ldm_op_no_grad(n->op, i) && n->in[i]->requires_grad) needed = 1;
        if (!needed) continue;
        if (!n->op->bwd) {
            st = LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                          "op %s ('%s') has no backward, but the loss '%s' needs a gradient "
                          "through it",
                          n->op->name, n->label, g->loss->name);
            break;
        }
        if (n->segment && !r.done[n->segment]) {
            st = recompute_segment(g, n->segment, &r);
            if (st != LDM_OK) break;
        }
        ldm_bwd_step step;
        memset(&step, 0, sizeof step);
        step.node = n->segment ? r.clone_of[k] : n; /* what its backward reads */
        step.dout = out->grad;
        for (int i = 0; i < n->n_in; i++) {
            if (ldm_op_no_grad(n->op, i) || !n->in[i]->requires_grad) continue;
            ldm_tensor *s = ldm_storage(n->in[i]);
            step.din[i] = grad_of(g, s);
            if (!step.din[i]) {
                st = g->status;
                break;
            }
            step.acc[i] = is_leaf(s) ? 1 : written[s->id];
            written[s->id] = 1;
        }
        if (st == LDM_OK) st = add_step(g, &step);
    }
    free(written);
    free(r.map);
    free(r.clone_of);
    free(r.done);
    if (st != LDM_OK) return st;
    /* Views share their base's gradient. */
    for (int i = 0; i < g->n_tensors; i++) {
        ldm_tensor *t = g->tensors[i];
        if (t->base && t->base->grad) t->grad = t->base->grad;
    }
    return LDM_OK;
}

/* Which tensors a gradient reaches, from the leaves' flags as they are now: parameters frozen
 * after the forward was recorded (LoRA's base weights, a frozen text encoder) take no gradient,
 * and nothing computed from them alone does either. */
static void refresh_requires_grad(ldm_graph *g) {
    for (int k = 0; k < g->n_nodes; k++) {
        ldm_node *n = g->nodes[k];
        int rg = 0;
        for (int i = 0; i < n->n_in; i++)
            if (!ldm_op_no_grad(n->op, i) && ldm_storage(n->in[i])->requires_grad) rg = 1;
        n->out[0]->requires_grad = rg;
    }
    for (int i = 0; i < g->n_tensors; i++) { /* views: as their storage */
        ldm_tensor *t = g->tensors[i];
        if (t->base) t->requires_grad = t->base->requires_grad;
    }
}

static ldm_status start_backward(ldm_graph *g, ldm_tensor *out, ldm_tensor *seed) {
    if (g->status != LDM_OK) return g->status;
    refresh_requires_grad(g);
    if (!out) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "backward from a missing tensor");
    if (g->has_backward)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "the backward pass was already generated");
    if (out->producer < 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "backward from '%s', which no op computes (a parameter or an input)",
                        out->name);
    if (!out->requires_grad)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "'%s' does not depend on any trainable parameter or input that asks for "
                        "a gradient",
                        out->name);
    if (seed && (seed->kind != TK_INPUT || seed->numel != out->numel))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the seed of a backward pass must be an input with as many elements as "
                        "'%s' (%zu)",
                        out->name, out->numel);
    g->loss = out;
    g->seed = seed;
    g->has_backward = 1;
    ldm_status st = ldm_graph_build_backward(g);
    if (st != LDM_OK) {
        g->status = st;
        free(g->error);
        g->error = ldm_strdup(ldm_last_error());
    }
    return st;
}

ldm_status ldm_graph_backward(ldm_graph *g, ldm_tensor *loss) {
    return start_backward(g, loss, NULL);
}

ldm_status ldm_graph_backward_seeded(ldm_graph *g, ldm_tensor *out, ldm_tensor *seed) {
    return start_backward(g, out, seed);
}
