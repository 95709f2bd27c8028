/* src/ops/softmax.c: softmax over the last dimension (cl/softmax.cl). Backward reads the result. */
#include <stdio.h>

#include "ops_internal.h"

/* The softmax kernel `name` with its rows' work-group size (src/core/tunables.c) in *wg. */
static ldm_status softmax_kernel(ldm_cmd *c, const char *name, size_t *wg, cl_kernel *k) {
    *wg = ldm_tunables_of(c)->softmax_wg;
    char defines[32];
    snprintf(defines, sizeof defines, "-DWG=%zu", *wg);
    return ldm_cmd_kernel(c, "softmax.cl", name, defines, k);
}

ldm_status ldm_softmax_fwd(ldm_cmd *c, size_t R, size_t D, ldm_buf y, ldm_buf x) {
    LDM_TRY(ldm_check_count("softmax", R * D));
    cl_kernel k;
    size_t wg;
    LDM_TRY(softmax_kernel(c, "softmax_fwd", &wg, &k));
    LDM_TRY(ldm_args_softmax_fwd(k, (int)D, y, x));
    size_t global = R * wg, local = wg;
    return ldm_cmd_launch(c, k, 1, &global, &local);
}

ldm_status ldm_softmax_bwd(ldm_cmd *c, size_t R, size_t D, int acc, ldm_buf dx, ldm_buf dy,
                           ldm_buf y) {
    LDM_TRY(ldm_check_count("softmax backward", R * D));
    cl_kernel k;
    size_t wg;
    LDM_TRY(softmax_kernel(c, "softmax_bwd", &wg, &k));
    LDM_TRY(ldm_args_softmax_bwd(k, (int)D, acc, dx, dy, y));
    size_t global = R * wg, local = wg;
    return ldm_cmd_launch(c, k, 1, &global, &local);
}

static ldm_status softmax_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    size_t D = (size_t)n->in[0]->shape[n->in[0]->ndim - 1];
    return ldm_softmax_fwd(c, n->in[0]->numel / D, D, ldm_tensor_buf(n->out[0]),
                           ldm_tensor_buf(n->in[0]));
}

static ldm_status softmax_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    size_t D = (size_t)n->in[0]->shape[n->in[0]->ndim - 1];
    return ldm_softmax_bwd(c, n->in[0]->numel / D, D, a->acc[0], a->din[0], a->dout,
                           ldm_tensor_buf(n->out[0]));
}

/* Backward reads the result (output 0), not the input. */
static const ldm_op_class softmax_op = {
    .name = "softmax",
    .fwd = softmax_node_fwd,
    .bwd = softmax_node_bwd,
    .bwd_reads = LDM_READS_OUT,
};

ldm_tensor *ldm_softmax(ldm_graph *g, ldm_tensor *x) {
    if (!x) return NULL;
    ldm_node *n =
        ldm_graph_add_node(g, &softmax_op, LDM_NO_PARAMS, "softmax", &x, 1, x->ndim, x->shape);
    return n ? n->out[0] : NULL;
}
