/* src/core/philox.c: the host twin of the device's random numbers (see philox.h): the single
 * source cl/philox.clh, compiled as C with host definitions of its few device primitives. */
#include <string.h>

#include "philox.h"

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

void ldm_philox_host_part(int normal, uint64_t first, size_t n, uint64_t seed, uint32_t stream,
                          uint64_t step, float *out) {
    for (uint64_t b = first / 4; b * 4 < first + n; b++) {
        float v[4];
        ldm_random_block(seed, stream, step, (uint32_t)b, normal, v);
        for (uint64_t k = 0; k < 4; k++) {
            uint64_t e = b * 4 + k;
            if (e >= first && e < first + n) out[e - first] = v[k];
        }
    }
}

void ldm_philox_host(int normal, size_t n, uint64_t seed, uint32_t stream, uint64_t step,
                     float *out) {
    ldm_philox_host_part(normal, 0, n, seed, stream, step, out);
}
