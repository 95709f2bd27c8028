/* ldmcl/ops/layout.h: data movement: transpose of the last two dimensions of a 3-D tensor
 * (x.transpose(1, 2)), concatenation and slicing along a dimension (torch.cat, x.narrow). */
#ifndef LDMCL_OPS_LAYOUT_H
#define LDMCL_OPS_LAYOUT_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y [B, C, R] = acc*y + x [B, R, C] transposed. */
ldm_status ldm_transpose12_fwd(ldm_cmd *c, size_t B, size_t R, size_t C, int acc, ldm_buf y,
                               ldm_buf x);
/* dst[o, dst_start + j, i] = acc*dst + src[o, src_start + j, i], j < len, over [outer, *, inner]
 * tensors whose middle dimensions are src_mid and dst_mid long. */
ldm_status ldm_copy_slice(ldm_cmd *c, size_t outer, size_t len, size_t inner, size_t src_mid,
                          size_t src_start, size_t dst_mid, size_t dst_start, int acc, ldm_buf dst,
                          ldm_buf src);

/* x [B, R, C] -> [B, C, R]. */
ldm_tensor *ldm_transpose12(ldm_graph *g, ldm_tensor *x);
/* torch.cat([a, b], dim). */
ldm_tensor *ldm_concat(ldm_graph *g, ldm_tensor *a, ldm_tensor *b, int dim);
/* F.interpolate(x, size=(height, width)) with mode 'nearest'; x [N, C, H, W] (any sizes, up or
 * down; backward sums over the outputs each input went to). */
ldm_tensor *ldm_resize_nearest(ldm_graph *g, ldm_tensor *x, int height, int width);
/* x.narrow(dim, start, length), copied. */
ldm_tensor *ldm_narrow(ldm_graph *g, ldm_tensor *x, int dim, int start, int length);

#ifdef __cplusplus
}
#endif
#endif
