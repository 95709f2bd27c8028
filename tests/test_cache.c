/* tests/test_cache.c: the binary kernel cache on disk: a miss writes a file, a new context loads
 * it without building, and files that are corrupted, truncated, foreign or refused by the driver
 * are deleted and rebuilt, with kernels still computing the right result. Also: the cache can be
 * turned off, and an unwritable cache directory costs a warning, not a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "sha256.h"
#include "test_util.h"

#define FILE_CL "selftest.cl"
#define HEADER_BYTES 120 /* binary_cache.c's header */

/* Runs selftest_axpby through a context and checks the result: a program from the cache must
 * compute like one built from source. */
static void check_kernel_works(ldm_ctx *ctx) {
    enum { N = 100 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)i;
        y[i] = 1.0f;
    }
    ldm_arena *arena;
    assert_status(ldm_arena_create(ctx, "cache test", 4096, &arena), LDM_OK);
    ldm_buf bx, by;
    assert_status(ldm_arena_take(arena, N, "x", &bx), LDM_OK);
    assert_status(ldm_arena_take(arena, N, "y", &by), LDM_OK);
    assert_status(ldm_buf_write(ctx, bx, x, N), LDM_OK);
    assert_status(ldm_buf_write(ctx, by, y, N), LDM_OK);
    cl_kernel k;
    assert_status(ldm_kernel_get(ctx, FILE_CL, "selftest_axpby", NULL, &k), LDM_OK);
    cl_uint i = 0;
    assert_status(ldm_arg_int(k, &i, N), LDM_OK);
    assert_status(ldm_arg_float(k, &i, 2.0f), LDM_OK);
    assert_status(ldm_arg_buf(k, &i, bx), LDM_OK);
    assert_status(ldm_arg_float(k, &i, 3.0f), LDM_OK);
    assert_status(ldm_arg_buf(k, &i, by), LDM_OK);
    size_t global = N;
    assert_status(ldm_launch(ctx, k, 1, &global, NULL, NULL), LDM_OK);
    assert_status(ldm_buf_read(ctx, y, by, N), LDM_OK);
    for (int j = 0; j < N; j++)
        assert_true(y[j] == 2.0f * (float)j + 3.0f);
    ldm_arena_destroy(arena);
}

/* Opens a context on dir, gets the test program, checks it computes, returns the counters. */
static ldm_cache_stats open_and_use(const char *dir, char *path, size_t path_size) {
    ldm_ctx *ctx = test_ctx_open(dir, NULL);
    if (path) assert_status(ldm_cache_file_path(ctx, FILE_CL, NULL, path, path_size), LDM_OK);
    check_kernel_works(ctx);
    ldm_cache_stats s = ldm_ctx_cache_stats(ctx);
    ldm_ctx_destroy(ctx);
    return s;
}

static void miss_then_hit(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("cache");
    char path[4096];
    ldm_cache_stats s = open_and_use(dir, path, sizeof path);
    assert_int_equal(s.disk_misses, 1);
    assert_int_equal(s.disk_hits, 0);
    assert_int_equal(s.source_builds, 1);
    assert_int_equal(s.disk_writes, 1);
    assert_true(test_file_exists(path));
    assert_true(strstr(path, dir) == path);
    assert_contains(path, ".clbin");

    s = open_and_use(dir, NULL, 0);
    assert_int_equal(s.disk_hits, 1);
    assert_int_equal(s.disk_misses, 0);
    assert_int_equal(s.source_builds, 0);
    assert_int_equal(s.disk_writes, 0);

    /* Other build options are another key, hence another file. */
    ldm_ctx *ctx = test_ctx_open(dir, NULL);
    char other[4096];
    assert_status(ldm_cache_file_path(ctx, FILE_CL, "-DWG=32", other, sizeof other), LDM_OK);
    assert_string_not_equal(path, other);
    cl_program p;
    assert_status(ldm_program_get(ctx, FILE_CL, "-DWG=32", &p), LDM_OK);
    assert_true(test_file_exists(other));
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

/* Damages the cache file with `damage`, then expects the next context to reject it, rebuild
 * from source, compute correctly, and leave a good file that the context after it loads. */
static void expect_rebuilt(void (*damage)(const char *path), const char *reason,
                           const char *or_reason) {
    char *dir = test_make_tmpdir("cache");
    char path[4096];
    open_and_use(dir, path, sizeof path);
    damage(path);
    test_log_clear();
    ldm_cache_stats s = open_and_use(dir, NULL, 0);
    assert_int_equal(s.disk_rejected, 1);
    assert_int_equal(s.disk_hits, 0);
    assert_int_equal(s.source_builds, 1);
    assert_int_equal(s.disk_writes, 1);
    assert_contains(test_log_text(), "is unusable");
    if (!or_reason || !strstr(test_log_text(), or_reason)) assert_contains(test_log_text(), reason);
    assert_contains(test_log_text(), path);
    s = open_and_use(dir, NULL, 0);
    assert_int_equal(s.disk_hits, 1);
    assert_int_equal(s.disk_rejected, 0);
    test_rmtree(dir);
    free(dir);
}

static void flip_payload_byte(const char *path) {
    size_t len;
    unsigned char *data = test_read_file(path, &len);
    assert_true(len > HEADER_BYTES + 10);
    data[HEADER_BYTES + (len - HEADER_BYTES) / 2] ^= 0x5a;
    test_write_file(path, data, len);
    free(data);
}

static void truncate_file(const char *path) {
    size_t len;
    unsigned char *data = test_read_file(path, &len);
    test_write_file(path, data, len / 2);
    free(data);
}

static void empty_file(const char *path) {
    test_write_file(path, "", 0);
}

static void foreign_file(const char *path) {
    const char text[] = "this is not a kernel binary, just some text of a plausible length....."
                        "................................................................";
    test_write_file(path, text, sizeof text);
}

/* A well-formed file (right header and checksum) whose payload the driver cannot use. */
static void garbage_payload_with_valid_checksum(const char *path) {
    size_t len;
    unsigned char *data = test_read_file(path, &len);
    for (size_t i = HEADER_BYTES; i < len; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    ldm_sha256 s;
    ldm_sha256_init(&s);
    ldm_sha256_update(&s, data + HEADER_BYTES, len - HEADER_BYTES);
    ldm_sha256_final(&s, data + 88);
    test_write_file(path, data, len);
    free(data);
}

static void corrupted_byte_is_rebuilt(void **state) {
    (void)state;
    expect_rebuilt(flip_payload_byte, "(checksum mismatch)", NULL);
}

static void truncated_file_is_rebuilt(void **state) {
    (void)state;
    expect_rebuilt(truncate_file, "(truncated or padded)", NULL);
    expect_rebuilt(empty_file, "(shorter than its header)", NULL);
}

static void foreign_file_is_rebuilt(void **state) {
    (void)state;
    expect_rebuilt(foreign_file, "(not an ldmcl cache file)", NULL);
}

static void driver_refusal_is_rebuilt(void **state) {
    (void)state;
    /* pocl refuses such a binary when creating the program; another driver may only fail to
     * build it. Either way it is rejected and rebuilt. */
    expect_rebuilt(garbage_payload_with_valid_checksum, "(the driver refused the binary",
                   "(building the binary failed");
}

static void cache_can_be_turned_off(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("cache");
    setenv("LDMCL_CL_CACHE", "0", 1);
    ldm_ctx_options o;
    test_ctx_options(&o, dir, NULL);
    o.binary_cache = -1; /* follow the environment */
    ldm_ctx *ctx;
    assert_status(ldm_ctx_create(&o, &ctx), LDM_OK);
    assert_string_equal(ldm_ctx_cache_dir(ctx), "");
    check_kernel_works(ctx);
    ldm_cache_stats s = ldm_ctx_cache_stats(ctx);
    assert_int_equal(s.disk_writes + s.disk_misses + s.disk_hits, 0);
    ldm_ctx_destroy(ctx);
    unsetenv("LDMCL_CL_CACHE");

    /* The environment names the directory when the options do not. */
    setenv("LDMCL_CL_CACHE_DIR", dir, 1);
    test_ctx_options(&o, NULL, NULL);
    o.binary_cache = -1;
    assert_status(ldm_ctx_create(&o, &ctx), LDM_OK);
    assert_string_equal(ldm_ctx_cache_dir(ctx), dir);
    check_kernel_works(ctx);
    assert_int_equal(ldm_ctx_cache_stats(ctx).disk_writes, 1);
    ldm_ctx_destroy(ctx);
    unsetenv("LDMCL_CL_CACHE_DIR");
    test_rmtree(dir);
    free(dir);
}

static void unwritable_directory_only_warns(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("cache");
    char blocked[4200];
    snprintf(blocked, sizeof blocked, "%s/a-file", dir);
    test_write_file(blocked, "x", 1); /* the cache "directory" is a regular file */
    char cache[4300];
    snprintf(cache, sizeof cache, "%s/sub", blocked);
    test_log_clear();
    ldm_ctx *ctx = test_ctx_open(cache, NULL);
    check_kernel_works(ctx);
    ldm_cache_stats s = ldm_ctx_cache_stats(ctx);
    assert_int_equal(s.disk_write_failures, 1);
    assert_int_equal(s.disk_writes, 0);
    assert_contains(test_log_text(), "LDMCL_CL_CACHE_DIR");
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(miss_then_hit),
        cmocka_unit_test(corrupted_byte_is_rebuilt),
        cmocka_unit_test(truncated_file_is_rebuilt),
        cmocka_unit_test(foreign_file_is_rebuilt),
        cmocka_unit_test(driver_refusal_is_rebuilt),
        cmocka_unit_test(cache_can_be_turned_off),
        cmocka_unit_test(unwritable_directory_only_warns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
