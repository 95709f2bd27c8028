/* src/sample/pipeline.c: text to image from a model folder (see ldmcl/pipeline.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/autoencoder.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/clip.h"
#include "ldmcl/pipeline.h"
#include "ldmcl/tokenizer.h"

struct ldm_pipeline {
    ldm_model_config cfg;
    ldm_pipeline_options o;
    ldm_schedule *schedule;
    ldm_sampler *sampler;
    ldm_ae_codec *codec;
    ldm_clip_tokenizer *tokenizer;
    ldm_clip_encoder *encoder; /* batch 1: one prompt at a time */
    int lat, lat_channels;
    float *context, *uncond, *latents;
    float *restored;          /* latents with the model's latent scaling undone, to decode */
    float *plain;             /* and with latent_patch undone: the autoencoder's latents */
    float *preview;           /* decoded x0 previews, with an x0 hook */
    char dir[LDM_MODEL_PATH]; /* the model folder, for messages */
};

/* The sampler's x0 hook: decodes the latents, then hands the images to the caller's hook. */
static int preview_want(void *user, int k, int steps) {
    const ldm_pipeline *p = user;
    return !p->o.x0_hook.want || p->o.x0_hook.want(p->o.x0_hook.user, k, steps);
}

static ldm_status preview_take(void *user, int k, int t, const float *x0) {
    ldm_pipeline *p = user;
    LDM_TRY(ldm_pipeline_decode(p, x0, p->preview));
    return p->o.x0_hook.take(p->o.x0_hook.user, k, t, p->preview);
}

void ldm_pipeline_destroy(ldm_pipeline *p) {
    if (!p) return;
    ldm_sampler_destroy(p->sampler);
    ldm_ae_codec_destroy(p->codec);
    ldm_clip_encoder_destroy(p->encoder);
    ldm_clip_tokenizer_destroy(p->tokenizer);
    ldm_schedule_destroy(p->schedule);
    free(p->context);
    free(p->uncond);
    free(p->latents);
    free(p->restored);
    free(p->plain);
    free(p->preview);
    free(p);
}

const ldm_model_config *ldm_pipeline_config(const ldm_pipeline *p) {
    return &p->cfg;
}

static ldm_status open_text(ldm_ctx *ctx, ldm_pipeline *p, const char *dir) {
    const ldm_model_config *c = &p->cfg;
    if (c->text == LDM_TEXT_NONE) return LDM_OK;
    if (c->text == LDM_TEXT_CLIP_SCRATCH)
        LDM_TRY(ldm_clip_tokenizer_load_bpe(c->vocab, &p->tokenizer));
    else
        LDM_TRY(ldm_clip_tokenizer_load_dir(c->clip_path, &p->tokenizer));
    char source[LDM_MODEL_PATH + 64];
    if (c->text == LDM_TEXT_CLIP_SCRATCH)
        snprintf(source, sizeof source, "'%s/model.ini' [text]", dir);
    else
        snprintf(source, sizeof source, "'%s/config.json'", c->clip_path);
    LDM_TRY(ldm_clip_tokenizer_check_vocab(p->tokenizer, c->clip.vocab_size, source));
    LDM_TRY(
        ldm_clip_encoder_create(ctx, &c->clip, 1, c->context_length, c->clip_skip, &p->encoder));
    char path[LDM_MODEL_PATH + 64];
    if (c->text == LDM_TEXT_CLIP_FROZEN)
        snprintf(path, sizeof path, "%s/model.safetensors", c->clip_path);
    else
        snprintf(path, sizeof path, "%s/text_encoder.safetensors", dir);
    LDM_TRY(ldm_clip_encoder_load(p->encoder, path));
    size_t row = (size_t)c->context_length * (size_t)c->clip.hidden_size;
    p->context = malloc((size_t)p->o.batch * row * sizeof *p->context);
    p->uncond = malloc(row * sizeof *p->uncond);
    if (!p->context || !p->uncond) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    return LDM_OK;
}

ldm_status ldm_pipeline_open(ldm_ctx *ctx, const char *model_dir, const ldm_pipeline_options *o,
                             ldm_pipeline **out) {
    *out = NULL;
    ldm_pipeline *p = calloc(1, sizeof *p);
    if (!p) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    p->o = *o;
    if (p->o.batch < 1) p->o.batch = 1;
    snprintf(p->dir, sizeof p->dir, "%s", model_dir);
    char path[LDM_MODEL_PATH + 64];
    snprintf(path, sizeof path, "%s/model.ini", model_dir);
    ldm_status st = ldm_model_config_read(path, &p->cfg);
    const ldm_model_config *c = &p->cfg;
    ldm_diffusion_meta meta;
    snprintf(path, sizeof path, "%s/unet.safetensors", model_dir);
    if (st == LDM_OK) st = ldm_diffusion_read_meta(path, &meta);
    if (st == LDM_OK && meta.from_file &&
        (meta.num_timesteps != c->num_timesteps || meta.prediction != c->prediction_type))
        st = LDM_FAIL(LDM_ERR_FORMAT,
                      "'%s' was trained with %d timesteps and %s prediction; model.ini says %d "
                      "and %s",
                      path, meta.num_timesteps, meta.prediction == LDM_PREDICT_V ? "v" : "epsilon",
                      c->num_timesteps, c->prediction_type == LDM_PREDICT_V ? "v" : "epsilon");
    if (st == LDM_OK)
        st = ldm_schedule_create(c->beta_schedule, c->num_timesteps, c->beta_start, c->beta_end,
                                 &p->schedule);
    if (st == LDM_OK && c->latent_scaling != LDM_LATENT_NONE && !c->n_latent_stats)
        st = LDM_FAIL(LDM_ERR_FORMAT,
                      "'%s/model.ini': latent_scaling without latent_mean and latent_std (the "
                      "statistics ldmcl-train writes into a model folder's model.ini)",
                      model_dir);
    if (st == LDM_OK) st = open_text(ctx, p, model_dir);
    p->lat = ldm_model_latent_size(c);
    p->lat_channels = ldm_model_latent_channels(c);
    ldm_sampler_config sc = {.unet = &p->cfg.unet,
                             .schedule = p->schedule,
                             .batch = p->o.batch,
                             .height = p->lat,
                             .width = p->lat,
                             .context_len = c->context_length,
                             .guidance_scale = p->o.guidance_scale,
                             .method = p->o.method,
                             .steps = p->o.steps,
                             .eta = p->o.eta,
                             .prediction = c->prediction_type};
    if (p->o.x0_hook.take) {
        sc.x0_hook = (ldm_x0_hook){preview_want, preview_take, p};
        p->preview = malloc((size_t)p->o.batch * c->channels * c->resolution * c->resolution *
                            sizeof *p->preview);
        if (st == LDM_OK && !p->preview) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    if (st == LDM_OK) st = ldm_sampler_create(ctx, &sc, &p->sampler);
    if (st == LDM_OK) st = ldm_graph_load(ldm_sampler_graph(p->sampler), path, NULL);
    if (st == LDM_OK)
        st = ldm_ae_codec_create(ctx, &c->ae, p->o.batch, c->resolution, c->resolution, 0, 0,
                                 &p->codec);
    snprintf(path, sizeof path, "%s/autoencoder.safetensors", model_dir);
    if (st == LDM_OK) st = ldm_ae_codec_load(p->codec, path);
    size_t n_lat = (size_t)p->o.batch * p->lat_channels * p->lat * p->lat;
    p->latents = malloc(n_lat * sizeof *p->latents);
    p->restored = malloc(n_lat * sizeof *p->restored);
    p->plain = malloc(n_lat * sizeof *p->plain);
    if (st == LDM_OK && (!p->latents || !p->restored || !p->plain))
        st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (st != LDM_OK) {
        ldm_pipeline_destroy(p);
        return st;
    }
    *out = p;
    return LDM_OK;
}

ldm_status ldm_pipeline_decode(ldm_pipeline *p, const float *latents, float *images) {
    const ldm_model_config *c = &p->cfg;
    if (c->latent_scaling != LDM_LATENT_NONE) {
        size_t hw = (size_t)p->lat * p->lat;
        memcpy(p->restored, latents, (size_t)p->o.batch * p->lat_channels * hw * sizeof *latents);
        ldm_latents_normalize(p->restored, (size_t)p->o.batch, p->lat_channels, hw, c->latent_mean,
                              c->latent_std, 1);
        latents = p->restored;
    }
    if (c->latent_patch > 1) {
        ldm_latents_patchify(latents, p->plain, (size_t)p->o.batch, p->lat_channels, p->lat, p->lat,
                             c->latent_patch, 1);
        latents = p->plain;
    }
    size_t n_lat = (size_t)p->o.batch * p->lat_channels * p->lat * p->lat;
    size_t first = 0, bad = ldm_count_non_finite(latents, n_lat, &first);
    if (bad)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the latents to decode hold %zu NaN/Inf values of %zu (the first at "
                        "element %zu)",
                        bad, n_lat, first);
    LDM_TRY(ldm_ae_codec_decode(p->codec, latents, images));
    size_t n_img = (size_t)p->o.batch * c->channels * c->resolution * c->resolution;
    bad = ldm_count_non_finite(images, n_img, &first);
    if (bad)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "the decoded images hold %zu NaN/Inf values of %zu (the first at element "
                        "%zu) though the latents are finite: the autoencoder's weights in "
                        "'%s/autoencoder.safetensors' overflow or are not finite",
                        bad, n_img, first, p->dir);
    return LDM_OK;
}

ldm_status ldm_pipeline_generate(ldm_pipeline *p, const char *prompt, const char *negative,
                                 uint64_t seed, float *images) {
    LDM_TRY(ldm_pipeline_generate_latents(p, prompt, negative, seed, p->latents));
    return ldm_pipeline_decode(p, p->latents, images);
}

ldm_status ldm_pipeline_generate_latents(ldm_pipeline *p, const char *prompt, const char *negative,
                                         uint64_t seed, float *latents) {
    const ldm_model_config *c = &p->cfg;
    const float *context = NULL, *uncond = NULL;
    if (p->encoder) {
        size_t row = (size_t)c->context_length * (size_t)c->clip.hidden_size;
        const char *pos[1] = {prompt ? prompt : ""}, *neg[1] = {negative ? negative : ""};
        ldm_status st = ldm_clip_encode_prompts(p->encoder, p->tokenizer, pos, 1, p->context);
        if (st != LDM_OK) {
            ldm_error_prefix("the prompt");
            return st;
        }
        st = ldm_clip_encode_prompts(p->encoder, p->tokenizer, neg, 1, p->uncond);
        if (st != LDM_OK) {
            ldm_error_prefix("the negative prompt");
            return st;
        }
        for (int b = 1; b < p->o.batch; b++)
            memcpy(p->context + (size_t)b * row, p->context, row * sizeof *p->context);
        context = p->context;
        uncond = p->uncond;
    }
    LDM_TRY(ldm_sampler_set_conditions(p->sampler, context, uncond, NULL, NULL));
    ldm_sampler_set_seed(p->sampler, seed);
    ldm_status st = ldm_sampler_run(p->sampler, latents);
    if (st != LDM_OK) ldm_error_prefix("sampling with '%s/unet.safetensors'", p->dir);
    return st;
}
