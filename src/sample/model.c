/* src/sample/model.c: a model's description (see ldmcl/model.h): its defaults, its model.ini
 * sections read and written, and the check that its parts fit together. */
#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "ini_keys.h"
#include "internal.h"
#include "ldmcl/model.h"

void ldm_model_config_init(ldm_model_config *m) {
    memset(m, 0, sizeof *m);
    m->resolution = 28;
    m->channels = 1;
    m->num_timesteps = 1000;
    m->beta_start = 0.0015;
    m->beta_end = 0.0195;
    m->beta_schedule = LDM_SCHEDULE_SCALED_LINEAR;
    m->prediction_type = LDM_PREDICT_EPSILON;
    m->unet = (ldm_unet_config){.down_channels = {128, 256, 256, 256},
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
    ldm_autoencoder_config_mnist(&m->ae, LDM_AE_VQVAE);
    m->latent_patch = 1;
    m->text = LDM_TEXT_CLIP_SCRATCH;
    m->clip = (ldm_clip_text_config){.vocab_size = 49408,
                                     .hidden_size = 128,
                                     .intermediate_size = 512,
                                     .num_layers = 2,
                                     .num_heads = 4,
                                     .max_positions = 77,
                                     .layer_norm_eps = 1e-5f,
                                     .act = LDM_CLIP_QUICK_GELU};
    m->context_length = 77;
}

static const char *const schedule_names[] = {"linear", "scaled_linear", "cosine"};
static const char *const prediction_names[] = {"epsilon", "v_prediction"};
static const char *const text_names[] = {"none", "clip_frozen", "clip_finetune", "clip_scratch"};
static const char *const scaling_names[] = {"none", "global", "channel"};

static ldm_status read_diffusion(ldm_ini *ini, const char *p, ldm_model_config *m) {
    LDM_TRY(ldm_ini_int_key(ini, "dataset", "resolution", 1, 16384, &m->resolution));
    LDM_TRY(ldm_ini_int_key(ini, "dataset", "channels", 1, 3, &m->channels));
    LDM_TRY(ldm_ini_int_key(ini, "diffusion", "num_timesteps", 1, 100000, &m->num_timesteps));
    LDM_TRY(ldm_ini_double(ini, "diffusion", "beta_start", 0, 1, &m->beta_start));
    LDM_TRY(ldm_ini_double(ini, "diffusion", "beta_end", 0, 1, &m->beta_end));
    int sched = (int)m->beta_schedule, pred = (int)m->prediction_type;
    LDM_TRY(ldm_ini_enum_key(ini, p, "diffusion", "beta_schedule", schedule_names, 3, &sched));
    LDM_TRY(ldm_ini_enum_key(ini, p, "diffusion", "prediction_type", prediction_names, 2, &pred));
    m->beta_schedule = (ldm_schedule_kind)sched;
    m->prediction_type = (ldm_prediction)pred;
    return LDM_OK;
}

static ldm_status read_unet(ldm_ini *ini, ldm_unet_config *u) {
    const int M = LDM_UNET_MAX_LEVELS;
    LDM_TRY(
        ldm_ini_list_key(ini, "ldm", "down_channels", 1, 1 << 14, u->down_channels, M, &u->n_down));
    LDM_TRY(
        ldm_ini_list_key(ini, "ldm", "mid_channels", 1, 1 << 14, u->mid_channels, M, &u->n_mid));
    LDM_TRY(ldm_ini_list_key(ini, "ldm", "down_sample", 0, 1, u->down_sample, M, NULL));
    LDM_TRY(ldm_ini_list_key(ini, "ldm", "attn_down", 0, 1, u->attn_down, M, NULL));
    ldm_ini_note_list(ini, "ldm", "down_sample", u->down_sample, u->n_down - 1); /* as it uses */
    ldm_ini_note_list(ini, "ldm", "attn_down", u->attn_down, u->n_down - 1);
    LDM_TRY(ldm_ini_int_key(ini, "ldm", "time_emb_dim", 2, 1 << 14, &u->time_emb_dim));
    LDM_TRY(ldm_ini_int_key(ini, "ldm", "norm_channels", 1, 1 << 14, &u->norm_channels));
    LDM_TRY(ldm_ini_int_key(ini, "ldm", "num_heads", 1, 1 << 10, &u->num_heads));
    LDM_TRY(ldm_ini_int_key(ini, "ldm", "conv_out_channels", 1, 1 << 14, &u->conv_out_channels));
    LDM_TRY(ldm_ini_int_key(ini, "ldm", "num_down_layers", 1, 64, &u->num_down_layers));
    LDM_TRY(ldm_ini_int_key(ini, "ldm", "num_mid_layers", 1, 64, &u->num_mid_layers));
    return ldm_ini_int_key(ini, "ldm", "num_up_layers", 1, 64, &u->num_up_layers);
}

/* The reference's image_condition_config: a segmentation mask of in channels (one-hot) at h x w,
 * turned into out channels by a 1x1 convolution and concatenated to the latents. */
static ldm_status read_image_condition(ldm_ini *ini, ldm_model_config *m) {
    ldm_unet_config *u = &m->unet;
    LDM_TRY(ldm_ini_int_key(ini, "ldm", "image_condition_input_channels", 0, 1024,
                            &u->image_cond_input_channels));
    LDM_TRY(ldm_ini_int_key(ini, "ldm", "image_condition_output_channels", 0, 1024,
                            &u->image_cond_output_channels));
    LDM_TRY(ldm_ini_int_key(ini, "ldm", "image_condition_h", 0, 16384, &m->image_cond_h));
    return ldm_ini_int_key(ini, "ldm", "image_condition_w", 0, 16384, &m->image_cond_w);
}

static ldm_status read_autoencoder(ldm_ini *ini, const char *p, ldm_model_config *m) {
    ldm_autoencoder_config *a = &m->ae;
    int kind = (int)a->kind;
    static const char *const kinds[] = {"vqvae", "vae"};
    LDM_TRY(ldm_ini_enum_key(ini, p, "autoencoder", "kind", kinds, 2, &kind));
    a->kind = (ldm_autoencoder_kind)kind;
    const int A = LDM_AE_MAX_LEVELS;
    const char *s = "autoencoder";
    LDM_TRY(ldm_ini_int_key(ini, s, "z_channels", 1, 1024, &a->z_channels));
    LDM_TRY(ldm_ini_int_key(ini, s, "codebook_size", 1, 1 << 24, &a->codebook_size));
    LDM_TRY(ldm_ini_list_key(ini, s, "down_channels", 1, 1 << 14, a->down_channels, A, &a->n_down));
    LDM_TRY(ldm_ini_list_key(ini, s, "mid_channels", 1, 1 << 14, a->mid_channels, A, &a->n_mid));
    LDM_TRY(ldm_ini_list_key(ini, s, "down_sample", 0, 1, a->down_sample, A, NULL));
    LDM_TRY(ldm_ini_list_key(ini, s, "attn_down", 0, 1, a->attn_down, A, NULL));
    ldm_ini_note_list(ini, s, "down_sample", a->down_sample, a->n_down - 1);
    ldm_ini_note_list(ini, s, "attn_down", a->attn_down, a->n_down - 1);
    LDM_TRY(ldm_ini_int_key(ini, s, "norm_channels", 1, 1 << 14, &a->norm_channels));
    LDM_TRY(ldm_ini_int_key(ini, s, "num_heads", 1, 1 << 10, &a->num_heads));
    LDM_TRY(ldm_ini_int_key(ini, s, "num_down_layers", 1, 64, &a->num_down_layers));
    LDM_TRY(ldm_ini_int_key(ini, s, "num_mid_layers", 1, 64, &a->num_mid_layers));
    LDM_TRY(ldm_ini_int_key(ini, s, "num_up_layers", 1, 64, &a->num_up_layers));
    int scaling = (int)m->latent_scaling;
    LDM_TRY(ldm_ini_enum_key(ini, p, s, "latent_scaling", scaling_names, 3, &scaling));
    m->latent_scaling = (ldm_latent_scaling)scaling;
    LDM_TRY(ldm_ini_int_key(ini, s, "latent_patch", 1, 8, &m->latent_patch));
    const int lc = ldm_model_latent_channels(m);
    double mean[LDM_MODEL_MAX_LATENT_CHANNELS], std[LDM_MODEL_MAX_LATENT_CHANNELS];
    int n_mean = -1, n_std = -1;
    LDM_TRY(ldm_ini_double_list(ini, s, "latent_mean", -1e30, 1e30, mean,
                                LDM_MODEL_MAX_LATENT_CHANNELS, &n_mean));
    LDM_TRY(ldm_ini_double_list(ini, s, "latent_std", 1e-30, 1e30, std,
                                LDM_MODEL_MAX_LATENT_CHANNELS, &n_std));
    if (n_mean >= 0 || n_std >= 0) {
        if (m->latent_scaling == LDM_LATENT_NONE || n_mean != lc || n_std != lc)
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "%s: [autoencoder] latent_mean and latent_std go together, with "
                            "latent_scaling global or channel, one value per latent channel the "
                            "LDM sees (%d); given %d and %d",
                            p, lc, n_mean < 0 ? 0 : n_mean, n_std < 0 ? 0 : n_std);
        m->n_latent_stats = lc;
        for (int i = 0; i < lc; i++)
            m->latent_mean[i] = (float)mean[i], m->latent_std[i] = (float)std[i];
    }
    if (m->latent_scaling != LDM_LATENT_NONE && lc > LDM_MODEL_MAX_LATENT_CHANNELS)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "%s: [autoencoder] latent_scaling works on at most %d latent channels, "
                        "the LDM sees %d (z_channels %d, latent_patch %d)",
                        p, LDM_MODEL_MAX_LATENT_CHANNELS, lc, a->z_channels, m->latent_patch);
    return LDM_OK;
}

static ldm_status read_text(ldm_ini *ini, const char *p, ldm_model_config *m) {
    int mode = (int)m->text;
    LDM_TRY(ldm_ini_enum_key(ini, p, "text", "encoder", text_names, 4, &mode));
    m->text = (ldm_text_mode)mode;
    LDM_TRY(ldm_ini_path_key(ini, p, "text", "clip_path", m->clip_path, sizeof m->clip_path));
    LDM_TRY(ldm_ini_path_key(ini, p, "text", "vocab", m->vocab, sizeof m->vocab));
    LDM_TRY(ldm_ini_int_key(ini, "text", "width", 1, 1 << 14, &m->clip.hidden_size));
    LDM_TRY(ldm_ini_int_key(ini, "text", "layers", 1, 128, &m->clip.num_layers));
    LDM_TRY(ldm_ini_int_key(ini, "text", "heads", 1, 1 << 10, &m->clip.num_heads));
    LDM_TRY(
        ldm_ini_int_key(ini, "text", "intermediate_size", 1, 1 << 16, &m->clip.intermediate_size));
    LDM_TRY(ldm_ini_int_key(ini, "text", "context_length", 2, 1 << 12, &m->context_length));
    return ldm_ini_int_key(ini, "text", "clip_skip", 0, 127, &m->clip_skip);
}

ldm_status ldm_model_config_read_ini(ldm_ini *ini, const char *path, ldm_model_config *m) {
    LDM_TRY(read_diffusion(ini, path, m));
    LDM_TRY(read_unet(ini, &m->unet));
    LDM_TRY(read_image_condition(ini, m));
    LDM_TRY(read_autoencoder(ini, path, m));
    return read_text(ini, path, m);
}

#define BAD(...) LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, __VA_ARGS__)

ldm_status ldm_model_config_check(ldm_model_config *m, const char *p) {
    if (m->channels != 1 && m->channels != 3)
        return BAD("%s: [dataset] channels = %d: 1 or 3", p, m->channels);
    m->ae.im_channels = m->channels; /* the autoencoder takes the dataset's images */
    ldm_status st = ldm_autoencoder_config_check(&m->ae);
    if (st != LDM_OK) {
        ldm_error_prefix("%s: [autoencoder]", p);
        return st;
    }
    int lat = m->resolution;
    for (int i = 0; i < m->ae.n_down - 1; i++)
        if (m->ae.down_sample[i]) {
            if (lat % 2)
                return BAD("%s: [dataset] resolution = %d cannot be halved by the autoencoder's "
                           "downsamplings",
                           p, m->resolution);
            lat /= 2;
        }
    if (lat % m->latent_patch)
        return BAD("%s: [autoencoder] latent_patch = %d does not divide the latents' size %d", p,
                   m->latent_patch, lat);
    m->unet.im_channels = ldm_model_latent_channels(m);
    m->unet.num_timesteps = m->num_timesteps;
    if (m->text == LDM_TEXT_CLIP_FROZEN || m->text == LDM_TEXT_CLIP_FINETUNE) {
        if (!m->clip_path[0])
            return BAD("%s: [text] encoder = clip_frozen/clip_finetune needs clip_path (a Hugging "
                       "Face CLIP folder with config.json, model.safetensors, vocab.json, "
                       "merges.txt)",
                       p);
        char cfg[LDM_MODEL_PATH + 16];
        snprintf(cfg, sizeof cfg, "%s/config.json", m->clip_path);
        LDM_TRY(ldm_clip_text_config_read(cfg, &m->clip));
    } else if (m->text == LDM_TEXT_CLIP_SCRATCH) {
        if (!m->vocab[0])
            return BAD("%s: [text] encoder = clip_scratch needs vocab: OpenAI's "
                       "bpe_simple_vocab_16e6.txt.gz (tools/fetch_clip_vocab.sh puts it into "
                       "build/data/)",
                       p);
        st = ldm_clip_text_config_check(&m->clip);
        if (st != LDM_OK) {
            ldm_error_prefix("%s: [text]", p);
            return st;
        }
    }
    m->unet.text_embed_dim = m->text == LDM_TEXT_NONE ? 0 : m->clip.hidden_size;
    if (m->text != LDM_TEXT_NONE && m->context_length > m->clip.max_positions)
        return BAD("%s: [text] context_length = %d exceeds the encoder's %d positions", p,
                   m->context_length, m->clip.max_positions);
    st = ldm_unet_config_check(&m->unet);
    if (st != LDM_OK) {
        ldm_error_prefix("%s: [ldm]", p);
        return st;
    }
    if (m->unet.image_cond_input_channels && (m->image_cond_h < 1 || m->image_cond_w < 1))
        return BAD("%s: [ldm] image_condition_input_channels = %d needs the mask's size, "
                   "image_condition_h and image_condition_w",
                   p, m->unet.image_cond_input_channels);
    for (int i = 0; i < m->unet.n_down - 1; i++)
        if (m->unet.down_sample[i]) {
            if (lat % 2)
                return BAD("%s: the %dx%d latents cannot be halved by the UNet's downsamplings "
                           "([ldm] down_sample)",
                           p, lat, lat);
            lat /= 2;
        }
    if (!(m->beta_start > 0 && m->beta_end > m->beta_start && m->beta_end < 1))
        return BAD("%s: [diffusion] beta_start %g and beta_end %g: 0 < start < end < 1", p,
                   m->beta_start, m->beta_end);
    return LDM_OK;
}

ldm_status ldm_model_config_read(const char *path, ldm_model_config *m) {
    ldm_model_config_init(m);
    ldm_ini *ini;
    LDM_TRY(ldm_ini_read(path, &ini));
    ldm_status st = ldm_model_config_read_ini(ini, path, m);
    if (st == LDM_OK) st = ldm_ini_check_unused(ini);
    ldm_ini_free(ini);
    if (st == LDM_OK) st = ldm_model_config_check(m, path);
    return st;
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

ldm_status ldm_model_config_write(const ldm_model_config *c, const char *path, const char *vocab) {
    ldm_atomic_file out;
    LDM_TRY(ldm_atomic_open(&out, path));
    ldm_atomic_file *f = &out;
    const ldm_unet_config *u = &c->unet;
    const ldm_autoencoder_config *a = &c->ae;
    ldm_atomic_printf(f, "; model.ini: the model of a training run (written by ldmcl)\n");
    ldm_atomic_printf(f, "[dataset]\nresolution = %d\nchannels = %d\n", c->resolution, c->channels);
    ldm_atomic_printf(f, "[diffusion]\nnum_timesteps = %d\nbeta_start = %.17g\nbeta_end = %.17g\n",
                      c->num_timesteps, c->beta_start, c->beta_end);
    ldm_atomic_printf(f, "beta_schedule = %s\nprediction_type = %s\n",
                      schedule_names[c->beta_schedule], prediction_names[c->prediction_type]);
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
    if (u->image_cond_input_channels)
        ldm_atomic_printf(f,
                          "image_condition_input_channels = %d\nimage_condition_output_channels = "
                          "%d\nimage_condition_h = %d\nimage_condition_w = %d\n",
                          u->image_cond_input_channels, u->image_cond_output_channels,
                          c->image_cond_h, c->image_cond_w);
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
        ldm_atomic_printf(f, "latent_scaling = %s\n", scaling_names[c->latent_scaling]);
        for (int k = 0; k < 2 && c->n_latent_stats; k++) {
            const float *v = k ? c->latent_std : c->latent_mean;
            ldm_atomic_printf(f, "%s = [", k ? "latent_std" : "latent_mean");
            for (int i = 0; i < c->n_latent_stats; i++)
                ldm_atomic_printf(f, "%s%.9g", i ? ", " : "", (double)v[i]);
            ldm_atomic_printf(f, "]\n");
        }
    }
    ldm_atomic_printf(f, "[text]\nencoder = %s\n", text_names[c->text]);
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
