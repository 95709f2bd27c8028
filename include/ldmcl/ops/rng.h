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

/* Graph op: a tensor of random numbers drawn anew at every run, keyed by (seed, stream, the
 * graph's step counter). */
ldm_tensor *ldm_random(ldm_graph *g, ldm_dist dist, int ndim, const int *shape, uint64_t seed,
                       uint32_t stream, float scale, float shift);

/* The same numbers computed on the host (the reference the device must equal bit for bit; for
 * LDM_DIST_INTEGER the uniform draws before scaling). */
void ldm_rng_host(ldm_dist dist, size_t n, uint64_t seed, uint32_t stream, uint64_t step,
                  float *out);

#ifdef __cplusplus
}
#endif
#endif
