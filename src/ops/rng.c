/* src/ops/rng.c: device random numbers (cl/rng.cl) and their host twin, both from the single
 * source cl/philox.clh. */
#include <string.h>

#include "ops_internal.h"

#define LDM_U32 uint32_t
#define LDM_U64 uint64_t
#define LDM_MULHI(a, b) ((uint32_t)(((uint64_t)(a) * (uint64_t)(b)) >> 32))
#define LDM_INLINE static inline

static inline float as_float_host(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t as_uint_host(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

#define LDM_AS_FLOAT(x) as_float_host((uint32_t)(x))
#define LDM_AS_UINT(x) as_uint_host(x)
#include "../../cl/philox.clh"

void ldm_rng_host(ldm_dist dist, size_t n, uint64_t seed, uint32_t stream, uint64_t step,
                  float *out) {
    for (size_t b = 0; b * 4 < n; b++) {
        float v[4];
        ldm_random_block(seed, stream, step, (uint32_t)b, (int)dist, v);
        for (size_t k = 0; k < 4 && b * 4 + k < n; k++)
            out[b * 4 + k] = v[k];
    }
}

ldm_status ldm_rng_fill(ldm_cmd *c, ldm_dist dist, size_t n, uint64_t seed, uint32_t stream,
                        uint64_t step_add, ldm_buf counter, float scale, float shift, ldm_buf out) {
    LDM_TRY(ldm_check_count("random numbers", n));
    if (dist != LDM_DIST_UNIFORM && dist != LDM_DIST_NORMAL)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "unknown distribution %d", (int)dist);
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, "rng.cl", "rng_fill", NULL, &k));
    LDM_TRY(ldm_set_args(k, "iluliffbib", (int)n, seed, (unsigned)stream, step_add, (int)dist,
                         (double)scale, (double)shift, ldm_unused_or(counter, out),
                         counter.mem != NULL, out));
    return ldm_launch_1d(c, k, (n + 3) / 4);
}
