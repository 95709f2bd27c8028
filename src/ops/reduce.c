/* src/ops/reduce.c: sum, mean, MSE and L1 losses (kernels in cl/reduce.cl). The forward pass
 * reduces in two stages through a scratch buffer of partial sums; the backward pass reads the
 * upstream gradient from the device and the inputs. */
#include <stdio.h>

#include "ops_internal.h"

#define FILE_CL "reduce.cl"
/* The first stage's work-group and its most partial sums: they size the scratch of a reduction
 * (ldm_reduce_scratch), which is known when it is recorded, before any device. */
#define WG 256
#define MAX_PARTIALS 1024

/* Elements per work-group in the first stage: a multiple of WG, so that at most MAX_PARTIALS
 * groups cover n. */
static size_t chunk_of(size_t n) {
    size_t chunk = (n + MAX_PARTIALS - 1) / MAX_PARTIALS;
    return chunk < WG ? WG : (chunk + WG - 1) / WG * WG;
}

size_t ldm_reduce_scratch(size_t n) {
    size_t chunk = chunk_of(n);
    return (n + chunk - 1) / chunk;
}

static ldm_status reduce_kernel(ldm_cmd *c, const char *name, ldm_reduce_term term, cl_kernel *k) {
    if (term < LDM_TERM_VALUE || term > LDM_TERM_SQUARE)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "unknown reduction term %d", (int)term);
    char defines[64];
    snprintf(defines, sizeof defines, "-DWG=%d -DTERM=%d", WG, (int)term);
    return ldm_cmd_kernel(c, FILE_CL, name, defines, k);
}

ldm_status ldm_sum_rows(ldm_cmd *c, size_t rows, size_t cols, float scale, int acc, ldm_buf y,
                        ldm_buf x) {
    LDM_TRY(ldm_check_count("sum_rows", rows * cols));
    cl_kernel k;
    size_t wg = ldm_tunables_of(c)->sum_rows_wg;
    char defines[32];
    snprintf(defines, sizeof defines, "-DWG=%zu", wg);
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "sum_rows", defines, &k));
    LDM_TRY(ldm_args_sum_rows(k, (int)cols, scale, acc, y, x));
    size_t global = rows * wg, local = wg;
    return ldm_cmd_launch(c, k, 1, &global, &local);
}

ldm_status ldm_sum_cols(ldm_cmd *c, size_t rows, size_t cols, float scale, int acc, ldm_buf y,
                        ldm_buf x) {
    LDM_TRY(ldm_check_count("sum_cols", rows * cols));
    cl_kernel k;
    char defines[32];
    snprintf(defines, sizeof defines, "-DWG=%d", WG);
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "sum_cols", defines, &k));
    LDM_TRY(ldm_args_sum_cols(k, (int)rows, (int)cols, scale, acc, y, x));
    size_t global[2] = {cols, 16}, local[2] = {16, 16};
    return ldm_cmd_launch(c, k, 2, global, local);
}

ldm_status ldm_reduce_fwd(ldm_cmd *c, const ldm_reduce_params *p, ldm_buf y, ldm_buf a, ldm_buf b,
                          ldm_buf scratch) {
    LDM_TRY(ldm_check_count("reduction", p->n));
    if (p->n == 0) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "reduction over no elements");
    size_t chunk = chunk_of(p->n), groups = (p->n + chunk - 1) / chunk;
    cl_kernel k;
    LDM_TRY(reduce_kernel(c, "reduce_partial", p->term, &k));
    LDM_TRY(
        ldm_args_reduce_partial(k, (int)p->n, (int)chunk, p->cst, scratch, a, ldm_unused_or(b, a)));
    size_t global = groups * WG, local = WG;
    LDM_TRY(ldm_cmd_launch(c, k, 1, &global, &local));
    return ldm_sum_rows(c, 1, groups, p->scale, 0, y, scratch);
}

ldm_status ldm_reduce_bwd(ldm_cmd *c, const ldm_reduce_params *p, int acc, ldm_buf da, ldm_buf dy,
                          ldm_buf a, ldm_buf b) {
    LDM_TRY(ldm_check_count("reduction backward", p->n));
    cl_kernel k;
    LDM_TRY(reduce_kernel(c, "reduce_bwd", p->term, &k));
    LDM_TRY(
        ldm_args_reduce_bwd(k, (int)p->n, p->scale, p->cst, acc, da, dy, a, ldm_unused_or(b, a)));
    return ldm_launch_1d(c, k, p->n);
}

/* ---- graph level -------------------------------------------------------------------------- */

static ldm_status reduce_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    ldm_buf b = n->n_in > 1 ? ldm_tensor_buf(n->in[1]) : (ldm_buf){NULL, 0};
    return ldm_reduce_fwd(c, LDM_NODE_PARAMS(n, ldm_reduce_params), ldm_tensor_buf(n->out[0]),
                          ldm_tensor_buf(n->in[0]), b, scratch);
}

static ldm_status reduce_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    const ldm_reduce_params *p = LDM_NODE_PARAMS(n, ldm_reduce_params);
    ldm_buf x = ldm_tensor_buf(n->in[0]);
    ldm_buf y = n->n_in > 1 ? ldm_tensor_buf(n->in[1]) : (ldm_buf){NULL, 0};
    if (a->din[0].mem) LDM_TRY(ldm_reduce_bwd(c, p, a->acc[0], a->din[0], a->dout, x, y));
    if (n->n_in > 1 && a->din[1].mem)
        LDM_TRY(ldm_reduce_bwd(c, p, a->acc[1], a->din[1], a->dout, y, x));
    return LDM_OK;
}

/* Losses read their inputs in backward; a plain sum or mean does not. */
static const ldm_op_class loss_op = {
    .name = "loss",
    .fwd = reduce_node_fwd,
    .bwd = reduce_node_bwd,
    .params_size = LDM_PARAMS_SIZE(ldm_reduce_params),
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1),
};
static const ldm_op_class sum_op = {
    .name = "sum",
    .fwd = reduce_node_fwd,
    .bwd = reduce_node_bwd,
    .params_size = LDM_PARAMS_SIZE(ldm_reduce_params),
};

static ldm_tensor *record_reduce(ldm_graph *g, const char *name, ldm_reduce_term term,
                                 ldm_tensor *a, ldm_tensor *b, int mean, float cst) {
    if (!a || (term != LDM_TERM_VALUE && term != LDM_TERM_SQUARED_DIFF_CONST && !b)) return NULL;
    if (b && !ldm_check_same_shape(g, name, a, b)) return NULL;
    ldm_tensor *in[2] = {a, b};
    int one = 1;
    const ldm_op_class *op = term == LDM_TERM_VALUE ? &sum_op : &loss_op;
    ldm_reduce_params p = {term, a->numel, mean ? 1.0f / (float)a->numel : 1.0f, cst};
    ldm_node *n = ldm_graph_add_node(g, op, LDM_PARAMS(p), name, in, b ? 2 : 1, 1, &one);
    if (!n) return NULL;
    n->scratch_fwd = ldm_reduce_scratch(a->numel);
    return n->out[0];
}

ldm_tensor *ldm_sum(ldm_graph *g, ldm_tensor *x) {
    return record_reduce(g, "sum", LDM_TERM_VALUE, x, NULL, 0, 0.0f);
}

ldm_tensor *ldm_mean(ldm_graph *g, ldm_tensor *x) {
    return record_reduce(g, "mean", LDM_TERM_VALUE, x, NULL, 1, 0.0f);
}

ldm_tensor *ldm_mse_loss(ldm_graph *g, ldm_tensor *pred, ldm_tensor *target) {
    return record_reduce(g, "mse_loss", LDM_TERM_SQUARED_DIFF, pred, target, 1, 0.0f);
}

ldm_tensor *ldm_l1_loss(ldm_graph *g, ldm_tensor *pred, ldm_tensor *target) {
    return record_reduce(g, "l1_loss", LDM_TERM_ABS_DIFF, pred, target, 1, 0.0f);
}

ldm_tensor *ldm_mse_loss_const(ldm_graph *g, ldm_tensor *pred, float target) {
    return record_reduce(g, "mse_loss_const", LDM_TERM_SQUARED_DIFF_CONST, pred, NULL, 1, target);
}
