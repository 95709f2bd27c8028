/* tests/test_program.c: kernels that compute something checkable, a broken kernel whose build
 * error comes back with its file, options and log, include expansion, kernel sources loaded from
 * a directory, and the in-memory program and kernel cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "reference.h"
#include "test_util.h"

static ldm_ctx *g_ctx; /* embedded sources, no disk cache */

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

/* y = a x + b y on the device for n elements, x and y at the given offsets. */
static void run_axpby(int n, size_t x_off, size_t y_off) {
    ldm_arena *arena;
    assert_status(
        ldm_arena_create(g_ctx, "axpby", (uint64_t)(2 * n + x_off + y_off + 128) * 4, &arena),
        LDM_OK);
    ldm_buf x, y;
    assert_status(ldm_arena_take(arena, (size_t)n + x_off, "x", &x), LDM_OK);
    assert_status(ldm_arena_take(arena, (size_t)n + y_off, "y", &y), LDM_OK);
    x.off += x_off;
    y.off += y_off;
    float *hx = malloc((size_t)n * sizeof *hx), *hy = malloc((size_t)n * sizeof *hy);
    float *got = malloc((size_t)n * sizeof *got);
    assert_true(hx && hy && got);
    ldm_ref_fill_uniform(hx, (size_t)n, 5, -3.0f, 3.0f);
    ldm_ref_fill_uniform(hy, (size_t)n, 6, -3.0f, 3.0f);
    assert_status(ldm_buf_write(g_ctx, x, hx, (size_t)n), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, y, hy, (size_t)n), LDM_OK);
    cl_kernel k;
    assert_status(ldm_kernel_get(g_ctx, "selftest.cl", "selftest_axpby", NULL, &k), LDM_OK);
    cl_uint i = 0;
    assert_status(ldm_arg_int(k, &i, n), LDM_OK);
    assert_status(ldm_arg_float(k, &i, -2.0f), LDM_OK);
    assert_status(ldm_arg_buf(k, &i, x), LDM_OK);
    assert_status(ldm_arg_float(k, &i, 0.5f), LDM_OK);
    assert_status(ldm_arg_buf(k, &i, y), LDM_OK);
    size_t global = (size_t)n, local = 32;
    assert_status(ldm_launch(g_ctx, k, 1, &global, &local, NULL), LDM_OK);
    assert_status(ldm_buf_read(g_ctx, got, y, (size_t)n), LDM_OK);
    for (int j = 0; j < n; j++) {
        /* Powers of two: exact in float whether or not the device fuses the multiply-add. */
        double want = -2.0 * hx[j] + 0.5 * hy[j];
        assert_true(fabs(got[j] - want) <= 1e-6 * fabs(want) + 1e-7);
    }
    /* Elements before the offsets are untouched (still zero from the arena). */
    if (y_off) {
        float before;
        ldm_buf prev = {y.mem, y.off - 1};
        assert_status(ldm_buf_read(g_ctx, &before, prev, 1), LDM_OK);
        assert_true(before == 0.0f);
    }
    free(hx);
    free(hy);
    free(got);
    ldm_arena_destroy(arena);
}

static void axpby_computes_at_awkward_sizes(void **state) {
    (void)state;
    run_axpby(1, 0, 0);
    run_axpby(1000, 3, 17); /* not a multiple of the work-group size */
    run_axpby(4099, 64, 1);
}

static void sum_reduces_in_local_memory(void **state) {
    (void)state;
    const int sizes[] = {1, 255, 256, 257, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s], groups = (n + 32 * 8 - 1) / (32 * 8);
        float *x = malloc((size_t)n * sizeof *x), *partial = malloc((size_t)groups * sizeof *x);
        assert_true(x && partial);
        /* Small integers: every partial sum is exact in float. */
        double want = 0.0;
        for (int i = 0; i < n; i++) {
            x[i] = (float)((i * 7919) % 13 - 6);
            want += x[i];
        }
        ldm_arena *arena;
        assert_status(ldm_arena_create(g_ctx, "sum", (uint64_t)(n + groups + 128) * 4, &arena),
                      LDM_OK);
        ldm_buf bx, bp;
        assert_status(ldm_arena_take(arena, (size_t)n, "x", &bx), LDM_OK);
        assert_status(ldm_arena_take(arena, (size_t)groups, "partial", &bp), LDM_OK);
        assert_status(ldm_buf_write(g_ctx, bx, x, (size_t)n), LDM_OK);
        cl_kernel k;
        assert_status(ldm_kernel_get(g_ctx, "selftest.cl", "selftest_sum", "-DWG=32 -DCHUNK=8", &k),
                      LDM_OK);
        cl_uint i = 0;
        assert_status(ldm_arg_int(k, &i, n), LDM_OK);
        assert_status(ldm_arg_buf(k, &i, bx), LDM_OK);
        assert_status(ldm_arg_buf(k, &i, bp), LDM_OK);
        size_t global = (size_t)groups * 32, local = 32;
        assert_status(ldm_launch(g_ctx, k, 1, &global, &local, NULL), LDM_OK);
        assert_status(ldm_buf_read(g_ctx, partial, bp, (size_t)groups), LDM_OK);
        double got = 0.0;
        for (int g = 0; g < groups; g++)
            got += partial[g];
        assert_true(got == want);
        free(x);
        free(partial);
        ldm_arena_destroy(arena);
    }
}

static void broken_kernel_reports_file_options_and_log(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, LDMCL_TEST_CL_DIR);
    cl_program p = NULL;
    assert_status(ldm_program_get(ctx, "broken.cl", "-DSOMETHING=7", &p), LDM_ERR_BUILD);
    assert_null(p);
    const char *msg = ldm_last_error();
    assert_contains(msg, "building kernel source 'broken.cl'");
    assert_contains(msg, "CL_BUILD_PROGRAM_FAILURE");
    assert_contains(msg, "build options: -cl-std=CL1.2");
    assert_contains(msg, "-DSOMETHING=7");
    assert_contains(msg, "build log:");
    assert_contains(msg, "no_such_variable");
    assert_contains(msg, "broken.cl:6"); /* #line markers keep file names and lines */
    assert_int_equal(ldm_ctx_cache_stats(ctx).source_builds, 0);

    /* An error inside an included header names the header and its line. */
    assert_status(ldm_program_get(ctx, "includes_broken.cl", NULL, &p), LDM_ERR_BUILD);
    assert_contains(ldm_last_error(), "also_not_declared");
    assert_contains(ldm_last_error(), "broken.clh:4");
    ldm_ctx_destroy(ctx);
}

static void includes_expand_once(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, LDMCL_TEST_CL_DIR);
    cl_program p;
    assert_status(ldm_program_get(ctx, "nested.cl", NULL, &p), LDM_OK);
    char *src;
    size_t len;
    assert_status(ldm_source_expand(ctx, "nested.cl", &src, &len), LDM_OK);
    assert_int_equal(strlen(src), len);
    const char *first = strstr(src, "constant float twice_constant");
    assert_non_null(first);
    assert_null(strstr(first + 1, "constant float twice_constant"));
    free(src);
    ldm_ctx_destroy(ctx);
}

static void missing_sources_and_kernels_are_named(void **state) {
    (void)state;
    cl_program p;
    cl_kernel k;
    assert_status(ldm_program_get(g_ctx, "no_such_file.cl", NULL, &p), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "kernel source 'no_such_file.cl' is not built into");
    assert_status(ldm_program_get(g_ctx, "../secret.cl", NULL, &p), LDM_ERR_INVALID_ARGUMENT);
    assert_status(ldm_kernel_get(g_ctx, "selftest.cl", "no_such_kernel", NULL, &k),
                  LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "kernel 'no_such_kernel' is not defined in cl/selftest.cl");

    ldm_ctx *ctx = test_ctx_open(NULL, LDMCL_TEST_CL_DIR);
    assert_status(ldm_program_get(ctx, "selftest.cl", NULL, &p), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "is not in the kernel directory");
    assert_contains(ldm_last_error(), LDMCL_TEST_CL_DIR);
    ldm_ctx_destroy(ctx);
}

/* Arguments that do not match the kernel's signature are refused before any is set. */
static void argument_counts_are_checked(void **state) {
    (void)state;
    cl_kernel k;
    assert_status(ldm_kernel_get(g_ctx, "selftest.cl", "selftest_axpby", NULL, &k), LDM_OK);
    ldm_buf none = {NULL, 0};
    /* n, a, x, b, y: seven arguments (a buffer is two); "ifbf" gives five. */
    assert_status(ldm_set_args(k, "ifbf", 1, 2.0, none, 0.5), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(),
                    "kernel 'selftest_axpby' takes 7 arguments, but 5 were given");
    assert_status(ldm_set_args(k, "ifbfbi", 1, 2.0, none, 0.5, none, 3), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "takes 7 arguments, but 8 were given");
    assert_status(ldm_kernel_check_args(k, "selftest_sum", 7), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "kernel 'selftest_sum' were set on kernel 'selftest_axpby'");
    assert_status(ldm_kernel_check_args(k, "selftest_axpby", 7), LDM_OK);
}

static void directory_sources_match_embedded(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, LDMCL_SOURCE_CL_DIR);
    for (int i = 0; i < ldm_embedded_source_count(); i++) {
        const char *name = ldm_embedded_source_name(i);
        char *a, *b;
        size_t la, lb;
        assert_status(ldm_source_expand(g_ctx, name, &a, &la), LDM_OK);
        assert_status(ldm_source_expand(ctx, name, &b, &lb), LDM_OK);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
    }
    char *src;
    size_t len;
    assert_status(ldm_source_expand(ctx, "selftest.cl", &src, &len), LDM_OK);
    assert_contains(src, "#line 1 \"selftest.cl\"");
    assert_contains(src, "#line 1 \"common.clh\"");
    assert_contains(src, "ldm_wg_sum");
    free(src);
    ldm_ctx_destroy(ctx);
}

static void memory_cache_reuses_programs_and_kernels(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    cl_program p1, p2, p3;
    assert_status(ldm_program_get(ctx, "selftest.cl", NULL, &p1), LDM_OK);
    assert_status(ldm_program_get(ctx, "selftest.cl", "", &p2), LDM_OK);
    assert_ptr_equal(p1, p2);
    ldm_cache_stats s = ldm_ctx_cache_stats(ctx);
    assert_int_equal(s.source_builds, 1);
    assert_int_equal(s.memory_hits, 1);
    assert_status(ldm_program_get(ctx, "selftest.cl", "-DWG=16", &p3), LDM_OK);
    assert_ptr_not_equal(p1, p3);
    assert_int_equal(ldm_ctx_cache_stats(ctx).source_builds, 2);

    cl_kernel k1, k2, own;
    assert_status(ldm_kernel_get(ctx, "selftest.cl", "selftest_axpby", NULL, &k1), LDM_OK);
    assert_status(ldm_kernel_get(ctx, "selftest.cl", "selftest_axpby", NULL, &k2), LDM_OK);
    assert_ptr_equal(k1, k2);
    assert_status(ldm_kernel_create(ctx, "selftest.cl", "selftest_axpby", NULL, &own), LDM_OK);
    assert_ptr_not_equal(k1, own);
    clReleaseKernel(own);
    assert_int_equal(ldm_ctx_cache_stats(ctx).source_builds, 2);

    char opts[256];
    assert_status(ldm_build_options(ctx, "-DWG=16", opts, sizeof opts), LDM_OK);
    assert_true(strncmp(opts, "-cl-std=CL1.2 ", 14) == 0);
    assert_contains(opts, " -DWG=16");
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(axpby_computes_at_awkward_sizes),
        cmocka_unit_test(sum_reduces_in_local_memory),
        cmocka_unit_test(broken_kernel_reports_file_options_and_log),
        cmocka_unit_test(includes_expand_once),
        cmocka_unit_test(missing_sources_and_kernels_are_named),
        cmocka_unit_test(argument_counts_are_checked),
        cmocka_unit_test(directory_sources_match_embedded),
        cmocka_unit_test(memory_cache_reuses_programs_and_kernels),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
