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

/* x, y [N, C, P]; gamma, beta [C]; mean, rstd [N, G]. C must be a multiple of G. */
ldm_status ldm_group_norm_fwd(ldm_cmd *c, size_t N, size_t C, size_t P, size_t G, float eps,
                              ldm_buf y, ldm_buf mean, ldm_buf rstd, ldm_buf x, ldm_buf gamma,
                              ldm_buf beta);
/* Gradients whose mem is NULL are skipped. */
ldm_status ldm_group_norm_bwd(ldm_cmd *c, size_t N, size_t C, size_t P, size_t G, int acc_x,
                              ldm_buf dx, int acc_g, ldm_buf dgamma, int acc_b, ldm_buf dbeta,
                              ldm_buf dy, ldm_buf x, ldm_buf mean, ldm_buf rstd, ldm_buf gamma);

/* x, y [R, D]; gamma, beta [D]; mean, rstd [R]. */
ldm_status ldm_layer_norm_fwd(ldm_cmd *c, size_t R, size_t D, float eps, ldm_buf y, ldm_buf mean,
                              ldm_buf rstd, ldm_buf x, ldm_buf gamma, ldm_buf beta);
ldm_status ldm_layer_norm_bwd(ldm_cmd *c, size_t R, size_t D, int acc_x, ldm_buf dx, int acc_g,
                              ldm_buf dgamma, int acc_b, ldm_buf dbeta, ldm_buf dy, ldm_buf x,
                              ldm_buf mean, ldm_buf rstd, ldm_buf gamma);

/* x, y [N, C, P]; gamma, beta, running_mean, running_var, mean, rstd [C]. training: normalise
 * by batch statistics and update the running ones; otherwise normalise by the running ones. */
ldm_status ldm_batch_norm_fwd(ldm_cmd *c, size_t N, size_t C, size_t P, float eps, float momentum,
                              int training, ldm_buf y, ldm_buf mean, ldm_buf rstd, ldm_buf x,
                              ldm_buf gamma, ldm_buf beta, ldm_buf running_mean,
                              ldm_buf running_var);
ldm_status ldm_batch_norm_bwd(ldm_cmd *c, size_t N, size_t C, size_t P, int training, int acc_x,
                              ldm_buf dx, int acc_g, ldm_buf dgamma, int acc_b, ldm_buf dbeta,
                              ldm_buf dy, ldm_buf x, ldm_buf mean, ldm_buf rstd, ldm_buf gamma);

/* F.normalize(x, dim=1) of x, y [N, C, P]: y = x / d with d [N, P] = max(||x[n, :, p]||, eps). */
ldm_status ldm_l2norm_fwd(ldm_cmd *c, size_t N, size_t C, size_t P, float eps, ldm_buf y, ldm_buf d,
                          ldm_buf x);
ldm_status ldm_l2norm_bwd(ldm_cmd *c, size_t N, size_t C, size_t P, float eps, int acc, ldm_buf dx,
                          ldm_buf dy, ldm_buf x, ldm_buf d);
/* x [N, C, ...]. */
ldm_tensor *ldm_group_norm(ldm_graph *g, ldm_tensor *x, int groups, float eps, ldm_tensor *gamma,
                           ldm_tensor *beta);
/* x [..., D]. */
ldm_tensor *ldm_layer_norm(ldm_graph *g, ldm_tensor *x, float eps, ldm_tensor *gamma,
                           ldm_tensor *beta);
/* x [N, C, ...]; running_mean and running_var are parameters kept frozen (they are statistics,
 * updated by every training run, not by an optimizer). */
ldm_tensor *ldm_batch_norm(ldm_graph *g, ldm_tensor *x, ldm_tensor *gamma, ldm_tensor *beta,
                           ldm_tensor *running_mean, ldm_tensor *running_var, float momentum,
                           float eps, int training);
/* F.normalize(x, dim=1, eps) of x [N, C, ...] (LPIPS's feature normalisation; eps 1e-12). */
ldm_tensor *ldm_l2_normalize(ldm_graph *g, ldm_tensor *x, float eps);

#ifdef __cplusplus
}
#endif
#endif
