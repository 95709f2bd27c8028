/* ldmcl/ops/attention.h: multi-head attention as torch.nn.MultiheadAttention(batch_first=True)
 * computes it (packed in-projection with bias, scale 1/sqrt(head_dim), output projection), for
 * self-attention and for cross-attention over a context, with an optional causal mask and an
 * optional key padding mask. The core is fused (online softmax): memory grows linearly with the
 * number of tokens; the forward pass saves only the log-sum-exp per query. */
#ifndef LDMCL_OPS_ATTENTION_H
#define LDMCL_OPS_ATTENTION_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Queries are read from rows of q_src: query (n, i) of head h is
 * q_src[(n*L + i)*q_stride + q_col + h*HD + d]; keys and values from rows of kv_src with S rows
 * per sample, likewise. The output o is [N, L, NH*HD]; lse [N, NH, L]. */
typedef struct ldm_attn_geom {
    int N, L, S, NH, HD;
    int q_stride, q_col, k_stride, k_col, v_stride, v_col;
    int causal;  /* mask key j > query i (CLIP's text encoder) */
    float scale; /* 1/sqrt(HD) for MultiheadAttention */
} ldm_attn_geom;

/* mask: [N, S], nonzero = ignore that key; mem NULL for none. */
ldm_status ldm_attention_fwd(ldm_cmd *c, const ldm_attn_geom *g, ldm_buf o, ldm_buf lse,
                             ldm_buf q_src, ldm_buf kv_src, ldm_buf mask);
/* Elements of scratch the backward pass needs. */
size_t ldm_attention_bwd_scratch(const ldm_attn_geom *g);
/* dq_src and dkv_src have the layouts of q_src and kv_src; only the columns attention reads are
 * written. They may be the same buffer (packed self-attention); then acc_q must equal acc_kv. */
ldm_status ldm_attention_bwd(ldm_cmd *c, const ldm_attn_geom *g, int acc_q, ldm_buf dq_src,
                             int acc_kv, ldm_buf dkv_src, ldm_buf dout, ldm_buf q_src,
                             ldm_buf kv_src, ldm_buf o, ldm_buf lse, ldm_buf mask, ldm_buf scratch);

/* The attention core over a packed projection qkv [N, L, 3*C] (q, k, v side by side) ->
 * [N, L, C], C = heads * head_dim. mask [N, L] or NULL. */
ldm_tensor *ldm_attention_packed(ldm_graph *g, ldm_tensor *qkv, int heads, int causal,
                                 ldm_tensor *mask);
/* The core over queries q [N, L, C] and packed keys and values kv [N, S, 2*C] -> [N, L, C]. */
ldm_tensor *ldm_attention_cross(ldm_graph *g, ldm_tensor *q, ldm_tensor *kv, int heads,
                                ldm_tensor *mask);
/* One head over a packed projection qkv [N, L, 3*C] -> [N, L, C] with no limit on the head's
 * width (the fused core takes at most 256: Stable Diffusion's VAE attends with one head of 512),
 * written with GEMMs: scores of `chunk` queries at a time against all keys, softmax, times the
 * values. Memory: chunk x L scores per chunk (the planner reuses them from chunk to chunk when
 * nothing needs them for backward). */
ldm_tensor *ldm_attention_one_head_chunked(ldm_graph *g, ldm_tensor *qkv, int chunk);
/* nn.MultiheadAttention(C, heads, batch_first=True)(x, ctx, ctx) with ctx = x when context is
 * NULL. x [N, L, C], context [N, S, C]; in_proj_weight [3C, C] and in_proj_bias [3C] must be
 * parameters (their rows are viewed for cross-attention); key_padding_mask [N, S] or NULL. */
ldm_tensor *ldm_multihead_attention(ldm_graph *g, ldm_tensor *x, ldm_tensor *context,
                                    ldm_tensor *in_proj_weight, ldm_tensor *in_proj_bias,
                                    ldm_tensor *out_proj_weight, ldm_tensor *out_proj_bias,
                                    int heads, int causal, ldm_tensor *key_padding_mask);

#ifdef __cplusplus
}
#endif
#endif
