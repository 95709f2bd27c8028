/* tests/train_fixture.c: what the training-run tests share (see train_fixture.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train_fixture.h"

char g_dir[1024];
ldm_ctx *g_ctx;

/* A two-class dataset of 16x16 images: class "left" bright on the left, "right" on the right, with
 * noise. */
void make_dataset(const char *root) {
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
void write_config_with(const char *name, int time_emb_dim, const char *dataset_extra,
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

void write_config(const char *name, int time_emb_dim, const char *extra, char *ini) {
    write_config_with(name, time_emb_dim, "", "", extra, ini);
}

/* A run from the config file; stop_after / ae_stop_after as in ldm_run_options. */
ldm_status run_stopping(const char *ini, int resume, int stop_after, int ae_stop_after) {
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

ldm_status run(const char *ini, int resume, int stop_after) {
    return run_stopping(ini, resume, stop_after, 0);
}

/* A whole text file as a string. */
char *read_text(const char *path) {
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
char *losses(const char *name) {
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

void same_file_bytes(const char *a, const char *b, const char *file) {
    char pa[4400], pb[4400];
    snprintf(pa, sizeof pa, "%s/%s/%s", g_dir, a, file);
    snprintf(pb, sizeof pb, "%s/%s/%s", g_dir, b, file);
    size_t la, lb;
    unsigned char *x = test_read_file(pa, &la), *y = test_read_file(pb, &lb);
    if (la != lb || memcmp(x, y, la)) fail_msg("%s differs between runs %s and %s", file, a, b);
    free(x);
    free(y);
}

int exists(const char *name, const char *file) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, name, file);
    return test_file_exists(path);
}

/* Replaces the text file's first stretch from `from` up to (not including) `until` by `to`. */
void edit_file(const char *path, const char *from, const char *until, const char *to) {
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

int train_fixture_setup(void **state) {
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

int train_fixture_teardown(void **state) {
    (void)state;
    ldm_ctx_destroy(g_ctx);
    test_rmtree(g_dir);
    return 0;
}

/* The validation grid of run NAME's last step is what ldmcl-sample's pipeline makes from the
 * model folder (the same weights: no EMA) with the validation's prompts, seed and settings:
 * validation runs that pipeline, bound to the trainer's weights. */
void grid_is_the_model_folders(const char *name, const char *ini) {
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
    float img[2 * 16 * 16];
    assert_status(ldm_pipeline_generate_each(p, prompts, "", c.seed, img), LDM_OK);
    ldm_pipeline_destroy(p);
    ldm_image want, got;
    assert_status(ldm_image_from_tensor(img, 1, 32, 16, &want), LDM_OK); /* both, stacked */
    snprintf(path, sizeof path, "%s/%s/samples/step-00000006.png", g_dir, name);
    assert_status(ldm_png_read(path, 1, NULL, &got), LDM_OK);
    /* prompt i's image: 6x enlarged at (4, 16 + 100 i), under the title line */
    assert_int_equal(got.height, 16 + 2 * 100);
    for (int i = 0; i < 2; i++)
        for (int y = 0; y < 96; y++)
            for (int x = 0; x < 96; x++)
                assert_int_equal(got.pixels[(size_t)(16 + 100 * i + y) * got.width + 4 + x],
                                 want.pixels[(size_t)(16 * i + y / 6) * 16 + x / 6]);
    ldm_image_free(&want);
    ldm_image_free(&got);
}
