/* tools/bench.h: what the parts of ldmcl-bench share: settings, median timing, and output. */
#ifndef LDMCL_TOOLS_BENCH_H
#define LDMCL_TOOLS_BENCH_H

#include <ldmcl/ldmcl.h>

/* Returns the status of expr from the calling function when it is not LDM_OK. */
#define BENCH_TRY(expr)                                                                            \
    do {                                                                                           \
        ldm_status bench_try_status_ = (expr);                                                     \
        if (bench_try_status_ != LDM_OK) return bench_try_status_;                                 \
    } while (0)

typedef struct bench_settings {
    int warmup; /* untimed runs before measuring */
    int repeat; /* timed runs; the median is reported */
    const char *platform, *device;
} bench_settings;

/* Median of n values (sorts them). */
double bench_median(double *v, int n);

/* Wall-clock milliseconds from a monotonic clock. */
double bench_now_ms(void);

/* Copy bandwidth and SGEMM rates at fixed shapes, from profiling events. */
ldm_status bench_copy(ldm_ctx *ctx, const bench_settings *s);
ldm_status bench_gemm(ldm_ctx *ctx, const bench_settings *s);

/* Program build from source against a load from ldmcl's binary cache, on fresh contexts. */
ldm_status bench_cache(const bench_settings *s);

#endif
