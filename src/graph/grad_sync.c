/* src/graph/grad_sync.c: a graph run with its gradients averaged over a job (see
 * ldmcl/grad_sync.h): buckets of whole parameters, the backward step after which each is final
 * (from the tape: the last step that writes a parameter's gradient), the replay in pieces with a
 * read of each bucket between them, and the sums over the job as the reads complete. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph_internal.h"
#include "ldmcl/grad_sync.h"
#include "params.h"

/* 25 MiB as PyTorch's DistributedDataParallel, but at least 8 buckets down to 1 MiB each, so
 * that a small model's sum overlaps its backward too */
#define MAX_BUCKET_BYTES ((size_t)25 << 20)
#define MIN_BUCKET_BYTES ((size_t)1 << 20)

typedef struct bucket {
    size_t off, count; /* in the gradient arena, elements */
    size_t ready;      /* replay launches [0, ready) before the bucket is final */
    cl_event read;
    int sum;
    float *mapped; /* LDM_GRAD_SYNC_MAP: the bucket mapped in place while it is summed */
} bucket;

struct ldm_grad_sync {
    ldm_graph *g;
    ldm_job *job;
    ldm_ctx *ctx;
    bucket *b; /* by readiness */
    size_t n;
    int active;     /* a job of more than one, with gradients */
    int map;        /* the buckets mapped in place, else copied through the staging */
    cl_mem staging; /* pinned host memory, mapped once at host */
    float *host;    /* host[k] is gradient arena element span_off + k */
    ldm_grad_sync_stats stats;
    int after; /* ldm_grad_sync_set_overlap(s, 0): the sums after the whole run */
};

static int by_ready(const void *a, const void *b) {
    const bucket *x = a, *y = b;
    if (x->ready != y->ready) return x->ready < y->ready ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

typedef struct segment {
    size_t off, ready;
} segment;

static int by_off(const void *a, const void *b) {
    const segment *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* The graph's trainable parameters as (gradient offset, the launches before it is final). */
static ldm_status segments(const ldm_graph *g, segment **out, size_t *n_out) {
    segment *seg = malloc((size_t)(g->n_params ? g->n_params : 1) * sizeof *seg);
    if (!seg) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    size_t n = 0;
    for (int i = 0; i < g->n_params; i++) {
        ldm_tensor *t = g->params[i];
        if (!t->trainable || !t->grad) continue;
        size_t ready = 0;
        for (int j = 0; j < g->n_steps; j++)
            for (int k = 0; k < g->steps[j].node->n_in; k++)
                if (g->steps[j].din[k] && g->steps[j].din[k]->owner == t) ready = g->bwd_end[j];
        seg[n++] = (segment){t->entry->grad.off, ready};
    }
    qsort(seg, n, sizeof *seg, by_off);
    *out = seg;
    *n_out = n;
    return LDM_OK;
}

/* Buckets of whole parameters, each about bucket_bytes, covering the graph's span. */
static ldm_status make_buckets(ldm_grad_sync *s, size_t bucket_bytes) {
    const ldm_graph *g = s->g;
    segment *seg = NULL;
    size_t n_seg = 0;
    LDM_TRY(segments(g, &seg, &n_seg));
    s->b = calloc(n_seg ? n_seg : 1, sizeof *s->b);
    if (!s->b) {
        free(seg);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    size_t end = g->span_off + g->span_count, per = bucket_bytes / 4 ? bucket_bytes / 4 : 1;
    for (size_t i = 0; i < n_seg; i++) {
        size_t seg_end = i + 1 < n_seg ? seg[i + 1].off : end;
        bucket *cur = s->n ? &s->b[s->n - 1] : NULL;
        if (!cur || cur->count >= per) {
            cur = &s->b[s->n++];
            cur->off = i ? seg[i].off : g->span_off;
        }
        cur->count = seg_end - cur->off;
        if (seg[i].ready > cur->ready) cur->ready = seg[i].ready;
    }
    free(seg);
    qsort(s->b, s->n, sizeof *s->b, by_ready);
    return LDM_OK;
}

ldm_status ldm_grad_sync_create(ldm_graph *g, ldm_job *job, size_t bucket_bytes,
                                ldm_grad_sync **out) {
    return ldm_grad_sync_create_with(g, job, bucket_bytes, LDM_GRAD_SYNC_AUTO, out);
}

/* Whether the device shares host memory (CL_DEVICE_HOST_UNIFIED_MEMORY: CPUs, integrated GPUs). */
static int shares_host_memory(ldm_ctx *ctx) {
    cl_bool unified = CL_FALSE;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified,
                        NULL) != CL_SUCCESS)
        return 0;
    return unified == CL_TRUE;
}

ldm_status ldm_grad_sync_create_with(ldm_graph *g, ldm_job *job, size_t bucket_bytes,
                                     ldm_grad_sync_host host, ldm_grad_sync **out) {
    *out = NULL;
    if (!g->compiled || !g->has_backward || !g->bwd_end)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "gradients are averaged over a job for a compiled graph with a backward "
                        "pass");
    ldm_grad_sync *s = calloc(1, sizeof *s);
    if (!s) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    s->g = g;
    s->job = job;
    s->ctx = g->ctx;
    size_t bytes = g->span_count * 4;
    if (!bucket_bytes) {
        bucket_bytes = bytes / 8 < MAX_BUCKET_BYTES ? bytes / 8 : MAX_BUCKET_BYTES;
        if (bucket_bytes < MIN_BUCKET_BYTES) bucket_bytes = MIN_BUCKET_BYTES;
    }
    ldm_status st = make_buckets(s, bucket_bytes);
    s->active = ldm_job_size(job) > 1 && bytes > 0;
    s->map =
        host == LDM_GRAD_SYNC_MAP || (host == LDM_GRAD_SYNC_AUTO && shares_host_memory(s->ctx));
    if (st == LDM_OK && s->active && !s->map) {
        cl_int err;
        s->staging = clCreateBuffer(s->ctx->context, CL_MEM_ALLOC_HOST_PTR | CL_MEM_READ_WRITE,
                                    bytes, NULL, &err);
        if (err != CL_SUCCESS)
            st = LDM_CL_FAIL(err, "clCreateBuffer", "the gradients' host staging (%zu bytes)",
                             bytes);
        if (st == LDM_OK) {
            s->host = clEnqueueMapBuffer(s->ctx->queue, s->staging, CL_TRUE,
                                         CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0, NULL, NULL, &err);
            if (err != CL_SUCCESS)
                st = LDM_CL_FAIL(err, "clEnqueueMapBuffer", "mapping the gradients' staging");
        }
    }
    s->stats.buckets = s->n;
    s->stats.bytes = (uint64_t)bytes;
    if (st != LDM_OK) {
        ldm_grad_sync_destroy(s);
        return st;
    }
    *out = s;
    return LDM_OK;
}

void ldm_grad_sync_destroy(ldm_grad_sync *s) {
    if (!s) return;
    for (size_t k = 0; k < s->n; k++) {
        if (s->b[k].mapped) /* a sum that failed half-way */
            clEnqueueUnmapMemObject(s->ctx->queue, ldm_arena_mem(s->g->store->grads),
                                    s->b[k].mapped, 0, NULL, NULL);
        if (s->b[k].read) clReleaseEvent(s->b[k].read);
    }
    if (s->map) clFinish(s->ctx->queue);
    if (s->host) {
        clEnqueueUnmapMemObject(s->ctx->queue, s->staging, s->host, 0, NULL, NULL);
        clFinish(s->ctx->queue);
    }
    if (s->staging) clReleaseMemObject(s->staging);
    free(s->b);
    free(s);
}

void ldm_grad_sync_set_overlap(ldm_grad_sync *s, int on) {
    s->after = !on;
}

ldm_grad_sync_stats ldm_grad_sync_get_stats(const ldm_grad_sync *s) {
    return s->stats;
}

/* The bucket's values on the host (valid once its read or map is done). */
static float *on_host(const ldm_grad_sync *s, const bucket *b) {
    return s->map ? b->mapped : s->host + (b->off - s->g->span_off);
}

/* Enqueues the bucket's way to the host: a map in place, or a read into the staging. */
static ldm_status read_bucket(ldm_grad_sync *s, bucket *b) {
    cl_mem grads = ldm_arena_mem(s->g->store->grads);
    if (b->read) clReleaseEvent(b->read);
    b->read = NULL;
    cl_int err;
    if (s->map) { /* the rest of backward writes other parts of the arena, never this one */
        b->mapped = clEnqueueMapBuffer(s->ctx->queue, grads, CL_FALSE, CL_MAP_READ | CL_MAP_WRITE,
                                       b->off * 4, b->count * 4, 0, NULL, &b->read, &err);
        if (err != CL_SUCCESS)
            return LDM_CL_FAIL(err, "clEnqueueMapBuffer", "mapping a gradient bucket");
        return LDM_OK;
    }
    err = clEnqueueReadBuffer(s->ctx->queue, grads, CL_FALSE, b->off * 4, b->count * 4,
                              on_host(s, b), 0, NULL, &b->read);
    if (err != CL_SUCCESS)
        return LDM_CL_FAIL(err, "clEnqueueReadBuffer", "reading a gradient bucket to the host");
    return LDM_OK;
}

static ldm_status event_done(cl_event ev, int *done) {
    cl_int state;
    cl_int err = clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof state, &state, NULL);
    if (err != CL_SUCCESS) return LDM_CL_FAIL(err, "clGetEventInfo", "a gradient bucket's read");
    if (state < 0)
        return LDM_CL_FAIL(state, "clEnqueueReadBuffer", "reading a gradient bucket to the host");
    *done = state == CL_COMPLETE;
    return LDM_OK;
}

/* Starts each bucket's sum as its read completes, in bucket order (so that every rank starts
 * them in the same order), letting earlier sums progress meanwhile. *first: when the first sum
 * started; *backward_done: when the backward pass was seen done: the last bucket's read done
 * (but for the few launches after its last parameter), or with overlap off the first's. */
static ldm_status start_sums(ldm_grad_sync *s, double *first, double *backward_done) {
    cl_int err = clFlush(s->ctx->queue);
    if (err != CL_SUCCESS) return LDM_CL_FAIL(err, "clFlush", "averaging gradients");
    for (size_t k = 0; k < s->n; k++) {
        bucket *b = &s->b[k];
        for (long idle = 0;; idle++) {
            int read = 0, summed;
            LDM_TRY(event_done(b->read, &read));
            if (read) break;
            for (size_t e = 0; e < k; e++) /* progress for the sums in flight */
                LDM_TRY(ldm_job_sum_test(s->job, s->b[e].sum, &summed));
            if (idle > 64) {
                struct timespec ts = {0, idle > 256 ? 2000000 : 50000};
                nanosleep(&ts, NULL);
            }
        }
        if (k == 0) *first = ldm_now_s();
        if (k == 0 || !s->after) *backward_done = ldm_now_s();
        LDM_TRY(ldm_job_sum_start(s->job, on_host(s, b), b->count, &b->sum));
    }
    return LDM_OK;
}

/* Each bucket's average written back as soon as its sum is done (in the order they started,
 * which is the order MPI completes them): only the last bucket's write follows the last sum. */
static ldm_status write_back(ldm_grad_sync *s, double *done) {
    cl_mem grads = ldm_arena_mem(s->g->store->grads);
    float inv = 1.0f / (float)ldm_job_size(s->job);
    for (size_t k = 0; k < s->n; k++) {
        bucket *b = &s->b[k];
        LDM_TRY(ldm_job_sum_wait(s->job, b->sum, "the gradients' sum over the job"));
        float *h = on_host(s, b);
        for (size_t i = 0; i < b->count; i++)
            h[i] *= inv;
        cl_int err;
        if (s->map) {
            err = clEnqueueUnmapMemObject(s->ctx->queue, grads, h, 0, NULL, NULL);
            b->mapped = NULL;
            if (err != CL_SUCCESS)
                return LDM_CL_FAIL(err, "clEnqueueUnmapMemObject", "unmapping a gradient bucket");
        } else { /* the staging stays untouched until a later read, queued after this */
            err = clEnqueueWriteBuffer(s->ctx->queue, grads, CL_FALSE, b->off * 4, b->count * 4, h,
                                       0, NULL, NULL);
            if (err != CL_SUCCESS)
                return LDM_CL_FAIL(err, "clEnqueueWriteBuffer", "writing averaged gradients back");
        }
        clFlush(s->ctx->queue);
    }
    *done = ldm_now_s();
    return ldm_job_sum_wait_all(s->job, "the gradients' sum over the job"); /* (all done) */
}

static ldm_status sync(ldm_grad_sync *s, int run) {
    ldm_cmd *c = s->g->cmd;
    size_t at = 0;
    if (run && s->after) { /* the whole run, then every read */
        LDM_TRY(ldm_cmd_replay_range(c, 0, ldm_cmd_count(c)));
        run = 0;
    }
    for (size_t k = 0; k < s->n; k++) {
        size_t to = run ? s->b[k].ready : 0;
        if (to > at) {
            LDM_TRY(ldm_cmd_replay_range(c, at, to));
            at = to;
        }
        LDM_TRY(read_bucket(s, &s->b[k]));
    }
    if (run) LDM_TRY(ldm_cmd_replay_range(c, at, ldm_cmd_count(c)));
    double first = 0, backward_done = 0;
    LDM_TRY(start_sums(s, &first, &backward_done));
    double done = 0;
    LDM_TRY(write_back(s, &done));
    s->stats.runs++;
    s->stats.last_comm_s = done - first;
    s->stats.last_exposed_s = done - backward_done;
    s->stats.comm_s += s->stats.last_comm_s;
    s->stats.exposed_s += s->stats.last_exposed_s;
    return LDM_OK;
}

ldm_status ldm_grad_sync_run(ldm_grad_sync *s) {
    if (!s->active) return ldm_graph_run(s->g);
    ldm_status st = sync(s, 1);
    if (st != LDM_OK) ldm_error_prefix("a data-parallel training step");
    return st;
}

ldm_status ldm_grad_sync_now(ldm_grad_sync *s) {
    if (!s->active) return LDM_OK;
    return sync(s, 0);
}
