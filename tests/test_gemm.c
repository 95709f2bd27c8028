/* tests/test_gemm.c: the CLBlast wrapper against a double-precision host reference at awkward
 * sizes (1, primes, one past powers of two), all four transpose cases, padded leading dimensions,
 * buffer offsets, alpha/beta, and strided-batched GEMM on both of its paths. Elements outside C
 * must stay untouched. A GEMM given too small a temporary buffer fails instead of allocating. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reference.h"
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

typedef struct gemm_case {
    int ta, tb;
    size_t M, N, K;
    size_t lda_pad, ldb_pad, ldc_pad; /* extra elements per row */
    size_t off;                       /* element offset of A, B and C */
    size_t batch;
    float alpha, beta;
} gemm_case;

/* Runs one case on the device and checks every element of the C buffer, padding included.
 * Returns the temporary bytes the case needed. */
static size_t run_case(const gemm_case *c) {
    ldm_gemm_shape s = {c->ta, c->tb, c->M, c->N, c->K, 0, 0, 0};
    s.lda = (c->ta ? c->M : c->K) + c->lda_pad;
    s.ldb = (c->tb ? c->K : c->N) + c->ldb_pad;
    s.ldc = c->N + c->ldc_pad;
    size_t a_rows = c->ta ? c->K : c->M, b_rows = c->tb ? c->N : c->K;
    size_t sa = a_rows * s.lda + 1, sb = b_rows * s.ldb + 2, sc = c->M * s.ldc + 3;
    size_t na = c->off + c->batch * sa, nb = c->off + c->batch * sb, nc = c->off + c->batch * sc;
    float *a = malloc(na * 4), *b = malloc(nb * 4), *cc = malloc(nc * 4), *want = malloc(nc * 4);
    float *got = malloc(nc * 4);
    double *bound = calloc(nc, sizeof *bound), *item = malloc(c->M * c->N * sizeof *item);
    assert_true(a && b && cc && want && got && bound && item);
    ldm_ref_fill_uniform(a, na, 21, -1.0f, 1.0f);
    ldm_ref_fill_uniform(b, nb, 22, -1.0f, 1.0f);
    ldm_ref_fill_uniform(cc, nc, 23, -1.0f, 1.0f);
    memcpy(want, cc, nc * 4);
    for (size_t i = 0; i < c->batch; i++) {
        size_t co = c->off + i * sc;
        ldm_ref_sgemm(&s, c->alpha, a + c->off + i * sa, b + c->off + i * sb, c->beta, want + co,
                      item);
        for (size_t m = 0; m < c->M; m++)
            for (size_t n = 0; n < c->N; n++)
                bound[co + m * s.ldc + n] = item[m * c->N + n];
    }

    size_t temp_bytes = 0;
    assert_status(ldm_gemm_temp_bytes(g_ctx, &s, &temp_bytes), LDM_OK);
    ldm_arena *arena, *temp_arena = NULL;
    assert_status(ldm_arena_create(g_ctx, "gemm test", (na + nb + nc) * 4 + 1024, &arena), LDM_OK);
    ldm_buf A, B, C, temp = {NULL, 0};
    assert_status(ldm_arena_take(arena, na, "A", &A), LDM_OK);
    assert_status(ldm_arena_take(arena, nb, "B", &B), LDM_OK);
    assert_status(ldm_arena_take(arena, nc, "C", &C), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, A, a, na), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, B, b, nb), LDM_OK);
    assert_status(ldm_buf_write(g_ctx, C, cc, nc), LDM_OK);
    if (temp_bytes) {
        assert_status(ldm_arena_create(g_ctx, "gemm temp", temp_bytes, &temp_arena), LDM_OK);
        temp.mem = ldm_arena_mem(temp_arena);
    }
    ldm_buf A1 = {A.mem, A.off + c->off}, B1 = {B.mem, B.off + c->off};
    ldm_buf C1 = {C.mem, C.off + c->off};
    cl_event ev = NULL;
    if (c->batch == 1)
        assert_status(ldm_gemm(g_ctx, &s, c->alpha, A1, B1, c->beta, C1, temp, temp_bytes, &ev),
                      LDM_OK);
    else
        assert_status(ldm_gemm_strided_batched(g_ctx, &s, c->batch, c->alpha, A1, sa, B1, sb,
                                               c->beta, C1, sc, temp, temp_bytes, &ev),
                      LDM_OK);
    assert_non_null(ev);
    double ms = -1;
    assert_status(ldm_event_ms(ev, &ms), LDM_OK);
    assert_true(ms >= 0);
    clReleaseEvent(ev);
    assert_status(ldm_buf_read(g_ctx, got, C, nc), LDM_OK);
    size_t worst;
    /* The rigorous bound for fp32 dot products of length K in any summation order is
     * K u sum|a b| (u = 2^-24), plus rounding of alpha, beta and the final store. */
    double tol = (double)(c->K + 3) * 0x1p-24;
    double ratio = ldm_ref_error_ratio(got, want, bound, nc, tol, 1e-30, &worst);
    if (ratio > 1.0)
        fail_msg("GEMM ta=%d tb=%d %zux%zux%zu batch %zu: element %zu is %.9g, want %.9g "
                 "(%.3g of tolerance)",
                 c->ta, c->tb, c->M, c->N, c->K, c->batch, worst, got[worst], want[worst], ratio);
    ldm_arena_destroy(temp_arena);
    ldm_arena_destroy(arena);
    free(a);
    free(b);
    free(cc);
    free(want);
    free(got);
    free(bound);
    free(item);
    return temp_bytes;
}

static void awkward_sizes_all_transposes(void **state) {
    (void)state;
    const size_t sizes[][3] = {{1, 1, 1},   {1, 77, 5},    {7, 1, 13},
                               {33, 17, 1}, {65, 129, 31}, {127, 3, 257}};
    for (int t = 0; t < 4; t++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            gemm_case c = {t & 1, t >> 1, sizes[i][0], sizes[i][1], sizes[i][2], 0,
                           0,     0,      0,           1,           1.0f,        0.0f};
            run_case(&c);
        }
    }
}

static void padding_offsets_alpha_beta(void **state) {
    (void)state;
    gemm_case c1 = {0, 0, 45, 38, 71, 3, 5, 7, 13, 1, 0.5f, -1.25f};
    run_case(&c1);
    gemm_case c2 = {1, 1, 31, 64, 64, 1, 0, 2, 1, 1, -2.0f, 1.0f};
    run_case(&c2);
    gemm_case c3 = {1, 0, 100, 1, 300, 0, 0, 0, 64, 1, 1.0f, 0.5f};
    run_case(&c3);
}

/* The smallest awkward near-cube n x (n+3) x (n+1) for which CLBlast takes its indirect path and
 * needs a temporary buffer. Where CLBlast switches paths depends on its tuning for the device
 * (about 1000 on pocl's defaults), so the tests look for it instead of assuming it. */
static size_t indirect_size(int trans_b) {
    static const size_t candidates[] = {255, 513, 771, 1001, 1291, 1601, 2049};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        size_t n = candidates[i];
        ldm_gemm_shape s = {0, trans_b, n, n + 3, n + 1, n + 1, trans_b ? n + 1 : n + 3, n + 3};
        size_t temp = 0;
        assert_status(ldm_gemm_temp_bytes(g_ctx, &s, &temp), LDM_OK);
        if (temp > 0) return n;
    }
    fail_msg("CLBlast needs no temporary buffer up to 2049^3 on this device");
    return 0;
}

static void larger_shape_uses_temporary_buffer(void **state) {
    (void)state;
    size_t n = indirect_size(1);
    gemm_case c = {0, 1, n, n + 3, n + 1, 1, 0, 0, 5, 1, 1.0f, 0.0f};
    assert_true(run_case(&c) > 0);
}

static void strided_batched_both_paths(void **state) {
    (void)state;
    /* Small items: CLBlast's direct kernel, one strided-batched call. */
    gemm_case small = {0, 1, 17, 19, 40, 0, 0, 0, 3, 6, 1.0f, 0.0f};
    assert_int_equal(run_case(&small), 0);
    gemm_case small_tn = {1, 0, 9, 77, 8, 2, 1, 0, 0, 3, 0.125f, 1.0f};
    run_case(&small_tn);
    /* Large unaligned items: one plain GEMM per item on the caller's temporary buffer. */
    size_t n = indirect_size(0);
    gemm_case large = {0, 0, n, n + 3, n + 1, 0, 0, 0, 0, 2, 1.0f, 0.0f};
    assert_true(run_case(&large) > 0);
}

static void too_small_temporary_buffer_fails(void **state) {
    (void)state;
    size_t n = indirect_size(1), M = n, N = n + 3, K = n + 1;
    ldm_gemm_shape s = {0, 1, M, N, K, K, K, N};
    size_t need = 0;
    assert_status(ldm_gemm_temp_bytes(g_ctx, &s, &need), LDM_OK);
    assert_true(need > 0);
    ldm_arena *arena;
    assert_status(ldm_arena_create(g_ctx, "operands", (M * K + N * K + M * N) * 4 + 1024, &arena),
                  LDM_OK);
    ldm_buf A, B, C, none = {NULL, 0};
    assert_status(ldm_arena_take(arena, M * K, "A", &A), LDM_OK);
    assert_status(ldm_arena_take(arena, N * K, "B", &B), LDM_OK);
    assert_status(ldm_arena_take(arena, M * N, "C", &C), LDM_OK);
    assert_status(ldm_gemm(g_ctx, &s, 1.0f, A, B, 0.0f, C, none, 0, NULL),
                  LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "needs a temporary buffer of");
    assert_contains(ldm_last_error(), "ldm_gemm_temp_bytes");

    ldm_gemm_shape bad = s;
    bad.lda = 5;
    char expect[64];
    snprintf(expect, sizeof expect, "lda=5 (needs >= %zu)", K);
    assert_status(ldm_gemm(g_ctx, &bad, 1.0f, A, B, 0.0f, C, none, 0, NULL),
                  LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), expect);
    bad = s;
    bad.M = 0;
    assert_status(ldm_gemm_temp_bytes(g_ctx, &bad, &need), LDM_ERR_INVALID_ARGUMENT);
    ldm_arena_destroy(arena);
}

/* CLBlast keeps the programs it builds for the process, each holding its OpenCL context; when the
 * last ldm_ctx closes they go, and the context ends with it (not in CLBlast's destructor at exit,
 * which crashed under the Oclgrind simulator). Runs alone: no other context may be open. */
static void the_last_context_closed_leaves_no_opencl_context(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_gemm_shape s = {0, 0, 8, 8, 8, 8, 8, 8};
    ldm_arena *arena;
    assert_status(ldm_arena_create(ctx, "operands", 3 * 64 * 4, &arena), LDM_OK);
    ldm_buf A, B, C, none = {NULL, 0};
    assert_status(ldm_arena_take(arena, 64, "A", &A), LDM_OK);
    assert_status(ldm_arena_take(arena, 64, "B", &B), LDM_OK);
    assert_status(ldm_arena_take(arena, 64, "C", &C), LDM_OK);
    assert_status(ldm_gemm(ctx, &s, 1.0f, A, B, 0.0f, C, none, 0, NULL), LDM_OK);
    assert_status(ldm_ctx_finish(ctx), LDM_OK);
    ldm_arena_destroy(arena);
    cl_context cl = ldm_ctx_cl_context(ctx);
    assert_int_equal(clRetainContext(cl), CL_SUCCESS);
    ldm_ctx_destroy(ctx);
    /* pocl lets go of its own references from a background thread: on a loaded machine (a CI
     * run's parallel tests) that can lag the release by a moment, so wait for it, up to 10 s */
    cl_uint refs = 0;
    for (int tries = 0; tries < 1000; tries++) {
        assert_int_equal(clGetContextInfo(cl, CL_CONTEXT_REFERENCE_COUNT, sizeof refs, &refs, NULL),
                         CL_SUCCESS);
        if (refs == 1) break;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    assert_int_equal(refs, 1); /* ours alone */
    clReleaseContext(cl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(awkward_sizes_all_transposes),
        cmocka_unit_test(padding_offsets_alpha_beta),
        cmocka_unit_test(larger_shape_uses_temporary_buffer),
        cmocka_unit_test(strided_batched_both_paths),
        cmocka_unit_test(too_small_temporary_buffer_fails),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(the_last_context_closed_leaves_no_opencl_context),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    return failed + cmocka_run_group_tests(alone, NULL, NULL);
}
