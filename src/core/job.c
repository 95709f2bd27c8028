/* src/core/job.c: the processes of a data-parallel job (see ldmcl/job.h): MPI when the build
 * has it (LDMCL_HAVE_MPI) and a launcher started the process, else a job of one. Every wait is a
 * polling loop with a deadline, so that a dead or hung rank ends in a message, not a hang; rank 0
 * keeps a roll call (each other rank tells it the number of every collective it begins) to name
 * the ranks that never arrived. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fail.h"
#include "internal.h"
#include "ldmcl/job.h"

#ifdef LDMCL_HAVE_MPI
#include <mpi.h>
#endif

#define ROLL_TAG 4242
#define ROLL_RING 64 /* sends of the roll call in flight per rank */

struct ldm_job {
    int rank, size, local_rank, local_size;
    double timeout_s;
    int owns_mpi;      /* MPI_Finalize at the end */
    uint64_t seq;      /* collectives begun, the same count on every rank */
    uint64_t *arrived; /* rank 0: the last collective each rank said it began */
#ifdef LDMCL_HAVE_MPI
    MPI_Comm world, local;
    uint64_t *roll_in;      /* rank 0: receive buffers, one per rank */
    MPI_Request *roll_recv; /* rank 0: one pending receive per rank */
    uint64_t roll_out[ROLL_RING];
    MPI_Request roll_send[ROLL_RING];
    MPI_Request pending[LDM_JOB_MAX_PENDING];
    int n_pending;
#endif
};

int ldm_job_rank(const ldm_job *d) {
    return d ? d->rank : 0;
}
int ldm_job_size(const ldm_job *d) {
    return d ? d->size : 1;
}
int ldm_job_local_rank(const ldm_job *d) {
    return d ? d->local_rank : 0;
}
int ldm_job_local_size(const ldm_job *d) {
    return d ? d->local_size : 1;
}
void ldm_job_set_timeout(ldm_job *d, double seconds) {
    if (d && seconds > 0) d->timeout_s = seconds;
}
double ldm_job_timeout(const ldm_job *d) {
    return d ? d->timeout_s : 0;
}

#ifndef LDMCL_HAVE_MPI

int ldm_job_built(void) {
    return 0;
}
const char *ldm_job_library(void) {
    return "";
}

ldm_status ldm_job_init(int *argc, char ***argv, ldm_job **out) {
    (void)argc;
    (void)argv;
    *out = NULL;
    const char *n =
        getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (n && atoi(n) > 1)
        return LDM_FAIL(LDM_ERR_JOB,
                        "started by mpirun as one of %s processes, but this ldmcl was built "
                        "without MPI: rebuild with -DLDMCL_MPI=ON (Debian: libopenmpi-dev)",
                        n);
    ldm_job *d = calloc(1, sizeof *d);
    if (!d) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    d->size = d->local_size = 1;
    d->timeout_s = 600;
    *out = d;
    return LDM_OK;
}

void ldm_job_finalize(ldm_job *d) {
    free(d);
}

void ldm_job_abort(ldm_job *d, int code) {
    (void)d;
    exit(code);
}

ldm_status ldm_job_sum(ldm_job *d, float *x, size_t n, const char *what) {
    (void)d, (void)x, (void)n, (void)what;
    return LDM_OK;
}
ldm_status ldm_job_sum_f64(ldm_job *d, double *x, size_t n, const char *what) {
    (void)d, (void)x, (void)n, (void)what;
    return LDM_OK;
}
ldm_status ldm_job_min_int(ldm_job *d, int *x, size_t n, const char *what) {
    (void)d, (void)x, (void)n, (void)what;
    return LDM_OK;
}
ldm_status ldm_job_max_u8(ldm_job *d, uint8_t *x, size_t n, const char *what) {
    (void)d, (void)x, (void)n, (void)what;
    return LDM_OK;
}
ldm_status ldm_job_broadcast(ldm_job *d, void *x, size_t bytes, int root, const char *what) {
    (void)d, (void)x, (void)bytes, (void)root, (void)what;
    return LDM_OK;
}
ldm_status ldm_job_gather(ldm_job *d, const float *mine, const size_t *counts, float *all, int root,
                          const char *what) {
    (void)d, (void)root, (void)what;
    if (all && all != mine) memcpy(all, mine, counts[0] * sizeof *all);
    return LDM_OK;
}
ldm_status ldm_job_agree(ldm_job *d, int ok, int *all_ok, int *first_bad, const char *what) {
    (void)d, (void)what;
    *all_ok = ok != 0;
    *first_bad = ok ? -1 : 0;
    return LDM_OK;
}
ldm_status ldm_job_sum_start(ldm_job *d, float *x, size_t n, int *id) {
    (void)d, (void)x, (void)n;
    *id = 0;
    return LDM_OK;
}
ldm_status ldm_job_sum_test(ldm_job *d, int id, int *done) {
    (void)d, (void)id;
    *done = 1;
    return LDM_OK;
}
ldm_status ldm_job_sum_wait(ldm_job *d, int id, const char *what) {
    (void)d, (void)id, (void)what;
    return LDM_OK;
}
ldm_status ldm_job_sum_wait_all(ldm_job *d, const char *what) {
    (void)d, (void)what;
    return LDM_OK;
}

#else /* LDMCL_HAVE_MPI */

static int launched(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int ldm_job_built(void) {
    return 1;
}

const char *ldm_job_library(void) {
    static char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (!version[0] && MPI_Get_library_version(version, &len) == MPI_SUCCESS) {
        char *nl = strchr(version, '\n'); /* the first line */
        if (nl) *nl = 0;
        char *comma = strchr(version, ',');
        if (comma) *comma = 0;
    }
    return version;
}

static ldm_status mpi_fail(int err, const char *call, const char *what) {
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(err, text, &len);
    return LDM_FAIL(LDM_ERR_JOB, "%s failed (%s) while %s: another rank has probably died", call,
                    text, what);
}

/* rank 0: takes in the roll calls that arrived, and posts the next receive of each. */
static ldm_status roll_progress(ldm_job *d) {
    if (d->rank != 0 || !d->roll_recv) return LDM_OK;
    for (int r = 1; r < d->size; r++) {
        for (;;) {
            int flag = 0;
            int err = MPI_Test(&d->roll_recv[r], &flag, MPI_STATUS_IGNORE);
            if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Test", "taking the roll call");
            if (!flag) break;
            d->arrived[r] = d->roll_in[r];
            err =
                MPI_Irecv(&d->roll_in[r], 1, MPI_UINT64_T, r, ROLL_TAG, d->world, &d->roll_recv[r]);
            if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Irecv", "taking the roll call");
        }
    }
    return LDM_OK;
}

/* Every rank, as a collective begins: its number, and (not rank 0) a message saying so to rank 0.
 */
static ldm_status roll_call(ldm_job *d) {
    d->seq++;
    if (d->rank == 0) {
        d->arrived[0] = d->seq;
        return roll_progress(d);
    }
    int slot = (int)(d->seq % ROLL_RING);
    if (d->roll_send[slot] != MPI_REQUEST_NULL) { /* sent ROLL_RING collectives ago: long done */
        int err = MPI_Wait(&d->roll_send[slot], MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Wait", "sending the roll call");
    }
    d->roll_out[slot] = d->seq;
    int err =
        MPI_Isend(&d->roll_out[slot], 1, MPI_UINT64_T, 0, ROLL_TAG, d->world, &d->roll_send[slot]);
    return err == MPI_SUCCESS ? LDM_OK : mpi_fail(err, "MPI_Isend", "sending the roll call");
}

static ldm_status timed_out(ldm_job *d, const char *what) {
    if (d->rank != 0)
        return LDM_FAIL(LDM_ERR_JOB,
                        "rank %d of %d: the job did not finish %s (collective %llu) within %g s: "
                        "another rank has died or hangs (rank 0 names it)",
                        d->rank, d->size, what, (unsigned long long)d->seq, d->timeout_s);
    char late[256] = "";
    int n_late = 0;
    for (int r = 1; r < d->size && strlen(late) + 16 < sizeof late; r++)
        if (d->arrived[r] < d->seq)
            snprintf(late + strlen(late), sizeof late - strlen(late), "%s%d", n_late++ ? ", " : "",
                     r);
    if (!n_late)
        return LDM_FAIL(LDM_ERR_JOB,
                        "the job did not finish %s (collective %llu) within %g s, though every "
                        "rank began it: the network or a rank stalls",
                        what, (unsigned long long)d->seq, d->timeout_s);
    return LDM_FAIL(LDM_ERR_JOB,
                    "rank%s %s of %d did not reach %s (collective %llu) within %g s: %s died or "
                    "hangs. The job stops; the last complete checkpoint stays, and --resume "
                    "continues from it",
                    n_late > 1 ? "s" : "", late, d->size, what, (unsigned long long)d->seq,
                    d->timeout_s, n_late > 1 ? "they" : "it");
}

/* Waits for requests with the job's deadline, letting the roll call progress. */
static ldm_status wait_requests(ldm_job *d, int n, MPI_Request *req, const char *what) {
    double deadline = ldm_now_s() + d->timeout_s;
    long idle = 0;
    for (;;) {
        /* request by request: MPICH's MPI_Testall prototype with MPI_STATUSES_IGNORE trips GCC's
         * array-bounds check */
        int all = 1;
        for (int i = 0; i < n; i++) {
            int flag = 0;
            int err = MPI_Test(&req[i], &flag, MPI_STATUS_IGNORE);
            if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Test", what);
            all &= flag;
        }
        if (all) return LDM_OK;
        LDM_TRY(roll_progress(d));
        if (ldm_now_s() > deadline) return timed_out(d, what);
        if (++idle > 64) { /* then sleep between polls: the device's threads need the cores */
            struct timespec ts = {0, idle > 4096 ? 1000000 : 50000};
            nanosleep(&ts, NULL);
        }
    }
}

static ldm_status check_count(size_t n, const char *what) {
    if (n > (size_t)INT_MAX)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s: %zu elements in one collective, past 2^31",
                        what, n);
    return LDM_OK;
}

ldm_status ldm_job_init(int *argc, char ***argv, ldm_job **out) {
    *out = NULL;
    ldm_job *d = calloc(1, sizeof *d);
    if (!d) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    d->size = d->local_size = 1;
    d->timeout_s = 600;
    d->world = d->local = MPI_COMM_NULL;
    for (int i = 0; i < ROLL_RING; i++)
        d->roll_send[i] = MPI_REQUEST_NULL;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && !launched()) { /* alone: a job of one, MPI untouched */
        *out = d;
        return LDM_OK;
    }
    if (!inited) {
        int provided = 0;
        int err = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (err != MPI_SUCCESS) {
            free(d);
            return LDM_FAIL(LDM_ERR_JOB, "MPI_Init_thread failed (error %d)", err);
        }
        d->owns_mpi = 1;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &d->world);
    MPI_Comm_set_errhandler(d->world, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->world, &d->rank);
    MPI_Comm_size(d->world, &d->size);
    MPI_Comm_split_type(d->world, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &d->local);
    MPI_Comm_rank(d->local, &d->local_rank);
    MPI_Comm_size(d->local, &d->local_size);
    d->arrived = calloc((size_t)d->size, sizeof *d->arrived);
    if (!d->arrived) {
        ldm_job_finalize(d);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    if (d->rank == 0 && d->size > 1) {
        d->roll_in = calloc((size_t)d->size, sizeof *d->roll_in);
        d->roll_recv = malloc((size_t)d->size * sizeof *d->roll_recv);
        if (!d->roll_in || !d->roll_recv) {
            ldm_job_finalize(d);
            return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        }
        d->roll_recv[0] = MPI_REQUEST_NULL;
        for (int r = 1; r < d->size; r++)
            MPI_Irecv(&d->roll_in[r], 1, MPI_UINT64_T, r, ROLL_TAG, d->world, &d->roll_recv[r]);
    }
    *out = d;
    return LDM_OK;
}

void ldm_job_finalize(ldm_job *d) {
    if (!d) return;
    if (d->roll_recv)
        for (int r = 1; r < d->size; r++)
            if (d->roll_recv[r] != MPI_REQUEST_NULL) {
                MPI_Cancel(&d->roll_recv[r]);
                MPI_Request_free(&d->roll_recv[r]);
            }
    for (int i = 0; i < ROLL_RING; i++)
        if (d->roll_send[i] != MPI_REQUEST_NULL) MPI_Request_free(&d->roll_send[i]);
    if (d->local != MPI_COMM_NULL) MPI_Comm_free(&d->local);
    if (d->world != MPI_COMM_NULL) MPI_Comm_free(&d->world);
    if (d->owns_mpi) MPI_Finalize();
    free(d->arrived);
    free(d->roll_in);
    free(d->roll_recv);
    free(d);
}

void ldm_job_abort(ldm_job *d, int code) {
    if (d && d->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

static ldm_status sum_typed(ldm_job *d, void *x, size_t n, MPI_Datatype type, MPI_Op op,
                            const char *what) {
    if (!d || d->size == 1 || n == 0) return LDM_OK;
    LDM_TRY(check_count(n, what));
    LDM_TRY(roll_call(d));
    MPI_Request r;
    int err = MPI_Iallreduce(MPI_IN_PLACE, x, (int)n, type, op, d->world, &r);
    if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Iallreduce", what);
    return wait_requests(d, 1, &r, what);
}

ldm_status ldm_job_sum(ldm_job *d, float *x, size_t n, const char *what) {
    return sum_typed(d, x, n, MPI_FLOAT, MPI_SUM, what);
}
ldm_status ldm_job_sum_f64(ldm_job *d, double *x, size_t n, const char *what) {
    return sum_typed(d, x, n, MPI_DOUBLE, MPI_SUM, what);
}
ldm_status ldm_job_min_int(ldm_job *d, int *x, size_t n, const char *what) {
    return sum_typed(d, x, n, MPI_INT, MPI_MIN, what);
}
ldm_status ldm_job_max_u8(ldm_job *d, uint8_t *x, size_t n, const char *what) {
    return sum_typed(d, x, n, MPI_UINT8_T, MPI_MAX, what);
}

ldm_status ldm_job_broadcast(ldm_job *d, void *x, size_t bytes, int root, const char *what) {
    if (!d || d->size == 1 || bytes == 0) return LDM_OK;
    LDM_TRY(check_count(bytes, what));
    LDM_TRY(roll_call(d));
    MPI_Request r;
    int err = MPI_Ibcast(x, (int)bytes, MPI_BYTE, root, d->world, &r);
    if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Ibcast", what);
    return wait_requests(d, 1, &r, what);
}

ldm_status ldm_job_gather(ldm_job *d, const float *mine, const size_t *counts, float *all, int root,
                          const char *what) {
    if (!d || d->size == 1) {
        if (all && all != mine) memcpy(all, mine, counts[0] * sizeof *all);
        return LDM_OK;
    }
    int *cnt = malloc(2 * (size_t)d->size * sizeof *cnt);
    if (!cnt) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    int *displ = cnt + d->size;
    size_t total = 0;
    ldm_status st = LDM_OK;
    for (int r = 0; r < d->size && st == LDM_OK; r++) {
        st = check_count(counts[r], what);
        cnt[r] = (int)counts[r];
        displ[r] = (int)total;
        total += counts[r];
        if (st == LDM_OK) st = check_count(total, what);
    }
    if (st == LDM_OK) st = roll_call(d);
    if (st == LDM_OK) {
        MPI_Request r;
        /* root's own part already in place (all == mine): MPI forbids the buffers to alias */
        const void *send = d->rank == root && all == mine ? MPI_IN_PLACE : (const void *)mine;
        int err = MPI_Igatherv(send, cnt[d->rank], MPI_FLOAT, all, cnt, displ, MPI_FLOAT, root,
                               d->world, &r);
        st = err != MPI_SUCCESS ? mpi_fail(err, "MPI_Igatherv", what)
                                : wait_requests(d, 1, &r, what);
    }
    free(cnt);
    return st;
}

ldm_status ldm_job_agree(ldm_job *d, int ok, int *all_ok, int *first_bad, const char *what) {
    /* the lowest failing rank is the minimum of (ok ? size : rank) */
    int v = ok ? ldm_job_size(d) : ldm_job_rank(d);
    LDM_TRY(ldm_job_min_int(d, &v, 1, what));
    *all_ok = v == ldm_job_size(d);
    *first_bad = *all_ok ? -1 : v;
    return LDM_OK;
}

ldm_status ldm_job_sum_start(ldm_job *d, float *x, size_t n, int *id) {
    *id = -1;
    if (!d || d->size == 1) return LDM_OK;
    LDM_TRY(check_count(n, "a gradient bucket"));
    if (d->n_pending == LDM_JOB_MAX_PENDING)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "more than %d sums in flight",
                        LDM_JOB_MAX_PENDING);
    LDM_TRY(roll_call(d));
    int err = MPI_Iallreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, d->world,
                             &d->pending[d->n_pending]);
    if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Iallreduce", "summing gradients");
    *id = d->n_pending++;
    return LDM_OK;
}

ldm_status ldm_job_sum_test(ldm_job *d, int id, int *done) {
    *done = 1;
    if (!d || d->size == 1 || id < 0) return LDM_OK;
    if (id >= d->n_pending) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "no sum %d in flight", id);
    int err = MPI_Test(&d->pending[id], done, MPI_STATUS_IGNORE);
    if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Test", "summing gradients");
    return roll_progress(d);
}

ldm_status ldm_job_sum_wait(ldm_job *d, int id, const char *what) {
    if (!d || d->size == 1 || id < 0) return LDM_OK;
    if (id >= d->n_pending) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "no sum %d in flight", id);
    return wait_requests(d, 1, &d->pending[id], what);
}

ldm_status ldm_job_sum_wait_all(ldm_job *d, const char *what) {
    if (!d || d->size == 1) return LDM_OK;
    ldm_status st = wait_requests(d, d->n_pending, d->pending, what);
    if (st == LDM_OK) d->n_pending = 0;
    return st;
}

#endif /* LDMCL_HAVE_MPI */
