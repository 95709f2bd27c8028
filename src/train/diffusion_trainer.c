/* src/train/diffusion_trainer.c: the LDM's trainer (see ldmcl/diffusion_trainer.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/diffusion_trainer.h"
#include "ldmcl/grad_sync.h"
#include "ldmcl/lora.h"
#include "ldmcl/lora_adapter.h"
#include "ldmcl/optim.h"
#include "ldmcl/train.h"
#include "ldmcl/train_state.h"

struct ldm_diffusion_trainer {
    ldm_ctx *ctx;
    ldm_model_config model;
    ldm_run_diffusion train;
    int lat_hw;
    uint64_t seed;
    ldm_schedule *sched;
    ldm_graph *g;
    ldm_diffusion_train_graph tg;
    ldm_optimizer *opt;
    ldm_ema *ema;
    ldm_clip_tokenizer *tok;
    ldm_clip_encoder *frozen; /* clip_frozen: the context of a batch */
    int trained_text;         /* the encoder is in the step */
    ldm_job *job;             /* data parallelism: this rank's part of each batch (NULL: alone) */
    ldm_grad_sync *sync;      /* gradients averaged over the job (a job of more than one) */
    int micro;                /* micro-batches since the last optimizer step */
    float *context, *empty_ctx, *ids_f, *mask_f;
    int32_t *ids, *mask;
};

/* Tokenizes prompts[0..count) into the trainer's ids and mask (ints and floats). */
static ldm_status tokenize(ldm_diffusion_trainer *t, const char *const *prompts, int count) {
    int len = t->model.context_length;
    for (int b = 0; b < count; b++) {
        int got;
        ldm_status st =
            ldm_clip_tokenize(t->tok, prompts[b], strlen(prompts[b]), len, 1,
                              t->ids + (size_t)b * len, t->mask + (size_t)b * len, &got);
        if (st != LDM_OK) {
            ldm_error_prefix("caption \"%.60s\"", prompts[b]);
            return st;
        }
    }
    for (size_t k = 0; k < (size_t)count * len; k++) {
        t->ids_f[k] = (float)t->ids[k];
        t->mask_f[k] = (float)t->mask[k];
    }
    return LDM_OK;
}

static ldm_status setup_text(ldm_diffusion_trainer *t) {
    const ldm_model_config *m = &t->model;
    if (m->text == LDM_TEXT_NONE) return LDM_OK;
    if (m->text == LDM_TEXT_CLIP_SCRATCH)
        LDM_TRY(ldm_clip_tokenizer_load_bpe(m->vocab, &t->tok));
    else
        LDM_TRY(ldm_clip_tokenizer_load_dir(m->clip_path, &t->tok));
    /* (its size against the encoder's is checked before a run begins: run_inputs.c) */
    size_t n = (size_t)t->train.batch * m->context_length;
    t->ids = malloc(n * sizeof *t->ids);
    t->mask = malloc(n * sizeof *t->mask);
    t->ids_f = malloc(n * sizeof *t->ids_f);
    t->mask_f = malloc(n * sizeof *t->mask_f);
    if (!t->ids || !t->mask || !t->ids_f || !t->mask_f)
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (m->text != LDM_TEXT_CLIP_FROZEN) return LDM_OK;
    char path[LDM_MODEL_PATH + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", m->clip_path);
    LDM_TRY(ldm_clip_encoder_create(t->ctx, &m->clip, t->train.batch, m->context_length,
                                    m->clip_skip, &t->frozen));
    LDM_TRY(ldm_clip_encoder_load(t->frozen, path));
    size_t row = (size_t)m->context_length * m->clip.hidden_size;
    t->context = malloc((size_t)t->train.batch * row * sizeof *t->context);
    t->empty_ctx = malloc((size_t)t->train.batch * row * sizeof *t->empty_ctx);
    if (!t->context || !t->empty_ctx) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    const char *empty[1] = {""}; /* computed once, for the whole run */
    return ldm_clip_encode_prompts(t->frozen, t->tok, empty, 1, t->empty_ctx);
}

/* clip_finetune: the pretrained encoder, checked strictly by a frozen encoder first, then loaded
 * by name into the step. */
static ldm_status load_pretrained_text(ldm_diffusion_trainer *t) {
    const ldm_model_config *m = &t->model;
    char path[LDM_MODEL_PATH + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", m->clip_path);
    ldm_clip_encoder *check;
    LDM_TRY(ldm_clip_encoder_create(t->ctx, &m->clip, 1, m->context_length, 0, &check));
    ldm_status st = ldm_clip_encoder_load(check, path);
    ldm_clip_encoder_destroy(check);
    LDM_TRY(st);
    static const char *const ignore[] = {"text_model.embeddings.position_ids", NULL};
    ldm_load_options o = {.only_prefix = "text_model.", .allow_missing = 1, .ignore = ignore};
    return ldm_graph_load(t->g, path, &o);
}

/* Adapters and the text encoder's weights take no part in loading the UNet's file. */
static int not_unet(const char *name, void *user) {
    (void)user;
    return ldm_lora_is_adapter(name) || !strncmp(name, "text_model.", 11);
}

static int not_text(const char *name, void *user) {
    (void)user;
    return ldm_lora_is_adapter(name) || strncmp(name, "text_model.", 11) != 0;
}

/* [model] pretrained: the folder's UNet and, when the step trains a text encoder, the folder's
 * text encoder (where the folder has none, a fine-tuned CLIP starts from its own file). */
static ldm_status load_pretrained_model(ldm_diffusion_trainer *t) {
    const char *dir = t->train.pretrained;
    char path[LDM_RUN_PATH + 32];
    snprintf(path, sizeof path, "%s/unet.safetensors", dir);
    ldm_load_options o = {.skip = not_unet};
    LDM_TRY(ldm_graph_load(t->g, path, &o));
    if (!t->trained_text) return LDM_OK;
    snprintf(path, sizeof path, "%s/text_encoder.safetensors", dir);
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    if (!f && t->model.text == LDM_TEXT_CLIP_FINETUNE) return LDM_OK;
    if (!f)
        return LDM_FAIL(LDM_ERR_NOT_FOUND,
                        "'%s' does not exist: the pretrained model's text encoder (its model.ini "
                        "says the text encoder is trained with the UNet)",
                        path);
    ldm_load_options text = {.skip = not_text};
    return ldm_graph_load(t->g, path, &text);
}

/* LoRA: adapters on the UNet's weights (and, with [lora] text_encoder, a text encoder recorded
 * in the step), the only trainable entries (adapters_only). */
static void set_lora(ldm_diffusion_trainer *t) {
    ldm_lora_config lc = t->train.lora;
    lc.skip_prefix = t->train.lora_text_encoder ? NULL : "text_model.";
    ldm_graph_set_lora(t->g, &lc);
}

static ldm_status setup_graph(ldm_diffusion_trainer *t) {
    const ldm_model_config *m = &t->model;
    t->trained_text = m->text == LDM_TEXT_CLIP_SCRATCH || m->text == LDM_TEXT_CLIP_FINETUNE;
    ldm_diffusion_train_config tc = {.unet = &m->unet,
                                     .schedule = t->sched,
                                     .batch = t->train.batch,
                                     .height = t->lat_hw,
                                     .width = t->lat_hw,
                                     .context_len = m->context_length,
                                     .cond_drop_prob =
                                         m->text == LDM_TEXT_NONE ? 0 : t->train.cond_drop_prob,
                                     .prediction = m->prediction_type,
                                     .snr_gamma = t->train.snr_gamma,
                                     .noise_offset = t->train.noise_offset,
                                     .seed = t->seed,
                                     .text_encoder = t->trained_text ? &m->clip : NULL,
                                     .text_skip = m->clip_skip,
                                     .adapters_only = t->train.lora.rank > 0};
    LDM_TRY(ldm_graph_create(t->ctx, &t->g));
    LDM_TRY(ldm_graph_set_batch_part(t->g, ldm_job_rank(t->job), ldm_job_size(t->job)));
    if (t->train.lora.rank) set_lora(t);
    ldm_graph_set_checkpointing(t->g, t->train.gradient_checkpointing);
    LDM_TRY(ldm_diffusion_train_record(t->g, &tc, &t->tg));
    LDM_TRY(ldm_graph_compile(t->g));
    if (ldm_job_size(t->job) > 1) LDM_TRY(ldm_grad_sync_create(t->g, t->job, 0, &t->sync));
    /* a pretrained model's UNet is loaded whole below (every weight its file must hold), so its
     * weights need no rule (with LoRA, a layer's rule went to W + up.down, not to W) */
    LDM_TRY(ldm_graph_init_params(t->g, t->seed, t->train.pretrained[0] != 0));
    if (m->text == LDM_TEXT_CLIP_FINETUNE) LDM_TRY(load_pretrained_text(t));
    if (t->train.pretrained[0]) LDM_TRY(load_pretrained_model(t));
    if (t->trained_text) {
        const char *empty[1] = {""};
        LDM_TRY(tokenize(t, empty, 1));
        LDM_TRY(ldm_tensor_write(t->tg.empty_ids, t->ids_f));
        LDM_TRY(ldm_tensor_write(t->tg.empty_mask, t->mask_f));
    } else if (t->tg.empty_context) {
        LDM_TRY(ldm_tensor_write(t->tg.empty_context, t->empty_ctx));
    }
    ldm_adam_config a;
    ldm_adam_config_init(&a);
    a.lr = t->train.lr;
    a.max_grad_norm = t->train.max_grad_norm;
    LDM_TRY(ldm_adam_create(t->g, &a, &t->opt));
    if (t->train.use_ema) LDM_TRY(ldm_ema_create(t->g, t->train.ema_decay, 1, &t->ema));
    return LDM_OK;
}

ldm_status ldm_diffusion_trainer_create(ldm_ctx *ctx, const ldm_model_config *model,
                                        const ldm_run_diffusion *train, int latent_size,
                                        uint64_t seed, ldm_diffusion_trainer **out) {
    return ldm_diffusion_trainer_create_in_job(ctx, model, train, latent_size, seed, NULL, out);
}

ldm_status ldm_diffusion_trainer_create_in_job(ldm_ctx *ctx, const ldm_model_config *model,
                                               const ldm_run_diffusion *train, int latent_size,
                                               uint64_t seed, ldm_job *job,
                                               ldm_diffusion_trainer **out) {
    *out = NULL;
    ldm_diffusion_trainer *t = calloc(1, sizeof *t);
    if (!t) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    t->ctx = ctx;
    t->job = job;
    t->model = *model;
    t->train = *train;
    t->lat_hw = latent_size;
    t->seed = seed;
    ldm_status st = ldm_schedule_create(model->beta_schedule, model->num_timesteps,
                                        model->beta_start, model->beta_end, &t->sched);
    if (st == LDM_OK) st = setup_text(t);
    if (st == LDM_OK) st = setup_graph(t);
    if (st != LDM_OK) {
        ldm_diffusion_trainer_destroy(t);
        return st;
    }
    *out = t;
    return LDM_OK;
}

void ldm_diffusion_trainer_destroy(ldm_diffusion_trainer *t) {
    if (!t) return;
    ldm_ema_destroy(t->ema);
    ldm_optimizer_destroy(t->opt);
    ldm_grad_sync_destroy(t->sync);
    ldm_graph_destroy(t->g);
    ldm_clip_encoder_destroy(t->frozen);
    ldm_clip_tokenizer_destroy(t->tok);
    ldm_schedule_destroy(t->sched);
    free(t->context);
    free(t->empty_ctx);
    free(t->ids);
    free(t->mask);
    free(t->ids_f);
    free(t->mask_f);
    free(t);
}

ldm_status ldm_diffusion_trainer_forward_backward(ldm_diffusion_trainer *t, const float *latents,
                                                  const char *const *captions, float *loss) {
    LDM_TRY(ldm_tensor_write(t->tg.latents, latents));
    if (t->model.text != LDM_TEXT_NONE) {
        LDM_TRY(tokenize(t, captions, t->train.batch));
        if (t->trained_text) {
            LDM_TRY(ldm_tensor_write(t->tg.ids, t->ids_f));
            LDM_TRY(ldm_tensor_write(t->tg.ids_mask, t->mask_f));
        } else {
            LDM_TRY(ldm_clip_encoder_run(t->frozen, t->ids, t->mask, t->context));
            LDM_TRY(ldm_tensor_write(t->tg.context, t->context));
        }
    }
    /* the step's last micro-batch: its run averages the accumulated gradients over the job */
    int last = ++t->micro >= t->train.acc_steps;
    LDM_TRY(last && t->sync ? ldm_grad_sync_run(t->sync) : ldm_graph_run(t->g));
    return ldm_tensor_read(t->tg.loss, loss);
}

ldm_status ldm_diffusion_trainer_set_lr(ldm_diffusion_trainer *t, float lr) {
    return ldm_optimizer_set_lr(t->opt, lr);
}

ldm_status ldm_diffusion_trainer_apply(ldm_diffusion_trainer *t) {
    if (t->sync && t->micro < t->train.acc_steps)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "a data-parallel optimizer step after %d of %d micro-batches: every rank "
                        "applies after acc_steps micro-batches",
                        t->micro, t->train.acc_steps);
    t->micro = 0;
    LDM_TRY(ldm_optimizer_step(t->opt));
    if (t->ema) LDM_TRY(ldm_ema_update(t->ema));
    return ldm_graph_zero_grads(t->g);
}

ldm_status ldm_diffusion_trainer_save_state(ldm_diffusion_trainer *t, const char *path,
                                            const char *const *metadata_pairs) {
    return ldm_train_state_save(path, t->g, t->opt, t->ema, metadata_pairs);
}

ldm_status ldm_diffusion_trainer_load_state(ldm_diffusion_trainer *t, const char *path) {
    t->micro = 0;
    return ldm_train_state_load(path, t->g, t->opt, t->ema);
}

ldm_status ldm_diffusion_trainer_check_same(ldm_diffusion_trainer *t) {
    ldm_train_state_part part = {NULL, t->g, t->opt, t->ema};
    return ldm_train_state_check_same(t->job, &part, 1);
}

ldm_grad_sync *ldm_diffusion_trainer_grad_sync(ldm_diffusion_trainer *t) {
    return t->sync;
}

static int text_param(const char *name, void *user) {
    return !not_text(name, user);
}

static ldm_status write_weights(ldm_diffusion_trainer *t, const char *dir) {
    ldm_diffusion_train_config tc = {
        .unet = &t->model.unet, .schedule = t->sched, .prediction = t->model.prediction_type};
    char path[LDM_MODEL_PATH + 32];
    snprintf(path, sizeof path, "%s/unet.safetensors", dir);
    LDM_TRY(ldm_diffusion_save(t->g, path, &tc, NULL));
    if (!t->trained_text) return LDM_OK;
    snprintf(path, sizeof path, "%s/text_encoder.safetensors", dir);
    return ldm_graph_save_filtered(t->g, path, NULL, text_param, NULL);
}

/* With LoRA, the model is the weights with the adapters merged in (W + alpha/rank up.down): they
 * are merged for the writing and the weights put back as they were, bit for bit. */
static ldm_status write_merged(ldm_diffusion_trainer *t, const char *dir) {
    if (!t->train.lora.rank) return write_weights(t, dir);
    ldm_lora_merged *m;
    LDM_TRY(ldm_lora_merge_adapters(t->g, &m));
    ldm_status st = write_weights(t, dir);
    ldm_status back = ldm_lora_unmerge(m);
    return st != LDM_OK ? st : back;
}

ldm_status ldm_diffusion_trainer_write_model(ldm_diffusion_trainer *t, const char *dir) {
    if (!t->ema) return write_merged(t, dir);
    /* the averaged weights are the model: swapped in for the writing, then back */
    LDM_TRY(ldm_ema_swap(t->ema));
    ldm_status st = write_merged(t, dir);
    ldm_status back = ldm_ema_swap(t->ema);
    return st != LDM_OK ? st : back;
}

ldm_status ldm_diffusion_trainer_write_lora(ldm_diffusion_trainer *t, const char *path,
                                            int *layers) {
    *layers = 0;
    if (!t->train.lora.rank)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "'%s': this run trains no LoRA", path);
    if (!t->ema) return ldm_sd_lora_save(NULL, t->g, NULL, path, layers);
    LDM_TRY(ldm_ema_swap(t->ema));
    ldm_status st = ldm_sd_lora_save(NULL, t->g, NULL, path, layers);
    ldm_status back = ldm_ema_swap(t->ema);
    return st != LDM_OK ? st : back;
}

ldm_graph *ldm_diffusion_trainer_graph(ldm_diffusion_trainer *t) {
    return t->g;
}

ldm_clip_tokenizer *ldm_diffusion_trainer_tokenizer(ldm_diffusion_trainer *t) {
    return t->tok;
}

ldm_params *ldm_diffusion_trainer_text_params(ldm_diffusion_trainer *t) {
    if (t->trained_text) return ldm_graph_params(t->g);
    return t->frozen ? ldm_clip_encoder_params(t->frozen) : NULL;
}
