/* src/ops/linear.c: Linear (GEMM + bias) and Embedding (cl/embedding.cl). Linear's backward
 * reads x (for dW) and W (for dx); Embedding's reads its indices. */
#include <stdio.h>

#include "ops_internal.h"

ldm_status ldm_linear_fwd(ldm_cmd *c, size_t rows, size_t in, size_t out, ldm_buf y, ldm_buf x,
                          ldm_buf w, ldm_buf b) {
    ldm_gemm_shape s = {0, 1, rows, out, in, in, in, out}; /* [rows, in] x [out, in]^T */
    LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, x, w, 0.0f, y));
    if (b.mem) LDM_TRY(ldm_add_cols_inplace(c, rows, out, y, b));
    return LDM_OK;
}

ldm_status ldm_linear_bwd(ldm_cmd *c, size_t rows, size_t in, size_t out, int acc_x, ldm_buf dx,
                          int acc_w, ldm_buf dw, int acc_b, ldm_buf db, ldm_buf dy, ldm_buf x,
                          ldm_buf w) {
    if (dx.mem) {
        ldm_gemm_shape s = {0, 0, rows, in, out, out, in, in}; /* [rows, out] x [out, in] */
        LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, dy, w, acc_x ? 1.0f : 0.0f, dx));
    }
    if (dw.mem) {
        ldm_gemm_shape s = {1, 0, out, in, rows, out, in, in}; /* [rows, out]^T x [rows, in] */
        LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, dy, x, acc_w ? 1.0f : 0.0f, dw));
    }
    if (db.mem) LDM_TRY(ldm_sum_cols(c, rows, out, 1.0f, acc_b, db, dy));
    return LDM_OK;
}

ldm_status ldm_embedding_fwd(ldm_cmd *c, size_t rows, size_t V, size_t D, ldm_buf y, ldm_buf index,
                             ldm_buf w) {
    LDM_TRY(ldm_check_count("embedding", rows * D));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, "embedding.cl", "embedding_fwd", NULL, &k));
    LDM_TRY(ldm_args_embedding_fwd(k, (int)rows, (int)V, (int)D, y, index, w));
    return ldm_launch_1d(c, k, rows * D);
}

ldm_status ldm_embedding_bwd(ldm_cmd *c, size_t rows, size_t V, size_t D, int acc, ldm_buf dw,
                             ldm_buf dy, ldm_buf index) {
    LDM_TRY(ldm_check_count("embedding backward", V * D));
    LDM_TRY(ldm_check_count("embedding backward rows", rows * D));
    cl_kernel k;
    if (rows >= V) { /* a small table: a gather per table entry */
        LDM_TRY(ldm_cmd_kernel(c, "embedding.cl", "embedding_bwd", NULL, &k));
        LDM_TRY(ldm_args_embedding_bwd(k, (int)rows, (int)V, (int)D, acc, dw, dy, index));
        return ldm_launch_1d(c, k, V * D);
    }
    /* A large table (a vocabulary): work per row, after zeroing when not accumulating. */
    if (!acc) LDM_TRY(ldm_cmd_fill(c, dw, 0.0f, V * D));
    LDM_TRY(ldm_cmd_kernel(c, "embedding.cl", "embedding_bwd_rows", NULL, &k));
    LDM_TRY(ldm_args_embedding_bwd_rows(k, (int)rows, (int)V, (int)D, 1, dw, dy, index));
    return ldm_launch_1d(c, k, rows * D);
}

/* ---- graph level -------------------------------------------------------------------------- */

static ldm_status linear_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    size_t in = (size_t)n->in[1]->shape[1], out = (size_t)n->in[1]->shape[0];
    ldm_buf b = n->n_in > 2 ? ldm_tensor_buf(n->in[2]) : (ldm_buf){NULL, 0};
    return ldm_linear_fwd(c, n->in[0]->numel / in, in, out, ldm_tensor_buf(n->out[0]),
                          ldm_tensor_buf(n->in[0]), ldm_tensor_buf(n->in[1]), b);
}

static ldm_status linear_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    size_t in = (size_t)n->in[1]->shape[1], out = (size_t)n->in[1]->shape[0];
    ldm_buf db = n->n_in > 2 ? a->din[2] : (ldm_buf){NULL, 0};
    return ldm_linear_bwd(c, n->in[0]->numel / in, in, out, a->acc[0], a->din[0], a->acc[1],
                          a->din[1], n->n_in > 2 ? a->acc[2] : 0, db, a->dout,
                          ldm_tensor_buf(n->in[0]), ldm_tensor_buf(n->in[1]));
}

static const ldm_op_class linear_op = {
    .name = "linear",
    .fwd = linear_node_fwd,
    .bwd = linear_node_bwd,
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1),
};

ldm_tensor *ldm_linear(ldm_graph *g, ldm_tensor *x, ldm_tensor *w, ldm_tensor *b) {
    if (!x || !w) return NULL;
    char sx[64], sw[64], sb[64];
    int in = w->ndim == 2 ? w->shape[1] : -1;
    if (w->ndim != 2 || x->shape[x->ndim - 1] != in ||
        (b && (b->ndim != 1 || b->shape[0] != w->shape[0])))
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "linear: input '%s' %s, weight '%s' %s%s%s%s do not fit "
                              "(x [..., in], weight [out, in], bias [out])",
                              x->name, ldm_shape_str(x, sx, sizeof sx), w->name,
                              ldm_shape_str(w, sw, sizeof sw), b ? ", bias '" : "",
                              b ? b->name : "", b ? ldm_shape_str(b, sb, sizeof sb) : "");
    int shape[LDM_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        shape[i] = x->shape[i];
    shape[x->ndim - 1] = w->shape[0];
    ldm_tensor *in_t[3] = {x, w, b};
    ldm_node *n =
        ldm_graph_add_node(g, &linear_op, LDM_NO_PARAMS, "linear", in_t, b ? 3 : 2, x->ndim, shape);
    return n ? n->out[0] : NULL;
}

static ldm_status embedding_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    size_t V = (size_t)n->in[1]->shape[0], D = (size_t)n->in[1]->shape[1];
    return ldm_embedding_fwd(c, n->in[0]->numel, V, D, ldm_tensor_buf(n->out[0]),
                             ldm_tensor_buf(n->in[0]), ldm_tensor_buf(n->in[1]));
}

static ldm_status embedding_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    size_t V = (size_t)n->in[1]->shape[0], D = (size_t)n->in[1]->shape[1];
    return ldm_embedding_bwd(c, n->in[0]->numel, V, D, a->acc[1], a->din[1], a->dout,
                             ldm_tensor_buf(n->in[0]));
}

/* The indices (input 0) never get a gradient. */
static const ldm_op_class embedding_op = {
    .name = "embedding",
    .fwd = embedding_node_fwd,
    .bwd = embedding_node_bwd,
    .bwd_reads = LDM_READS_IN(0),
    .no_grad = LDM_INPUT(0),
};

ldm_tensor *ldm_embedding(ldm_graph *g, ldm_tensor *index, ldm_tensor *w) {
    if (!index || !w) return NULL;
    if (w->ndim != 2 || index->ndim >= LDM_MAX_DIMS)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "embedding: weight '%s' must be [V, D] and indices '%s' have at "
                              "most %d dimensions",
                              w->name, index->name, LDM_MAX_DIMS - 1);
    int shape[LDM_MAX_DIMS];
    for (int i = 0; i < index->ndim; i++)
        shape[i] = index->shape[i];
    shape[index->ndim] = w->shape[1];
    ldm_tensor *in[2] = {index, w};
    ldm_node *n = ldm_graph_add_node(g, &embedding_op, LDM_NO_PARAMS, "embedding", in, 2,
                                     index->ndim + 1, shape);
    return n ? n->out[0] : NULL;
}

static ldm_status matmul_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    size_t K = (size_t)n->in[1]->shape[0], N = (size_t)n->in[1]->shape[1];
    size_t rows = n->in[0]->numel / K;
    ldm_gemm_shape s = {0, 0, rows, N, K, K, N, N};
    return ldm_cmd_gemm(c, &s, 1.0f, ldm_tensor_buf(n->in[0]), ldm_tensor_buf(n->in[1]), 0.0f,
                        ldm_tensor_buf(n->out[0]));
}

static ldm_status matmul_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    size_t K = (size_t)n->in[1]->shape[0], N = (size_t)n->in[1]->shape[1];
    size_t rows = n->in[0]->numel / K;
    if (a->din[0].mem) { /* dx [rows, K] = dy [rows, N] w^T */
        ldm_gemm_shape s = {0, 1, rows, K, N, N, N, K};
        LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, a->dout, ldm_tensor_buf(n->in[1]),
                             a->acc[0] ? 1.0f : 0.0f, a->din[0]));
    }
    if (a->din[1].mem) { /* dw [K, N] = x^T [K, rows] dy */
        ldm_gemm_shape s = {1, 0, K, N, rows, K, N, N};
        LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, ldm_tensor_buf(n->in[0]), a->dout,
                             a->acc[1] ? 1.0f : 0.0f, a->din[1]));
    }
    return LDM_OK;
}

static const ldm_op_class matmul_op = {
    .name = "matmul",
    .fwd = matmul_fwd,
    .bwd = matmul_bwd,
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1),
};

ldm_tensor *ldm_matmul(ldm_graph *g, ldm_tensor *x, ldm_tensor *w) {
    if (!x || !w) return NULL;
    if (w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[0]) {
        char sx[64], sw[64];
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "matmul: '%s' %s and '%s' %s do not fit (x [..., K], w [K, N])",
                              x->name, ldm_shape_str(x, sx, sizeof sx), w->name,
                              ldm_shape_str(w, sw, sizeof sw));
    }
    int shape[LDM_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        shape[i] = x->shape[i];
    shape[x->ndim - 1] = w->shape[1];
    ldm_tensor *in[2] = {x, w};
    ldm_node *n = ldm_graph_add_node(g, &matmul_op, LDM_NO_PARAMS, "matmul", in, 2, x->ndim, shape);
    return n ? n->out[0] : NULL;
}
