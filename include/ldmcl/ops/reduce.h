/* ldmcl/ops/reduce.h: sums, means and the losses: torch.sum, torch.mean, F.mse_loss, F.l1_loss
 * (reduction 'mean'). Results are device scalars; reading one back is the only synchronisation a
 * training step needs. */
#ifndef LDMCL_OPS_REDUCE_H
#define LDMCL_OPS_REDUCE_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What is summed: a; (a-b)^2; |a-b|; (a-c)^2 for a constant c; a^2. */
typedef enum ldm_reduce_term {
    LDM_TERM_VALUE = 1,
    LDM_TERM_SQUARED_DIFF = 2,
    LDM_TERM_ABS_DIFF = 3,
    LDM_TERM_SQUARED_DIFF_CONST = 4,
    LDM_TERM_SQUARE = 5
} ldm_reduce_term;

/* Elements of scratch ldm_reduce_fwd needs for n elements. */
size_t ldm_reduce_scratch(size_t n);
/* scale * sum_i term(a[i], b[i]) over n elements (cst: the constant of _CONST). */
typedef struct ldm_reduce_params {
    ldm_reduce_term term;
    size_t n;
    float scale, cst;
} ldm_reduce_params;
/* y[0] = the sum; b unused for VALUE and _CONST. */
ldm_status ldm_reduce_fwd(ldm_cmd *c, const ldm_reduce_params *p, ldm_buf y, ldm_buf a, ldm_buf b,
                          ldm_buf scratch);
/* da = acc*da + scale * dy[0] * d term/da. For the gradient of b swap a and b (the terms are
 * symmetric up to sign, which the swap supplies). */
ldm_status ldm_reduce_bwd(ldm_cmd *c, const ldm_reduce_params *p, int acc, ldm_buf da, ldm_buf dy,
                          ldm_buf a, ldm_buf b);
/* y[r] = acc*y[r] + scale * sum_c x[r, c]; x [rows, cols]. */
ldm_status ldm_sum_rows(ldm_cmd *c, size_t rows, size_t cols, float scale, int acc, ldm_buf y,
                        ldm_buf x);

/* y[c] = acc*y[c] + scale * sum_r x[r, c]; x [rows, cols]. */
ldm_status ldm_sum_cols(ldm_cmd *c, size_t rows, size_t cols, float scale, int acc, ldm_buf y,
                        ldm_buf x);

/* Graph level; results have shape [1]. */
ldm_tensor *ldm_sum(ldm_graph *g, ldm_tensor *x);
ldm_tensor *ldm_mean(ldm_graph *g, ldm_tensor *x);
ldm_tensor *ldm_mse_loss(ldm_graph *g, ldm_tensor *pred, ldm_tensor *target);
ldm_tensor *ldm_l1_loss(ldm_graph *g, ldm_tensor *pred, ldm_tensor *target);
/* mean((pred - target)^2) against a constant target (a discriminator's 0 or 1). */
ldm_tensor *ldm_mse_loss_const(ldm_graph *g, ldm_tensor *pred, float target);

#ifdef __cplusplus
}
#endif
#endif
