/* src/core/gemm.c: the only file that calls CLBlast. Row-major SGEMM, plain and strided-batched,
 * always through the temporary-buffer entry points, so no call allocates device memory.
 *
 * CLBlast 1.5.3 has no temporary-buffer variant of strided-batched GEMM, and its indirect batched
 * path creates its own padded copies unless every operand already has the kernel's tile shape
 * (that condition does not depend on the offsets). CLBSGemmTempBufferSize, asked with zero
 * offsets, returns 0 exactly when neither path needs a copy; then one strided-batched call is
 * safe. Otherwise each item runs as a plain GEMM on the caller's temporary buffer. */
#include <clblast_c.h>
#include <stdatomic.h>
#include <stdio.h>

#include "internal.h"

/* Contexts open in this process. CLBlast caches the programs it builds, per OpenCL context, for
 * the whole process; each keeps its context alive. When the last ldm_ctx closes the cache is
 * emptied, so that the contexts end with the ldm_ctxs that made them, not in CLBlast's static
 * destructor at exit (which, under Oclgrind, releases the last context after LLVM's own
 * static state is gone: "corrupted double-linked list" at exit). */
static atomic_int open_contexts;

void ldm_gemm_context_opened(void) {
    atomic_fetch_add(&open_contexts, 1);
}

void ldm_gemm_context_closed(void) {
    if (atomic_fetch_sub(&open_contexts, 1) == 1) CLBlastClearCache();
}

static ldm_status clblast_fail(const char *file, int line, CLBlastStatusCode code,
                               const char *routine, const ldm_gemm_shape *s) {
    const char *hint = "";
    if (code == CLBlastInsufficientMemoryTemp)
        hint = " The temporary buffer is smaller than ldm_gemm_temp_bytes said (an ldmcl bug).";
    else if (code == CLBlastOpenCLOutOfResources || code == CLBlastTempBufferAllocFailure)
        hint = " The device ran out of memory or resources: reduce the batch size.";
    else if (code == CLBlastInvalidLocalMemUsage)
        hint = " CLBlast's tuning for this device asks for more local memory than it has.";
    return ldm_fail_at(file, line, LDM_ERR_CLBLAST,
                       "%s failed: %s (%d) for M=%zu N=%zu K=%zu trans_a=%d trans_b=%d lda=%zu "
                       "ldb=%zu ldc=%zu.%s",
                       routine, ldm_clblast_error_name(code), (int)code, s->M, s->N, s->K,
                       s->trans_a, s->trans_b, s->lda, s->ldb, s->ldc, hint);
}

#define CLBLAST_FAIL(code, routine, s) clblast_fail(__FILE__, __LINE__, (code), (routine), (s))

static ldm_status check_shape(const ldm_gemm_shape *s) {
    size_t a_cols = s->trans_a ? s->M : s->K;
    size_t b_cols = s->trans_b ? s->K : s->N;
    if (s->M == 0 || s->N == 0 || s->K == 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "GEMM with an empty size: M=%zu N=%zu K=%zu",
                        s->M, s->N, s->K);
    if (s->lda < a_cols || s->ldb < b_cols || s->ldc < s->N)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "GEMM leading dimensions too small: lda=%zu (needs >= %zu), ldb=%zu "
                        "(needs >= %zu), ldc=%zu (needs >= %zu)",
                        s->lda, a_cols, s->ldb, b_cols, s->ldc, s->N);
    return LDM_OK;
}

static CLBlastTranspose tr(int t) {
    return t ? CLBlastTransposeYes : CLBlastTransposeNo;
}

/* Temporary bytes for the shape at the given offsets (CLBlast counts elements). */
static ldm_status temp_bytes_at(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t off, size_t *bytes) {
    size_t elems = 0;
    CLBlastStatusCode c = CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, tr(s->trans_a),
                                                     tr(s->trans_b), s->M, s->N, s->K, off, s->lda,
                                                     off, s->ldb, off, s->ldc, &ctx->queue, &elems);
    if (c != CLBlastSuccess) return CLBLAST_FAIL(c, "CLBlastSGemmTempBufferSize", s);
    *bytes = elems * sizeof(float);
    return LDM_OK;
}

ldm_status ldm_gemm_temp_bytes(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t *bytes) {
    LDM_TRY(check_shape(s));
    /* A nonzero offset forces a copy of every operand the indirect path would use, so this is
     * the most any offsets can need. */
    return temp_bytes_at(ctx, s, 1, bytes);
}

ldm_status ldm_gemm_prepare(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t batch, int any_offset,
                            ldm_gemm_plan *plan) {
    LDM_TRY(check_shape(s));
    plan->batched_single = 0;
    if (batch > 1) {
        size_t aligned = 0;
        LDM_TRY(temp_bytes_at(ctx, s, 0, &aligned));
        if (aligned == 0) {
            plan->batched_single = 1;
            plan->temp_bytes = 0;
            return LDM_OK;
        }
        any_offset = 1; /* items after the first sit at offsets */
    }
    return temp_bytes_at(ctx, s, any_offset ? 1 : 0, &plan->temp_bytes);
}

ldm_status ldm_gemm_enqueue(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t batch, float alpha,
                            ldm_buf A, size_t stride_a, ldm_buf B, size_t stride_b, float beta,
                            ldm_buf C, size_t stride_c, cl_mem temp, const ldm_gemm_plan *plan,
                            cl_event *ev) {
    if (plan->batched_single) {
        CLBlastStatusCode c = CLBlastSgemmStridedBatched(
            CLBlastLayoutRowMajor, tr(s->trans_a), tr(s->trans_b), s->M, s->N, s->K, alpha, A.mem,
            A.off, s->lda, stride_a, B.mem, B.off, s->ldb, stride_b, beta, C.mem, C.off, s->ldc,
            stride_c, batch, &ctx->queue, ev);
        if (c != CLBlastSuccess) return CLBLAST_FAIL(c, "CLBlastSgemmStridedBatched", s);
        return LDM_OK;
    }
    for (size_t i = 0; i < batch; i++) {
        cl_event *item_ev = ev && i + 1 == batch ? ev : NULL;
        CLBlastStatusCode c = CLBlastSgemmWithTempBuffer(
            CLBlastLayoutRowMajor, tr(s->trans_a), tr(s->trans_b), s->M, s->N, s->K, alpha, A.mem,
            A.off + i * stride_a, s->lda, B.mem, B.off + i * stride_b, s->ldb, beta, C.mem,
            C.off + i * stride_c, s->ldc, &ctx->queue, item_ev, plan->temp_bytes ? temp : NULL);
        if (c != CLBlastSuccess) {
            ldm_status st = CLBLAST_FAIL(c, "CLBlastSgemmWithTempBuffer", s);
            if (batch > 1) ldm_error_prefix("item %zu of a strided-batched GEMM of %zu", i, batch);
            return st;
        }
    }
    return LDM_OK;
}

/* Checks that the caller's temporary buffer covers what the plan needs. */
static ldm_status check_temp(const ldm_gemm_shape *s, const ldm_gemm_plan *plan, ldm_buf temp,
                             size_t temp_bytes) {
    if (plan->temp_bytes > temp_bytes || (plan->temp_bytes > 0 && !temp.mem))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "GEMM M=%zu N=%zu K=%zu needs a temporary buffer of %zu bytes, was given "
                        "%zu; size it with ldm_gemm_temp_bytes",
                        s->M, s->N, s->K, plan->temp_bytes, temp.mem ? temp_bytes : 0);
    if (plan->temp_bytes > 0 && temp.off != 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "CLBlast takes its temporary buffer without an offset: give GEMM a buffer "
                        "of its own (offset %zu)",
                        temp.off);
    return LDM_OK;
}

ldm_status ldm_gemm(ldm_ctx *ctx, const ldm_gemm_shape *s, float alpha, ldm_buf A, ldm_buf B,
                    float beta, ldm_buf C, ldm_buf temp, size_t temp_bytes, cl_event *ev) {
    ldm_gemm_plan plan;
    LDM_TRY(ldm_gemm_prepare(ctx, s, 1, A.off || B.off || C.off, &plan));
    LDM_TRY(check_temp(s, &plan, temp, temp_bytes));
    return ldm_gemm_enqueue(ctx, s, 1, alpha, A, 0, B, 0, beta, C, 0, temp.mem, &plan, ev);
}

ldm_status ldm_gemm_strided_batched(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t batch,
                                    float alpha, ldm_buf A, size_t stride_a, ldm_buf B,
                                    size_t stride_b, float beta, ldm_buf C, size_t stride_c,
                                    ldm_buf temp, size_t temp_bytes, cl_event *ev) {
    if (batch == 0) return check_shape(s);
    ldm_gemm_plan plan;
    LDM_TRY(ldm_gemm_prepare(ctx, s, batch, A.off || B.off || C.off, &plan));
    LDM_TRY(check_temp(s, &plan, temp, temp_bytes));
    return ldm_gemm_enqueue(ctx, s, batch, alpha, A, stride_a, B, stride_b, beta, C, stride_c,
                            temp.mem, &plan, ev);
}
