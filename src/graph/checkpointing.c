/* src/graph/checkpointing.c: gradient checkpointing's recording side (see ldmcl/graph.h): the
 * setting, the segments models open and close, and the clones of a segment's nodes (and views
 * on their results) that backward.c runs again ahead of the segment's backward steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

ldm_node *ldm_graph_clone_node(ldm_graph *g, const ldm_node *n, ldm_tensor *const *in) {
    if (g->status != LDM_OK) return NULL;
    ldm_node *c = malloc(sizeof *c);
    if (c && g->n_clones == g->cap_clones) {
        int cap = g->cap_clones ? 2 * g->cap_clones : 64;
        ldm_node **grown = realloc(g->clones, (size_t)cap * sizeof *grown);
        if (grown) g->clones = grown, g->cap_clones = cap;
    }
    if (!c || g->n_clones == g->cap_clones) {
        free(c);
        LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
        return NULL;
    }
    *c = *n;
    g->clones[g->n_clones++] = c;
    c->scratch_t[0] = c->scratch_t[1] = NULL;
    memcpy(c->in, in, (size_t)n->n_in * sizeof *in);
    for (int o = 0; o < n->n_out; o++) {
        const ldm_tensor *t = n->out[o];
        char name[160];
        snprintf(name, sizeof name, "%.120s.recomputed", t->name);
        ldm_tensor *r = ldm_graph_new_tensor(g, name, TK_ACTIVATION, t->ndim, t->shape);
        if (!r) return NULL;
        r->producer = t->producer;
        r->requires_grad = t->requires_grad;
        c->out[o] = r;
    }
    return c;
}

ldm_tensor *ldm_graph_view_like(ldm_graph *g, const ldm_tensor *like, ldm_tensor *base) {
    char name[160];
    snprintf(name, sizeof name, "%.120s.recomputed", like->name);
    ldm_tensor *v = ldm_graph_new_tensor(g, name, TK_ACTIVATION, like->ndim, like->shape);
    if (!v) return NULL;
    v->base = base;
    v->view_off = like->view_off;
    v->requires_grad = like->requires_grad;
    v->producer = like->producer;
    return v;
}

void ldm_graph_set_checkpointing(ldm_graph *g, int on) {
    if (g && !g->has_backward) g->checkpointing = on != 0;
}

int ldm_graph_checkpointing(const ldm_graph *g) {
    return g && g->checkpointing;
}

void ldm_graph_segment_begin(ldm_graph *g) {
    if (!g || !g->checkpointing || g->status != LDM_OK) return;
    if (g->segment_depth++ == 0) g->segment = ++g->n_segments;
}

void ldm_graph_segment_end(ldm_graph *g) {
    if (!g || !g->checkpointing || g->status != LDM_OK) return;
    if (g->segment_depth == 0) {
        LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "a checkpoint segment ended that never began");
        return;
    }
    if (--g->segment_depth == 0) g->segment = 0;
}
