/* src/ops/pool.c: max pooling (see ldmcl/ops/pool.h); kernels in cl/pool.cl. */
#include "ops_internal.h"

#define FILE_CL "pool.cl"

static size_t pooled(size_t n, int k, int s) {
    return (n - (size_t)k) / (size_t)s + 1;
}

ldm_status ldm_max_pool_fwd(ldm_cmd *c, const ldm_max_pool_params *p, ldm_buf y, ldm_buf x) {
    size_t Ho = pooled(p->H, p->k, p->s), Wo = pooled(p->W, p->k, p->s);
    LDM_TRY(ldm_check_count("max_pool2d", p->NC * p->H * p->W));
    cl_kernel kern;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "max_pool_fwd", NULL, &kern));
    LDM_TRY(ldm_args_max_pool_fwd(kern, (int)p->NC, (int)p->H, (int)p->W, (int)Ho, (int)Wo, p->k,
                                  p->s, y, x));
    return ldm_launch_1d(c, kern, p->NC * Ho * Wo);
}

ldm_status ldm_max_pool_bwd(ldm_cmd *c, const ldm_max_pool_params *p, int acc, ldm_buf dx,
                            ldm_buf dy, ldm_buf x) {
    size_t Ho = pooled(p->H, p->k, p->s), Wo = pooled(p->W, p->k, p->s);
    LDM_TRY(ldm_check_count("max_pool2d backward", p->NC * p->H * p->W));
    cl_kernel kern;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "max_pool_bwd", NULL, &kern));
    LDM_TRY(ldm_args_max_pool_bwd(kern, (int)p->NC, (int)p->H, (int)p->W, (int)Ho, (int)Wo, p->k,
                                  p->s, acc, dx, dy, x));
    return ldm_launch_1d(c, kern, p->NC * p->H * p->W);
}

static ldm_status pool_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    return ldm_max_pool_fwd(c, LDM_NODE_PARAMS(n, ldm_max_pool_params), ldm_tensor_buf(n->out[0]),
                            ldm_tensor_buf(n->in[0]));
}

static ldm_status pool_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    return ldm_max_pool_bwd(c, LDM_NODE_PARAMS(n, ldm_max_pool_params), a->acc[0], a->din[0],
                            a->dout, ldm_tensor_buf(n->in[0]));
}

static const ldm_op_class pool_op = {
    .name = "max_pool2d",
    .fwd = pool_fwd,
    .bwd = pool_bwd,
    .params_size = LDM_PARAMS_SIZE(ldm_max_pool_params),
    .bwd_reads = LDM_READS_IN(0),
};

ldm_tensor *ldm_max_pool2d(ldm_graph *g, ldm_tensor *x, int k, int s) {
    if (!x) return NULL;
    if (x->ndim != 4 || k < 1 || s < 1 || x->shape[2] < k || x->shape[3] < k) {
        char sx[64];
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "max_pool2d: '%s' %s must be [N, C, H, W] with H and W at least the "
                              "kernel size %d (stride %d)",
                              x->name, ldm_shape_str(x, sx, sizeof sx), k, s);
    }
    int shape[4] = {x->shape[0], x->shape[1], (int)pooled((size_t)x->shape[2], k, s),
                    (int)pooled((size_t)x->shape[3], k, s)};
    ldm_max_pool_params p = {(size_t)x->shape[0] * (size_t)x->shape[1], (size_t)x->shape[2],
                             (size_t)x->shape[3], k, s};
    ldm_node *n = ldm_graph_add_node(g, &pool_op, LDM_PARAMS(p), "max_pool2d", &x, 1, 4, shape);
    return n ? n->out[0] : NULL;
}
