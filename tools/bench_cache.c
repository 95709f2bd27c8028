/* tools/bench_cache.c: is ldmcl's binary kernel cache worth having on this device? Times getting
 * every embedded program (a) built from source with ldmcl's cache off, and (b) loaded from
 * ldmcl's cache, each on a fresh context with an empty in-memory cache. The driver's own caches
 * (pocl's kernel cache, NVIDIA's ComputeCache) stay as they are, so (a) is what a user would
 * see without ours; the first of the (a) runs may include a cold driver compile. Wall clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* Milliseconds to get every embedded .cl program on a new context; *programs counts them. */
static ldm_status time_programs(const bench_settings *s, int cache_on, const char *dir, double *ms,
                                ldm_cache_stats *stats, int *programs) {
    ldm_ctx_options o;
    ldm_ctx_options_init(&o);
    o.platform = s->platform;
    o.device = s->device;
    o.binary_cache = cache_on;
    o.cache_dir = dir;
    o.kernel_dir = NULL;
    ldm_ctx *ctx;
    BENCH_TRY(ldm_ctx_create(&o, &ctx));
    double t0 = bench_now_ms();
    ldm_status st = LDM_OK;
    *programs = 0;
    for (int i = 0; i < ldm_embedded_source_count() && st == LDM_OK; i++) {
        const char *name = ldm_embedded_source_name(i);
        size_t len = strlen(name);
        if (len < 3 || strcmp(name + len - 3, ".cl") != 0) continue; /* headers */
        cl_program p;
        st = ldm_program_get(ctx, name, NULL, &p);
        (*programs)++;
    }
    *ms = bench_now_ms() - t0;
    *stats = ldm_ctx_cache_stats(ctx);
    ldm_ctx_destroy(ctx);
    return st;
}

ldm_status bench_cache(const bench_settings *s) {
    char dir[] = "/tmp/ldmcl-bench-cache-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("ldmcl-bench: mkdtemp");
        return LDM_ERR_IO;
    }
    int n = s->repeat;
    double *src = calloc((size_t)n, sizeof *src), *bin = calloc((size_t)n, sizeof *bin);
    ldm_status st = src && bin ? LDM_OK : LDM_ERR_HOST_MEMORY;
    ldm_cache_stats stats;
    double first_source = 0, fill = 0;
    int programs = 0;
    if (st == LDM_OK) st = time_programs(s, 0, NULL, &first_source, &stats, &programs);
    for (int r = 0; r < n && st == LDM_OK; r++)
        st = time_programs(s, 0, NULL, &src[r], &stats, &programs);
    if (st == LDM_OK) st = time_programs(s, 1, dir, &fill, &stats, &programs);
    unsigned hits = 0;
    for (int r = 0; r < n && st == LDM_OK; r++) {
        st = time_programs(s, 1, dir, &bin[r], &stats, &programs);
        hits += stats.disk_hits;
    }
    if (st == LDM_OK) {
        double ms_src = bench_median(src, n), ms_bin = bench_median(bin, n);
        printf("%d kernel programs (cl/*.cl), wall clock, median of %d fresh contexts:\n", programs,
               n);
        printf("  first build from source:          %9.2f ms\n", first_source);
        printf("  built from source, driver warm:   %9.2f ms\n", ms_src);
        printf("  first run with ldmcl cache (fill):%9.2f ms\n", fill);
        printf("  loaded from ldmcl's binary cache: %9.2f ms (%u cache hits)\n", ms_bin, hits);
        printf("  ldmcl's cache is %.2fx the speed of a warm source build on this device\n",
               ms_src / ms_bin);
    }
    free(src);
    free(bin);
    /* Remove the temporary cache directory and its files. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "ldmcl-bench: could not remove %s\n", dir);
    return st;
}
