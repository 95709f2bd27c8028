/* src/core/program.c: builds OpenCL programs from cl/ sources with options assembled in one
 * place, keeps built programs and kernels in a per-context cache, and goes through the binary
 * cache on disk (binary_cache.c) before building from source. A build failure reports the file,
 * the device, the options and the full build log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/version.h"
#include "sha256.h"

#define CACHE_FORMAT "ldmcl-binary-cache-v1"

ldm_status ldm_build_options(const ldm_ctx *ctx, const char *defines, char *buf, size_t size) {
    /* -cl-std=CL1.2: the newest OpenCL C that NVIDIA and pocl both compile. No fast-math flags:
     * results must match the PyTorch references. The device's local memory size lets kernels
     * pick tile sizes at compile time. */
    int n = snprintf(buf, size, "-cl-std=CL1.2 -DLDM_LOCAL_MEM_BYTES=%llu%s%s",
                     (unsigned long long)ctx->info.local_mem_bytes, defines && *defines ? " " : "",
                     defines ? defines : "");
    if (n < 0 || (size_t)n >= size)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "kernel build options too long: '%s'",
                        defines ? defines : "");
    return LDM_OK;
}

static void cache_key(const ldm_ctx *ctx, const char *options, const char *src, size_t len,
                      char hex[65]) {
    const ldm_device_info *d = &ctx->info;
    const char *fields[] = {
        CACHE_FORMAT,     LDMCL_VERSION,     d->platform_name,  d->platform_version, d->device_name,
        d->device_vendor, d->device_version, d->driver_version, d->opencl_c_version, options};
    ldm_sha256 s;
    ldm_sha256_init(&s);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        ldm_sha256_field(&s, fields[i], strlen(fields[i]));
    ldm_sha256_field(&s, src, len);
    unsigned char digest[32];
    ldm_sha256_final(&s, digest);
    ldm_sha256_hex(digest, hex);
}

static ldm_status build_from_source(ldm_ctx *ctx, const char *file, const char *src, size_t len,
                                    const char *options, cl_program *out) {
    cl_int err;
    cl_program p = clCreateProgramWithSource(ctx->context, 1, &src, &len, &err);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clCreateProgramWithSource", "loading kernel source '%s'", file);
    err = clBuildProgram(p, 1, &ctx->device, options, NULL, NULL);
    if (err == CL_SUCCESS) {
        *out = p;
        ctx->stats.source_builds++;
        return LDM_OK;
    }
    size_t log_len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(p, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_len) ==
            CL_SUCCESS &&
        log_len > 0 && (log = malloc(log_len + 1)) != NULL) {
        if (clGetProgramBuildInfo(p, ctx->device, CL_PROGRAM_BUILD_LOG, log_len, log, NULL) !=
            CL_SUCCESS)
            log[0] = '\0';
        log[log_len] = '\0';
    }
    ldm_status st =
        LDM_FAIL(LDM_ERR_BUILD,
                 "building kernel source '%s' for device '%s' (driver %s) failed: "
                 "%s (%d)\nbuild options: %s\nbuild log:\n%s",
                 file, ctx->info.device_name, ctx->info.driver_version, ldm_cl_error_name(err),
                 (int)err, options, log && *log ? log : "(the driver gave no log)");
    free(log);
    clReleaseProgram(p);
    return st;
}

static ldm_program_entry *find_entry(ldm_ctx *ctx, const char *file, const char *defines) {
    for (int i = 0; i < ctx->n_programs; i++) {
        ldm_program_entry *e = &ctx->programs[i];
        if (strcmp(e->file, file) == 0 && strcmp(e->defines, defines) == 0) return e;
    }
    return NULL;
}

static ldm_status add_entry(ldm_ctx *ctx, const char *file, const char *defines, cl_program p,
                            ldm_program_entry **out) {
    if (ctx->n_programs == ctx->cap_programs) {
        int cap = ctx->cap_programs ? ctx->cap_programs * 2 : 16;
        ldm_program_entry *grown = realloc(ctx->programs, (size_t)cap * sizeof *grown);
        if (!grown) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        ctx->programs = grown;
        ctx->cap_programs = cap;
    }
    ldm_program_entry *e = &ctx->programs[ctx->n_programs];
    memset(e, 0, sizeof *e);
    e->file = ldm_strdup(file);
    e->defines = ldm_strdup(defines);
    if (!e->file || !e->defines) {
        free(e->file);
        free(e->defines);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    e->program = p;
    ctx->n_programs++;
    *out = e;
    return LDM_OK;
}

static ldm_status get_entry(ldm_ctx *ctx, const char *file, const char *defines,
                            ldm_program_entry **out) {
    if (!defines) defines = "";
    ldm_program_entry *e = find_entry(ctx, file, defines);
    if (e) {
        ctx->stats.memory_hits++;
        *out = e;
        return LDM_OK;
    }
    char options[2048];
    LDM_TRY(ldm_build_options(ctx, defines, options, sizeof options));
    char *src = NULL;
    size_t len = 0;
    LDM_TRY(ldm_source_expand(ctx, file, &src, &len));

    cl_program p = NULL;
    char key[65] = "";
    int from_disk = 0;
    if (ctx->cache_dir) {
        cache_key(ctx, options, src, len, key);
        from_disk = ldm_binary_cache_load(ctx, key, options, &p);
    }
    if (!from_disk) {
        ldm_status st = build_from_source(ctx, file, src, len, options, &p);
        if (st != LDM_OK) {
            free(src);
            return st;
        }
        if (ctx->cache_dir) ldm_binary_cache_store(ctx, key, p);
    }
    free(src);
    ldm_status st = add_entry(ctx, file, defines, p, out);
    if (st != LDM_OK) clReleaseProgram(p);
    return st;
}

ldm_status ldm_program_get(ldm_ctx *ctx, const char *file, const char *defines, cl_program *out) {
    ldm_program_entry *e;
    LDM_TRY(get_entry(ctx, file, defines, &e));
    *out = e->program;
    return LDM_OK;
}

static ldm_status create_kernel(ldm_ctx *ctx, ldm_program_entry *e, const char *kernel,
                                cl_kernel *out) {
    cl_int err;
    *out = clCreateKernel(e->program, kernel, &err);
    if (err == CL_INVALID_KERNEL_NAME)
        return LDM_FAIL(LDM_ERR_NOT_FOUND, "kernel '%s' is not defined in cl/%s", kernel, e->file);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clCreateKernel", "creating kernel '%s' of cl/%s on '%s'", kernel,
                           e->file, ctx->info.device_name);
    return LDM_OK;
}

ldm_status ldm_kernel_get(ldm_ctx *ctx, const char *file, const char *kernel, const char *defines,
                          cl_kernel *out) {
    ldm_program_entry *e;
    LDM_TRY(get_entry(ctx, file, defines, &e));
    for (int i = 0; i < e->n_kernels; i++) {
        if (strcmp(e->kernels[i].name, kernel) == 0) {
            *out = e->kernels[i].kernel;
            return LDM_OK;
        }
    }
    if (e->n_kernels == e->cap_kernels) {
        int cap = e->cap_kernels ? e->cap_kernels * 2 : 8;
        ldm_kernel_entry *grown = realloc(e->kernels, (size_t)cap * sizeof *grown);
        if (!grown) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        e->kernels = grown;
        e->cap_kernels = cap;
    }
    cl_kernel k;
    LDM_TRY(create_kernel(ctx, e, kernel, &k));
    char *name = ldm_strdup(kernel);
    if (!name) {
        clReleaseKernel(k);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    e->kernels[e->n_kernels].name = name;
    e->kernels[e->n_kernels].kernel = k;
    e->n_kernels++;
    *out = k;
    return LDM_OK;
}

ldm_status ldm_kernel_create(ldm_ctx *ctx, const char *file, const char *kernel,
                             const char *defines, cl_kernel *out) {
    ldm_program_entry *e;
    LDM_TRY(get_entry(ctx, file, defines, &e));
    return create_kernel(ctx, e, kernel, out);
}

void ldm_program_cache_clear(ldm_ctx *ctx) {
    for (int i = 0; i < ctx->n_programs; i++) {
        ldm_program_entry *e = &ctx->programs[i];
        for (int k = 0; k < e->n_kernels; k++) {
            clReleaseKernel(e->kernels[k].kernel);
            free(e->kernels[k].name);
        }
        free(e->kernels);
        clReleaseProgram(e->program);
        free(e->file);
        free(e->defines);
    }
    ctx->n_programs = 0;
}

ldm_cache_stats ldm_ctx_cache_stats(const ldm_ctx *ctx) {
    return ctx->stats;
}

ldm_status ldm_cache_file_path(ldm_ctx *ctx, const char *file, const char *defines, char *buf,
                               size_t size) {
    if (size) buf[0] = '\0';
    if (!ctx->cache_dir) return LDM_OK;
    char options[2048];
    LDM_TRY(ldm_build_options(ctx, defines, options, sizeof options));
    char *src = NULL;
    size_t len = 0;
    LDM_TRY(ldm_source_expand(ctx, file, &src, &len));
    char key[65];
    cache_key(ctx, options, src, len, key);
    free(src);
    return ldm_binary_cache_path(ctx, key, buf, size);
}
