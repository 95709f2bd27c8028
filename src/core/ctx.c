/* src/core/ctx.c: creates and destroys an ldm_ctx: the selected device, one OpenCL context, one
 * in-order queue with profiling enabled, where kernels come from and where their binaries are
 * cached. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "select.h"

void ldm_ctx_options_init(ldm_ctx_options *o) {
    memset(o, 0, sizeof *o);
    o->binary_cache = -1;
    o->cpu_kernels = -1;
    o->kernel_transfers = -1;
}

void ldm_log(const ldm_ctx *ctx, ldm_log_level level, const char *fmt, ...) {
    if (!ctx || !ctx->log) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->log(ctx->log_user, level, msg);
}

/* The binary cache directory from the options and environment, or NULL when the cache is off. */
static ldm_status resolve_cache_dir(const ldm_ctx_options *o, char **out) {
    *out = NULL;
    int on = o->binary_cache;
    if (on < 0) {
        const char *env = getenv("LDMCL_CL_CACHE");
        on = !(env && (strcmp(env, "0") == 0 || strcmp(env, "off") == 0 ||
                       strcmp(env, "false") == 0 || strcmp(env, "no") == 0));
    }
    if (!on) return LDM_OK;
    char path[4096];
    const char *dir = o->cache_dir && *o->cache_dir ? o->cache_dir : getenv("LDMCL_CL_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (dir && *dir)
        snprintf(path, sizeof path, "%s", dir);
    else if (xdg && *xdg)
        snprintf(path, sizeof path, "%s/ldmcl/kernels", xdg);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.cache/ldmcl/kernels", home);
    else
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the binary kernel cache is on but has no directory: set "
                        "LDMCL_CL_CACHE_DIR (or HOME), or turn it off with LDMCL_CL_CACHE=0");
    *out = ldm_strdup(path);
    if (!*out) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    return LDM_OK;
}

/* A 0/1 setting: the option when it is 0 or 1, else the environment variable when it is set
 * (only "0" or "1" accepted; `values` says what each means in the refusal), else the default. */
static ldm_status resolve_flag(int option, const char *env, const char *values, int fallback,
                               int *out) {
    const char *v = getenv(env);
    if (option >= 0)
        *out = option != 0;
    else if (v && *v) {
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s is '%s': %s", env, v, values);
        *out = v[0] == '1';
    } else
        *out = fallback;
    return LDM_OK;
}

ldm_status ldm_ctx_create(const ldm_ctx_options *opts, ldm_ctx **out) {
    *out = NULL;
    ldm_ctx_options defaults;
    if (!opts) {
        ldm_ctx_options_init(&defaults);
        opts = &defaults;
    }
    ldm_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ctx->log = opts->log;
    ctx->log_user = opts->log_user;

    char chosen_by[256] = "";
    int global_index = 0;
    ldm_status st = ldm_select_device(opts->platform, opts->device, &ctx->platform, &ctx->device,
                                      &global_index, chosen_by, sizeof chosen_by);
    if (st == LDM_OK) st = ldm_device_query(ctx->platform, ctx->device, &ctx->info);
    if (st != LDM_OK) {
        free(ctx);
        return st;
    }
    ctx->info.global_index = global_index;

    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ctx->platform, 0};
    ctx->context = clCreateContext(props, 1, &ctx->device, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        st = LDM_CL_FAIL(err, "clCreateContext", "opening device '%s'", ctx->info.device_name);
        free(ctx);
        return st;
    }
    ldm_gemm_context_opened();
    ctx->queue = clCreateCommandQueue(ctx->context, ctx->device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (err != CL_SUCCESS) {
        st = LDM_CL_FAIL(err, "clCreateCommandQueue", "opening device '%s'", ctx->info.device_name);
        ldm_ctx_destroy(ctx);
        return st;
    }

    const char *kdir =
        opts->kernel_dir && *opts->kernel_dir ? opts->kernel_dir : getenv("LDMCL_CL_DIR");
    if (kdir && *kdir) {
        ctx->kernel_dir = ldm_strdup(kdir);
        if (!ctx->kernel_dir) {
            ldm_ctx_destroy(ctx);
            return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        }
    }
    st = resolve_flag(opts->cpu_kernels, "LDMCL_CPU_KERNELS",
                      "1 (kernels laid out for CPUs), 0 (for GPUs), or unset (by device type)",
                      ctx->info.is_cpu, &ctx->cpu_kernels);
    if (st == LDM_OK)
        st = resolve_flag(opts->kernel_transfers, "LDMCL_KERNEL_TRANSFERS", "1, 0, or unset",
                          strstr(ctx->info.platform_name, "Oclgrind") != NULL,
                          &ctx->kernel_transfers);
    if (st != LDM_OK) {
        ldm_ctx_destroy(ctx);
        return st;
    }
    if (ctx->kernel_transfers)
        ldm_log(ctx, LDM_LOG_INFO,
                "host writes, fills and buffer copies run as kernels (cl/transfer.cl)%s",
                opts->kernel_transfers < 0 && !getenv("LDMCL_KERNEL_TRANSFERS")
                    ? ": the Oclgrind simulator tracks initialised memory through kernels only"
                    : "");
    st = resolve_cache_dir(opts, &ctx->cache_dir);
    if (st == LDM_OK) st = ldm_tunables_resolve(ctx);
    if (st != LDM_OK) {
        ldm_ctx_destroy(ctx);
        return st;
    }
    char gmem[32], amem[32];
    ldm_log(ctx, LDM_LOG_INFO,
            "OpenCL device %d: '%s' on '%s' (%s), driver %s, %s, %u compute units, %s global "
            "memory, %s max allocation; chosen by %s",
            global_index, ctx->info.device_name, ctx->info.platform_name,
            ctx->info.platform_version, ctx->info.driver_version, ctx->info.opencl_c_version,
            ctx->info.compute_units, ldm_format_bytes(ctx->info.global_mem_bytes, gmem, 32),
            ldm_format_bytes(ctx->info.max_alloc_bytes, amem, 32), chosen_by);
    ldm_log(ctx, LDM_LOG_DEBUG, "kernel sources: %s; binary cache: %s; kernel layouts for %s",
            ctx->kernel_dir ? ctx->kernel_dir : "embedded", ctx->cache_dir ? ctx->cache_dir : "off",
            ctx->cpu_kernels ? "CPUs" : "GPUs");
    if (!opts->no_gemm_tuning) ldm_gemm_tuning_load(ctx);
    *out = ctx;
    return LDM_OK;
}

int ldm_ctx_kernel_transfers(const ldm_ctx *ctx) {
    return ctx->kernel_transfers;
}

int ldm_ctx_cpu_kernels(const ldm_ctx *ctx) {
    return ctx->cpu_kernels;
}

int ldm_ctx_gemm_tuned(const ldm_ctx *ctx) {
    return ctx->gemm_tuned;
}

void ldm_ctx_destroy(ldm_ctx *ctx) {
    if (!ctx) return;
    for (int i = 0; i < 2; i++)
        if (ctx->transfer_kernels[i]) clReleaseKernel(ctx->transfer_kernels[i]);
    ldm_cmd_destroy(ctx->immediate);
    ldm_program_cache_clear(ctx);
    free(ctx->programs);
    if (ctx->queue) {
        clFinish(ctx->queue);
        clReleaseCommandQueue(ctx->queue);
    }
    if (ctx->context) {
        ldm_gemm_context_closed();
        clReleaseContext(ctx->context);
    }
    free(ctx->kernel_dir);
    free(ctx->cache_dir);
    free(ctx->profile);
    free(ctx);
}

ldm_status ldm_ctx_profile_begin(ldm_ctx *ctx) {
    ctx->profiling = 1;
    ctx->n_profile = 0;
    return ldm_ctx_finish(ctx);
}

ldm_status ldm_ctx_profile_add(ldm_ctx *ctx, const char *name, double ms) {
    for (size_t i = 0; i < ctx->n_profile; i++)
        if (strcmp(ctx->profile[i].name, name) == 0) {
            ctx->profile[i].ms += ms;
            ctx->profile[i].launches++;
            return LDM_OK;
        }
    if (ctx->n_profile == ctx->cap_profile) {
        size_t cap = ctx->cap_profile ? 2 * ctx->cap_profile : 32;
        ldm_profile_entry *grown = realloc(ctx->profile, cap * sizeof *grown);
        if (!grown) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        ctx->profile = grown;
        ctx->cap_profile = cap;
    }
    ldm_profile_entry *e = &ctx->profile[ctx->n_profile++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ms = ms;
    e->launches = 1;
    return LDM_OK;
}

static int longest_first(const void *a, const void *b) {
    double x = ((const ldm_profile_entry *)a)->ms, y = ((const ldm_profile_entry *)b)->ms;
    return (x < y) - (x > y);
}

size_t ldm_ctx_profile_end(ldm_ctx *ctx, ldm_profile_entry *out, size_t max) {
    ctx->profiling = 0;
    if (ctx->n_profile) qsort(ctx->profile, ctx->n_profile, sizeof *ctx->profile, longest_first);
    for (size_t i = 0; i < ctx->n_profile && i < max; i++)
        out[i] = ctx->profile[i];
    return ctx->n_profile;
}

const ldm_device_info *ldm_ctx_device_info(const ldm_ctx *ctx) {
    return &ctx->info;
}

cl_context ldm_ctx_cl_context(const ldm_ctx *ctx) {
    return ctx->context;
}

cl_command_queue ldm_ctx_queue(const ldm_ctx *ctx) {
    return ctx->queue;
}

cl_device_id ldm_ctx_cl_device(const ldm_ctx *ctx) {
    return ctx->device;
}

const char *ldm_ctx_cache_dir(const ldm_ctx *ctx) {
    return ctx->cache_dir ? ctx->cache_dir : "";
}

void ldm_ctx_set_max_allocation(ldm_ctx *ctx, uint64_t bytes) {
    ctx->max_alloc_cap = bytes;
}

uint64_t ldm_ctx_max_allocation(const ldm_ctx *ctx) {
    uint64_t m = ctx->info.max_alloc_bytes;
    return ctx->max_alloc_cap && ctx->max_alloc_cap < m ? ctx->max_alloc_cap : m;
}

void ldm_ctx_set_memory_limit(ldm_ctx *ctx, uint64_t bytes) {
    ctx->mem_limit = bytes;
}

uint64_t ldm_ctx_device_bytes_in_use(const ldm_ctx *ctx) {
    return ctx->mem_in_use;
}

ldm_status ldm_ctx_finish(ldm_ctx *ctx) {
    cl_int err = clFinish(ctx->queue);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clFinish", "waiting for the queued work on '%s'",
                           ctx->info.device_name);
    return LDM_OK;
}
