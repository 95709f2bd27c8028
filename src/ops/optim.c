/* src/ops/optim.c: Adam/AdamW with optional gradient-norm clipping, and the parameter EMA
 * (kernels in cl/optim.cl). Each keeps its moments or average in an arena laid out like the
 * graph's trainable parameters, and records its launches once for replay at every step. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/optim.h"
#include "ops_internal.h"

#define FILE_CL "optim.cl"
#define STATE_FLOATS 64 /* one aligned block */

struct ldm_optimizer {
    ldm_graph *g;
    ldm_adam_config cfg;
    ldm_arena *m_arena, *v_arena, *arena; /* m; v; state and reduction scratch */
    ldm_buf m, v, state, scratch;
    size_t count;
    float lr; /* host copy the non-blocking learning-rate write reads from */
    ldm_cmd *cmd;
};

struct ldm_ema {
    ldm_graph *g;
    ldm_arena *arena;
    ldm_buf ema, counter;
    ldm_cmd *cmd, *swap; /* the update; the exchange with the parameters */
};

void ldm_adam_config_init(ldm_adam_config *cfg) {
    *cfg = (ldm_adam_config){1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, 0.0f};
}

static ldm_status check_graph(ldm_graph *g, size_t *count) {
    if (!g->compiled || !g->has_backward)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "an optimizer needs a compiled graph with a backward pass");
    ldm_graph_trainable_buf(g, count);
    if (*count == 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "the graph has no trainable parameters");
    return LDM_OK;
}

static ldm_status record_adam(ldm_optimizer *o) {
    ldm_cmd *c = o->cmd;
    ldm_buf params = ldm_graph_trainable_buf(o->g, &o->count);
    ldm_buf grads = ldm_graph_trainable_grad_buf(o->g);
    ldm_cmd_set_label(c, "optimizer");
    if (o->cfg.max_grad_norm > 0.0f) {
        ldm_reduce_params norm2 = {LDM_TERM_SQUARE, o->count, 1.0f, 0.0f};
        LDM_TRY(ldm_reduce_fwd(c, &norm2, (ldm_buf){o->state.mem, o->state.off + 2}, grads, grads,
                               o->scratch));
    }
    cl_kernel k;
    const ldm_adam_config *f = &o->cfg;
    size_t one = 1;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "adam_prepare", NULL, &k));
    LDM_TRY(ldm_args_adam_prepare(k, f->beta1, f->beta2, f->max_grad_norm, o->state));
    LDM_TRY(ldm_cmd_launch(c, k, 1, &one, NULL));
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "adam_step", NULL, &k));
    LDM_TRY(ldm_args_adam_step(k, (int)o->count, f->beta1, f->beta2, f->eps, f->weight_decay,
                               f->decoupled, f->max_grad_norm, o->state, params, grads, o->m,
                               o->v));
    LDM_TRY(ldm_launch_1d(c, k, o->count));
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "step_count", NULL, &k));
    LDM_TRY(ldm_args_step_count(k, o->state));
    LDM_TRY(ldm_cmd_launch(c, k, 1, &one, NULL));
    return ldm_cmd_finalize(c);
}

ldm_status ldm_adam_create(ldm_graph *g, const ldm_adam_config *cfg, ldm_optimizer **out) {
    *out = NULL;
    size_t count;
    LDM_TRY(check_graph(g, &count));
    ldm_optimizer *o = calloc(1, sizeof *o);
    if (!o) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    o->g = g;
    o->cfg = *cfg;
    o->lr = cfg->lr;
    size_t scratch = ldm_reduce_scratch(count);
    uint64_t bytes = ((uint64_t)STATE_FLOATS + scratch + 2 * LDM_ARENA_ALIGN_ELEMS) * 4;
    /* One buffer per moment: each is as large as the parameters, which may be close to the
     * device's largest allocation. */
    ldm_status st = ldm_arena_create(g->ctx, "optimizer exp_avg", (uint64_t)count * 4, &o->m_arena);
    if (st == LDM_OK)
        st = ldm_arena_create(g->ctx, "optimizer exp_avg_sq", (uint64_t)count * 4, &o->v_arena);
    if (st == LDM_OK) st = ldm_arena_create(g->ctx, "optimizer state", bytes, &o->arena);
    if (st == LDM_OK) st = ldm_arena_take(o->m_arena, count, "exp_avg", &o->m);
    if (st == LDM_OK) st = ldm_arena_take(o->v_arena, count, "exp_avg_sq", &o->v);
    if (st == LDM_OK) st = ldm_arena_take(o->arena, STATE_FLOATS, "optimizer state", &o->state);
    if (st == LDM_OK) st = ldm_arena_take(o->arena, scratch, "gradient norm", &o->scratch);
    float init[3] = {0.0f, cfg->lr, 0.0f}; /* step 0 (all-zero bits), lr, norm^2 */
    if (st == LDM_OK) st = ldm_buf_write(g->ctx, o->state, init, 3);
    if (st == LDM_OK) st = ldm_cmd_create_recording(g->ctx, &o->cmd);
    if (st == LDM_OK) st = record_adam(o);
    if (st != LDM_OK) {
        ldm_optimizer_destroy(o);
        return st;
    }
    *out = o;
    return LDM_OK;
}

void ldm_optimizer_destroy(ldm_optimizer *o) {
    if (!o) return;
    ldm_cmd_destroy(o->cmd);
    ldm_arena_destroy(o->m_arena);
    ldm_arena_destroy(o->v_arena);
    ldm_arena_destroy(o->arena);
    free(o);
}

ldm_status ldm_optimizer_step(ldm_optimizer *o) {
    return ldm_cmd_replay(o->cmd);
}

ldm_status ldm_optimizer_set_lr(ldm_optimizer *o, float lr) {
    /* Blocking: the host value must outlive the transfer, and changes are rare. */
    o->lr = lr;
    return ldm_buf_write(o->g->ctx, (ldm_buf){o->state.mem, o->state.off + 1}, &o->lr, 1);
}

ldm_status ldm_optimizer_steps(ldm_optimizer *o, uint64_t *steps) {
    uint32_t bits;
    LDM_TRY(ldm_buf_read(o->g->ctx, &bits, o->state, 1));
    *steps = bits;
    return LDM_OK;
}

ldm_status ldm_optimizer_set_steps(ldm_optimizer *o, uint64_t steps) {
    if (steps > UINT32_MAX)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "optimizer steps %llu past 2^32",
                        (unsigned long long)steps);
    uint32_t bits = (uint32_t)steps;
    return ldm_buf_write(o->g->ctx, o->state, &bits, 1);
}

ldm_status ldm_optimizer_grad_norm(ldm_optimizer *o, float *norm) {
    float sq;
    LDM_TRY(ldm_buf_read(o->g->ctx, &sq, (ldm_buf){o->state.mem, o->state.off + 2}, 1));
    *norm = sqrtf(sq);
    return LDM_OK;
}

ldm_buf ldm_optimizer_moment(const ldm_optimizer *o, int which) {
    return which == 1 ? o->m : o->v;
}

ldm_status ldm_ema_create(ldm_graph *g, float decay, int warmup, ldm_ema **out) {
    *out = NULL;
    size_t count;
    LDM_TRY(check_graph(g, &count));
    ldm_ema *e = calloc(1, sizeof *e);
    if (!e) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    e->g = g;
    ldm_buf params = ldm_graph_trainable_buf(g, &count);
    ldm_status st = ldm_arena_create(g->ctx, "EMA parameters",
                                     ((uint64_t)count + 2 * LDM_ARENA_ALIGN_ELEMS) * 4, &e->arena);
    if (st == LDM_OK) st = ldm_arena_take(e->arena, count, "ema", &e->ema);
    if (st == LDM_OK) st = ldm_arena_take(e->arena, STATE_FLOATS, "ema counter", &e->counter);
    if (st == LDM_OK) st = ldm_buf_copy(g->ctx, e->ema, params, count, NULL);
    if (st == LDM_OK) st = ldm_cmd_create_recording(g->ctx, &e->cmd);
    cl_kernel k;
    if (st == LDM_OK) st = ldm_cmd_kernel(e->cmd, FILE_CL, "ema_update", NULL, &k);
    if (st == LDM_OK)
        st = ldm_args_ema_update(k, (int)count, decay, warmup != 0, e->counter, e->ema, params);
    if (st == LDM_OK) st = ldm_launch_1d(e->cmd, k, count);
    if (st == LDM_OK) st = ldm_cmd_kernel(e->cmd, FILE_CL, "step_count", NULL, &k);
    if (st == LDM_OK) st = ldm_args_step_count(k, e->counter);
    size_t one = 1;
    if (st == LDM_OK) st = ldm_cmd_launch(e->cmd, k, 1, &one, NULL);
    if (st == LDM_OK) st = ldm_cmd_create_recording(g->ctx, &e->swap);
    if (st == LDM_OK) st = ldm_cmd_kernel(e->swap, FILE_CL, "swap_values", NULL, &k);
    if (st == LDM_OK) st = ldm_args_swap_values(k, (int)count, e->ema, params);
    if (st == LDM_OK) st = ldm_launch_1d(e->swap, k, count);
    if (st != LDM_OK) {
        ldm_ema_destroy(e);
        return st;
    }
    *out = e;
    return LDM_OK;
}

void ldm_ema_destroy(ldm_ema *e) {
    if (!e) return;
    ldm_cmd_destroy(e->cmd);
    ldm_cmd_destroy(e->swap);
    ldm_arena_destroy(e->arena);
    free(e);
}

ldm_status ldm_ema_set_updates(ldm_ema *e, uint64_t updates) {
    if (updates > UINT32_MAX)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "EMA updates %llu past 2^32",
                        (unsigned long long)updates);
    uint32_t bits = (uint32_t)updates;
    return ldm_buf_write(e->g->ctx, e->counter, &bits, 1);
}

ldm_status ldm_ema_updates(ldm_ema *e, uint64_t *updates) {
    uint32_t bits;
    LDM_TRY(ldm_buf_read(e->g->ctx, &bits, e->counter, 1));
    *updates = bits;
    return LDM_OK;
}

ldm_status ldm_ema_update(ldm_ema *e) {
    return ldm_cmd_replay(e->cmd);
}

ldm_status ldm_ema_swap(ldm_ema *e) {
    return ldm_cmd_replay(e->swap);
}

ldm_buf ldm_ema_buf(const ldm_ema *e) {
    return e->ema;
}
