/* ldmcl/ops/softmax.h: torch.softmax over the last dimension. */
#ifndef LDMCL_OPS_SOFTMAX_H
#define LDMCL_OPS_SOFTMAX_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y, x [R, D]. */
ldm_status ldm_softmax_fwd(ldm_cmd *c, size_t R, size_t D, ldm_buf y, ldm_buf x);
/* dx = acc*dx + y * (dy - rowsum(dy * y)). */
ldm_status ldm_softmax_bwd(ldm_cmd *c, size_t R, size_t D, int acc, ldm_buf dx, ldm_buf dy,
                           ldm_buf y);

ldm_tensor *ldm_softmax(ldm_graph *g, ldm_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
