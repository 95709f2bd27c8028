/* src/train/run_config.c: the INI configuration of a training run (see ldmcl/run_config.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/ini.h"
#include "ldmcl/run_config.h"

void ldm_run_config_init(ldm_run_config *c) {
    memset(c, 0, sizeof *c);
    c->resolution = 28;
    c->channels = 1;
    snprintf(c->caption_extension, sizeof c->caption_extension, ".txt");
    c->num_timesteps = 1000;
    c->beta_start = 0.0015;
    c->beta_end = 0.0195;
    c->beta_schedule = LDM_SCHEDULE_SCALED_LINEAR;
    c->prediction_type = LDM_PREDICT_EPSILON;
    c->unet = (ldm_unet_config){.down_channels = {128, 256, 256, 256},
                                .n_down = 4,
                                .mid_channels = {256, 256},
                                .n_mid = 2,
                                .down_sample = {0, 0, 0},
                                .attn_down = {1, 1, 1},
                                .time_emb_dim = 256,
                                .norm_channels = 32,
                                .num_heads = 16,
                                .conv_out_channels = 128,
                                .num_down_layers = 2,
                                .num_mid_layers = 2,
                                .num_up_layers = 2};
    ldm_autoencoder_config_mnist(&c->ae, LDM_AE_VQVAE);
    c->latent_patch = 1;
    c->text = LDM_TEXT_CLIP_SCRATCH;
    c->clip = (ldm_clip_text_config){.vocab_size = 49408,
                                     .hidden_size = 128,
                                     .intermediate_size = 512,
                                     .num_layers = 2,
                                     .num_heads = 4,
                                     .max_positions = 77,
                                     .layer_norm_eps = 1e-5f,
                                     .act = LDM_CLIP_QUICK_GELU};
    c->context_length = 77;
    c->cond_drop_prob = 0.1f;
    c->ae_batch = 64;
    c->ae_steps = 1000;
    c->ae_acc_steps = 1;
    c->ae_disc_start = 1000;
    c->ae_lr = 1e-4f;
    c->ae_disc_weight = 0.5f;
    c->ae_codebook_weight = 1.0f;
    c->ae_commitment_beta = 0.2f;
    c->ae_kl_weight = 5e-6f;
    c->ae_perceptual_weight = 1.0f;
    snprintf(c->output_dir, sizeof c->output_dir, "output");
    c->seed = 1111;
    c->batch = 64;
    c->max_steps = 1000;
    c->acc_steps = 1;
    c->checkpointing_steps = 500;
    c->checkpoints_limit = 3;
    c->lr = 1e-5f;
    c->ema_decay = 0.9999f;
    c->validation_guidance_scale = 1.0f;
    c->validation_sampling_steps = 50;
}

/* A path value made relative to the config file's folder; one too long for out
 * (LDM_RUN_PATH) is an error naming file, line and key, never cut. */
static ldm_status path_key(ldm_ini *ini, const char *config, const char *section, const char *key,
                           char *out) {
    const char *v = NULL;
    LDM_TRY(ldm_ini_string(ini, section, key, &v));
    if (!v) return LDM_OK;
    const char *slash = strrchr(config, '/');
    int relative = v[0] != '/' && slash && v[0];
    size_t folder = relative ? (size_t)(slash - config) + 1 : 0, len = folder + strlen(v);
    if (len >= LDM_RUN_PATH)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "%s:%d: [%s] %s: the path is %zu bytes%s, more than the %d a path may "
                        "have: use a shorter one",
                        config, ldm_ini_line(ini, section, key), section, key, len,
                        relative ? " with the config's folder before it" : "", LDM_RUN_PATH - 1);
    if (relative)
        snprintf(out, LDM_RUN_PATH, "%.*s/%s", (int)(folder - 1), config, v);
    else
        snprintf(out, LDM_RUN_PATH, "%s", v);
    return LDM_OK;
}

static ldm_status int_key(ldm_ini *ini, const char *s, const char *k, long lo, long hi, int *out) {
    long v = *out;
    LDM_TRY(ldm_ini_int(ini, s, k, lo, hi, &v));
    *out = (int)v;
    return LDM_OK;
}

static ldm_status float_key(ldm_ini *ini, const char *s, const char *k, double lo, double hi,
                            float *out) {
    double v = *out;
    LDM_TRY(ldm_ini_double(ini, s, k, lo, hi, &v));
    *out = (float)v;
    return LDM_OK;
}

/* A list into an int array of at most max entries; *n receives the count when present. */
static ldm_status list_key(ldm_ini *ini, const char *s, const char *k, long lo, long hi, int *out,
                           int max, int *n) {
    long v[16];
    int count = -1;
    LDM_TRY(ldm_ini_int_list(ini, s, k, lo, hi, v, max < 16 ? max : 16, &count));
    if (count < 0) return LDM_OK;
    for (int i = 0; i < count; i++)
        out[i] = (int)v[i];
    if (n) *n = count;
    return LDM_OK;
}

/* One of names[] (the enum value is its index). */
static ldm_status enum_key(ldm_ini *ini, const char *config, const char *s, const char *k,
                           const char *const *names, int n_names, int *out) {
    const char *v = NULL;
    LDM_TRY(ldm_ini_string(ini, s, k, &v));
    if (!v) return LDM_OK;
    for (int i = 0; i < n_names; i++)
        if (!strcmp(v, names[i])) return (*out = i), LDM_OK;
    char list[256] = "";
    for (int i = 0; i < n_names; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    return LDM_FAIL(LDM_ERR_FORMAT, "%s: [%s] %s = %s: one of %s", config, s, k, v, list);
}

static ldm_status read_model(ldm_ini *ini, const char *p, ldm_run_config *c) {
    ldm_unet_config *u = &c->unet;
    const int M = LDM_UNET_MAX_LEVELS;
    LDM_TRY(list_key(ini, "ldm", "down_channels", 1, 1 << 14, u->down_channels, M, &u->n_down));
    LDM_TRY(list_key(ini, "ldm", "mid_channels", 1, 1 << 14, u->mid_channels, M, &u->n_mid));
    LDM_TRY(list_key(ini, "ldm", "down_sample", 0, 1, u->down_sample, M, NULL));
    LDM_TRY(list_key(ini, "ldm", "attn_down", 0, 1, u->attn_down, M, NULL));
    LDM_TRY(int_key(ini, "ldm", "time_emb_dim", 2, 1 << 14, &u->time_emb_dim));
    LDM_TRY(int_key(ini, "ldm", "norm_channels", 1, 1 << 14, &u->norm_channels));
    LDM_TRY(int_key(ini, "ldm", "num_heads", 1, 1 << 10, &u->num_heads));
    LDM_TRY(int_key(ini, "ldm", "conv_out_channels", 1, 1 << 14, &u->conv_out_channels));
    LDM_TRY(int_key(ini, "ldm", "num_down_layers", 1, 64, &u->num_down_layers));
    LDM_TRY(int_key(ini, "ldm", "num_mid_layers", 1, 64, &u->num_mid_layers));
    LDM_TRY(int_key(ini, "ldm", "num_up_layers", 1, 64, &u->num_up_layers));
    ldm_autoencoder_config *a = &c->ae;
    int kind = (int)a->kind;
    static const char *const kinds[] = {"vqvae", "vae"};
    LDM_TRY(enum_key(ini, p, "autoencoder", "kind", kinds, 2, &kind));
    a->kind = (ldm_autoencoder_kind)kind;
    const int A = LDM_AE_MAX_LEVELS;
    LDM_TRY(int_key(ini, "autoencoder", "z_channels", 1, 1024, &a->z_channels));
    LDM_TRY(int_key(ini, "autoencoder", "codebook_size", 1, 1 << 24, &a->codebook_size));
    LDM_TRY(
        list_key(ini, "autoencoder", "down_channels", 1, 1 << 14, a->down_channels, A, &a->n_down));
    LDM_TRY(
        list_key(ini, "autoencoder", "mid_channels", 1, 1 << 14, a->mid_channels, A, &a->n_mid));
    LDM_TRY(list_key(ini, "autoencoder", "down_sample", 0, 1, a->down_sample, A, NULL));
    LDM_TRY(list_key(ini, "autoencoder", "attn_down", 0, 1, a->attn_down, A, NULL));
    LDM_TRY(int_key(ini, "autoencoder", "norm_channels", 1, 1 << 14, &a->norm_channels));
    LDM_TRY(int_key(ini, "autoencoder", "num_heads", 1, 1 << 10, &a->num_heads));
    LDM_TRY(int_key(ini, "autoencoder", "num_down_layers", 1, 64, &a->num_down_layers));
    LDM_TRY(int_key(ini, "autoencoder", "num_mid_layers", 1, 64, &a->num_mid_layers));
    LDM_TRY(int_key(ini, "autoencoder", "num_up_layers", 1, 64, &a->num_up_layers));
    static const char *const scalings[] = {"none", "global", "channel"};
    int scaling = (int)c->latent_scaling;
    LDM_TRY(enum_key(ini, p, "autoencoder", "latent_scaling", scalings, 3, &scaling));
    c->latent_scaling = (ldm_latent_scaling)scaling;
    LDM_TRY(int_key(ini, "autoencoder", "latent_patch", 1, 8, &c->latent_patch));
    const int lc = ldm_run_latent_channels(c);
    double mean[LDM_RUN_MAX_LATENT_CHANNELS], std[LDM_RUN_MAX_LATENT_CHANNELS];
    int n_mean = -1, n_std = -1;
    LDM_TRY(ldm_ini_double_list(ini, "autoencoder", "latent_mean", -1e30, 1e30, mean,
                                LDM_RUN_MAX_LATENT_CHANNELS, &n_mean));
    LDM_TRY(ldm_ini_double_list(ini, "autoencoder", "latent_std", 1e-30, 1e30, std,
                                LDM_RUN_MAX_LATENT_CHANNELS, &n_std));
    if (n_mean >= 0 || n_std >= 0) {
        if (c->latent_scaling == LDM_LATENT_NONE || n_mean != lc || n_std != lc)
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "%s: [autoencoder] latent_mean and latent_std go together, with "
                            "latent_scaling global or channel, one value per latent channel the "
                            "LDM sees (%d); given %d and %d",
                            p, lc, n_mean < 0 ? 0 : n_mean, n_std < 0 ? 0 : n_std);
        c->n_latent_stats = lc;
        for (int i = 0; i < lc; i++)
            c->latent_mean[i] = (float)mean[i], c->latent_std[i] = (float)std[i];
    }
    if (c->latent_scaling != LDM_LATENT_NONE && lc > LDM_RUN_MAX_LATENT_CHANNELS)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "%s: [autoencoder] latent_scaling works on at most %d latent channels, "
                        "the LDM sees %d (z_channels %d, latent_patch %d)",
                        p, LDM_RUN_MAX_LATENT_CHANNELS, lc, a->z_channels, c->latent_patch);
    return path_key(ini, p, "autoencoder", "checkpoint", c->ae_checkpoint);
}

static ldm_status read_text(ldm_ini *ini, const char *p, ldm_run_config *c) {
    int mode = (int)c->text;
    static const char *const modes[] = {"none", "clip_frozen", "clip_finetune", "clip_scratch"};
    LDM_TRY(enum_key(ini, p, "text", "encoder", modes, 4, &mode));
    c->text = (ldm_text_mode)mode;
    LDM_TRY(path_key(ini, p, "text", "clip_path", c->clip_path));
    LDM_TRY(path_key(ini, p, "text", "vocab", c->vocab));
    LDM_TRY(int_key(ini, "text", "width", 1, 1 << 14, &c->clip.hidden_size));
    LDM_TRY(int_key(ini, "text", "layers", 1, 128, &c->clip.num_layers));
    LDM_TRY(int_key(ini, "text", "heads", 1, 1 << 10, &c->clip.num_heads));
    LDM_TRY(int_key(ini, "text", "intermediate_size", 1, 1 << 16, &c->clip.intermediate_size));
    LDM_TRY(int_key(ini, "text", "context_length", 2, 1 << 12, &c->context_length));
    LDM_TRY(int_key(ini, "text", "clip_skip", 0, 127, &c->clip_skip));
    return float_key(ini, "text", "cond_drop_prob", 0.0, 1.0, &c->cond_drop_prob);
}

/* max_train_steps, or num_train_epochs when max_train_steps is absent. */
static ldm_status steps_or_epochs(ldm_ini *ini, const char *s, int *steps, int *epochs) {
    const char *given = NULL;
    LDM_TRY(ldm_ini_string(ini, s, "max_train_steps", &given));
    LDM_TRY(int_key(ini, s, "max_train_steps", 0, 1L << 30, steps));
    *epochs = 0;
    LDM_TRY(int_key(ini, s, "num_train_epochs", 0, 1 << 20, epochs));
    if (given) *epochs = 0;
    return LDM_OK;
}

static ldm_status read_training(ldm_ini *ini, const char *p, ldm_run_config *c) {
    const char *s = "autoencoder_train";
    LDM_TRY(int_key(ini, s, "train_batch_size", 1, 1 << 16, &c->ae_batch));
    LDM_TRY(float_key(ini, s, "learning_rate", 1e-12, 10.0, &c->ae_lr));
    LDM_TRY(steps_or_epochs(ini, s, &c->ae_steps, &c->ae_epochs));
    LDM_TRY(int_key(ini, s, "gradient_accumulation_steps", 1, 1 << 16, &c->ae_acc_steps));
    LDM_TRY(int_key(ini, s, "disc_start", 0, 1L << 30, &c->ae_disc_start));
    LDM_TRY(float_key(ini, s, "disc_weight", 0.0, 1e6, &c->ae_disc_weight));
    LDM_TRY(float_key(ini, s, "codebook_weight", 0.0, 1e6, &c->ae_codebook_weight));
    LDM_TRY(float_key(ini, s, "commitment_beta", 0.0, 1e6, &c->ae_commitment_beta));
    LDM_TRY(float_key(ini, s, "kl_weight", 0.0, 1e6, &c->ae_kl_weight));
    LDM_TRY(float_key(ini, s, "perceptual_weight", 0.0, 1e6, &c->ae_perceptual_weight));
    LDM_TRY(path_key(ini, p, s, "lpips_path", c->lpips_path));
    s = "train";
    LDM_TRY(path_key(ini, p, s, "output_dir", c->output_dir));
    long seed = (long)c->seed;
    LDM_TRY(ldm_ini_int(ini, s, "seed", 0, 0x7fffffffffffffffL, &seed));
    c->seed = (uint64_t)seed;
    LDM_TRY(int_key(ini, s, "train_batch_size", 1, 1 << 16, &c->batch));
    LDM_TRY(float_key(ini, s, "learning_rate", 1e-12, 10.0, &c->lr));
    int sched = (int)c->lr_schedule;
    static const char *const scheds[] = {"constant", "constant_with_warmup", "linear", "cosine"};
    LDM_TRY(enum_key(ini, p, s, "lr_scheduler", scheds, 4, &sched));
    c->lr_schedule = (ldm_lr_schedule)sched;
    LDM_TRY(int_key(ini, s, "lr_warmup_steps", 0, 1L << 30, &c->lr_warmup_steps));
    LDM_TRY(steps_or_epochs(ini, s, &c->max_steps, &c->epochs));
    LDM_TRY(int_key(ini, s, "gradient_accumulation_steps", 1, 1 << 16, &c->acc_steps));
    LDM_TRY(int_key(ini, s, "checkpointing_steps", 1, 1L << 30, &c->checkpointing_steps));
    LDM_TRY(int_key(ini, s, "checkpoints_total_limit", 1, 1 << 16, &c->checkpoints_limit));
    const char *resume = NULL;
    LDM_TRY(ldm_ini_string(ini, s, "resume_from_checkpoint", &resume));
    if (resume && strcmp(resume, "none") && strcmp(resume, "latest"))
        LDM_TRY(path_key(ini, p, s, "resume_from_checkpoint", c->resume));
    else if (resume && !strcmp(resume, "latest"))
        snprintf(c->resume, sizeof c->resume, "latest");
    LDM_TRY(ldm_ini_bool(ini, s, "use_ema", &c->use_ema));
    LDM_TRY(float_key(ini, s, "ema_decay", 0.0, 1.0, &c->ema_decay));
    LDM_TRY(float_key(ini, s, "max_grad_norm", 0.0, 1e9, &c->max_grad_norm));
    LDM_TRY(float_key(ini, s, "snr_gamma", 0.0, 1e6, &c->snr_gamma));
    LDM_TRY(float_key(ini, s, "noise_offset", 0.0, 10.0, &c->noise_offset));
    LDM_TRY(int_key(ini, s, "validation_steps", 0, 1L << 30, &c->validation_steps));
    LDM_TRY(
        float_key(ini, s, "validation_guidance_scale", 0.0, 100.0, &c->validation_guidance_scale));
    LDM_TRY(int_key(ini, s, "validation_sampling_steps", 1, 100000, &c->validation_sampling_steps));
    const char *prompts = NULL;
    LDM_TRY(ldm_ini_string(ini, s, "validation_prompts", &prompts));
    for (const char *q = prompts; q && *q;) {
        const char *bar = strstr(q, " | ");
        size_t n = bar ? (size_t)(bar - q) : strlen(q);
        if (c->n_validation_prompts == LDM_RUN_MAX_PROMPTS || n >= 256)
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "%s: [train] validation_prompts: at most %d prompts of 255 bytes", p,
                            LDM_RUN_MAX_PROMPTS);
        snprintf(c->validation_prompts[c->n_validation_prompts++], 256, "%.*s", (int)n, q);
        q = bar ? bar + 3 : q + n;
    }
    return LDM_OK;
}

#define BAD(...) LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, __VA_ARGS__)

/* The whole run must fit together: dataset and autoencoder, latents and UNet, text widths. */
static ldm_status check_run(ldm_run_config *c) {
    const char *p = c->path;
    if (c->channels != 1 && c->channels != 3)
        return BAD("%s: [dataset] channels = %d: 1 or 3", p, c->channels);
    c->ae.im_channels = c->channels; /* the autoencoder takes the dataset's images */
    ldm_status st = ldm_autoencoder_config_check(&c->ae);
    if (st != LDM_OK) {
        ldm_error_prefix("%s: [autoencoder]", p);
        return st;
    }
    int lat = c->resolution;
    for (int i = 0; i < c->ae.n_down - 1; i++)
        if (c->ae.down_sample[i]) {
            if (lat % 2)
                return BAD("%s: [dataset] resolution = %d cannot be halved by the autoencoder's "
                           "downsamplings",
                           p, c->resolution);
            lat /= 2;
        }
    if (lat % c->latent_patch)
        return BAD("%s: [autoencoder] latent_patch = %d does not divide the latents' size %d", p,
                   c->latent_patch, lat);
    c->unet.im_channels = ldm_run_latent_channels(c);
    c->unet.num_timesteps = c->num_timesteps;
    if (c->text == LDM_TEXT_CLIP_FROZEN || c->text == LDM_TEXT_CLIP_FINETUNE) {
        if (!c->clip_path[0])
            return BAD("%s: [text] encoder = clip_frozen/clip_finetune needs clip_path (a Hugging "
                       "Face CLIP folder with config.json, model.safetensors, vocab.json, "
                       "merges.txt)",
                       p);
        char cfg[LDM_RUN_PATH + 16];
        snprintf(cfg, sizeof cfg, "%s/config.json", c->clip_path);
        LDM_TRY(ldm_clip_text_config_read(cfg, &c->clip));
    } else if (c->text == LDM_TEXT_CLIP_SCRATCH) {
        if (!c->vocab[0])
            return BAD("%s: [text] encoder = clip_scratch needs vocab: OpenAI's "
                       "bpe_simple_vocab_16e6.txt.gz (tools/fetch_clip_vocab.sh puts it into "
                       "build/data/)",
                       p);
        st = ldm_clip_text_config_check(&c->clip);
        if (st != LDM_OK) {
            ldm_error_prefix("%s: [text]", p);
            return st;
        }
    }
    c->unet.text_embed_dim = c->text == LDM_TEXT_NONE ? 0 : c->clip.hidden_size;
    if (c->text != LDM_TEXT_NONE && c->context_length > c->clip.max_positions)
        return BAD("%s: [text] context_length = %d exceeds the encoder's %d positions", p,
                   c->context_length, c->clip.max_positions);
    st = ldm_unet_config_check(&c->unet);
    if (st != LDM_OK) {
        ldm_error_prefix("%s: [ldm]", p);
        return st;
    }
    for (int i = 0; i < c->unet.n_down - 1; i++)
        if (c->unet.down_sample[i]) {
            if (lat % 2)
                return BAD("%s: the %dx%d latents cannot be halved by the UNet's downsamplings "
                           "([ldm] down_sample)",
                           p, lat, lat);
            lat /= 2;
        }
    if (!(c->beta_start > 0 && c->beta_end > c->beta_start && c->beta_end < 1))
        return BAD("%s: [diffusion] beta_start %g and beta_end %g: 0 < start < end < 1", p,
                   c->beta_start, c->beta_end);
    return LDM_OK;
}

ldm_status ldm_run_config_read(const char *path, ldm_run_config *c) {
    ldm_run_config_init(c);
    if (strlen(path) >= sizeof c->path)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the config path '%.60s...' is %zu bytes, more than the %zu a path may "
                        "have",
                        path, strlen(path), sizeof c->path - 1);
    snprintf(c->path, sizeof c->path, "%s", path);
    ldm_ini *ini;
    LDM_TRY(ldm_ini_read(path, &ini));
    ldm_status st = path_key(ini, path, "dataset", "path", c->dataset_path);
    if (st == LDM_OK) st = int_key(ini, "dataset", "resolution", 1, 16384, &c->resolution);
    if (st == LDM_OK) st = int_key(ini, "dataset", "channels", 1, 3, &c->channels);
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
    if (st == LDM_OK) st = int_key(ini, "diffusion", "num_timesteps", 1, 100000, &c->num_timesteps);
    if (st == LDM_OK) st = ldm_ini_double(ini, "diffusion", "beta_start", 0, 1, &c->beta_start);
    if (st == LDM_OK) st = ldm_ini_double(ini, "diffusion", "beta_end", 0, 1, &c->beta_end);
    int sched = (int)c->beta_schedule, pred = (int)c->prediction_type;
    static const char *const scheds[] = {"linear", "scaled_linear", "cosine"};
    static const char *const preds[] = {"epsilon", "v_prediction"};
    if (st == LDM_OK) st = enum_key(ini, path, "diffusion", "beta_schedule", scheds, 3, &sched);
    if (st == LDM_OK) st = enum_key(ini, path, "diffusion", "prediction_type", preds, 2, &pred);
    c->beta_schedule = (ldm_schedule_kind)sched;
    c->prediction_type = (ldm_prediction)pred;
    if (st == LDM_OK) st = read_model(ini, path, c);
    if (st == LDM_OK) st = read_text(ini, path, c);
    if (st == LDM_OK) st = read_training(ini, path, c);
    if (st == LDM_OK) st = ldm_ini_check_unused(ini);
    ldm_ini_free(ini);
    if (st == LDM_OK) st = check_run(c);
    return st;
}

static int epoch_steps(int epochs, size_t images, int batch, int acc) {
    uint64_t per = (uint64_t)batch * (uint64_t)acc;
    uint64_t steps = ((uint64_t)epochs * images + per - 1) / per;
    return steps > (1u << 30) ? 1 << 30 : (int)steps;
}

void ldm_run_config_resolve_epochs(ldm_run_config *c, size_t images) {
    if (c->ae_epochs > 0)
        c->ae_steps = epoch_steps(c->ae_epochs, images, c->ae_batch, c->ae_acc_steps);
    if (c->epochs > 0) c->max_steps = epoch_steps(c->epochs, images, c->batch, c->acc_steps);
    c->ae_epochs = c->epochs = 0;
}

float ldm_run_lr_at(const ldm_run_config *c, int step) {
    float lr = c->lr;
    int warm = c->lr_schedule == LDM_LR_CONSTANT ? 0 : c->lr_warmup_steps;
    if (step < warm) return lr * (float)step / (float)warm; /* diffusers: 0 at step 0 */
    int total = c->max_steps > warm ? c->max_steps - warm : 1;
    double progress = (double)(step - warm) / (double)total;
    if (progress > 1) progress = 1;
    if (c->lr_schedule == LDM_LR_LINEAR) return lr * (float)(1.0 - progress);
    if (c->lr_schedule == LDM_LR_COSINE)
        return lr * (float)(0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
    return lr;
}

static void put_list(ldm_atomic_file *f, const char *key, const int *v, int n, int flags) {
    ldm_atomic_printf(f, "%s = [", key);
    for (int i = 0; i < n; i++) {
        if (i) ldm_atomic_printf(f, ", ");
        if (flags)
            ldm_atomic_printf(f, "%s", v[i] ? "True" : "False");
        else
            ldm_atomic_printf(f, "%d", v[i]);
    }
    ldm_atomic_printf(f, "]\n");
}

ldm_status ldm_run_config_write_model(const ldm_run_config *c, const char *path,
                                      const char *vocab) {
    ldm_atomic_file out;
    LDM_TRY(ldm_atomic_open(&out, path));
    ldm_atomic_file *f = &out;
    static const char *const scheds[] = {"linear", "scaled_linear", "cosine"};
    static const char *const modes[] = {"none", "clip_frozen", "clip_finetune", "clip_scratch"};
    const ldm_unet_config *u = &c->unet;
    const ldm_autoencoder_config *a = &c->ae;
    ldm_atomic_printf(f, "; model.ini: the model of a training run (written by ldmcl)\n");
    ldm_atomic_printf(f, "[dataset]\nresolution = %d\nchannels = %d\n", c->resolution, c->channels);
    ldm_atomic_printf(f, "[diffusion]\nnum_timesteps = %d\nbeta_start = %.17g\nbeta_end = %.17g\n",
                      c->num_timesteps, c->beta_start, c->beta_end);
    ldm_atomic_printf(f, "beta_schedule = %s\nprediction_type = %s\n", scheds[c->beta_schedule],
                      c->prediction_type == LDM_PREDICT_V ? "v_prediction" : "epsilon");
    ldm_atomic_printf(f, "[ldm]\n");
    put_list(f, "down_channels", u->down_channels, u->n_down, 0);
    put_list(f, "mid_channels", u->mid_channels, u->n_mid, 0);
    put_list(f, "down_sample", u->down_sample, u->n_down - 1, 1);
    put_list(f, "attn_down", u->attn_down, u->n_down - 1, 1);
    ldm_atomic_printf(
        f,
        "time_emb_dim = %d\nnorm_channels = %d\nnum_heads = %d\nconv_out_channels = %d\n"
        "num_down_layers = %d\nnum_mid_layers = %d\nnum_up_layers = %d\n",
        u->time_emb_dim, u->norm_channels, u->num_heads, u->conv_out_channels, u->num_down_layers,
        u->num_mid_layers, u->num_up_layers);
    ldm_atomic_printf(f, "[autoencoder]\nkind = %s\nz_channels = %d\ncodebook_size = %d\n",
                      a->kind == LDM_AE_VAE ? "vae" : "vqvae", a->z_channels, a->codebook_size);
    put_list(f, "down_channels", a->down_channels, a->n_down, 0);
    put_list(f, "mid_channels", a->mid_channels, a->n_mid, 0);
    put_list(f, "down_sample", a->down_sample, a->n_down - 1, 1);
    put_list(f, "attn_down", a->attn_down, a->n_down - 1, 1);
    ldm_atomic_printf(
        f,
        "norm_channels = %d\nnum_heads = %d\nnum_down_layers = %d\nnum_mid_layers = %d\n"
        "num_up_layers = %d\n",
        a->norm_channels, a->num_heads, a->num_down_layers, a->num_mid_layers, a->num_up_layers);
    if (c->latent_patch > 1) ldm_atomic_printf(f, "latent_patch = %d\n", c->latent_patch);
    if (c->latent_scaling != LDM_LATENT_NONE) {
        static const char *const scalings[] = {"none", "global", "channel"};
        ldm_atomic_printf(f, "latent_scaling = %s\n", scalings[c->latent_scaling]);
        for (int k = 0; k < 2 && c->n_latent_stats; k++) {
            const float *v = k ? c->latent_std : c->latent_mean;
            ldm_atomic_printf(f, "%s = [", k ? "latent_std" : "latent_mean");
            for (int i = 0; i < c->n_latent_stats; i++)
                ldm_atomic_printf(f, "%s%.9g", i ? ", " : "", (double)v[i]);
            ldm_atomic_printf(f, "]\n");
        }
    }
    ldm_atomic_printf(f, "[text]\nencoder = %s\n", modes[c->text]);
    if (c->text == LDM_TEXT_CLIP_FROZEN || c->text == LDM_TEXT_CLIP_FINETUNE)
        ldm_atomic_printf(f, "clip_path = %s\n", c->clip_path);
    if (c->text == LDM_TEXT_CLIP_SCRATCH)
        ldm_atomic_printf(
            f, "vocab = %s\nwidth = %d\nlayers = %d\nheads = %d\nintermediate_size = %d\n",
            vocab ? vocab : c->vocab, c->clip.hidden_size, c->clip.num_layers, c->clip.num_heads,
            c->clip.intermediate_size);
    if (c->text != LDM_TEXT_NONE)
        ldm_atomic_printf(f, "context_length = %d\nclip_skip = %d\n", c->context_length,
                          c->clip_skip);
    return ldm_atomic_commit(&out, 1);
}
