/* src/ops/elementwise.c: activations (silu, leaky_relu, gelu, quick_gelu, exp), GEGLU,
 * alpha*a + beta*b, multiply, the broadcast add of a per-channel vector and detach; kernels in
 * cl/elementwise.cl. Backward of an activation reads its input x; of a multiply, both inputs; the
 * others read nothing but the upstream gradient. */
#include <stdio.h>

#include "ops_internal.h"

#define FILE_CL "elementwise.cl"

static ldm_status act_kernel(ldm_cmd *c, ldm_act act, const char *name, cl_kernel *k) {
    if (act < LDM_ACT_SILU || act > LDM_ACT_EXP)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "unknown activation %d", (int)act);
    char defines[32];
    snprintf(defines, sizeof defines, "-DACT=%d", (int)act);
    return ldm_cmd_kernel(c, FILE_CL, name, defines, k);
}

ldm_status ldm_act_fwd(ldm_cmd *c, const ldm_act_params *p, ldm_buf y, ldm_buf x) {
    LDM_TRY(ldm_check_count("activation", p->n));
    cl_kernel k;
    LDM_TRY(act_kernel(c, p->act, "act_fwd", &k));
    LDM_TRY(ldm_args_act_fwd(k, (int)p->n, p->param, y, x));
    return ldm_launch_1d(c, k, p->n);
}

ldm_status ldm_act_bwd(ldm_cmd *c, const ldm_act_params *p, int acc, ldm_buf dx, ldm_buf dy,
                       ldm_buf x) {
    LDM_TRY(ldm_check_count("activation backward", p->n));
    cl_kernel k;
    LDM_TRY(act_kernel(c, p->act, "act_bwd", &k));
    LDM_TRY(ldm_args_act_bwd(k, (int)p->n, p->param, acc, dx, dy, x));
    return ldm_launch_1d(c, k, p->n);
}

ldm_status ldm_axpby(ldm_cmd *c, size_t n, ldm_buf y, float alpha, ldm_buf a, float beta,
                     ldm_buf b) {
    LDM_TRY(ldm_check_count("axpby", n));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "axpby", NULL, &k));
    LDM_TRY(ldm_args_axpby(k, (int)n, y, alpha, a, beta, b));
    return ldm_launch_1d(c, k, n);
}

ldm_status ldm_affine_fwd(ldm_cmd *c, size_t n, ldm_buf y, float alpha, ldm_buf x, float beta) {
    LDM_TRY(ldm_check_count("affine", n));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "affine", NULL, &k));
    LDM_TRY(ldm_args_affine(k, (int)n, y, alpha, x, beta));
    return ldm_launch_1d(c, k, n);
}

ldm_status ldm_accumulate(ldm_cmd *c, size_t n, int acc, ldm_buf dst, float alpha, ldm_buf src) {
    LDM_TRY(ldm_check_count("accumulate", n));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "accumulate", NULL, &k));
    LDM_TRY(ldm_args_accumulate(k, (int)n, acc, dst, alpha, src));
    return ldm_launch_1d(c, k, n);
}

ldm_status ldm_mul_fwd(ldm_cmd *c, size_t n, ldm_buf y, ldm_buf a, ldm_buf b) {
    LDM_TRY(ldm_check_count("mul", n));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "mul", NULL, &k));
    LDM_TRY(ldm_args_mul(k, (int)n, y, a, b));
    return ldm_launch_1d(c, k, n);
}

ldm_status ldm_mul_acc(ldm_cmd *c, size_t n, int acc, ldm_buf dst, ldm_buf dy, ldm_buf b) {
    LDM_TRY(ldm_check_count("mul backward", n));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "mul_acc", NULL, &k));
    LDM_TRY(ldm_args_mul_acc(k, (int)n, acc, dst, dy, b));
    return ldm_launch_1d(c, k, n);
}

ldm_status ldm_geglu_fwd(ldm_cmd *c, size_t rows, size_t D, ldm_buf y, ldm_buf x) {
    LDM_TRY(ldm_check_count("geglu", 2 * rows * D));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "geglu_fwd", NULL, &k));
    LDM_TRY(ldm_args_geglu_fwd(k, (int)(rows * D), (int)D, y, x));
    return ldm_launch_1d(c, k, rows * D);
}

ldm_status ldm_geglu_bwd(ldm_cmd *c, size_t rows, size_t D, int acc, ldm_buf dx, ldm_buf dy,
                         ldm_buf x) {
    LDM_TRY(ldm_check_count("geglu backward", 2 * rows * D));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "geglu_bwd", NULL, &k));
    LDM_TRY(ldm_args_geglu_bwd(k, (int)(rows * D), (int)D, acc, dx, dy, x));
    return ldm_launch_1d(c, k, rows * D);
}

ldm_status ldm_add_rows_fwd(ldm_cmd *c, size_t rows, size_t cols, ldm_buf y, ldm_buf x, ldm_buf v) {
    LDM_TRY(ldm_check_count("add_rows", rows * cols));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "add_rows", NULL, &k));
    LDM_TRY(ldm_args_add_rows(k, (int)rows, (int)cols, y, x, v));
    return ldm_launch_1d(c, k, rows * cols);
}

ldm_status ldm_add_cols_inplace(ldm_cmd *c, size_t rows, size_t cols, ldm_buf y, ldm_buf b) {
    LDM_TRY(ldm_check_count("add_cols", rows * cols));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "add_cols_inplace", NULL, &k));
    LDM_TRY(ldm_args_add_cols_inplace(k, (int)rows, (int)cols, y, b));
    return ldm_launch_1d(c, k, rows * cols);
}

ldm_status ldm_add_channel_bias(ldm_cmd *c, size_t N, size_t C, size_t P, ldm_buf y, ldm_buf b) {
    LDM_TRY(ldm_check_count("add_channel_bias", N * C * P));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "add_channel_bias", NULL, &k));
    LDM_TRY(ldm_args_add_channel_bias(k, (int)(N * C * P), (int)C, (int)P, y, b));
    return ldm_launch_1d(c, k, N * C * P);
}

/* ---- graph level -------------------------------------------------------------------------- */

#define IN(i) ldm_tensor_buf(n->in[i])
#define OUT ldm_tensor_buf(n->out[0])

static ldm_status act_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    return ldm_act_fwd(c, LDM_NODE_PARAMS(n, ldm_act_params), OUT, IN(0));
}

static ldm_status act_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    return ldm_act_bwd(c, LDM_NODE_PARAMS(n, ldm_act_params), a->acc[0], a->din[0], a->dout, IN(0));
}

static const ldm_op_class act_op = {
    .name = "activation",
    .fwd = act_node_fwd,
    .bwd = act_node_bwd,
    .params_size = LDM_PARAMS_SIZE(ldm_act_params),
    .bwd_reads = LDM_READS_IN(0),
};

static ldm_tensor *record_act(ldm_graph *g, ldm_tensor *x, ldm_act act, float param,
                              const char *name) {
    if (!x) return NULL;
    ldm_act_params p = {act, param, x->numel};
    ldm_node *n = ldm_graph_add_node(g, &act_op, LDM_PARAMS(p), name, &x, 1, x->ndim, x->shape);
    return n ? n->out[0] : NULL;
}

ldm_tensor *ldm_silu(ldm_graph *g, ldm_tensor *x) {
    return record_act(g, x, LDM_ACT_SILU, 0.0f, "silu");
}

ldm_tensor *ldm_leaky_relu(ldm_graph *g, ldm_tensor *x, float negative_slope) {
    return record_act(g, x, LDM_ACT_LEAKY_RELU, negative_slope, "leaky_relu");
}

ldm_tensor *ldm_gelu(ldm_graph *g, ldm_tensor *x) {
    return record_act(g, x, LDM_ACT_GELU, 0.0f, "gelu");
}

ldm_tensor *ldm_quick_gelu(ldm_graph *g, ldm_tensor *x) {
    return record_act(g, x, LDM_ACT_QUICK_GELU, 0.0f, "quick_gelu");
}

/* The last dimension of the output is D; the rows are everything before it. */
static ldm_status geglu_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    size_t D = (size_t)n->out[0]->shape[n->out[0]->ndim - 1];
    return ldm_geglu_fwd(c, n->out[0]->numel / D, D, OUT, IN(0));
}

static ldm_status geglu_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    size_t D = (size_t)n->out[0]->shape[n->out[0]->ndim - 1];
    return ldm_geglu_bwd(c, n->out[0]->numel / D, D, a->acc[0], a->din[0], a->dout, IN(0));
}

static const ldm_op_class geglu_op = {
    .name = "geglu",
    .fwd = geglu_node_fwd,
    .bwd = geglu_node_bwd,
    .bwd_reads = LDM_READS_IN(0),
};

ldm_tensor *ldm_geglu(ldm_graph *g, ldm_tensor *x) {
    if (!x) return NULL;
    int shape[LDM_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        shape[i] = x->shape[i];
    if (shape[x->ndim - 1] % 2)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "geglu: the last dimension of '%s' (%d) must be even", x->name,
                              shape[x->ndim - 1]);
    shape[x->ndim - 1] /= 2;
    ldm_node *n = ldm_graph_add_node(g, &geglu_op, LDM_NO_PARAMS, "geglu", &x, 1, x->ndim, shape);
    return n ? n->out[0] : NULL;
}

static ldm_status half_weight_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    size_t count = n->out[0]->numel;
    LDM_TRY(ldm_check_count("half_to_float", count));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "half_to_float", NULL, &k));
    LDM_TRY(ldm_args_half_to_float(k, (int)count, OUT, IN(0)));
    return ldm_launch_1d(c, k, count);
}

/* The weight is frozen: nothing flows back to it. */
static const ldm_op_class half_weight_op = {
    .name = "half_weight",
    .fwd = half_weight_fwd,
    .no_grad = LDM_INPUT(0),
};

ldm_tensor *ldm_half_weight(ldm_graph *g, ldm_tensor *param) {
    if (!ldm_tensor_is_half(param)) return param;
    ldm_node *n = ldm_graph_add_node(g, &half_weight_op, LDM_NO_PARAMS, "half_weight", &param, 1,
                                     param->ndim, param->shape);
    return n ? n->out[0] : NULL;
}

ldm_tensor *ldm_relu(ldm_graph *g, ldm_tensor *x) {
    return record_act(g, x, LDM_ACT_LEAKY_RELU, 0.0f, "relu");
}

ldm_tensor *ldm_exp(ldm_graph *g, ldm_tensor *x) {
    return record_act(g, x, LDM_ACT_EXP, 0.0f, "exp");
}

static ldm_status detach_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    return ldm_accumulate(c, n->out[0]->numel, 0, OUT, 1.0f, IN(0));
}

/* Its input never takes a gradient through it, so it needs no backward. */
static const ldm_op_class detach_op = {
    .name = "detach",
    .fwd = detach_fwd,
    .no_grad = LDM_INPUT(0),
};

ldm_tensor *ldm_detach(ldm_graph *g, ldm_tensor *x) {
    if (!x) return NULL;
    ldm_node *n =
        ldm_graph_add_node(g, &detach_op, LDM_NO_PARAMS, "detach", &x, 1, x->ndim, x->shape);
    return n ? n->out[0] : NULL;
}

/* coef[i]: the coefficient of input i (the second is 0 for a scale, which has one input). */
typedef struct axpby_params {
    float coef[2];
} axpby_params;

static ldm_status axpby_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const axpby_params *p = LDM_NODE_PARAMS(n, axpby_params);
    if (n->n_in == 1) return ldm_accumulate(c, n->out[0]->numel, 0, OUT, p->coef[0], IN(0));
    return ldm_axpby(c, n->out[0]->numel, OUT, p->coef[0], IN(0), p->coef[1], IN(1));
}

static ldm_status axpby_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    const axpby_params *p = LDM_NODE_PARAMS(n, axpby_params);
    for (int i = 0; i < n->n_in; i++)
        if (a->din[i].mem)
            LDM_TRY(ldm_accumulate(c, n->out[0]->numel, a->acc[i], a->din[i], p->coef[i], a->dout));
    return LDM_OK;
}

/* alpha*a + beta*b; with one input, the scale alpha*a. */
static const ldm_op_class axpby_op = {
    .name = "axpby",
    .fwd = axpby_node_fwd,
    .bwd = axpby_node_bwd,
    .params_size = LDM_PARAMS_SIZE(axpby_params),
};

ldm_tensor *ldm_axpby_t(ldm_graph *g, float alpha, ldm_tensor *a, float beta, ldm_tensor *b) {
    if (!a || !b) return NULL;
    const char *name = alpha == 1.0f && beta == 1.0f    ? "add"
                       : alpha == 1.0f && beta == -1.0f ? "sub"
                                                        : "axpby";
    if (!ldm_check_same_shape(g, name, a, b)) return NULL;
    axpby_params p = {{alpha, beta}};
    ldm_tensor *in[2] = {a, b};
    ldm_node *n = ldm_graph_add_node(g, &axpby_op, LDM_PARAMS(p), name, in, 2, a->ndim, a->shape);
    return n ? n->out[0] : NULL;
}

ldm_tensor *ldm_add(ldm_graph *g, ldm_tensor *a, ldm_tensor *b) {
    return ldm_axpby_t(g, 1.0f, a, 1.0f, b);
}

ldm_tensor *ldm_sub(ldm_graph *g, ldm_tensor *a, ldm_tensor *b) {
    return ldm_axpby_t(g, 1.0f, a, -1.0f, b);
}

ldm_tensor *ldm_scale(ldm_graph *g, ldm_tensor *x, float alpha) {
    if (!x) return NULL;
    axpby_params p = {{alpha, 0.0f}};
    ldm_node *n =
        ldm_graph_add_node(g, &axpby_op, LDM_PARAMS(p), "scale", &x, 1, x->ndim, x->shape);
    return n ? n->out[0] : NULL;
}

/* alpha*x + beta. */
typedef struct affine_params {
    float alpha, beta;
} affine_params;

static ldm_status affine_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const affine_params *p = LDM_NODE_PARAMS(n, affine_params);
    return ldm_affine_fwd(c, n->out[0]->numel, OUT, p->alpha, IN(0), p->beta);
}

static ldm_status affine_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    const affine_params *p = LDM_NODE_PARAMS(n, affine_params);
    return ldm_accumulate(c, n->out[0]->numel, a->acc[0], a->din[0], p->alpha, a->dout);
}

static const ldm_op_class affine_op = {
    .name = "affine",
    .fwd = affine_node_fwd,
    .bwd = affine_node_bwd,
    .params_size = LDM_PARAMS_SIZE(affine_params),
};

ldm_tensor *ldm_affine(ldm_graph *g, ldm_tensor *x, float alpha, float beta) {
    if (!x) return NULL;
    affine_params p = {alpha, beta};
    ldm_node *n =
        ldm_graph_add_node(g, &affine_op, LDM_PARAMS(p), "affine", &x, 1, x->ndim, x->shape);
    return n ? n->out[0] : NULL;
}

static ldm_status mul_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    return ldm_mul_fwd(c, n->out[0]->numel, OUT, IN(0), IN(1));
}

static ldm_status mul_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    size_t count = n->out[0]->numel;
    if (a->din[0].mem) LDM_TRY(ldm_mul_acc(c, count, a->acc[0], a->din[0], a->dout, IN(1)));
    if (a->din[1].mem) LDM_TRY(ldm_mul_acc(c, count, a->acc[1], a->din[1], a->dout, IN(0)));
    return LDM_OK;
}

static const ldm_op_class mul_op = {
    .name = "mul",
    .fwd = mul_node_fwd,
    .bwd = mul_node_bwd,
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1),
};

ldm_tensor *ldm_mul(ldm_graph *g, ldm_tensor *a, ldm_tensor *b) {
    if (!a || !b) return NULL;
    if (!ldm_check_same_shape(g, "mul", a, b)) return NULL;
    ldm_tensor *in[2] = {a, b};
    ldm_node *n = ldm_graph_add_node(g, &mul_op, LDM_NO_PARAMS, "mul", in, 2, a->ndim, a->shape);
    return n ? n->out[0] : NULL;
}

static ldm_status add_channels_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    size_t rows = n->in[1]->numel;
    return ldm_add_rows_fwd(c, rows, n->out[0]->numel / rows, OUT, IN(0), IN(1));
}

static ldm_status add_channels_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    size_t rows = n->in[1]->numel, cols = n->out[0]->numel / rows;
    if (a->din[0].mem) LDM_TRY(ldm_accumulate(c, rows * cols, a->acc[0], a->din[0], 1.0f, a->dout));
    if (a->din[1].mem) LDM_TRY(ldm_sum_rows(c, rows, cols, 1.0f, a->acc[1], a->din[1], a->dout));
    return LDM_OK;
}

static const ldm_op_class add_channels_op = {
    .name = "add_channels",
    .fwd = add_channels_fwd,
    .bwd = add_channels_bwd,
};

ldm_tensor *ldm_add_channels(ldm_graph *g, ldm_tensor *x, ldm_tensor *v) {
    if (!x || !v) return NULL;
    if (x->ndim < 2 || v->ndim != 2 || v->shape[0] != x->shape[0] || v->shape[1] != x->shape[1]) {
        char sx[64], sv[64];
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "add_channels: '%s' %s needs a vector [N, C] matching its first two "
                              "dimensions, got '%s' %s",
                              x->name, ldm_shape_str(x, sx, sizeof sx), v->name,
                              ldm_shape_str(v, sv, sizeof sv));
    }
    ldm_tensor *in[2] = {x, v};
    ldm_node *n = ldm_graph_add_node(g, &add_channels_op, LDM_NO_PARAMS, "add_channels", in, 2,
                                     x->ndim, x->shape);
    return n ? n->out[0] : NULL;
}
