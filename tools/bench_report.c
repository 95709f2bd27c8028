/* tools/bench_report.c: ldmcl-bench --report, one command that measures a device for an issue or
 * the README's device table: its facts and the tunables in effect, the self-test, the op tests
 * (each op against PyTorch's references in both kernel layouts; run from the build tree, where
 * they sit beside ldmcl-bench), copy bandwidth and SGEMM rate, every op's share of those peaks,
 * and the seed UNet's training step (batch 16 unless --train-batch) and sampling step (batch 2,
 * one classifier-free-guidance step) with the device memory held; then a summary table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* The op tests: every op family against tests/ref (tests/op_harness.h). */
static const char *const op_tests[] = {
    "test_elementwise", "test_reduce",    "test_pool",      "test_layout", "test_misc",
    "test_optim",       "test_diffusion", "test_rng",       "test_vq",     "test_linear",
    "test_conv",        "test_norm",      "test_attention",
};
#define N_OP_TESTS ((int)(sizeof op_tests / sizeof *op_tests))

typedef struct report_counts {
    int selftest_failed; /* checks that failed */
    int tests_run, tests_passed;
} report_counts;

static void count_check(void *user, const char *check, int passed, const char *detail) {
    report_counts *r = user;
    if (!passed) r->selftest_failed++;
    printf("  %-4s %s: %s\n", passed ? "ok" : "FAIL", check, detail);
}

/* The folder of the running program's tests: <folder of ldmcl-bench>/tests, in buf. */
static int default_tests_dir(char *buf, size_t size) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = '\0';
    return snprintf(buf, size, "%s/tests", exe) < (int)size;
}

/* Runs one op test on the report's device; prints its result and, when it fails, the lines
 * that say why. 1 when it passed. */
static int run_op_test(const char *path, const char *name) {
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "'%s' 2>&1", path);
    double t0 = bench_now_ms();
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("  %-18s could not be started\n", name);
        return 0;
    }
    char line[1024], why[5][256];
    int n_why = 0, n_ops = 0;
    while (fgets(line, sizeof line, p)) {
        if (strstr(line, "worst relative error")) n_ops++;
        if ((strstr(line, "error") && !strstr(line, "worst relative error")) ||
            strstr(line, "FAILED") || strstr(line, "Failure")) {
            if (n_why < 5) snprintf(why[n_why++], sizeof why[0], "%.250s", line);
        }
    }
    int status = pclose(p);
    int ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("  %-18s %-6s %6.1f s", name, ok ? "ok" : "FAILED", (bench_now_ms() - t0) / 1e3);
    if (n_ops) printf("  (%d ops against references)", n_ops);
    printf("\n");
    for (int i = 0; i < n_why && !ok; i++)
        printf("      %s%s", why[i], strchr(why[i], '\n') ? "" : "\n");
    return ok;
}

static void op_tests_run(const ldm_device_info *d, const char *dir, report_counts *r) {
    char deflt[4096], index[16], path[4200];
    if (!dir && default_tests_dir(deflt, sizeof deflt)) dir = deflt;
    snprintf(path, sizeof path, "%s/%s", dir ? dir : ".", op_tests[0]);
    if (dir && strchr(dir, '\'')) {
        printf("op tests: not run: the folder '%s' has a quote in its name\n", dir);
        return;
    }
    if (!dir || access(path, X_OK) != 0) {
        printf("op tests: not run: no %s (they are built with the tests, beside ldmcl-bench in the "
               "build folder; or pass --op-tests DIR)\n",
               path);
        return;
    }
    printf("op tests (%s; every op against PyTorch's references, kernels laid out for CPUs and "
           "for GPUs):\n",
           dir);
    /* the tests open their contexts by these variables: this device, and nothing else chosen */
    snprintf(index, sizeof index, "%d", d->global_index);
    setenv("LDMCL_CL_DEVICE", index, 1);
    unsetenv("LDMCL_CL_PLATFORM");
    unsetenv("LDMCL_CPU_KERNELS");
    unsetenv("LDMCL_TEST_SIMULATOR");
    for (int i = 0; i < N_OP_TESTS; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, op_tests[i]);
        r->tests_run++;
        r->tests_passed += run_op_test(path, op_tests[i]);
    }
}

static double gib(uint64_t bytes) {
    return (double)bytes / (1024.0 * 1024.0 * 1024.0);
}

ldm_status bench_report(ldm_ctx *ctx, const bench_settings *s, int train_batch,
                        const char *op_tests_dir, FILE *json) {
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    char tunables[1024];
    report_counts r = {0, 0, 0};
    bench_print_device(d);
    ldm_ctx_tunables_text(ctx, tunables, sizeof tunables);
    printf("  kernels laid out for %s; tunables: %s\n", ldm_ctx_cpu_kernels(ctx) ? "CPUs" : "GPUs",
           tunables);
    printf("self-test:\n");
    ldm_status st = ldm_selftest_run(ctx, count_check, &r);
    if (st != LDM_OK && st != LDM_ERR_SELFTEST) return st;
    op_tests_run(d, op_tests_dir, &r);
    double copy_gbps = 0, gemm_gflops = 0;
    BENCH_TRY(bench_copy(ctx, s, &copy_gbps, json));
    BENCH_TRY(bench_gemm(ctx, s, &gemm_gflops, json));
    BENCH_TRY(bench_ops(ctx, s, d->is_gpu, gemm_gflops, copy_gbps, json));
    bench_step train = {0, 0, 0}, sample = {0, 0, 0};
    printf("seed UNet (celebhq_text_cond):\n");
    BENCH_TRY(bench_unet_sample_step(ctx, s, 2, json, &sample));
    BENCH_TRY(bench_unet_train_step(ctx, s, train_batch, 0, json, &train));

    char selftest[32], tests[32];
    snprintf(selftest, sizeof selftest, "%s", r.selftest_failed ? "FAILED" : "passed");
    if (r.tests_run)
        snprintf(tests, sizeof tests, "%d of %d passed", r.tests_passed, r.tests_run);
    else
        snprintf(tests, sizeof tests, "not run");
    printf("\nsummary (device time, median of %d after %d warm-up):\n\n", s->repeat, s->warmup);
    printf("| device | driver | self-test | op tests | copy GB/s | SGEMM GFLOP/s | train step, "
           "batch %d | device memory | sampling step, batch 2 | device memory |\n",
           train.batch);
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    printf("| %s (%s) | %s | %s | %s | %.1f | %.1f | %.1f ms | %.2f GiB | %.1f ms | %.2f GiB |\n",
           d->device_name, d->platform_name, d->driver_version, selftest, tests, copy_gbps,
           gemm_gflops, train.ms, gib(train.device_bytes), sample.ms, gib(sample.device_bytes));
    if (json)
        fprintf(json,
                "  \"report\": {\"selftest_failed\": %d, \"op_tests_run\": %d, "
                "\"op_tests_passed\": %d, \"tunables\": \"%s\", \"train_batch\": %d, "
                "\"train_ms\": %.3f, \"train_device_bytes\": %llu, \"sample_batch\": 2, "
                "\"sample_ms\": %.3f, \"sample_device_bytes\": %llu},\n",
                r.selftest_failed, r.tests_run, r.tests_passed, tunables, train.batch, train.ms,
                (unsigned long long)train.device_bytes, sample.ms,
                (unsigned long long)sample.device_bytes);
    if (r.selftest_failed || r.tests_passed < r.tests_run) {
        fprintf(stderr, "ldmcl-bench: the report found failures (%s self-test, op tests %s)\n",
                selftest, tests);
        return LDM_ERR_SELFTEST;
    }
    return LDM_OK;
}
