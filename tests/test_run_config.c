/* tests/test_run_config.c: the training run's INI configuration: every section read over the
 * defaults, relative paths resolved against the config's folder, the model sizes derived (latent
 * channels, text width, a CLIP folder's config.json), the learning-rate schedules, and the errors
 * naming file, line and key: unknown keys, bad values, a text encoder without its files, sizes
 * that do not fit together. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ldmcl/run_config.h"
#include "test_util.h"

static char g_dir[4096];

static const char *write_config(const char *name, const char *text) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    test_write_file(path, text, strlen(text));
    return path;
}

static const char *g_full =
    "; the default demo, abridged\n"
    "[dataset]\npath = data/fashion\nresolution = 28\nchannels = 1\nrandom_flip = no\n"
    "[diffusion]\nnum_timesteps = 1000\nbeta_start = 0.0015\nbeta_end = 0.0195\n"
    "beta_schedule = scaled_linear\nprediction_type = v_prediction\n"
    "[ldm]\ndown_channels = [32, 64, 64]\nmid_channels = [64, 64]\ndown_sample = [False, False]\n"
    "attn_down = [False, True]\ntime_emb_dim = 64\nnorm_channels = 16\nnum_heads = 4\n"
    "conv_out_channels = 32\nnum_down_layers = 1\nnum_mid_layers = 1\nnum_up_layers = 1\n"
    "[autoencoder]\nkind = vqvae\nz_channels = 3\ncodebook_size = 20\n"
    "[text]\nencoder = clip_scratch\nvocab = ../vocab/bpe.txt.gz\nwidth = 64\nlayers = 2\n"
    "heads = 4\nintermediate_size = 128\ncontext_length = 16\ncond_drop_prob = 0.1\n"
    "[autoencoder_train]\ntrain_batch_size = 16\nmax_train_steps = 400\nperceptual_weight = 0\n"
    "disc_weight = 0\n"
    "[train]\noutput_dir = runs/demo\nseed = 42\ntrain_batch_size = 32\nlearning_rate = 2e-4\n"
    "lr_scheduler = cosine\nlr_warmup_steps = 10\nmax_train_steps = 110\n"
    "validation_prompts = a photo of a sneaker | a bag; small | an ankle boot\n"
    "use_ema = true\nsnr_gamma = 5\nnoise_offset = 0.05\n";

static void reads_a_whole_run(void **state) {
    (void)state;
    ldm_run_config c;
    assert_status(ldm_run_config_read(write_config("demo.ini", g_full), &c), LDM_OK);
    char want[4300];
    snprintf(want, sizeof want, "%s/data/fashion", g_dir);
    assert_string_equal(c.dataset_path, want);
    snprintf(want, sizeof want, "%s", g_dir); /* ../vocab of the config's folder, normalised */
    *strrchr(want, '/') = '\0';
    strcat(want, "/vocab/bpe.txt.gz");
    assert_string_equal(c.model.vocab, want);
    assert_int_equal(c.model.prediction_type, LDM_PREDICT_V);
    assert_int_equal(c.model.unet.n_down, 3);
    assert_int_equal(c.model.unet.im_channels, 3);     /* the autoencoder's z_channels */
    assert_int_equal(c.model.unet.text_embed_dim, 64); /* the text encoder's width */
    assert_int_equal(c.model.ae.codebook_size, 20);
    assert_int_equal(c.model.text, LDM_TEXT_CLIP_SCRATCH);
    assert_int_equal(c.model.context_length, 16);
    assert_int_equal(c.ldm_train.n_validation_prompts, 3);
    assert_string_equal(c.ldm_train.validation_prompts[1], "a bag; small");
    assert_true(c.ldm_train.use_ema && c.seed == 42 && c.ldm_train.batch == 32 &&
                c.ae_train.step.batch == 16);
    assert_true(c.ldm_train.snr_gamma == 5.0f && c.ldm_train.noise_offset == 0.05f);
    /* cosine with 10 warm-up steps over 110 */
    assert_true(ldm_run_lr_at(&c, 0) == 0.0f);
    assert_true(fabsf(ldm_run_lr_at(&c, 5) - 1e-4f) < 1e-9f);
    assert_true(fabsf(ldm_run_lr_at(&c, 10) - 2e-4f) < 1e-9f);
    assert_true(fabsf(ldm_run_lr_at(&c, 60) - 1e-4f) < 1e-9f);
    assert_true(ldm_run_lr_at(&c, 110) < 1e-12f);

    /* its model sections written as a model.ini read back the same */
    char model[4300];
    snprintf(model, sizeof model, "%s/model.ini", g_dir);
    assert_status(ldm_model_config_write(&c.model, model, "vocab.txt.gz"), LDM_OK);
    ldm_run_config m;
    assert_status(ldm_run_config_read(model, &m), LDM_OK);
    assert_memory_equal(&m.model.unet, &c.model.unet, sizeof m.model.unet);
    assert_memory_equal(&m.model.ae, &c.model.ae, sizeof m.model.ae);
    assert_memory_equal(&m.model.clip, &c.model.clip, sizeof m.model.clip);
    assert_true(m.model.prediction_type == c.model.prediction_type &&
                m.model.beta_end == c.model.beta_end &&
                m.model.context_length == c.model.context_length &&
                m.model.resolution == c.model.resolution);
    snprintf(want, sizeof want, "%s/vocab.txt.gz", g_dir);
    assert_string_equal(m.model.vocab, want);
    assert_int_equal(m.model.latent_scaling, LDM_LATENT_NONE);
    assert_int_equal(m.model.n_latent_stats, 0);

    /* latent scaling with the statistics training resolved: written and read back */
    c.model.latent_scaling = LDM_LATENT_CHANNEL;
    c.model.n_latent_stats = 3;
    float mean[3] = {-0.18494235f, 0.5f, 1e-7f}, std[3] = {0.3675335f, 0.17221402f, 1.0843543f};
    memcpy(c.model.latent_mean, mean, sizeof mean);
    memcpy(c.model.latent_std, std, sizeof std);
    assert_status(ldm_model_config_write(&c.model, model, "vocab.txt.gz"), LDM_OK);
    assert_status(ldm_run_config_read(model, &m), LDM_OK);
    assert_int_equal(m.model.latent_scaling, LDM_LATENT_CHANNEL);
    assert_int_equal(m.model.n_latent_stats, 3);
    assert_memory_equal(m.model.latent_mean, mean, sizeof mean); /* %.9g: every float exactly */
    assert_memory_equal(m.model.latent_std, std, sizeof std);

    /* defaults: the reference's mnist settings, text by a small CLIP from scratch */
    ldm_run_config d;
    ldm_run_config_init(&d);
    assert_int_equal(d.model.ae.codebook_size, 20);
    assert_int_equal(d.model.unet.down_channels[0], 128);
    assert_true(d.model.beta_start == 0.0015 && d.ldm_train.lr == 1e-5f);
}

/* A CLIP folder's config.json sizes the frozen encoder and the UNet's text width. */
static void clip_folder_sizes_the_text(void **state) {
    (void)state;
    char clip[4300];
    snprintf(clip, sizeof clip, "%s/clip", g_dir);
    mkdir(clip, 0700);
    write_config("clip/config.json",
                 "{\"text_config\": {\"hidden_size\": 96, \"num_hidden_layers\": "
                 "3, \"num_attention_heads\": 4}}");
    char text[8192];
    snprintf(text, sizeof text, "%s", g_full);
    char *t = strstr(text, "[text]");
    snprintf(t, sizeof text - (size_t)(t - text),
             "[text]\nencoder = clip_frozen\nclip_path = clip\n[train]\nmax_train_steps = 5\n");
    ldm_run_config c;
    assert_status(ldm_run_config_read(write_config("frozen.ini", text), &c), LDM_OK);
    assert_int_equal(c.model.clip.hidden_size, 96);
    assert_int_equal(c.model.unet.text_embed_dim, 96);
}

/* latent_patch against PyTorch's pixel_unshuffle (tests/ref/latents.safetensors), and its
 * inverse back: a permutation, so exactly. */
static void latent_patch_is_pixel_unshuffle(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/latents.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    int cases = 0;
    for (size_t i = 0; i < ldm_safetensors_count(st); i++) {
        const char *key = ldm_safetensors_at(st, i)->name;
        size_t len = strlen(key);
        if (len < 3 || strcmp(key + len - 3, ".in") != 0) continue;
        char base[128], out_key[160];
        snprintf(base, sizeof base, "%.*s", (int)(len - 3), key);
        snprintf(out_key, sizeof out_key, "%s.out", base);
        int ndim, shape[8], out_ndim, out_shape[8];
        float *z = test_st_load(st, key, &ndim, shape);
        float *want = test_st_load(st, out_key, &out_ndim, out_shape);
        assert_int_equal(ndim, 4);
        assert_int_equal(out_ndim, 4);
        int p = shape[2] / out_shape[2];
        assert_int_equal(out_shape[1], shape[1] * p * p);
        size_t n = (size_t)shape[0] * shape[1] * shape[2] * shape[3];
        float *got = malloc(n * sizeof *got), *back = malloc(n * sizeof *back);
        assert_non_null(got);
        assert_non_null(back);
        ldm_latents_patchify(z, got, (size_t)shape[0], shape[1], shape[2], shape[3], p, 0);
        assert_memory_equal(got, want, n * sizeof *got);
        ldm_latents_patchify(got, back, (size_t)shape[0], out_shape[1], out_shape[2], out_shape[3],
                             p, 1);
        assert_memory_equal(back, z, n * sizeof *z);
        free(z);
        free(want);
        free(got);
        free(back);
        cases++;
    }
    ldm_safetensors_close(st);
    assert_int_equal(cases, 3);
}

/* g_full with edit_from replaced by edit_to, written as bad.ini; returns its path. */
static const char *edited_config(const char *edit_from, const char *edit_to) {
    static char text[16384];
    const char *at = strstr(g_full, edit_from);
    assert_non_null(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - g_full), g_full, edit_to,
             at + strlen(edit_from));
    return write_config("bad.ini", text);
}

static void expect_error(const char *edit_from, const char *edit_to, ldm_status want,
                         const char *message) {
    const char *path = edited_config(edit_from, edit_to);
    ldm_run_config c;
    assert_status(ldm_run_config_read(path, &c), want);
    assert_contains(ldm_last_error(), message);
}

static void errors_name_file_line_and_key(void **state) {
    (void)state;
    expect_error("codebook_size = 20\n", "codebook_size = 20\nlatent_scaling = some\n",
                 LDM_ERR_FORMAT,
                 "[autoencoder] latent_scaling = some: one of none, global, channel");
    expect_error("codebook_size = 20\n",
                 "codebook_size = 20\nlatent_scaling = channel\nlatent_mean = [0, 1]\n"
                 "latent_std = [1, 1]\n",
                 LDM_ERR_FORMAT, "one value per latent channel the LDM sees (3); given 2 and 2");
    expect_error("codebook_size = 20\n", "codebook_size = 20\nlatent_patch = 2\n",
                 LDM_ERR_INVALID_ARGUMENT,
                 "[autoencoder] latent_patch = 2 does not divide the latents' size 7");
    expect_error("codebook_size = 20\n", "codebook_size = 20\nlatent_patch = 9\n", LDM_ERR_FORMAT,
                 "[autoencoder] latent_patch = 9: outside");
    expect_error("codebook_size = 20\n",
                 "codebook_size = 20\nlatent_patch = 7\nlatent_scaling = channel\n", LDM_ERR_FORMAT,
                 "at most 64 latent channels, the LDM sees 147 (z_channels 3, "
                 "latent_patch 7)");
    expect_error("codebook_size = 20\n",
                 "codebook_size = 20\nlatent_mean = [0, 1, 2]\nlatent_std = [1, 1, 1]\n",
                 LDM_ERR_FORMAT, "go together, with latent_scaling global or channel");
    expect_error("codebook_size = 20\n",
                 "codebook_size = 20\nlatent_scaling = global\nlatent_mean = [0, 1, 2]\n"
                 "latent_std = [1, 0, 1]\n",
                 LDM_ERR_FORMAT, "latent_std = [1, 0, 1]: item 2 outside");
    expect_error("seed = 42\n", "sed = 42\n", LDM_ERR_FORMAT, "unknown key (a typo?): ");
    expect_error("seed = 42\n", "sed = 42\n", LDM_ERR_FORMAT, "bad.ini:45 [train] sed");
    expect_error("beta_schedule = scaled_linear", "beta_schedule = squared", LDM_ERR_FORMAT,
                 "[diffusion] beta_schedule = squared: one of linear, scaled_linear, cosine");
    expect_error("learning_rate = 2e-4", "learning_rate = fast", LDM_ERR_FORMAT,
                 "bad.ini:47: [train] learning_rate = fast: not a finite number");
    expect_error("snr_gamma = 5", "snr_gamma = -1", LDM_ERR_FORMAT,
                 "[train] snr_gamma = -1: outside");
    expect_error("vocab = ../vocab/bpe.txt.gz\n", "", LDM_ERR_INVALID_ARGUMENT,
                 "[text] encoder = clip_scratch needs vocab: OpenAI's bpe_simple_vocab_16e6");
    expect_error("encoder = clip_scratch", "encoder = clip_frozen", LDM_ERR_INVALID_ARGUMENT,
                 "needs clip_path (a Hugging Face CLIP folder");
    expect_error("channels = 1", "channels = 2", LDM_ERR_INVALID_ARGUMENT,
                 "[dataset] channels = 2: 1 or 3");
    expect_error("resolution = 28", "resolution = 30", LDM_ERR_INVALID_ARGUMENT,
                 "[dataset] resolution = 30 cannot be halved by the autoencoder's downsamplings");
    expect_error("down_sample = [False, False]", "down_sample = [True, False]",
                 LDM_ERR_INVALID_ARGUMENT,
                 "the 7x7 latents cannot be halved by the UNet's downsamplings");
    expect_error("mid_channels = [64, 64]", "mid_channels = [64, 32]", LDM_ERR_INVALID_ARGUMENT,
                 "bad.ini: [ldm]: ");
    expect_error("mid_channels = [64, 64]", "mid_channels = [64, 32]", LDM_ERR_INVALID_ARGUMENT,
                 "UNet config: the last mid_channels (32) must equal");
    expect_error("context_length = 16", "context_length = 99", LDM_ERR_INVALID_ARGUMENT,
                 "[text] context_length = 99 exceeds the encoder's 77 positions");
    ldm_run_config c;
    assert_status(ldm_run_config_read("/no/such.ini", &c), LDM_ERR_NOT_FOUND);
}

/* num_train_epochs becomes steps once the dataset is counted; max_train_steps wins over it. */
static void epochs_become_steps(void **state) {
    (void)state;
    ldm_run_config c;
    const char *path = write_config(
        "epochs.ini", "[text]\nencoder = none\n[autoencoder_train]\nnum_train_epochs = 2\n"
                      "train_batch_size = 4\n"
                      "[train]\nnum_train_epochs = 3\n"
                      "train_batch_size = 4\n"
                      "gradient_accumulation_steps = 2\n");
    assert_status(ldm_run_config_read(path, &c), LDM_OK);
    assert_int_equal(c.ae_train.epochs, 2);
    assert_int_equal(c.ldm_train.epochs, 3);
    assert_int_equal(c.model.ae.im_channels, 1);
    ldm_run_config_resolve_epochs(&c, 10, 10);
    assert_int_equal(c.ae_train.steps, 5);      /* 2 * 10 / 4 */
    assert_int_equal(c.ldm_train.max_steps, 4); /* ceil(3 * 10 / 8) */
    assert_int_equal(c.ldm_train.epochs, 0);
    path = write_config(
        "both.ini", "[text]\nencoder = none\n[train]\nnum_train_epochs = 3\nmax_train_steps = 7\n");
    assert_status(ldm_run_config_read(path, &c), LDM_OK);
    assert_int_equal(c.ldm_train.epochs, 0);
    ldm_run_config_resolve_epochs(&c, 10, 10);
    assert_int_equal(c.ldm_train.max_steps, 7);
}

/* A path or caption extension too long for its field is an error naming file, line and key;
 * one that just fits is kept whole. They used to be cut silently. */
static void long_values_are_errors_not_cut(void **state) {
    (void)state;
    char edit[4200], abs_path[LDM_RUN_PATH];
    memset(abs_path, 'p', sizeof abs_path - 1); /* 4095 bytes: fits */
    abs_path[0] = '/';
    abs_path[sizeof abs_path - 1] = 0;
    snprintf(edit, sizeof edit, "path = %s\n", abs_path);
    ldm_run_config c;
    assert_status(ldm_run_config_read(edited_config("path = data/fashion\n", edit), &c), LDM_OK);
    assert_string_equal(c.dataset_path, abs_path);
    snprintf(edit, sizeof edit, "path = %sq\n", abs_path); /* 4096 bytes */
    expect_error("path = data/fashion\n", edit, LDM_ERR_FORMAT,
                 "bad.ini:3: [dataset] path: the path is 4096 bytes, more than the 4095 a path "
                 "may have");
    /* relative: the config's folder counts */
    snprintf(edit, sizeof edit, "vocab = %s\n", abs_path + 10);
    expect_error("vocab = ../vocab/bpe.txt.gz\n", edit, LDM_ERR_FORMAT,
                 "bad.ini:31: [text] vocab: the path is ");
    assert_contains(ldm_last_error(), " bytes with the config's folder before it, more than the "
                                      "4095 a path may have");

    const char *ext31 = ".012345678901234567890123456789"; /* 31 bytes: fits */
    snprintf(edit, sizeof edit, "random_flip = no\ncaption_extension = %s\n", ext31);
    assert_status(ldm_run_config_read(edited_config("random_flip = no\n", edit), &c), LDM_OK);
    assert_string_equal(c.caption_extension, ext31);
    snprintf(edit, sizeof edit, "random_flip = no\ncaption_extension = %s0\n", ext31);
    expect_error("random_flip = no\n", edit, LDM_ERR_FORMAT,
                 "bad.ini:7: [dataset] caption_extension = .0123456789012345678901234567890...: "
                 "32 bytes, more than the 31 allowed");

    char long_name[5001];
    memset(long_name, 'c', 5000);
    long_name[5000] = 0;
    assert_status(ldm_run_config_read(long_name, &c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "is 5000 bytes, more than the 4095 a path may have");
}

static int setup(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("runcfg");
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    free(dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    return 0;
}

/* The statistics of a latent cache under each scaling, normalising and undoing it. */
static void latent_statistics(void **state) {
    (void)state;
    /* 2 items x 2 channels x 3 values: channel 0 holds 1..6, channel 1 is 10 x (1, -1, ...) */
    float z[12] = {1, 2, 3, 10, -10, 10, 4, 5, 6, -10, 10, -10}, mean[3], std[3]; /* 3: below */
    assert_status(ldm_latent_stats(LDM_LATENT_CHANNEL, z, 2, 2, 3, mean, std), LDM_OK);
    assert_true(fabsf(mean[0] - 3.5f) < 1e-6f && fabsf(std[0] - sqrtf(35.0f / 12.0f)) < 1e-6f);
    assert_true(fabsf(mean[1]) < 1e-6f && fabsf(std[1] - 10.0f) < 1e-5f);
    float y[12];
    memcpy(y, z, sizeof z);
    ldm_latents_normalize(y, 2, 2, 3, mean, std, 0);
    assert_true(fabsf(y[0] - (1 - 3.5f) / std[0]) < 1e-6f && fabsf(y[3] - 1.0f) < 1e-6f);
    ldm_latents_normalize(y, 2, 2, 3, mean, std, 1);
    for (int i = 0; i < 12; i++)
        assert_true(fabsf(y[i] - z[i]) < 1e-5f);
    /* global: no shift, one standard deviation over all values (mean 1.75) */
    assert_status(ldm_latent_stats(LDM_LATENT_GLOBAL, z, 2, 2, 3, mean, std), LDM_OK);
    double m = 21.0 / 12.0, var = (91.0 + 600.0) / 12.0 - m * m;
    assert_true(mean[0] == 0.0f && mean[1] == 0.0f);
    assert_true(fabs(std[0] - sqrt(var)) < 1e-5 && std[1] == std[0]);
    /* none: the identity */
    assert_status(ldm_latent_stats(LDM_LATENT_NONE, z, 2, 2, 3, mean, std), LDM_OK);
    assert_true(mean[1] == 0.0f && std[1] == 1.0f);
    /* a constant channel cannot be scaled */
    float k[6] = {1, 2, 7, 3, 4, 7};
    assert_status(ldm_latent_stats(LDM_LATENT_CHANNEL, k, 2, 3, 1, mean, std),
                  LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "latent channel 2 is constant (7)");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_a_whole_run),
        cmocka_unit_test(latent_patch_is_pixel_unshuffle),
        cmocka_unit_test(clip_folder_sizes_the_text),
        cmocka_unit_test(errors_name_file_line_and_key),
        cmocka_unit_test(long_values_are_errors_not_cut),
        cmocka_unit_test(epochs_become_steps),
        cmocka_unit_test(latent_statistics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
