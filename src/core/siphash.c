/* src/core/siphash.c: SipHash-2-4, written from the paper "SipHash: a fast short-input PRF"
 * (Aumasson, Bernstein, 2012), section 2: two compression rounds per 8-byte word, four
 * finalization rounds. */
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "siphash.h"

static uint64_t rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

static uint64_t load_le(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static void rounds(uint64_t v[4], int n) {
    for (int i = 0; i < n; i++) {
        v[0] += v[1];
        v[1] = rotl(v[1], 13);
        v[1] ^= v[0];
        v[0] = rotl(v[0], 32);
        v[2] += v[3];
        v[3] = rotl(v[3], 16);
        v[3] ^= v[2];
        v[0] += v[3];
        v[3] = rotl(v[3], 21);
        v[3] ^= v[0];
        v[2] += v[1];
        v[1] = rotl(v[1], 17);
        v[1] ^= v[2];
        v[2] = rotl(v[2], 32);
    }
}

uint64_t ldm_siphash24(const unsigned char key[16], const void *data, size_t n) {
    const uint64_t k0 = load_le(key, 8), k1 = load_le(key + 8, 8);
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                     k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    const unsigned char *p = data;
    size_t whole = n - n % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le(p + i, 8);
        v[3] ^= m;
        rounds(v, 2);
        v[0] ^= m;
    }
    uint64_t last = (uint64_t)(n & 0xff) << 56 | load_le(p + whole, n % 8);
    v[3] ^= last;
    rounds(v, 2);
    v[0] ^= last;
    v[2] ^= 0xff;
    rounds(v, 4);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

void ldm_siphash_key(unsigned char key[16]) {
    if (getrandom(key, 16, GRND_NONBLOCK) == 16) return;
    /* No entropy yet (early boot): still different per process and per call. */
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    uint64_t a = (uint64_t)t.tv_nsec ^ (uint64_t)t.tv_sec << 30, b = (uint64_t)(uintptr_t)key;
    static const unsigned char zero[16];
    a = ldm_siphash24(zero, &a, sizeof a) ^ b;
    b = ldm_siphash24(zero, &b, sizeof b) ^ a;
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}
