/* tests/test_rng.c: the device's random numbers equal the host reference bit for bit (so every
 * device gives the same numbers for the same seed), differ by seed, stream and step, follow the
 * device step counter, and have the right moments. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ops.h"
#include "test_util.h"

static ldm_ctx *g_ctx;
static ldm_arena *g_arena;

static int setup(void **state) {
    (void)state;
    g_ctx = test_ctx_open(NULL, NULL);
    assert_status(ldm_arena_create(g_ctx, "rng test", 4u << 20, &g_arena), LDM_OK);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ldm_arena_destroy(g_arena);
    ldm_ctx_destroy(g_ctx);
    return 0;
}

static float *device_numbers(ldm_dist dist, size_t n, uint64_t seed, uint32_t stream, uint64_t step,
                             ldm_buf counter) {
    ldm_arena_reset(g_arena);
    ldm_buf out;
    assert_status(ldm_arena_take(g_arena, n, "out", &out), LDM_OK);
    assert_status(ldm_rng_fill(ldm_ctx_immediate(g_ctx), dist, n, seed, stream, step, counter, 1.0f,
                               0.0f, out),
                  LDM_OK);
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    assert_status(ldm_buf_read(g_ctx, v, out, n), LDM_OK);
    return v;
}

static void device_equals_host_bit_for_bit(void **state) {
    (void)state;
    const size_t n = 10007;
    const uint64_t seeds[] = {0, 42, 0xDEADBEEFCAFEF00Dull};
    ldm_buf none = {NULL, 0};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 3; s++) {
            float *dev = device_numbers((ldm_dist)d, n, seeds[s], 7u, 123456789012ull, none);
            float *host = malloc(n * sizeof *host);
            assert_non_null(host);
            ldm_rng_host((ldm_dist)d, n, seeds[s], 7u, 123456789012ull, host);
            for (size_t i = 0; i < n; i++)
                if (memcmp(&dev[i], &host[i], 4) != 0)
                    fail_msg("dist %d seed %d: element %zu is %.9g on the device, %.9g on the "
                             "host",
                             d, s, i, dev[i], host[i]);
            free(dev);
            free(host);
        }
}

/* A part of a draw (a rank's share of a batch) is that stretch of the whole draw, for starts and
 * lengths on and off the blocks of 4; and a graph made part k of K draws part k of the batch. */
static void parts_are_stretches_of_the_whole(void **state) {
    (void)state;
    const size_t n = 1013; /* past the last start + the longest length */
    float *whole = malloc(n * sizeof *whole), *part = malloc(n * sizeof *part);
    assert_non_null(whole);
    assert_non_null(part);
    ldm_buf none = {NULL, 0};
    const uint64_t firsts[] = {0, 1, 3, 4, 5, 250, 997};
    const size_t lens[] = {1, 2, 3, 4, 6, 7};
    for (int d = 0; d < 3; d++) {
        ldm_rng_host(d == 1 ? LDM_DIST_NORMAL : LDM_DIST_UNIFORM, n, 11, 2u, 5, whole);
        for (size_t f = 0; f < sizeof firsts / sizeof firsts[0]; f++)
            for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
                uint64_t first = firsts[f];
                size_t len = lens[l];
                ldm_arena_reset(g_arena);
                ldm_buf out;
                assert_status(ldm_arena_take(g_arena, len + 8, "out", &out), LDM_OK);
                assert_status(ldm_buf_fill(g_ctx, out, -7.0f, len + 8), LDM_OK);
                assert_status(ldm_rng_fill_part(ldm_ctx_immediate(g_ctx), (ldm_dist)d, first, len,
                                                11, 2u, 5, none, 1.0f, 0.0f, out),
                              LDM_OK);
                assert_status(ldm_buf_read(g_ctx, part, out, len + 8), LDM_OK);
                for (size_t i = 0; i < len; i++) {
                    float want = d == 2 ? fminf(floorf(whole[first + i]), 0.0f) : whole[first + i];
                    if (memcmp(&part[i], &want, 4) != 0)
                        fail_msg("dist %d, elements %llu + %zu: element %zu is %.9g, the whole "
                                 "draw's %.9g",
                                 d, (unsigned long long)first, len, i, part[i], want);
                }
                for (size_t i = len; i < len + 8; i++) /* nothing written past the part */
                    assert_float_equal(part[i], -7.0f, 0.0f);
                float host[8];
                ldm_rng_host_part(d == 1 ? LDM_DIST_NORMAL : LDM_DIST_UNIFORM, first, len, 11, 2u,
                                  5, host);
                assert_memory_equal(host, whole + first, len * sizeof *host);
            }
    }
    /* graphs: two halves of a batch of 3 draw the batch of 6 */
    float full[6 * 5], half[2][3 * 5];
    for (int parts = 1; parts <= 2; parts++)
        for (int k = 0; k < parts; k++) {
            ldm_graph *g;
            assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
            assert_status(ldm_graph_set_batch_part(g, k, parts), LDM_OK);
            ldm_tensor *r = ldm_random(g, LDM_DIST_NORMAL, LDM_SHAPE(6 / parts, 5), 9, 1, 1, 0);
            assert_non_null(r);
            ldm_tensor_keep(r);
            assert_status(ldm_graph_compile(g), LDM_OK);
            assert_status(ldm_graph_run(g), LDM_OK);
            assert_status(ldm_tensor_read(r, parts == 1 ? full : half[k]), LDM_OK);
            ldm_graph_destroy(g);
        }
    assert_memory_equal(half[0], full, sizeof half[0]);
    assert_memory_equal(half[1], full + 15, sizeof half[1]);
    ldm_graph *g;
    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    assert_status(ldm_graph_set_batch_part(g, 2, 2), LDM_ERR_INVALID_ARGUMENT);
    ldm_graph_destroy(g);
    free(whole);
    free(part);
}

static void keys_change_the_numbers(void **state) {
    (void)state;
    const size_t n = 64;
    float a[64], b[64];
    ldm_rng_host(LDM_DIST_NORMAL, n, 1, 0, 0, a);
    ldm_rng_host(LDM_DIST_NORMAL, n, 2, 0, 0, b);
    assert_memory_not_equal(a, b, sizeof a);
    ldm_rng_host(LDM_DIST_NORMAL, n, 1, 1, 0, b);
    assert_memory_not_equal(a, b, sizeof a);
    ldm_rng_host(LDM_DIST_NORMAL, n, 1, 0, 1, b);
    assert_memory_not_equal(a, b, sizeof a);
    /* A prefix of a longer draw is the shorter draw: element i depends only on i. */
    float c[10];
    ldm_rng_host(LDM_DIST_NORMAL, 10, 1, 0, 0, c);
    assert_memory_equal(a, c, sizeof c);

    /* The device counter adds to the step. */
    ldm_buf counter;
    ldm_arena *arena;
    assert_status(ldm_arena_create(g_ctx, "counter", 256, &arena), LDM_OK);
    assert_status(ldm_arena_take(arena, 1, "counter", &counter), LDM_OK);
    uint32_t five = 5;
    assert_status(ldm_buf_write(g_ctx, counter, &five, 1), LDM_OK);
    float *dev = device_numbers(LDM_DIST_UNIFORM, n, 9, 3, 2, counter);
    ldm_rng_host(LDM_DIST_UNIFORM, n, 9, 3, 7, b);
    assert_memory_equal(dev, b, sizeof b);
    free(dev);
    ldm_arena_destroy(arena);
}

static void moments_are_right(void **state) {
    (void)state;
    const size_t n = 400000;
    float *u = malloc(n * sizeof *u), *z = malloc(n * sizeof *z);
    assert_true(u && z);
    ldm_rng_host(LDM_DIST_UNIFORM, n, 2024, 0, 0, u);
    ldm_rng_host(LDM_DIST_NORMAL, n, 2024, 1, 0, z);
    double su = 0, sz = 0, szz = 0, sz4 = 0, tail = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(u[i] >= 0.0f && u[i] < 1.0f);
        assert_true(isfinite(z[i]));
        su += u[i];
        sz += z[i];
        szz += (double)z[i] * z[i];
        sz4 += (double)z[i] * z[i] * z[i] * z[i];
        tail += fabs(z[i]) > 1.959964;
    }
    double mu = su / n, mz = sz / n, vz = szz / n - mz * mz, kz = sz4 / n;
    /* Five standard errors each: uniform mean 1/2 (sd 0.289/sqrt(n)), normal mean 0, variance 1
     * (sd sqrt(2/n)), fourth moment 3 (sd sqrt(96/n)), and 5% outside +-1.96. */
    assert_true(fabs(mu - 0.5) < 5 * 0.2887 / sqrt((double)n));
    assert_true(fabs(mz) < 5 / sqrt((double)n));
    assert_true(fabs(vz - 1) < 5 * sqrt(2.0 / n));
    assert_true(fabs(kz - 3) < 5 * sqrt(96.0 / n));
    assert_true(fabs(tail / n - 0.05) < 5 * sqrt(0.05 * 0.95 / n));
    free(u);
    free(z);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(device_equals_host_bit_for_bit),
        cmocka_unit_test(parts_are_stretches_of_the_whole),
        cmocka_unit_test(keys_change_the_numbers),
        cmocka_unit_test(moments_are_right),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
