/* src/train/runner_ae.c: stage one of a training run, the autoencoder (see ldmcl/runner.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ae_train.h"
#include "ldmcl/safetensors.h"
#include "runner_internal.h"

/* The stage's resumable state: the autoencoder's and the discriminator's, one file. */
#define STATE_NAME RUN_AE_STATE_NAME

/* Whether path holds the autoencoder of a finished stage (*done; 0 when there is no file). A
 * file there that does not read as one (damaged, or not ldmcl's) is an error: it is never
 * trained over. */
static ldm_status finished(const char *path, int *done) {
    *done = 0;
    if (!run_exists(path)) return LDM_OK;
    ldm_safetensors *st;
    ldm_status s = ldm_safetensors_open(path, &st);
    if (s != LDM_OK) {
        ldm_error_prefix("the finished autoencoder '%s' cannot be used (remove it to train stage "
                         "one again)",
                         path);
        return s;
    }
    const char *v = ldm_safetensors_metadata(st, "ldmcl.stage");
    *done = v && !strcmp(v, "autoencoder complete");
    ldm_safetensors_close(st);
    if (!*done)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s' is not the autoencoder of a finished stage (no ldmcl.stage = "
                        "autoencoder complete): remove it to train stage one, or name it in "
                        "[autoencoder] checkpoint",
                        path);
    return LDM_OK;
}

/* Fills batch images from training position *pos on, skipping unreadable ones. */
static ldm_status fill_batch(run_ctx *r, uint64_t *pos, int batch, float *images, size_t *skipped) {
    size_t n = ldm_dataset_count(r->data),
           per = (size_t)r->c->model.channels * r->c->model.resolution * r->c->model.resolution;
    size_t misses = 0;
    for (int b = 0; b < batch;) {
        size_t i = run_order(r->c->seed, n, *pos);
        ldm_status st =
            ldm_dataset_get(r->data, i, run_mix(r->c->seed ^ *pos), images + b * per, NULL);
        (*pos)++;
        if (st == LDM_OK) {
            b++;
            misses = 0;
            continue;
        }
        if (st != LDM_ERR_FORMAT && st != LDM_ERR_NOT_FOUND) return st;
        if ((*skipped)++ < 10) run_note(r, LDM_LOG_WARN, "skipped: %s", ldm_last_error());
        if (++misses > n)
            return LDM_FAIL(LDM_ERR_FORMAT, "no image of the dataset '%s' is readable",
                            r->c->dataset_path);
    }
    return LDM_OK;
}

/* The stage's resumable state (ldm_ae_trainer_save_state) with the data position and the count
 * of skipped images. The state is one of the autoencoder's checkpoints; the autoencoder file
 * itself is written only when the stage is done. */
static ldm_status save_state(const run_ctx *r, ldm_ae_trainer *t, const char *state, int step,
                             uint64_t pos, size_t skipped) {
    char steps[24], position[24], skips[24], ranks[16];
    snprintf(steps, sizeof steps, "%d", step);
    snprintf(position, sizeof position, "%llu", (unsigned long long)pos);
    snprintf(skips, sizeof skips, "%zu", skipped);
    snprintf(ranks, sizeof ranks, "%d", r->ranks);
    const char *meta[] = {"ldmcl.stage",
                          "autoencoder in progress",
                          "ldmcl.ae_step",
                          steps,
                          "ldmcl.data_position", /* global: over every rank's images */
                          position,
                          "ldmcl.skipped",
                          skips,
                          RUN_RANKS_KEY,
                          ranks,
                          NULL};
    LDM_TRY(ldm_ae_trainer_save_state(t, state, meta));
    run_note(r, LDM_LOG_INFO, "checkpoint: autoencoder step %d saved in %s", step, state);
    return LDM_OK;
}

static ldm_status resume_state(const run_ctx *r, ldm_ae_trainer *t, const char *gstate, int *start,
                               uint64_t *pos, size_t *skipped) {
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(gstate, &st));
    uint64_t step = 0, position = 0, skips = 0;
    ldm_status s = ldm_safetensors_metadata_u64(st, "ldmcl.ae_step", &step);
    if (s == LDM_OK) s = ldm_safetensors_metadata_u64(st, "ldmcl.data_position", &position);
    if (s == LDM_OK) s = ldm_safetensors_metadata_u64(st, "ldmcl.skipped", &skips);
    uint64_t ranks = 0; /* absent from states of earlier versions */
    if (s == LDM_OK && ldm_safetensors_metadata(st, RUN_RANKS_KEY))
        s = ldm_safetensors_metadata_u64(st, RUN_RANKS_KEY, &ranks);
    ldm_safetensors_close(st);
    if (s == LDM_OK && ranks && ranks != (uint64_t)r->ranks)
        run_note(r, LDM_LOG_INFO,
                 "autoencoder: %s was written by %llu rank(s), this job has %d: it continues "
                 "from global image position %llu, %d images per step from here",
                 gstate, (unsigned long long)ranks, r->ranks, (unsigned long long)position,
                 r->c->ae_train.step.batch * r->ranks);
    LDM_TRY(s);
    if (step > (uint64_t)r->c->ae_train.steps)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "autoencoder state '%s' is at step %llu, beyond max_train_steps = %d",
                        gstate, (unsigned long long)step, r->c->ae_train.steps);
    LDM_TRY(ldm_ae_trainer_load_state(t, gstate));
    if ((uint64_t)ldm_ae_trainer_steps(t) != step)
        return LDM_FAIL(LDM_ERR_FORMAT, "autoencoder state '%s': step %llu but trainer step %d",
                        gstate, (unsigned long long)step, ldm_ae_trainer_steps(t));
    *start = (int)step;
    *pos = position;
    *skipped = (size_t)skips;
    run_note(r, LDM_LOG_INFO, "autoencoder: resumed from %s at step %d", gstate, *start);
    return LDM_OK;
}

/* ---- the stage's loop (run_loop.c) ------------------------------------------------------ */

typedef struct ae_stage {
    run_ctx *r;
    ldm_ae_trainer *t;
    const ldm_ae_train_config *tc;
    float *images;
    const char *state; /* the resumable state's file */
    uint64_t pos;      /* the training order's position */
    size_t skipped;    /* unreadable images */
    ldm_ae_losses l;   /* the last step's */
} ae_stage;

/* This rank's slice of the global micro-batch from position pos: rank k reads from pos + k x
 * batch on. Every rank then goes on from the furthest position any rank reached, so that without
 * unreadable images N ranks see exactly the samples one rank with the global batch sees; an
 * unreadable image makes its rank take the next position, which may be the next rank's first
 * (that sample is then seen twice in the global batch; each skip is logged). */
static ldm_status ae_prepare(void *self, int step) {
    (void)step;
    ae_stage *a = self;
    run_ctx *r = a->r;
    if (r->ranks == 1) return fill_batch(r, &a->pos, a->tc->batch, a->images, &a->skipped);
    uint64_t pos = a->pos + (uint64_t)r->rank * (uint64_t)a->tc->batch;
    size_t skipped = 0;
    ldm_status st = fill_batch(r, &pos, a->tc->batch, a->images, &skipped);
    LDM_TRY(run_all_ok(r, st, "reading the images of a batch"));
    double v[2] = {(double)(pos - a->pos), (double)skipped}; /* the reach, as a sum of one-hots */
    double *all = calloc(2 * (size_t)r->ranks, sizeof *all);
    if (!all) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    all[2 * r->rank] = v[0];
    all[2 * r->rank + 1] = v[1];
    st = ldm_job_sum_f64(r->job, all, 2 * (size_t)r->ranks, "the batch's positions");
    uint64_t reach = 0;
    for (int k = 0; st == LDM_OK && k < r->ranks; k++) {
        if ((uint64_t)all[2 * k] > reach) reach = (uint64_t)all[2 * k];
        a->skipped += (size_t)all[2 * k + 1];
    }
    free(all);
    a->pos += reach;
    return st;
}

static ldm_status ae_step(void *self, int step, float *loss) {
    ae_stage *a = self;
    LDM_TRY(ldm_ae_trainer_step(a->t, a->images, &a->l));
    if (!isfinite(a->l.g_total) || !isfinite(a->l.d_total))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "autoencoder: the loss is not finite at step %d (generator %g, "
                        "discriminator %g): stopped; lower [autoencoder_train] learning_rate",
                        step + 1, (double)a->l.g_total, (double)a->l.d_total);
    *loss = a->l.recon;
    return LDM_OK;
}

static void ae_log_line(void *self, int step, double seconds, char *line, size_t size) {
    (void)seconds;
    const ldm_ae_losses *l = &((const ae_stage *)self)->l;
    snprintf(line, size, "%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%d", step + 1, (double)l->recon,
             (double)l->codebook, (double)l->commitment, (double)l->kl, (double)l->perceptual,
             (double)l->g_adv, (double)l->d_total, l->codebook_used);
}

/* samples/autoencoder-step-N.png: up to eight of the step's images beside their reconstructions
 * (the reference's input and reconstruction samples). */
static ldm_status ae_grid(ae_stage *a, int step) {
    const ldm_run_config *c = a->r->c;
    int n = a->tc->batch < 8 ? a->tc->batch : 8, sz = c->model.resolution;
    size_t per = (size_t)c->model.channels * sz * sz;
    ldm_tensor *out = ldm_ae_trainer_output(a->t);
    float *recon = malloc(ldm_tensor_numel(out) * sizeof *recon);
    float *pairs = malloc(2 * (size_t)n * per * sizeof *pairs);
    ldm_status st = recon && pairs ? ldm_tensor_read(out, recon)
                                   : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    for (int i = 0; st == LDM_OK && i < n; i++) {
        memcpy(pairs + (size_t)(2 * i) * per, a->images + (size_t)i * per, per * sizeof *pairs);
        memcpy(pairs + (size_t)(2 * i + 1) * per, recon + (size_t)i * per, per * sizeof *pairs);
    }
    char dir[LDM_RUN_PATH], path[LDM_RUN_PATH], title[96];
    run_path(dir, a->r->out, "samples");
    if (st == LDM_OK) st = run_mkdirs(dir);
    run_format(path, "%s/autoencoder-step-%08d.png", dir, step);
    snprintf(title, sizeof title, "autoencoder step %d: input | reconstruction", step);
    if (st == LDM_OK)
        st = run_write_grid(path, pairs, n, 2, c->model.channels, sz, NULL, title, NULL);
    if (st == LDM_OK) run_note(a->r, LDM_LOG_INFO, "autoencoder samples: %s", path);
    free(recon);
    free(pairs);
    return st;
}

static ldm_status ae_after(void *self, int step) {
    ae_stage *a = self;
    const ldm_run_config *c = a->r->c;
    int every = c->ldm_train.validation_steps, writes = RUN_WRITES(a->r);
    if (writes && every > 0 && ((step + 1) % every == 0 || step + 1 == c->ae_train.steps))
        LDM_TRY(ae_grid(a, step + 1));
    if ((step + 1) % c->ldm_train.checkpointing_steps == 0 && (step + 1) % a->tc->acc_steps == 0 &&
        step + 1 < c->ae_train.steps) {
        LDM_TRY(ldm_ae_trainer_check_same(a->t)); /* every rank holds rank 0's state */
        if (writes) return save_state(a->r, a->t, a->state, step + 1, a->pos, a->skipped);
    }
    return LDM_OK;
}

static void ae_stopped(void *self, int done, int step) {
    (void)step;
    const ae_stage *a = self;
    run_note(a->r, LDM_LOG_INFO,
             "autoencoder: stopped after %d steps (as asked); --resume continues from %s", done,
             a->state);
}

ldm_status run_autoencoder_stage(run_ctx *r, char *ae_path) {
    const ldm_run_config *c = r->c;
    if (c->ae_checkpoint[0]) {
        snprintf(ae_path, LDM_RUN_PATH, "%s", c->ae_checkpoint);
        run_note(r, LDM_LOG_INFO, "autoencoder: using %s", ae_path);
        r->ae_total = 0;
        return LDM_OK;
    }
    run_path(ae_path, r->out, "autoencoder.safetensors");
    char gstate[LDM_RUN_PATH];
    run_path(gstate, r->out, STATE_NAME);
    int done;
    LDM_TRY(finished(ae_path, &done));
    if (done) {
        /* a process killed after the stage's last save left its state behind */
        if (RUN_WRITES(r) && run_exists(gstate) && remove(gstate) == 0)
            run_note(r, LDM_LOG_INFO, "removed %s: the stage it belongs to is finished", gstate);
        run_note(r, LDM_LOG_INFO, "autoencoder: %s is finished; stage one skipped", ae_path);
        r->ae_total = 0;
        return LDM_OK;
    }
    if (c->ae_train.steps < 1)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "%s: [autoencoder_train] max_train_steps = 0 and no [autoencoder] "
                        "checkpoint: there is no autoencoder to use",
                        c->path);
    ldm_ae_train_config tc; /* [autoencoder_train] with the run's model, size and seed */
    ldm_run_autoencoder_step(c, &tc);
    tc.job = r->job;
    if (tc.perceptual_weight > 0 && !c->ae_train.lpips_path[0])
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "%s: [autoencoder_train] perceptual_weight = %g needs lpips_path: convert "
                        "the LPIPS weights with tools/convert_lpips.py (torchvision's VGG16 and "
                        "the LPIPS v0.1 linear layers), or set perceptual_weight = 0",
                        c->path, (double)tc.perceptual_weight);
    ldm_ae_trainer *t;
    LDM_TRY(ldm_ae_trainer_create(r->ctx, &tc, &t));
    ldm_status st = ldm_ae_trainer_init_params(t, c->seed);
    if (st == LDM_OK && tc.perceptual_weight > 0)
        st = ldm_ae_trainer_load_lpips(t, c->ae_train.lpips_path);
    size_t per = (size_t)c->model.channels * c->model.resolution * c->model.resolution, skipped = 0;
    float *images = malloc((size_t)tc.batch * per * sizeof *images);
    if (st == LDM_OK && !images) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    char csv_path[LDM_RUN_PATH], disc_path[LDM_RUN_PATH];
    run_path(csv_path, r->out, "autoencoder_log.csv");
    run_path(disc_path, r->out, "discriminator.safetensors");
    uint64_t pos = 0;
    int start = 0;
    if (st == LDM_OK && r->o->resume && run_exists(gstate))
        st = resume_state(r, t, gstate, &start, &pos, &skipped);
    else if (st == LDM_OK && run_exists(gstate))
        run_note(r, LDM_LOG_INFO,
                 "autoencoder: %s holds an unfinished run's state; starting over (--resume "
                 "continues it)",
                 gstate);
    ae_stage a = {r, t, &tc, images, gstate, pos, skipped, {0}};
    run_stage_loop loop = {
        .stage = "autoencoder",
        .csv_path = csv_path,
        .csv_header = "step,recon,codebook,commitment,kl,perceptual,g_adv,d_total,codebook_used",
        .start = start,
        .total = c->ae_train.steps,
        .stop_after = r->o->ae_stop_after,
        .self = &a,
        .prepare = ae_prepare,
        .step = ae_step,
        .log_line = ae_log_line,
        .after = ae_after,
        .stopped = ae_stopped};
    run_loop_end end = {0};
    if (st == LDM_OK) st = run_loop(r, &loop, &end);
    int stopped = end.stopped;
    skipped = a.skipped;
    r->stopped = stopped; /* as asked: the later stages do not run */
    if (st == LDM_OK && !stopped) st = ldm_ae_trainer_check_same(t);
    if (st == LDM_OK && !stopped && RUN_WRITES(r)) {
        char steps[32];
        snprintf(steps, sizeof steps, "%d", c->ae_train.steps);
        const char *meta[] = {"ldmcl.stage", "autoencoder complete", "ldmcl.ae_steps", steps, NULL};
        /* the loss plot, then the discriminator, then the autoencoder file, which marks the stage
         * finished: a process killed before that point redoes them all on --resume */
        char png[LDM_RUN_PATH];
        run_path(png, r->out, "autoencoder_loss.png");
        st = run_plot_log(csv_path, png, "autoencoder reconstruction");
        if (st == LDM_OK) st = ldm_ae_trainer_save(t, NULL, disc_path, meta);
        if (st == LDM_OK) st = ldm_ae_trainer_save(t, ae_path, NULL, meta);
        if (st == LDM_OK) {
            /* finished: the resumable state is no longer needed */
            remove(gstate);
            run_note(r, LDM_LOG_INFO,
                     "autoencoder: %d steps in %.1f s; %zu unreadable images skipped; saved %s",
                     c->ae_train.steps - start, end.seconds, skipped, ae_path);
        }
    }
    free(images);
    ldm_ae_trainer_destroy(t);
    return st;
}
