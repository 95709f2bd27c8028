/* src/train/runner.c: a whole training run (see ldmcl/runner.h): the stages in order, and what
 * they share: messages and profiling (the data order, files and the loss curve are in
 * run_order.c, run_files.c and run_plot.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner_internal.h"

void run_note(const run_ctx *r, ldm_log_level level, const char *fmt, ...) {
    /* rank 0 speaks for the job; the others only warn, naming themselves */
    if (!r->o->log || (r->rank != 0 && level < LDM_LOG_WARN)) return;
    char msg[2048];
    int head = r->rank ? snprintf(msg, sizeof msg, "rank %d: ", r->rank) : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + head, sizeof msg - (size_t)head, fmt, ap);
    va_end(ap);
    r->o->log(r->o->log_user, level, msg);
}

ldm_status run_all_ok(const run_ctx *r, ldm_status st, const char *what) {
    if (r->ranks == 1) return st;
    int all = 0, bad = -1;
    char *kept = st != LDM_OK ? strdup(ldm_last_error()) : NULL;
    ldm_status agreed = ldm_job_agree(r->job, st == LDM_OK, &all, &bad, what);
    if (agreed == LDM_OK && !all && r->o->outcome) {
        r->o->outcome->together = 1;
        r->o->outcome->reported_elsewhere = bad < r->rank;
    }
    if (st != LDM_OK) {
        ldm_status back = ldm_restore_error(st, kept ? kept : "");
        free(kept);
        return back;
    }
    if (agreed != LDM_OK) return agreed;
    if (!all) return LDM_FAIL(LDM_ERR_JOB, "rank %d failed while %s (it says why)", bad, what);
    return LDM_OK;
}

ldm_status run_profile_begin(const run_ctx *r, int step) {
    if (r->o->profile_step != step + 1) return LDM_OK;
    return ldm_ctx_profile_begin(r->ctx);
}

ldm_status run_profile_report(const run_ctx *r, const char *stage, int step, double wall_s) {
    if (r->o->profile_step != step + 1) return LDM_OK;
    LDM_TRY(ldm_ctx_finish(r->ctx));
    enum { shown = 24 };
    ldm_profile_entry e[shown];
    size_t n = ldm_ctx_profile_end(r->ctx, e, shown), m = n < shown ? n : shown;
    double total = 0;
    for (size_t i = 0; i < m; i++)
        total += e[i].ms;
    run_note(r, LDM_LOG_INFO,
             "%s step %d: %.1f ms wall (each launch waited for), %.1f ms device time in the "
             "%zu largest of %zu kinds of launch:",
             stage, step + 1, wall_s * 1e3, total, m, n);
    for (size_t i = 0; i < m; i++)
        run_note(r, LDM_LOG_INFO, "  %-32s %9.2f ms %5.1f%% %6ld launches", e[i].name, e[i].ms,
                 total > 0 ? 100 * e[i].ms / total : 0.0, e[i].launches);
    return LDM_OK;
}

/* Every folder a run writes into. */
static void remove_all_temporaries(const run_ctx *r) {
    const char *sub[] = {"", "/checkpoints", "/samples", "/model"};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        char dir[LDM_RUN_PATH];
        run_format(dir, "%s%s", r->out, sub[i]);
        run_remove_temporaries(r, dir);
    }
}

/* Without --resume, an output folder holding an earlier run's checkpoints (the LDM's, or the
 * autoencoder's unfinished state) is refused: starting afresh would overwrite them. */
static ldm_status refuse_earlier_run(const run_ctx *r) {
    char dir[LDM_RUN_PATH], state[LDM_RUN_PATH];
    run_path(dir, r->out, "checkpoints");
    run_path(state, r->out, RUN_AE_STATE_NAME);
    const char *found = run_has_checkpoints(dir) ? dir : run_exists(state) ? state : NULL;
    if (!found) return LDM_OK;
    return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                    "output_dir '%s' holds an earlier run's checkpoints (%s): add --resume to "
                    "continue that run, or set another output_dir (or remove that folder) to "
                    "start afresh",
                    r->out, found);
}

ldm_status ldm_run_train(ldm_ctx *ctx, const ldm_run_config *config, const ldm_run_options *o) {
    ldm_run_config *c = malloc(sizeof *c); /* with epochs turned into steps */
    if (!c) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    *c = *config;
    run_ctx r = {.ctx = ctx,
                 .c = c,
                 .o = o,
                 .job = o->job,
                 .rank = ldm_job_rank(o->job),
                 .ranks = ldm_job_size(o->job)};
    snprintf(r.out, sizeof r.out, "%s", c->output_dir);
    ldm_status st = RUN_WRITES(&r) ? run_mkdirs(r.out) : LDM_OK;
    /* what a process killed mid-save left (a run never resumes from them) */
    if (st == LDM_OK && RUN_WRITES(&r)) remove_all_temporaries(&r);
    st = run_all_ok(&r, st, "making the output folder");
    if (st == LDM_OK && !c->dataset_path[0])
        st = LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s: [dataset] path is not set", c->path);
    ldm_dataset_options dopt = {.size = c->model.resolution,
                                .channels = c->model.channels,
                                .random_flip = c->random_flip,
                                .caption_ext = c->caption_extension,
                                .log = o->log,
                                .log_user = o->log_user};
    if (st == LDM_OK) st = ldm_dataset_open(c->dataset_path, &dopt, &r.data);
    if (st != LDM_OK) {
        free(c);
        return st;
    }
    size_t n = ldm_dataset_count(r.data), n_ldm = 0; /* n_ldm: with kohya's repeats */
    for (size_t i = 0; i < n; i++)
        n_ldm += (size_t)ldm_dataset_repeats(r.data, i);
    run_note(&r, LDM_LOG_INFO, "dataset %s: %zu images, %zu without captions", c->dataset_path, n,
             ldm_dataset_missing_captions(r.data));
    if (r.ranks > 1)
        run_note(&r, LDM_LOG_INFO,
                 "data parallel: %d ranks (%s); global batch: autoencoder %d x %d x %d, ldm %d x "
                 "%d x %d (per rank x ranks x accumulation)",
                 r.ranks, ldm_job_library(), c->ae_train.step.batch, r.ranks,
                 c->ae_train.step.acc_steps, c->ldm_train.batch, r.ranks, c->ldm_train.acc_steps);
    if (c->ae_train.epochs > 0 || c->ldm_train.epochs > 0) {
        int ae_epochs = c->ae_train.epochs, epochs = c->ldm_train.epochs;
        /* an epoch is the dataset once over the global batch (every rank's) */
        c->ae_train.step.batch *= r.ranks;
        c->ldm_train.batch *= r.ranks;
        ldm_run_config_resolve_epochs(c, n, n_ldm);
        c->ae_train.step.batch /= r.ranks;
        c->ldm_train.batch /= r.ranks;
        if (ae_epochs > 0)
            run_note(&r, LDM_LOG_INFO, "autoencoder: %d epochs of %zu images = %d steps", ae_epochs,
                     n, c->ae_train.steps);
        if (epochs > 0)
            run_note(&r, LDM_LOG_INFO, "ldm: %d epochs of %zu images = %d steps", epochs, n_ldm,
                     c->ldm_train.max_steps);
    }
    r.ae_total = o->stage != LDM_STAGE_LDM ? c->ae_train.steps : 0; /* 0 when it is skipped */
    r.ldm_total = o->stage != LDM_STAGE_AUTOENCODER ? c->ldm_train.max_steps : 0;
    char ae_path[LDM_RUN_PATH], cache[LDM_RUN_PATH];
    st = o->resume ? LDM_OK : refuse_earlier_run(&r);
    if (st == LDM_OK) st = run_check_inputs(&r);
    st = run_all_ok(&r, st, "checking the run's inputs");
    if (st == LDM_OK && o->stage != LDM_STAGE_LDM) {
        st = run_autoencoder_stage(&r, ae_path);
        st = run_all_ok(&r, st, "the autoencoder stage"); /* then its file is there for all */
    }
    if (st == LDM_OK && o->stage == LDM_STAGE_LDM) {
        if (c->ae_checkpoint[0])
            snprintf(ae_path, sizeof ae_path, "%s", c->ae_checkpoint);
        else
            run_path(ae_path, r.out, "autoencoder.safetensors");
        if (!run_exists(ae_path))
            st = LDM_FAIL(LDM_ERR_NOT_FOUND,
                          "the LDM stage needs a trained autoencoder: '%s' does not exist (run "
                          "the autoencoder stage, or set [autoencoder] checkpoint)",
                          ae_path);
    }
    int later = st == LDM_OK && !r.stopped && o->stage != LDM_STAGE_AUTOENCODER;
    if (later) st = run_latent_cache(&r, ae_path, cache);
    if (later && st == LDM_OK) st = run_ldm_stage(&r, ae_path, cache);
    ldm_dataset_destroy(r.data);
    free(c);
    return st;
}
