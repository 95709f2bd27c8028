/* src/core/philox.h: the host twin of the device's random numbers (cl/philox.clh, compiled here as
 * C): the numbers the rng kernels draw for a key, bit for bit, for parameter initialisation on the
 * host and as the tests' reference. Not installed. */
#ifndef LDMCL_CORE_PHILOX_H
#define LDMCL_CORE_PHILOX_H

#include <stddef.h>
#include <stdint.h>

/* out[i] for i < n: uniform in [0, 1), or standard normal when normal is set, of the key (seed,
 * stream, step); element i comes from Philox4x32-10 block i / 4. */
void ldm_philox_host(int normal, size_t n, uint64_t seed, uint32_t stream, uint64_t step,
                     float *out);
/* out[i] = element first + i of the same. */
void ldm_philox_host_part(int normal, uint64_t first, size_t n, uint64_t seed, uint32_t stream,
                          uint64_t step, float *out);

#endif
