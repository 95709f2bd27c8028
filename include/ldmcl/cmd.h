/* ldmcl/cmd.h: command streams. Every op launches its kernels and GEMMs through an ldm_cmd, which
 * is either
 *   - immediate: launches go to the context's queue at once (tests, one-off work), or
 *   - recording: launches are stored with their arguments already set, each kernel being an
 *     object of its own, and ldm_cmd_replay enqueues them all again, as often as wanted, with no
 *     allocation, no program build and no host synchronisation.
 * Op code is written once against ldm_cmd and serves both. */
#ifndef LDMCL_CMD_H
#define LDMCL_CMD_H

#include <stddef.h>

#include "ldmcl/buffer.h"
#include "ldmcl/context.h"
#include "ldmcl/gemm.h"
#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_cmd ldm_cmd;

/* The context's immediate stream (owned by the context). */
ldm_cmd *ldm_ctx_immediate(ldm_ctx *ctx);

ldm_status ldm_cmd_create_recording(ldm_ctx *ctx, ldm_cmd **out);
void ldm_cmd_destroy(ldm_cmd *c);
ldm_ctx *ldm_cmd_ctx(const ldm_cmd *c);
int ldm_cmd_is_recording(const ldm_cmd *c);

/* Names the launches that follow (an op's label), for profiles and messages. */
void ldm_cmd_set_label(ldm_cmd *c, const char *label);

/* A kernel to set arguments on and launch next: the context's shared kernel when immediate, a new
 * kernel object owned by the recording when recording. */
ldm_status ldm_cmd_kernel(ldm_cmd *c, const char *file, const char *kernel, const char *defines,
                          cl_kernel *out);
/* Launches (or records) k; global sizes are rounded up to multiples of local. */
ldm_status ldm_cmd_launch(ldm_cmd *c, cl_kernel k, cl_uint dims, const size_t *global,
                          const size_t *local);

/* GEMMs as in gemm.h; the temporary buffer is the stream's own. */
ldm_status ldm_cmd_gemm(ldm_cmd *c, const ldm_gemm_shape *s, float alpha, ldm_buf A, ldm_buf B,
                        float beta, ldm_buf C);
ldm_status ldm_cmd_gemm_batched(ldm_cmd *c, const ldm_gemm_shape *s, size_t batch, float alpha,
                                ldm_buf A, size_t stride_a, ldm_buf B, size_t stride_b, float beta,
                                ldm_buf C, size_t stride_c);

ldm_status ldm_cmd_fill(ldm_cmd *c, ldm_buf dst, float value, size_t count);
ldm_status ldm_cmd_copy(ldm_cmd *c, ldm_buf dst, ldm_buf src, size_t count);

/* Recording: allocates what the recorded launches need (the GEMM temporary buffer) and has
 * CLBlast build its programs (each distinct GEMM runs once as C = 0*AB + 1*C, which changes no
 * output of zero-filled arenas). Call once after the last launch is recorded and before the
 * first replay; waits for the device. */
ldm_status ldm_cmd_finalize(ldm_cmd *c);

/* Enqueues every recorded launch in order. Does not wait. */
ldm_status ldm_cmd_replay(ldm_cmd *c);
/* Enqueues recorded launches from .. to-1 (a replay in pieces, with other commands between;
 * never profiled). Does not wait. */
ldm_status ldm_cmd_replay_range(ldm_cmd *c, size_t from, size_t to);

/* Enqueues every recorded launch with a profiling event and adds each launch's device time in
 * milliseconds to ms_by_launch[i] (ldm_cmd_count entries). Waits for the device. */
ldm_status ldm_cmd_replay_profiled(ldm_cmd *c, double *ms_by_launch);

size_t ldm_cmd_count(const ldm_cmd *c);
/* The label of recorded launch i. */
const char *ldm_cmd_launch_label(const ldm_cmd *c, size_t i);
/* What recorded launch i runs: its kernel's function name (written into buf), or "gemm", "fill"
 * or "copy". */
const char *ldm_cmd_launch_kind(const ldm_cmd *c, size_t i, char *buf, size_t size);

/* Changes a scalar argument of a recorded kernel before the next replay (a step counter, a
 * learning rate). */
ldm_status ldm_cmd_set_float_arg(cl_kernel k, cl_uint index, float v);
ldm_status ldm_cmd_set_int_arg(cl_kernel k, cl_uint index, int v);

#ifdef __cplusplus
}
#endif
#endif
