/* src/graph/plan.c: the memory planner. Every activation, activation gradient and scratch buffer
 * gets an offset in one buffer, by liveness over the schedule
 *     forward node i -> position i, loss seed -> n_nodes, backward step j -> n_nodes + 1 + j
 *     (a checkpointed segment's recomputed forward nodes are backward steps too),
 * so that tensors alive at the same time never overlap. Placement is greedy by size (largest
 * first), each at the lowest offset free for its whole lifetime. The offset space is cut into
 * banks no larger than the device's largest allocation, and no tensor crosses a bank boundary:
 * each bank becomes one buffer. Parameters, inputs and leaf gradients are not planned: they live
 * in arenas of their own for the graph's whole life. */
#include <stdlib.h>

#include "graph_internal.h"

#define ALIGN ((size_t)LDM_ARENA_ALIGN_ELEMS)

static int planned_kind(const ldm_tensor *t) {
    if (t->base) return 0;
    if (t->kind == TK_ACTIVATION || t->kind == TK_SCRATCH) return 1;
    return t->kind == TK_GRAD && t->owner->kind != TK_PARAM && t->owner->kind != TK_INPUT;
}

static void touch(ldm_tensor *t, int pos) {
    if (!t) return;
    t = ldm_storage(t);
    if (!planned_kind(t)) return;
    if (!t->planned) {
        t->planned = 1;
        t->first = t->last = pos;
        return;
    }
    if (pos < t->first) t->first = pos;
    if (pos > t->last) t->last = pos;
}

static size_t aligned(size_t n) {
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

static int by_size_desc(const void *a, const void *b) {
    const ldm_tensor *x = *(ldm_tensor *const *)a, *y = *(ldm_tensor *const *)b;
    size_t sx = aligned(x->numel), sy = aligned(y->numel);
    if (sx != sy) return sx > sy ? -1 : 1;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

static int by_offset(const void *a, const void *b) {
    const ldm_tensor *x = *(ldm_tensor *const *)a, *y = *(ldm_tensor *const *)b;
    return x->plan_off < y->plan_off ? -1 : (x->plan_off > y->plan_off);
}

/* The first offset >= off at which [off, off + size) neither crosses a bank boundary nor
 * overlaps a tensor of `placed` (sorted by offset). */
static size_t find_offset(ldm_tensor **placed, int n_placed, size_t size, size_t bank) {
    size_t off = 0;
    for (;;) {
        if (off / bank != (off + size - 1) / bank) off = (off / bank + 1) * bank;
        int moved = 0;
        for (int b = 0; b < n_placed; b++) {
            ldm_tensor *u = placed[b];
            size_t u_end = u->plan_off + aligned(u->numel);
            if (u->plan_off < off + size && off < u_end) {
                off = u_end;
                moved = 1;
                break;
            }
        }
        if (!moved) return off;
    }
}

ldm_status ldm_graph_plan(ldm_graph *g, size_t bank_elems, size_t *peak_elems,
                          size_t *total_elems) {
    for (int i = 0; i < g->n_tensors; i++)
        g->tensors[i]->planned = 0;
    const int seed_pos = g->n_nodes, end = g->n_nodes + 1 + g->n_steps;
    for (int k = 0; k < g->n_nodes; k++) {
        ldm_node *n = g->nodes[k];
        for (int o = 0; o < n->n_out; o++)
            touch(n->out[o], k);
        for (int i = 0; i < n->n_in; i++)
            touch(n->in[i], k);
        touch(n->scratch_t[0], k);
    }
    if (g->has_backward) touch(ldm_storage(g->loss)->grad, seed_pos);
    for (int j = 0; j < g->n_steps; j++) {
        const ldm_bwd_step *s = &g->steps[j];
        const ldm_node *n = s->node;
        int pos = seed_pos + 1 + j;
        if (s->recompute) { /* a checkpointed segment's forward, again */
            for (int o = 0; o < n->n_out; o++)
                touch(n->out[o], pos);
            for (int i = 0; i < n->n_in; i++)
                touch(n->in[i], pos);
            touch(n->scratch_t[0], pos);
            continue;
        }
        touch(s->dout, pos);
        for (int i = 0; i < n->n_in; i++) {
            touch(s->din[i], pos);
            if (ldm_op_reads_input(n->op, i)) touch(n->in[i], pos);
        }
        for (int o = 0; o < n->n_out; o++)
            if (ldm_op_reads_output(n->op, o)) touch(n->out[o], pos);
        touch(n->scratch_t[1], pos);
    }

    int count = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        ldm_tensor *t = g->tensors[i];
        if (!planned_kind(t) || !t->planned) continue;
        if (t->keep) t->last = end;
        count++;
    }
    ldm_tensor **list = malloc((size_t)(count ? count : 1) * sizeof *list);
    ldm_tensor **placed = malloc((size_t)(count ? count : 1) * sizeof *placed);
    if (!list || !placed) {
        free(list);
        free(placed);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    int n_list = 0;
    size_t total = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        ldm_tensor *t = g->tensors[i];
        if (!planned_kind(t) || !t->planned) continue;
        list[n_list++] = t;
        total += aligned(t->numel);
    }
    qsort(list, (size_t)n_list, sizeof *list, by_size_desc);

    size_t peak = 0;
    for (int a = 0; a < n_list; a++) {
        ldm_tensor *t = list[a];
        size_t size = aligned(t->numel);
        /* Tensors already placed whose lifetimes overlap t's, by offset. */
        int n_placed = 0;
        for (int b = 0; b < a; b++) {
            ldm_tensor *u = list[b];
            if (u->first <= t->last && t->first <= u->last) placed[n_placed++] = u;
        }
        if (size > bank_elems) {
            char need[32], have[32];
            ldm_status st = LDM_FAIL(
                LDM_ERR_DEVICE_MEMORY,
                "tensor '%s' does not fit on '%s': need %s (%llu bytes) in one buffer, have %s "
                "(the device's largest single allocation). Reduce the batch size or resolution",
                t->name, g->ctx->info.device_name, ldm_format_bytes((uint64_t)size * 4, need, 32),
                (unsigned long long)size * 4, ldm_format_bytes((uint64_t)bank_elems * 4, have, 32));
            free(list);
            free(placed);
            return st;
        }
        qsort(placed, (size_t)n_placed, sizeof *placed, by_offset);
        size_t off = find_offset(placed, n_placed, size, bank_elems);
        t->plan_off = off;
        if (off + size > peak) peak = off + size;
    }
    free(list);
    free(placed);
    *peak_elems = peak;
    *total_elems = total;
    return LDM_OK;
}
