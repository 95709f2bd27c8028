/* src/graph/backward.c: generates the backward pass from the recorded forward pass.
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

ldm_status ldm_graph_build_backward(ldm_graph *g) {
    ldm_tensor *loss = ldm_storage(g->loss);
    char *written = calloc((size_t)g->n_tensors + 1, 1);
    if (!written) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_status st = LDM_OK;
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
        ldm_bwd_step step;
        memset(&step, 0, sizeof step);
        step.node = n;
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
    if (st != LDM_OK) return st;
    /* Views share their base's gradient. */
    for (int i = 0; i < g->n_tensors; i++) {
        ldm_tensor *t = g->tensors[i];
        if (t->base && t->base->grad) t->grad = t->base->grad;
    }
    return LDM_OK;
}

static ldm_status start_backward(ldm_graph *g, ldm_tensor *out, ldm_tensor *seed) {
    if (g->status != LDM_OK) return g->status;
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
