/* ldmcl/ops/vq.h: vector quantisation, the nearest codebook entry by L2 distance (the argmin of
 * torch.cdist in the reference VQ-VAE's quantize). Its result is an index: take the entries with
 * ldm_embedding (linear.h), through which the codebook gets its gradient. */
#ifndef LDMCL_OPS_VQ_H
#define LDMCL_OPS_VQ_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* index [R] (float-valued integers) = argmin_k ||z[r] - codebook[k]|| for z [R, D], codebook
 * [K, D]; ties go to the lowest k. */
ldm_status ldm_vq_nearest_fwd(ldm_cmd *c, size_t R, size_t K, size_t D, ldm_buf index, ldm_buf z,
                              ldm_buf codebook);

/* z [..., D], codebook [K, D] -> index [...] (no gradient flows through it). */
ldm_tensor *ldm_vq_nearest(ldm_graph *g, ldm_tensor *z, ldm_tensor *codebook);

#ifdef __cplusplus
}
#endif
#endif
