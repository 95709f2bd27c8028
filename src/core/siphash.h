/* src/core/siphash.h: SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed 64-bit hash for hash
 * tables that read untrusted keys: without the 128-bit key, nobody can craft keys that collide. */
#ifndef LDMCL_CORE_SIPHASH_H
#define LDMCL_CORE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t ldm_siphash24(const unsigned char key[16], const void *data, size_t n);

/* 16 unpredictable bytes for a key (getrandom; the clock and an address if that fails). */
void ldm_siphash_key(unsigned char key[16]);

#endif
