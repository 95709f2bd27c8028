/* ldmcl/buffer.h: device memory as a few large arenas carved by offset, host<->device copies and
 * kernel launches.
 *
 * A tensor never owns memory: it is an ldm_buf, a cl_mem plus an offset counted in 4-byte
 * elements (float or int32), passed to kernels as a (global float *p, ulong off) pair; ldmcl uses
 * no sub-buffers, whose origin alignment rules differ by vendor. Before creating an arena the
 * size is checked against CL_DEVICE_MAX_MEM_ALLOC_SIZE, the device's global memory and the
 * context's own limit, and a request that cannot fit fails with "need X, have Y". */
#ifndef LDMCL_BUFFER_H
#define LDMCL_BUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/cl.h"
#include "ldmcl/context.h"
#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_buf {
    cl_mem mem;
    size_t off; /* in 4-byte elements */
} ldm_buf;

/* Offsets handed out by arenas are multiples of this many elements (256 bytes). */
#define LDM_ARENA_ALIGN_ELEMS 64

typedef struct ldm_arena ldm_arena;

/* One device buffer of `bytes`, zero-filled, named for messages ("parameters", "activations").
 * Fails with LDM_ERR_DEVICE_MEMORY and "need X, have Y" when it cannot fit. */
ldm_status ldm_arena_create(ldm_ctx *ctx, const char *name, uint64_t bytes, ldm_arena **out);
void ldm_arena_destroy(ldm_arena *a);

/* Carves `count` elements off the arena (aligned); `what` names the tensor in messages. */
ldm_status ldm_arena_take(ldm_arena *a, size_t count, const char *what, ldm_buf *out);

/* Hands everything back, keeping the buffer. */
void ldm_arena_reset(ldm_arena *a);

uint64_t ldm_arena_capacity_bytes(const ldm_arena *a);
uint64_t ldm_arena_used_bytes(const ldm_arena *a);
const char *ldm_arena_name(const ldm_arena *a);
cl_mem ldm_arena_mem(const ldm_arena *a);

/* Blocking copies of `count` 4-byte elements between host memory and a device buffer. */
ldm_status ldm_buf_write(ldm_ctx *ctx, ldm_buf dst, const void *src, size_t count);
ldm_status ldm_buf_read(ldm_ctx *ctx, void *dst, ldm_buf src, size_t count);
/* Non-blocking device-to-device copy and fill, in elements. */
ldm_status ldm_buf_copy(ldm_ctx *ctx, ldm_buf dst, ldm_buf src, size_t count, cl_event *ev);
ldm_status ldm_buf_fill(ldm_ctx *ctx, ldm_buf dst, float value, size_t count);

/* Kernel argument helpers: each sets argument *index and advances it. A buffer takes two
 * arguments, the cl_mem and a cl_ulong element offset. */
ldm_status ldm_arg_buf(cl_kernel k, cl_uint *index, ldm_buf b);
ldm_status ldm_arg_int(cl_kernel k, cl_uint *index, int v);
ldm_status ldm_arg_uint(cl_kernel k, cl_uint *index, unsigned v);
ldm_status ldm_arg_ulong(cl_kernel k, cl_uint *index, uint64_t v);
ldm_status ldm_arg_float(cl_kernel k, cl_uint *index, float v);
ldm_status ldm_arg_local(cl_kernel k, cl_uint *index, size_t bytes);

/* Sets arguments 0, 1, ... of k from a format string, one letter per value:
 *   b  ldm_buf (two arguments: the cl_mem and a cl_ulong element offset)
 *   i  int      u  unsigned     l  uint64_t     f  float (passed as double)
 *   L  local memory: a size_t byte count
 * e.g. ldm_set_args(k, "iifbb", N, C, eps, y, x). Fails, setting nothing, unless the format sets
 * exactly the kernel's CL_KERNEL_NUM_ARGS arguments (the message names the kernel and both
 * counts). */
ldm_status ldm_set_args(cl_kernel k, const char *format, ...);

/* LDM_OK when k is the kernel named `kernel` (NULL: any) and takes exactly `given` arguments
 * (CL_KERNEL_NUM_ARGS); otherwise an error naming the kernel, the expected and the given count. */
ldm_status ldm_kernel_check_args(cl_kernel k, const char *kernel, cl_uint given);

/* Enqueues k over `dims` dimensions; each global size is rounded up to a multiple of the local
 * size (kernels guard their bounds), since not every device runs non-uniform work-groups.
 * local may be NULL (the driver picks). ev may be NULL; with a profiling queue it gives the
 * kernel's device time. The message of a failure names the kernel and its sizes. */
ldm_status ldm_launch(ldm_ctx *ctx, cl_kernel k, cl_uint dims, const size_t *global,
                      const size_t *local, cl_event *ev);

/* Device time of a completed event from a profiling queue, in milliseconds. */
ldm_status ldm_event_ms(cl_event ev, double *ms);

#ifdef __cplusplus
}
#endif
#endif
