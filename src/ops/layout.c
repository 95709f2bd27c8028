/* src/ops/layout.c: transpose, concat and narrow (cl/layout.cl). None of their backwards reads a
 * tensor of the forward pass. Narrow's backward with acc 0 zeroes the gradient outside the slice
 * first. */
#include <stdio.h>

#include "ops_internal.h"

#define FILE_CL "layout.cl"

ldm_status ldm_transpose12_fwd(ldm_cmd *c, size_t B, size_t R, size_t C, int acc, ldm_buf y,
                               ldm_buf x) {
    LDM_TRY(ldm_check_count("transpose", B * R * C));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "transpose12", NULL, &k));
    LDM_TRY(ldm_args_transpose12(k, (int)R, (int)C, acc, y, x));
    size_t global[3] = {C, R, B}, local[3] = {16, 16, 1};
    return ldm_cmd_launch(c, k, 3, global, local);
}

ldm_status ldm_copy_slice(ldm_cmd *c, size_t outer, size_t len, size_t inner, size_t src_mid,
                          size_t src_start, size_t dst_mid, size_t dst_start, int acc, ldm_buf dst,
                          ldm_buf src) {
    size_t n = outer * len * inner;
    LDM_TRY(ldm_check_count("copy_slice", n));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "copy_slice", NULL, &k));
    LDM_TRY(ldm_args_copy_slice(k, (int)outer, (int)len, (int)inner, (int)src_mid, (int)src_start,
                                (int)dst_mid, (int)dst_start, acc, dst, src));
    return ldm_launch_1d(c, k, n);
}

/* ---- graph level -------------------------------------------------------------------------- */

static ldm_status transpose_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const int *s = n->in[0]->shape;
    return ldm_transpose12_fwd(c, (size_t)s[0], (size_t)s[1], (size_t)s[2], 0,
                               ldm_tensor_buf(n->out[0]), ldm_tensor_buf(n->in[0]));
}

static ldm_status transpose_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    const int *s = n->in[0]->shape;
    return ldm_transpose12_fwd(c, (size_t)s[0], (size_t)s[2], (size_t)s[1], a->acc[0], a->din[0],
                               a->dout);
}

static const ldm_op_class transpose_op = {
    .name = "transpose12",
    .fwd = transpose_fwd,
    .bwd = transpose_bwd,
};

ldm_tensor *ldm_transpose12(ldm_graph *g, ldm_tensor *x) {
    if (!x) return NULL;
    if (x->ndim != 3)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "transpose12: '%s' must be 3-D [B, R, C], it has %d dimensions",
                              x->name, x->ndim);
    int shape[3] = {x->shape[0], x->shape[2], x->shape[1]};
    ldm_node *n =
        ldm_graph_add_node(g, &transpose_op, LDM_NO_PARAMS, "transpose12", &x, 1, 3, shape);
    return n ? n->out[0] : NULL;
}

/* outer = product of sizes before dim, inner = after it. */
static void split_dims(const ldm_tensor *t, int dim, size_t *outer, size_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < dim; i++)
        *outer *= (size_t)t->shape[i];
    for (int i = dim + 1; i < t->ndim; i++)
        *inner *= (size_t)t->shape[i];
}

/* Along which dimension: concat's two inputs, or narrow's input from `start`. */
typedef struct concat_params {
    int dim;
} concat_params;

typedef struct narrow_params {
    int dim, start;
} narrow_params;

static ldm_status concat_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    int dim = LDM_NODE_PARAMS(n, concat_params)->dim;
    size_t outer, inner, na = (size_t)n->in[0]->shape[dim], nb = (size_t)n->in[1]->shape[dim];
    split_dims(n->out[0], dim, &outer, &inner);
    ldm_buf y = ldm_tensor_buf(n->out[0]);
    LDM_TRY(ldm_copy_slice(c, outer, na, inner, na, 0, na + nb, 0, 0, y, ldm_tensor_buf(n->in[0])));
    return ldm_copy_slice(c, outer, nb, inner, nb, 0, na + nb, na, 0, y, ldm_tensor_buf(n->in[1]));
}

static ldm_status concat_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    int dim = LDM_NODE_PARAMS(n, concat_params)->dim;
    size_t outer, inner, na = (size_t)n->in[0]->shape[dim], nb = (size_t)n->in[1]->shape[dim];
    split_dims(n->out[0], dim, &outer, &inner);
    if (a->din[0].mem)
        LDM_TRY(
            ldm_copy_slice(c, outer, na, inner, na + nb, 0, na, 0, a->acc[0], a->din[0], a->dout));
    if (a->din[1].mem)
        LDM_TRY(
            ldm_copy_slice(c, outer, nb, inner, na + nb, na, nb, 0, a->acc[1], a->din[1], a->dout));
    return LDM_OK;
}

static const ldm_op_class concat_op = {
    .name = "concat",
    .fwd = concat_fwd,
    .bwd = concat_bwd,
    .params_size = LDM_PARAMS_SIZE(concat_params),
};

ldm_tensor *ldm_concat(ldm_graph *g, ldm_tensor *a, ldm_tensor *b, int dim) {
    if (!a || !b) return NULL;
    int ok = a->ndim == b->ndim && dim >= 0 && dim < a->ndim;
    for (int i = 0; ok && i < a->ndim; i++)
        ok = i == dim || a->shape[i] == b->shape[i];
    if (!ok) {
        char sa[64], sb[64];
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "concat along dimension %d: '%s' %s and '%s' %s differ elsewhere",
                              dim, a->name, ldm_shape_str(a, sa, sizeof sa), b->name,
                              ldm_shape_str(b, sb, sizeof sb));
    }
    int shape[LDM_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++)
        shape[i] = a->shape[i];
    shape[dim] += b->shape[dim];
    concat_params p = {dim};
    ldm_tensor *in[2] = {a, b};
    ldm_node *n = ldm_graph_add_node(g, &concat_op, LDM_PARAMS(p), "concat", in, 2, a->ndim, shape);
    return n ? n->out[0] : NULL;
}

static ldm_status narrow_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const narrow_params *p = LDM_NODE_PARAMS(n, narrow_params);
    int dim = p->dim;
    size_t outer, inner, mid = (size_t)n->in[0]->shape[dim], len = (size_t)n->out[0]->shape[dim];
    split_dims(n->in[0], dim, &outer, &inner);
    return ldm_copy_slice(c, outer, len, inner, mid, (size_t)p->start, len, 0, 0,
                          ldm_tensor_buf(n->out[0]), ldm_tensor_buf(n->in[0]));
}

static ldm_status narrow_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    const narrow_params *p = LDM_NODE_PARAMS(n, narrow_params);
    int dim = p->dim;
    size_t outer, inner, mid = (size_t)n->in[0]->shape[dim], len = (size_t)n->out[0]->shape[dim];
    split_dims(n->in[0], dim, &outer, &inner);
    if (!a->acc[0]) LDM_TRY(ldm_cmd_fill(c, a->din[0], 0.0f, n->in[0]->numel));
    return ldm_copy_slice(c, outer, len, inner, len, 0, mid, (size_t)p->start, 1, a->din[0],
                          a->dout);
}

static const ldm_op_class narrow_op = {
    .name = "narrow",
    .fwd = narrow_fwd,
    .bwd = narrow_bwd,
    .params_size = LDM_PARAMS_SIZE(narrow_params),
};

ldm_tensor *ldm_narrow(ldm_graph *g, ldm_tensor *x, int dim, int start, int length) {
    if (!x) return NULL;
    if (dim < 0 || dim >= x->ndim || start < 0 || length < 1 || start + length > x->shape[dim])
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "narrow of '%s': [%d, %d) along dimension %d is out of range",
                              x->name, start, start + length, dim);
    int shape[LDM_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        shape[i] = x->shape[i];
    shape[dim] = length;
    narrow_params p = {dim, start};
    ldm_node *n = ldm_graph_add_node(g, &narrow_op, LDM_PARAMS(p), "narrow", &x, 1, x->ndim, shape);
    return n ? n->out[0] : NULL;
}

static ldm_status resize_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const ldm_tensor *x = n->in[0], *y = n->out[0];
    size_t total = y->numel;
    LDM_TRY(ldm_check_count("resize_nearest", total));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "resize_nearest", NULL, &k));
    LDM_TRY(ldm_args_resize_nearest(k, x->shape[0] * x->shape[1], x->shape[2], x->shape[3],
                                    y->shape[2], y->shape[3], ldm_tensor_buf(n->out[0]),
                                    ldm_tensor_buf(x)));
    return ldm_launch_1d(c, k, total);
}

static ldm_status resize_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    const ldm_tensor *x = n->in[0], *y = n->out[0];
    LDM_TRY(ldm_check_count("resize_nearest backward", x->numel));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "resize_nearest_bwd", NULL, &k));
    LDM_TRY(ldm_args_resize_nearest_bwd(k, x->shape[0] * x->shape[1], x->shape[2], x->shape[3],
                                        y->shape[2], y->shape[3], a->acc[0], a->din[0], a->dout));
    return ldm_launch_1d(c, k, x->numel);
}

/* Backward sums the upstream gradient over the outputs each input was copied to. */
static const ldm_op_class resize_op = {
    .name = "resize_nearest",
    .fwd = resize_fwd,
    .bwd = resize_bwd,
};

ldm_tensor *ldm_resize_nearest(ldm_graph *g, ldm_tensor *x, int height, int width) {
    if (!x) return NULL;
    if (x->ndim != 4 || height < 1 || width < 1)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "resize_nearest: '%s' must be [N, C, H, W] and the size positive",
                              x->name);
    int shape[4] = {x->shape[0], x->shape[1], height, width};
    ldm_node *n =
        ldm_graph_add_node(g, &resize_op, LDM_NO_PARAMS, "resize_nearest", &x, 1, 4, shape);
    return n ? n->out[0] : NULL;
}
