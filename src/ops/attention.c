/* src/ops/attention.c: the fused attention core (cl/attention.cl) and nn.MultiheadAttention on
 * top of Linear. The core saves the log-sum-exp per query (output 1); its backward reads the
 * sources of q, k, v, the output and the log-sum-exp, and uses one scratch row per query for
 * delta = rowsum(dO * O). */
#include <math.h>
#include <stdio.h>

#include "ops_internal.h"

#define FILE_CL "attention.cl"
#define FILE_CL_ROWS "attention_rows.cl" /* the CPU layout (tunables.c) */

/* Work-groups: a tile of queries for the tiled kernels, or the driver's choice (CPU layout); in
 * *local, which the result points to when it is not NULL. */
static const size_t *attn_local(ldm_cmd *c, size_t local[3]) {
    const ldm_tunables *t = ldm_tunables_of(c);
    local[0] = (size_t)t->attn_queries;
    local[1] = local[2] = 1;
    return t->attn_driver_local ? NULL : local;
}

static ldm_status kernel_for(ldm_cmd *c, const ldm_attn_geom *g, const char *name, cl_kernel *k) {
    const ldm_tunables *t = ldm_tunables_of(c);
    char defines[96];
    snprintf(defines, sizeof defines, "-DHD=%d -DBQ=%d -DBK=%d", g->HD, t->attn_queries,
             t->attn_keys[g->HD <= 64 ? 0 : 1]);
    return ldm_cmd_kernel(c, t->cpu_layout ? FILE_CL_ROWS : FILE_CL, name, defines, k);
}

static ldm_status check_geom(const ldm_attn_geom *g) {
    if (g->N < 1 || g->L < 1 || g->S < 1 || g->NH < 1 || g->HD < 1 || g->HD > 256)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "attention: N=%d L=%d S=%d heads=%d head_dim=%d (head_dim 1..256)", g->N,
                        g->L, g->S, g->NH, g->HD);
    return LDM_OK;
}

ldm_status ldm_attention_fwd(ldm_cmd *c, const ldm_attn_geom *g, ldm_buf o, ldm_buf lse,
                             ldm_buf q_src, ldm_buf kv_src, ldm_buf mask) {
    LDM_TRY(check_geom(g));
    cl_kernel k;
    LDM_TRY(kernel_for(c, g, "attention_fwd", &k));
    LDM_TRY(ldm_args_attention_fwd(
        k, g->L, g->S, g->NH, g->q_stride, g->q_col, g->k_stride, g->k_col, g->v_stride, g->v_col,
        g->scale, g->causal, mask.mem != NULL, o, lse, q_src, kv_src, ldm_unused_or(mask, q_src)));
    size_t global[3] = {(size_t)g->L, (size_t)g->NH, (size_t)g->N};
    size_t local[3];
    return ldm_cmd_launch(c, k, 3, global, attn_local(c, local));
}

size_t ldm_attention_bwd_scratch(const ldm_attn_geom *g) {
    return (size_t)g->N * (size_t)g->NH * (size_t)g->L;
}

ldm_status ldm_attention_bwd(ldm_cmd *c, const ldm_attn_geom *g, int acc_q, ldm_buf dq_src,
                             int acc_kv, ldm_buf dkv_src, ldm_buf dout, ldm_buf q_src,
                             ldm_buf kv_src, ldm_buf o, ldm_buf lse, ldm_buf mask,
                             ldm_buf scratch) {
    LDM_TRY(check_geom(g));
    cl_kernel k;
    ldm_buf delta = scratch, m = ldm_unused_or(mask, q_src);
    LDM_TRY(kernel_for(c, g, "attention_bwd_delta", &k));
    LDM_TRY(ldm_args_attention_bwd_delta(k, g->L, g->NH, delta, dout, o));
    size_t gd[3] = {(size_t)g->L, (size_t)g->NH, (size_t)g->N};
    LDM_TRY(ldm_cmd_launch(c, k, 3, gd, NULL));
    size_t local_sizes[3];
    const size_t *local = attn_local(c, local_sizes);
    if (dkv_src.mem) {
        LDM_TRY(kernel_for(c, g, "attention_bwd_dkv", &k));
        LDM_TRY(ldm_args_attention_bwd_dkv(k, g->L, g->S, g->NH, g->q_stride, g->q_col, g->k_stride,
                                           g->k_col, g->v_stride, g->v_col, g->scale, g->causal,
                                           mask.mem != NULL, acc_kv, dkv_src, dout, q_src, kv_src,
                                           lse, delta, m));
        size_t global[3] = {(size_t)g->S, (size_t)g->NH, (size_t)g->N};
        LDM_TRY(ldm_cmd_launch(c, k, 3, global, local));
    }
    if (dq_src.mem) {
        LDM_TRY(kernel_for(c, g, "attention_bwd_dq", &k));
        LDM_TRY(ldm_args_attention_bwd_dq(k, g->L, g->S, g->NH, g->q_stride, g->q_col, g->k_stride,
                                          g->k_col, g->v_stride, g->v_col, g->scale, g->causal,
                                          mask.mem != NULL, acc_q, dq_src, dout, q_src, kv_src, lse,
                                          delta, m));
        size_t global[3] = {(size_t)g->L, (size_t)g->NH, (size_t)g->N};
        LDM_TRY(ldm_cmd_launch(c, k, 3, global, local));
    }
    return LDM_OK;
}

/* ---- graph level -------------------------------------------------------------------------- */

#define BUF(t) ldm_tensor_buf(t)

/* A node's geometry, computed once when it is recorded; packed: one qkv input (else q and kv);
 * has_mask: a key padding mask is the last input. */
typedef struct attn_params {
    ldm_attn_geom geom;
    int packed, has_mask;
} attn_params;

static ldm_buf mask_of(const ldm_node *n, const attn_params *p) {
    return p->has_mask ? BUF(n->in[p->packed ? 1 : 2]) : (ldm_buf){NULL, 0};
}

static ldm_status attn_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const attn_params *p = LDM_NODE_PARAMS(n, attn_params);
    ldm_buf kv = p->packed ? BUF(n->in[0]) : BUF(n->in[1]);
    return ldm_attention_fwd(c, &p->geom, BUF(n->out[0]), BUF(n->out[1]), BUF(n->in[0]), kv,
                             mask_of(n, p));
}

static ldm_status attn_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    const attn_params *p = LDM_NODE_PARAMS(n, attn_params);
    int packed = p->packed;
    ldm_buf kv = packed ? BUF(n->in[0]) : BUF(n->in[1]);
    ldm_buf dkv = packed ? a->din[0] : a->din[1];
    int acc_kv = packed ? a->acc[0] : a->acc[1];
    return ldm_attention_bwd(c, &p->geom, a->acc[0], a->din[0], acc_kv, dkv, a->dout, BUF(n->in[0]),
                             kv, BUF(n->out[0]), BUF(n->out[1]), mask_of(n, p), a->scratch);
}

/* Packed: inputs (qkv, [mask]); cross: (q, kv, [mask]). Masks take no gradient. */
static const ldm_op_class packed_op = {
    .name = "attention",
    .fwd = attn_node_fwd,
    .bwd = attn_node_bwd,
    .params_size = LDM_PARAMS_SIZE(attn_params),
    .n_saved = 1,
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1) | LDM_READS_OUT | LDM_READS_SAVED(0),
    .no_grad = LDM_INPUT(1),
};
static const ldm_op_class cross_op = {
    .name = "cross_attention",
    .fwd = attn_node_fwd,
    .bwd = attn_node_bwd,
    .params_size = LDM_PARAMS_SIZE(attn_params),
    .n_saved = 1,
    .bwd_reads =
        LDM_READS_IN(0) | LDM_READS_IN(1) | LDM_READS_IN(2) | LDM_READS_OUT | LDM_READS_SAVED(0),
    .no_grad = LDM_INPUT(2),
};

static ldm_tensor *record(ldm_graph *g, const ldm_op_class *op, ldm_tensor *q, ldm_tensor *kv,
                          int heads, int causal, ldm_tensor *mask) {
    int packed = kv == NULL;
    int C = packed ? q->shape[2] / 3 : q->shape[2];
    const ldm_tensor *src = packed ? q : kv;
    if (q->ndim != 3 || src->ndim != 3 || heads < 1 || C % heads ||
        (packed && q->shape[2] != 3 * C) || (!packed && kv->shape[2] != 2 * C) ||
        src->shape[0] != q->shape[0] ||
        (mask &&
         (mask->ndim != 2 || mask->shape[0] != q->shape[0] || mask->shape[1] != src->shape[1]))) {
        char sq[64], skv[64];
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "%s: queries '%s' %s, keys/values %s, %d heads, mask %s do not fit",
                              op->name, q->name, ldm_shape_str(q, sq, sizeof sq),
                              packed ? "packed with them" : ldm_shape_str(kv, skv, sizeof skv),
                              heads, mask ? mask->name : "none");
    }
    if (C / heads > 256)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "%s: head dim %d over 256", op->name,
                              C / heads);
    attn_params p = {{q->shape[0], q->shape[1], src->shape[1], heads, C / heads, q->shape[2], 0,
                      src->shape[2], packed ? C : 0, src->shape[2], (packed ? C : 0) + C,
                      causal != 0, 1.0f / sqrtf((float)(C / heads))},
                     packed,
                     mask != NULL};
    ldm_tensor *in[3] = {q, packed ? mask : kv, packed ? NULL : mask};
    int n_in = packed ? (mask ? 2 : 1) : (mask ? 3 : 2);
    int shape[3] = {q->shape[0], q->shape[1], C};
    ldm_node *n = ldm_graph_add_node(g, op, LDM_PARAMS(p), op->name, in, n_in, 3, shape);
    if (!n) return NULL;
    int lse_shape[3] = {q->shape[0], heads, q->shape[1]};
    if (!ldm_node_add_saved(g, n, 3, lse_shape)) return NULL;
    n->scratch_bwd = ldm_attention_bwd_scratch(&p.geom);
    return n->out[0];
}

ldm_tensor *ldm_attention_packed(ldm_graph *g, ldm_tensor *qkv, int heads, int causal,
                                 ldm_tensor *mask) {
    if (!qkv) return NULL;
    return record(g, &packed_op, qkv, NULL, heads, causal, mask);
}

ldm_tensor *ldm_attention_cross(ldm_graph *g, ldm_tensor *q, ldm_tensor *kv, int heads,
                                ldm_tensor *mask) {
    if (!q || !kv) return NULL;
    return record(g, &cross_op, q, kv, heads, 0, mask);
}

ldm_tensor *ldm_multihead_attention(ldm_graph *g, ldm_tensor *x, ldm_tensor *context,
                                    ldm_tensor *in_proj_weight, ldm_tensor *in_proj_bias,
                                    ldm_tensor *out_proj_weight, ldm_tensor *out_proj_bias,
                                    int heads, int causal, ldm_tensor *key_padding_mask) {
    if (!x || !in_proj_weight || !in_proj_bias || !out_proj_weight || !out_proj_bias) return NULL;
    int C = x->shape[x->ndim - 1];
    ldm_tensor *core;
    if (!context) {
        ldm_tensor *qkv = ldm_linear(g, x, in_proj_weight, in_proj_bias);
        core = ldm_attention_packed(g, qkv, heads, causal, key_padding_mask);
    } else {
        ldm_tensor *q = ldm_linear(g, x, ldm_view_rows(g, in_proj_weight, 0, C),
                                   ldm_view_rows(g, in_proj_bias, 0, C));
        ldm_tensor *kv = ldm_linear(g, context, ldm_view_rows(g, in_proj_weight, C, 2 * C),
                                    ldm_view_rows(g, in_proj_bias, C, 2 * C));
        if (causal)
            return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                                  "multihead_attention: a causal mask needs self-attention");
        core = ldm_attention_cross(g, q, kv, heads, key_padding_mask);
    }
    return ldm_linear(g, core, out_proj_weight, out_proj_bias);
}
