/* src/core/binary_cache.c: program binaries on disk, one file per key (a SHA-256 of platform,
 * device, driver, OpenCL C version, build options, expanded source and ldmcl version).
 *
 * File layout (little-endian):
 *   0   "LDMCLBIN"            8 bytes
 *   8   format version (1)    u32
 *   12  reserved (0)          u32
 *   16  payload bytes         u64
 *   24  key, 64 hex digits    64 bytes
 *   88  SHA-256 of payload    32 bytes
 *   120 payload: the driver's program binary
 * Files are written to a temporary name in the same directory and renamed into place, so a
 * reader sees a whole file or none. Any file that does not check out, or that the driver will
 * not load or build, is deleted and counts as a miss. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "sha256.h"

#define MAGIC "LDMCLBIN"
#define FORMAT_VERSION 1u
#define HEADER_BYTES 120u
#define MAX_BINARY_BYTES (1ull << 30)

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

ldm_status ldm_binary_cache_path(const ldm_ctx *ctx, const char *key_hex, char *buf, size_t size) {
    int n = snprintf(buf, size, "%s/%s.clbin", ctx->cache_dir, key_hex);
    if (n < 0 || (size_t)n >= size)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "kernel cache path too long: '%s'",
                        ctx->cache_dir);
    return LDM_OK;
}

/* Checks the file's header and checksum; returns NULL when fine, else why not. */
static const char *check_file(const unsigned char *data, size_t len, const char *key_hex) {
    if (len < HEADER_BYTES) return "shorter than its header";
    if (memcmp(data, MAGIC, 8) != 0) return "not an ldmcl cache file";
    if (get_u32(data + 8) != FORMAT_VERSION) return "written by another cache format";
    if (get_u64(data + 16) != len - HEADER_BYTES) return "truncated or padded";
    if (memcmp(data + 24, key_hex, 64) != 0) return "its key does not match its name";
    unsigned char digest[32];
    ldm_sha256 s;
    ldm_sha256_init(&s);
    ldm_sha256_update(&s, data + HEADER_BYTES, len - HEADER_BYTES);
    ldm_sha256_final(&s, digest);
    if (memcmp(digest, data + 88, 32) != 0) return "checksum mismatch";
    return NULL;
}

static void reject(ldm_ctx *ctx, const char *path, const char *why) {
    ctx->stats.disk_rejected++;
    ldm_log(ctx, LDM_LOG_WARN,
            "kernel cache file '%s' is unusable (%s); deleting it and building "
            "from source",
            path, why);
    if (unlink(path) != 0 && errno != ENOENT)
        ldm_log(ctx, LDM_LOG_WARN, "cannot delete '%s': %s", path, strerror(errno));
}

int ldm_binary_cache_load(ldm_ctx *ctx, const char *key_hex, const char *options, cl_program *out) {
    char path[4096];
    if (ldm_binary_cache_path(ctx, key_hex, path, sizeof path) != LDM_OK) return 0;
    char *data = NULL;
    size_t len = 0;
    ldm_status st = ldm_read_file(path, &data, &len);
    if (st == LDM_ERR_NOT_FOUND) {
        ctx->stats.disk_misses++;
        return 0;
    }
    if (st != LDM_OK) {
        reject(ctx, path, ldm_last_error());
        return 0;
    }
    const char *why = check_file((const unsigned char *)data, len, key_hex);
    if (why) {
        free(data);
        reject(ctx, path, why);
        return 0;
    }
    const unsigned char *bin = (const unsigned char *)data + HEADER_BYTES;
    size_t bin_len = len - HEADER_BYTES;
    cl_int bin_status = CL_SUCCESS, err;
    cl_program p =
        clCreateProgramWithBinary(ctx->context, 1, &ctx->device, &bin_len, &bin, &bin_status, &err);
    free(data);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS) {
        char why_cl[128];
        snprintf(why_cl, sizeof why_cl, "the driver refused the binary: %s",
                 ldm_cl_error_name(err != CL_SUCCESS ? err : bin_status));
        if (p) clReleaseProgram(p);
        reject(ctx, path, why_cl);
        return 0;
    }
    err = clBuildProgram(p, 1, &ctx->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        char why_cl[128];
        snprintf(why_cl, sizeof why_cl, "building the binary failed: %s", ldm_cl_error_name(err));
        clReleaseProgram(p);
        reject(ctx, path, why_cl);
        return 0;
    }
    ctx->stats.disk_hits++;
    *out = p;
    return 1;
}

/* why: what failed, naming the file or folder */
static void store_failed(ldm_ctx *ctx, const char *why) {
    ctx->stats.disk_write_failures++;
    ldm_log(ctx, LDM_LOG_WARN,
            "kernel cache: %s; kernels still work, but will be rebuilt next time. Set "
            "LDMCL_CL_CACHE_DIR to a writable directory, or LDMCL_CL_CACHE=0 to turn the cache off",
            why);
}

void ldm_binary_cache_store(ldm_ctx *ctx, const char *key_hex, cl_program program) {
    size_t bin_len = 0;
    if (clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof bin_len, &bin_len, NULL) !=
            CL_SUCCESS ||
        bin_len == 0 || bin_len > MAX_BINARY_BYTES) {
        ldm_log(ctx, LDM_LOG_DEBUG, "kernel cache: the driver gives no program binary to keep");
        return;
    }
    unsigned char *file = malloc(HEADER_BYTES + bin_len);
    if (!file) return;
    unsigned char *bin = file + HEADER_BYTES;
    if (clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS) {
        free(file);
        return;
    }
    memcpy(file, MAGIC, 8);
    put_u32(file + 8, FORMAT_VERSION);
    put_u32(file + 12, 0);
    put_u64(file + 16, bin_len);
    memcpy(file + 24, key_hex, 64);
    ldm_sha256 s;
    ldm_sha256_init(&s);
    ldm_sha256_update(&s, bin, bin_len);
    ldm_sha256_final(&s, file + 88);

    char path[4096];
    if (ldm_binary_cache_path(ctx, key_hex, path, sizeof path) != LDM_OK) {
        free(file);
        return;
    }
    int err = ldm_mkdirs(ctx->cache_dir);
    if (err) {
        char why[4300];
        snprintf(why, sizeof why, "creating the directory '%s' failed: %s", ctx->cache_dir,
                 strerror(err));
        store_failed(ctx, why);
        free(file);
        return;
    }
    ldm_atomic_file a;
    if (ldm_atomic_open(&a, path) != LDM_OK) {
        store_failed(ctx, ldm_last_error());
        free(file);
        return;
    }
    size_t total = HEADER_BYTES + bin_len;
    int ok = ldm_atomic_write(&a, file, total);
    free(file);
    if (ldm_atomic_commit(&a, ok) != LDM_OK) {
        store_failed(ctx, ldm_last_error());
        return;
    }
    ctx->stats.disk_writes++;
}
