/* ldmcl/job.h: the processes of a data-parallel job. Under mpirun or srun (a build with MPI,
 * -DLDMCL_MPI) each process is one rank of the job; run alone, or built without MPI, a process is
 * a job of one and every call here is a no-op that succeeds. Only the MPI standard is used (Open
 * MPI and MPICH alike).
 *
 * Collectives never block without a bound: each waits at most the job's timeout (set with
 * ldm_job_set_timeout) and then fails with LDM_ERR_JOB, naming the ranks that had not arrived
 * when it can (rank 0 keeps a roll call of the collectives each rank has begun). The library
 * returns that status like any other; a program then ends the whole job with ldm_job_abort. Every
 * collective must be called by every rank in the same order. */
#ifndef LDMCL_JOB_H
#define LDMCL_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_job ldm_job;

/* Whether this build has MPI; the MPI library's version ("" without). */
int ldm_job_built(void);
const char *ldm_job_library(void);

/* Joins the job a launcher started (MPI_Init_thread, when one of the environment variables
 * mpirun, mpiexec or srun set is present: OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK), else makes a
 * job of one without initialising MPI. argc/argv may be NULL. */
ldm_status ldm_job_init(int *argc, char ***argv, ldm_job **out);
/* Leaves the job (MPI_Finalize when ldm_job_init initialised MPI). NULL is fine. */
void ldm_job_finalize(ldm_job *d);
/* Ends every process of the job at once with this exit code (MPI_Abort); a job of one exits. */
void ldm_job_abort(ldm_job *d, int code);

/* This process's rank and the job's size; the rank among the processes of this machine and
 * their count (an MPI_COMM_TYPE_SHARED split). A NULL d is a job of one. */
int ldm_job_rank(const ldm_job *d);
int ldm_job_size(const ldm_job *d);
int ldm_job_local_rank(const ldm_job *d);
int ldm_job_local_size(const ldm_job *d);

/* How long a collective may wait for the other ranks, in seconds (default 600). */
void ldm_job_set_timeout(ldm_job *d, double seconds);
double ldm_job_timeout(const ldm_job *d);

/* Blocking collectives; what names what the job was doing, for messages. */
/* x[0..n) becomes the sum over the ranks, the same on every rank. */
ldm_status ldm_job_sum(ldm_job *d, float *x, size_t n, const char *what);
ldm_status ldm_job_sum_f64(ldm_job *d, double *x, size_t n, const char *what);
/* x[0..n) becomes the minimum / the maximum over the ranks. */
ldm_status ldm_job_min_int(ldm_job *d, int *x, size_t n, const char *what);
ldm_status ldm_job_max_u8(ldm_job *d, uint8_t *x, size_t n, const char *what);
/* bytes of x from root to every rank. */
ldm_status ldm_job_broadcast(ldm_job *d, void *x, size_t bytes, int root, const char *what);
/* Rank r's mine[0..counts[r]) into all (on root only; may be NULL elsewhere), rank after rank.
 * On root 0, all may be mine: its own part is then already in place. */
ldm_status ldm_job_gather(ldm_job *d, const float *mine, const size_t *counts, float *all, int root,
                          const char *what);
/* Every rank learns whether every rank is ok: *all_ok = 1 when all passed ok = 1, and *first_bad
 * the lowest rank that did not (-1 when none). A collective like the others. */
ldm_status ldm_job_agree(ldm_job *d, int ok, int *all_ok, int *first_bad, const char *what);

/* Non-blocking sums in place (MPI_Iallreduce), for buffers that must not change until they are
 * done. start returns an id; test says whether it is done (without waiting); wait waits for one,
 * wait_all for every started sum and then forgets them (the timeout bounds each wait). At most
 * LDM_JOB_MAX_PENDING at once. */
#define LDM_JOB_MAX_PENDING 256
ldm_status ldm_job_sum_start(ldm_job *d, float *x, size_t n, int *id);
ldm_status ldm_job_sum_test(ldm_job *d, int id, int *done);
ldm_status ldm_job_sum_wait(ldm_job *d, int id, const char *what);
ldm_status ldm_job_sum_wait_all(ldm_job *d, const char *what);

#ifdef __cplusplus
}
#endif
#endif
