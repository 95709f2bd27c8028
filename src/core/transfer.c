/* src/core/transfer.c: host writes, fills and buffer copies as kernels (cl/transfer.cl), for
 * contexts with kernel_transfers (ldm_ctx_options). The Oclgrind simulator needs them. Its
 * uninitialised-value plugin (21.10) follows every kernel load and store exactly, but keeps one
 * shadow record per buffer, which a host write replaces by one the size of that write starting
 * at the buffer's beginning (Uninitialized::hostMemoryStore -> allocAndStoreShadowMemory ->
 * ShadowMemory::allocate); stores outside the record are dropped, loads outside it read as
 * uninitialised, fills and copies are not tracked, and a released buffer's record stays for the
 * next buffer given its number. So a write, fill or copy at an offset into an arena leaves the
 * arena "uninitialised" and every later read a false report. Here an arena is zeroed by one host
 * write of the whole of it (a full, clean record whatever was there before); a host write goes
 * whole into a staging buffer from offset 0, and a kernel copies it into place; fills and copies
 * are kernels. tests/sim/offset_write_reproducer.c shows the behaviour alone. */
#include <stdlib.h>

#include "internal.h"
#include "kernel_args.h"

#define FILE_CL "transfer.cl"
#define WG 64

static ldm_status launch(ldm_ctx *ctx, cl_kernel k, size_t count, cl_event *ev) {
    size_t global = count, local = WG;
    return ldm_launch(ctx, k, 1, &global, &local, ev);
}

/* The context's own kernel objects, made at first use or when a fill or copy is recorded
 * (ldm_transfer_prepare), so that replays look nothing up. */
static ldm_status kernel(ldm_ctx *ctx, int which, cl_kernel *out) {
    static const char *const names[2] = {"transfer_fill", "transfer_copy"};
    if (!ctx->transfer_kernels[which])
        LDM_TRY(ldm_kernel_create(ctx, FILE_CL, names[which], NULL, &ctx->transfer_kernels[which]));
    *out = ctx->transfer_kernels[which];
    return LDM_OK;
}

ldm_status ldm_transfer_prepare(ldm_ctx *ctx) {
    cl_kernel k;
    LDM_TRY(kernel(ctx, 0, &k));
    return kernel(ctx, 1, &k);
}

ldm_status ldm_transfer_fill(ldm_ctx *ctx, ldm_buf dst, float value, size_t count, cl_event *ev) {
    cl_kernel k;
    LDM_TRY(kernel(ctx, 0, &k));
    LDM_TRY(ldm_args_transfer_fill(k, count, value, dst));
    return launch(ctx, k, count, ev);
}

ldm_status ldm_transfer_copy(ldm_ctx *ctx, ldm_buf dst, ldm_buf src, size_t count, cl_event *ev) {
    cl_kernel k;
    LDM_TRY(kernel(ctx, 1, &k));
    LDM_TRY(ldm_args_transfer_copy(k, count, dst, src));
    return launch(ctx, k, count, ev);
}

ldm_status ldm_transfer_zero_whole(ldm_ctx *ctx, cl_mem mem, uint64_t bytes) {
    void *zeros = calloc(1, (size_t)bytes);
    if (!zeros) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    cl_int err =
        clEnqueueWriteBuffer(ctx->queue, mem, CL_TRUE, 0, (size_t)bytes, zeros, 0, NULL, NULL);
    free(zeros);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clEnqueueWriteBuffer", "zeroing %llu bytes",
                           (unsigned long long)bytes);
    return LDM_OK;
}

ldm_status ldm_transfer_write(ldm_ctx *ctx, ldm_buf dst, const void *src, size_t count) {
    if (count == 0) return LDM_OK;
    cl_int err;
    cl_mem staging = clCreateBuffer(ctx->context, CL_MEM_READ_ONLY, count * 4, NULL, &err);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clCreateBuffer", "a staging buffer of %zu elements", count);
    err = clEnqueueWriteBuffer(ctx->queue, staging, CL_TRUE, 0, count * 4, src, 0, NULL, NULL);
    ldm_status st = err == CL_SUCCESS
                        ? LDM_OK
                        : LDM_CL_FAIL(err, "clEnqueueWriteBuffer",
                                      "writing %zu elements to a staging buffer", count);
    if (st == LDM_OK) st = ldm_transfer_copy(ctx, dst, (ldm_buf){staging, 0}, count, NULL);
    if (st == LDM_OK) st = ldm_ctx_finish(ctx);
    clReleaseMemObject(staging);
    return st;
}
