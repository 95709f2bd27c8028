/* src/ops/norm.c: GroupNorm (cl/group_norm.cl), LayerNorm and BatchNorm2d (cl/norm.cl). Each saves
 * mean and rstd (outputs 1 and 2 of its node); each backward reads x, gamma and those. */
#include <stdio.h>

#include "ops_internal.h"

#define FILE_CL "norm.cl"
#define FILE_GN "group_norm.cl"

/* Work-group size of the reductions (src/core/tunables.c). */
static size_t norm_wg(ldm_cmd *c) {
    return ldm_tunables_of(c)->norm_wg;
}

/* The program options that size the kernels' reductions to norm_wg(c), in buf. */
static const char *norm_defines_in(ldm_cmd *c, char *buf, size_t size) {
    snprintf(buf, size, "-DWG=%zu", norm_wg(c));
    return buf;
}

#define norm_defines(c) norm_defines_in((c), (char[32]){0}, 32)

/* GroupNorm splits each group's sums over at most this many work-groups. */
#define GN_MAX_SPLITS 64

/* Scratch: the chunks' statistics or sums and the groups' means (N*G each), then the parameter
 * gradients' chunk sums (C). */
static size_t gn_params_part_at(const ldm_group_norm_params *p) {
    return p->N * p->G * (GN_MAX_SPLITS * 3 + 2);
}

size_t ldm_group_norm_scratch(const ldm_group_norm_params *p) {
    return gn_params_part_at(p) + p->C * GN_MAX_SPLITS * 2;
}

/* Chunks per reduction: 1 (one work-group each) unless the GPU layout would run fewer
 * work-groups than norm_split_groups for `count` reductions of `elems` elements; then enough for
 * that many, each of at least norm_split_min elements, at most GN_MAX_SPLITS; 1 without scratch. */
static int splits_for(ldm_cmd *c, size_t count, size_t elems, ldm_buf scratch) {
    const ldm_tunables *t = ldm_tunables_of(c);
    if (!scratch.mem || t->cpu_layout || count >= (size_t)t->norm_split_groups) return 1;
    size_t want = ((size_t)t->norm_split_groups + count - 1) / count;
    size_t by_size = elems / (size_t)t->norm_split_min;
    if (want > by_size) want = by_size;
    if (want > GN_MAX_SPLITS) want = GN_MAX_SPLITS;
    return want > 1 ? (int)want : 1;
}

/* Chunks per group of the statistics and of dx. */
static int gn_splits(ldm_cmd *c, const ldm_group_norm_params *p, ldm_buf scratch) {
    return splits_for(c, p->N * p->G, p->C / p->G * p->P, scratch);
}

static ldm_status check_gn(const ldm_group_norm_params *p) {
    LDM_TRY(ldm_check_count("group_norm", p->N * p->C * p->P));
    if (p->G == 0 || p->C % p->G)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "group_norm: %zu channels in %zu groups", p->C,
                        p->G);
    return LDM_OK;
}

/* The split forward: chunk statistics, merged per group, then y element by element. */
static ldm_status gn_fwd_split(ldm_cmd *c, const ldm_group_norm_params *p, int splits, ldm_buf y,
                               ldm_buf mean, ldm_buf rstd, ldm_buf x, ldm_buf gamma, ldm_buf beta,
                               ldm_buf part) {
    cl_kernel k;
    int C = (int)p->C, P = (int)p->P, G = (int)p->G, NG = (int)(p->N * p->G);
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_split_stats", norm_defines(c), &k));
    LDM_TRY(ldm_args_group_norm_split_stats(k, C, P, G, splits, part, x));
    size_t global[2] = {(size_t)splits * norm_wg(c), (size_t)NG}, local[2] = {norm_wg(c), 1};
    LDM_TRY(ldm_cmd_launch(c, k, 2, global, local));
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_split_finish", norm_defines(c), &k));
    LDM_TRY(ldm_args_group_norm_split_finish(k, NG, splits, p->eps, mean, rstd, part));
    LDM_TRY(ldm_launch_1d(c, k, (size_t)NG));
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_apply", norm_defines(c), &k));
    size_t total = p->N * p->C * p->P;
    LDM_TRY(ldm_args_group_norm_apply(k, (int)total, C, P, G, y, x, mean, rstd, gamma, beta));
    return ldm_launch_1d(c, k, total);
}

ldm_status ldm_group_norm_fwd(ldm_cmd *c, const ldm_group_norm_params *p, ldm_buf y, ldm_buf mean,
                              ldm_buf rstd, ldm_buf x, ldm_buf gamma, ldm_buf beta,
                              ldm_buf scratch) {
    LDM_TRY(check_gn(p));
    int splits = gn_splits(c, p, scratch);
    if (splits > 1) return gn_fwd_split(c, p, splits, y, mean, rstd, x, gamma, beta, scratch);
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_fwd", norm_defines(c), &k));
    LDM_TRY(ldm_args_group_norm_fwd(k, (int)p->C, (int)p->P, (int)p->G, p->eps, y, mean, rstd, x,
                                    gamma, beta));
    size_t global = p->N * p->G * norm_wg(c), local = norm_wg(c);
    return ldm_cmd_launch(c, k, 1, &global, &local);
}

/* The split gradient of x: chunk sums, their means per group (after the chunks' sums in the
 * scratch), then dx element by element. */
static ldm_status gn_bwd_dx_split(ldm_cmd *c, const ldm_group_norm_params *p, int splits, int acc_x,
                                  ldm_buf dx, ldm_buf dy, ldm_buf x, ldm_buf mean, ldm_buf rstd,
                                  ldm_buf gamma, ldm_buf scratch) {
    cl_kernel k;
    int C = (int)p->C, P = (int)p->P, G = (int)p->G, NG = (int)(p->N * p->G);
    ldm_buf part = scratch, means = {scratch.mem, scratch.off + (size_t)NG * GN_MAX_SPLITS * 3};
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_bwd_split_sums", norm_defines(c), &k));
    LDM_TRY(ldm_args_group_norm_bwd_split_sums(k, C, P, G, splits, part, dy, x, mean, rstd, gamma));
    size_t global[2] = {(size_t)splits * norm_wg(c), (size_t)NG}, local[2] = {norm_wg(c), 1};
    LDM_TRY(ldm_cmd_launch(c, k, 2, global, local));
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_bwd_split_finish", norm_defines(c), &k));
    LDM_TRY(ldm_args_group_norm_bwd_split_finish(k, NG, splits, (int)(p->C / p->G * p->P), means,
                                                 part));
    LDM_TRY(ldm_launch_1d(c, k, (size_t)NG));
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_bwd_split_dx", norm_defines(c), &k));
    size_t total = p->N * p->C * p->P;
    LDM_TRY(ldm_args_group_norm_bwd_split_dx(k, (int)total, C, P, G, acc_x, dx, dy, x, mean, rstd,
                                             gamma, means));
    return ldm_launch_1d(c, k, total);
}

/* The split parameter gradients: chunk sums per channel, then dgamma and dbeta per channel. */
static ldm_status gn_bwd_params_split(ldm_cmd *c, const ldm_group_norm_params *p, int splits,
                                      int acc_g, ldm_buf dgamma, int acc_b, ldm_buf dbeta,
                                      ldm_buf dy, ldm_buf x, ldm_buf mean, ldm_buf rstd,
                                      ldm_buf scratch) {
    cl_kernel k;
    int C = (int)p->C;
    ldm_buf part = {scratch.mem, scratch.off + gn_params_part_at(p)};
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_bwd_params_split_sums", norm_defines(c), &k));
    LDM_TRY(ldm_args_group_norm_bwd_params_split_sums(k, (int)p->N, C, (int)p->P, (int)p->G, splits,
                                                      part, dy, x, mean, rstd));
    size_t global[2] = {(size_t)splits * norm_wg(c), p->C}, local[2] = {norm_wg(c), 1};
    LDM_TRY(ldm_cmd_launch(c, k, 2, global, local));
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_bwd_params_split_finish", norm_defines(c), &k));
    LDM_TRY(ldm_args_group_norm_bwd_params_split_finish(
        k, C, splits, acc_g, ldm_unused_or(dgamma, dy), acc_b, ldm_unused_or(dbeta, dy), part,
        dgamma.mem != NULL, dbeta.mem != NULL));
    return ldm_launch_1d(c, k, p->C);
}

ldm_status ldm_group_norm_bwd(ldm_cmd *c, const ldm_group_norm_params *p, int acc_x, ldm_buf dx,
                              int acc_g, ldm_buf dgamma, int acc_b, ldm_buf dbeta, ldm_buf dy,
                              ldm_buf x, ldm_buf mean, ldm_buf rstd, ldm_buf gamma,
                              ldm_buf scratch) {
    cl_kernel k;
    int C = (int)p->C, P = (int)p->P, G = (int)p->G;
    int splits = gn_splits(c, p, scratch);
    if (dx.mem && splits > 1)
        LDM_TRY(gn_bwd_dx_split(c, p, splits, acc_x, dx, dy, x, mean, rstd, gamma, scratch));
    else if (dx.mem) {
        LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_bwd_dx", norm_defines(c), &k));
        LDM_TRY(ldm_args_group_norm_bwd_dx(k, C, P, G, acc_x, dx, dy, x, mean, rstd, gamma));
        size_t global = p->N * p->G * norm_wg(c), local = norm_wg(c);
        LDM_TRY(ldm_cmd_launch(c, k, 1, &global, &local));
    }
    if (!dgamma.mem && !dbeta.mem) return LDM_OK;
    int psplits = splits_for(c, p->C, p->N * p->P, scratch);
    if (psplits > 1)
        return gn_bwd_params_split(c, p, psplits, acc_g, dgamma, acc_b, dbeta, dy, x, mean, rstd,
                                   scratch);
    LDM_TRY(ldm_cmd_kernel(c, FILE_GN, "group_norm_bwd_params", norm_defines(c), &k));
    LDM_TRY(ldm_args_group_norm_bwd_params(k, (int)p->N, C, P, G, acc_g, ldm_unused_or(dgamma, dy),
                                           acc_b, ldm_unused_or(dbeta, dy), dy, x, mean, rstd,
                                           dgamma.mem != NULL, dbeta.mem != NULL));
    size_t global = p->C * norm_wg(c), local = norm_wg(c);
    return ldm_cmd_launch(c, k, 1, &global, &local);
}

ldm_status ldm_layer_norm_fwd(ldm_cmd *c, const ldm_layer_norm_params *p, ldm_buf y, ldm_buf mean,
                              ldm_buf rstd, ldm_buf x, ldm_buf gamma, ldm_buf beta) {
    LDM_TRY(ldm_check_count("layer_norm", p->R * p->D));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "layer_norm_fwd", norm_defines(c), &k));
    LDM_TRY(ldm_args_layer_norm_fwd(k, (int)p->D, p->eps, y, mean, rstd, x, gamma, beta));
    size_t global = p->R * norm_wg(c), local = norm_wg(c);
    return ldm_cmd_launch(c, k, 1, &global, &local);
}

ldm_status ldm_layer_norm_bwd(ldm_cmd *c, const ldm_layer_norm_params *p, int acc_x, ldm_buf dx,
                              int acc_g, ldm_buf dgamma, int acc_b, ldm_buf dbeta, ldm_buf dy,
                              ldm_buf x, ldm_buf mean, ldm_buf rstd, ldm_buf gamma) {
    cl_kernel k;
    if (dx.mem) {
        LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "layer_norm_bwd_dx", norm_defines(c), &k));
        LDM_TRY(ldm_args_layer_norm_bwd_dx(k, (int)p->D, acc_x, dx, dy, x, mean, rstd, gamma));
        size_t global = p->R * norm_wg(c), local = norm_wg(c);
        LDM_TRY(ldm_cmd_launch(c, k, 1, &global, &local));
    }
    if (dgamma.mem || dbeta.mem) {
        LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "layer_norm_bwd_params", norm_defines(c), &k));
        LDM_TRY(ldm_args_layer_norm_bwd_params(
            k, (int)p->R, (int)p->D, acc_g, ldm_unused_or(dgamma, dy), acc_b,
            ldm_unused_or(dbeta, dy), dy, x, mean, rstd, dgamma.mem != NULL, dbeta.mem != NULL));
        size_t global[2] = {p->D, 16}, local[2] = {16, 16};
        LDM_TRY(ldm_cmd_launch(c, k, 2, global, local));
    }
    return LDM_OK;
}

ldm_status ldm_batch_norm_fwd(ldm_cmd *c, const ldm_batch_norm_params *p, ldm_buf y, ldm_buf mean,
                              ldm_buf rstd, ldm_buf x, ldm_buf gamma, ldm_buf beta,
                              ldm_buf running_mean, ldm_buf running_var, ldm_buf gate) {
    LDM_TRY(ldm_check_count("batch_norm", p->N * p->C * p->P));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "batch_norm_fwd", norm_defines(c), &k));
    LDM_TRY(ldm_args_batch_norm_fwd(k, (int)p->N, (int)p->C, (int)p->P, p->eps, p->momentum,
                                    p->training, gate.mem != NULL, ldm_unused_or(gate, x), y, mean,
                                    rstd, x, gamma, beta, running_mean, running_var));
    size_t global = p->C * norm_wg(c), local = norm_wg(c);
    return ldm_cmd_launch(c, k, 1, &global, &local);
}

ldm_status ldm_batch_norm_bwd(ldm_cmd *c, const ldm_batch_norm_params *p, int acc_x, ldm_buf dx,
                              int acc_g, ldm_buf dgamma, int acc_b, ldm_buf dbeta, ldm_buf dy,
                              ldm_buf x, ldm_buf mean, ldm_buf rstd, ldm_buf gamma) {
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "batch_norm_bwd", norm_defines(c), &k));
    LDM_TRY(ldm_args_batch_norm_bwd(k, (int)p->N, (int)p->C, (int)p->P, p->training, acc_x,
                                    ldm_unused_or(dx, dy), acc_g, ldm_unused_or(dgamma, dy), acc_b,
                                    ldm_unused_or(dbeta, dy), dy, x, mean, rstd, gamma,
                                    dx.mem != NULL, dgamma.mem != NULL, dbeta.mem != NULL));
    size_t global = p->C * norm_wg(c), local = norm_wg(c);
    return ldm_cmd_launch(c, k, 1, &global, &local);
}

/* ---- graph level -------------------------------------------------------------------------- */

#define BUF(t) ldm_tensor_buf(t)

static size_t per_sample(const ldm_tensor *x) {
    return x->numel / ((size_t)x->shape[0] * (size_t)x->shape[1]);
}

static ldm_status gn_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    return ldm_group_norm_fwd(c, LDM_NODE_PARAMS(n, ldm_group_norm_params), BUF(n->out[0]),
                              BUF(n->out[1]), BUF(n->out[2]), BUF(n->in[0]), BUF(n->in[1]),
                              BUF(n->in[2]), scratch);
}

static ldm_status gn_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    return ldm_group_norm_bwd(c, LDM_NODE_PARAMS(n, ldm_group_norm_params), a->acc[0], a->din[0],
                              a->acc[1], a->din[1], a->acc[2], a->din[2], a->dout, BUF(n->in[0]),
                              BUF(n->out[1]), BUF(n->out[2]), BUF(n->in[1]), a->scratch);
}

/* Backward reads x and gamma (inputs 0, 1) and the saved mean and rstd (outputs 1, 2). */
static const ldm_op_class gn_op = {
    .name = "group_norm",
    .fwd = gn_node_fwd,
    .bwd = gn_node_bwd,
    .params_size = LDM_PARAMS_SIZE(ldm_group_norm_params),
    .n_saved = 2,
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1) | LDM_READS_SAVED(0) | LDM_READS_SAVED(1),
};

/* Adds the saved statistics (stats_shape) to a normalisation node. */
static ldm_tensor *with_stats(ldm_graph *g, ldm_node *n, int ndim, const int *stats_shape) {
    if (!n) return NULL;
    if (!ldm_node_add_saved(g, n, ndim, stats_shape) ||
        !ldm_node_add_saved(g, n, ndim, stats_shape))
        return NULL;
    return n->out[0];
}

static int check_affine(ldm_graph *g, const char *op, const ldm_tensor *x, int size,
                        const ldm_tensor *gamma, const ldm_tensor *beta) {
    if (gamma->ndim == 1 && gamma->shape[0] == size && beta->ndim == 1 && beta->shape[0] == size)
        return 1;
    char sx[64];
    LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                   "%s: '%s' %s needs weight '%s' and bias '%s' of shape [%d]", op, x->name,
                   ldm_shape_str(x, sx, sizeof sx), gamma->name, beta->name, size);
    return 0;
}

ldm_tensor *ldm_group_norm(ldm_graph *g, ldm_tensor *x, int groups, float eps, ldm_tensor *gamma,
                           ldm_tensor *beta) {
    if (!x || !gamma || !beta) return NULL;
    if (x->ndim < 2 || groups < 1 || x->shape[1] % groups)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "group_norm: '%s' must be [N, C, ...] with C (%d) a multiple of the "
                              "%d groups",
                              x->name, x->ndim >= 2 ? x->shape[1] : 0, groups);
    if (!check_affine(g, "group_norm", x, x->shape[1], gamma, beta)) return NULL;
    ldm_group_norm_params p = {(size_t)x->shape[0], (size_t)x->shape[1], per_sample(x),
                               (size_t)groups, eps};
    ldm_tensor *in[3] = {x, gamma, beta};
    ldm_node *n =
        ldm_graph_add_node(g, &gn_op, LDM_PARAMS(p), "group_norm", in, 3, x->ndim, x->shape);
    if (n) n->scratch_fwd = n->scratch_bwd = ldm_group_norm_scratch(&p);
    int stats[2] = {x->shape[0], groups};
    return with_stats(g, n, 2, stats);
}

static ldm_status ln_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    return ldm_layer_norm_fwd(c, LDM_NODE_PARAMS(n, ldm_layer_norm_params), BUF(n->out[0]),
                              BUF(n->out[1]), BUF(n->out[2]), BUF(n->in[0]), BUF(n->in[1]),
                              BUF(n->in[2]));
}

static ldm_status ln_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    return ldm_layer_norm_bwd(c, LDM_NODE_PARAMS(n, ldm_layer_norm_params), a->acc[0], a->din[0],
                              a->acc[1], a->din[1], a->acc[2], a->din[2], a->dout, BUF(n->in[0]),
                              BUF(n->out[1]), BUF(n->out[2]), BUF(n->in[1]));
}

static const ldm_op_class ln_op = {
    .name = "layer_norm",
    .fwd = ln_node_fwd,
    .bwd = ln_node_bwd,
    .params_size = LDM_PARAMS_SIZE(ldm_layer_norm_params),
    .n_saved = 2,
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1) | LDM_READS_SAVED(0) | LDM_READS_SAVED(1),
};

ldm_tensor *ldm_layer_norm(ldm_graph *g, ldm_tensor *x, float eps, ldm_tensor *gamma,
                           ldm_tensor *beta) {
    if (!x || !gamma || !beta) return NULL;
    int D = x->shape[x->ndim - 1];
    if (!check_affine(g, "layer_norm", x, D, gamma, beta)) return NULL;
    ldm_layer_norm_params p = {x->numel / (size_t)D, (size_t)D, eps};
    ldm_tensor *in[3] = {x, gamma, beta};
    ldm_node *n =
        ldm_graph_add_node(g, &ln_op, LDM_PARAMS(p), "layer_norm", in, 3, x->ndim, x->shape);
    int rows = (int)(x->numel / (size_t)D);
    return with_stats(g, n, 1, &rows);
}

static ldm_status bn_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    ldm_buf none = {NULL, 0};
    return ldm_batch_norm_fwd(c, LDM_NODE_PARAMS(n, ldm_batch_norm_params), BUF(n->out[0]),
                              BUF(n->out[1]), BUF(n->out[2]), BUF(n->in[0]), BUF(n->in[1]),
                              BUF(n->in[2]), BUF(n->in[3]), BUF(n->in[4]),
                              n->n_in > 5 ? BUF(n->in[5]) : none);
}

static ldm_status bn_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    return ldm_batch_norm_bwd(c, LDM_NODE_PARAMS(n, ldm_batch_norm_params), a->acc[0], a->din[0],
                              a->acc[1], a->din[1], a->acc[2], a->din[2], a->dout, BUF(n->in[0]),
                              BUF(n->out[1]), BUF(n->out[2]), BUF(n->in[1]));
}

/* The running statistics (inputs 3, 4) and the gate of their update (input 5, when there is
 * one) never get a gradient. */
static const ldm_op_class bn_op = {
    .name = "batch_norm",
    .fwd = bn_node_fwd,
    .bwd = bn_node_bwd,
    .params_size = LDM_PARAMS_SIZE(ldm_batch_norm_params),
    .n_saved = 2,
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1) | LDM_READS_SAVED(0) | LDM_READS_SAVED(1),
    .no_grad = LDM_INPUT(3) | LDM_INPUT(4) | LDM_INPUT(5),
};

ldm_tensor *ldm_batch_norm(ldm_graph *g, ldm_tensor *x, ldm_tensor *gate, ldm_tensor *gamma,
                           ldm_tensor *beta, ldm_tensor *running_mean, ldm_tensor *running_var,
                           float momentum, float eps, int training) {
    if (!x || !gamma || !beta || !running_mean || !running_var) return NULL;
    if (gate && gate->numel != 1)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "batch_norm: the gate '%s' must be one value", gate->name);
    if (x->ndim < 2)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "batch_norm: '%s' must "
                              "be [N, C, ...]",
                              x->name);
    if (!check_affine(g, "batch_norm", x, x->shape[1], gamma, beta) ||
        !check_affine(g, "batch_norm", x, x->shape[1], running_mean, running_var))
        return NULL;
    ldm_batch_norm_params p = {
        (size_t)x->shape[0], (size_t)x->shape[1], per_sample(x), eps, momentum, training != 0};
    ldm_tensor *in[6] = {x, gamma, beta, running_mean, running_var, gate};
    ldm_node *n = ldm_graph_add_node(g, &bn_op, LDM_PARAMS(p), "batch_norm", in, gate ? 6 : 5,
                                     x->ndim, x->shape);
    return with_stats(g, n, 1, &x->shape[1]);
}

/* ---- F.normalize over channels ------------------------------------------------------------ */

ldm_status ldm_l2norm_fwd(ldm_cmd *c, const ldm_l2norm_params *p, ldm_buf y, ldm_buf d, ldm_buf x) {
    LDM_TRY(ldm_check_count("l2norm", p->N * p->C * p->P));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "l2norm_fwd", norm_defines(c), &k));
    LDM_TRY(ldm_args_l2norm_fwd(k, (int)p->N, (int)p->C, (int)p->P, p->eps, y, d, x));
    return ldm_launch_1d(c, k, p->N * p->P);
}

ldm_status ldm_l2norm_bwd(ldm_cmd *c, const ldm_l2norm_params *p, int acc, ldm_buf dx, ldm_buf dy,
                          ldm_buf x, ldm_buf d) {
    LDM_TRY(ldm_check_count("l2norm backward", p->N * p->C * p->P));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "l2norm_bwd", norm_defines(c), &k));
    LDM_TRY(ldm_args_l2norm_bwd(k, (int)p->N, (int)p->C, (int)p->P, p->eps, acc, dx, dy, x, d));
    return ldm_launch_1d(c, k, p->N * p->P);
}

static ldm_status l2_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    return ldm_l2norm_fwd(c, LDM_NODE_PARAMS(n, ldm_l2norm_params), BUF(n->out[0]), BUF(n->out[1]),
                          BUF(n->in[0]));
}

static ldm_status l2_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    return ldm_l2norm_bwd(c, LDM_NODE_PARAMS(n, ldm_l2norm_params), a->acc[0], a->din[0], a->dout,
                          BUF(n->in[0]), BUF(n->out[1]));
}

/* Backward reads x and the saved denominators (output 1). */
static const ldm_op_class l2_op = {
    .name = "l2_normalize",
    .fwd = l2_node_fwd,
    .bwd = l2_node_bwd,
    .params_size = LDM_PARAMS_SIZE(ldm_l2norm_params),
    .n_saved = 1,
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_SAVED(0),
};

ldm_tensor *ldm_l2_normalize(ldm_graph *g, ldm_tensor *x, float eps) {
    if (!x) return NULL;
    if (x->ndim < 2)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "l2_normalize: '%s' must be [N, C, ...]",
                              x->name);
    ldm_l2norm_params p = {(size_t)x->shape[0], (size_t)x->shape[1], per_sample(x), eps};
    ldm_node *n =
        ldm_graph_add_node(g, &l2_op, LDM_PARAMS(p), "l2_normalize", &x, 1, x->ndim, x->shape);
    if (!n) return NULL;
    int shape[LDM_MAX_DIMS] = {x->shape[0]};
    int nd = 1;
    for (int d = 2; d < x->ndim; d++)
        shape[nd++] = x->shape[d];
    return ldm_node_add_saved(g, n, nd, shape) ? n->out[0] : NULL;
}
