/* src/core/buffer.c: host<->device copies, kernel arguments and kernel launches. Every launch
 * code's arguments are checked against the kernel (its name, CL_KERNEL_NUM_ARGS) before any is
 * set; launch failures name the kernel and its sizes. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

ldm_status ldm_buf_write(ldm_ctx *ctx, ldm_buf dst, const void *src, size_t count) {
    if (count == 0) return LDM_OK;
    if (ctx->kernel_transfers) return ldm_transfer_write(ctx, dst, src, count);
    cl_int err = clEnqueueWriteBuffer(ctx->queue, dst.mem, CL_TRUE, dst.off * 4, count * 4, src, 0,
                                      NULL, NULL);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clEnqueueWriteBuffer", "writing %zu elements at offset %zu", count,
                           dst.off);
    return LDM_OK;
}

ldm_status ldm_buf_read(ldm_ctx *ctx, void *dst, ldm_buf src, size_t count) {
    if (count == 0) return LDM_OK;
    cl_int err = clEnqueueReadBuffer(ctx->queue, src.mem, CL_TRUE, src.off * 4, count * 4, dst, 0,
                                     NULL, NULL);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clEnqueueReadBuffer", "reading %zu elements at offset %zu", count,
                           src.off);
    return LDM_OK;
}

ldm_status ldm_buf_copy(ldm_ctx *ctx, ldm_buf dst, ldm_buf src, size_t count, cl_event *ev) {
    if (count == 0) return LDM_OK;
    if (ctx->kernel_transfers) return ldm_transfer_copy(ctx, dst, src, count, ev);
    cl_int err = clEnqueueCopyBuffer(ctx->queue, src.mem, dst.mem, src.off * 4, dst.off * 4,
                                     count * 4, 0, NULL, ev);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clEnqueueCopyBuffer", "copying %zu elements", count);
    return LDM_OK;
}

ldm_status ldm_buf_fill(ldm_ctx *ctx, ldm_buf dst, float value, size_t count) {
    if (count == 0) return LDM_OK;
    if (ctx->kernel_transfers) return ldm_transfer_fill(ctx, dst, value, count, NULL);
    cl_int err = clEnqueueFillBuffer(ctx->queue, dst.mem, &value, sizeof value, dst.off * 4,
                                     count * 4, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clEnqueueFillBuffer", "filling %zu elements", count);
    return LDM_OK;
}

static ldm_status set_arg(cl_kernel k, cl_uint *index, size_t size, const void *value) {
    cl_int err = clSetKernelArg(k, *index, size, value);
    if (err != CL_SUCCESS) {
        char name[128] = "?";
        clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
        name[sizeof name - 1] = '\0';
        return LDM_CL_FAIL(err, "clSetKernelArg", "setting argument %u of kernel '%s'", *index,
                           name);
    }
    (*index)++;
    return LDM_OK;
}

ldm_status ldm_arg_buf(cl_kernel k, cl_uint *index, ldm_buf b) {
    cl_ulong off = b.off;
    LDM_TRY(set_arg(k, index, sizeof b.mem, &b.mem));
    return set_arg(k, index, sizeof off, &off);
}

ldm_status ldm_arg_int(cl_kernel k, cl_uint *index, int v) {
    cl_int x = v;
    return set_arg(k, index, sizeof x, &x);
}

ldm_status ldm_arg_uint(cl_kernel k, cl_uint *index, unsigned v) {
    cl_uint x = v;
    return set_arg(k, index, sizeof x, &x);
}

ldm_status ldm_arg_ulong(cl_kernel k, cl_uint *index, uint64_t v) {
    cl_ulong x = v;
    return set_arg(k, index, sizeof x, &x);
}

ldm_status ldm_arg_float(cl_kernel k, cl_uint *index, float v) {
    cl_float x = v;
    return set_arg(k, index, sizeof x, &x);
}

ldm_status ldm_arg_local(cl_kernel k, cl_uint *index, size_t bytes) {
    return set_arg(k, index, bytes, NULL);
}

ldm_status ldm_kernel_check_args(cl_kernel k, const char *kernel, cl_uint given) {
    char name[128] = "?";
    cl_int err = clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clGetKernelInfo", "reading the name of a kernel (%s expected)",
                           kernel ? kernel : "any");
    name[sizeof name - 1] = '\0';
    if (kernel && strcmp(name, kernel) != 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the arguments of kernel '%s' were set on kernel '%s': the launch code "
                        "and its kernel disagree",
                        kernel, name);
    cl_uint expected = 0;
    err = clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof expected, &expected, NULL);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clGetKernelInfo", "reading the argument count of kernel '%s'",
                           name);
    if (expected != given)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "kernel '%s' takes %u arguments, but %u were given (a buffer counts two: "
                        "its cl_mem and its element offset): the launch code and the kernel's "
                        "signature in cl/ disagree",
                        name, expected, given);
    return LDM_OK;
}

/* How many kernel arguments a (checked) format of ldm_set_args sets. */
static cl_uint format_args(const char *format) {
    cl_uint n = 0;
    for (const char *f = format; *f; f++)
        n += *f == 'b' ? 2 : 1;
    return n;
}

ldm_status ldm_set_args(cl_kernel k, const char *format, ...) {
    for (const char *f = format; *f; f++)
        if (!strchr("biulfL", *f))
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "ldm_set_args: unknown letter '%c' in \"%s\"",
                            *f, format);
    LDM_TRY(ldm_kernel_check_args(k, NULL, format_args(format)));
    va_list ap;
    va_start(ap, format);
    cl_uint index = 0;
    ldm_status st = LDM_OK;
    for (const char *f = format; *f && st == LDM_OK; f++) {
        switch (*f) {
        case 'b':
            st = ldm_arg_buf(k, &index, va_arg(ap, ldm_buf));
            break;
        case 'i':
            st = ldm_arg_int(k, &index, va_arg(ap, int));
            break;
        case 'u':
            st = ldm_arg_uint(k, &index, va_arg(ap, unsigned));
            break;
        case 'l':
            st = ldm_arg_ulong(k, &index, va_arg(ap, uint64_t));
            break;
        case 'f':
            st = ldm_arg_float(k, &index, (float)va_arg(ap, double));
            break;
        default: /* 'L' */
            st = ldm_arg_local(k, &index, va_arg(ap, size_t));
            break;
        }
    }
    va_end(ap);
    return st;
}

ldm_status ldm_launch(ldm_ctx *ctx, cl_kernel k, cl_uint dims, const size_t *global,
                      const size_t *local, cl_event *ev) {
    if (dims < 1 || dims > 3)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "a launch has 1 to 3 dimensions, not %u", dims);
    size_t rounded[3];
    for (cl_uint i = 0; i < dims; i++) {
        size_t l = local ? local[i] : 1;
        if (l == 0) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "local size 0 in dimension %u", i);
        rounded[i] = (global[i] + l - 1) / l * l;
        if (rounded[i] == 0) return LDM_OK; /* nothing to do */
    }
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, k, dims, NULL, rounded, local, 0, NULL, ev);
    if (err != CL_SUCCESS) {
        char name[128] = "?", sizes[160];
        clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
        name[sizeof name - 1] = '\0';
        int n = snprintf(sizes, sizeof sizes, "global");
        for (cl_uint i = 0; i < dims; i++)
            n += snprintf(sizes + n, sizeof sizes - (size_t)n, "%s%zu", i ? "x" : " ", rounded[i]);
        if (local) {
            n += snprintf(sizes + n, sizeof sizes - (size_t)n, ", local");
            for (cl_uint i = 0; i < dims; i++)
                n +=
                    snprintf(sizes + n, sizeof sizes - (size_t)n, "%s%zu", i ? "x" : " ", local[i]);
        }
        return LDM_CL_FAIL(err, "clEnqueueNDRangeKernel", "launching kernel '%s' (%s) on '%s'",
                           name, sizes, ctx->info.device_name);
    }
    return LDM_OK;
}

ldm_status ldm_event_ms(cl_event ev, double *ms) {
    cl_ulong start = 0, end = 0;
    cl_int err = clWaitForEvents(1, &ev);
    if (err == CL_SUCCESS)
        err = clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL);
    if (err == CL_SUCCESS)
        err = clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clGetEventProfilingInfo", "reading a kernel's device time");
    *ms = (double)(end - start) * 1e-6;
    return LDM_OK;
}
