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
        cmocka_unit_test(keys_change_the_numbers),
        cmocka_unit_test(moments_are_right),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
