/* src/train/run_order.c: the order in which a training run sees its dataset: a keyed permutation
 * per epoch, computed for any position alone (so a resumed run sees the same order), and the
 * splitmix64 mixer the stages draw their per-position choices from. */
#include "runner_internal.h"

uint64_t run_mix(uint64_t x) {
    uint64_t z = x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A keyed bijection of [0, 2^(2 half)): a four-round Feistel network. */
static uint64_t feistel(uint64_t x, uint64_t key, unsigned half) {
    uint64_t mask = (1ull << half) - 1, l = x >> half, r = x & mask;
    for (uint64_t round = 0; round < 4; round++) {
        uint64_t f = run_mix(key ^ (round << 56) ^ r) & mask;
        uint64_t nl = r;
        r = l ^ f;
        l = nl;
    }
    return (l << half) | r;
}

size_t run_order(uint64_t seed, size_t n, uint64_t p) {
    /* Stateless, so any position of any epoch is one call: the Feistel bijection over the next
     * even power of two, cycle-walked into [0, n) (a bijection of [0, n) too). */
    uint64_t epoch = p / n, i = p % n;
    unsigned half = 1;
    while ((1ull << (2 * half)) < n)
        half++;
    uint64_t key = run_mix(seed ^ run_mix(epoch + 1));
    do {
        i = feistel(i, key, half);
    } while (i >= n);
    return (size_t)i;
}
