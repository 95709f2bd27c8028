/* ldmcl/ops/norm.h: torch.nn.GroupNorm, LayerNorm and BatchNorm2d (affine), and F.normalize over
 * channels. Forward passes save their statistics for the backward passes. */
#ifndef LDMCL_OPS_NORM_H
#define LDMCL_OPS_NORM_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GroupNorm of x, y [N, C, P] in G groups (C a multiple of G); gamma, beta [C]; mean, rstd
 * [N, G]. scratch: ldm_group_norm_scratch(p) floats, with which the GPU layout splits each
 * group's sums over several work-groups when there are few groups (tunables norm_split_*);
 * without it (mem NULL), one work-group per group. */
typedef struct ldm_group_norm_params {
    size_t N, C, P, G;
    float eps;
} ldm_group_norm_params;
size_t ldm_group_norm_scratch(const ldm_group_norm_params *p);
ldm_status ldm_group_norm_fwd(ldm_cmd *c, const ldm_group_norm_params *p, ldm_buf y, ldm_buf mean,
                              ldm_buf rstd, ldm_buf x, ldm_buf gamma, ldm_buf beta,
                              ldm_buf scratch);
/* Gradients whose mem is NULL are skipped. */
ldm_status ldm_group_norm_bwd(ldm_cmd *c, const ldm_group_norm_params *p, int acc_x, ldm_buf dx,
                              int acc_g, ldm_buf dgamma, int acc_b, ldm_buf dbeta, ldm_buf dy,
                              ldm_buf x, ldm_buf mean, ldm_buf rstd, ldm_buf gamma,
                              ldm_buf scratch);

/* LayerNorm of x, y [R, D]; gamma, beta [D]; mean, rstd [R]. */
typedef struct ldm_layer_norm_params {
    size_t R, D;
    float eps;
} ldm_layer_norm_params;
ldm_status ldm_layer_norm_fwd(ldm_cmd *c, const ldm_layer_norm_params *p, ldm_buf y, ldm_buf mean,
                              ldm_buf rstd, ldm_buf x, ldm_buf gamma, ldm_buf beta);
ldm_status ldm_layer_norm_bwd(ldm_cmd *c, const ldm_layer_norm_params *p, int acc_x, ldm_buf dx,
                              int acc_g, ldm_buf dgamma, int acc_b, ldm_buf dbeta, ldm_buf dy,
                              ldm_buf x, ldm_buf mean, ldm_buf rstd, ldm_buf gamma);

/* BatchNorm of x, y [N, C, P]; gamma, beta, running_mean, running_var, mean, rstd [C]. training:
 * normalise by batch statistics and update the running ones (by momentum, times gate[0] when gate
 * is set: 0 leaves them as they are); otherwise normalise by the running ones. */
typedef struct ldm_batch_norm_params {
    size_t N, C, P;
    float eps, momentum;
    int training;
} ldm_batch_norm_params;
ldm_status ldm_batch_norm_fwd(ldm_cmd *c, const ldm_batch_norm_params *p, ldm_buf y, ldm_buf mean,
                              ldm_buf rstd, ldm_buf x, ldm_buf gamma, ldm_buf beta,
                              ldm_buf running_mean, ldm_buf running_var, ldm_buf gate);
ldm_status ldm_batch_norm_bwd(ldm_cmd *c, const ldm_batch_norm_params *p, int acc_x, ldm_buf dx,
                              int acc_g, ldm_buf dgamma, int acc_b, ldm_buf dbeta, ldm_buf dy,
                              ldm_buf x, ldm_buf mean, ldm_buf rstd, ldm_buf gamma);

/* F.normalize(x, dim=1) of x, y [N, C, P]: y = x / d with d [N, P] = max(||x[n, :, p]||, eps). */
typedef struct ldm_l2norm_params {
    size_t N, C, P;
    float eps;
} ldm_l2norm_params;
ldm_status ldm_l2norm_fwd(ldm_cmd *c, const ldm_l2norm_params *p, ldm_buf y, ldm_buf d, ldm_buf x);
ldm_status ldm_l2norm_bwd(ldm_cmd *c, const ldm_l2norm_params *p, int acc, ldm_buf dx, ldm_buf dy,
                          ldm_buf x, ldm_buf d);
/* x [N, C, ...]. */
ldm_tensor *ldm_group_norm(ldm_graph *g, ldm_tensor *x, int groups, float eps, ldm_tensor *gamma,
                           ldm_tensor *beta);
/* x [..., D]. */
ldm_tensor *ldm_layer_norm(ldm_graph *g, ldm_tensor *x, float eps, ldm_tensor *gamma,
                           ldm_tensor *beta);
/* x [N, C, ...]; running_mean and running_var are parameters kept frozen (they are statistics,
 * updated by every training run, not by an optimizer). */
ldm_tensor *ldm_batch_norm(ldm_graph *g, ldm_tensor *x, ldm_tensor *gate, ldm_tensor *gamma,
                           ldm_tensor *beta, ldm_tensor *running_mean, ldm_tensor *running_var,
                           float momentum, float eps, int training);
/* F.normalize(x, dim=1, eps) of x [N, C, ...] (LPIPS's feature normalisation; eps 1e-12). */
ldm_tensor *ldm_l2_normalize(ldm_graph *g, ldm_tensor *x, float eps);

#ifdef __cplusplus
}
#endif
#endif
