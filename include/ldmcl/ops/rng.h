/* ldmcl/ops/rng.h: random numbers on the device from a counter-based generator (Philox4x32-10)
 * keyed by (seed, stream, step): identical on every device and on the host for the same key, and
 * resumable (no hidden state). Element i always comes from Philox block i/4. */
#ifndef LDMCL_OPS_RNG_H
#define LDMCL_OPS_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ldm_dist {
    LDM_DIST_UNIFORM = 0, /* [0, 1) */
    LDM_DIST_NORMAL = 1,  /* N(0, 1) */
    LDM_DIST_INTEGER = 2  /* integers uniform in [shift, shift + scale): floor(u * scale) + shift */
} ldm_dist;

/* out[i] = scale * r_i + shift for i < n, r uniform in [0, 1) or standard normal (integers: see
 * ldm_dist). The step is
 * step_add plus, when counter.mem is set, the device counter counter[0] (uint bits): a recorded
 * step advances it on the device. */
ldm_status ldm_rng_fill(ldm_cmd *c, ldm_dist dist, size_t n, uint64_t seed, uint32_t stream,
                        uint64_t step_add, ldm_buf counter, float scale, float shift, ldm_buf out);

/* The same, out[i] being element first + i of the stream (a part of a larger draw). */
ldm_status ldm_rng_fill_part(ldm_cmd *c, ldm_dist dist, uint64_t first, size_t n, uint64_t seed,
                             uint32_t stream, uint64_t step_add, ldm_buf counter, float scale,
                             float shift, ldm_buf out);

/* Graph op: a tensor of random numbers drawn anew at every run, keyed by (seed, stream, the
 * graph's step counter). Its first dimension is the batch: on a graph that computes part k of K
 * of a batch (ldm_graph_set_batch_part) it holds part k of the numbers the whole batch's tensor
 * (K times larger) holds. */
ldm_tensor *ldm_random(ldm_graph *g, ldm_dist dist, int ndim, const int *shape, uint64_t seed,
                       uint32_t stream, float scale, float shift);

/* The same numbers computed on the host (the reference the device must equal bit for bit; for
 * LDM_DIST_INTEGER the uniform draws before scaling). */
void ldm_rng_host(ldm_dist dist, size_t n, uint64_t seed, uint32_t stream, uint64_t step,
                  float *out);
/* Elements first .. first + n of the same. */
void ldm_rng_host_part(ldm_dist dist, uint64_t first, size_t n, uint64_t seed, uint32_t stream,
                       uint64_t step, float *out);

#ifdef __cplusplus
}
#endif
#endif
