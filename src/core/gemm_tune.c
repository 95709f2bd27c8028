/* src/core/gemm_tune.c: measures CLBlast GEMM parameters for this device (ldm_gemm_tune).
 *
 * CLBlast runs a GEMM through its "direct" kernel below a size threshold and through its tiled
 * "indirect" kernel (Xgemm, on padded copies) above it; both kernels take parameters from its
 * database, which has none for CPU drivers. The search:
 *   1. times CLBlast's defaults on the workload (this must come first: an override cannot be
 *      undone within a process);
 *   2. with every GEMM forced onto the indirect path, checks and times each candidate Xgemm
 *      parameter set on the workload's large GEMMs and keeps the fastest;
 *   3. with that set, times thresholds for the indirect path on the whole workload.
 * Candidates that CLBlast rejects or that compute a wrong result (checked against a host
 * product) are skipped. The fastest of the defaults and the tuned sets is written and applied.
 * The workload is the GEMMs of small-UNet training: 3x3 convolutions (forward, weight gradient,
 * input gradient) at 16 to 64 channels, projections, and attention's batched products. Times
 * are wall clock around a finished queue (the indirect path is several kernels), median of a few
 * runs per shape. */
#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

typedef struct tune_shape {
    size_t M, N, K;
    int ta, tb;
    size_t batch;
} tune_shape;

/* cout x (cin*9) x positions: a 3x3 convolution's forward, weight-gradient and input-gradient
 * GEMMs as conv.c runs them. */
#define CONV(cout, cin9, np)                                                                       \
    {cout, np, cin9, 0, 0, 1}, {cout, cin9, np, 0, 1, 1}, {                                        \
        cin9, np, cout, 1, 0, 1                                                                    \
    }

static const tune_shape full_shapes[] = {
    CONV(16, 144, 25088), /* 16 channels at 28x28, batch 32 */
    CONV(32, 288, 6272),  /* 32 at 14x14, batch 32 */
    CONV(32, 288, 3136),  /* 32 at 7x7, batch 64 */
    CONV(64, 576, 3136),  /* 64 at 7x7, batch 64 */
    CONV(64, 576, 784),   /* 64 at 7x7, batch 16 (sampling) */
    {3136, 64, 64, 0, 1, 1},  {3136, 64, 64, 0, 0, 1},
    {64, 64, 3136, 1, 0, 1}, /* projections over 3136 tokens */
    {3136, 256, 64, 0, 1, 1}, {49, 49, 16, 0, 1, 256},
    {49, 16, 49, 0, 0, 256}, /* attention, 64 images x 4 heads of 49 tokens */
};

static const tune_shape quick_shapes[] = {
    CONV(16, 72, 600),
    {40, 40, 8, 0, 1, 8},
};

/* Xgemm candidates: the tiles and vector widths that suit CPUs; the rest fixed. Order of
 * CLBlast 1.5's Xgemm parameters. */
static const char *const xgemm_names[] = {"GEMMK", "KREG",  "KWG",   "KWI", "MDIMA", "MDIMC",
                                          "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                          "STRM",  "STRN",  "VWM",   "VWN"};
#define XGEMM_PARAMS (sizeof xgemm_names / sizeof *xgemm_names)

static void xgemm_candidate(int mwg, int nwg, int vwm, int vwn, int ndimc,
                            ldm_gemm_tuning_kernel *k) {
    const size_t values[XGEMM_PARAMS] = {
        0,           1, 32, 2, 8, 8,           (size_t)mwg, (size_t)ndimc, (size_t)ndimc,
        (size_t)nwg, 0, 0,  0, 0, (size_t)vwm, (size_t)vwn};
    memset(k, 0, sizeof *k);
    snprintf(k->kernel, sizeof k->kernel, "Xgemm");
    k->n = (int)XGEMM_PARAMS;
    for (size_t i = 0; i < XGEMM_PARAMS; i++) {
        snprintf(k->names[i], sizeof k->names[i], "%s", xgemm_names[i]);
        k->values[i] = values[i];
    }
}

static void routine_candidate(size_t threshold, ldm_gemm_tuning_kernel *k) {
    memset(k, 0, sizeof *k);
    snprintf(k->kernel, sizeof k->kernel, "GemmRoutine");
    snprintf(k->names[0], sizeof k->names[0], "XGEMM_MIN_INDIRECT_SIZE");
    k->values[0] = threshold;
    k->n = 1;
}

typedef struct tune_bufs {
    ldm_ctx *ctx;
    cl_mem a, b, c, temp;
    size_t temp_bytes;
} tune_bufs;

static ldm_status make_buffer(ldm_ctx *ctx, size_t bytes, cl_mem *out) {
    cl_int err;
    *out = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clCreateBuffer", "a GEMM tuning buffer of %zu bytes", bytes);
    return LDM_OK;
}

static void shape_of(const tune_shape *t, ldm_gemm_shape *s) {
    *s = (ldm_gemm_shape){t->ta, t->tb, t->M, t->N, t->K, t->ta ? t->M : t->K, t->tb ? t->K : t->N,
                          t->N};
}

/* Runs one shape once (all its batch items) and waits. */
static ldm_status run_shape(tune_bufs *b, const tune_shape *t) {
    ldm_gemm_shape s;
    shape_of(t, &s);
    size_t need = 0;
    LDM_TRY(ldm_gemm_temp_bytes(b->ctx, &s, &need));
    if (need > b->temp_bytes) {
        if (b->temp) clReleaseMemObject(b->temp);
        b->temp = NULL;
        b->temp_bytes = 0;
        LDM_TRY(make_buffer(b->ctx, need, &b->temp));
        b->temp_bytes = need;
    }
    ldm_buf A = {b->a, 0}, B = {b->b, 0}, C = {b->c, 0}, T = {b->temp, 0};
    LDM_TRY(ldm_gemm_strided_batched(b->ctx, &s, t->batch, 1.0f, A, t->M * t->K, B, t->K * t->N,
                                     0.0f, C, t->M * t->N, T, b->temp_bytes, NULL));
    return ldm_ctx_finish(b->ctx);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Sum over the shapes of the median of `reps` timed runs after one untimed run, in ms. */
static ldm_status time_shapes(tune_bufs *b, const tune_shape *shapes, size_t n, int reps,
                              double *total_ms) {
    double sum = 0, times[9];
    if (reps > 9) reps = 9;
    for (size_t i = 0; i < n; i++) {
        LDM_TRY(run_shape(b, &shapes[i]));
        for (int r = 0; r < reps; r++) {
            double t0 = ldm_now_s();
            LDM_TRY(run_shape(b, &shapes[i]));
            times[r] = 1e3 * (ldm_now_s() - t0);
        }
        qsort(times, (size_t)reps, sizeof *times, cmp_double);
        sum += times[reps / 2];
    }
    *total_ms = sum;
    return LDM_OK;
}

/* Checks the current parameters on awkward sizes (not multiples of any tile) in all three
 * orientations against a host product. */
static ldm_status check_results(tune_bufs *b) {
    const size_t M = 37, N = 301, K = 129; /* M*N*K above every candidate threshold's cube */
    static const int orient[3][2] = {{0, 0}, {0, 1}, {1, 0}};
    float *ha = malloc(M * K * sizeof *ha), *hb = malloc(K * N * sizeof *hb);
    float *hc = malloc(M * N * sizeof *hc);
    ldm_status st = ha && hb && hc ? LDM_OK : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    uint32_t seed = 12345;
    for (size_t i = 0; st == LDM_OK && i < M * K + K * N; i++) {
        seed = seed * 1664525u + 1013904223u;
        float v = (float)(seed >> 8) / 16777216.0f - 0.5f;
        if (i < M * K)
            ha[i] = v;
        else
            hb[i - M * K] = v;
    }
    if (st == LDM_OK) st = ldm_buf_write(b->ctx, (ldm_buf){b->a, 0}, ha, M * K);
    if (st == LDM_OK) st = ldm_buf_write(b->ctx, (ldm_buf){b->b, 0}, hb, K * N);
    for (int o = 0; o < 3 && st == LDM_OK; o++) {
        int ta = orient[o][0], tb = orient[o][1];
        tune_shape t = {M, N, K, ta, tb, 1};
        st = run_shape(b, &t);
        if (st == LDM_OK) st = ldm_buf_read(b->ctx, hc, (ldm_buf){b->c, 0}, M * N);
        for (size_t i = 0; st == LDM_OK && i < M; i++)
            for (size_t j = 0; j < N; j++) {
                double ref = 0, mag = 0;
                for (size_t k = 0; k < K; k++) {
                    double x = ta ? ha[k * M + i] : ha[i * K + k];
                    double y = tb ? hb[j * K + k] : hb[k * N + j];
                    ref += x * y;
                    mag += fabs(x * y);
                }
                if (!(fabs(hc[i * N + j] - ref) <= 1e-5 * mag + 1e-6)) {
                    st = LDM_FAIL(LDM_ERR_SELFTEST,
                                  "GEMM %zux%zux%zu (trans %d %d) computed %g at (%zu, %zu), "
                                  "expected %g",
                                  M, N, K, ta, tb, (double)hc[i * N + j], i, j, ref);
                    break;
                }
            }
    }
    free(ha);
    free(hb);
    free(hc);
    return st;
}

static void describe(const ldm_gemm_tuning *t, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    if (t->n == 0) snprintf(buf, size, "CLBlast's defaults");
    for (int i = 0; i < t->n; i++) {
        const ldm_gemm_tuning_kernel *k = &t->kernels[i];
        used += (size_t)snprintf(buf + used, used < size ? size - used : 0, "%s%s", i ? "; " : "",
                                 k->kernel);
        for (int j = 0; j < k->n; j++)
            used += (size_t)snprintf(buf + used, used < size ? size - used : 0, " %s=%zu",
                                     k->names[j], k->values[j]);
    }
}

/* Applies a candidate; a rejection is counted and reported as *ok = 0. */
static ldm_status try_apply(ldm_ctx *ctx, const ldm_gemm_tuning_kernel *k, int *ok) {
    *ok = ldm_gemm_tuning_apply_kernel(ctx, k) == LDM_OK;
    if (!*ok) ldm_log(ctx, LDM_LOG_DEBUG, "GEMM tuning: %s", ldm_last_error());
    return LDM_OK;
}

static ldm_status search(tune_bufs *b, int quick, ldm_gemm_tune_report *r, ldm_gemm_tuning *best) {
    const tune_shape *shapes = quick ? quick_shapes : full_shapes;
    size_t n_shapes = quick ? sizeof quick_shapes / sizeof *quick_shapes
                            : sizeof full_shapes / sizeof *full_shapes;
    int reps = quick ? 1 : 3;
    ldm_ctx *ctx = b->ctx;

    static const int grid[][5] = {
        {32, 64, 4, 4, 8}, {64, 64, 4, 4, 8}, {64, 32, 4, 4, 8},
        {32, 32, 4, 4, 8}, {32, 32, 4, 2, 8}, {64, 64, 4, 4, 16},
    };
    static const size_t thresholds[] = {64, 128, 256, 512};
    size_t n_grid = quick ? 2 : sizeof grid / sizeof *grid;
    size_t n_thr = quick ? 1 : sizeof thresholds / sizeof *thresholds;
    int total = 1 + (int)n_thr;
    for (size_t g = 0; g < n_grid; g++)
        total += (size_t)(8 * grid[g][4]) <= ctx->info.max_work_group_size;
    ldm_log(ctx, LDM_LOG_INFO,
            "GEMM tuning: timing %d parameter sets on %zu GEMM shapes of small-UNet training "
            "(each about %d times; a minute or two on a 2-core CPU)",
            total, n_shapes, reps);
    LDM_TRY(time_shapes(b, shapes, n_shapes, reps, &r->default_ms));
    r->tuned_ms = r->default_ms;
    r->candidates = 1;
    memset(best, 0, sizeof *best);
    ldm_log(ctx, LDM_LOG_INFO, "GEMM tuning: set 1 of %d, CLBlast's defaults: %.1f ms", total,
            r->default_ms);

    /* 2. Xgemm parameter sets, every GEMM on the indirect path. */
    ldm_gemm_tuning_kernel all_indirect, xg, best_xg;
    routine_candidate(1, &all_indirect);
    int ok;
    LDM_TRY(try_apply(ctx, &all_indirect, &ok));
    if (!ok) return LDM_OK; /* this CLBlast has no such knob: keep the defaults */
    /* grid: MWG, NWG, VWM, VWN, NDIMC (= NDIMB). VWM = 2 measured 1.2-1.5x slower on pocl 3.1
     * (AMD EPYC, AVX-512), so it is left out. */
    double best_xg_ms = INFINITY;
    for (size_t g = 0; g < n_grid; g++) {
        if ((size_t)(8 * grid[g][4]) > ctx->info.max_work_group_size) continue;
        xgemm_candidate(grid[g][0], grid[g][1], grid[g][2], grid[g][3], grid[g][4], &xg);
        r->candidates++;
        LDM_TRY(try_apply(ctx, &xg, &ok));
        double ms = INFINITY;
        if (ok && check_results(b) != LDM_OK) {
            ldm_log(ctx, LDM_LOG_WARN, "GEMM tuning: a candidate is wrong on this device: %s",
                    ldm_last_error());
            ok = 0;
        }
        if (ok && time_shapes(b, shapes, quick ? n_shapes : 12, reps, &ms) != LDM_OK) ok = 0;
        char what[256];
        describe(&(ldm_gemm_tuning){1, {xg}}, what, sizeof what);
        if (!ok) {
            r->rejected++;
            ldm_log(ctx, LDM_LOG_INFO, "GEMM tuning: set %d of %d (%s): not usable here",
                    r->candidates, total, what);
            continue;
        }
        ldm_log(ctx, LDM_LOG_INFO, "GEMM tuning: set %d of %d (%s): %.1f ms for the convolutions",
                r->candidates, total, what, ms);
        if (ms < best_xg_ms) {
            best_xg_ms = ms;
            best_xg = xg;
        }
    }
    if (best_xg_ms == INFINITY) return LDM_OK;
    LDM_TRY(try_apply(ctx, &best_xg, &ok));
    if (!ok) return LDM_OK;

    /* 3. Where the indirect path starts (m*n*k >= threshold^3). */
    for (size_t i = 0; i < n_thr; i++) {
        ldm_gemm_tuning_kernel routine;
        routine_candidate(quick ? 1 : thresholds[i], &routine);
        r->candidates++;
        LDM_TRY(try_apply(ctx, &routine, &ok));
        double ms = INFINITY;
        if (ok && time_shapes(b, shapes, n_shapes, reps, &ms) != LDM_OK) ok = 0;
        if (!ok) {
            r->rejected++;
            continue;
        }
        ldm_log(ctx, LDM_LOG_INFO,
                "GEMM tuning: set %d of %d (the best Xgemm set from GEMMs of %zu^3): %.1f ms",
                r->candidates, total, routine.values[0], ms);
        if (ms < r->tuned_ms) {
            r->tuned_ms = ms;
            best->n = 2;
            best->kernels[0] = best_xg;
            best->kernels[1] = routine;
        }
    }
    return LDM_OK;
}

ldm_status ldm_gemm_tune(ldm_ctx *ctx, int quick, ldm_gemm_tune_report *r) {
    memset(r, 0, sizeof *r);
    LDM_TRY(ldm_gemm_tuning_path(ctx, r->path, sizeof r->path));
    if (ldm_gemm_tuning_overridden())
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "GEMM tuning must measure CLBlast's defaults first, but this process has "
                        "already changed them: open the context with no_gemm_tuning = 1 and tune "
                        "before anything else");
    const tune_shape *shapes = quick ? quick_shapes : full_shapes;
    size_t n_shapes = quick ? sizeof quick_shapes / sizeof *quick_shapes
                            : sizeof full_shapes / sizeof *full_shapes;
    size_t max_a = 37 * 129, max_b = 129 * 301, max_c = 37 * 301;
    for (size_t i = 0; i < n_shapes; i++) {
        const tune_shape *t = &shapes[i];
        if (t->batch * t->M * t->K > max_a) max_a = t->batch * t->M * t->K;
        if (t->batch * t->K * t->N > max_b) max_b = t->batch * t->K * t->N;
        if (t->batch * t->M * t->N > max_c) max_c = t->batch * t->M * t->N;
    }
    tune_bufs b = {ctx, NULL, NULL, NULL, NULL, 0};
    ldm_gemm_tuning best;
    ldm_status st = make_buffer(ctx, max_a * sizeof(float), &b.a);
    if (st == LDM_OK) st = make_buffer(ctx, max_b * sizeof(float), &b.b);
    if (st == LDM_OK) st = make_buffer(ctx, max_c * sizeof(float), &b.c);
    if (st == LDM_OK) st = ldm_buf_fill(ctx, (ldm_buf){b.a, 0}, 0.5f, max_a);
    if (st == LDM_OK) st = ldm_buf_fill(ctx, (ldm_buf){b.b, 0}, 0.25f, max_b);
    if (st == LDM_OK) st = search(&b, quick, r, &best);
    if (st == LDM_OK) st = ldm_gemm_tuning_apply(ctx, &best); /* what was last applied may differ */
    if (st == LDM_OK && best.n) st = check_results(&b);
    if (st == LDM_OK) {
        describe(&best, r->chosen, sizeof r->chosen);
        char comment[256];
        snprintf(comment, sizeof comment,
                 "measured by ldm_gemm_tune%s: CLBlast's defaults %.1f ms, these %.1f ms on its "
                 "workload",
                 quick ? " (quick)" : "", r->default_ms, r->tuned_ms);
        st = ldm_gemm_tuning_save(ctx, &best, comment);
    }
    if (st == LDM_OK) ctx->gemm_tuned = best.n > 0;
    if (b.a) clReleaseMemObject(b.a);
    if (b.b) clReleaseMemObject(b.b);
    if (b.c) clReleaseMemObject(b.c);
    if (b.temp) clReleaseMemObject(b.temp);
    return st;
}
