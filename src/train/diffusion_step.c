/* src/train/diffusion_step.c: records one latent-diffusion training step (see ldmcl/train.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/checkpoint.h"
#include "ldmcl/lora_adapter.h"
#include "ldmcl/safetensors.h"
#include "fail.h"
#include "ldmcl/ops.h"
#include "ldmcl/train.h"

ldm_status ldm_diffusion_train_record(ldm_graph *g, const ldm_diffusion_train_config *cfg,
                                      ldm_diffusion_train_graph *out) {
    memset(out, 0, sizeof *out);
    const ldm_unet_config *u = cfg->unet;
    LDM_TRY(ldm_unet_config_check(u));
    if (cfg->batch < 1 || cfg->height < 1 || cfg->width < 1)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "training step: batch %d of %dx%d latents",
                        cfg->batch, cfg->height, cfg->width);
    if (!(cfg->snr_gamma >= 0.0f) || !isfinite(cfg->noise_offset))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "training step: snr_gamma %g must be 0 (off) or positive and noise_offset "
                        "%g finite",
                        (double)cfg->snr_gamma, (double)cfg->noise_offset);
    if (!(cfg->cond_drop_prob >= 0.0f && cfg->cond_drop_prob <= 1.0f))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "cond_drop_prob %g outside [0, 1]",
                        (double)cfg->cond_drop_prob);
    if (cfg->schedule->T != u->num_timesteps)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the schedule has %d timesteps, the UNet's time embedding %d",
                        cfg->schedule->T, u->num_timesteps);
    int n = cfg->batch;
    float p = cfg->cond_drop_prob;
    out->latents =
        ldm_graph_input(g, "latents", LDM_SHAPE(n, u->im_channels, cfg->height, cfg->width));
    out->t = ldm_random(g, LDM_DIST_INTEGER, LDM_SHAPE(n), cfg->seed, LDM_STREAM_T,
                        (float)cfg->schedule->T, 0.0f);
    out->noise =
        ldm_random(g, LDM_DIST_NORMAL, LDM_SHAPE(n, u->im_channels, cfg->height, cfg->width),
                   cfg->seed, LDM_STREAM_NOISE, 1.0f, 0.0f);
    if (cfg->noise_offset != 0.0f) /* diffusers: noise += offset * randn(N, C, 1, 1) */
        out->noise =
            ldm_add_channels(g, out->noise,
                             ldm_random(g, LDM_DIST_NORMAL, LDM_SHAPE(n, u->im_channels), cfg->seed,
                                        LDM_STREAM_NOISE_OFFSET, cfg->noise_offset, 0.0f));
    ldm_tensor *xt = ldm_add_noise(g, cfg->schedule, out->latents, out->noise, out->t);

    ldm_unet_cond cond = {NULL, NULL, NULL};
    if (u->text_embed_dim > 0 && cfg->text_encoder) {
        const ldm_clip_text_config *e = cfg->text_encoder;
        if (cfg->context_len < 1 || cfg->context_len > e->max_positions)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "a text-conditioned step needs context_len in [1, %d]",
                            e->max_positions);
        if (e->hidden_size != u->text_embed_dim)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "the text encoder's width %d is not the UNet's text_embed_dim %d",
                            e->hidden_size, u->text_embed_dim);
        int len = cfg->context_len;
        out->ids = ldm_graph_input(g, "ids", LDM_SHAPE(n, len));
        out->ids_mask = ldm_graph_input(g, "ids_mask", LDM_SHAPE(n, len));
        ldm_tensor *ids = out->ids, *mask = out->ids_mask;
        if (p > 0) { /* one draw per sample decides for ids and mask alike */
            out->empty_ids = ldm_graph_input(g, "empty_ids", LDM_SHAPE(len));
            out->empty_mask = ldm_graph_input(g, "empty_mask", LDM_SHAPE(len));
            ldm_tensor *r = ldm_random(g, LDM_DIST_UNIFORM, LDM_SHAPE(n), cfg->seed,
                                       LDM_STREAM_DROP_TEXT, 1.0f, 0.0f);
            ids = ldm_drop_condition(g, ids, out->empty_ids, r, p, 0);
            mask = ldm_drop_condition(g, mask, out->empty_mask, r, p, 0);
        }
        cond.context = ldm_clip_text(g, e, ids, mask, cfg->text_skip);
    } else if (u->text_embed_dim > 0) {
        if (cfg->context_len < 1)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "a text-conditioned step needs context_len");
        out->context =
            ldm_graph_input(g, "context", LDM_SHAPE(n, cfg->context_len, u->text_embed_dim));
        cond.context = out->context;
        if (p > 0) {
            out->empty_context =
                ldm_graph_input(g, "empty_context", LDM_SHAPE(cfg->context_len, u->text_embed_dim));
            ldm_tensor *r = ldm_random(g, LDM_DIST_UNIFORM, LDM_SHAPE(n), cfg->seed,
                                       LDM_STREAM_DROP_TEXT, 1.0f, 0.0f);
            cond.context = ldm_drop_condition(g, out->context, out->empty_context, r, p, 0);
        }
    }
    if (u->num_classes > 0) {
        out->class_onehot = ldm_graph_input(g, "class", LDM_SHAPE(n, u->num_classes));
        cond.class_onehot = out->class_onehot;
        if (p > 0) {
            ldm_tensor *r = ldm_random(g, LDM_DIST_UNIFORM, LDM_SHAPE(n), cfg->seed,
                                       LDM_STREAM_DROP_CLASS, 1.0f, 0.0f);
            cond.class_onehot = ldm_drop_condition(g, out->class_onehot, NULL, r, p, 1);
        }
    }
    if (u->image_cond_input_channels > 0) {
        out->mask = ldm_graph_input(
            g, "mask",
            LDM_SHAPE(n, u->image_cond_input_channels, cfg->mask_height, cfg->mask_width));
        cond.mask = out->mask;
        if (p > 0) {
            ldm_tensor *r = ldm_random(g, LDM_DIST_UNIFORM, LDM_SHAPE(n), cfg->seed,
                                       LDM_STREAM_DROP_MASK, 1.0f, 0.0f);
            cond.mask = ldm_drop_condition(g, out->mask, NULL, r, p, 1);
        }
    }
    out->prediction = ldm_unet(g, u, xt, out->t, &cond);
    out->target = cfg->prediction == LDM_PREDICT_V
                      ? ldm_velocity(g, cfg->schedule, out->latents, out->noise, out->t)
                      : out->noise;
    if (cfg->snr_gamma > 0.0f) /* mean over the batch of w(t_n) * mean((pred - target)^2) */
        out->loss = ldm_mse_loss_const(
            g,
            ldm_snr_loss_scale(g, cfg->schedule, cfg->snr_gamma, cfg->prediction == LDM_PREDICT_V,
                               ldm_sub(g, out->prediction, out->target), out->t),
            0.0f);
    else
        out->loss = ldm_mse_loss(g, out->prediction, out->target);
    ldm_tensor_keep(out->t);
    ldm_tensor_keep(out->noise);
    ldm_tensor_keep(out->prediction);
    ldm_tensor_keep(out->target);
    ldm_tensor_keep(out->loss);
    if (ldm_graph_status(g) != LDM_OK)
        return ldm_restore_error(ldm_graph_status(g), ldm_graph_error(g));
    for (size_t i = 0; cfg->adapters_only && i < ldm_graph_param_count(g); i++) {
        ldm_tensor *w = ldm_graph_param_at(g, i);
        ldm_tensor_set_trainable(w, ldm_lora_is_adapter(ldm_tensor_name(w)));
    }
    return ldm_graph_backward(g, out->loss);
}

/* The UNet's parameters: not the text encoder's recorded beside them, nor LoRA adapters. */
static int unet_param(const char *name, void *user) {
    (void)user;
    return strncmp(name, "text_model.", 11) != 0 && !ldm_lora_is_adapter(name);
}

static const char *schedule_name(ldm_schedule_kind k) {
    return k == LDM_SCHEDULE_LINEAR   ? "linear"
           : k == LDM_SCHEDULE_COSINE ? "cosine"
                                      : "scaled_linear";
}

ldm_status ldm_diffusion_save(ldm_graph *g, const char *path, const ldm_diffusion_train_config *cfg,
                              const char *const *extra_pairs) {
    const ldm_schedule *s = cfg->schedule;
    char T[32], b0[32], b1[32];
    snprintf(T, sizeof T, "%d", s->T);
    snprintf(b0, sizeof b0, "%.17g", s->T > 0 ? s->betas[0] : 0.0);
    snprintf(b1, sizeof b1, "%.17g", s->T > 0 ? s->betas[s->T - 1] : 0.0);
    const char *pairs[64] = {
        LDM_META_PREDICTION, cfg->prediction == LDM_PREDICT_V ? "v_prediction" : "epsilon",
        LDM_META_SCHEDULE,   schedule_name(s->kind),
        LDM_META_TIMESTEPS,  T,
        LDM_META_BETA_START, b0,
        LDM_META_BETA_END,   b1};
    int n = 10;
    for (int i = 0; extra_pairs && extra_pairs[i] && extra_pairs[i + 1] && n < 62; i += 2) {
        pairs[n++] = extra_pairs[i];
        pairs[n++] = extra_pairs[i + 1];
    }
    pairs[n] = NULL;
    return ldm_graph_save_filtered(g, path, pairs, unet_param, NULL);
}
