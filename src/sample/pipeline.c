/* src/sample/pipeline.c: text to image from a model folder (see ldmcl/pipeline.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/autoencoder.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/clip.h"
#include "ldmcl/pipeline.h"
#include "ldmcl/sd_model.h"
#include "ldmcl/tokenizer.h"
#include "pipeline_internal.h"

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

ldm_x0_hook ldm_pipeline_preview_hook(ldm_pipeline *p) {
    return p->o.x0_hook.take ? (ldm_x0_hook){preview_want, preview_take, p} : (ldm_x0_hook){0};
}

void ldm_pipeline_destroy(ldm_pipeline *p) {
    if (!p) return;
    ldm_sampler_destroy(p->sampler);
    ldm_ae_codec_destroy(p->codec);
    ldm_clip_encoder_destroy(p->encoder);
    if (p->owns_tokenizer) ldm_clip_tokenizer_destroy(p->tokenizer);
    free(p->warned);
    ldm_schedule_destroy(p->schedule);
    free(p->prompts);
    free(p->context);
    free(p->uncond);
    free(p->latents);
    free(p->restored);
    free(p->plain);
    free(p->preview);
    free(p->init_lat);
    free(p->mask_lat);
    free(p->mask_cond);
    free(p->masked);
    for (int b = 0; p->clean && b < p->o.batch; b++)
        free(p->clean[b]);
    free(p->clean);
    ldm_sd_codec_destroy(p->sd_codec);
    free(p->sd);
    free(p);
}

const ldm_model_config *ldm_pipeline_config(const ldm_pipeline *p) {
    return &p->cfg;
}

/* The tokenizer (a model folder's, or the caller's) and the text encoder on text_store (NULL:
 * its own, loaded from dir's files). */
static ldm_status open_text(ldm_ctx *ctx, ldm_pipeline *p, const char *dir, ldm_params *text_store,
                            const ldm_lora_config *lora, ldm_clip_tokenizer *tokenizer) {
    p->ctx = ctx;
    const ldm_model_config *c = &p->cfg;
    if (c->text == LDM_TEXT_NONE) return LDM_OK;
    char source[LDM_MODEL_PATH + 64];
    if (tokenizer) {
        p->tokenizer = tokenizer;
        snprintf(source, sizeof source, "the model's [text]");
    } else {
        p->owns_tokenizer = 1;
        if (c->text == LDM_TEXT_CLIP_SCRATCH)
            LDM_TRY(ldm_clip_tokenizer_load_bpe(c->vocab, &p->tokenizer));
        else
            LDM_TRY(ldm_clip_tokenizer_load_dir(c->clip_path, &p->tokenizer));
        if (c->text == LDM_TEXT_CLIP_SCRATCH)
            snprintf(source, sizeof source, "'%s/model.ini' [text]", dir);
        else
            snprintf(source, sizeof source, "'%s/config.json'", c->clip_path);
    }
    LDM_TRY(ldm_clip_tokenizer_check_vocab(p->tokenizer, c->clip.vocab_size, source));
    LDM_TRY(ldm_clip_encoder_create_adapted(ctx, text_store, lora, &c->clip, p->o.batch,
                                            c->context_length, c->clip_skip, &p->encoder));
    if (!text_store) {
        char path[LDM_MODEL_PATH + 64];
        if (c->text == LDM_TEXT_CLIP_FROZEN)
            snprintf(path, sizeof path, "%s/model.safetensors", c->clip_path);
        else
            snprintf(path, sizeof path, "%s/text_encoder.safetensors", dir);
        LDM_TRY(ldm_clip_encoder_load(p->encoder, path));
    }
    return ldm_pipeline_alloc_text(p);
}

ldm_status ldm_pipeline_alloc_text(ldm_pipeline *p) {
    size_t row = (size_t)p->cfg.context_length * (size_t)p->cfg.clip.hidden_size;
    p->prompts = malloc((size_t)p->o.batch * sizeof *p->prompts);
    p->context = malloc((size_t)p->o.batch * row * sizeof *p->context);
    p->uncond = malloc((size_t)p->o.batch * row * sizeof *p->uncond);
    if (!p->prompts || !p->context || !p->uncond)
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    return LDM_OK;
}

ldm_status ldm_pipeline_check_finite(const float *latents, size_t n_lat, const float *images,
                                     size_t n_img, const char *what, const char *weights) {
    size_t first = 0, bad = latents ? ldm_count_non_finite(latents, n_lat, &first) : 0;
    if (bad)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the latents to decode hold %zu NaN/Inf values of %zu (the first at "
                        "element %zu)",
                        bad, n_lat, first);
    bad = images ? ldm_count_non_finite(images, n_img, &first) : 0;
    if (bad)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "the decoded images hold %zu NaN/Inf values of %zu (the first at element "
                        "%zu) though the latents are finite: the %s's weights in '%s' overflow "
                        "or are not finite",
                        bad, n_img, first, what, weights);
    return LDM_OK;
}

/* The images' and the UNet latents' sizes: the model's resolution, or the options' height and
 * width where the autoencoder and the UNet take them (multiples of their downsampling). */
static ldm_status image_size(ldm_pipeline *p) {
    const ldm_model_config *c = &p->cfg;
    int lat = ldm_model_latent_size(c), f = c->resolution / lat, d = 1;
    for (int i = 0; i + 1 < c->unet.n_down; i++)
        d *= c->unet.down_sample[i] ? 2 : 1;
    p->img_h = p->o.height > 0 ? p->o.height : c->resolution;
    p->img_w = p->o.width > 0 ? p->o.width : c->resolution;
    if (p->img_h % (f * d) || p->img_w % (f * d) || p->img_h > 65536 || p->img_w > 65536)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "images of %dx%d (width x height): this model's sides must be multiples "
                        "of %d (its autoencoder's %dx and its UNet's %dx downsampling), like %d "
                        "or %d",
                        p->img_w, p->img_h, f * d, f, d, c->resolution, c->resolution + f * d);
    p->lat_h = p->img_h / f;
    p->lat_w = p->img_w / f;
    return LDM_OK;
}

void ldm_pipeline_image_size(const ldm_pipeline *p, int *height, int *width) {
    *height = p->img_h;
    *width = p->img_w;
}

/* What every pipeline has: the schedule, the sampler on unet_store (with its LoRA adapters;
 * NULL: its own, loaded from unet_path), the autoencoder from p->ae_path, the host arrays. */
static ldm_status open_rest(ldm_ctx *ctx, ldm_pipeline *p, ldm_params *unet_store,
                            const ldm_lora_config *lora, const char *unet_path) {
    const ldm_model_config *c = &p->cfg;
    LDM_TRY(ldm_schedule_create(c->beta_schedule, c->num_timesteps, c->beta_start, c->beta_end,
                                &p->schedule));
    LDM_TRY(image_size(p));
    p->lat_channels = ldm_model_latent_channels(c);
    ldm_sampler_config sc = {.unet = &p->cfg.unet,
                             .schedule = p->schedule,
                             .batch = p->o.batch,
                             .height = p->lat_h,
                             .width = p->lat_w,
                             .context_len = c->context_length,
                             .mask_height = c->image_cond_h,
                             .mask_width = c->image_cond_w,
                             .guidance_scale = p->o.guidance_scale,
                             .method = p->o.method,
                             .steps = p->o.steps,
                             .eta = p->o.eta,
                             .scheduler = p->o.scheduler,
                             .progress = p->o.progress,
                             .prediction = c->prediction_type,
                             .params = unet_store,
                             .lora = lora};
    if (p->o.x0_hook.take) {
        sc.x0_hook = (ldm_x0_hook){preview_want, preview_take, p};
        p->preview =
            malloc((size_t)p->o.batch * c->channels * p->img_h * p->img_w * sizeof *p->preview);
        if (!p->preview) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    LDM_TRY(ldm_sampler_create(ctx, &sc, &p->sampler));
    if (!unet_store) LDM_TRY(ldm_graph_load(ldm_sampler_graph(p->sampler), unet_path, NULL));
    LDM_TRY(ldm_ae_codec_create(ctx, &c->ae, p->o.batch, p->img_h, p->img_w, 0, 0, &p->codec));
    LDM_TRY(ldm_ae_codec_load(p->codec, p->ae_path));
    size_t n_lat = (size_t)p->o.batch * p->lat_channels * p->lat_h * p->lat_w;
    p->latents = malloc(n_lat * sizeof *p->latents);
    p->restored = malloc(n_lat * sizeof *p->restored);
    p->plain = malloc(n_lat * sizeof *p->plain);
    if (!p->latents || !p->restored || !p->plain)
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    return LDM_OK;
}

static ldm_status check_latent_stats(const ldm_model_config *c, const char *source) {
    if (c->latent_scaling != LDM_LATENT_NONE && !c->n_latent_stats)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "%s: latent_scaling without latent_mean and latent_std (the statistics "
                        "ldmcl-train writes into a model folder's model.ini)",
                        source);
    return LDM_OK;
}

static ldm_pipeline *new_pipeline(const ldm_pipeline_options *o) {
    ldm_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        return NULL;
    }
    p->o = *o;
    if (p->o.batch < 1) p->o.batch = 1;
    return p;
}

ldm_status ldm_pipeline_open(ldm_ctx *ctx, const char *model_dir, const ldm_pipeline_options *o,
                             ldm_pipeline **out) {
    *out = NULL;
    ldm_pipeline *p = new_pipeline(o);
    if (!p) return LDM_ERR_HOST_MEMORY;
    if (ldm_pipeline_is_sd(model_dir)) {
        ldm_status st = ldm_sd_pipeline_open(ctx, p, model_dir);
        if (st != LDM_OK) {
            ldm_pipeline_destroy(p);
            return st;
        }
        *out = p;
        return LDM_OK;
    }
    char path[LDM_MODEL_PATH + 64], unet_path[LDM_MODEL_PATH + 32];
    snprintf(path, sizeof path, "%s/model.ini", model_dir);
    snprintf(unet_path, sizeof unet_path, "%s/unet.safetensors", model_dir);
    snprintf(p->unet_name, sizeof p->unet_name, "'%s'", unet_path);
    snprintf(p->ae_path, sizeof p->ae_path, "%s/autoencoder.safetensors", model_dir);
    ldm_status st = ldm_model_config_read(path, &p->cfg);
    const ldm_model_config *c = &p->cfg;
    ldm_diffusion_meta meta;
    if (st == LDM_OK) st = ldm_diffusion_read_meta(unet_path, &meta);
    if (st == LDM_OK && meta.from_file &&
        (meta.num_timesteps != c->num_timesteps || meta.prediction != c->prediction_type))
        st = LDM_FAIL(LDM_ERR_FORMAT,
                      "'%s' was trained with %d timesteps and %s prediction; model.ini says %d "
                      "and %s",
                      unet_path, meta.num_timesteps,
                      meta.prediction == LDM_PREDICT_V ? "v" : "epsilon", c->num_timesteps,
                      c->prediction_type == LDM_PREDICT_V ? "v" : "epsilon");
    snprintf(path, sizeof path, "'%s/model.ini'", model_dir);
    if (st == LDM_OK) st = check_latent_stats(c, path);
    if (st == LDM_OK) st = open_text(ctx, p, model_dir, NULL, NULL, NULL);
    if (st == LDM_OK) st = open_rest(ctx, p, NULL, NULL, unet_path);
    if (st != LDM_OK) {
        ldm_pipeline_destroy(p);
        return st;
    }
    *out = p;
    return LDM_OK;
}

ldm_status ldm_pipeline_create(ldm_ctx *ctx, const ldm_model_config *model,
                               const ldm_pipeline_weights *w, const ldm_pipeline_options *o,
                               ldm_pipeline **out) {
    *out = NULL;
    if (!w->unet || (model->text != LDM_TEXT_NONE && (!w->text || !w->tokenizer)) ||
        !w->autoencoder)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "a pipeline over stored weights needs the UNet's store, the autoencoder's "
                        "file and, with a text encoder, its store and tokenizer");
    ldm_pipeline *p = new_pipeline(o);
    if (!p) return LDM_ERR_HOST_MEMORY;
    p->cfg = *model;
    snprintf(p->unet_name, sizeof p->unet_name, "the UNet's weights");
    snprintf(p->ae_path, sizeof p->ae_path, "%s", w->autoencoder);
    ldm_status st = check_latent_stats(model, "the model");
    if (st == LDM_OK) st = open_text(ctx, p, NULL, w->text, w->lora, w->tokenizer);
    if (st == LDM_OK) st = open_rest(ctx, p, w->unet, w->lora, NULL);
    if (st != LDM_OK) {
        ldm_pipeline_destroy(p);
        return st;
    }
    *out = p;
    return LDM_OK;
}

/* Warns when text (named by what) has more tokens than the model reads: the rest is cut, as CLIP
 * cuts it, but not silently. Once per prompt in a row of generations. */
static void warn_if_cut(ldm_pipeline *p, const char *text, const char *what) {
    int n = 0, reads = p->cfg.context_length - 2;
    if (ldm_clip_token_count(p->tokenizer, text, strlen(text), &n) != LDM_OK || n <= reads) return;
    if (p->warned && !strcmp(p->warned, text)) return;
    free(p->warned);
    p->warned = ldm_strdup(text);
    ldm_log(p->ctx, LDM_LOG_WARN,
            "%s is %d tokens; the model reads %d: the last %d are dropped (shorten it, or train "
            "with a longer context_length)",
            what, n, reads, n - reads);
}

static int c_needs_mask(const ldm_pipeline *p) {
    return p->sd ? p->sd->inpainting : p->cfg.unet.image_cond_input_channels > 0;
}

ldm_status ldm_pipeline_set_mask_condition(ldm_pipeline *p, const float *mask) {
    const ldm_model_config *c = &p->cfg;
    if (!c_needs_mask(p) || p->sd)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "this model takes no mask condition (model.ini has no [ldm] "
                        "image_condition_input_channels)");
    size_t n =
        (size_t)p->o.batch * c->unet.image_cond_input_channels * c->image_cond_h * c->image_cond_w;
    if (!p->mask_cond && !(p->mask_cond = malloc(n * sizeof *p->mask_cond)))
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    memcpy(p->mask_cond, mask, n * sizeof *mask);
    return LDM_OK;
}

/* Encodes prompts[0 .. batch) and the negative prompt (what names them in an error), then samples
 * the latents. */
static ldm_status generate(ldm_pipeline *p, const char *const *prompts, const char *what,
                           const char *negative, uint64_t seed, float *latents) {
    const float *context = NULL, *uncond = NULL;
    if (p->encoder) {
        LDM_TRY(ldm_pipeline_take_loras(p, prompts, &prompts));
        const char *neg[1] = {negative ? negative : ""};
        for (int b = 0; b < p->o.batch; b++)
            if (!b || prompts[b] != prompts[b - 1]) warn_if_cut(p, prompts[b], "the prompt");
        warn_if_cut(p, neg[0], "the negative prompt");
        ldm_status st =
            ldm_clip_encode_prompts(p->encoder, p->tokenizer, prompts, p->o.batch, p->context);
        if (st != LDM_OK) {
            ldm_error_prefix("%s", what);
            return st;
        }
        st = ldm_clip_encode_prompts(p->encoder, p->tokenizer, neg, 1, p->uncond);
        if (st != LDM_OK) {
            ldm_error_prefix("the negative prompt");
            return st;
        }
        context = p->context;
        uncond = p->uncond;
    }
    if (p->sd && p->sd->inpainting && !p->mask_cond)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "'%s' has an inpainting UNet: give the image and the mask to repaint "
                        "(ldmcl-sample --init-img and --mask)",
                        p->sd->path);
    if (c_needs_mask(p) && !p->mask_cond)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "this model is conditioned on a segmentation mask (model.ini [ldm] "
                        "image_condition_input_channels = %d): give one (ldmcl-sample --mask)",
                        p->cfg.unet.image_cond_input_channels);
    LDM_TRY(ldm_sampler_set_conditions(p->sampler, context, uncond, NULL, p->mask_cond));
    ldm_sampler_set_seed(p->sampler, seed);
    ldm_status st = ldm_sampler_run(p->sampler, latents);
    if (st != LDM_OK) ldm_error_prefix("sampling with %s", p->unet_name);
    return st;
}

ldm_status ldm_pipeline_decode(ldm_pipeline *p, const float *latents, float *images) {
    if (p->sd) return ldm_sd_pipeline_decode(p, latents, images);
    const ldm_model_config *c = &p->cfg;
    if (c->latent_scaling != LDM_LATENT_NONE) {
        size_t hw = (size_t)p->lat_h * p->lat_w;
        memcpy(p->restored, latents, (size_t)p->o.batch * p->lat_channels * hw * sizeof *latents);
        ldm_latents_normalize(p->restored, (size_t)p->o.batch, p->lat_channels, hw, c->latent_mean,
                              c->latent_std, 1);
        latents = p->restored;
    }
    if (c->latent_patch > 1) {
        ldm_latents_patchify(latents, p->plain, (size_t)p->o.batch, p->lat_channels, p->lat_h,
                             p->lat_w, c->latent_patch, 1);
        latents = p->plain;
    }
    size_t n_lat = (size_t)p->o.batch * p->lat_channels * p->lat_h * p->lat_w;
    size_t n_img = (size_t)p->o.batch * c->channels * p->img_h * p->img_w;
    LDM_TRY(ldm_pipeline_check_finite(latents, n_lat, NULL, 0, "autoencoder", p->ae_path));
    LDM_TRY(ldm_ae_codec_decode(p->codec, latents, images));
    return ldm_pipeline_check_finite(NULL, 0, images, n_img, "autoencoder", p->ae_path);
}

ldm_status ldm_pipeline_generate(ldm_pipeline *p, const char *prompt, const char *negative,
                                 uint64_t seed, float *images) {
    LDM_TRY(ldm_pipeline_generate_latents(p, prompt, negative, seed, p->latents));
    return ldm_pipeline_decode(p, p->latents, images);
}

ldm_status ldm_pipeline_generate_each(ldm_pipeline *p, const char *const *prompts,
                                      const char *negative, uint64_t seed, float *images) {
    LDM_TRY(generate(p, prompts, "the prompts", negative, seed, p->latents));
    return ldm_pipeline_decode(p, p->latents, images);
}

ldm_status ldm_pipeline_generate_latents(ldm_pipeline *p, const char *prompt, const char *negative,
                                         uint64_t seed, float *latents) {
    for (int b = 0; p->prompts && b < p->o.batch; b++)
        p->prompts[b] = prompt ? prompt : "";
    return generate(p, p->prompts, "the prompt", negative, seed, latents);
}

/* The init images as the UNet sees them (encoded, patched, scaled) into p->init_lat, and the mask
 * averaged over each latent cell into p->mask_lat. */
static ldm_status prepare_init(ldm_pipeline *p, const float *init_images, const float *mask) {
    const ldm_model_config *c = &p->cfg;
    size_t B = (size_t)p->o.batch, hw = (size_t)p->lat_h * p->lat_w;
    size_t n_lat = B * p->lat_channels * hw;
    if (!p->init_lat) p->init_lat = malloc(n_lat * sizeof *p->init_lat);
    if (!p->mask_lat) p->mask_lat = malloc(B * hw * sizeof *p->mask_lat);
    if (!p->init_lat || !p->mask_lat) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    size_t n_img = B * c->channels * p->img_h * p->img_w, first = 0;
    size_t bad = ldm_count_non_finite(init_images, n_img, &first);
    if (bad)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the init images hold %zu NaN/Inf values (the first at element %zu)", bad,
                        first);
    int shape[4];
    ldm_ae_codec_latent_shape(p->codec, shape);
    LDM_TRY(ldm_ae_codec_encode(p->codec, init_images, p->plain, NULL));
    const float *z = p->plain;
    if (c->latent_patch > 1) {
        ldm_latents_patchify(p->plain, p->restored, B, shape[1], shape[2], shape[3],
                             c->latent_patch, 0);
        z = p->restored;
    }
    memcpy(p->init_lat, z, n_lat * sizeof *z);
    if (c->latent_scaling != LDM_LATENT_NONE)
        ldm_latents_normalize(p->init_lat, B, p->lat_channels, hw, c->latent_mean, c->latent_std,
                              0);
    if (!mask) return LDM_OK;
    int f = p->img_h / p->lat_h; /* image pixels per latent cell, each way */
    for (size_t b = 0; b < B; b++)
        for (int y = 0; y < p->lat_h; y++)
            for (int x = 0; x < p->lat_w; x++) {
                double sum = 0;
                for (int i = 0; i < f; i++)
                    for (int j = 0; j < f; j++) {
                        float m = mask[(b * p->img_h + (size_t)(y * f + i)) * p->img_w +
                                       (size_t)(x * f + j)];
                        sum += m < 0 ? 0 : m > 1 ? 1 : m;
                    }
                p->mask_lat[b * hw + (size_t)y * p->lat_w + x] = (float)(sum / (f * f));
            }
    return LDM_OK;
}

ldm_status ldm_pipeline_generate_from(ldm_pipeline *p, const char *prompt, const char *negative,
                                      uint64_t seed, const float *init_images, const float *mask,
                                      float strength, float *images) {
    if (p->sd) {
        LDM_TRY(ldm_sd_pipeline_prepare_init(p, init_images, mask));
        if (p->sd->inpainting && !mask)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "'%s' has an inpainting UNet: give the mask to repaint (--mask)",
                            p->sd->path);
    } else {
        LDM_TRY(prepare_init(p, init_images, mask));
    }
    /* the inpainting UNet sees the mask and the kept image itself: no blending */
    int blend = mask && !(p->sd && p->sd->inpainting);
    LDM_TRY(ldm_sampler_set_init(p->sampler, p->init_lat, strength, blend ? p->mask_lat : NULL));
    ldm_status st = ldm_pipeline_generate_latents(p, prompt, negative, seed, p->latents);
    ldm_sampler_set_init(p->sampler, NULL, 0.0f, NULL);
    LDM_TRY(st);
    return ldm_pipeline_decode(p, p->latents, images);
}
