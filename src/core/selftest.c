/* src/core/selftest.c: the device self-test. Runs ldmcl's self-test kernels and CLBlast GEMMs at
 * awkward sizes and offsets, and compares every result with a double-precision host reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernel_args.h"
#include "ldmcl/selftest.h"
#include "reference.h"

typedef struct selftest {
    ldm_ctx *ctx;
    ldm_arena *arena;
    ldm_selftest_report_fn report;
    void *user;
    const char *first_failure;
    char first_detail[256];
} selftest;

/* Reports a check; returns LDM_OK whatever the verdict, so later checks still run. */
static void verdict(selftest *t, const char *check, double ratio, size_t worst, const float *got,
                    const float *want) {
    char detail[256];
    int passed = ratio <= 1.0;
    snprintf(detail, sizeof detail,
             "worst error %.3g of tolerance at element %zu (got %.9g, "
             "want %.9g)",
             ratio, worst, got[worst], want[worst]);
    if (!passed && !t->first_failure) {
        t->first_failure = check;
        snprintf(t->first_detail, sizeof t->first_detail, "%s", detail);
    }
    if (t->report) t->report(t->user, check, passed, detail);
}

/* Device buffer of n elements holding host[0..n). */
static ldm_status upload(selftest *t, const float *host, size_t n, const char *what, ldm_buf *b) {
    LDM_TRY(ldm_arena_take(t->arena, n, what, b));
    return ldm_buf_write(t->ctx, *b, host, n);
}

static ldm_status check_axpby(selftest *t) {
    enum { N = 1003, PAD = 7 };
    float x[N + PAD], y[N], want[N], got[N];
    ldm_ref_fill_uniform(x, N + PAD, 1, -2.0f, 2.0f);
    ldm_ref_fill_uniform(y, N, 2, -2.0f, 2.0f);
    for (int i = 0; i < N; i++)
        want[i] = 1.5f * x[PAD + i] - 0.25f * y[i];
    ldm_buf bx, by;
    LDM_TRY(upload(t, x, N + PAD, "x", &bx));
    LDM_TRY(upload(t, y, N, "y", &by));
    bx.off += PAD; /* exercise the offset argument */
    cl_kernel k;
    LDM_TRY(ldm_kernel_get(t->ctx, "selftest.cl", "selftest_axpby", NULL, &k));
    LDM_TRY(ldm_args_selftest_axpby(k, N, 1.5f, bx, -0.25f, by));
    size_t global = N, local = 64;
    LDM_TRY(ldm_launch(t->ctx, k, 1, &global, &local, NULL));
    LDM_TRY(ldm_buf_read(t->ctx, got, by, N));
    size_t worst;
    double r = ldm_ref_error_ratio(got, want, NULL, N, 1e-6, 1e-6, &worst);
    verdict(t, "axpby kernel (n=1003, offset 7)", r, worst, got, want);
    return LDM_OK;
}

static ldm_status check_sum(selftest *t) {
    enum { N = 12345, WG = 64, CHUNK = 4, GROUPS = (N + WG * CHUNK - 1) / (WG * CHUNK) };
    float *x = malloc(N * sizeof *x);
    if (!x) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_ref_fill_uniform(x, N, 3, -1.0f, 1.0f);
    double want_d = 0.0, scale = 0.0;
    for (int i = 0; i < N; i++) {
        want_d += x[i];
        scale += fabs(x[i]);
    }
    ldm_buf bx, bp;
    ldm_status st = upload(t, x, N, "x", &bx);
    free(x);
    LDM_TRY(st);
    LDM_TRY(ldm_arena_take(t->arena, GROUPS, "partial sums", &bp));
    cl_kernel k;
    LDM_TRY(ldm_kernel_get(t->ctx, "selftest.cl", "selftest_sum", "-DWG=64 -DCHUNK=4", &k));
    LDM_TRY(ldm_args_selftest_sum(k, N, bx, bp));
    size_t global = (size_t)GROUPS * WG, local = WG;
    LDM_TRY(ldm_launch(t->ctx, k, 1, &global, &local, NULL));
    float partial[GROUPS];
    LDM_TRY(ldm_buf_read(t->ctx, partial, bp, GROUPS));
    double got_d = 0.0;
    for (int g = 0; g < GROUPS; g++)
        got_d += partial[g];
    float got = (float)got_d, want = (float)want_d;
    double sc = scale;
    size_t worst;
    double r = ldm_ref_error_ratio(&got, &want, &sc, 1, 1e-5, 1e-6, &worst);
    verdict(t, "work-group sum kernel (n=12345, local-memory reduction)", r, worst, &got, &want);
    return LDM_OK;
}

/* One GEMM (batch 1) or strided-batched GEMM against the host reference. */
static ldm_status check_gemm(selftest *t, const char *name, ldm_gemm_shape s, size_t batch,
                             size_t pad) {
    size_t a_rows = s.trans_a ? s.K : s.M, b_rows = s.trans_b ? s.N : s.K;
    size_t sa = a_rows * s.lda + 3, sb = b_rows * s.ldb + 5, sc = s.M * s.ldc + 1;
    size_t na = pad + batch * sa, nb = pad + batch * sb, nc = pad + batch * sc;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
    float *c = malloc(nc * sizeof *c), *want = malloc(nc * sizeof *want);
    float *got = malloc(nc * sizeof *got);
    double *bound = calloc(nc, sizeof *bound);
    ldm_status st = LDM_OK;
    if (!a || !b || !c || !want || !got || !bound) {
        st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        goto done;
    }
    ldm_ref_fill_uniform(a, na, 11, -1.0f, 1.0f);
    ldm_ref_fill_uniform(b, nb, 12, -1.0f, 1.0f);
    ldm_ref_fill_uniform(c, nc, 13, -1.0f, 1.0f);
    memcpy(want, c, nc * sizeof *c);
    const float alpha = 0.75f, beta = -0.5f;
    double *item_bound = malloc(s.M * s.N * sizeof *item_bound);
    if (!item_bound) {
        st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        goto done;
    }
    for (size_t i = 0; i < batch; i++) {
        size_t co = pad + i * sc;
        ldm_ref_sgemm(&s, alpha, a + pad + i * sa, b + pad + i * sb, beta, want + co, item_bound);
        for (size_t m = 0; m < s.M; m++)
            for (size_t n = 0; n < s.N; n++)
                bound[co + m * s.ldc + n] = item_bound[m * s.N + n];
    }
    free(item_bound);
    ldm_buf ba, bb, bc, temp = {NULL, 0};
    size_t temp_bytes = 0;
    if ((st = upload(t, a, na, "A", &ba)) != LDM_OK ||
        (st = upload(t, b, nb, "B", &bb)) != LDM_OK ||
        (st = upload(t, c, nc, "C", &bc)) != LDM_OK ||
        (st = ldm_gemm_temp_bytes(t->ctx, &s, &temp_bytes)) != LDM_OK)
        goto done;
    ldm_arena *temp_arena = NULL; /* CLBlast takes its temporary buffer without an offset */
    if (temp_bytes) {
        if ((st = ldm_arena_create(t->ctx, "GEMM temporary", temp_bytes, &temp_arena)) != LDM_OK)
            goto done;
        temp.mem = ldm_arena_mem(temp_arena);
    }
    ba.off += pad;
    bb.off += pad;
    bc.off += pad;
    st = batch == 1 ? ldm_gemm(t->ctx, &s, alpha, ba, bb, beta, bc, temp, temp_bytes, NULL)
                    : ldm_gemm_strided_batched(t->ctx, &s, batch, alpha, ba, sa, bb, sb, beta, bc,
                                               sc, temp, temp_bytes, NULL);
    bc.off -= pad;
    if (st == LDM_OK) st = ldm_buf_read(t->ctx, got, bc, nc);
    ldm_arena_destroy(temp_arena);
    if (st != LDM_OK) goto done;
    /* Elements outside C's rows (padding, ldc gaps) must be untouched: their bound is 0 and the
     * absolute tolerance is tiny, so any write there fails the check. */
    size_t worst;
    double r = ldm_ref_error_ratio(got, want, bound, nc, 1e-4, 1e-6, &worst);
    verdict(t, name, r, worst, got, want);
done:
    free(a);
    free(b);
    free(c);
    free(want);
    free(got);
    free(bound);
    return st;
}

static ldm_status run_checks(selftest *t) {
    LDM_TRY(check_axpby(t));
    LDM_TRY(check_sum(t));
    ldm_gemm_shape nn = {0, 0, 37, 53, 29, 29, 53, 53};
    LDM_TRY(check_gemm(t, "SGEMM NN 37x53x29", nn, 1, 0));
    ldm_gemm_shape tn = {1, 0, 130, 70, 300, 131, 72, 75};
    LDM_TRY(check_gemm(t, "SGEMM TN 130x70x300, padded rows, offsets", tn, 1, 9));
    ldm_gemm_shape nt = {0, 1, 256, 256, 256, 256, 256, 256};
    LDM_TRY(check_gemm(t, "SGEMM NT 256x256x256", nt, 1, 0));
    ldm_gemm_shape bt = {0, 1, 17, 19, 40, 40, 40, 19};
    LDM_TRY(check_gemm(t, "strided-batched SGEMM 5 x NT 17x19x40", bt, 5, 4));
    return LDM_OK;
}

ldm_status ldm_selftest_run(ldm_ctx *ctx, ldm_selftest_report_fn report, void *user) {
    selftest t = {ctx, NULL, report, user, NULL, ""};
    LDM_TRY(ldm_arena_create(ctx, "selftest", 4u << 20, &t.arena));
    ldm_status st = run_checks(&t);
    ldm_arena_destroy(t.arena);
    if (st != LDM_OK) return st;
    if (t.first_failure)
        return LDM_FAIL(LDM_ERR_SELFTEST,
                        "device '%s' (driver %s) computed a wrong result in the self-test '%s': "
                        "%s. Results on this device cannot be trusted; try another driver or "
                        "device, and report it with `ldmcl-bench --list-devices`",
                        ctx->info.device_name, ctx->info.driver_version, t.first_failure,
                        t.first_detail);
    return LDM_OK;
}
