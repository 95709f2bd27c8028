/* tools/bench_gemm.c: device copy bandwidth and SGEMM rates through ldmcl's GEMM wrapper.
 * Each timed run sits between two markers on the profiling queue; the device time between them
 * covers every kernel of the call (CLBlast's indirect path enqueues pad/transpose kernels whose
 * events it does not return). Reported: median over --repeat runs after --warmup runs. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

ldm_status bench_copy(ldm_ctx *ctx, const bench_settings *s, double *gbps, FILE *json) {
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    uint64_t bytes = d->is_gpu ? (256ull << 20) : (32ull << 20);
    if (bytes * 2 > d->max_alloc_bytes) bytes = d->max_alloc_bytes / 2;
    ldm_arena *arena;
    BENCH_TRY(ldm_arena_create(ctx, "copy benchmark", 2 * bytes, &arena));
    ldm_buf src, dst;
    size_t n = (size_t)(bytes / 4);
    ldm_status st = ldm_arena_take(arena, n, "source", &src);
    if (st == LDM_OK) st = ldm_arena_take(arena, n, "destination", &dst);
    double *t = calloc((size_t)s->repeat, sizeof *t);
    if (!t) st = LDM_ERR_HOST_MEMORY;
    for (int r = -s->warmup; st == LDM_OK && r < s->repeat; r++) {
        cl_event a, b;
        if ((st = bench_marker(ctx, &a)) != LDM_OK) break;
        if ((st = ldm_buf_copy(ctx, dst, src, n, NULL)) == LDM_OK) st = bench_marker(ctx, &b);
        double ms = 0;
        if (st == LDM_OK) st = bench_span_ms(a, b, &ms);
        if (r >= 0) t[r] = ms;
    }
    if (st == LDM_OK) {
        double ms = bench_median(t, s->repeat);
        *gbps = 2.0 * (double)bytes / (ms * 1e6);
        printf("copy %llu MiB device to device: %.3f ms, %.1f GB/s (bytes read + written)\n",
               (unsigned long long)(bytes >> 20), ms, *gbps);
        if (json) fprintf(json, "  \"copy_gbps\": %.3f,\n", *gbps);
    }
    free(t);
    ldm_arena_destroy(arena);
    return st;
}

typedef struct gemm_case {
    const char *what;
    size_t batch, M, N, K;
    int trans_b;
    int large; /* only on GPUs: too slow for a CPU device */
} gemm_case;

static const gemm_case cases[] = {
    {"square", 1, 256, 256, 256, 0, 0},
    {"square", 1, 1024, 1024, 1024, 0, 0},
    {"awkward", 1, 1000, 1003, 997, 0, 0},
    {"conv 3x3 of seed UNet as GEMM (256 ch, 16x32x32)", 1, 256, 16384, 2304, 0, 1},
    {"conv (384 ch, 16x16x16)", 1, 384, 4096, 3456, 0, 1},
    {"square", 1, 4096, 4096, 4096, 0, 1},
    {"attention Q K^T, 32 x (256x256x40)", 32, 256, 256, 40, 1, 0},
    {"attention Q K^T, 128 x (1024x1024x64)", 128, 1024, 1024, 64, 1, 1},
};

static ldm_status run_case(ldm_ctx *ctx, const bench_settings *s, const gemm_case *c,
                           double *gflops) {
    ldm_gemm_shape g = {0, c->trans_b, c->M, c->N, c->K, c->K, c->trans_b ? c->K : c->N, c->N};
    size_t na = c->M * c->K, nb = c->K * c->N, nc = c->M * c->N, temp_bytes = 0;
    BENCH_TRY(ldm_gemm_temp_bytes(ctx, &g, &temp_bytes));
    uint64_t bytes = 4ull * c->batch * (na + nb + nc) + 3 * 256;
    ldm_arena *arena, *temp_arena = NULL;
    BENCH_TRY(ldm_arena_create(ctx, "GEMM benchmark", bytes, &arena));
    ldm_buf A, B, C, temp = {NULL, 0};
    ldm_status st = ldm_arena_take(arena, c->batch * na, "A", &A);
    if (st == LDM_OK) st = ldm_arena_take(arena, c->batch * nb, "B", &B);
    if (st == LDM_OK) st = ldm_arena_take(arena, c->batch * nc, "C", &C);
    if (st == LDM_OK) st = ldm_buf_fill(ctx, A, 0.01f, c->batch * na);
    if (st == LDM_OK) st = ldm_buf_fill(ctx, B, 0.01f, c->batch * nb);
    if (st == LDM_OK && temp_bytes) {
        st = ldm_arena_create(ctx, "GEMM temporary", temp_bytes, &temp_arena);
        if (st == LDM_OK) temp.mem = ldm_arena_mem(temp_arena);
    }
    double *t = calloc((size_t)s->repeat, sizeof *t);
    if (!t && st == LDM_OK) st = LDM_ERR_HOST_MEMORY;
    for (int r = -s->warmup; st == LDM_OK && r < s->repeat; r++) {
        cl_event a, b;
        if ((st = bench_marker(ctx, &a)) != LDM_OK) break;
        if (c->batch == 1)
            st = ldm_gemm(ctx, &g, 1.0f, A, B, 0.0f, C, temp, temp_bytes, NULL);
        else
            st = ldm_gemm_strided_batched(ctx, &g, c->batch, 1.0f, A, na, B, nb, 0.0f, C, nc, temp,
                                          temp_bytes, NULL);
        if (st == LDM_OK) st = bench_marker(ctx, &b);
        double ms = 0;
        if (st == LDM_OK) st = bench_span_ms(a, b, &ms);
        if (r >= 0) t[r] = ms;
    }
    if (st == LDM_OK) {
        double ms = bench_median(t, s->repeat);
        double flop = 2.0 * (double)c->batch * (double)c->M * (double)c->N * (double)c->K;
        *gflops = flop / (ms * 1e6);
        printf("  %4zu x %5zu x %5zu x %5zu %s: %9.3f ms %9.1f GFLOP/s  (%s)\n", c->batch, c->M,
               c->N, c->K, c->trans_b ? "NT" : "NN", ms, flop / (ms * 1e6), c->what);
    }
    free(t);
    ldm_arena_destroy(temp_arena);
    ldm_arena_destroy(arena);
    return st;
}

ldm_status bench_gemm(ldm_ctx *ctx, const bench_settings *s, double *peak, FILE *json) {
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    printf("SGEMM through CLBlast (row-major, alpha 1, beta 0; batch x M x N x K)%s:\n",
           d->is_gpu ? "" : " - large shapes skipped on a non-GPU device");
    if (json) fprintf(json, "  \"gemm\": [\n");
    *peak = 0;
    int first = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].large && !d->is_gpu) continue;
        double gflops = 0;
        BENCH_TRY(run_case(ctx, s, &cases[i], &gflops));
        if (gflops > *peak) *peak = gflops;
        if (json)
            fprintf(json,
                    "%s    {\"batch\": %zu, \"M\": %zu, \"N\": %zu, \"K\": %zu, \"gflops\": %.3f}",
                    first ? "" : ",\n", cases[i].batch, cases[i].M, cases[i].N, cases[i].K, gflops);
        first = 0;
    }
    if (json) fprintf(json, "\n  ],\n");
    printf("SGEMM peak seen: %.1f GFLOP/s\n", *peak);
    return LDM_OK;
}
