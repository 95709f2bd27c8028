/* tests/test_arena.c: device memory arenas: aligned carving, zero fill, host round trips, and
 * requests that cannot fit failing with "need X, have Y" before the driver is asked. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static ldm_ctx *g_ctx;

static int setup(void **state) {
    (void)state;
    g_ctx = test_ctx_open(NULL, NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ldm_ctx_destroy(g_ctx);
    return 0;
}

static void carves_aligned_zeroed_buffers(void **state) {
    (void)state;
    ldm_arena *a;
    assert_status(ldm_arena_create(g_ctx, "params", 10000, &a), LDM_OK);
    assert_string_equal(ldm_arena_name(a), "params");
    assert_true(ldm_arena_capacity_bytes(a) >= 10000);
    assert_int_equal(ldm_arena_capacity_bytes(a) % 256, 0);
    assert_true(ldm_ctx_device_bytes_in_use(g_ctx) >= 10000);
    ldm_buf b1, b2, b3;
    assert_status(ldm_arena_take(a, 3, "t1", &b1), LDM_OK);
    assert_status(ldm_arena_take(a, 100, "t2", &b2), LDM_OK);
    assert_status(ldm_arena_take(a, 1, "t3", &b3), LDM_OK);
    assert_int_equal(b1.off, 0);
    assert_int_equal(b2.off, LDM_ARENA_ALIGN_ELEMS);
    assert_int_equal(b3.off, 3 * LDM_ARENA_ALIGN_ELEMS);
    assert_ptr_equal(b1.mem, ldm_arena_mem(a));

    float got[100], data[100];
    assert_status(ldm_buf_read(g_ctx, got, b2, 100), LDM_OK);
    for (int i = 0; i < 100; i++)
        assert_true(got[i] == 0.0f);
    for (int i = 0; i < 100; i++)
        data[i] = (float)i - 50.5f;
    assert_status(ldm_buf_write(g_ctx, b2, data, 100), LDM_OK);
    assert_status(ldm_buf_copy(g_ctx, b3, b2, 1, NULL), LDM_OK);
    assert_status(ldm_buf_read(g_ctx, got, b2, 100), LDM_OK);
    assert_memory_equal(got, data, sizeof data);
    assert_status(ldm_buf_read(g_ctx, got, b3, 1), LDM_OK);
    assert_true(got[0] == -50.5f);
    assert_status(ldm_buf_fill(g_ctx, b2, 2.25f, 100), LDM_OK);
    assert_status(ldm_buf_read(g_ctx, got, b2, 100), LDM_OK);
    for (int i = 0; i < 100; i++)
        assert_true(got[i] == 2.25f);

    /* Full: the message names the arena and the tensor. */
    ldm_buf big;
    assert_status(ldm_arena_take(a, 5000, "huge", &big), LDM_ERR_DEVICE_MEMORY);
    assert_contains(ldm_last_error(), "arena 'params' is full: tensor 'huge' needs");
    ldm_arena_reset(a);
    assert_int_equal(ldm_arena_used_bytes(a), 0);
    assert_status(ldm_arena_take(a, 2000, "after reset", &big), LDM_OK);
    assert_int_equal(big.off, 0);
    uint64_t before = ldm_ctx_device_bytes_in_use(g_ctx);
    ldm_arena_destroy(a);
    assert_int_equal(ldm_ctx_device_bytes_in_use(g_ctx), before - 10240);
}

static void oversized_allocation_is_refused_clearly(void **state) {
    (void)state;
    const ldm_device_info *d = ldm_ctx_device_info(g_ctx);
    ldm_arena *a = NULL;
    /* One byte over the device's largest allocation; 256 more so that alignment cannot hide it. */
    assert_status(ldm_arena_create(g_ctx, "activations", d->max_alloc_bytes + 257, &a),
                  LDM_ERR_DEVICE_MEMORY);
    assert_null(a);
    const char *msg = ldm_last_error();
    assert_contains(msg, "arena 'activations' does not fit");
    assert_contains(msg, "need ");
    assert_contains(msg, "have ");
    assert_contains(msg, "CL_DEVICE_MAX_MEM_ALLOC_SIZE");
    assert_contains(msg, d->device_name);
    assert_int_equal(ldm_ctx_device_bytes_in_use(g_ctx), 0);
}

static void memory_limit_is_enforced(void **state) {
    (void)state;
    ldm_ctx_set_memory_limit(g_ctx, 1u << 20);
    ldm_arena *a = NULL, *b = NULL;
    assert_status(ldm_arena_create(g_ctx, "first", 768u << 10, &a), LDM_OK);
    assert_status(ldm_arena_create(g_ctx, "second", 512u << 10, &b), LDM_ERR_DEVICE_MEMORY);
    assert_null(b);
    assert_contains(ldm_last_error(), "arena 'second' does not fit");
    assert_contains(ldm_last_error(), "need 512 KiB, have 256 KiB free of 1.00 MiB");
    assert_contains(ldm_last_error(), "the memory limit set on this context");
    ldm_arena_destroy(a);
    assert_status(ldm_arena_create(g_ctx, "second", 512u << 10, &b), LDM_OK);
    ldm_arena_destroy(b);
    ldm_ctx_set_memory_limit(g_ctx, 0);

    assert_status(ldm_arena_create(g_ctx, "empty", 0, &a), LDM_ERR_INVALID_ARGUMENT);
}

static void launch_rejects_bad_dimensions(void **state) {
    (void)state;
    cl_kernel k;
    assert_status(ldm_kernel_get(g_ctx, "selftest.cl", "selftest_axpby", NULL, &k), LDM_OK);
    size_t g[4] = {1, 1, 1, 1};
    assert_status(ldm_launch(g_ctx, k, 4, g, NULL, NULL), LDM_ERR_INVALID_ARGUMENT);
    /* Arguments never set: the driver refuses and the message names the kernel. */
    ldm_ctx *fresh = test_ctx_open(NULL, NULL);
    cl_kernel unset;
    assert_status(ldm_kernel_create(fresh, "selftest.cl", "selftest_axpby", NULL, &unset), LDM_OK);
    size_t n = 8;
    assert_status(ldm_launch(fresh, unset, 1, &n, NULL, NULL), LDM_ERR_OPENCL);
    assert_contains(ldm_last_error(), "kernel 'selftest_axpby'");
    assert_contains(ldm_last_error(), "CL_INVALID_KERNEL_ARGS");
    clReleaseKernel(unset);
    ldm_ctx_destroy(fresh);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(carves_aligned_zeroed_buffers),
        cmocka_unit_test(oversized_allocation_is_refused_clearly),
        cmocka_unit_test(memory_limit_is_enforced),
        cmocka_unit_test(launch_rejects_bad_dimensions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
