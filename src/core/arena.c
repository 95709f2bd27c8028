/* src/core/arena.c: device memory arenas. Each arena is one cl_mem created after checking the
 * request against the device's largest allocation, its global memory and the context's own
 * limit; tensors are carved from it by offset and never freed one by one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct ldm_arena {
    ldm_ctx *ctx;
    cl_mem mem;
    uint64_t capacity; /* bytes */
    uint64_t used;     /* bytes, a multiple of the alignment */
    char name[64];
};

uint64_t ldm_ctx_free_bytes(const ldm_ctx *ctx, uint64_t *limit, const char **which) {
    uint64_t l = ctx->info.global_mem_bytes;
    const char *w = "the device's global memory";
    if (ctx->mem_limit && ctx->mem_limit < l) {
        l = ctx->mem_limit;
        w = "the memory limit set on this context";
    }
    if (limit) *limit = l;
    if (which) *which = w;
    return ctx->mem_in_use < l ? l - ctx->mem_in_use : 0;
}

/* Fails with "need X, have Y" when `bytes` more cannot be allocated on this context. */
static ldm_status check_fits(const ldm_ctx *ctx, const char *name, uint64_t bytes) {
    const ldm_device_info *d = &ctx->info;
    char need[32], have[32], total[32], held[32];
    uint64_t max_alloc = ldm_ctx_max_allocation(ctx);
    if (bytes > max_alloc)
        return LDM_FAIL(LDM_ERR_DEVICE_MEMORY,
                        "arena '%s' does not fit on '%s': need %s in one buffer, have %s (the "
                        "device's largest single allocation, CL_DEVICE_MAX_MEM_ALLOC_SIZE). "
                        "Reduce the batch size or resolution",
                        name, d->device_name, ldm_format_bytes(bytes, need, 32),
                        ldm_format_bytes(max_alloc, have, 32));
    uint64_t limit;
    const char *which;
    uint64_t free_bytes = ldm_ctx_free_bytes(ctx, &limit, &which);
    if (bytes > free_bytes)
        return LDM_FAIL(LDM_ERR_DEVICE_MEMORY,
                        "arena '%s' does not fit on '%s': need %s, have %s free of %s (%s; "
                        "ldmcl already holds %s). Reduce the batch size or resolution",
                        name, d->device_name, ldm_format_bytes(bytes, need, 32),
                        ldm_format_bytes(free_bytes, have, 32), ldm_format_bytes(limit, total, 32),
                        which, ldm_format_bytes(ctx->mem_in_use, held, 32));
    return LDM_OK;
}

ldm_status ldm_arena_create(ldm_ctx *ctx, const char *name, uint64_t bytes, ldm_arena **out) {
    *out = NULL;
    if (!name) name = "unnamed";
    const uint64_t align = LDM_ARENA_ALIGN_ELEMS * 4;
    if (bytes == 0) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "arena '%s' of 0 bytes", name);
    bytes = (bytes + align - 1) / align * align;
    LDM_TRY(check_fits(ctx, name, bytes));

    ldm_arena *a = calloc(1, sizeof *a);
    if (!a) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    snprintf(a->name, sizeof a->name, "%s", name);
    a->ctx = ctx;
    a->capacity = bytes;
    cl_int err;
    a->mem = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, (size_t)bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        char need[32];
        ldm_status st = LDM_CL_FAIL(err, "clCreateBuffer", "creating arena '%s' of %s on '%s'",
                                    name, ldm_format_bytes(bytes, need, 32), ctx->info.device_name);
        free(a);
        return st;
    }
    /* Drivers may allocate lazily: touch the whole buffer now (zero it) so that a device that
     * cannot back it fails here, with the arena's name, instead of in the middle of a step. */
    const cl_uint zero = 0;
    if (ctx->kernel_transfers) {
        ldm_status st = ldm_transfer_zero_whole(ctx, a->mem, bytes);
        if (st != LDM_OK) {
            ldm_error_prefix("zeroing arena '%s'", name);
            clReleaseMemObject(a->mem);
            free(a);
            return st;
        }
        err = CL_SUCCESS;
    } else {
        err = clEnqueueFillBuffer(ctx->queue, a->mem, &zero, sizeof zero, 0, (size_t)bytes, 0, NULL,
                                  NULL);
        if (err == CL_SUCCESS) err = clFinish(ctx->queue);
    }
    if (err != CL_SUCCESS) {
        char need[32];
        ldm_status st = LDM_CL_FAIL(err, "clEnqueueFillBuffer", "zeroing arena '%s' of %s on '%s'",
                                    name, ldm_format_bytes(bytes, need, 32), ctx->info.device_name);
        clReleaseMemObject(a->mem);
        free(a);
        return st;
    }
    ctx->mem_in_use += bytes;
    *out = a;
    return LDM_OK;
}

void ldm_arena_destroy(ldm_arena *a) {
    if (!a) return;
    a->ctx->mem_in_use -= a->capacity;
    clReleaseMemObject(a->mem);
    free(a);
}

ldm_status ldm_arena_take(ldm_arena *a, size_t count, const char *what, ldm_buf *out) {
    const uint64_t align = LDM_ARENA_ALIGN_ELEMS * 4;
    uint64_t bytes = (uint64_t)count * 4;
    if (count > UINT64_MAX / 8 || a->used + bytes > a->capacity) {
        char need[32], have[32];
        return LDM_FAIL(LDM_ERR_DEVICE_MEMORY,
                        "arena '%s' is full: tensor '%s' needs %s, have %s left; the arena was "
                        "sized too small (an ldmcl planning bug, please report it)",
                        a->name, what ? what : "?", ldm_format_bytes(bytes, need, 32),
                        ldm_format_bytes(a->capacity - a->used, have, 32));
    }
    out->mem = a->mem;
    out->off = (size_t)(a->used / 4);
    a->used += (bytes + align - 1) / align * align;
    if (a->used > a->capacity) a->used = a->capacity;
    return LDM_OK;
}

void ldm_arena_reset(ldm_arena *a) {
    a->used = 0;
}

uint64_t ldm_arena_capacity_bytes(const ldm_arena *a) {
    return a->capacity;
}

uint64_t ldm_arena_used_bytes(const ldm_arena *a) {
    return a->used;
}

const char *ldm_arena_name(const ldm_arena *a) {
    return a->name;
}

cl_mem ldm_arena_mem(const ldm_arena *a) {
    return a->mem;
}
