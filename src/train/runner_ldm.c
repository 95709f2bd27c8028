/* src/train/runner_ldm.c: stage two of a training run, the text-conditioned LDM on cached latents
 * (see ldmcl/runner.h): the cache and its scaling, the data order and captions fed to the LDM's
 * trainer (diffusion_trainer.c) with gradient accumulation and the learning-rate schedule,
 * checkpoints and resumption, validation grids, the logs and the model folder. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/autoencoder.h"
#include "ldmcl/caption_tags.h"
#include "ldmcl/clip.h"
#include "ldmcl/diffusion_trainer.h"
#include "ldmcl/image.h"
#include "ldmcl/pipeline.h"
#include "ldmcl/safetensors.h"
#include "ldmcl/sample.h"
#include "ldmcl/tokenizer.h"
#include "runner_internal.h"

#define VOCAB_NAME "bpe_simple_vocab_16e6.txt.gz"

typedef struct stage {
    run_ctx *r;
    const ldm_run_config *c;
    ldm_diffusion_trainer *t;
    float *cache, *cache_idx; /* the latent cache */
    float *cache_flipped;     /* the mirrored images' latents (random_flip), else NULL */
    /* latent_scaling: the cache's statistics, by which the cache is normalised on loading and
     * sampled latents are restored before decoding */
    float lat_mean[LDM_MODEL_MAX_LATENT_CHANNELS], lat_std[LDM_MODEL_MAX_LATENT_CHANNELS];
    size_t n, lat;
    int lat_hw;
    float *lat_batch;
    const char **captions;
    char **tagged; /* the batch's captions after shuffle_caption and tag dropout (else NULL) */
    /* kohya's N_concept repeats: position k of an epoch is cache entry order_map[k] (NULL: no
     * repeats, position k is entry k), n_order positions per epoch */
    size_t *order_map, n_order;
    const char *ae_path; /* the autoencoder, for validation grids and the model folder */
    ldm_pipeline *val;   /* the validation grids' pipeline, once made */
    float lr_set, loss;  /* the learning rate set, the last step's loss (the job's mean) */
    /* the global sample position of step `step` is step x global batch + shift: 0 unless the
     * run resumed with another number of ranks, from the checkpoint's sample position */
    int64_t shift;
} stage;

/* Samples the job sees per optimizer step: per rank x ranks x accumulation. */
static uint64_t global_batch(const stage *s) {
    const ldm_run_diffusion *d = &s->c->ldm_train;
    return (uint64_t)d->batch * (uint64_t)s->r->ranks * (uint64_t)d->acc_steps;
}

static uint64_t sample_position(const stage *s, int step) {
    return (uint64_t)((int64_t)((uint64_t)step * global_batch(s)) + s->shift);
}

/* latent_scaling: the statistics of the cache, then the cache (and its mirrored twin) normalised
 * by them. */
static ldm_status scale_cache(stage *s) {
    const ldm_run_config *c = s->c;
    int z = ldm_model_latent_channels(&c->model);
    size_t hw = (size_t)s->lat_hw * (size_t)s->lat_hw;
    /* a pretrained model's UNet learnt its latents as its own statistics scaled them */
    int given = c->model.n_latent_stats == z;
    ldm_status st = LDM_OK;
    if (given) {
        memcpy(s->lat_mean, c->model.latent_mean, (size_t)z * sizeof *s->lat_mean);
        memcpy(s->lat_std, c->model.latent_std, (size_t)z * sizeof *s->lat_std);
    } else {
        st = ldm_latent_stats(c->model.latent_scaling, s->cache, s->n, z, hw, s->lat_mean,
                              s->lat_std);
    }
    if (st != LDM_OK) {
        ldm_error_prefix("the latent cache");
        return st;
    }
    ldm_latents_normalize(s->cache, s->n, z, hw, s->lat_mean, s->lat_std, 0);
    if (s->cache_flipped)
        ldm_latents_normalize(s->cache_flipped, s->n, z, hw, s->lat_mean, s->lat_std, 0);
    char text[2048] = "";
    for (int k = 0; k < z && strlen(text) + 64 < sizeof text; k++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s%.4g/%.4g", k ? ", " : "",
                 (double)s->lat_mean[k], (double)s->lat_std[k]);
    run_note(s->r, LDM_LOG_INFO,
             "latent_scaling = %s: the latents are normalised by (mean/std per channel) %s%s",
             c->model.latent_scaling == LDM_LATENT_GLOBAL ? "global" : "channel", text,
             given ? " (the model's)" : "");
    return LDM_OK;
}

/* latent_patch: the cache (and its mirrored twin) as the LDM sees it, patches as channels. */
static ldm_status patch_cache(stage *s) {
    const ldm_run_config *c = s->c;
    int p = c->model.latent_patch;
    float **caches[2] = {&s->cache, &s->cache_flipped};
    for (int k = 0; k < 2; k++) {
        if (!*caches[k]) continue;
        float *patched = malloc(s->n * s->lat * sizeof *patched);
        if (!patched) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        ldm_latents_patchify(*caches[k], patched, s->n, c->model.ae.z_channels, s->lat_hw,
                             s->lat_hw, p, 0);
        free(*caches[k]);
        *caches[k] = patched;
    }
    s->lat_hw /= p;
    return LDM_OK;
}

static ldm_status load_cache(stage *s, const char *path) {
    run_latents l;
    LDM_TRY(run_latent_cache_read(s->c, path, ldm_dataset_count(s->r->data), &l));
    s->cache = l.z;
    s->cache_idx = l.idx;
    s->cache_flipped = l.z_flipped;
    s->n = l.n;
    s->lat = l.lat;
    s->lat_hw = l.hw;
    ldm_status e = LDM_OK;
    if (s->c->model.latent_patch > 1) e = patch_cache(s);
    if (e == LDM_OK && s->c->model.latent_scaling != LDM_LATENT_NONE) e = scale_cache(s);
    return e;
}

/* kohya's repeats: an epoch holds each cache entry as many times as its image's folder says. */
static ldm_status make_order_map(stage *s) {
    size_t total = 0;
    for (size_t j = 0; j < s->n; j++)
        total += (size_t)ldm_dataset_repeats(s->r->data, (size_t)s->cache_idx[j]);
    s->n_order = total;
    if (total == s->n) return LDM_OK;
    s->order_map = malloc(total * sizeof *s->order_map);
    if (!s->order_map) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    size_t k = 0;
    for (size_t j = 0; j < s->n; j++)
        for (int r = ldm_dataset_repeats(s->r->data, (size_t)s->cache_idx[j]); r > 0; r--)
            s->order_map[k++] = j;
    run_note(s->r, LDM_LOG_INFO,
             "repeat folders (N_concept): an epoch of the LDM stage is %zu latents of %zu images",
             total, s->n);
    return LDM_OK;
}

/* The caption of micro-batch item b: one of the image's captions, then shuffle_caption and tag
 * dropout when set. */
static ldm_status caption_of(stage *s, int b, size_t item, uint64_t p) {
    const ldm_run_config *c = s->c;
    uint64_t key = run_mix(c->seed ^ run_mix(p));
    const char *text = ldm_dataset_caption(s->r->data, item, key);
    s->captions[b] = text;
    if (!s->tagged) return LDM_OK;
    free(s->tagged[b]);
    s->tagged[b] = NULL;
    LDM_TRY(ldm_caption_tags_apply(text, &c->caption_tags, run_mix(key ^ 0x7a95u), &s->tagged[b]));
    s->captions[b] = s->tagged[b];
    return LDM_OK;
}

/* Micro-batch p0 .. p0 + batch of the training order through the trainer (this rank's slice
 * of a global micro-batch). */
static ldm_status feed_batch(stage *s, uint64_t p0, float *loss) {
    const ldm_run_config *c = s->c;
    for (int b = 0; b < c->ldm_train.batch; b++) {
        uint64_t p = p0 + (uint64_t)b;
        size_t k = run_order(c->seed, s->n_order, p), j = s->order_map ? s->order_map[k] : k;
        /* random_flip: the mirrored image's latent half of the time (its own draw) */
        const float *from = s->cache_flipped && (run_mix(run_mix(c->seed ^ p) ^ 0xf11bu) & 1)
                                ? s->cache_flipped
                                : s->cache;
        memcpy(s->lat_batch + (size_t)b * s->lat, from + j * s->lat, s->lat * sizeof(float));
        LDM_TRY(caption_of(s, b, (size_t)s->cache_idx[j], p));
    }
    return ldm_diffusion_trainer_forward_backward(s->t, s->lat_batch, s->captions, loss);
}

/* The stage's checkpoints (run_checkpoints.c): its whole training state and the step. */
#define SAMPLES_KEY "ldmcl.run.samples" /* the global sample position after the step */

static ldm_status save_state(void *user, const char *path, int step) {
    stage *s = user;
    char text[32], samples[32], ranks[16];
    snprintf(text, sizeof text, "%d", step);
    snprintf(samples, sizeof samples, "%llu", (unsigned long long)sample_position(s, step));
    snprintf(ranks, sizeof ranks, "%d", s->r->ranks);
    const char *meta[] = {RUN_STEP_KEY,  text,        "ldmcl.run.config",
                          s->c->path,    SAMPLES_KEY, samples,
                          RUN_RANKS_KEY, ranks,       NULL};
    return ldm_diffusion_trainer_save_state(s->t, path, meta);
}

/* The sample position a checkpoint records, and the ranks that wrote it (both absent from
 * checkpoints of earlier versions: then the position of its step with this job's batch). */
static ldm_status read_position(stage *s, const char *path, int step) {
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    uint64_t samples = 0, ranks = 0;
    int has = ldm_safetensors_metadata(st, SAMPLES_KEY) != NULL;
    ldm_status e = has ? ldm_safetensors_metadata_u64(st, SAMPLES_KEY, &samples) : LDM_OK;
    if (e == LDM_OK && ldm_safetensors_metadata(st, RUN_RANKS_KEY))
        e = ldm_safetensors_metadata_u64(st, RUN_RANKS_KEY, &ranks);
    ldm_safetensors_close(st);
    LDM_TRY(e);
    s->shift = has ? (int64_t)samples - (int64_t)((uint64_t)step * global_batch(s)) : 0;
    if (s->shift != 0 || (ranks && ranks != (uint64_t)s->r->ranks))
        run_note(s->r, LDM_LOG_INFO,
                 "%s was written by %llu rank(s), this job has %d: it continues from global "
                 "sample position %llu (step %d), %llu samples per step from here",
                 path, (unsigned long long)ranks, s->r->ranks, (unsigned long long)samples, step,
                 (unsigned long long)global_batch(s));
    return LDM_OK;
}

static ldm_status load_state(void *user, const char *path, int *step) {
    stage *s = user;
    LDM_TRY(run_checkpoint_step(path, step));
    LDM_TRY(ldm_diffusion_trainer_load_state(s->t, path));
    return read_position(s, path, *step);
}

/* Every rank checks that it holds rank 0's state; rank 0 saves it. */
static ldm_status save_checkpoint(stage *s, int step) {
    LDM_TRY(ldm_diffusion_trainer_check_same(s->t));
    if (!RUN_WRITES(s->r)) return LDM_OK;
    return run_checkpoint_save(s->r, step, s->c->ldm_train.checkpoints_limit, save_state, s);
}

/* The step to continue from (0 when starting afresh). */
static ldm_status resume(stage *s, int *start) {
    *start = 0;
    const ldm_run_diffusion *d = &s->c->ldm_train;
    if (s->r->o->resume || !strcmp(d->resume, "latest"))
        return run_checkpoint_resume(s->r, d->checkpoints_limit, load_state, s, start);
    if (!d->resume[0]) return LDM_OK;
    LDM_TRY(load_state(s, d->resume, start));
    run_note(s->r, LDM_LOG_INFO, "resumed from %s at step %d", d->resume, *start);
    return LDM_OK;
}

static void grid_path(const stage *s, int step, char *out) {
    run_format(out, "%s/samples/step-%08d.png", s->r->out, step);
}

/* Whether a validation grid is made after step. */
static int validates_at(const stage *s, int step) {
    const ldm_run_config *c = s->c;
    return c->ldm_train.validation_steps > 0 && step % c->ldm_train.validation_steps == 0 &&
           c->ldm_train.n_validation_prompts > 0 && c->model.text != LDM_TEXT_NONE;
}

/* The model's description as the model folder will hold it: with the latent statistics. */
static void model_with_stats(const stage *s, ldm_model_config *m) {
    *m = s->c->model;
    if (m->latent_scaling == LDM_LATENT_NONE) return;
    m->n_latent_stats = ldm_model_latent_channels(m);
    memcpy(m->latent_mean, s->lat_mean, sizeof m->latent_mean);
    memcpy(m->latent_std, s->lat_std, sizeof m->latent_std);
}

/* The pipeline that ldmcl-sample runs, over the trainer's weights (the step's parameter store,
 * the text encoder's), made at the first grid and kept: a grid reads nothing from disk. */
static ldm_status validation_pipeline(stage *s) {
    if (s->val) return LDM_OK;
    const ldm_run_config *c = s->c;
    ldm_model_config *m = malloc(sizeof *m);
    if (!m) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    model_with_stats(s, m);
    ldm_pipeline_options o = {.method = LDM_SAMPLER_DDIM,
                              .steps = c->ldm_train.validation_sampling_steps,
                              .guidance_scale = c->ldm_train.validation_guidance_scale,
                              .batch = c->ldm_train.n_validation_prompts};
    ldm_graph *g = ldm_diffusion_trainer_graph(s->t);
    ldm_pipeline_weights w = {.unet = ldm_graph_params(g),
                              .text = ldm_diffusion_trainer_text_params(s->t),
                              .tokenizer = ldm_diffusion_trainer_tokenizer(s->t),
                              .autoencoder = s->ae_path,
                              .lora = ldm_graph_lora(g)};
    ldm_status st = ldm_pipeline_create(s->r->ctx, m, &w, &o, &s->val);
    free(m);
    return st;
}

/* Samples the validation prompts with the current weights into samples/step-N.png: a row per
 * prompt, captioned, the tiles enlarged to a viewable size; the prompts' texts in the PNG too. */
static ldm_status validate(stage *s, int step) {
    const ldm_run_config *c = s->c;
    int n = c->ldm_train.n_validation_prompts, sz = c->model.resolution;
    const char *prompts[LDM_RUN_MAX_PROMPTS];
    for (int i = 0; i < n; i++)
        prompts[i] = c->ldm_train.validation_prompts[i];
    size_t per = (size_t)c->model.channels * sz * sz;
    float *img = malloc((size_t)n * per * sizeof *img);
    ldm_status st = img ? LDM_OK : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (st == LDM_OK) st = validation_pipeline(s);
    if (st == LDM_OK) st = ldm_pipeline_generate_each(s->val, prompts, "", c->seed, img);
    if (st == LDM_OK) {
        char dir[LDM_RUN_PATH], path[LDM_RUN_PATH], desc[4096] = "", title[160];
        run_path(dir, s->r->out, "samples");
        st = run_mkdirs(dir);
        grid_path(s, step, path);
        for (int i = 0; i < n; i++)
            snprintf(desc + strlen(desc), sizeof desc - strlen(desc), "%s%s", i ? " | " : "",
                     prompts[i]);
        snprintf(title, sizeof title, "step %d: DDIM %d steps, guidance %g, seed %llu", step,
                 c->ldm_train.validation_sampling_steps,
                 (double)c->ldm_train.validation_guidance_scale, (unsigned long long)c->seed);
        const char *text[] = {"prompts", desc, NULL};
        if (st == LDM_OK)
            st = run_write_grid(path, img, n, 1, c->model.channels, sz, prompts, title, text);
        if (st == LDM_OK) run_note(s->r, LDM_LOG_INFO, "validation samples: %s", path);
    }
    free(img);
    if (st != LDM_OK) ldm_error_prefix("the validation samples at step %d", step);
    return st;
}

/* The model folder ldmcl-sample reads. */
static ldm_status write_model(stage *s, const char *ae_path) {
    const ldm_run_config *c = s->c;
    char dir[LDM_RUN_PATH], path[LDM_RUN_PATH];
    run_path(dir, s->r->out, "model");
    LDM_TRY(run_mkdirs(dir));
    LDM_TRY(ldm_diffusion_trainer_write_model(s->t, dir));
    run_path(path, dir, "autoencoder.safetensors");
    LDM_TRY(run_copy_file(ae_path, path));
    if (c->model.text == LDM_TEXT_CLIP_SCRATCH) {
        run_path(path, dir, VOCAB_NAME);
        LDM_TRY(run_copy_file(c->model.vocab, path));
    }
    run_path(path, dir, "model.ini");
    ldm_model_config *m = malloc(sizeof *m);
    if (!m) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    model_with_stats(s, m);
    ldm_status st =
        ldm_model_config_write(m, path, c->model.text == LDM_TEXT_CLIP_SCRATCH ? VOCAB_NAME : NULL);
    free(m);
    LDM_TRY(st);
    run_note(s->r, LDM_LOG_INFO, "model folder: %s%s", dir,
             c->ldm_train.lora.rank ? " (the LoRA merged into the pretrained weights)" : "");
    if (!c->ldm_train.lora.rank) return LDM_OK;
    int layers;
    run_path(path, s->r->out, "lora.safetensors");
    LDM_TRY(ldm_diffusion_trainer_write_lora(s->t, path, &layers));
    run_note(s->r, LDM_LOG_INFO, "LoRA: %s (%d layers, rank %d, alpha %g; kohya's format)", path,
             layers, c->ldm_train.lora.rank, (double)c->ldm_train.lora.alpha);
    return LDM_OK;
}

static void stage_free(stage *s) {
    ldm_pipeline_destroy(s->val);
    ldm_diffusion_trainer_destroy(s->t);
    free(s->cache);
    free(s->cache_idx);
    free(s->cache_flipped);
    free(s->lat_batch);
    free(s->captions);
    for (int b = 0; s->tagged && b < s->c->ldm_train.batch; b++)
        free(s->tagged[b]);
    free(s->tagged);
    free(s->order_map);
}

/* ---- the stage's loop (run_loop.c) ------------------------------------------------------ */

static ldm_status set_lr(void *self, int step) {
    stage *s = self;
    float lr = ldm_run_lr_at(s->c, step);
    if (lr == s->lr_set) return LDM_OK;
    s->lr_set = lr;
    return ldm_diffusion_trainer_set_lr(s->t, lr);
}

/* Micro-batches of the step, then the optimizer and the averages. */
static ldm_status train_step(void *self, int step, float *loss) {
    stage *s = self;
    const ldm_run_diffusion *d = &s->c->ldm_train;
    *loss = 0;
    uint64_t micro = (uint64_t)d->batch * (uint64_t)s->r->ranks; /* the global micro-batch */
    for (int m = 0; m < d->acc_steps; m++) {
        uint64_t p0 =
            sample_position(s, step) + (uint64_t)m * micro + (uint64_t)s->r->rank * d->batch;
        float l = 0;
        LDM_TRY(feed_batch(s, p0, &l));
        *loss += l / (float)d->acc_steps;
    }
    if (s->r->ranks > 1) { /* the job's mean loss: what one rank with the whole batch logs */
        LDM_TRY(ldm_job_sum(s->r->job, loss, 1, "the step's loss"));
        *loss /= (float)s->r->ranks;
    }
    if (!isfinite(*loss))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the loss is not finite at step %d: training stopped (the last "
                        "checkpoint is kept; lower [train] learning_rate or set max_grad_norm)",
                        step + 1);
    s->loss = *loss;
    return ldm_diffusion_trainer_apply(s->t);
}

static void log_line(void *self, int step, double seconds, char *line, size_t size) {
    const stage *s = self;
    snprintf(line, size, "%d,%.6g,%.6g,%.3f", step + 1, (double)s->loss, (double)s->lr_set,
             seconds);
}

static ldm_status after_step(void *self, int step) {
    stage *s = self;
    const ldm_run_diffusion *d = &s->c->ldm_train;
    if ((step + 1) % d->checkpointing_steps == 0 || step + 1 == d->max_steps)
        LDM_TRY(save_checkpoint(s, step + 1));
    return validates_at(s, step + 1) && RUN_WRITES(s->r) ? validate(s, step + 1) : LDM_OK;
}

static void stopped(void *self, int done, int step) {
    const stage *s = self;
    run_note(s->r, LDM_LOG_INFO, "stopped after %d steps of this run (step %d)", done, step + 1);
}

ldm_status run_ldm_stage(run_ctx *r, const char *ae_path, const char *cache_path) {
    const ldm_run_config *c = r->c;
    stage s = {.r = r, .c = c, .ae_path = ae_path, .lr_set = -1};
    ldm_status st = load_cache(&s, cache_path);
    if (st == LDM_OK)
        st = ldm_diffusion_trainer_create_in_job(r->ctx, &c->model, &c->ldm_train, s.lat_hw,
                                                 c->seed, r->job, &s.t);
    s.lat_batch = malloc((size_t)c->ldm_train.batch * s.lat * sizeof *s.lat_batch);
    s.captions = malloc((size_t)c->ldm_train.batch * sizeof *s.captions);
    if (ldm_caption_tags_active(&c->caption_tags))
        s.tagged = calloc((size_t)c->ldm_train.batch, sizeof *s.tagged);
    if (st == LDM_OK &&
        (!s.lat_batch || !s.captions || (ldm_caption_tags_active(&c->caption_tags) && !s.tagged)))
        st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (st == LDM_OK) st = make_order_map(&s);
    int start = 0;
    if (st == LDM_OK) st = resume(&s, &start);
    char csv_path[LDM_RUN_PATH];
    run_path(csv_path, r->out, "train_log.csv");
    /* the grid of the step resumed from, when the process that saved its checkpoint died first */
    char grid[LDM_RUN_PATH];
    if (st == LDM_OK && start && validates_at(&s, start) && RUN_WRITES(r)) {
        grid_path(&s, start, grid);
        if (!run_exists(grid)) st = validate(&s, start);
    }
    run_stage_loop loop = {.stage = "ldm",
                           .csv_path = csv_path,
                           .csv_header = "step,loss,lr,seconds",
                           .start = start,
                           .total = c->ldm_train.max_steps,
                           .stop_after = r->o->stop_after,
                           .self = &s,
                           .prepare = set_lr,
                           .step = train_step,
                           .log_line = log_line,
                           .after = after_step,
                           .stopped = stopped};
    run_loop_end end = {0};
    if (st == LDM_OK) st = run_loop(r, &loop, &end);
    if (st == LDM_OK && end.finished && RUN_WRITES(r)) {
        char png[LDM_RUN_PATH];
        run_path(png, r->out, "loss.png");
        st = run_plot_log(csv_path, png, "ldm");
        if (st == LDM_OK) st = write_model(&s, ae_path);
    }
    stage_free(&s);
    return st;
}
