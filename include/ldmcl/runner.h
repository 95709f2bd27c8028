/* ldmcl/runner.h: a whole training run from a run configuration (ldmcl/run_config.h), as
 * ldmcl-train drives it:
 *   1. the autoencoder on the dataset (skipped when [autoencoder] checkpoint names one, or when
 *      output_dir already holds a finished one), its whole state saved every checkpointing_steps
 *      (autoencoder-state.safetensors, discriminator-state.safetensors; removed when done) for
 *      resume to continue exactly;
 *   2. the dataset encoded once into a latent cache, validated against the autoencoder file and
 *      the dataset (paths, sizes, modification times, resolution): a stale cache is rebuilt;
 *   3. the text-conditioned LDM on the cached latents with the captions (text encoder frozen,
 *      fine-tuned or trained from scratch), with checkpoints every checkpointing_steps (the whole
 *      training state, atomically, then a `latest` pointer; the oldest beyond
 *      checkpoints_total_limit removed), resumption that continues exactly, validation grids, a
 *      CSV log and a loss-curve PNG;
 *   4. the model folder output_dir/model (model.ini, unet, autoencoder, text encoder, vocabulary)
 *      that ldmcl-sample reads.
 * A non-finite loss stops the run at once, naming the step, and writes no checkpoint. Unreadable
 * images are skipped with a warning and counted. */
#ifndef LDMCL_RUNNER_H
#define LDMCL_RUNNER_H

#include "ldmcl/context.h"
#include "ldmcl/job.h"
#include "ldmcl/run_config.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { LDM_STAGE_ALL = 0, LDM_STAGE_AUTOENCODER = 1, LDM_STAGE_LDM = 2 };

/* Where a run is, after every step of a stage ("autoencoder", "encoding" the latent cache, "ldm"):
 * the stage's step of total (1-based), the step's loss (0 while encoding), the seconds of the
 * stage in this process; and the run's training step of its total (the stages this process
 * trains: a finished or given autoencoder is not counted). */
typedef struct ldm_run_progress {
    const char *stage;
    int step, total;
    float loss;
    double seconds;
    int run_step, run_total;
} ldm_run_progress;

typedef void (*ldm_progress_fn)(void *user, const ldm_run_progress *p);

typedef struct ldm_run_options {
    int stage;         /* LDM_STAGE_* */
    int resume;        /* continue the autoencoder from its state, the LDM from
                          output_dir/checkpoints/latest (as resume_from_checkpoint = latest);
                          without it, an output_dir holding an earlier run's checkpoints is
                          refused (LDM_ERR_INVALID_ARGUMENT) */
    int stop_after;    /* stop the LDM stage after this many steps of this process, as if killed
                          (tests of resumption); 0: run to the end */
    int ae_stop_after; /* the same for the autoencoder stage (its state is saved every
                          checkpointing_steps and --resume continues from it) */
    int profile_step;  /* time each launch of this step (1-based) of each stage and report the
                          device time by kernel through log; 0: none */
    ldm_log_fn log;    /* notes and warnings (may be NULL) */
    void *log_user;
    ldm_progress_fn progress; /* after every step (may be NULL) */
    void *progress_user;
    ldm_job *job; /* data parallelism (NULL: alone): this process is one rank of the job; the
                     batch of both stages is per rank (the global batch is batch x ranks x
                     accumulation), each rank takes its slice of every global batch of the one
                     data order, gradients are averaged, rank 0 alone writes files, logs and
                     calls progress (other ranks' warnings go to their log, prefixed) */
    /* Data parallelism, what the program needs to end a failed run well (may be NULL): together
       is set when every rank returns the failure at once (no rank is left waiting: no need to
       abort the job), reported_elsewhere when a lower rank holds the same failure's message
       (this one need not print it). */
    struct ldm_run_outcome {
        int together, reported_elsewhere;
    } * outcome;
} ldm_run_options;

ldm_status ldm_run_train(ldm_ctx *ctx, const ldm_run_config *c, const ldm_run_options *o);

#ifdef __cplusplus
}
#endif
#endif
