/* src/train/ae_step.c: the autoencoder's training step (see ldmcl/ae_train.h): the generator and
 * discriminator graphs, the parameter traffic between them, the optimizers and the loss read-back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/ae_train.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/grad_sync.h"
#include "ldmcl/ops.h"
#include "ldmcl/safetensors.h"
#include "ldmcl/train_state.h"

#define LPIPS_PREFIX "lpips."

struct ldm_ae_trainer {
    ldm_ctx *ctx;
    ldm_ae_train_config cfg;
    int use_disc, use_lpips, lpips_loaded;
    ldm_graph *gg, *dg;
    /* generator graph */
    ldm_tensor *images, *noise, *adv_on, *out, *indices;
    ldm_tensor *recon, *codebook, *commitment, *kl, *perceptual, *g_adv, *g_total;
    /* discriminator graph */
    ldm_tensor *fake, *real, *d_fake, *d_real, *d_total;
    ldm_optimizer *opt_g, *opt_d;
    int step, d_pending;
    float adv_written; /* the value in adv_on (-1: not yet written) */
    float *host_indices;
    unsigned char *used;
    ldm_grad_sync *g_sync, *d_sync; /* data parallelism: a job of more than one */
};

void ldm_ae_train_config_init(ldm_ae_train_config *c, const ldm_autoencoder_config *ae) {
    memset(c, 0, sizeof *c);
    c->ae = *ae;
    ldm_discriminator_config_default(&c->disc, ae->im_channels);
    ldm_lpips_config_default(&c->lpips);
    c->codebook_weight = 1.0f;
    c->commitment_beta = 0.2f;
    c->kl_weight = 5e-6f;
    c->perceptual_weight = 1.0f;
    c->disc_weight = 0.5f;
    c->disc_start = 1000;
    c->acc_steps = 1;
    c->lr = 1e-4f;
    c->beta1 = 0.5f;
    c->beta2 = 0.999f;
    c->seed = 1111;
}

#define BAD(...) LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "autoencoder training: " __VA_ARGS__)

static ldm_status check_config(const ldm_ae_train_config *c) {
    LDM_TRY(ldm_autoencoder_config_check(&c->ae));
    if (c->batch < 1 || c->height < 1 || c->width < 1)
        return BAD("batch %d and image size %dx%d must be positive", c->batch, c->height, c->width);
    if (c->acc_steps < 1) return BAD("acc_steps = %d must be at least 1", c->acc_steps);
    if (c->disc_start < 0) return BAD("disc_start = %d must not be negative", c->disc_start);
    if (c->codebook_weight < 0 || c->commitment_beta < 0 || c->kl_weight < 0 ||
        c->perceptual_weight < 0 || c->disc_weight < 0)
        return BAD("loss weights must not be negative");
    if (!(c->lr > 0) || c->beta1 < 0 || c->beta1 >= 1 || c->beta2 < 0 || c->beta2 >= 1)
        return BAD("lr %g must be positive and betas (%g, %g) in [0, 1)", (double)c->lr,
                   (double)c->beta1, (double)c->beta2);
    return LDM_OK;
}

/* a + w * b, skipping b when w is 0. */
static ldm_tensor *plus(ldm_graph *g, ldm_tensor *a, float w, ldm_tensor *b) {
    return w != 0.0f ? ldm_axpby_t(g, 1.0f, a, w, b) : a;
}

static ldm_status record_generator(ldm_ae_trainer *t) {
    const ldm_ae_train_config *c = &t->cfg;
    ldm_graph *g = t->gg;
    int lat = ldm_autoencoder_latent_size(&c->ae, c->height);
    int latw = ldm_autoencoder_latent_size(&c->ae, c->width);
    t->images =
        ldm_graph_input(g, "images", LDM_SHAPE(c->batch, c->ae.im_channels, c->height, c->width));
    if (c->external_noise && c->ae.kind == LDM_AE_VAE)
        t->noise =
            ldm_graph_input(g, "vae_noise", LDM_SHAPE(c->batch, c->ae.z_channels, lat, latw));
    ldm_ae_encoding enc;
    ldm_tensor *latent = ldm_autoencoder_encode(g, &c->ae, t->images, 1, t->noise, c->seed, &enc);
    t->out = ldm_autoencoder_decode(g, &c->ae, latent);
    t->recon = ldm_mse_loss(g, t->out, t->images);
    ldm_tensor *loss = t->recon;
    if (c->ae.kind == LDM_AE_VQVAE) {
        t->codebook = enc.codebook_loss;
        t->commitment = enc.commitment_loss;
        t->indices = enc.indices;
        loss = plus(g, loss, c->codebook_weight, t->codebook);
        loss = plus(g, loss, c->commitment_beta, t->commitment);
    } else {
        t->kl = enc.kl;
        loss = plus(g, loss, c->kl_weight, t->kl);
    }
    if (t->use_lpips) {
        t->perceptual = ldm_lpips(g, &c->lpips, t->out, t->images, LPIPS_PREFIX);
        loss = plus(g, loss, c->perceptual_weight, t->perceptual);
    }
    if (t->use_disc) {
        /* The discriminator's own weights (the same store's entries), which this graph does not
         * train; its running statistics move only in adversarial steps, as the reference calls
         * the discriminator in the generator's step only then. */
        t->adv_on = ldm_graph_input(g, "adversarial", LDM_SHAPE(1));
        ldm_tensor *logits = ldm_discriminator(g, &c->disc, t->out, NULL, 1, t->adv_on);
        t->g_adv = ldm_mse_loss_const(g, logits, 1.0f);
        loss = plus(g, loss, c->disc_weight, ldm_mul(g, t->adv_on, t->g_adv));
        for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
            ldm_tensor *p = ldm_graph_param_at(g, i);
            if (ldm_graph_find(t->dg, ldm_tensor_name(p))) ldm_tensor_set_trainable(p, 0);
        }
    }
    t->g_total = ldm_scale(g, loss, 1.0f / (float)c->acc_steps);
    ldm_tensor *keep[] = {t->out,        t->recon, t->codebook, t->commitment, t->kl,
                          t->perceptual, t->g_adv, t->g_total,  t->indices};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (keep[i]) ldm_tensor_keep(keep[i]);
    return ldm_graph_backward(g, t->g_total);
}

static ldm_status record_discriminator(ldm_ae_trainer *t) {
    const ldm_ae_train_config *c = &t->cfg;
    ldm_graph *g = t->dg;
    t->fake =
        ldm_graph_input(g, "fake", LDM_SHAPE(c->batch, c->ae.im_channels, c->height, c->width));
    t->real =
        ldm_graph_input(g, "real", LDM_SHAPE(c->batch, c->ae.im_channels, c->height, c->width));
    t->d_fake = ldm_mse_loss_const(g, ldm_discriminator(g, &c->disc, t->fake, NULL, 1, NULL), 0.0f);
    t->d_real = ldm_mse_loss_const(g, ldm_discriminator(g, &c->disc, t->real, NULL, 1, NULL), 1.0f);
    t->d_total =
        ldm_scale(g, ldm_add(g, t->d_fake, t->d_real), c->disc_weight / 2.0f / (float)c->acc_steps);
    ldm_tensor_keep(t->d_fake);
    ldm_tensor_keep(t->d_real);
    ldm_tensor_keep(t->d_total);
    return ldm_graph_backward(g, t->d_total);
}

ldm_status ldm_ae_trainer_create(ldm_ctx *ctx, const ldm_ae_train_config *cfg,
                                 ldm_ae_trainer **out) {
    *out = NULL;
    LDM_TRY(check_config(cfg));
    ldm_ae_trainer *t = calloc(1, sizeof *t);
    if (!t) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    t->ctx = ctx;
    t->cfg = *cfg;
    t->use_disc = cfg->disc_weight > 0.0f;
    t->use_lpips = cfg->perceptual_weight > 0.0f;
    t->adv_written = -1.0f;
    /* One parameter store: the discriminator is recorded first, so that its entries are
     * trainable (its graph trains them) and lie together before the autoencoder's; the generator
     * graph uses them without a copy. Both are recorded before either compiles. */
    ldm_status st = LDM_OK;
    int rank = ldm_job_rank(cfg->job), ranks = ldm_job_size(cfg->job);
    if (t->use_disc) st = ldm_graph_create(ctx, &t->dg);
    if (st == LDM_OK && t->use_disc) st = ldm_graph_set_batch_part(t->dg, rank, ranks);
    if (st == LDM_OK && t->use_disc) st = record_discriminator(t);
    if (st == LDM_OK) st = ldm_graph_create_in(ctx, t->dg ? ldm_graph_params(t->dg) : NULL, &t->gg);
    if (st == LDM_OK) st = ldm_graph_set_batch_part(t->gg, rank, ranks);
    if (st == LDM_OK) st = record_generator(t);
    if (st == LDM_OK) st = ldm_graph_compile(t->gg);
    if (st == LDM_OK && t->use_disc) st = ldm_graph_compile(t->dg);
    if (st == LDM_OK && ranks > 1) st = ldm_grad_sync_create(t->gg, cfg->job, 0, &t->g_sync);
    if (st == LDM_OK && ranks > 1 && t->use_disc)
        st = ldm_grad_sync_create(t->dg, cfg->job, 0, &t->d_sync);
    ldm_adam_config adam;
    ldm_adam_config_init(&adam);
    adam.lr = cfg->lr;
    adam.beta1 = cfg->beta1;
    adam.beta2 = cfg->beta2;
    if (st == LDM_OK) st = ldm_adam_create(t->gg, &adam, &t->opt_g);
    if (st == LDM_OK && t->use_disc) st = ldm_adam_create(t->dg, &adam, &t->opt_d);
    if (st == LDM_OK && t->indices) {
        t->host_indices = malloc(ldm_tensor_numel(t->indices) * sizeof *t->host_indices);
        t->used = malloc((size_t)cfg->ae.codebook_size);
        if (!t->host_indices || !t->used) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    if (st != LDM_OK) {
        ldm_ae_trainer_destroy(t);
        return st;
    }
    *out = t;
    return LDM_OK;
}

void ldm_ae_trainer_destroy(ldm_ae_trainer *t) {
    if (!t) return;
    ldm_grad_sync_destroy(t->g_sync);
    ldm_grad_sync_destroy(t->d_sync);
    ldm_optimizer_destroy(t->opt_g);
    ldm_optimizer_destroy(t->opt_d);
    ldm_graph_destroy(t->gg);
    ldm_graph_destroy(t->dg);
    free(t->host_indices);
    free(t->used);
    free(t);
}

ldm_status ldm_ae_trainer_init_params(ldm_ae_trainer *t, uint64_t seed) {
    /* LPIPS has no rule: its weights come from a file. */
    LDM_TRY(ldm_graph_init_params(t->gg, seed, 1));
    return t->dg ? ldm_graph_init_params(t->dg, seed, 0) : LDM_OK;
}

ldm_status ldm_ae_trainer_load_lpips(ldm_ae_trainer *t, const char *path) {
    if (!t->use_lpips)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "LPIPS weights '%s' given, but perceptual_weight is 0", path);
    ldm_load_options o = {.graph_prefix = LPIPS_PREFIX};
    LDM_TRY(ldm_graph_load(t->gg, path, &o));
    t->lpips_loaded = 1;
    return LDM_OK;
}

static ldm_status copy_tensor(ldm_ctx *ctx, ldm_tensor *dst, ldm_tensor *src) {
    return ldm_buf_copy(ctx, ldm_tensor_buf(dst), ldm_tensor_buf(src), ldm_tensor_numel(src), NULL);
}

static ldm_status read_scalar(ldm_tensor *x, float *v) {
    *v = 0.0f;
    return x ? ldm_tensor_read(x, v) : LDM_OK;
}

static ldm_status read_losses(ldm_ae_trainer *t, int adversarial, ldm_ae_losses *l) {
    memset(l, 0, sizeof *l);
    l->step = t->step;
    l->adversarial = adversarial;
    LDM_TRY(read_scalar(t->recon, &l->recon));
    LDM_TRY(read_scalar(t->codebook, &l->codebook));
    LDM_TRY(read_scalar(t->commitment, &l->commitment));
    LDM_TRY(read_scalar(t->kl, &l->kl));
    LDM_TRY(read_scalar(t->perceptual, &l->perceptual));
    LDM_TRY(read_scalar(t->g_adv, &l->g_adv));
    LDM_TRY(read_scalar(t->g_total, &l->g_total));
    if (adversarial) {
        LDM_TRY(read_scalar(t->d_fake, &l->d_fake));
        LDM_TRY(read_scalar(t->d_real, &l->d_real));
        LDM_TRY(read_scalar(t->d_total, &l->d_total));
    }
    if (t->indices) {
        size_t n = ldm_tensor_numel(t->indices);
        LDM_TRY(ldm_tensor_read(t->indices, t->host_indices));
        memset(t->used, 0, (size_t)t->cfg.ae.codebook_size);
        for (size_t i = 0; i < n; i++) {
            int k = (int)t->host_indices[i];
            if (k >= 0 && k < t->cfg.ae.codebook_size && !t->used[k]) {
                t->used[k] = 1;
                l->codebook_used++;
            }
        }
    }
    return LDM_OK;
}

/* Data parallelism: the job's mean of the losses, and the codebook entries any rank used. */
static ldm_status job_losses(ldm_ae_trainer *t, ldm_ae_losses *l) {
    ldm_job *job = t->cfg.job;
    int ranks = ldm_job_size(job);
    if (ranks == 1) return LDM_OK;
    float v[10] = {l->recon, l->codebook, l->commitment, l->kl,     l->perceptual,
                   l->g_adv, l->g_total,  l->d_fake,     l->d_real, l->d_total};
    LDM_TRY(ldm_job_sum(job, v, 10, "the autoencoder's losses"));
    float *dst[10] = {&l->recon, &l->codebook, &l->commitment, &l->kl,     &l->perceptual,
                      &l->g_adv, &l->g_total,  &l->d_fake,     &l->d_real, &l->d_total};
    for (int i = 0; i < 10; i++)
        *dst[i] = v[i] / (float)ranks;
    if (!t->indices) return LDM_OK;
    LDM_TRY(ldm_job_max_u8(job, t->used, (size_t)t->cfg.ae.codebook_size, "the codebook usage"));
    l->codebook_used = 0;
    for (int k = 0; k < t->cfg.ae.codebook_size; k++)
        l->codebook_used += t->used[k] != 0;
    return LDM_OK;
}

/* Data parallelism: the BatchNorms' running statistics (the discriminator's entries, which both
 * graphs move) averaged over the job after an adversarial step. The running mean is then the one
 * the whole batch gives; the running variance the mean of the ranks' unbiased variances, which
 * leaves out the spread of the ranks' means (and the whole batch's unbiasing factor). */
static ldm_status job_running_stats(ldm_ae_trainer *t) {
    ldm_job *job = t->cfg.job;
    if (ldm_job_size(job) == 1 || !t->dg) return LDM_OK;
    for (size_t i = 0; i < ldm_graph_param_count(t->dg); i++) {
        ldm_tensor *p = ldm_graph_param_at(t->dg, i);
        if (!strstr(ldm_tensor_name(p), ".running_")) continue;
        size_t n = ldm_tensor_numel(p);
        float *v = malloc(n * sizeof *v);
        if (!v) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        ldm_status st = ldm_tensor_read(p, v);
        if (st == LDM_OK) st = ldm_job_sum(job, v, n, "the BatchNorms' running statistics");
        for (size_t k = 0; st == LDM_OK && k < n; k++)
            v[k] /= (float)ldm_job_size(job);
        if (st == LDM_OK) st = ldm_tensor_write(p, v);
        free(v);
        LDM_TRY(st);
    }
    return LDM_OK;
}

ldm_status ldm_ae_trainer_forward_backward(ldm_ae_trainer *t, const float *images,
                                           ldm_ae_losses *losses) {
    if (t->use_lpips && !t->lpips_loaded)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "perceptual_weight is %g but no LPIPS weights were loaded: convert them "
                        "with tools/convert_lpips.py (torchvision's VGG16 and the LPIPS v0.1 "
                        "linear layers) and name the file in the config, or set "
                        "perceptual_weight = 0",
                        (double)t->cfg.perceptual_weight);
    int adversarial = t->use_disc && t->step + 1 > t->cfg.disc_start;
    LDM_TRY(ldm_tensor_write(t->images, images));
    if (t->use_disc && t->adv_written != (float)adversarial) {
        float on = (float)adversarial;
        LDM_TRY(ldm_tensor_write(t->adv_on, &on));
        t->adv_written = on;
    }
    /* the last micro-batch before the optimizers step averages the gradients over the job */
    int last = (t->step + 1) % t->cfg.acc_steps == 0;
    LDM_TRY(last && t->g_sync ? ldm_grad_sync_run(t->g_sync) : ldm_graph_run(t->gg));
    if (adversarial) {
        LDM_TRY(copy_tensor(t->ctx, t->fake, t->out));
        LDM_TRY(copy_tensor(t->ctx, t->real, t->images));
        LDM_TRY(last && t->d_sync ? ldm_grad_sync_run(t->d_sync) : ldm_graph_run(t->dg));
        t->d_pending = 1;
        LDM_TRY(job_running_stats(t));
    }
    t->step++;
    if (!losses) return LDM_OK;
    LDM_TRY(read_losses(t, adversarial, losses));
    return job_losses(t, losses);
}

ldm_status ldm_ae_trainer_apply(ldm_ae_trainer *t) {
    LDM_TRY(ldm_optimizer_step(t->opt_g));
    LDM_TRY(ldm_graph_zero_grads(t->gg));
    if (t->d_pending) {
        LDM_TRY(ldm_optimizer_step(t->opt_d));
        LDM_TRY(ldm_graph_zero_grads(t->dg));
        t->d_pending = 0;
    }
    return LDM_OK;
}

ldm_status ldm_ae_trainer_step(ldm_ae_trainer *t, const float *images, ldm_ae_losses *losses) {
    LDM_TRY(ldm_ae_trainer_forward_backward(t, images, losses));
    return t->step % t->cfg.acc_steps == 0 ? ldm_ae_trainer_apply(t) : LDM_OK;
}

ldm_status ldm_ae_trainer_save(ldm_ae_trainer *t, const char *ae_path, const char *disc_path,
                               const char *const *metadata_pairs) {
    if (ae_path) LDM_TRY(ldm_graph_save_subset(t->gg, ae_path, metadata_pairs, NULL, 1));
    if (disc_path && t->dg) LDM_TRY(ldm_graph_save(t->dg, disc_path, metadata_pairs));
    return LDM_OK;
}

ldm_status ldm_ae_trainer_load(ldm_ae_trainer *t, const char *ae_path, const char *disc_path) {
    if (ae_path) {
        ldm_load_options o = {.trainable_only = 1};
        LDM_TRY(ldm_graph_load(t->gg, ae_path, &o));
    }
    if (disc_path) {
        if (!t->dg)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "discriminator checkpoint '%s' given, but disc_weight is 0", disc_path);
        LDM_TRY(ldm_graph_load(t->dg, disc_path, NULL));
    }
    return LDM_OK;
}

#define STEP_KEY "ldmcl.ae_trainer_step"
/* the discriminator's part of a state file */
#define DISC_STATE_PREFIX "discriminator_state."

/* The parts of a state: the generator graph, then the discriminator's when there is one. */
static int state_parts(ldm_ae_trainer *t, ldm_train_state_part parts[2]) {
    parts[0] = (ldm_train_state_part){NULL, t->gg, t->opt_g, NULL};
    parts[1] = (ldm_train_state_part){DISC_STATE_PREFIX, t->dg, t->opt_d, NULL};
    return t->dg ? 2 : 1;
}

static ldm_status read_step(const char *path, int *step) {
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    uint64_t n = 0;
    ldm_status s = ldm_safetensors_metadata_u64(st, STEP_KEY, &n);
    ldm_safetensors_close(st);
    if (s == LDM_OK && n > (uint64_t)1 << 30)
        s = LDM_FAIL(LDM_ERR_FORMAT, "'%s': %s = %llu is not a step count", path, STEP_KEY,
                     (unsigned long long)n);
    if (s != LDM_OK) ldm_error_prefix("'%s' is not an autoencoder training state", path);
    if (s == LDM_OK) *step = (int)n;
    return s;
}

ldm_status ldm_ae_trainer_save_state(ldm_ae_trainer *t, const char *path,
                                     const char *const *metadata_pairs) {
    if (t->step % t->cfg.acc_steps != 0 || t->d_pending)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "autoencoder state at step %d: gradients are still being accumulated",
                        t->step);
    enum { max_pairs = 32 };
    const char *pairs[2 * max_pairs + 3];
    char steps[24];
    snprintf(steps, sizeof steps, "%d", t->step);
    int n = 0;
    for (; metadata_pairs && metadata_pairs[n] && n < 2 * max_pairs; n += 2) {
        pairs[n] = metadata_pairs[n];
        pairs[n + 1] = metadata_pairs[n + 1];
    }
    pairs[n++] = STEP_KEY;
    pairs[n++] = steps;
    pairs[n] = NULL;
    ldm_train_state_part parts[2];
    return ldm_train_state_save_parts(path, parts, state_parts(t, parts), pairs);
}

ldm_status ldm_ae_trainer_load_state(ldm_ae_trainer *t, const char *path) {
    int step = 0;
    LDM_TRY(read_step(path, &step));
    ldm_train_state_part parts[2];
    ldm_status s = ldm_train_state_load_parts(path, parts, state_parts(t, parts));
    if (s != LDM_OK) {
        ldm_error_prefix("autoencoder training state '%s'", path);
        return s;
    }
    t->step = step;
    t->d_pending = 0;
    t->adv_written = -1.0f;
    return LDM_OK;
}

ldm_status ldm_ae_trainer_check_same(ldm_ae_trainer *t) {
    ldm_train_state_part parts[2];
    return ldm_train_state_check_same(t->cfg.job, parts, state_parts(t, parts));
}

ldm_graph *ldm_ae_trainer_generator(ldm_ae_trainer *t) {
    return t->gg;
}

ldm_graph *ldm_ae_trainer_discriminator(ldm_ae_trainer *t) {
    return t->dg;
}

ldm_tensor *ldm_ae_trainer_output(ldm_ae_trainer *t) {
    return t->out;
}

ldm_tensor *ldm_ae_trainer_noise(ldm_ae_trainer *t) {
    return t->noise;
}

int ldm_ae_trainer_steps(const ldm_ae_trainer *t) {
    return t->step;
}
