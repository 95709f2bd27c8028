/* src/train/run_config.c: the INI configuration of a training run (see ldmcl/run_config.h): the
 * model's sections through ldmcl/model.h, the training sections here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fail.h"
#include "ini_keys.h"
#include "ldmcl/ini.h"
#include "ldmcl/lora_adapter.h"
#include "ldmcl/run_config.h"

void ldm_run_config_init(ldm_run_config *c) {
    memset(c, 0, sizeof *c);
    ldm_model_config_init(&c->model);
    snprintf(c->caption_extension, sizeof c->caption_extension, ".txt");
    snprintf(c->output_dir, sizeof c->output_dir, "output");
    c->seed = 1111;
    ldm_run_autoencoder *a = &c->ae_train;
    ldm_ae_train_config_init(&a->step, &c->model.ae);
    a->step.batch = 64;
    a->steps = 1000;
    ldm_run_diffusion *d = &c->ldm_train;
    d->cond_drop_prob = 0.1f;
    d->batch = 64;
    d->max_steps = 1000;
    d->acc_steps = 1;
    d->checkpointing_steps = 500;
    d->checkpoints_limit = 3;
    d->lr = 1e-5f;
    d->ema_decay = 0.9999f;
    d->validation_guidance_scale = 1.0f;
    d->validation_sampling_steps = 50;
}

/* max_train_steps, or num_train_epochs when max_train_steps is absent. */
static ldm_status steps_or_epochs(ldm_ini *ini, const char *s, int *steps, int *epochs) {
    const char *given = NULL;
    LDM_TRY(ldm_ini_string(ini, s, "max_train_steps", &given));
    LDM_TRY(ldm_ini_int_key(ini, s, "max_train_steps", 0, 1L << 30, steps));
    *epochs = 0;
    LDM_TRY(ldm_ini_int_key(ini, s, "num_train_epochs", 0, 1 << 20, epochs));
    if (given) *epochs = 0;
    return LDM_OK;
}

static ldm_status read_autoencoder_training(ldm_ini *ini, const char *p, ldm_run_autoencoder *a) {
    const char *s = "autoencoder_train";
    ldm_ae_train_config *t = &a->step;
    LDM_TRY(ldm_ini_int_key(ini, s, "train_batch_size", 1, 1 << 16, &t->batch));
    LDM_TRY(ldm_ini_float_key(ini, s, "learning_rate", 1e-12, 10.0, &t->lr));
    LDM_TRY(steps_or_epochs(ini, s, &a->steps, &a->epochs));
    LDM_TRY(ldm_ini_int_key(ini, s, "gradient_accumulation_steps", 1, 1 << 16, &t->acc_steps));
    LDM_TRY(ldm_ini_int_key(ini, s, "disc_start", 0, 1L << 30, &t->disc_start));
    LDM_TRY(ldm_ini_float_key(ini, s, "disc_weight", 0.0, 1e6, &t->disc_weight));
    LDM_TRY(ldm_ini_float_key(ini, s, "codebook_weight", 0.0, 1e6, &t->codebook_weight));
    LDM_TRY(ldm_ini_float_key(ini, s, "commitment_beta", 0.0, 1e6, &t->commitment_beta));
    LDM_TRY(ldm_ini_float_key(ini, s, "kl_weight", 0.0, 1e6, &t->kl_weight));
    LDM_TRY(ldm_ini_float_key(ini, s, "perceptual_weight", 0.0, 1e6, &t->perceptual_weight));
    return ldm_ini_path_key(ini, p, s, "lpips_path", a->lpips_path, sizeof a->lpips_path);
}

static ldm_status read_prompts(ldm_ini *ini, const char *p, ldm_run_diffusion *d) {
    const char *prompts = NULL;
    LDM_TRY(ldm_ini_string(ini, "train", "validation_prompts", &prompts));
    for (const char *q = prompts; q && *q;) {
        const char *bar = strstr(q, " | ");
        size_t n = bar ? (size_t)(bar - q) : strlen(q);
        if (d->n_validation_prompts == LDM_RUN_MAX_PROMPTS || n >= 256)
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "%s: [train] validation_prompts: at most %d prompts of 255 bytes", p,
                            LDM_RUN_MAX_PROMPTS);
        snprintf(d->validation_prompts[d->n_validation_prompts++], 256, "%.*s", (int)n, q);
        q = bar ? bar + 3 : q + n;
    }
    return LDM_OK;
}

static ldm_status read_diffusion_training(ldm_ini *ini, const char *p, ldm_run_diffusion *d) {
    const char *s = "train";
    LDM_TRY(ldm_ini_float_key(ini, "text", "cond_drop_prob", 0.0, 1.0, &d->cond_drop_prob));
    LDM_TRY(ldm_ini_int_key(ini, s, "train_batch_size", 1, 1 << 16, &d->batch));
    LDM_TRY(ldm_ini_float_key(ini, s, "learning_rate", 1e-12, 10.0, &d->lr));
    int sched = (int)d->lr_schedule;
    static const char *const scheds[] = {"constant", "constant_with_warmup", "linear", "cosine"};
    LDM_TRY(ldm_ini_enum_key(ini, p, s, "lr_scheduler", scheds, 4, &sched));
    d->lr_schedule = (ldm_lr_schedule)sched;
    LDM_TRY(ldm_ini_int_key(ini, s, "lr_warmup_steps", 0, 1L << 30, &d->lr_warmup_steps));
    LDM_TRY(steps_or_epochs(ini, s, &d->max_steps, &d->epochs));
    LDM_TRY(ldm_ini_int_key(ini, s, "gradient_accumulation_steps", 1, 1 << 16, &d->acc_steps));
    LDM_TRY(ldm_ini_int_key(ini, s, "checkpointing_steps", 1, 1L << 30, &d->checkpointing_steps));
    LDM_TRY(ldm_ini_int_key(ini, s, "checkpoints_total_limit", 1, 1 << 16, &d->checkpoints_limit));
    const char *resume = NULL;
    LDM_TRY(ldm_ini_string(ini, s, "resume_from_checkpoint", &resume));
    if (resume && strcmp(resume, "none") && strcmp(resume, "latest"))
        LDM_TRY(ldm_ini_path_key(ini, p, s, "resume_from_checkpoint", d->resume, sizeof d->resume));
    else if (resume && !strcmp(resume, "latest"))
        snprintf(d->resume, sizeof d->resume, "latest");
    LDM_TRY(ldm_ini_bool(ini, s, "use_ema", &d->use_ema));
    LDM_TRY(ldm_ini_float_key(ini, s, "ema_decay", 0.0, 1.0, &d->ema_decay));
    LDM_TRY(ldm_ini_float_key(ini, s, "max_grad_norm", 0.0, 1e9, &d->max_grad_norm));
    LDM_TRY(ldm_ini_float_key(ini, s, "snr_gamma", 0.0, 1e6, &d->snr_gamma));
    LDM_TRY(ldm_ini_float_key(ini, s, "noise_offset", 0.0, 10.0, &d->noise_offset));
    LDM_TRY(ldm_ini_int_key(ini, s, "validation_steps", 0, 1L << 30, &d->validation_steps));
    LDM_TRY(ldm_ini_float_key(ini, s, "validation_guidance_scale", 0.0, 100.0,
                              &d->validation_guidance_scale));
    LDM_TRY(ldm_ini_int_key(ini, s, "validation_sampling_steps", 1, 100000,
                            &d->validation_sampling_steps));
    LDM_TRY(ldm_ini_bool(ini, s, "gradient_checkpointing", &d->gradient_checkpointing));
    return read_prompts(ini, p, d);
}

/* [lora] rank, alpha, targets, dropout. */
static ldm_status read_lora(ldm_ini *ini, const char *p, ldm_run_diffusion *d) {
    const char *s = "lora";
    ldm_lora_config *l = &d->lora;
    LDM_TRY(ldm_ini_int_key(ini, s, "rank", 0, 4096, &l->rank));
    LDM_TRY(ldm_ini_float_key(ini, s, "alpha", 0.0, 1e6, &l->alpha));
    if (l->alpha == 0) l->alpha = (float)l->rank; /* 0: the rank (scale 1), as diffusers' */
    const char *targets = NULL;
    LDM_TRY(ldm_ini_string(ini, s, "targets", &targets));
    ldm_status st = ldm_lora_targets_parse(targets ? targets : "attn", &l->targets);
    if (st != LDM_OK) {
        ldm_error_prefix("%s:%d: [lora] targets", p, ldm_ini_line(ini, s, "targets"));
        return st;
    }
    ldm_ini_note(ini, s, "targets", targets ? targets : "attn");
    float dropout = 0;
    LDM_TRY(ldm_ini_float_key(ini, s, "dropout", 0.0, 1.0, &dropout));
    if (dropout > 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "%s:%d: [lora] dropout = %g: not built yet (the adapters are folded into "
                        "each weight in the step, W + alpha/rank up.down, which leaves no branch "
                        "to drop out); use 0",
                        p, ldm_ini_line(ini, s, "dropout"), (double)dropout);
    LDM_TRY(ldm_ini_bool(ini, s, "text_encoder", &d->lora_text_encoder));
    if (l->rank && !d->pretrained[0])
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "%s:%d: [lora] rank = %d needs [model] pretrained (adapters on a model "
                        "trained from scratch learn nothing the model could not)",
                        p, ldm_ini_line(ini, s, "rank"), l->rank);
    return LDM_OK;
}

static ldm_status read_run(ldm_ini *ini, const char *p, ldm_run_config *c) {
    const char *s = "train";
    LDM_TRY(ldm_ini_path_key(ini, p, s, "output_dir", c->output_dir, sizeof c->output_dir));
    long seed = (long)c->seed;
    LDM_TRY(ldm_ini_int(ini, s, "seed", 0, 0x7fffffffffffffffL, &seed));
    c->seed = (uint64_t)seed;
    LDM_TRY(read_autoencoder_training(ini, p, &c->ae_train));
    LDM_TRY(read_diffusion_training(ini, p, &c->ldm_train));
    LDM_TRY(read_lora(ini, p, &c->ldm_train));
    int in_step = c->model.text == LDM_TEXT_CLIP_SCRATCH || c->model.text == LDM_TEXT_CLIP_FINETUNE;
    if (c->ldm_train.lora.rank && c->ldm_train.lora_text_encoder && !in_step)
        return LDM_FAIL(
            LDM_ERR_INVALID_ARGUMENT,
            "%s:%d: [lora] text_encoder = true: the model's text encoder is not trained "
            "in the step (it has none, or it is clip_frozen); adapters go on an "
            "encoder that is (clip_scratch, clip_finetune)",
            p, ldm_ini_line(ini, "lora", "text_encoder"));
    return LDM_OK;
}

/* [model] pretrained: its model.ini is the model the config's model keys are read over, and its
 * autoencoder the run's (unless [autoencoder] checkpoint names another). */
static ldm_status read_pretrained(ldm_ini *ini, const char *p, ldm_run_config *c) {
    char *dir = c->ldm_train.pretrained;
    LDM_TRY(ldm_ini_path_key(ini, p, "model", "pretrained", dir, LDM_RUN_PATH));
    if (!dir[0]) return LDM_OK;
    int line = ldm_ini_line(ini, "model", "pretrained");
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return LDM_FAIL(LDM_ERR_NOT_FOUND, "%s:%d: [model] pretrained = '%s' does not exist", p,
                        line, dir);
    if (!S_ISDIR(sb.st_mode))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "%s:%d: [model] pretrained = '%s' is a file: ldmcl-train starts from an "
                        "ldmcl model folder (model.ini, unet.safetensors, autoencoder.safetensors, "
                        "as ldmcl-train writes one); Stable Diffusion checkpoints are not trained "
                        "by ldmcl-train yet (ldmcl-sample samples them)",
                        p, line, dir);
    char path[LDM_RUN_PATH + 32];
    snprintf(path, sizeof path, "%s/model.ini", dir);
    if (stat(path, &sb) != 0)
        return LDM_FAIL(LDM_ERR_NOT_FOUND,
                        "%s:%d: [model] pretrained = '%s' holds no model.ini: not an ldmcl model "
                        "folder (Stable Diffusion folders are not trained by ldmcl-train yet)",
                        p, line, dir);
    ldm_status st = ldm_model_config_read(path, &c->model);
    if (st != LDM_OK) {
        ldm_error_prefix("%s:%d: [model] pretrained", p, line);
        return st;
    }
    return LDM_OK;
}

static ldm_status check_path_length(const char *path, const ldm_run_config *c) {
    if (strlen(path) < sizeof c->path) return LDM_OK;
    return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                    "the config path '%.60s...' is %zu bytes, more than the %zu a path may have",
                    path, strlen(path), sizeof c->path - 1);
}

ldm_status ldm_run_config_read(const char *path, ldm_run_config *c) {
    ldm_run_config_init(c);
    LDM_TRY(check_path_length(path, c));
    ldm_ini *ini;
    LDM_TRY(ldm_ini_read(path, &ini));
    ldm_status st = ldm_run_config_read_ini(ini, path, c);
    ldm_ini_free(ini);
    return st;
}

ldm_status ldm_run_config_print(const char *path, FILE *f) {
    ldm_run_config *c = malloc(sizeof *c);
    if (!c) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_ini *ini = NULL;
    ldm_status st = ldm_ini_read(path, &ini);
    if (st == LDM_OK) st = ldm_run_config_read_ini(ini, path, c);
    size_t n = st == LDM_OK ? ldm_ini_lookup_count(ini) : 0;
    for (size_t i = 0; i < n; i++) { /* each section once, its keys in the order read */
        const char *sec, *key, *value, *s2, *k2, *v2;
        ldm_ini_lookup_at(ini, i, &sec, &key, &value);
        size_t j = 0;
        for (; j < i; j++) {
            ldm_ini_lookup_at(ini, j, &s2, &k2, &v2);
            if (!strcmp(s2, sec)) break;
        }
        if (j < i) continue; /* printed with the section's first key */
        if (!i)
            fprintf(f,
                    "; %s as ldmcl reads it, defaults included; relative paths are the current "
                    "directory's\n\n",
                    path);
        fprintf(f, "%s[%s]\n", i ? "\n" : "", sec);
        for (j = i; j < n; j++) {
            ldm_ini_lookup_at(ini, j, &s2, &k2, &v2);
            if (strcmp(s2, sec)) continue;
            if (*v2)
                fprintf(f, "%s = %s\n", k2, v2);
            else /* unset, and no default: a comment, so that the text reads back the same */
                fprintf(f, "; %s =\n", k2);
        }
    }
    if (st == LDM_OK && ferror(f)) st = LDM_FAIL(LDM_ERR_IO, "writing the config failed");
    if (ini) ldm_ini_free(ini);
    free(c);
    return st;
}

ldm_status ldm_run_config_read_ini(ldm_ini *ini, const char *path, ldm_run_config *c) {
    ldm_run_config_init(c);
    LDM_TRY(check_path_length(path, c));
    snprintf(c->path, sizeof c->path, "%s", path);
    ldm_status st =
        ldm_ini_path_key(ini, path, "dataset", "path", c->dataset_path, sizeof c->dataset_path);
    if (st == LDM_OK) st = ldm_ini_bool(ini, "dataset", "random_flip", &c->random_flip);
    const char *ext = NULL;
    if (st == LDM_OK) st = ldm_ini_string(ini, "dataset", "caption_extension", &ext);
    if (ext && strlen(ext) >= sizeof c->caption_extension)
        st = LDM_FAIL(LDM_ERR_FORMAT,
                      "%s:%d: [dataset] caption_extension = %.40s...: %zu bytes, more than the %zu "
                      "allowed",
                      path, ldm_ini_line(ini, "dataset", "caption_extension"), ext, strlen(ext),
                      sizeof c->caption_extension - 1);
    else if (ext)
        snprintf(c->caption_extension, sizeof c->caption_extension, "%s", ext);
    ldm_ini_note(ini, "dataset", "caption_extension", c->caption_extension);
    ldm_caption_tags *tags = &c->caption_tags;
    if (st == LDM_OK) st = ldm_ini_bool(ini, "dataset", "shuffle_caption", &tags->shuffle);
    if (st == LDM_OK)
        st = ldm_ini_int_key(ini, "dataset", "keep_tokens", 0, 1000, &tags->keep_tokens);
    if (st == LDM_OK)
        st = ldm_ini_float_key(ini, "dataset", "caption_tag_dropout_rate", 0.0, 1.0,
                               &tags->tag_dropout);
    if (st == LDM_OK) st = read_pretrained(ini, path, c);
    if (st == LDM_OK) st = ldm_model_config_read_ini(ini, path, &c->model);
    if (st == LDM_OK)
        st = ldm_ini_path_key(ini, path, "autoencoder", "checkpoint", c->ae_checkpoint,
                              sizeof c->ae_checkpoint);
    if (st == LDM_OK && c->ldm_train.pretrained[0] && !c->ae_checkpoint[0] &&
        snprintf(c->ae_checkpoint, sizeof c->ae_checkpoint, "%s/autoencoder.safetensors",
                 c->ldm_train.pretrained) >= (int)sizeof c->ae_checkpoint)
        st = LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s: [model] pretrained: the path is too long",
                      path);
    if (st == LDM_OK) st = read_run(ini, path, c);
    if (st == LDM_OK) st = ldm_ini_check_unused(ini);
    if (st == LDM_OK) st = ldm_model_config_check(&c->model, path);
    if (st == LDM_OK && c->model.unet.image_cond_input_channels)
        st = LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                      "%s: [ldm] image_condition_input_channels: ldmcl-train cannot train a "
                      "mask-conditioned UNet yet (it reads no masks from datasets); "
                      "ldmcl-sample samples one converted from the reference",
                      path);
    return st;
}

static int epoch_steps(int epochs, size_t images, int batch, int acc) {
    uint64_t per = (uint64_t)batch * (uint64_t)acc;
    uint64_t steps = ((uint64_t)epochs * images + per - 1) / per;
    return steps > (1u << 30) ? 1 << 30 : (int)steps;
}

void ldm_run_config_resolve_epochs(ldm_run_config *c, size_t images, size_t ldm_images) {
    ldm_run_autoencoder *a = &c->ae_train;
    ldm_run_diffusion *d = &c->ldm_train;
    if (a->epochs > 0) a->steps = epoch_steps(a->epochs, images, a->step.batch, a->step.acc_steps);
    if (d->epochs > 0) d->max_steps = epoch_steps(d->epochs, ldm_images, d->batch, d->acc_steps);
    a->epochs = d->epochs = 0;
}

void ldm_run_autoencoder_step(const ldm_run_config *c, ldm_ae_train_config *out) {
    *out = c->ae_train.step;
    out->ae = c->model.ae;
    ldm_discriminator_config_default(&out->disc, c->model.ae.im_channels);
    out->height = out->width = c->model.resolution;
    out->seed = c->seed;
}

float ldm_run_lr_at(const ldm_run_config *c, int step) {
    const ldm_run_diffusion *d = &c->ldm_train;
    float lr = d->lr;
    int warm = d->lr_schedule == LDM_LR_CONSTANT ? 0 : d->lr_warmup_steps;
    if (step < warm) return lr * (float)step / (float)warm; /* diffusers: 0 at step 0 */
    int total = d->max_steps > warm ? d->max_steps - warm : 1;
    double progress = (double)(step - warm) / (double)total;
    if (progress > 1) progress = 1;
    if (d->lr_schedule == LDM_LR_LINEAR) return lr * (float)(1.0 - progress);
    if (d->lr_schedule == LDM_LR_COSINE)
        return lr * (float)(0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
    return lr;
}
