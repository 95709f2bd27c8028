/* src/core/gemm.c: the only file that calls CLBlast. Row-major SGEMM, plain and strided-batched,
 * always through the temporary-buffer entry points, so no call allocates device memory.
 *
 * CLBlast 1.5.3 has no temporary-buffer variant of strided-batched GEMM, and its indirect batched
 * path creates its own padded copies unless every operand already has the kernel's tile shape
 * (that condition does not depend on the offsets). CLBSGemmTempBufferSize, asked with zero
 * offsets, returns 0 exactly when neither path needs a copy; then one strided-batched call is
 * safe. Otherwise each item runs as a plain GEMM on the caller's temporary buffer. */
#include <clblast_c.h>
#include <stdio.h>

#include "internal.h"

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

ldm_status ldm_gemm(ldm_ctx *ctx, const ldm_gemm_shape *s, float alpha, ldm_buf A, ldm_buf B,
                    float beta, ldm_buf C, ldm_buf temp, size_t temp_bytes, cl_event *ev) {
    LDM_TRY(check_shape(s));
    size_t need = 0;
    LDM_TRY(temp_bytes_at(ctx, s, A.off || B.off || C.off ? 1 : 0, &need));
    if (need > temp_bytes || (need > 0 && !temp.mem))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "GEMM M=%zu N=%zu K=%zu needs a temporary buffer of %zu bytes, was given "
                        "%zu; size it with ldm_gemm_temp_bytes",
                        s->M, s->N, s->K, need, temp.mem ? temp_bytes : 0);
    if (need > 0 && temp.off != 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "CLBlast takes its temporary buffer without an offset: give GEMM a buffer "
                        "of its own (offset %zu)",
                        temp.off);
    CLBlastStatusCode c = CLBlastSgemmWithTempBuffer(
        CLBlastLayoutRowMajor, tr(s->trans_a), tr(s->trans_b), s->M, s->N, s->K, alpha, A.mem,
        A.off, s->lda, B.mem, B.off, s->ldb, beta, C.mem, C.off, s->ldc, &ctx->queue, ev,
        need > 0 ? temp.mem : NULL);
    if (c != CLBlastSuccess) return CLBLAST_FAIL(c, "CLBlastSgemmWithTempBuffer", s);
    return LDM_OK;
}

ldm_status ldm_gemm_strided_batched(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t batch,
                                    float alpha, ldm_buf A, size_t stride_a, ldm_buf B,
                                    size_t stride_b, float beta, ldm_buf C, size_t stride_c,
                                    ldm_buf temp, size_t temp_bytes, cl_event *ev) {
    LDM_TRY(check_shape(s));
    if (batch == 0) return LDM_OK;
    size_t need_aligned = 0;
    LDM_TRY(temp_bytes_at(ctx, s, 0, &need_aligned));
    if (need_aligned == 0) {
        CLBlastStatusCode c = CLBlastSgemmStridedBatched(
            CLBlastLayoutRowMajor, tr(s->trans_a), tr(s->trans_b), s->M, s->N, s->K, alpha, A.mem,
            A.off, s->lda, stride_a, B.mem, B.off, s->ldb, stride_b, beta, C.mem, C.off, s->ldc,
            stride_c, batch, &ctx->queue, ev);
        if (c != CLBlastSuccess) return CLBLAST_FAIL(c, "CLBlastSgemmStridedBatched", s);
        return LDM_OK;
    }
    for (size_t i = 0; i < batch; i++) {
        ldm_buf a = {A.mem, A.off + i * stride_a}, b = {B.mem, B.off + i * stride_b};
        ldm_buf c = {C.mem, C.off + i * stride_c};
        cl_event item_ev = NULL;
        ldm_status st = ldm_gemm(ctx, s, alpha, a, b, beta, c, temp, temp_bytes,
                                 ev && i + 1 == batch ? &item_ev : NULL);
        if (st != LDM_OK) {
            ldm_error_prefix("item %zu of a strided-batched GEMM of %zu", i, batch);
            return st;
        }
        if (ev && i + 1 == batch) *ev = item_ev;
    }
    return LDM_OK;
}
