/* ldmcl/ops/linear.h: torch.nn.Linear (y = x W^T + b) through the GEMM wrapper, and
 * torch.nn.Embedding (a row lookup). */
#ifndef LDMCL_OPS_LINEAR_H
#define LDMCL_OPS_LINEAR_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y [rows, out] = x [rows, in] W^T + b; W [out, in], b [out] (b.mem NULL: no bias). */
ldm_status ldm_linear_fwd(ldm_cmd *c, size_t rows, size_t in, size_t out, ldm_buf y, ldm_buf x,
                          ldm_buf w, ldm_buf b);
/* dx = acc_x*dx + dy W;  dw = acc_w*dw + dy^T x;  db = acc_b*db + sum over rows of dy.
 * A gradient whose mem is NULL is skipped. */
ldm_status ldm_linear_bwd(ldm_cmd *c, size_t rows, size_t in, size_t out, int acc_x, ldm_buf dx,
                          int acc_w, ldm_buf dw, int acc_b, ldm_buf db, ldm_buf dy, ldm_buf x,
                          ldm_buf w);

/* y [rows, D] = W[index[r]] for W [V, D]; the indices are float-valued integers (exact below
 * 2^24). An index outside [0, V) gives a zero row. */
ldm_status ldm_embedding_fwd(ldm_cmd *c, size_t rows, size_t V, size_t D, ldm_buf y, ldm_buf index,
                             ldm_buf w);
/* dw = acc*dw + the sum of dy rows per index. Deterministic: with at least as many rows as table
 * entries, each (v, d) gathers over all rows; with fewer (a vocabulary), the first row of each
 * index gathers over the rows that share it. */
ldm_status ldm_embedding_bwd(ldm_cmd *c, size_t rows, size_t V, size_t D, int acc, ldm_buf dw,
                             ldm_buf dy, ldm_buf index);

/* x [..., in], w [out, in], b [out] or NULL -> [..., out]. */
ldm_tensor *ldm_linear(ldm_graph *g, ldm_tensor *x, ldm_tensor *w, ldm_tensor *b);
/* x [..., K] @ w [K, N] -> [..., N] (a one-hot class vector times an embedding table). */
ldm_tensor *ldm_matmul(ldm_graph *g, ldm_tensor *x, ldm_tensor *w);
/* index [...] (float-valued integers, no gradient), w [V, D] -> [..., D]. */
ldm_tensor *ldm_embedding(ldm_graph *g, ldm_tensor *index, ldm_tensor *w);

#ifdef __cplusplus
}
#endif
#endif
