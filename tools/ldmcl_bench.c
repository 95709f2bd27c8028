/* tools/ldmcl_bench.c: ldmcl-bench, the vendor-portable benchmark and device tool.
 *   --list-devices   every OpenCL platform and device with the figures ldmcl relies on
 *   --self-test      checks this device's results against host references
 *   --bench LIST     copy, gemm, ops, unet, ae, ae-celebhq, clip, cache (comma-separated, or all):
 *                    device times from OpenCL profiling events, after warm-up, median of
 *                    repeats; allreduce, job-step under mpirun (bench_job.c: wall-clock medians)
 *   --json FILE      the same figures as JSON
 *   --report         the device measured for an issue or the README (bench_report.c)
 *   --tune-gemm      measures CLBlast GEMM parameters for the device and keeps them (gemm.h)
 *   --tune           measures the kernels' tunables for the device and keeps them (bench_tune.c) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "train_job.h"
#include "cli_options.h"

/* Under mpirun (--bench allreduce, job-step): this process's rank of the job (alone: of one). */
static ldm_job *g_job;

/* user: 1 (-v) prints every note, 2 the notes and warnings but not the debugging ones (what
 * --tune-gemm shows of its progress), 0 warnings only. */
static void print_log(void *user, ldm_log_level level, const char *message) {
    int verbose = *(int *)user;
    if (level == LDM_LOG_WARN || verbose == 1 || (verbose == 2 && level == LDM_LOG_INFO))
        fprintf(stderr, "ldmcl: %s%s\n", level == LDM_LOG_WARN ? "warning: " : "", message);
}

static const char *yes_no(int v) {
    return v ? "yes" : "no";
}

void bench_print_device(const ldm_device_info *d) {
    char g[32], a[32], l[32];
    printf("device %d: platform %d \"%s\" (%s), device %d\n", d->global_index, d->platform_index,
           d->platform_name, d->platform_version, d->device_index);
    printf("  name            %s (%s, %s)\n", d->device_name, d->device_vendor,
           d->is_gpu   ? "GPU"
           : d->is_cpu ? "CPU"
                       : "other");
    printf("  version         %s; driver %s; %s\n", d->device_version, d->driver_version,
           d->opencl_c_version);
    printf("  compute units   %u; max work-group %zu\n", d->compute_units, d->max_work_group_size);
    printf("  global memory   %s; max allocation %s\n",
           ldm_format_bytes(d->global_mem_bytes, g, 32),
           ldm_format_bytes(d->max_alloc_bytes, a, 32));
    printf("  local memory    %s%s\n", ldm_format_bytes(d->local_mem_bytes, l, 32),
           d->local_mem_is_global ? " (emulated in global memory)" : "");
    printf("  fp16 %s, fp64 %s, subgroups %s\n", yes_no(d->has_fp16), yes_no(d->has_fp64),
           yes_no(d->has_subgroups));
}

static int list_devices(void) {
    ldm_device_info *list = NULL;
    int n = 0;
    ldm_status st = ldm_list_devices(&list, &n);
    if (st != LDM_OK) {
        fprintf(stderr, "ldmcl-bench: %s\n", ldm_last_error());
        return 1;
    }
    if (n == 0) {
        printf("No OpenCL device found. Install a driver (for the CPU: apt install "
               "pocl-opencl-icd) or check /etc/OpenCL/vendors and $OCL_ICD_VENDORS.\n");
        return 1;
    }
    for (int i = 0; i < n; i++)
        bench_print_device(&list[i]);
    free(list);
    return 0;
}

static void report_check(void *user, const char *check, int passed, const char *detail) {
    (void)user;
    printf("  %-4s %s: %s\n", passed ? "ok" : "FAIL", check, detail);
}

/* A context on the selected device, the library's notes printed when *verbose; NULL (the
 * error printed) when it cannot be opened. */
static ldm_ctx *open_context(const bench_settings *s, int *verbose, int no_gemm_tuning) {
    ldm_ctx_options o;
    ldm_ctx_options_init(&o);
    o.platform = s->platform;
    static char device[256]; /* a rank of a job: its own device (as ldmcl-train chooses) */
    o.device = train_job_device(g_job, s->device, s->platform, device, sizeof device);
    o.log = print_log;
    o.log_user = verbose;
    o.no_gemm_tuning = no_gemm_tuning;
    ldm_ctx *ctx = NULL;
    if (ldm_ctx_create(&o, &ctx) != LDM_OK) {
        fprintf(stderr, "ldmcl-bench: %s\n", ldm_last_error());
        return NULL;
    }
    return ctx;
}

/* --tune-gemm: a context that leaves CLBlast's defaults alone, so they can be measured. */
static int tune_gemm(const bench_settings *s, int retune, int verbose) {
    if (!verbose) verbose = 2; /* the tuning's progress */
    ldm_ctx *ctx = open_context(s, &verbose, 1);
    if (!ctx) return 1;
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    printf("device: %s (%s), driver %s\n", d->device_name, d->platform_name, d->driver_version);
    char path[4096];
    ldm_status st = ldm_gemm_tuning_path(ctx, path, sizeof path);
    FILE *f = st == LDM_OK && !retune ? fopen(path, "r") : NULL;
    if (f) {
        fclose(f);
        printf("GEMM tuning: %s exists; --retune measures again\n", path);
        ldm_ctx_destroy(ctx);
        return 0;
    }
    ldm_gemm_tune_report r;
    double t0 = bench_now_ms();
    if (st == LDM_OK) st = ldm_gemm_tune(ctx, 0, &r);
    ldm_ctx_destroy(ctx);
    if (st != LDM_OK) {
        fprintf(stderr, "ldmcl-bench: %s\n", ldm_last_error());
        return 1;
    }
    printf("GEMM tuning: %d parameter sets timed (%d rejected) in %.0f s; the workload took "
           "%.1f ms with CLBlast's defaults, %.1f ms with the chosen (%.2fx)\n"
           "chosen: %s\nwritten: %s\n",
           r.candidates, r.rejected, (bench_now_ms() - t0) / 1e3, r.default_ms, r.tuned_ms,
           r.default_ms / r.tuned_ms, r.chosen, r.path);
    return 0;
}

/* --report on the selected device; json_path (may be NULL) receives its figures. */
static int report(const bench_settings *s, int train_batch, const char *op_tests_dir,
                  const char *json_path, int verbose, int no_tuning) {
    ldm_ctx *ctx = open_context(s, &verbose, no_tuning);
    if (!ctx) return 1;
    FILE *json = NULL;
    if (json_path && ldm_job_rank(g_job) == 0 && !(json = fopen(json_path, "w"))) {
        fprintf(stderr, "ldmcl-bench: cannot write '%s'\n", json_path);
        ldm_ctx_destroy(ctx);
        return 1;
    }
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    if (json)
        fprintf(json, "{\n  \"device\": \"%s\",\n  \"platform\": \"%s\",\n  \"driver\": \"%s\",\n",
                d->device_name, d->platform_name, d->driver_version);
    ldm_status st = bench_report(ctx, s, train_batch, op_tests_dir, json);
    ldm_ctx_destroy(ctx);
    if (json) {
        fprintf(json, "  \"ldmcl_version\": \"%s\"\n}\n", LDMCL_VERSION);
        fclose(json);
    }
    if (st == LDM_ERR_SELFTEST) return 1; /* said by the report */
    if (st != LDM_OK) {
        fprintf(stderr, "ldmcl-bench: %s\n", ldm_last_error());
        return 1;
    }
    return 0;
}

static int bench_main(int argc, char **argv);

int main(int argc, char **argv) {
    if (ldm_job_init(&argc, &argv, &g_job) != LDM_OK) {
        fprintf(stderr, "ldmcl-bench: %s\n", ldm_last_error());
        return 1;
    }
    int rc = bench_main(argc, argv);
    if (rc && ldm_job_size(g_job) > 1) ldm_job_abort(g_job, rc);
    ldm_job_finalize(g_job);
    return rc;
}

static int bench_main(int argc, char **argv) {
    int do_list = 0, do_selftest = 0, verbose = 0, do_tune = 0, retune = 0, no_tuning = 0;
    int do_report = 0, timing_given = 0, do_tune_kernels = 0;
    const char *bench_list = NULL, *json_path = NULL, *op_tests_dir = NULL, *tune_families = NULL;
    int shapes = -1; /* -1: by device */
    int train_batch = 16;
    const char *sd_model = NULL, *sd_random = NULL; /* --bench sd */
    int sd_half = 0;
    int sides[8] = {256, 512}, n_sides = 2, ranks[8] = {0, 4, 16}, n_ranks = 3; /* sd-train */
    int ckpt[2] = {0}, n_ckpt = 1;
    bench_settings s = {.warmup = 2, .repeat = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--version")) {
            printf("ldmcl-bench %s\n", LDMCL_VERSION);
            return 0;
        } else if (!strcmp(a, "--list-devices"))
            do_list = 1;
        else if (!strcmp(a, "--self-test"))
            do_selftest = 1;
        else if (!strcmp(a, "--tune-gemm"))
            do_tune = 1;
        else if (!strcmp(a, "--tune"))
            do_tune_kernels = 1;
        else if (!strcmp(a, "--tune-families") && v)
            tune_families = argv[++i];
        else if (!strcmp(a, "--report"))
            do_report = 1;
        else if (!strcmp(a, "--op-tests") && v)
            op_tests_dir = argv[++i];
        else if (!strcmp(a, "--retune"))
            retune = 1;
        else if (!strcmp(a, "--no-gemm-tuning"))
            no_tuning = 1;
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
            verbose = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--bench") && v)
            bench_list = argv[++i];
        else if (!strcmp(a, "--cl-platform") && v)
            s.platform = argv[++i];
        else if (!strcmp(a, "--cl-device") && v)
            s.device = argv[++i];
        else if (!strcmp(a, "--json") && v)
            json_path = argv[++i];
        else if (!strcmp(a, "--model") && v)
            sd_model = argv[++i];
        else if (!strcmp(a, "--random") && v && (!strcmp(v, "sd15") || !strcmp(v, "sd21")))
            sd_random = argv[++i];
        else if (!strcmp(a, "--weights") && v && (!strcmp(v, "f32") || !strcmp(v, "f16")))
            sd_half = !strcmp(argv[++i], "f16");
        else if (!strcmp(a, "--sides")) {
            if (!bench_parse_list(a, v, 64, 2048, sides, 8, &n_sides)) return 2;
            i++;
        } else if (!strcmp(a, "--lora-ranks")) {
            if (!bench_parse_list(a, v, 0, 1024, ranks, 8, &n_ranks)) return 2;
            i++;
        } else if (!strcmp(a, "--memory-only")) {
            s.memory_only = 1;
        } else if (!strcmp(a, "--checkpointing")) {
            if (!bench_parse_list(a, v, 0, 1, ckpt, 2, &n_ckpt)) return 2;
            i++;
        } else if (!strcmp(a, "--train-batch")) {
            if (!bench_parse_count(a, v, &train_batch) || train_batch < 1) return 2;
            i++;
        } else if (!strcmp(a, "--shapes") && v && (!strcmp(v, "seed") || !strcmp(v, "small"))) {
            shapes = !strcmp(v, "seed");
            i++;
        } else if (!strcmp(a, "--warmup")) {
            if (!bench_parse_count(a, v, &s.warmup)) return 2;
            timing_given = 1;
            i++;
        } else if (!strcmp(a, "--repeat")) {
            if (!bench_parse_count(a, v, &s.repeat)) return 2;
            timing_given = 1;
            if (s.repeat < 1) s.repeat = 1;
            i++;
        } else {
            int known = 0;
            for (size_t k = 0; k < bench_n_options; k++)
                known |= !strcmp(a, bench_options[k]);
            if (!known)
                cli_unknown_option("ldmcl-bench", a, bench_options, bench_n_options);
            else if (!v)
                fprintf(stderr, "ldmcl-bench: '%s' needs a value (see --help)\n", a);
            else
                fprintf(stderr, "ldmcl-bench: %s %s: not a value it takes (see --help)\n", a, v);
            return 2;
        }
    }
    if (tune_families && !do_tune_kernels) {
        fprintf(stderr, "ldmcl-bench: --tune-families goes with --tune\n");
        return 2;
    }
    if (tune_families && !bench_tune_families_known(tune_families)) return 2;
    if (op_tests_dir && !do_report) {
        fprintf(stderr, "ldmcl-bench: --op-tests goes with --report\n");
        return 2;
    }
    if (do_tune_kernels && (do_list || do_selftest || bench_list || do_tune || do_report)) {
        fprintf(stderr, "ldmcl-bench: --tune runs on its own\n");
        return 2;
    }
    if (do_tune_kernels) {
        ldm_ctx *ctx = open_context(&s, &verbose, no_tuning);
        if (!ctx) return 1;
        ldm_status st = bench_tune(ctx, &s, shapes < 0 ? ldm_ctx_device_info(ctx)->is_gpu : shapes,
                                   tune_families);
        if (st != LDM_OK) fprintf(stderr, "ldmcl-bench: %s\n", ldm_last_error());
        ldm_ctx_destroy(ctx);
        return st == LDM_OK ? 0 : 1;
    }
    if (do_report && (do_list || do_selftest || bench_list || do_tune)) {
        fprintf(stderr, "ldmcl-bench: --report runs on its own (it holds the self-test and the "
                        "benchmarks)\n");
        return 2;
    }
    if (do_report) {
        if (!timing_given) s.warmup = 1, s.repeat = 3;
        return report(&s, train_batch, op_tests_dir, json_path, verbose, no_tuning);
    }
    if (do_tune && (do_list || do_selftest || bench_list || no_tuning)) {
        fprintf(stderr, "ldmcl-bench: --tune-gemm runs on its own (CLBlast keeps the parameters "
                        "it tried for the rest of the process)\n");
        return 2;
    }
    if (retune && !do_tune) {
        fprintf(stderr, "ldmcl-bench: --retune goes with --tune-gemm\n");
        return 2;
    }
    if (do_tune) return tune_gemm(&s, retune, verbose);
    if (!do_list && !do_selftest && !bench_list) {
        bench_usage(stderr);
        return 2;
    }
    int rc = 0;
    if (do_list) rc |= list_devices();
    if (!do_selftest && !bench_list) return rc;

    int bench_copy_on = 0, bench_gemm_on = 0, bench_cache_on = 0, bench_ops_on = 0;
    int bench_unet_on = 0, bench_ae_on = 0, bench_ae_celebhq_on = 0, bench_clip_on = 0;
    int bench_allreduce_on = 0, bench_job_step_on = 0, bench_sd_on = 0, bench_sd_train_on = 0;
    if (bench_list) {
        char list[256];
        snprintf(list, sizeof list, "%s", bench_list);
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
            if (!strcmp(tok, "all"))
                bench_copy_on = bench_gemm_on = bench_cache_on = bench_ops_on = 1;
            else if (!strcmp(tok, "ops"))
                bench_ops_on = bench_copy_on = bench_gemm_on = 1;
            else if (!strcmp(tok, "unet"))
                bench_unet_on = 1;
            else if (!strcmp(tok, "ae"))
                bench_ae_on = 1;
            else if (!strcmp(tok, "ae-celebhq"))
                bench_ae_celebhq_on = 1;
            else if (!strcmp(tok, "clip"))
                bench_clip_on = 1;
            else if (!strcmp(tok, "sd"))
                bench_sd_on = 1;
            else if (!strcmp(tok, "sd-train"))
                bench_sd_train_on = 1;
            else if (!strcmp(tok, "allreduce"))
                bench_allreduce_on = 1;
            else if (!strcmp(tok, "job-step"))
                bench_job_step_on = 1;
            else if (!strcmp(tok, "copy"))
                bench_copy_on = 1;
            else if (!strcmp(tok, "gemm"))
                bench_gemm_on = 1;
            else if (!strcmp(tok, "cache"))
                bench_cache_on = 1;
            else {
                fprintf(
                    stderr,
                    "ldmcl-bench: unknown benchmark '%s' (copy, gemm, ops, unet, ae, ae-celebhq, "
                    "clip, sd, allreduce, job-step, cache, all)\n",
                    tok);
                return 2;
            }
        }
    }

    ldm_ctx *ctx = open_context(&s, &verbose, no_tuning);
    if (!ctx) return 1;
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    if (ldm_job_rank(g_job) == 0)
        printf("device: %s (%s), driver %s, %s; GEMMs: %s\n", d->device_name, d->platform_name,
               d->driver_version, d->opencl_c_version,
               ldm_ctx_gemm_tuned(ctx) ? "tuned parameters (--tune-gemm)" : "CLBlast's defaults");
    FILE *json = NULL;
    if (json_path && ldm_job_rank(g_job) == 0 && !(json = fopen(json_path, "w"))) {
        fprintf(stderr, "ldmcl-bench: cannot write '%s'\n", json_path);
        ldm_ctx_destroy(ctx);
        return 1;
    }
    if (json)
        fprintf(json, "{\n  \"device\": \"%s\",\n  \"platform\": \"%s\",\n  \"driver\": \"%s\",\n",
                d->device_name, d->platform_name, d->driver_version);
    ldm_status st = LDM_OK;
    double copy_gbps = 0, gemm_gflops = 0;
    if (do_selftest) {
        printf("self-test:\n");
        st = ldm_selftest_run(ctx, report_check, NULL);
        if (st == LDM_OK) printf("self-test passed\n");
    }
    if (st == LDM_OK && bench_copy_on) st = bench_copy(ctx, &s, &copy_gbps, json);
    if (st == LDM_OK && bench_gemm_on) st = bench_gemm(ctx, &s, &gemm_gflops, json);
    if (st == LDM_OK && bench_ops_on)
        st = bench_ops(ctx, &s, shapes < 0 ? d->is_gpu : shapes, gemm_gflops, copy_gbps, json);
    if (st == LDM_OK && bench_unet_on) st = bench_unet(ctx, &s, train_batch, json);
    if (st == LDM_OK && bench_ae_on) st = bench_autoencoder(ctx, &s, 0, json);
    if (st == LDM_OK && bench_ae_celebhq_on) st = bench_autoencoder(ctx, &s, 1, json);
    if (st == LDM_OK && bench_clip_on) st = bench_clip(ctx, &s, train_batch, json);
    if (st == LDM_OK && bench_sd_on) st = bench_sd(ctx, &s, sd_model, sd_random, sd_half, json);
    if (st == LDM_OK && bench_sd_train_on)
        st = bench_sd_train(ctx, &s, sd_model, sd_random, sides, n_sides, ranks, n_ranks, ckpt,
                            n_ckpt, json);
    if (st == LDM_OK && bench_allreduce_on) st = bench_allreduce(ctx, g_job, &s, json);
    if (st == LDM_OK && bench_job_step_on) st = bench_job_step(ctx, g_job, &s, json);
    ldm_ctx_destroy(ctx);
    if (st == LDM_OK && bench_cache_on) st = bench_cache(&s);
    if (json) {
        fprintf(json, "  \"ldmcl_version\": \"%s\"\n}\n", LDMCL_VERSION);
        fclose(json);
    }
    if (st != LDM_OK) {
        fprintf(stderr, "ldmcl-bench: %s\n", ldm_last_error());
        return 1;
    }
    return rc;
}

double bench_median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

ldm_status bench_time(ldm_ctx *ctx, const bench_settings *s, bench_timed_fn fn, void *user,
                      double *median_ms) {
    double *t = calloc((size_t)s->repeat, sizeof *t);
    if (!t) return LDM_ERR_HOST_MEMORY;
    ldm_status st = LDM_OK;
    for (int r = -s->warmup; r < s->repeat && st == LDM_OK; r++) {
        cl_event a, b;
        if ((st = bench_marker(ctx, &a)) != LDM_OK) break;
        st = fn(user);
        if (st == LDM_OK) st = bench_marker(ctx, &b);
        double ms = 0;
        if (st == LDM_OK) st = bench_span_ms(a, b, &ms);
        if (r >= 0) t[r] = ms;
    }
    if (st == LDM_OK) *median_ms = bench_median(t, s->repeat);
    free(t);
    return st;
}

double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

ldm_status bench_marker(ldm_ctx *ctx, cl_event *ev) {
    cl_int err = clEnqueueMarkerWithWaitList(ldm_ctx_queue(ctx), 0, NULL, ev);
    if (err != CL_SUCCESS) {
        fprintf(stderr, "clEnqueueMarkerWithWaitList failed: %s\n", ldm_cl_error_name(err));
        return LDM_ERR_OPENCL;
    }
    return LDM_OK;
}

ldm_status bench_span_ms(cl_event a, cl_event b, double *ms) {
    cl_ulong ta = 0, tb = 0;
    cl_int err = clWaitForEvents(1, &b);
    if (err == CL_SUCCESS)
        err = clGetEventProfilingInfo(a, CL_PROFILING_COMMAND_END, sizeof ta, &ta, NULL);
    if (err == CL_SUCCESS)
        err = clGetEventProfilingInfo(b, CL_PROFILING_COMMAND_END, sizeof tb, &tb, NULL);
    clReleaseEvent(a);
    clReleaseEvent(b);
    if (err != CL_SUCCESS) {
        fprintf(stderr, "reading profiling events failed: %s\n", ldm_cl_error_name(err));
        return LDM_ERR_OPENCL;
    }
    *ms = (double)(tb - ta) * 1e-6;
    return LDM_OK;
}
