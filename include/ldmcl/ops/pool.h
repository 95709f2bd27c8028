/* ldmcl/ops/pool.h: F.max_pool2d with kernel k, stride s, no padding, floor mode (VGG16's 2x2
 * pools in LPIPS). */
#ifndef LDMCL_OPS_POOL_H
#define LDMCL_OPS_POOL_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x [NC, H, W] -> y [NC, (H - k) / s + 1, (W - k) / s + 1]. */
typedef struct ldm_max_pool_params {
    size_t NC, H, W;
    int k, s;
} ldm_max_pool_params;
ldm_status ldm_max_pool_fwd(ldm_cmd *c, const ldm_max_pool_params *p, ldm_buf y, ldm_buf x);
/* dx = acc*dx + dy routed to each window's maximum (recomputed from x). */
ldm_status ldm_max_pool_bwd(ldm_cmd *c, const ldm_max_pool_params *p, int acc, ldm_buf dx,
                            ldm_buf dy, ldm_buf x);

/* x [N, C, H, W] -> [N, C, (H - k) / s + 1, (W - k) / s + 1]; H, W >= k. */
ldm_tensor *ldm_max_pool2d(ldm_graph *g, ldm_tensor *x, int k, int s);

#ifdef __cplusplus
}
#endif
#endif
