/* src/graph/compile.c: turns a recorded graph into arenas and a recording of launches, and runs
 * it. The parameters' values and gradients are its store's (params.c: trainable values, frozen
 * values and the trainable ones' gradients, laid out alike so that an optimizer is one flat
 * kernel), allocated when the first graph bound to the store compiles; the graph's own arenas,
 * one per lifetime: constants, inputs, the inputs' gradients and the planned activations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"
#include "kernel_args.h"
#include "params.h"

#define ALIGN ((uint64_t)LDM_ARENA_ALIGN_ELEMS)

static uint64_t aligned_bytes(size_t numel) {
    return ((uint64_t)numel + ALIGN - 1) / ALIGN * ALIGN * 4;
}

/* Creates an arena of `bytes` (none when 0) and carves the listed tensors from it in order. */
static ldm_status carve(ldm_graph *g, const char *name, uint64_t bytes, ldm_arena **arena,
                        ldm_tensor **list, int n, int want_grad) {
    *arena = NULL;
    if (bytes == 0) return LDM_OK;
    LDM_TRY(ldm_arena_create(g->ctx, name, bytes, arena));
    for (int i = 0; i < n; i++) {
        ldm_tensor *t = want_grad ? list[i]->grad : list[i];
        LDM_TRY(ldm_arena_take(*arena, t->numel, t->name, &t->buf));
    }
    return LDM_OK;
}

/* The stretch of the store's trainable arena that holds the parameters this graph trains. With
 * a store of its own that is the whole arena; in a shared one (an autoencoder and its
 * discriminator) the graph's parameters must lie together, with no other graph's trainable ones
 * among them, or its optimizer would step those. */
static ldm_status find_span(ldm_graph *g) {
    ldm_params *p = g->store;
    size_t lo = SIZE_MAX, hi = 0;
    for (int i = 0; i < g->n_params; i++) {
        ldm_tensor *t = g->params[i];
        if (!t->trainable) continue;
        size_t off = t->entry->value.off, end = off + (size_t)(aligned_bytes(t->numel) / 4);
        if (off < lo) lo = off;
        if (end > hi) hi = end;
    }
    g->span_off = lo == SIZE_MAX ? 0 : lo;
    g->span_count = lo == SIZE_MAX ? 0 : hi - lo;
    if (!g->has_backward) return LDM_OK;
    for (int i = 0; i < p->n; i++) {
        ldm_param_entry *e = p->entries[i];
        if (!e->trainable || e->value.off < g->span_off ||
            e->value.off >= g->span_off + g->span_count)
            continue;
        int mine = 0;
        for (int k = 0; k < g->n_params && !mine; k++)
            mine = g->params[k]->entry == e && g->params[k]->trainable;
        if (!mine)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "the parameters this graph trains are not together in its store: '%s' "
                            "lies among them but another graph trains it (record the graphs one "
                            "after the other)",
                            e->name);
    }
    return LDM_OK;
}

static ldm_status allocate(ldm_graph *g, size_t peak, size_t bank) {
    int n = g->n_tensors, n_co = 0, n_in = 0, n_lg = 0;
    ldm_tensor **co = malloc((size_t)n * sizeof *co), **in = malloc((size_t)n * sizeof *in);
    ldm_tensor **lg = malloc((size_t)n * sizeof *lg);
    ldm_status st = LDM_OK;
    if (!co || !in || !lg) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    uint64_t b_co = 0, b_in = 0, b_lg = 0;
    for (int i = 0; i < n && st == LDM_OK; i++) {
        ldm_tensor *t = g->tensors[i];
        if (t->base || t->entry) continue; /* views; parameters live in the store */
        if (t->kind == TK_PARAM) {         /* a constant */
            co[n_co++] = t;
            b_co += aligned_bytes(t->numel);
        } else if (t->kind == TK_INPUT) {
            in[n_in++] = t;
            b_in += aligned_bytes(t->numel);
            if (t->grad) {
                lg[n_lg++] = t;
                b_lg += aligned_bytes(t->numel);
            }
        }
    }
    /* The store's parameters: trainable ones get a gradient, zero when they are not on the loss's
     * path, so that the flat layouts match. */
    uint64_t b_tr, b_fr, b_pg;
    ldm_params_pending_bytes(g->store, g->has_backward, &b_tr, &b_fr, &b_pg);
    uint64_t b_grads = b_pg + b_lg;
    /* all of it at once, before any buffer: need X, have Y */
    uint64_t b_act = (uint64_t)peak * 4, b_all = b_tr + b_fr + b_co + b_in + b_act;
    if (g->has_backward) b_all += b_grads;
    uint64_t limit;
    const char *which;
    uint64_t have = ldm_ctx_free_bytes(g->ctx, &limit, &which);
    if (st == LDM_OK && b_all > have) {
        char need_s[32], have_s[32], limit_s[32], p_s[32], in_s[32], gr_s[32], act_s[32];
        st = LDM_FAIL(LDM_ERR_DEVICE_MEMORY,
                      "the graph does not fit on '%s': need %s (%llu bytes: parameters %s, "
                      "inputs %s, gradients %s, activations %s), have %s free of %s (%s). "
                      "Reduce the batch size or resolution",
                      g->ctx->info.device_name, ldm_format_bytes(b_all, need_s, 32),
                      (unsigned long long)b_all, ldm_format_bytes(b_tr + b_fr + b_co, p_s, 32),
                      ldm_format_bytes(b_in, in_s, 32),
                      ldm_format_bytes(g->has_backward ? b_grads : 0, gr_s, 32),
                      ldm_format_bytes(b_act, act_s, 32), ldm_format_bytes(have, have_s, 32),
                      ldm_format_bytes(limit, limit_s, 32), which);
    }
    if (st == LDM_OK) st = ldm_params_allocate(g->store, g->has_backward);
    for (int i = 0; i < g->n_params && st == LDM_OK; i++) {
        ldm_tensor *t = g->params[i];
        if (t->trainable && !t->entry->trainable)
            st = LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                          "parameter '%s' is frozen in its store (by the graph that created it): "
                          "another graph cannot train it",
                          t->name);
        t->buf = t->entry->value;
        if (t->grad) t->grad->buf = t->entry->grad;
    }
    if (st == LDM_OK) st = find_span(g);
    if (st == LDM_OK) st = carve(g, "constants", b_co, &g->constants, co, n_co, 0);
    if (st == LDM_OK) st = carve(g, "inputs", b_in, &g->inputs, in, n_in, 0);
    if (st == LDM_OK && b_lg && g->has_backward) {
        st = ldm_arena_create(g->ctx, "input gradients", b_lg, &g->leaf_grads);
        for (int i = 0; i < n_lg && st == LDM_OK; i++)
            st = ldm_arena_take(g->leaf_grads, lg[i]->numel, lg[i]->grad->name, &lg[i]->grad->buf);
    }
    size_t banks = peak ? (peak + bank - 1) / bank : 0;
    if (st == LDM_OK && banks > LDM_MAX_BANKS) {
        char need[32];
        st = LDM_FAIL(LDM_ERR_DEVICE_MEMORY,
                      "the activations need %s in %zu buffers, more than the %d ldmcl makes",
                      ldm_format_bytes((uint64_t)peak * 4, need, 32), banks, LDM_MAX_BANKS);
    }
    for (size_t k = 0; k < banks && st == LDM_OK; k++) {
        size_t size = k + 1 < banks ? bank : peak - k * bank;
        st = ldm_arena_create(g->ctx, banks > 1 ? "activations (one of several)" : "activations",
                              (uint64_t)size * 4, &g->activations[k]);
        if (st == LDM_OK) g->n_banks++;
    }
    if (st == LDM_OK && banks) {
        for (int i = 0; i < n; i++) {
            ldm_tensor *t = g->tensors[i];
            if (!t->planned || t->base) continue;
            size_t k = t->plan_off / bank;
            t->buf = (ldm_buf){ldm_arena_mem(g->activations[k]), t->plan_off - k * bank};
        }
    }
    g->memory.trainable_bytes =
        g->store->trainable ? ldm_arena_capacity_bytes(g->store->trainable) : 0;
    g->memory.frozen_bytes = b_co;
    for (int i = 0; i < g->store->n_frozen; i++)
        g->memory.frozen_bytes += ldm_arena_capacity_bytes(g->store->frozen[i]);
    g->memory.input_bytes = b_in;
    g->memory.leaf_grad_bytes =
        g->has_backward ? b_lg + (g->store->grads ? ldm_arena_capacity_bytes(g->store->grads) : 0)
                        : 0;
    g->memory.activation_bytes = (uint64_t)peak * 4;
    free(co);
    free(in);
    free(lg);
    return st;
}

static ldm_status add_scratch(ldm_graph *g) {
    for (int k = 0; k < g->n_nodes + g->n_clones; k++) { /* recomputed clones too */
        ldm_node *n = k < g->n_nodes ? g->nodes[k] : g->clones[k - g->n_nodes];
        if (n->n_out != 1 + n->op->n_saved) /* the planner trusts what the op class says */
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s: op %s saves %d tensors, its node has %d",
                            n->label, n->op->name, n->op->n_saved, n->n_out - 1);
        size_t need[2] = {n->scratch_fwd, n->scratch_bwd};
        for (int d = 0; d < 2; d++) {
            if (!need[d]) continue;
            if (d == 1 && !g->has_backward) continue;
            char name[160];
            snprintf(name, sizeof name, "%s.scratch%s", n->label, d ? "_bwd" : "");
            ldm_tensor *t = ldm_graph_scratch(g, name, need[d]);
            if (!t) return ldm_restore_error(g->status, ldm_graph_error(g));
            n->scratch_t[d] = t;
        }
    }
    return LDM_OK;
}

static ldm_buf buf_or_null(const ldm_tensor *t) {
    return t ? ldm_tensor_buf(t) : (ldm_buf){NULL, 0};
}

/* The last launch of a run: step counter += 1, so every run draws new random numbers. */
static ldm_status count_step(ldm_graph *g) {
    if (!g->step) return LDM_OK;
    cl_kernel k;
    ldm_cmd_set_label(g->cmd, "step counter");
    LDM_TRY(ldm_cmd_kernel(g->cmd, "optim.cl", "step_count", NULL, &k));
    LDM_TRY(ldm_args_step_count(k, ldm_tensor_buf(g->step)));
    size_t one = 1;
    return ldm_cmd_launch(g->cmd, k, 1, &one, NULL);
}

static ldm_status record_passes(ldm_graph *g);

static ldm_status record(ldm_graph *g) {
    LDM_TRY(ldm_cmd_create_recording(g->ctx, &g->cmd));
    LDM_TRY(record_passes(g));
    return count_step(g);
}

static ldm_status record_passes(ldm_graph *g) {
    ldm_cmd *c = g->cmd;
    for (int k = 0; k < g->n_nodes; k++) {
        ldm_node *n = g->nodes[k];
        ldm_cmd_set_label(c, n->label);
        ldm_status st = n->op->fwd(c, n, buf_or_null(n->scratch_t[0]));
        if (st != LDM_OK) {
            ldm_error_prefix("recording the forward of '%s'", n->label);
            return st;
        }
    }
    if (!g->has_backward) return LDM_OK;
    ldm_tensor *lg = ldm_storage(g->loss)->grad;
    g->bwd_end = malloc((size_t)(g->n_steps ? g->n_steps : 1) * sizeof *g->bwd_end);
    if (!g->bwd_end) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_cmd_set_label(c, "backward seed");
    if (g->seed)
        LDM_TRY(ldm_cmd_copy(c, lg->buf, ldm_tensor_buf(g->seed), lg->numel));
    else
        LDM_TRY(ldm_cmd_fill(c, lg->buf, 1.0f, lg->numel));
    for (int j = 0; j < g->n_steps; j++) {
        const ldm_bwd_step *s = &g->steps[j];
        ldm_node *n = s->node;
        if (s->recompute) { /* gradient checkpointing: a segment's forward again */
            ldm_cmd_set_label(c, n->label);
            ldm_status st = n->op->fwd(c, n, buf_or_null(n->scratch_t[0]));
            if (st != LDM_OK) {
                ldm_error_prefix("recording the recomputed forward of '%s'", n->label);
                return st;
            }
            g->bwd_end[j] = ldm_cmd_count(c);
            continue;
        }
        ldm_bwd_args a;
        memset(&a, 0, sizeof a);
        a.dout = s->dout->buf;
        for (int i = 0; i < n->n_in; i++) {
            a.din[i] = buf_or_null(s->din[i]);
            if (a.din[i].mem) a.din[i].off += n->in[i]->view_off; /* rows of a leaf */
            a.acc[i] = s->acc[i];
        }
        a.scratch = buf_or_null(n->scratch_t[1]);
        char label[160];
        snprintf(label, sizeof label, "%s.backward", n->label);
        ldm_cmd_set_label(c, label);
        ldm_status st = n->op->bwd(c, n, &a);
        if (st != LDM_OK) {
            ldm_error_prefix("recording the backward of '%s'", n->label);
            return st;
        }
        g->bwd_end[j] = ldm_cmd_count(c);
    }
    return LDM_OK;
}

ldm_status ldm_graph_compile(ldm_graph *g) {
    /* The first recording error, with its message: later calls may have replaced the thread's. */
    if (g->status != LDM_OK) return ldm_restore_error(g->status, ldm_graph_error(g));
    if (g->compiled) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "graph compiled twice");
    ldm_status st = add_scratch(g);
    /* Banks as large as the device allows in one buffer, whole multiples of the alignment. */
    uint64_t max_alloc = ldm_ctx_max_allocation(g->ctx) / 4;
    size_t bank = (size_t)(max_alloc / ALIGN * ALIGN);
    size_t peak = 0, total = 0;
    if (st == LDM_OK) st = ldm_graph_plan(g, bank, &peak, &total);
    if (st == LDM_OK) st = allocate(g, peak, bank);
    for (int i = 0; i < g->n_tensors && st == LDM_OK; i++)
        if (g->tensors[i]->init)
            st = ldm_buf_write(g->ctx, g->tensors[i]->buf, g->tensors[i]->init,
                               g->tensors[i]->numel);
    if (st == LDM_OK) st = record(g);
    if (st == LDM_OK) st = ldm_cmd_finalize(g->cmd);
    if (st != LDM_OK) return st;
    g->compiled = 1;
    g->memory.activation_total = (uint64_t)total * 4;
    g->memory.n_nodes = (size_t)g->n_nodes;
    g->memory.n_backward_steps = (size_t)g->n_steps;
    g->memory.n_launches = ldm_cmd_count(g->cmd);
    return LDM_OK;
}

static ldm_status need_compiled(const ldm_graph *g) {
    if (!g->compiled) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "the graph must be compiled first");
    return LDM_OK;
}

ldm_status ldm_graph_run(ldm_graph *g) {
    LDM_TRY(need_compiled(g));
    return ldm_cmd_replay(g->cmd);
}

static ldm_status zero_arena(ldm_ctx *ctx, ldm_arena *a) {
    if (!a) return LDM_OK;
    ldm_buf all = {ldm_arena_mem(a), 0};
    return ldm_buf_fill(ctx, all, 0.0f, (size_t)(ldm_arena_capacity_bytes(a) / 4));
}

ldm_status ldm_graph_zero_grads(ldm_graph *g) {
    LDM_TRY(need_compiled(g));
    if (g->has_backward && g->store->grads && g->span_count) { /* this graph's gradients only */
        ldm_buf mine = {ldm_arena_mem(g->store->grads), g->span_off};
        LDM_TRY(ldm_buf_fill(g->ctx, mine, 0.0f, g->span_count));
    }
    return zero_arena(g->ctx, g->leaf_grads);
}

ldm_tensor *ldm_graph_step_counter(ldm_graph *g) {
    if (!g->step && g->status == LDM_OK && !g->compiled) {
        g->step = ldm_graph_input(g, "step counter", 1, (const int[]){1});
        ldm_tensor_keep(g->step);
    }
    return g->step;
}

ldm_status ldm_graph_set_step(ldm_graph *g, uint64_t step) {
    LDM_TRY(need_compiled(g));
    if (!g->step) return LDM_OK;
    if (step > UINT32_MAX)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "step %llu beyond the 32-bit device counter",
                        (unsigned long long)step);
    uint32_t bits = (uint32_t)step;
    return ldm_buf_write(g->ctx, ldm_tensor_buf(g->step), &bits, 1);
}

ldm_status ldm_graph_get_step(ldm_graph *g, uint64_t *step) {
    LDM_TRY(need_compiled(g));
    uint32_t bits = 0;
    if (g->step) LDM_TRY(ldm_buf_read(g->ctx, &bits, ldm_tensor_buf(g->step), 1));
    *step = bits;
    return LDM_OK;
}

ldm_status ldm_graph_set_batch_part(ldm_graph *g, int part, int parts) {
    if (g->n_nodes > 0 || g->compiled)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "a graph's batch part is set before anything is recorded on it");
    if (parts < 1 || part < 0 || part >= parts)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "batch part %d of %d", part, parts);
    g->batch_part = part;
    g->batch_parts = parts;
    return LDM_OK;
}

void ldm_graph_batch_part(const ldm_graph *g, int *part, int *parts) {
    *part = g->batch_part;
    *parts = g->batch_parts > 0 ? g->batch_parts : 1;
}

ldm_cmd *ldm_graph_commands(ldm_graph *g) {
    return g->cmd;
}

ldm_graph_memory ldm_graph_memory_report(const ldm_graph *g) {
    return g->memory;
}

static ldm_status check_io(const ldm_tensor *t, int writing) {
    LDM_TRY(need_compiled(t->g));
    const ldm_tensor *s = t->base ? t->base : t;
    if (writing && s->kind != TK_PARAM && s->kind != TK_INPUT)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "'%s' is computed by the graph; only parameters and inputs are written",
                        t->name);
    if (!ldm_tensor_buf(t).mem)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "'%s' has no memory (not used by the graph)",
                        t->name);
    if (!writing && (s->kind == TK_ACTIVATION || (s->kind == TK_GRAD && s->planned)) && !s->keep)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "'%s' is not kept after a run: mark it with ldm_tensor_keep before "
                        "compiling",
                        t->name);
    return LDM_OK;
}

/* IEEE half from float, rounded to nearest even (overflow to infinity, NaN kept a NaN). */
static uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 0xffu) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t half = man >> shift, rest = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13), rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
        half++; /* may carry into the exponent */
    return (uint16_t)(sign | half);
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, x;
    if (exp == 0x1fu) {
        x = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (!man) {
            x = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else {
        x = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

ldm_status ldm_tensor_write(ldm_tensor *t, const float *data) {
    LDM_TRY(check_io(t, 1));
    if (!ldm_tensor_is_half(t)) return ldm_buf_write(t->g->ctx, ldm_tensor_buf(t), data, t->numel);
    size_t words = (t->numel + 1) / 2;
    uint16_t *h = calloc(2 * words, sizeof *h);
    if (!h) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    for (size_t i = 0; i < t->numel; i++)
        h[i] = float_to_half(data[i]);
    ldm_status st = ldm_buf_write(t->g->ctx, ldm_tensor_buf(t), h, words);
    free(h);
    return st;
}

ldm_status ldm_tensor_read(ldm_tensor *t, float *data) {
    LDM_TRY(check_io(t, 0));
    if (!ldm_tensor_is_half(t)) return ldm_buf_read(t->g->ctx, data, ldm_tensor_buf(t), t->numel);
    size_t words = (t->numel + 1) / 2;
    uint16_t *h = malloc(2 * words * sizeof *h);
    if (!h) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_status st = ldm_buf_read(t->g->ctx, h, ldm_tensor_buf(t), words);
    for (size_t i = 0; st == LDM_OK && i < t->numel; i++)
        data[i] = half_to_float(h[i]);
    free(h);
    return st;
}

ldm_buf ldm_graph_trainable_buf(const ldm_graph *g, size_t *count) {
    const ldm_arena *a = g->store->trainable;
    *count = a ? g->span_count : 0;
    return (ldm_buf){a ? ldm_arena_mem(a) : NULL, a ? g->span_off : 0};
}

ldm_buf ldm_graph_trainable_grad_buf(const ldm_graph *g) {
    const ldm_arena *a = g->store->grads;
    return (ldm_buf){a ? ldm_arena_mem(a) : NULL, a ? g->span_off : 0};
}
