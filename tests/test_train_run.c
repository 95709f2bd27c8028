/* tests/test_train_run.c: ldmcl-train's run end to end on a tiny generated dataset (16x16 gray
 * images in two class folders with captions, one without captions, one corrupt PNG) and a tiny
 * config: both stages, checkpoints and their rotation, the model folder, validation grid and loss
 * plot; an interrupted run resumed gives the uninterrupted run's losses exactly; a second run
 * reuses the finished autoencoder and the latent cache, a changed dataset rebuilds the cache;
 * random_flip caches and uses the mirrored images' latents; the autoencoder stage resumes exactly;
 * truncated and mismatched checkpoints are errors naming the file or tensor and change nothing;
 * a non-finite loss stops the run and keeps the checkpoints; a tokenizer larger than the text
 * encoder is refused; the program's exit codes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
#include "test_util.h"

static char g_dir[1024];
static ldm_ctx *g_ctx;

/* A two-class dataset of 16x16 images: class "left" bright on the left, "right" on the right, with
 * noise. */
static void make_dataset(const char *root) {
    char path[4600];
    const char *classes[] = {"left", "right"};
    uint32_t rng = 12345;
    for (int c = 0; c < 2; c++) {
        snprintf(path, sizeof path, "%s/%s", root, classes[c]);
        assert_int_equal(mkdir(path, 0755), 0);
        for (int i = 0; i < 6; i++) {
            uint8_t px[256];
            for (int k = 0; k < 256; k++) {
                rng = rng * 1664525u + 1013904223u;
                int bright = (k % 16 < 8) == (c == 0);
                px[k] = (uint8_t)((bright ? 180 : 40) + (rng >> 26));
            }
            ldm_image img = {16, 16, 1, px};
            snprintf(path, sizeof path, "%s/%s/%d.png", root, classes[c], i);
            assert_status(ldm_png_write(path, &img, NULL), LDM_OK);
            if (c == 1 && i == 5) continue; /* no caption: warned, empty caption */
            snprintf(path, sizeof path, "%s/%s/%d.txt", root, classes[c], i);
            FILE *f = fopen(path, "w");
            assert_non_null(f);
            fprintf(f, "a %s thing\nsomething %s\n", classes[c], classes[c]);
            fclose(f);
        }
    }
    snprintf(path, sizeof path, "%s/left/corrupt.png", root);
    test_write_file(path, "\x89PNG\r\n\x1a\nnot really", 18);
    snprintf(path, sizeof path, "%s/left/corrupt.txt", root);
    test_write_file(path, "a left thing\n", 13);
}

/* Writes DIR/NAME.ini for output folder DIR/NAME; extra lines appended to [dataset],
 * [autoencoder] and [train]. */
static void write_config_with(const char *name, int time_emb_dim, const char *dataset_extra,
                              const char *ae_extra, const char *extra, char *ini) {
    sprintf(ini, "%s/%s.ini", g_dir, name);
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f,
            "[dataset]\npath = data\nresolution = 16\nchannels = 1\n%s"
            "[diffusion]\nnum_timesteps = 50\n"
            "[autoencoder]\n%sz_channels = 2\ncodebook_size = 8\ndown_channels = [4, 8]\n"
            "mid_channels = [8, 8]\ndown_sample = [True]\nattn_down = [False]\n"
            "norm_channels = 2\nnum_heads = 1\n"
            "[autoencoder_train]\ntrain_batch_size = 4\nmax_train_steps = 3\n"
            "perceptual_weight = 0\ndisc_start = 1\n"
            "[ldm]\ndown_channels = [8, 8]\nmid_channels = [8, 8]\ndown_sample = [False]\n"
            "attn_down = [True]\ntime_emb_dim = %d\nnorm_channels = 4\nnum_heads = 2\n"
            "conv_out_channels = 8\n"
            "[text]\nencoder = clip_scratch\nvocab = %s\nwidth = 8\nlayers = 1\nheads = 2\n"
            "intermediate_size = 16\ncontext_length = 8\n"
            "[train]\noutput_dir = %s\ntrain_batch_size = 4\nlearning_rate = 1e-3\n"
            "max_train_steps = 6\ncheckpointing_steps = 2\ncheckpoints_total_limit = 2\n"
            "use_ema = true\nvalidation_steps = 6\nvalidation_prompts = a left thing | right\n"
            "validation_sampling_steps = 2\n%s",
            dataset_extra, ae_extra, time_emb_dim, LDMCL_CLIP_BPE_DEFAULT, name, extra);
    fclose(f);
}

static void write_config(const char *name, int time_emb_dim, const char *extra, char *ini) {
    write_config_with(name, time_emb_dim, "", "", extra, ini);
}

/* A run from the config file; stop_after / ae_stop_after as in ldm_run_options. */
static ldm_status run_stopping(const char *ini, int resume, int stop_after, int ae_stop_after) {
    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    ldm_run_options o = {.stage = LDM_STAGE_ALL,
                         .resume = resume,
                         .stop_after = stop_after,
                         .ae_stop_after = ae_stop_after,
                         .log = test_capture_log};
    test_log_clear();
    return ldm_run_train(g_ctx, &c, &o);
}

static ldm_status run(const char *ini, int resume, int stop_after) {
    return run_stopping(ini, resume, stop_after, 0);
}

/* A whole text file as a string. */
static char *read_text(const char *path) {
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);
    char *text = malloc(len + 1);
    assert_non_null(text);
    memcpy(text, bytes, len);
    text[len] = '\0';
    free(bytes);
    return text;
}

/* The loss column of a run's train_log.csv, as text. */
static char *losses(const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/train_log.csv", g_dir, name);
    char *text = read_text(path);
    char *out = calloc(strlen(text) + 1, 1), *o = out;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *a = strchr(line, ','), *b = a ? strchr(a + 1, ',') : NULL;
        if (!b) continue;
        o += sprintf(o, "%.*s\n", (int)(b - line), line); /* step,loss */
    }
    free(text);
    return out;
}

static int exists(const char *name, const char *file) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, name, file);
    return test_file_exists(path);
}

static void full_run_and_exact_resume(void **state) {
    (void)state;
    char ini[4400];
    write_config("whole", 8, "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    const char *log = test_log_text();
    assert_contains(log, "13 images, 1 without captions");
    assert_contains(log, "no caption for");
    assert_contains(log, "right/5.txt");
    assert_contains(log, "corrupt.png' is not a readable PNG");
    assert_contains(log, "12 images encoded, 1 unreadable skipped");
    assert_true(exists("whole", "autoencoder.safetensors"));
    assert_true(exists("whole", "checkpoints/checkpoint-00000006.safetensors"));
    assert_true(exists("whole", "checkpoints/checkpoint-00000004.safetensors"));
    assert_false(exists("whole", "checkpoints/checkpoint-00000002.safetensors")); /* rotated */
    assert_true(exists("whole", "samples/step-00000006.png"));
    assert_true(exists("whole", "loss.png"));
    assert_true(exists("whole", "model/model.ini"));
    assert_true(exists("whole", "model/unet.safetensors"));
    assert_true(exists("whole", "model/text_encoder.safetensors"));
    char path[4400];
    snprintf(path, sizeof path, "%s/whole/checkpoints/latest", g_dir);
    char *latest = read_text(path);
    assert_contains(latest, "checkpoint-00000006.safetensors");
    free(latest);
    ldm_image img;
    snprintf(path, sizeof path, "%s/whole/samples/step-00000006.png", g_dir);
    assert_status(ldm_png_read(path, 1, NULL, &img), LDM_OK);
    assert_true(img.height == 16 && img.width == 32); /* one row, two prompts */
    ldm_image_free(&img);

    /* interrupted after 3 steps (last checkpoint: step 2), then resumed: the same losses */
    write_config("parted", 8, "", ini);
    assert_status(run(ini, 0, 3), LDM_OK);
    assert_contains(test_log_text(), "stopped after 3 steps");
    assert_false(exists("parted", "model/model.ini"));
    /* what a save killed in another process leaves: removed, and not counted as a checkpoint
     * (counted, step 9 would make the rotation remove step 4's) */
    char stale[4400];
    snprintf(stale, sizeof stale, "%s/parted/checkpoints/checkpoint-00000009.safetensors.tmp.1.0",
             g_dir);
    test_write_file(stale, "half", 4);
    /* and of every other file a run writes */
    const char *others[] = {"latents.safetensors.tmp.1.3", "train_log.csv.tmp.1.4",
                            "autoencoder-state.safetensors.tmp.1.5"};
    char other[3][4400];
    for (int i = 0; i < 3; i++) {
        snprintf(other[i], sizeof other[i], "%s/parted/%s", g_dir, others[i]);
        test_write_file(other[i], "half", 4);
    }
    assert_status(run(ini, 1, 0), LDM_OK);
    assert_false(test_file_exists(stale));
    for (int i = 0; i < 3; i++)
        assert_false(test_file_exists(other[i]));
    assert_contains(test_log_text(), "left by an interrupted save");
    assert_true(exists("parted", "checkpoints/checkpoint-00000004.safetensors"));
    assert_true(exists("parted", "checkpoints/checkpoint-00000006.safetensors"));
    assert_false(exists("parted", "checkpoints/checkpoint-00000002.safetensors"));
    log = test_log_text();
    assert_contains(log, "stage one skipped");
    assert_contains(log, "matches the autoencoder and the dataset");
    assert_contains(log, "resumed from");
    assert_contains(log, "checkpoint-00000002.safetensors at step 2");
    char *a = losses("whole"), *b = losses("parted");
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\n6,")); /* six steps, each once */
    assert_null(strstr(b, "\n7,"));
    free(a);
    free(b);
    /* killed after the last checkpoint, before its validation grid: the resumed run makes it */
    snprintf(path, sizeof path, "%s/parted/samples/step-00000006.png", g_dir);
    size_t grid_len;
    unsigned char *grid = test_read_file(path, &grid_len);
    assert_int_equal(remove(path), 0);
    assert_status(run(ini, 1, 0), LDM_OK);
    size_t again_len;
    unsigned char *again = test_read_file(path, &again_len);
    assert_true(grid_len == again_len && !memcmp(grid, again, grid_len));
    free(grid);
    free(again);

    /* the autoencoder stage stopped after 2 of its 3 steps (state saved at step 2; the
     * discriminator is on from step 2), then resumed: the same log and the same autoencoder,
     * byte for byte, and no state left behind */
    write_config("aeparted", 8, "", ini);
    assert_status(run_stopping(ini, 0, 0, 2), LDM_OK);
    assert_contains(test_log_text(), "autoencoder: stopped after 2 steps");
    assert_true(exists("aeparted", "autoencoder-state.safetensors"));
    /* one file holds both models' state, so they are replaced as one */
    assert_false(exists("aeparted", "discriminator-state.safetensors"));
    {
        char file[4400];
        snprintf(file, sizeof file, "%s/aeparted/autoencoder-state.safetensors", g_dir);
        ldm_safetensors *st;
        assert_status(ldm_safetensors_open(file, &st), LDM_OK);
        size_t disc = 0;
        for (size_t i = 0; i < ldm_safetensors_count(st); i++)
            disc += !strncmp(ldm_safetensors_at(st, i)->name, "discriminator_state.", 20);
        assert_true(disc > 0);
        assert_non_null(
            ldm_safetensors_metadata(st, "ldmcl.state.discriminator_state.optimizer_steps"));
        ldm_safetensors_close(st);
    }
    assert_false(exists("aeparted", "autoencoder.safetensors"));
    assert_false(exists("aeparted", "latents.safetensors"));
    assert_status(run_stopping(ini, 1, 1, 0), LDM_OK);
    assert_contains(test_log_text(), "autoencoder: resumed from");
    assert_contains(test_log_text(), "autoencoder-state.safetensors at step 2");
    assert_false(exists("aeparted", "autoencoder-state.safetensors"));
    const char *same[] = {"autoencoder_log.csv", "autoencoder.safetensors",
                          "discriminator.safetensors"};
    for (int i = 0; i < 3; i++) {
        char pa[4400], pb[4400];
        snprintf(pa, sizeof pa, "%s/whole/%s", g_dir, same[i]);
        snprintf(pb, sizeof pb, "%s/aeparted/%s", g_dir, same[i]);
        size_t la, lb;
        unsigned char *x = test_read_file(pa, &la), *y = test_read_file(pb, &lb);
        if (la != lb || memcmp(x, y, la)) fail_msg("%s differs after resuming", same[i]);
        free(x);
        free(y);
    }
    /* a state left by a process killed after the stage's last save: removed, saying so */
    char leftover[4400];
    snprintf(leftover, sizeof leftover, "%s/aeparted/autoencoder-state.safetensors", g_dir);
    test_write_file(leftover, "left", 4);
    assert_status(run_stopping(ini, 1, 1, 0), LDM_OK);
    assert_contains(test_log_text(), "the stage it belongs to is finished");
    assert_false(test_file_exists(leftover));
}

/* random_flip: the cache also holds the mirrored images' latents (each equal to encoding the
 * mirrored image), and the LDM stage draws them: with the same autoencoder (a KL one, whose
 * latents follow the image even after 3 steps), seed and captions the losses differ from the
 * unflipped run's. */
static void random_flip_uses_mirrored_latents(void **state) {
    (void)state;
    char ini[4400], path[4400];
    write_config_with("vae", 8, "", "kind = vae\n", "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    const char *ae = "kind = vae\ncheckpoint = vae/autoencoder.safetensors\n";
    write_config_with("flip", 8, "random_flip = true\n", ae, "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    char *a = losses("vae"), *b = losses("flip");
    assert_string_not_equal(a, b);
    free(a);
    free(b);

    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    snprintf(path, sizeof path, "%s/flip/latents.safetensors", g_dir);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    const ldm_st_tensor *l = ldm_safetensors_find(st, "latents"),
                        *f = ldm_safetensors_find(st, "latents_flipped"),
                        *ix = ldm_safetensors_find(st, "indices");
    assert_true(l && f && ix && f->ndim == 4 &&
                !memcmp(f->shape, l->shape, 4 * sizeof l->shape[0]));
    size_t n = (size_t)l->shape[0], lat = (size_t)(l->shape[1] * l->shape[2] * l->shape[3]);
    float *plain = malloc(n * lat * sizeof *plain), *mirrored = malloc(n * lat * sizeof *mirrored),
          *idx = malloc(n * sizeof *idx), *image = malloc(256 * sizeof *image), one[256];
    assert_true(lat <= 256);
    assert_status(ldm_safetensors_read_f32(st, l, plain), LDM_OK);
    assert_status(ldm_safetensors_read_f32(st, f, mirrored), LDM_OK);
    assert_status(ldm_safetensors_read_f32(st, ix, idx), LDM_OK);
    ldm_safetensors_close(st);
    snprintf(path, sizeof path, "%s/data", g_dir);
    ldm_dataset_options dopt = {.size = 16, .channels = 1};
    ldm_dataset *d;
    assert_status(ldm_dataset_open(path, &dopt, &d), LDM_OK);
    ldm_ae_codec *k;
    assert_status(ldm_ae_codec_create(g_ctx, &c.model.ae, 1, 16, 16, 0, 0, &k), LDM_OK);
    snprintf(path, sizeof path, "%s/vae/autoencoder.safetensors", g_dir);
    assert_status(ldm_ae_codec_load(k, path), LDM_OK);
    for (size_t i = 0; i < n; i += n - 1) { /* the first and the last */
        assert_status(ldm_dataset_image(d, (size_t)idx[i], 1, image), LDM_OK);
        assert_status(ldm_ae_codec_encode(k, image, one, NULL), LDM_OK);
        double diff = 0, apart = 0;
        for (size_t q = 0; q < lat; q++) {
            diff = fmax(diff, fabs(one[q] - mirrored[i * lat + q]));
            apart = fmax(apart, fabs(plain[i * lat + q] - mirrored[i * lat + q]));
        }
        assert_true(diff < 1e-4);
        assert_true(apart > 1e-2); /* the images are not symmetric */
    }
    ldm_ae_codec_destroy(k);
    ldm_dataset_destroy(d);
    free(plain);
    free(mirrored);
    free(idx);
    free(image);

    /* the same run without random_flip: the cache is stale */
    write_config_with("flip", 8, "", ae, "", ini);
    assert_status(run(ini, 0, 1), LDM_OK);
    assert_contains(test_log_text(), "is stale");
}

/* The model folder of run `name` has the per-channel mean and standard deviation of its cache
 * latents.safetensors [n, z, h, w] as the LDM sees it: with latent_patch p, channel
 * c p^2 + i p + j holds the latents at (y p + i, x p + j) of channel c. */
static void check_latent_stats(const char *name, int p) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/latents.safetensors", g_dir, name);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    const ldm_st_tensor *l = ldm_safetensors_find(st, "latents");
    assert_true(l && l->ndim == 4 && l->shape[1] == 2 && l->shape[2] % p == 0);
    size_t n = (size_t)l->shape[0];
    int h = (int)l->shape[2], w = (int)l->shape[3];
    float *z = malloc(n * 2 * (size_t)(h * w) * sizeof *z);
    assert_status(ldm_safetensors_read_f32(st, l, z), LDM_OK);
    ldm_safetensors_close(st);
    ldm_run_config m;
    snprintf(path, sizeof path, "%s/%s/model/model.ini", g_dir, name);
    assert_status(ldm_run_config_read(path, &m), LDM_OK);
    assert_int_equal(m.model.latent_scaling, LDM_LATENT_CHANNEL);
    assert_int_equal(m.model.latent_patch, p);
    assert_int_equal(m.model.n_latent_stats, 2 * p * p);
    assert_int_equal(m.model.unet.im_channels, 2 * p * p);
    for (int k = 0; k < 2 * p * p; k++) {
        int c = k / (p * p), i = k / p % p, j = k % p;
        double sum = 0, sq = 0, count = 0;
        for (size_t b = 0; b < n; b++)
            for (int y = i; y < h; y += p)
                for (int x = j; x < w; x += p) {
                    double v = z[((b * 2 + (size_t)c) * (size_t)h + (size_t)y) * (size_t)w + x];
                    sum += v;
                    sq += v * v;
                    count++;
                }
        double mean = sum / count, sd = sqrt(sq / count - mean * mean);
        assert_true(fabs(m.model.latent_mean[k] - mean) <= 1e-5 * fmax(1.0, fabs(mean)));
        assert_true(fabs(m.model.latent_std[k] - sd) <= 1e-5 * sd);
        assert_true(sd > 1e-3); /* a KL autoencoder's latents vary */
    }
    free(z);
}

/* latent_scaling = channel: the LDM trains on the cache standardised per channel (other losses
 * than without), and the model folder's model.ini carries the cache's mean and standard
 * deviation per channel, computed here from latents.safetensors. With latent_patch = 2 the LDM
 * sees each 2x2 patch of the 8x8x2 latents as channels (4x4x8: its own losses, eight channel
 * statistics), its validation grid is decoded, and its model folder samples. */
static void latent_scaling_standardises_the_cache(void **state) {
    (void)state;
    char ini[4400];
    write_config_with("vae2", 8, "", "kind = vae\n", "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    write_config_with("scaled", 8, "",
                      "kind = vae\ncheckpoint = vae2/autoencoder.safetensors\n"
                      "latent_scaling = channel\n",
                      "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    assert_contains(test_log_text(), "latent_scaling = channel: the latents are normalised");
    char *a = losses("vae2"), *b = losses("scaled");
    assert_string_not_equal(a, b);
    check_latent_stats("scaled", 1);

    write_config_with("patched", 8, "",
                      "kind = vae\ncheckpoint = vae2/autoencoder.safetensors\n"
                      "latent_scaling = channel\nlatent_patch = 2\n",
                      "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    assert_true(exists("patched", "samples/step-00000006.png"));
    char *c = losses("patched");
    assert_string_not_equal(b, c);
    check_latent_stats("patched", 2);
    free(a);
    free(b);
    free(c);

    char dir[4400];
    snprintf(dir, sizeof dir, "%s/patched/model", g_dir);
    ldm_pipeline_options o = {
        .method = LDM_SAMPLER_DDIM, .steps = 2, .guidance_scale = 2.0f, .batch = 1};
    ldm_pipeline *p;
    assert_status(ldm_pipeline_open(g_ctx, dir, &o, &p), LDM_OK);
    float img[16 * 16];
    assert_status(ldm_pipeline_generate(p, "right", NULL, 3, img), LDM_OK);
    for (int k = 0; k < 16 * 16; k++)
        assert_true(isfinite(img[k]));
    ldm_pipeline_destroy(p);
}

/* Replaces the text file's first stretch from `from` up to (not including) `until` by `to`. */
static void edit_file(const char *path, const char *from, const char *until, const char *to) {
    char *text = read_text(path);
    char *at = strstr(text, from), *end = at ? strstr(at, until) : NULL;
    assert_non_null(end);
    size_t len = (size_t)(at - text) + strlen(to) + strlen(end);
    char *out = malloc(len + 1);
    assert_non_null(out);
    snprintf(out, len + 1, "%.*s%s%s", (int)(at - text), text, to, end);
    test_write_file(path, out, len);
    free(text);
    free(out);
}

/* The validation grid of run NAME's last step is what ldmcl-sample's pipeline makes from the
 * model folder (the same weights: no EMA) with the validation's prompts, seed and settings:
 * validation runs that pipeline, bound to the trainer's weights. */
static void grid_is_the_model_folders(const char *name, const char *ini) {
    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    char dir[4400], path[4400];
    snprintf(dir, sizeof dir, "%s/%s/model", g_dir, name);
    ldm_pipeline_options o = {.method = LDM_SAMPLER_DDIM,
                              .steps = c.ldm_train.validation_sampling_steps,
                              .guidance_scale = c.ldm_train.validation_guidance_scale,
                              .batch = 2};
    ldm_pipeline *p;
    assert_status(ldm_pipeline_open(g_ctx, dir, &o, &p), LDM_OK);
    const char *prompts[2] = {"a left thing", "right"};
    float img[2 * 16 * 16], grid[16 * 32];
    assert_status(ldm_pipeline_generate_each(p, prompts, "", c.seed, img), LDM_OK);
    ldm_pipeline_destroy(p);
    for (int y = 0; y < 16; y++)
        for (int i = 0; i < 2; i++)
            memcpy(grid + y * 32 + i * 16, img + i * 256 + y * 16, 16 * sizeof *grid);
    ldm_image want, got;
    assert_status(ldm_image_from_tensor(grid, 1, 16, 32, &want), LDM_OK);
    snprintf(path, sizeof path, "%s/%s/samples/step-00000006.png", g_dir, name);
    assert_status(ldm_png_read(path, 1, NULL, &got), LDM_OK);
    assert_true(got.width == 32 && got.height == 16);
    assert_memory_equal(got.pixels, want.pixels, 16 * 32);
    ldm_image_free(&want);
    ldm_image_free(&got);
}

/* Validation grids come from the pipeline ldmcl-sample runs, on the trainer's weights: with a
 * text encoder trained in the step (clip_scratch) and with a frozen pretrained one (clip_frozen,
 * the reference model's CLIP folder), whose weights the grid shares with the trainer's frozen
 * encoder instead of reading them again. */
static void validation_grids_are_the_pipelines(void **state) {
    (void)state;
    char ini[4400];
    write_config("grid_scratch", 8, "", ini);
    edit_file(ini, "use_ema = true", "\n", "use_ema = false");
    assert_status(run(ini, 0, 0), LDM_OK);
    grid_is_the_model_folders("grid_scratch", ini);

    write_config("grid_frozen", 8, "", ini);
    edit_file(ini, "use_ema = true", "\n", "use_ema = false");
    char text[4400];
    snprintf(text, sizeof text,
             "[text]\nencoder = clip_frozen\nclip_path = %s/reference_model/clip\n",
             LDMCL_TEST_REF_DIR);
    edit_file(ini, "[text]", "[train]", text);
    assert_status(run(ini, 0, 0), LDM_OK);
    grid_is_the_model_folders("grid_frozen", ini);
}

static void stale_cache_and_bad_checkpoints(void **state) {
    (void)state;
    char ini[4400], path[4400];
    write_config("whole", 8, "", ini); /* the run the first test made */
    /* a changed dataset file: the cache is rebuilt, the autoencoder kept */
    snprintf(path, sizeof path, "%s/data/right/0.png", g_dir);
    uint8_t px[256];
    memset(px, 200, sizeof px);
    ldm_image img = {16, 16, 1, px};
    sleep(1); /* a different modification time even on coarse file systems */
    assert_status(ldm_png_write(path, &img, NULL), LDM_OK);
    assert_status(run(ini, 0, 1), LDM_OK);
    assert_contains(test_log_text(), "stage one skipped");
    assert_contains(test_log_text(), "is stale");
    /* the same dataset folder by another path: the cache is kept */
    char *text = read_text(ini);
    char *at = strstr(text, "path = data\n");
    assert_non_null(at);
    char moved[8192];
    snprintf(moved, sizeof moved, "%.*spath = ./data/.\n%s", (int)(at - text), text,
             at + strlen("path = data\n"));
    test_write_file(ini, moved, strlen(moved));
    free(text);
    assert_status(run(ini, 0, 1), LDM_OK);
    assert_contains(test_log_text(), "matches the autoencoder and the dataset");
    /* a damaged cache (cut short) is made again, saying why */
    snprintf(path, sizeof path, "%s/whole/latents.safetensors", g_dir);
    size_t cache_len;
    unsigned char *cache = test_read_file(path, &cache_len);
    test_write_file(path, cache, cache_len - 1);
    free(cache);
    assert_status(run(ini, 0, 1), LDM_OK);
    assert_contains(test_log_text(), "latents.safetensors is damaged");
    assert_contains(test_log_text(), "12 images encoded");

    /* a truncated latest checkpoint: --resume falls back to the newest intact one (step 4),
     * saying so, and goes on to the end; a damaged `latest` pointer too; with every checkpoint
     * damaged, an error naming them that changes nothing */
    snprintf(path, sizeof path, "%s/whole/checkpoints/checkpoint-00000006.safetensors", g_dir);
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);
    test_write_file(path, bytes, len / 2);
    free(bytes);
    assert_status(run(ini, 1, 0), LDM_OK);
    const char *log = test_log_text();
    assert_contains(log, "checkpoint-00000006.safetensors is damaged, not used");
    assert_contains(log, "resumed from the newest intact checkpoint");
    assert_contains(log, "checkpoint-00000004.safetensors at step 4");
    assert_true(exists("whole", "model/model.ini"));
    char latest[4400];
    snprintf(latest, sizeof latest, "%s/whole/checkpoints/latest", g_dir);
    test_write_file(latest, "../../somewhere\n", 16);
    assert_status(run(ini, 1, 0), LDM_OK);
    assert_contains(test_log_text(), "does not name a checkpoint: using the newest intact one");
    assert_contains(test_log_text(), "checkpoint-00000006.safetensors at step 6");
    char four[4400];
    snprintf(four, sizeof four, "%s/whole/checkpoints/checkpoint-00000004.safetensors", g_dir);
    unsigned char *six = test_read_file(path, &len);
    size_t len4;
    unsigned char *keep4 = test_read_file(four, &len4);
    test_write_file(path, six, 40);
    test_write_file(four, keep4, 40);
    assert_int_equal(run(ini, 1, 0), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "no intact checkpoint to resume from");
    assert_contains(ldm_last_error(), "checkpoint-00000004.safetensors is damaged");
    size_t now;
    free(test_read_file(path, &now));
    assert_int_equal(now, 40); /* nothing was written over */
    test_write_file(path, six, len);
    test_write_file(four, keep4, len4);
    free(six);
    free(keep4);

    /* a checkpoint of another UNet (time_emb_dim 16): an error naming a tensor */
    char other[4500];
    snprintf(other, sizeof other, "resume_from_checkpoint = %s\n", path);
    write_config("other", 16, other, ini);
    assert_int_not_equal(run(ini, 0, 0), LDM_OK);
    assert_contains(ldm_last_error(), "checkpoint-00000006.safetensors");
    assert_contains(ldm_last_error(), "t_proj.0.weight");
    assert_false(exists("other", "checkpoints/latest"));
}

/* A latent cache whose values are NaN (as a diverged autoencoder would give; the checksum made
 * to match): the loss of the first step after the resume is not finite; the run stops naming the
 * step and writes no checkpoint. A cache that fails its checksum is rebuilt. */
/* Overwrites the bytes of a tensor of a safetensors file (all of them with fill when bytes_in is
 * NULL, else n bytes from its start) and puts the file's SHA-256 right, as a file written so
 * would have it. */
static void patch_tensor(const char *path, const char *name, const void *bytes_in, size_t n,
                         int fill, uint64_t *header_out, uint64_t *begin_out) {
    /* (header_out, begin_out: where the tensor's bytes start, 8 + header + begin) */
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    const ldm_st_tensor *t = ldm_safetensors_find(st, name);
    assert_non_null(t);
    uint64_t begin = t->begin, end = t->end;
    ldm_safetensors_close(st);
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--)
        header = header << 8 | bytes[i];
    assert_true(8 + header + end <= len && (bytes_in ? n <= end - begin : 1));
    if (bytes_in)
        memcpy(bytes + 8 + header + begin, bytes_in, n);
    else
        memset(bytes + 8 + header + begin, fill, end - begin);
    ldm_sha256 sha;
    unsigned char digest[32];
    char hex[65];
    ldm_sha256_init(&sha);
    ldm_sha256_update(&sha, bytes + 8 + header, len - 8 - header);
    ldm_sha256_final(&sha, digest);
    ldm_sha256_hex(digest, hex);
    char *sum = strstr((char *)bytes + 8, "\"ldmcl.sha256\":\"");
    assert_non_null(sum);
    memcpy(sum + strlen("\"ldmcl.sha256\":\""), hex, 64);
    test_write_file(path, bytes, len);
    free(bytes);
    if (header_out) *header_out = header;
    if (begin_out) *begin_out = begin;
}

static void non_finite_loss_stops_the_run(void **state) {
    (void)state;
    char ini[4400], path[4400];
    write_config("nan", 8, "", ini);
    assert_status(run(ini, 0, 2), LDM_OK);
    snprintf(path, sizeof path, "%s/nan/latents.safetensors", g_dir);
    /* an index beyond the dataset (a cache of another dataset with a forged fingerprint): an
     * error naming it, not a read beyond the captions */
    float beyond = 99.0f;
    unsigned char idx0[4];
    {
        ldm_safetensors *st;
        assert_status(ldm_safetensors_open(path, &st), LDM_OK);
        float first[64];
        const ldm_st_tensor *t = ldm_safetensors_find(st, "indices");
        assert_true(t && t->numel <= 64);
        assert_status(ldm_safetensors_read_f32(st, t, first), LDM_OK);
        memcpy(idx0, &first[0], 4);
        ldm_safetensors_close(st);
    }
    patch_tensor(path, "indices", &beyond, 4, 0, NULL, NULL);
    assert_int_equal(run(ini, 1, 0), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "indices[0] = 99 is not an item of the dataset (13 items)");
    patch_tensor(path, "indices", idx0, 4, 0, NULL, NULL);
    uint64_t header, begin;
    patch_tensor(path, "latents", NULL, 0, 0xff, &header, &begin); /* NaN */
    assert_int_not_equal(run(ini, 1, 0), LDM_OK);
    assert_contains(ldm_last_error(), "not finite at step 3");
    snprintf(path, sizeof path, "%s/nan/checkpoints/latest", g_dir);
    char *latest = read_text(path);
    assert_contains(latest, "checkpoint-00000002.safetensors");
    free(latest);
    assert_true(exists("nan", "checkpoints/checkpoint-00000002.safetensors"));
    assert_false(exists("nan", "checkpoints/checkpoint-00000004.safetensors"));
    assert_false(exists("nan", "model/model.ini"));

    /* the NaN cache with one more bit flipped: its checksum fails, it is rebuilt from the
     * autoencoder and the run goes on */
    snprintf(path, sizeof path, "%s/nan/latents.safetensors", g_dir);
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);
    bytes[8 + header + begin] ^= 0x01;
    test_write_file(path, bytes, len);
    free(bytes);
    assert_status(run(ini, 1, 2), LDM_OK);
    assert_contains(test_log_text(), "latents.safetensors is damaged (");
    assert_contains(test_log_text(), "the tensor data do not match its SHA-256");
    assert_true(exists("nan", "checkpoints/checkpoint-00000004.safetensors"));
}

/* Every file the run needs is checked before the first step: a missing vocabulary or a damaged
 * autoencoder checkpoint stops the run before anything is written; a damaged finished
 * autoencoder in the output folder is an error that changes nothing. */
static void inputs_checked_before_the_first_step(void **state) {
    (void)state;
    char ini[4400];
    write_config("novocab", 8, "", ini);
    char *text = read_text(ini);
    char *at = strstr(text, LDMCL_CLIP_BPE_DEFAULT);
    assert_non_null(at);
    char changed[8192];
    snprintf(changed, sizeof changed, "%.*s/nowhere/vocab.txt.gz%s", (int)(at - text), text,
             at + strlen(LDMCL_CLIP_BPE_DEFAULT));
    test_write_file(ini, changed, strlen(changed));
    free(text);
    assert_int_not_equal(run(ini, 0, 0), LDM_OK);
    assert_contains(ldm_last_error(), "[text] vocab");
    assert_contains(ldm_last_error(), "/nowhere/vocab.txt.gz");
    assert_false(exists("novocab", "autoencoder_log.csv"));
    assert_false(exists("novocab", "autoencoder-state.safetensors"));

    /* a damaged [autoencoder] checkpoint: named before the LDM stage starts */
    char bad[4400], ae[4500];
    snprintf(bad, sizeof bad, "%s/damaged.safetensors", g_dir);
    test_write_file(bad, "\x10\0\0\0\0\0\0\0{\"a\":", 13);
    snprintf(ae, sizeof ae, "checkpoint = %s\n", bad);
    write_config_with("badae", 8, "", ae, "", ini);
    assert_int_equal(run(ini, 0, 0), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "[autoencoder] checkpoint");
    assert_contains(ldm_last_error(), "damaged.safetensors");
    assert_false(exists("badae", "latents.safetensors"));

    /* a damaged finished autoencoder in the output folder: an error, never trained over */
    char from[4400], to[4400];
    write_config("damagedae", 8, "", ini);
    snprintf(to, sizeof to, "%s/damagedae", g_dir);
    assert_int_equal(mkdir(to, 0755), 0);
    snprintf(from, sizeof from, "%s/whole/autoencoder.safetensors", g_dir);
    snprintf(to, sizeof to, "%s/damagedae/autoencoder.safetensors", g_dir);
    size_t len;
    unsigned char *bytes = test_read_file(from, &len);
    test_write_file(to, bytes, len - 4);
    free(bytes);
    assert_int_equal(run(ini, 0, 0), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "remove it to train stage one again");
    assert_contains(ldm_last_error(), "damagedae/autoencoder.safetensors");
    size_t now;
    free(test_read_file(to, &now));
    assert_int_equal(now, len - 4);
    assert_false(exists("damagedae", "autoencoder_log.csv"));
}

/* A text encoder configured with fewer tokens than the tokenizer has: stage two refuses to start,
 * naming the tokenizer's file, the config and both sizes. */
static void tokenizer_larger_than_the_encoder_is_refused(void **state) {
    (void)state;
    char ini[4400];
    write_config("whole", 8, "", ini); /* the run the first test made */
    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    c.model.clip.vocab_size = 1000;
    ldm_run_options o = {.stage = LDM_STAGE_ALL, .log = test_capture_log};
    assert_status(ldm_run_train(g_ctx, &c, &o), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "bpe_simple_vocab_16e6.txt.gz' has 49408 tokens but the "
                                      "text encoder ('");
    assert_contains(ldm_last_error(), "whole.ini' [text]) embeds 1000 (vocab_size)");
}

static void empty_dataset_is_an_error(void **state) {
    (void)state;
    char ini[4400], path[2048];
    write_config("empty", 8, "", ini);
    /* point the dataset at an empty folder */
    snprintf(path, sizeof path, "%s/nothing", g_dir);
    assert_int_equal(mkdir(path, 0755), 0);
    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    snprintf(c.dataset_path, sizeof c.dataset_path, "%s", path);
    ldm_run_options o = {.stage = LDM_STAGE_ALL};
    assert_int_not_equal(ldm_run_train(g_ctx, &c, &o), LDM_OK);
    assert_contains(ldm_last_error(), "nothing");
}

/* The program: exit 2 for bad flags or a bad config (naming file and line), 0 when done. */
static void program_exit_codes(void **state) {
    (void)state;
    char cmd[9000], text[2048], ini[4400];
    snprintf(cmd, sizeof cmd, "'%s' --frobnicate 2>&1", LDMCL_TRAIN_PROGRAM);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "--frobnicate");
    snprintf(ini, sizeof ini, "%s/broken.ini", g_dir);
    test_write_file(ini, "[train]\nmax_train_steps = 6\nlearning_rate 1e-3\n", 46);
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "broken.ini:3");
    /* the finished run again, LDM stage only: resumes at the end, exits 0 */
    write_config("whole", 8, "", ini);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' '%s' --stage ldm --resume 2>&1", g_dir,
             LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "resumed from");
    /* --profile: step 2 of each stage timed by kernel; the losses are those of an unprofiled
     * run */
    snprintf(cmd, sizeof cmd, "'%s' '%s' --profile 0 2>&1", LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "--profile 0: a step number from 1");
    write_config("profiled", 8, "", ini);
    snprintf(cmd, sizeof cmd, "'%s' '%s' --profile 2 2>&1", LDMCL_TRAIN_PROGRAM, ini);
    static char big[65536];
    assert_int_equal(test_run_capture(cmd, big, sizeof big), 0);
    assert_contains(big, "autoencoder step 2: ");
    assert_contains(big, "ldm step 2: ");
    assert_contains(big, "kinds of launch:\n");
    assert_contains(big, "  gemm ");
    assert_contains(big, "adam_step");
    char *a = losses("parted"), *b = losses("profiled"); /* "whole" was cut short since */
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static int setup(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("train-run");
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    free(dir);
    char data[4400];
    snprintf(data, sizeof data, "%s/data", g_dir);
    if (mkdir(data, 0755) != 0) return -1;
    make_dataset(data);
    g_ctx = test_ctx_open(NULL, NULL);
    return g_ctx ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    ldm_ctx_destroy(g_ctx);
    test_rmtree(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_run_and_exact_resume),
        cmocka_unit_test(random_flip_uses_mirrored_latents),
        cmocka_unit_test(latent_scaling_standardises_the_cache),
        cmocka_unit_test(validation_grids_are_the_pipelines),
        cmocka_unit_test(stale_cache_and_bad_checkpoints),
        cmocka_unit_test(non_finite_loss_stops_the_run),
        cmocka_unit_test(inputs_checked_before_the_first_step),
        cmocka_unit_test(tokenizer_larger_than_the_encoder_is_refused),
        cmocka_unit_test(empty_dataset_is_an_error),
        cmocka_unit_test(program_exit_codes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
