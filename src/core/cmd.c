/* src/core/cmd.c: command streams (see cmd.h). An immediate stream enqueues at once; a recording
 * keeps an array of launches (kernel objects with their arguments set, GEMMs with their plans,
 * fills and copies) and replays them in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef enum launch_kind { LAUNCH_KERNEL, LAUNCH_GEMM, LAUNCH_FILL, LAUNCH_COPY } launch_kind;

typedef struct launch {
    launch_kind kind;
    int label; /* index into labels */
    /* kernel */
    cl_kernel kernel;
    cl_uint dims;
    size_t global[3], local[3];
    int has_local;
    /* GEMM */
    ldm_gemm_shape shape;
    ldm_gemm_plan plan;
    size_t batch, stride_a, stride_b, stride_c;
    float alpha, beta;
    ldm_buf a, b, c;
    /* fill and copy */
    ldm_buf dst, src;
    float value;
    size_t count;
} launch;

struct ldm_cmd {
    ldm_ctx *ctx;
    int recording;
    launch *launches;
    size_t n, cap;
    char **labels;
    int n_labels, cap_labels;
    int current_label;
    cl_kernel *owned; /* kernel objects created for the recording, released with it */
    size_t n_owned, cap_owned;
    size_t temp_need; /* bytes of GEMM temporary buffer the launches need */
    ldm_arena *temp;  /* the GEMM temporary buffer */
};

static ldm_status cmd_new(ldm_ctx *ctx, int recording, ldm_cmd **out) {
    ldm_cmd *c = calloc(1, sizeof *c);
    if (!c) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    c->ctx = ctx;
    c->recording = recording;
    c->current_label = -1;
    *out = c;
    return LDM_OK;
}

ldm_cmd *ldm_ctx_immediate(ldm_ctx *ctx) {
    if (!ctx->immediate && cmd_new(ctx, 0, &ctx->immediate) != LDM_OK) return NULL;
    return ctx->immediate;
}

ldm_status ldm_cmd_create_recording(ldm_ctx *ctx, ldm_cmd **out) {
    return cmd_new(ctx, 1, out);
}

void ldm_cmd_destroy(ldm_cmd *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n_owned; i++)
        clReleaseKernel(c->owned[i]);
    free(c->owned);
    free(c->launches);
    for (int i = 0; i < c->n_labels; i++)
        free(c->labels[i]);
    free(c->labels);
    ldm_arena_destroy(c->temp);
    free(c);
}

ldm_ctx *ldm_cmd_ctx(const ldm_cmd *c) {
    return c->ctx;
}

int ldm_cmd_is_recording(const ldm_cmd *c) {
    return c->recording;
}

void ldm_cmd_set_label(ldm_cmd *c, const char *label) {
    if (!c->recording || !label) return;
    if (c->n_labels > 0 && strcmp(c->labels[c->n_labels - 1], label) == 0) {
        c->current_label = c->n_labels - 1;
        return;
    }
    if (c->n_labels == c->cap_labels) {
        int cap = c->cap_labels ? c->cap_labels * 2 : 64;
        char **grown = realloc(c->labels, (size_t)cap * sizeof *grown);
        if (!grown) return;
        c->labels = grown;
        c->cap_labels = cap;
    }
    char *copy = ldm_strdup(label);
    if (!copy) return;
    c->labels[c->n_labels] = copy;
    c->current_label = c->n_labels++;
}

size_t ldm_cmd_count(const ldm_cmd *c) {
    return c->n;
}

const char *ldm_cmd_launch_label(const ldm_cmd *c, size_t i) {
    if (i >= c->n || c->launches[i].label < 0) return "";
    return c->labels[c->launches[i].label];
}

const char *ldm_cmd_launch_kind(const ldm_cmd *c, size_t i, char *buf, size_t size) {
    if (i >= c->n || size == 0) return "";
    const launch *l = &c->launches[i];
    switch (l->kind) {
    case LAUNCH_GEMM:
        return "gemm";
    case LAUNCH_FILL:
        return "fill";
    case LAUNCH_COPY:
        return "copy";
    case LAUNCH_KERNEL:
        break;
    }
    if (clGetKernelInfo(l->kernel, CL_KERNEL_FUNCTION_NAME, size, buf, NULL) != CL_SUCCESS)
        snprintf(buf, size, "kernel");
    return buf;
}

static ldm_status push(ldm_cmd *c, const launch *l) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        launch *grown = realloc(c->launches, cap * sizeof *grown);
        if (!grown) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        c->launches = grown;
        c->cap = cap;
    }
    c->launches[c->n] = *l;
    c->launches[c->n].label = c->current_label;
    c->n++;
    return LDM_OK;
}

ldm_status ldm_cmd_kernel(ldm_cmd *c, const char *file, const char *kernel, const char *defines,
                          cl_kernel *out) {
    if (!c->recording) return ldm_kernel_get(c->ctx, file, kernel, defines, out);
    if (c->n_owned == c->cap_owned) {
        size_t cap = c->cap_owned ? c->cap_owned * 2 : 256;
        cl_kernel *grown = realloc(c->owned, cap * sizeof *grown);
        if (!grown) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        c->owned = grown;
        c->cap_owned = cap;
    }
    LDM_TRY(ldm_kernel_create(c->ctx, file, kernel, defines, out));
    c->owned[c->n_owned++] = *out;
    return LDM_OK;
}

ldm_status ldm_cmd_launch(ldm_cmd *c, cl_kernel k, cl_uint dims, const size_t *global,
                          const size_t *local) {
    if (!c->recording) return ldm_launch(c->ctx, k, dims, global, local, NULL);
    if (dims < 1 || dims > 3)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "a launch has 1 to 3 dimensions, not %u", dims);
    launch l;
    memset(&l, 0, sizeof l);
    l.kind = LAUNCH_KERNEL;
    l.kernel = k;
    l.dims = dims;
    l.has_local = local != NULL;
    for (cl_uint i = 0; i < dims; i++) {
        l.global[i] = global[i];
        l.local[i] = local ? local[i] : 1;
    }
    return push(c, &l);
}

/* The immediate stream's temporary buffer, grown to `bytes` when needed. */
static ldm_status immediate_temp(ldm_cmd *c, size_t bytes, cl_mem *mem) {
    *mem = NULL;
    if (bytes == 0) return LDM_OK;
    if (!c->temp || ldm_arena_capacity_bytes(c->temp) < bytes) {
        ldm_arena_destroy(c->temp);
        c->temp = NULL;
        LDM_TRY(ldm_arena_create(c->ctx, "GEMM temporary", bytes, &c->temp));
    }
    *mem = ldm_arena_mem(c->temp);
    return LDM_OK;
}

ldm_status ldm_cmd_gemm_batched(ldm_cmd *c, const ldm_gemm_shape *s, size_t batch, float alpha,
                                ldm_buf A, size_t stride_a, ldm_buf B, size_t stride_b, float beta,
                                ldm_buf C, size_t stride_c) {
    if (batch == 0) return LDM_OK;
    launch l;
    memset(&l, 0, sizeof l);
    l.kind = LAUNCH_GEMM;
    l.shape = *s;
    l.batch = batch;
    LDM_TRY(ldm_gemm_prepare(c->ctx, s, batch, A.off || B.off || C.off, &l.plan));
    if (!c->recording) {
        cl_mem temp;
        LDM_TRY(immediate_temp(c, l.plan.temp_bytes, &temp));
        return ldm_gemm_enqueue(c->ctx, s, batch, alpha, A, stride_a, B, stride_b, beta, C,
                                stride_c, temp, &l.plan, NULL);
    }
    l.alpha = alpha;
    l.beta = beta;
    l.a = A;
    l.b = B;
    l.c = C;
    l.stride_a = stride_a;
    l.stride_b = stride_b;
    l.stride_c = stride_c;
    if (l.plan.temp_bytes > c->temp_need) c->temp_need = l.plan.temp_bytes;
    return push(c, &l);
}

ldm_status ldm_cmd_gemm(ldm_cmd *c, const ldm_gemm_shape *s, float alpha, ldm_buf A, ldm_buf B,
                        float beta, ldm_buf C) {
    return ldm_cmd_gemm_batched(c, s, 1, alpha, A, 0, B, 0, beta, C, 0);
}

ldm_status ldm_cmd_fill(ldm_cmd *c, ldm_buf dst, float value, size_t count) {
    if (!c->recording) return ldm_buf_fill(c->ctx, dst, value, count);
    if (c->ctx->kernel_transfers) LDM_TRY(ldm_transfer_prepare(c->ctx)); /* not in replays */
    launch l;
    memset(&l, 0, sizeof l);
    l.kind = LAUNCH_FILL;
    l.dst = dst;
    l.value = value;
    l.count = count;
    return push(c, &l);
}

ldm_status ldm_cmd_copy(ldm_cmd *c, ldm_buf dst, ldm_buf src, size_t count) {
    if (!c->recording) return ldm_buf_copy(c->ctx, dst, src, count, NULL);
    if (c->ctx->kernel_transfers) LDM_TRY(ldm_transfer_prepare(c->ctx));
    launch l;
    memset(&l, 0, sizeof l);
    l.kind = LAUNCH_COPY;
    l.dst = dst;
    l.src = src;
    l.count = count;
    return push(c, &l);
}

/* Same routine, shapes and plan: CLBlast would build the same programs. */
static int same_gemm(const launch *a, const launch *b) {
    return a->shape.trans_a == b->shape.trans_a && a->shape.trans_b == b->shape.trans_b &&
           a->shape.M == b->shape.M && a->shape.N == b->shape.N && a->shape.K == b->shape.K &&
           a->batch == b->batch && a->plan.batched_single == b->plan.batched_single &&
           (a->plan.temp_bytes > 0) == (b->plan.temp_bytes > 0);
}

ldm_status ldm_cmd_finalize(ldm_cmd *c) {
    if (!c->recording) return LDM_OK;
    if (c->temp_need && !c->temp)
        LDM_TRY(ldm_arena_create(c->ctx, "GEMM temporary", c->temp_need, &c->temp));
    /* CLBlast builds its programs on a routine's first call. Call each distinct GEMM once now,
     * as C = 0 * A B + 1 * C, which leaves C as it is (the arenas behind a fresh recording are
     * zero-filled, so A B holds no infinity), so that no replay ever builds a program. */
    for (size_t i = 0; i < c->n; i++) {
        const launch *l = &c->launches[i];
        if (l->kind != LAUNCH_GEMM) continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = c->launches[j].kind == LAUNCH_GEMM && same_gemm(&c->launches[j], l);
        if (seen) continue;
        LDM_TRY(ldm_gemm_enqueue(c->ctx, &l->shape, l->batch, 0.0f, l->a, l->stride_a, l->b,
                                 l->stride_b, 1.0f, l->c, l->stride_c,
                                 c->temp ? ldm_arena_mem(c->temp) : NULL, &l->plan, NULL));
    }
    return ldm_ctx_finish(c->ctx);
}

static ldm_status replay_one(ldm_cmd *c, const launch *l, cl_event *ev) {
    switch (l->kind) {
    case LAUNCH_KERNEL:
        return ldm_launch(c->ctx, l->kernel, l->dims, l->global, l->has_local ? l->local : NULL,
                          ev);
    case LAUNCH_GEMM:
        if (l->plan.temp_bytes && !c->temp)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "a recording with GEMMs was replayed before ldm_cmd_finalize");
        return ldm_gemm_enqueue(c->ctx, &l->shape, l->batch, l->alpha, l->a, l->stride_a, l->b,
                                l->stride_b, l->beta, l->c, l->stride_c,
                                c->temp ? ldm_arena_mem(c->temp) : NULL, &l->plan, ev);
    case LAUNCH_FILL: {
        if (c->ctx->kernel_transfers)
            return ldm_transfer_fill(c->ctx, l->dst, l->value, l->count, ev);
        cl_int err = clEnqueueFillBuffer(c->ctx->queue, l->dst.mem, &l->value, sizeof l->value,
                                         l->dst.off * 4, l->count * 4, 0, NULL, ev);
        if (err != CL_SUCCESS)
            return LDM_CL_FAIL(err, "clEnqueueFillBuffer", "filling %zu elements", l->count);
        return LDM_OK;
    }
    case LAUNCH_COPY:
        return ldm_buf_copy(c->ctx, l->dst, l->src, l->count, ev);
    }
    return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "unknown launch kind %d", (int)l->kind);
}

/* A replay under ldm_ctx_profile_begin: each launch timed and added to the context's table. */
static ldm_status replay_into_profile(ldm_cmd *c) {
    double *ms = calloc(c->n ? c->n : 1, sizeof *ms);
    if (!ms) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_status st = ldm_cmd_replay_profiled(c, ms);
    char name[64];
    for (size_t i = 0; st == LDM_OK && i < c->n; i++)
        st = ldm_ctx_profile_add(c->ctx, ldm_cmd_launch_kind(c, i, name, sizeof name), ms[i]);
    free(ms);
    return st;
}

ldm_status ldm_cmd_replay(ldm_cmd *c) {
    if (c->ctx->profiling) return replay_into_profile(c);
    return ldm_cmd_replay_range(c, 0, c->n);
}

ldm_status ldm_cmd_replay_range(ldm_cmd *c, size_t from, size_t to) {
    if (from > to || to > c->n)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "launches %zu .. %zu of a recording of %zu", from,
                        to, c->n);
    for (size_t i = from; i < to; i++) {
        ldm_status st = replay_one(c, &c->launches[i], NULL);
        if (st != LDM_OK) {
            if (c->launches[i].label >= 0)
                ldm_error_prefix("replaying '%s'", c->labels[c->launches[i].label]);
            return st;
        }
    }
    return LDM_OK;
}

ldm_status ldm_cmd_replay_profiled(ldm_cmd *c, double *ms_by_launch) {
    for (size_t i = 0; i < c->n; i++) {
        /* Markers around each launch: GEMMs may enqueue several kernels. */
        cl_event before = NULL, after = NULL;
        cl_int err = clEnqueueMarkerWithWaitList(c->ctx->queue, 0, NULL, &before);
        if (err != CL_SUCCESS) return LDM_CL_FAIL(err, "clEnqueueMarkerWithWaitList", "profiling");
        ldm_status st = replay_one(c, &c->launches[i], NULL);
        if (st == LDM_OK) {
            err = clEnqueueMarkerWithWaitList(c->ctx->queue, 0, NULL, &after);
            if (err != CL_SUCCESS)
                st = LDM_CL_FAIL(err, "clEnqueueMarkerWithWaitList", "profiling");
        }
        cl_ulong t0 = 0, t1 = 0;
        if (st == LDM_OK) {
            err = clWaitForEvents(1, &after);
            if (err == CL_SUCCESS)
                err =
                    clGetEventProfilingInfo(before, CL_PROFILING_COMMAND_END, sizeof t0, &t0, NULL);
            if (err == CL_SUCCESS)
                err =
                    clGetEventProfilingInfo(after, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
            if (err != CL_SUCCESS)
                st = LDM_CL_FAIL(err, "clGetEventProfilingInfo", "profiling launch %zu", i);
        }
        clReleaseEvent(before);
        if (after) clReleaseEvent(after);
        if (st != LDM_OK) return st;
        ms_by_launch[i] += (double)(t1 - t0) * 1e-6;
    }
    return LDM_OK;
}

ldm_status ldm_cmd_set_float_arg(cl_kernel k, cl_uint index, float v) {
    return ldm_arg_float(k, &index, v);
}

ldm_status ldm_cmd_set_int_arg(cl_kernel k, cl_uint index, int v) {
    return ldm_arg_int(k, &index, v);
}
