/* src/ops/attention.c: the fused attention core (cl/attention.cl) and nn.MultiheadAttention on
 * top of Linear. The core saves the log-sum-exp per query (output 1); its backward reads the
 * sources of q, k, v, the output and the log-sum-exp, and uses one scratch row per query for
 * delta = rowsum(dO * O). */
#include <math.h>
#include <stdio.h>

#include "ops_internal.h"

#define FILE_CL "attention.cl"
#define FILE_CL_ROWS "attention_rows.cl" /* the CPU layout (src/core/tunables.c) */

/* The GPU layout's tiles: queries and keys per tile, and the work-group's side. */
typedef struct attn_tiles {
    int bq, bk, side;
} attn_tiles;

/* Local memory of the largest kernel (attention_bwd_dkv or attention_bwd_dq), in bytes. */
static uint64_t attn_local_bytes(int hd, int bq, int bk) {
    uint64_t row = (uint64_t)hd + 1, f = sizeof(float);
    uint64_t dkv =
        (2 * (uint64_t)bk + 2 * (uint64_t)bq) * row + 2 * (uint64_t)bk * (bq + 1) + 2 * bq;
    uint64_t dq = (2 * (uint64_t)bq + 2 * (uint64_t)bk) * row + (uint64_t)bq * (bk + 1) + 2 * bq;
    uint64_t fwd = ((uint64_t)bq + bk) * row + (uint64_t)bq * (bk + 1) + 3 * bq;
    uint64_t m = dkv > dq ? dkv : dq;
    return (m > fwd ? m : fwd) * f;
}

/* The tiles at head dim hd: the table's, the larger of queries and keys per tile halved (and at
 * last the side) until the largest kernel's local arrays fit the device's local memory. Fails
 * when the table's entries break the kernels' rules or no halving fits. */
static ldm_status attn_fit(ldm_cmd *c, int hd, attn_tiles *out) {
    const ldm_tunables *t = ldm_tunables_of(c);
    int bq = t->attn_tile[0], bk = t->attn_tile[1], side = t->attn_side;
    if (side < 1 || bq < side || bk < side || bq % side || bk % side)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "attention tunables: tiles of %d queries and %d keys are not multiples of "
                        "the work-group side %d",
                        bq, bk, side);
    const ldm_device_info *d = ldm_ctx_device_info(ldm_cmd_ctx(c));
    if ((size_t)side * (size_t)side > d->max_work_group_size)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "attention tunables: work-groups of %d x %d work-items, the device takes "
                        "at most %zu",
                        side, side, d->max_work_group_size);
    uint64_t budget = d->local_mem_bytes;
    while (attn_local_bytes(hd, bq, bk) > budget) {
        if (bq > side && bq >= bk && bq % (2 * side) == 0)
            bq /= 2;
        else if (bk > side && bk % (2 * side) == 0)
            bk /= 2;
        else if (side > 1 && side % 2 == 0 && bq == side && bk == side)
            bq = bk = side /= 2;
        else
            return LDM_FAIL(LDM_ERR_DEVICE_MEMORY,
                            "attention at head dim %d: %llu bytes of local memory at tiles of %d "
                            "queries and %d keys, none smaller, and the device has %llu",
                            hd, (unsigned long long)attn_local_bytes(hd, bq, bk), bq, bk,
                            (unsigned long long)budget);
    }
    *out = (attn_tiles){bq, bk, side};
    return LDM_OK;
}

/* The kernel, and for the GPU layout its tiles (*tiles is zero for the CPU layout). */
static ldm_status kernel_for(ldm_cmd *c, const ldm_attn_geom *g, const char *name, cl_kernel *k,
                             attn_tiles *tiles) {
    const ldm_tunables *t = ldm_tunables_of(c);
    char defines[96];
    *tiles = (attn_tiles){0, 0, 0};
    if (t->cpu_layout) {
        snprintf(defines, sizeof defines, "-DHD=%d -DBK=%d", g->HD,
                 t->attn_keys[g->HD <= 64 ? 0 : 1]);
        return ldm_cmd_kernel(c, FILE_CL_ROWS, name, defines, k);
    }
    LDM_TRY(attn_fit(c, g->HD, tiles));
    snprintf(defines, sizeof defines, "-DHD=%d -DBQ=%d -DBK=%d -DT=%d", g->HD, tiles->bq, tiles->bk,
             tiles->side);
    return ldm_cmd_kernel(c, FILE_CL, name, defines, k);
}

/* Launches k over `rows` queries or keys of each head: in blocks of `block` rows, one work-group
 * of side x side each (GPU layout), or one work-item per row at the driver's work-group size
 * (CPU layout, tiles zero). */
static ldm_status attn_launch(ldm_cmd *c, cl_kernel k, const ldm_attn_geom *g, int rows, int block,
                              const attn_tiles *tiles) {
    size_t global[3] = {(size_t)rows, (size_t)g->NH, (size_t)g->N};
    if (!tiles->side) return ldm_cmd_launch(c, k, 3, global, NULL);
    size_t wg = (size_t)tiles->side * (size_t)tiles->side;
    size_t local[3] = {wg, 1, 1};
    global[0] = (((size_t)rows + (size_t)block - 1) / (size_t)block) * wg;
    return ldm_cmd_launch(c, k, 3, global, local);
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
    attn_tiles tiles;
    LDM_TRY(kernel_for(c, g, "attention_fwd", &k, &tiles));
    LDM_TRY(ldm_args_attention_fwd(
        k, g->L, g->S, g->NH, g->q_stride, g->q_col, g->k_stride, g->k_col, g->v_stride, g->v_col,
        g->scale, g->causal, mask.mem != NULL, o, lse, q_src, kv_src, ldm_unused_or(mask, q_src)));
    return attn_launch(c, k, g, g->L, tiles.bq, &tiles);
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
    attn_tiles tiles;
    LDM_TRY(kernel_for(c, g, "attention_bwd_delta", &k, &tiles));
    LDM_TRY(ldm_args_attention_bwd_delta(k, g->L, g->NH, delta, dout, o));
    size_t gd[3] = {(size_t)g->L, (size_t)g->NH, (size_t)g->N};
    LDM_TRY(ldm_cmd_launch(c, k, 3, gd, NULL));
    if (dkv_src.mem) {
        LDM_TRY(kernel_for(c, g, "attention_bwd_dkv", &k, &tiles));
        LDM_TRY(ldm_args_attention_bwd_dkv(k, g->L, g->S, g->NH, g->q_stride, g->q_col, g->k_stride,
                                           g->k_col, g->v_stride, g->v_col, g->scale, g->causal,
                                           mask.mem != NULL, acc_kv, dkv_src, dout, q_src, kv_src,
                                           lse, delta, m));
        LDM_TRY(attn_launch(c, k, g, g->S, tiles.bk, &tiles));
    }
    if (dq_src.mem) {
        LDM_TRY(kernel_for(c, g, "attention_bwd_dq", &k, &tiles));
        LDM_TRY(ldm_args_attention_bwd_dq(k, g->L, g->S, g->NH, g->q_stride, g->q_col, g->k_stride,
                                          g->k_col, g->v_stride, g->v_col, g->scale, g->causal,
                                          mask.mem != NULL, acc_q, dq_src, dout, q_src, kv_src, lse,
                                          delta, m));
        LDM_TRY(attn_launch(c, k, g, g->L, tiles.bq, &tiles));
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

/* Rows of a weight: a view of a parameter or an input, a copy of a computed one (a LoRA-adapted
 * or half-precision weight). */
static ldm_tensor *rows_of(ldm_graph *g, ldm_tensor *t, int start, int count) {
    if (!t) return NULL;
    ldm_tensor *base = ldm_storage(t);
    if ((base->kind == TK_PARAM || base->kind == TK_INPUT) && !t->base)
        return ldm_view_rows(g, t, start, count);
    return ldm_narrow(g, t, 0, start, count);
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
        ldm_tensor *q =
            ldm_linear(g, x, rows_of(g, in_proj_weight, 0, C), rows_of(g, in_proj_bias, 0, C));
        ldm_tensor *kv = ldm_linear(g, context, rows_of(g, in_proj_weight, C, 2 * C),
                                    rows_of(g, in_proj_bias, C, 2 * C));
        if (causal)
            return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                                  "multihead_attention: a causal mask needs self-attention");
        core = ldm_attention_cross(g, q, kv, heads, key_padding_mask);
    }
    return ldm_linear(g, core, out_proj_weight, out_proj_bias);
}

ldm_tensor *ldm_attention_one_head_chunked(ldm_graph *g, ldm_tensor *qkv, int chunk) {
    if (!qkv) return NULL;
    if (qkv->ndim != 3 || qkv->shape[2] % 3 || chunk < 1)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "attention_one_head_chunked: '%s' must be [N, L, 3C], chunk %d "
                              "positive",
                              qkv->name, chunk);
    int N = qkv->shape[0], L = qkv->shape[1], C = qkv->shape[2] / 3;
    float scale = 1.0f / sqrtf((float)C);
    ldm_tensor *out = NULL;
    for (int n = 0; n < N; n++) {
        ldm_tensor *rows = ldm_reshape(g, ldm_narrow(g, qkv, 0, n, 1), LDM_SHAPE(L, 3 * C));
        ldm_tensor *k = ldm_narrow(g, rows, 1, C, C), *v = ldm_narrow(g, rows, 1, 2 * C, C);
        ldm_tensor *sample = NULL;
        for (int i0 = 0; i0 < L; i0 += chunk) {
            int len = L - i0 < chunk ? L - i0 : chunk;
            ldm_tensor *q = ldm_narrow(g, ldm_narrow(g, rows, 0, i0, len), 1, 0, C);
            ldm_tensor *p = ldm_softmax(g, ldm_scale(g, ldm_linear(g, q, k, NULL), scale));
            ldm_tensor *o = ldm_matmul(g, p, v); /* [len, C] */
            sample = sample ? ldm_concat(g, sample, o, 0) : o;
        }
        sample = ldm_reshape(g, sample, LDM_SHAPE(1, L, C));
        out = out ? ldm_concat(g, out, sample, 0) : sample;
    }
    return out;
}
