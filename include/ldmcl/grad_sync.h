/* ldmcl/grad_sync.h: data-parallel gradients. A graph run whose trainable gradients come out
 * averaged over the ranks of a job (ldmcl/job.h): the graph's span of the gradient arena is cut
 * into buckets of whole parameters; the recorded launches are replayed in pieces, and after the
 * backward step that finishes a bucket's last parameter the bucket is brought to host memory
 * (mapped in place where the device shares host memory, else read into one pinned staging buffer
 * as large as the span) while the device goes on with the rest of backward; each bucket's sum over
 * the ranks (MPI_Iallreduce) starts as soon as its read is done, overlapping the backward still
 * running, and each bucket's average is written back as soon as its sum is done, before the
 * optimizer's launches, which follow in the same queue.
 *
 * The sums are the MPI library's MPI_SUM over MPI_FLOAT, bucket by bucket in a fixed order, so a
 * result never depends on timing; the average is the sum times 1/N. Every rank gets the same
 * values (so parameters stay identical); ldm_grad_sync_run on a job of one is ldm_graph_run. */
#ifndef LDMCL_GRAD_SYNC_H
#define LDMCL_GRAD_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/graph.h"
#include "ldmcl/job.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_grad_sync ldm_grad_sync;

/* For a compiled graph with a backward pass. bucket_bytes: the size of a bucket (0: 25 MiB as
 * PyTorch's DistributedDataParallel, but an eighth of the gradients when that is less, down to
 * 1 MiB, so that a small model overlaps too); a parameter is never split. */
ldm_status ldm_grad_sync_create(ldm_graph *g, ldm_job *job, size_t bucket_bytes,
                                ldm_grad_sync **out);
/* How a bucket reaches the host: AUTO maps it in place where the device shares host memory
 * (CL_DEVICE_HOST_UNIFIED_MEMORY: CPUs, integrated GPUs: no copy) and copies it through the
 * pinned staging elsewhere; MAP and STAGE choose (both give the same values). */
typedef enum ldm_grad_sync_host {
    LDM_GRAD_SYNC_AUTO = -1,
    LDM_GRAD_SYNC_MAP = 0,
    LDM_GRAD_SYNC_STAGE = 1
} ldm_grad_sync_host;
ldm_status ldm_grad_sync_create_with(ldm_graph *g, ldm_job *job, size_t bucket_bytes,
                                     ldm_grad_sync_host host, ldm_grad_sync **out);
void ldm_grad_sync_destroy(ldm_grad_sync *s);

/* Runs the graph once (ldm_graph_run) and averages its trainable gradients over the job: on
 * return they are final on the device (the writes are enqueued; commands enqueued later see
 * them). Gradients accumulated by earlier runs are part of what is averaged, so with gradient
 * accumulation only the last micro-batch's run needs to be this one. */
ldm_status ldm_grad_sync_run(ldm_grad_sync *s);

/* Averages the graph's trainable gradients as they are now (no run). */
ldm_status ldm_grad_sync_now(ldm_grad_sync *s);

/* Overlap on (the default) or off: off, ldm_grad_sync_run replays the whole run before reading
 * any bucket (what overlap buys, measured by ldmcl-bench --bench job-step). */
void ldm_grad_sync_set_overlap(ldm_grad_sync *s, int on);

typedef struct ldm_grad_sync_stats {
    size_t buckets;
    uint64_t bytes;     /* of one rank's gradients, per run */
    uint64_t runs;      /* synchronised runs so far */
    double comm_s;      /* summed over runs: from the first bucket's sum to the last's end */
    double exposed_s;   /* of that, after the last bucket's read (the backward pass done) */
    double last_comm_s; /* the last run's */
    double last_exposed_s;
} ldm_grad_sync_stats;
ldm_grad_sync_stats ldm_grad_sync_get_stats(const ldm_grad_sync *s);

#ifdef __cplusplus
}
#endif
#endif
