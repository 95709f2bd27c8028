/* src/sample/sd_pipeline.c: text to image, img2img and inpainting with a Stable Diffusion 1.x/2.x
 * checkpoint (see ldmcl/pipeline.h, ldmcl/sd_model.h): the text encoder with SD's padding (77
 * positions, all attended, 2.x padding with id 0), the sampler over SD's UNet, the VAE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fail.h"
#include "internal.h"
#include "pipeline_internal.h"

int ldm_pipeline_is_sd(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (S_ISREG(sb.st_mode)) return 1;
    char sub[LDM_MODEL_PATH + 32];
    snprintf(sub, sizeof sub, "%s/model.ini", path);
    if (stat(sub, &sb) == 0) return 0;
    snprintf(sub, sizeof sub, "%s/unet/config.json", path);
    return stat(sub, &sb) == 0;
}

const struct ldm_sd_model *ldm_pipeline_sd_model(const ldm_pipeline *p) {
    return p->sd;
}

/* What the rest of the pipeline (and ldmcl-sample) reads of a model description. */
static void describe_as_model(const ldm_sd_model *m, int clip_skip, ldm_model_config *c) {
    ldm_model_config_init(c);
    c->resolution = m->family == LDM_SD_2 && m->prediction == LDM_PREDICT_V ? 768 : 512;
    c->channels = m->vae.out_channels;
    c->num_timesteps = m->num_timesteps;
    c->beta_start = m->beta_start;
    c->beta_end = m->beta_end;
    c->beta_schedule = LDM_SCHEDULE_SCALED_LINEAR;
    c->prediction_type = m->prediction;
    c->latent_scaling = LDM_LATENT_NONE;
    c->latent_patch = 1;
    c->text = LDM_TEXT_CLIP_FROZEN;
    c->clip = m->text;
    c->context_length = m->text.max_positions < 77 ? m->text.max_positions : 77;
    c->clip_skip = m->text_skip + (clip_skip > 1 ? clip_skip - 1 : 0);
    c->unet.image_cond_input_channels = 0;
    c->unet.num_classes = 0;
}

static ldm_status open_tokenizer(ldm_pipeline *p) {
    const char *t = p->o.tokenizer;
    struct stat sb;
    p->owns_tokenizer = 1;
    if (!t && !p->sd->tokenizer_dir[0])
        return LDM_FAIL(LDM_ERR_NOT_FOUND,
                        "'%s' is a single-file checkpoint: it holds no tokenizer. Give CLIP's "
                        "vocabulary with --tokenizer (bpe_simple_vocab_16e6.txt.gz, which "
                        "tools/fetch_clip_vocab.sh fetches, or a Hugging Face tokenizer folder)",
                        p->sd->path);
    if (!t) return ldm_clip_tokenizer_load_dir(p->sd->tokenizer_dir, &p->tokenizer);
    if (stat(t, &sb) == 0 && S_ISDIR(sb.st_mode))
        return ldm_clip_tokenizer_load_dir(t, &p->tokenizer);
    return ldm_clip_tokenizer_load_bpe(t, &p->tokenizer);
}

static ldm_status open_text(ldm_ctx *ctx, ldm_pipeline *p) {
    const ldm_model_config *c = &p->cfg;
    LDM_TRY(open_tokenizer(p));
    LDM_TRY(ldm_clip_tokenizer_check_vocab(p->tokenizer, c->clip.vocab_size, p->sd->text_file));
    if (c->clip_skip >= c->clip.num_layers)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "clip skip %d: the text encoder has %d layers (its own skips %d)",
                        p->o.clip_skip, c->clip.num_layers, p->sd->text_skip);
    LDM_TRY((p->o.half_weights ? ldm_clip_encoder_create_half : ldm_clip_encoder_create)(
        ctx, &c->clip, p->o.batch, c->context_length, c->clip_skip, &p->encoder));
    ldm_clip_encoder_set_padding(p->encoder, p->sd->pad_token, 0);
    LDM_TRY(ldm_sd_load_text(p->sd, ldm_clip_encoder_graph(p->encoder)));
    return ldm_pipeline_alloc_text(p);
}

static ldm_status image_size(ldm_pipeline *p) {
    const ldm_sd_model *m = p->sd;
    int f = 1 << (m->vae.n_levels - 1), d = 1 << (m->unet.n_levels - 1);
    p->img_h = p->o.height > 0 ? p->o.height : p->cfg.resolution;
    p->img_w = p->o.width > 0 ? p->o.width : p->cfg.resolution;
    if (p->img_h % (f * d) || p->img_w % (f * d) || p->img_h > 16384 || p->img_w > 16384)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "images of %dx%d (width x height): Stable Diffusion's sides must be "
                        "multiples of %d (its VAE's %dx and its UNet's %dx downsampling), like "
                        "512 or 768",
                        p->img_w, p->img_h, f * d, f, d);
    p->lat_h = p->img_h / f;
    p->lat_w = p->img_w / f;
    p->lat_channels = m->unet.out_channels;
    return LDM_OK;
}

ldm_status ldm_sd_pipeline_open(ldm_ctx *ctx, ldm_pipeline *p, const char *path) {
    p->ctx = ctx;
    p->sd = malloc(sizeof *p->sd);
    if (!p->sd) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    LDM_TRY(ldm_sd_model_inspect(path, p->sd));
    ldm_sd_model *m = p->sd;
    if (p->o.prediction == 1 || p->o.prediction == 2) {
        m->prediction = p->o.prediction == 2 ? LDM_PREDICT_V : LDM_PREDICT_EPSILON;
        snprintf(m->prediction_how, sizeof m->prediction_how, "%s, as asked",
                 p->o.prediction == 2 ? "v" : "epsilon");
    }
    describe_as_model(m, p->o.clip_skip, &p->cfg);
    snprintf(p->unet_name, sizeof p->unet_name, "'%s'", m->unet_file);
    snprintf(p->ae_path, sizeof p->ae_path, "%s", m->vae_file);
    LDM_TRY(open_text(ctx, p));
    const ldm_model_config *c = &p->cfg;
    LDM_TRY(ldm_schedule_create(c->beta_schedule, c->num_timesteps, c->beta_start, c->beta_end,
                                &p->schedule));
    LDM_TRY(image_size(p));
    ldm_sampler_config sc = {.sd_unet = &m->unet,
                             .schedule = p->schedule,
                             .batch = p->o.batch,
                             .height = p->lat_h,
                             .width = p->lat_w,
                             .context_len = c->context_length,
                             .guidance_scale = p->o.guidance_scale,
                             .method = p->o.method,
                             .steps = p->o.steps,
                             .eta = p->o.eta,
                             .scheduler = p->o.scheduler,
                             .progress = p->o.progress,
                             .prediction = m->prediction,
                             .half_weights = p->o.half_weights,
                             .x0_hook = ldm_pipeline_preview_hook(p)};
    if (p->o.x0_hook.take) {
        p->preview =
            malloc((size_t)p->o.batch * c->channels * p->img_h * p->img_w * sizeof *p->preview);
        if (!p->preview) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    LDM_TRY(ldm_sampler_create(ctx, &sc, &p->sampler));
    LDM_TRY(ldm_sd_load_unet(m, ldm_sampler_graph(p->sampler)));
    ldm_status st = ldm_sd_codec_create(ctx, m, p->o.batch, p->img_h, p->img_w, p->o.vae_tile,
                                        p->o.half_weights, &p->sd_codec);
    if (st == LDM_ERR_DEVICE_MEMORY && p->o.vae_tile == 0 && (p->lat_h > 32 || p->lat_w > 32)) {
        /* the whole image's decoder does not fit: tiles, said aloud */
        char why[512];
        snprintf(why, sizeof why, "%s", ldm_last_error());
        ldm_log(ctx, LDM_LOG_WARN,
                "decoding in tiles of 256x256 pixels (as --vae-tiling): the VAE's decoder for "
                "%dx%d images does not fit: %s",
                p->img_w, p->img_h, why);
        st = ldm_sd_codec_create(ctx, m, p->o.batch, p->img_h, p->img_w, 32, p->o.half_weights,
                                 &p->sd_codec);
    }
    LDM_TRY(st);
    size_t n_lat = (size_t)p->o.batch * p->lat_channels * p->lat_h * p->lat_w;
    p->latents = malloc(n_lat * sizeof *p->latents);
    if (!p->latents) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    return LDM_OK;
}

ldm_status ldm_sd_pipeline_decode(ldm_pipeline *p, const float *latents, float *images) {
    size_t n_lat = (size_t)p->o.batch * p->lat_channels * p->lat_h * p->lat_w;
    size_t n_img = (size_t)p->o.batch * p->cfg.channels * p->img_h * p->img_w;
    LDM_TRY(ldm_pipeline_check_finite(latents, n_lat, NULL, 0, "VAE", p->ae_path));
    LDM_TRY(ldm_sd_codec_decode(p->sd_codec, latents, images));
    return ldm_pipeline_check_finite(NULL, 0, images, n_img, "VAE", p->ae_path);
}

ldm_status ldm_sd_pipeline_prepare_init(ldm_pipeline *p, const float *init_images,
                                        const float *mask) {
    size_t B = (size_t)p->o.batch, hw = (size_t)p->lat_h * p->lat_w;
    size_t n_lat = B * p->lat_channels * hw, n_img = B * p->cfg.channels * p->img_h * p->img_w;
    if (!p->init_lat) p->init_lat = malloc(n_lat * sizeof *p->init_lat);
    if (!p->mask_lat) p->mask_lat = malloc(B * hw * sizeof *p->mask_lat);
    if (!p->init_lat || !p->mask_lat) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    size_t first = 0, bad = ldm_count_non_finite(init_images, n_img, &first);
    if (bad)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the init images hold %zu NaN/Inf values (the first at element %zu)", bad,
                        first);
    LDM_TRY(ldm_sd_codec_encode(p->sd_codec, init_images, p->init_lat));
    if (!mask) return LDM_OK;
    int f = p->img_h / p->lat_h;
    for (size_t b = 0; b < B; b++) /* the mask averaged over each latent cell */
        for (int y = 0; y < p->lat_h; y++)
            for (int x = 0; x < p->lat_w; x++) {
                double sum = 0;
                for (int i = 0; i < f; i++)
                    for (int j = 0; j < f; j++) {
                        float v = mask[(b * p->img_h + (size_t)(y * f + i)) * p->img_w +
                                       (size_t)(x * f + j)];
                        sum += v < 0 ? 0 : v > 1 ? 1 : v;
                    }
                p->mask_lat[b * hw + (size_t)y * p->lat_w + x] = (float)(sum / (f * f));
            }
    if (!p->sd->inpainting) return LDM_OK;
    /* the inpainting UNet's extra channels, as diffusers makes them: the mask (binarised at 0.5,
     * taken at each cell's first pixel, as nearest resizing does) and the latents of the image
     * with the repainted part set to 0 */
    if (!p->masked) p->masked = malloc(n_img * sizeof *p->masked);
    size_t extra = 1 + (size_t)p->lat_channels; /* mask, masked latents */
    if (!p->mask_cond) p->mask_cond = malloc(B * extra * hw * sizeof *p->mask_cond);
    if (!p->masked || !p->mask_cond) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    size_t plane = (size_t)p->img_h * p->img_w;
    for (size_t i = 0; i < n_img; i++) {
        size_t b = i / (p->cfg.channels * plane);
        p->masked[i] = mask[b * plane + i % plane] < 0.5f ? init_images[i] : 0.0f;
    }
    float *masked_lat = p->mask_cond; /* encoded into place, then spread out per sample */
    float *tmp = malloc(n_lat * sizeof *tmp);
    if (!tmp) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_status st = ldm_sd_codec_encode(p->sd_codec, p->masked, tmp);
    for (size_t b = 0; b < B && st == LDM_OK; b++) {
        float *row = masked_lat + b * extra * hw;
        for (int y = 0; y < p->lat_h; y++)
            for (int x = 0; x < p->lat_w; x++)
                row[(size_t)y * p->lat_w + x] =
                    mask[(b * p->img_h + (size_t)(y * f)) * p->img_w + (size_t)(x * f)] >= 0.5f;
        memcpy(row + hw, tmp + b * (extra - 1) * hw, (extra - 1) * hw * sizeof *tmp);
    }
    free(tmp);
    return st;
}
