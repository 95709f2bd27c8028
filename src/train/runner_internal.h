/* src/train/runner_internal.h: what the stages of a training run share (see ldmcl/runner.h):
 * messages, the data order, files. Not installed. */
#ifndef LDMCL_TRAIN_RUNNER_INTERNAL_H
#define LDMCL_TRAIN_RUNNER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "ldmcl/dataset.h"
#include "ldmcl/runner.h"

typedef struct run_ctx {
    ldm_ctx *ctx;
    const ldm_run_config *c;
    const ldm_run_options *o;
    ldm_dataset *data;
    char out[LDM_RUN_PATH];  /* output_dir */
    int stopped;             /* a stage stopped early as asked (ae_stop_after): skip the rest */
    int ae_total, ldm_total; /* the steps of the stages this process trains (progress) */
    ldm_job *job;            /* o->job: data parallelism (NULL: alone) */
    int rank, ranks;
} run_ctx;

/* Whether this process writes the run's files, logs and progress (rank 0). */
#define RUN_WRITES(r) ((r)->rank == 0)

/* Every rank learns whether every rank's st is LDM_OK (a collective): returns st where it
 * failed here, LDM_ERR_JOB naming the first failing rank where it failed elsewhere. Also the
 * point after which the others may read what rank 0 wrote. */
ldm_status run_all_ok(const run_ctx *r, ldm_status st, const char *what);

/* The autoencoder stage's state while it trains (output_dir/RUN_AE_STATE_NAME). */
#define RUN_AE_STATE_NAME "autoencoder-state.safetensors"

/* Whether dir holds a checkpoint-NNNNNNNN.safetensors. */
int run_has_checkpoints(const char *dir);

void run_note(const run_ctx *r, ldm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The dataset index of position p of the training order: epoch p / n is a permutation of the n
 * items keyed by seed and the epoch (so a resumed run sees the same order). */
size_t run_order(uint64_t seed, size_t n, uint64_t p);

/* splitmix64 */
uint64_t run_mix(uint64_t x);

/* Files: join, make a folder (and its parents), copy, write text atomically (a file's SHA-256:
 * ldm_file_sha256). */
void run_path(char *out, const char *dir, const char *name);
/* printf into a path buffer of LDM_RUN_PATH bytes (truncating). */
void run_format(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ldm_status run_mkdirs(const char *dir);
ldm_status run_copy_file(const char *from, const char *to);
ldm_status run_write_text(const char *path, const char *text);
int run_exists(const char *path);
/* Removes the temporaries of atomic writes (NAME.tmp.PID.N, src/core/atomic_file.c) that
 * another process began and never finished (killed mid-save) in dir, saying so. */
void run_remove_temporaries(const run_ctx *r, const char *dir);

/* Keeps the lines of a CSV log whose first field is at most step (the header reads as 0), so a
 * resumed run appends after the step it resumes from. A missing file is left missing. */
ldm_status run_trim_log(const char *path, int step);

/* Profiling of one step (options profile_step): begin before step `step` (0-based) if it is the
 * one asked for; report after it, through the log, the device time by kernel against the step's
 * wall time. No-ops for other steps. */
ldm_status run_profile_begin(const run_ctx *r, int step);
ldm_status run_profile_report(const run_ctx *r, const char *stage, int step, double wall_s);

/* The checkpoint folder of a run (run_checkpoints.c):
 * out/checkpoints/checkpoint-NNNNNNNN.safetensors and the `latest` pointer. A stage saves through
 * save(user, path, step) and restores through load(user, path, &step); the folder keeps `limit`
 * checkpoints. Resuming takes the one `latest` names or, when it is damaged (its size or SHA-256
 * fails), the newest intact one, saying so; *step is 0 when there is none. An intact checkpoint
 * that load refuses is an error, never skipped. */
#define RUN_STEP_KEY "ldmcl.run.step"
#define RUN_RANKS_KEY "ldmcl.run.ranks" /* the data-parallel ranks that wrote a state */
typedef ldm_status (*run_checkpoint_save_fn)(void *user, const char *path, int step);
typedef ldm_status (*run_checkpoint_load_fn)(void *user, const char *path, int *step);
ldm_status run_checkpoint_save(const run_ctx *r, int step, int limit, run_checkpoint_save_fn save,
                               void *user);
ldm_status run_checkpoint_resume(const run_ctx *r, int limit, run_checkpoint_load_fn load,
                                 void *user, int *step);
/* The step a checkpoint file records (RUN_STEP_KEY). */
ldm_status run_checkpoint_step(const char *path, int *step);

/* The loop both stages share (run_loop.c). Steps start .. total-1 (0-based); each step:
 * prepare (may be NULL: work outside the profiled step, e.g. reading images), step (the stage's
 * step; *loss for the progress callback; a non-finite loss is the stage's to refuse), its CSV line
 * (log_line, given the seconds since the loop began; csv_header when the log is new), after (may
 * be NULL: checkpoints, validation). With stop_after > 0 the loop ends after that many steps of
 * this process (before the last step), calling stopped. */
typedef struct run_stage_loop {
    const char *stage; /* "autoencoder", "ldm": progress and profile labels */
    const char *csv_path, *csv_header;
    int start, total, stop_after;
    void *self;
    ldm_status (*prepare)(void *self, int step);
    ldm_status (*step)(void *self, int step, float *loss);
    void (*log_line)(void *self, int step, double seconds, char *line, size_t size);
    ldm_status (*after)(void *self, int step);
    void (*stopped)(void *self, int done, int step);
} run_stage_loop;
typedef struct run_loop_end {
    int finished; /* the last step is done */
    int stopped;  /* stop_after ended the loop */
    double seconds;
} run_loop_end;
ldm_status run_loop(run_ctx *r, const run_stage_loop *l, run_loop_end *end);

/* Every file the stages that will run read, checked before the first step (run_inputs.c). */
ldm_status run_check_inputs(const run_ctx *r);

/* The latent cache read back for stage two (latent_cache.c): the latents [n, z_channels, hw, hw]
 * as floats, lat = z_channels hw^2 per item, the dataset index of each item and, with
 * random_flip, the mirrored images' latents (else NULL). */
typedef struct run_latents {
    float *z, *idx, *z_flipped;
    size_t n, lat;
    int hw;
} run_latents;

/* Reads the latent cache file at path and checks it against the run (the autoencoder's latent
 * shape, latent_patch, random_flip, at least one latent, every index a whole number below
 * n_items, the dataset's size): an error naming the file when it does not fit, and then *out
 * holds nothing. */
ldm_status run_latent_cache_read(const ldm_run_config *c, const char *path, size_t n_items,
                                 run_latents *out);
void run_latents_free(run_latents *l);

/* The stages. */
ldm_status run_autoencoder_stage(run_ctx *r, char *ae_path);
ldm_status run_latent_cache(run_ctx *r, const char *ae_path, char *cache_path);
ldm_status run_ldm_stage(run_ctx *r, const char *ae_path, const char *cache_path);

/* A loss-curve PNG of losses[0..n) (one per step): axes and tick labels, log-scaled, the
 * moving average drawn over the losses; title names the stage. */
ldm_status run_plot_losses(const char *path, const char *title, const float *losses, size_t n);
/* The same from a stage's CSV log (its second column, one row per step after a header). */
ldm_status run_plot_log(const char *csv, const char *png, const char *title);

/* images [rows * cols][channels, size, size] (about [-1, 1]) as a PNG grid, row by row: tiles
 * enlarged to at least 96 pixels, captions[r] right of row r (NULL: none), a title (NULL: none),
 * text_pairs in the PNG (NULL-terminated; NULL: none). */
ldm_status run_write_grid(const char *path, const float *images, int rows, int cols, int channels,
                          int size, const char *const *captions, const char *title,
                          const char *const *text_pairs);

#endif
