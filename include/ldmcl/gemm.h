/* ldmcl/gemm.h: the one place that calls CLBlast. Row-major SGEMM, plain and strided-batched,
 * on (cl_mem, element offset) operands:
 *     C = alpha * op(A) * op(B) + beta * C,   op(A) [M, K], op(B) [K, N], C [M, N].
 * CLBlast's faster "indirect" path pads and transposes operands into a temporary buffer. The
 * wrapper hands it a buffer the caller planned with ldm_gemm_temp_bytes, so nothing is allocated
 * during a training step: a GEMM that needs more temporary memory than was given fails with
 * LDM_ERR_INVALID_ARGUMENT instead of allocating. */
#ifndef LDMCL_GEMM_H
#define LDMCL_GEMM_H

#include <stddef.h>

#include "ldmcl/buffer.h"
#include "ldmcl/context.h"
#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_gemm_shape {
    int trans_a,
        trans_b; /* 0: A is [M, K] (lda >= K); 1: A is stored [K, M] (lda >= M); same for B */
    size_t M, N, K;
    size_t lda, ldb, ldc; /* row strides in elements */
} ldm_gemm_shape;

/* Bytes of temporary buffer this GEMM needs (0 for CLBlast's direct path or aligned operands).
 * A strided-batched GEMM needs the same as one of its items. */
ldm_status ldm_gemm_temp_bytes(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t *bytes);

/* C = alpha op(A) op(B) + beta C. temp: a buffer of at least ldm_gemm_temp_bytes (its .mem may
 * be NULL when that is 0). ev may be NULL. */
ldm_status ldm_gemm(ldm_ctx *ctx, const ldm_gemm_shape *s, float alpha, ldm_buf A, ldm_buf B,
                    float beta, ldm_buf C, ldm_buf temp, size_t temp_bytes, cl_event *ev);

/* The same over `batch` items; item i uses A.off + i*stride_a, and so on. When CLBlast needs no
 * temporary buffer for the shape this is one strided-batched call; otherwise one call per item,
 * each reusing `temp`. ev (may be NULL) receives the event of the last enqueued call. */
ldm_status ldm_gemm_strided_batched(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t batch,
                                    float alpha, ldm_buf A, size_t stride_a, ldm_buf B,
                                    size_t stride_b, float beta, ldm_buf C, size_t stride_c,
                                    ldm_buf temp, size_t temp_bytes, cl_event *ev);

/* ---- Tuning ----------------------------------------------------------------------------------
 * CLBlast ships kernel parameters for many GPUs but none for CPU drivers such as pocl, where its
 * defaults run the GEMMs of small convolutions several times slower than they can.
 * ldm_gemm_tune times CLBlast's defaults and a set of candidate parameters on the GEMMs of
 * small-UNet training (checking each candidate's results against a host product first), writes
 * the fastest to the device's tuning file in the kernel cache directory, and applies it. Every
 * context opened later on that device applies the file (unless its options say no_gemm_tuning).
 * CLBlast keeps parameters process-wide and cannot restore its defaults, so: tune in a fresh
 * process, from a context opened with no_gemm_tuning = 1, before any GEMM is planned; and when
 * the defaults win, only later processes run them. quick: a few candidates on tiny shapes (for
 * tests). */
typedef struct ldm_gemm_tune_report {
    double default_ms; /* the workload's time with CLBlast's defaults */
    double tuned_ms;   /* with the chosen parameters (default_ms when those are the defaults) */
    int candidates;    /* parameter sets timed, the defaults included */
    int rejected;      /* of those, the ones CLBlast refused or that computed wrong results */
    char chosen[1024]; /* the chosen parameters, or "CLBlast's defaults" */
    char path[4096];   /* the tuning file written */
} ldm_gemm_tune_report;
ldm_status ldm_gemm_tune(ldm_ctx *ctx, int quick, ldm_gemm_tune_report *report);

/* The device's tuning file (whether or not it exists); fails when the kernel cache is off. */
ldm_status ldm_gemm_tuning_path(const ldm_ctx *ctx, char *buf, size_t size);

/* Whether this context's GEMMs run parameters from a tuning file. */
int ldm_ctx_gemm_tuned(const ldm_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
