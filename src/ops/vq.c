/* src/ops/vq.c: the nearest codebook entry (see ldmcl/ops/vq.h); kernel in cl/vq.cl. */
#include "ops_internal.h"

ldm_status ldm_vq_nearest_fwd(ldm_cmd *c, size_t R, size_t K, size_t D, ldm_buf index, ldm_buf z,
                              ldm_buf codebook) {
    LDM_TRY(ldm_check_count("vq_nearest", R * D));
    LDM_TRY(ldm_check_count("vq_nearest codebook", K * D));
    if (K > (1u << 24))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "vq_nearest: a codebook of %zu entries (indices are exact floats up to "
                        "2^24)",
                        K);
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, "vq.cl", "vq_nearest", NULL, &k));
    LDM_TRY(ldm_args_vq_nearest(k, (int)R, (int)K, (int)D, index, z, codebook));
    return ldm_launch_1d(c, k, R);
}

static ldm_status vq_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const ldm_tensor *e = n->in[1];
    size_t D = (size_t)e->shape[1];
    return ldm_vq_nearest_fwd(c, n->in[0]->numel / D, (size_t)e->shape[0], D,
                              ldm_tensor_buf(n->out[0]), ldm_tensor_buf(n->in[0]),
                              ldm_tensor_buf(e));
}

/* An index: neither input gets a gradient through it. */
static const ldm_op_class vq_op = {
    .name = "vq_nearest",
    .fwd = vq_fwd,
    .no_grad = LDM_INPUT(0) | LDM_INPUT(1),
};

ldm_tensor *ldm_vq_nearest(ldm_graph *g, ldm_tensor *z, ldm_tensor *codebook) {
    if (!z || !codebook) return NULL;
    if (codebook->ndim != 2 || z->shape[z->ndim - 1] != codebook->shape[1]) {
        char sz[64], se[64];
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "vq_nearest: '%s' %s needs a codebook [K, %d], got '%s' %s", z->name,
                              ldm_shape_str(z, sz, sizeof sz), z->shape[z->ndim - 1],
                              codebook->name, ldm_shape_str(codebook, se, sizeof se));
    }
    int shape[LDM_MAX_DIMS] = {1};
    int nd = z->ndim > 1 ? z->ndim - 1 : 1;
    for (int d = 0; d < z->ndim - 1; d++)
        shape[d] = z->shape[d];
    ldm_tensor *in[2] = {z, codebook};
    ldm_node *n = ldm_graph_add_node(g, &vq_op, LDM_NO_PARAMS, "vq_nearest", in, 2, nd, shape);
    return n ? n->out[0] : NULL;
}
