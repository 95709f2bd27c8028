/* tests/test_pipeline.c: text to image from a model folder: a tiny text-conditioned model
 * (UNet, VQ-VAE, CLIP trained from scratch; random weights) written the way ldmcl-train writes
 * it, generated with DDIM and guidance: reproducible for a seed, different for another, a batch
 * of finite images; a missing file or a prompt that is not UTF-8 is named. Then ldmcl-sample on
 * the same folder: seeds per image, PNG files, the "parameters" text, a grid, the same bytes for
 * the same seed, and its errors. Models of NaN or overflowing weights: errors, no PNG. (The
 * reference implementation's model: test_reference_model.) */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldmcl/ldmcl.h"
#include "model_fixture.h"
#include "test_util.h"

static char g_dir[4096];

static void save_model_in(ldm_ctx *ctx, const ldm_run_config *c, const char *dir) {
    fixture_save_model(ctx, c, dir, 1.0f, 1.0f);
}

static void save_model(ldm_ctx *ctx, const ldm_run_config *c) {
    save_model_in(ctx, c, g_dir);
}

static void generates_from_a_model_folder(void **state) {
    (void)state;
    char ini[8192], path[4300];
    fixture_model_ini(ini, sizeof ini, "", "", "");
    snprintf(path, sizeof path, "%s/model.ini", g_dir);
    test_write_file(path, ini, strlen(ini));
    ldm_run_config c;
    assert_status(ldm_run_config_read(path, &c), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    save_model(ctx, &c);

    ldm_pipeline_options o = {
        .method = LDM_SAMPLER_DDIM, .steps = 5, .guidance_scale = 2.0f, .batch = 2};
    ldm_pipeline *p;
    assert_status(ldm_pipeline_open(ctx, g_dir, &o, &p), LDM_OK);
    float a[2 * 64], b[2 * 64], d[2 * 64];
    assert_status(ldm_pipeline_generate(p, "a photo of a sneaker", NULL, 7, a), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a photo of a sneaker", NULL, 7, b), LDM_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_status(ldm_pipeline_generate(p, "a photo of a sneaker", "a bag", 8, d), LDM_OK);
    assert_true(memcmp(a, d, sizeof a) != 0);
    for (int i = 0; i < 2 * 64; i++)
        assert_true(isfinite(a[i]));
    assert_true(memcmp(a, a + 64, 64 * sizeof *a) != 0); /* a batch draws one noise per image */
    assert_status(ldm_pipeline_generate(p, "bad \xc3", NULL, 7, a), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "the prompt: prompt 0: src/text/clip_tokenize.c:");
    assert_contains(ldm_last_error(), "byte offset 4");
    ldm_pipeline_destroy(p);

    /* the program */
    char cmd[20000], out[4300], text[512];
    snprintf(cmd, sizeof cmd,
             "'%s' -m '%s' -p 'a sneaker, caf\xc3\xa9' -n 'a bag' --steps 4 --cfg-scale 3 -s 11 "
             "-b 2 -o '%s/img.png' --grid '%s/grid.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "/img.png: seed=11");
    assert_contains(text, "/img_2.png: seed=12");
    assert_contains(text, "/grid.png: grid of 1 x 2 images");
    snprintf(out, sizeof out, "%s/img_2.png", g_dir);
    ldm_image img;
    assert_status(ldm_png_read(out, 1, NULL, &img), LDM_OK);
    assert_true(img.width == 8 && img.height == 8);
    ldm_image_free(&img);
    snprintf(out, sizeof out, "%s/grid.png", g_dir);
    assert_status(ldm_png_read(out, 1, NULL, &img), LDM_OK);
    assert_true(img.width == 16 && img.height == 8);
    ldm_image_free(&img);
    /* the "parameters" text chunk */
    snprintf(out, sizeof out, "%s/img.png", g_dir);
    size_t len;
    char *png = (char *)test_read_file(out, &len);
    int found = 0;
    for (size_t k = 0; k + 40 < len && !found; k++)
        found = !memcmp(png + k, "parameters", 10);
    assert_true(found);
    assert_non_null(memmem(png, len, "Seed: 11", 8));
    assert_non_null(memmem(png, len, "Negative prompt: a bag", 22));
    free(png);
    /* the same seed again: the same file */
    snprintf(cmd, sizeof cmd,
             "'%s' -m '%s' -p 'a sneaker, caf\xc3\xa9' -n 'a bag' --steps 4 --cfg-scale 3 -s 11 "
             "-o '%s/again.png' > /dev/null 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    char again[4300];
    snprintf(again, sizeof again, "%s/again.png", g_dir);
    size_t la, lb;
    unsigned char *x = test_read_file(out, &la), *y = test_read_file(again, &lb);
    assert_true(la == lb && !memcmp(x, y, la));
    free(x);
    free(y);
    /* a prompt file (comments, blank lines, CR LF) and two images per pass: a 2 x 2 grid; the
     * second image of a pass carries its batch position */
    snprintf(path, sizeof path, "%s/prompts.txt", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# classes\r\na sneaker\r\n\na bag\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "'%s' -m '%s' --prompt-file '%s' --batch-size 2 --steps 3 --cfg-scale 2 -s 5 "
             "-o '%s/pf%%d.png' --grid '%s/pfgrid.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, path, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "/pf3.png: seed=5");
    assert_contains(text, "/pf4.png: seed=6");
    assert_contains(text, "/pfgrid.png: grid of 2 x 2 images");
    snprintf(out, sizeof out, "%s/pfgrid.png", g_dir);
    assert_status(ldm_png_read(out, 1, NULL, &img), LDM_OK);
    assert_true(img.width == 16 && img.height == 16);
    ldm_image_free(&img);
    snprintf(out, sizeof out, "%s/pf4.png", g_dir);
    png = (char *)test_read_file(out, &len);
    assert_non_null(memmem(png, len, "a bag\nNegative prompt", 21));
    assert_non_null(memmem(png, len, "Batch size: 2, Batch pos: 1", 27));
    free(png);
    /* a prompt longer than the model's context (8: 6 tokens besides start and end) is cut with a
     * warning naming how many tokens were dropped, once for the two generations */
    snprintf(cmd, sizeof cmd,
             "'%s' -m '%s' -p 'a sneaker and a bag and a shirt' -b 2 --steps 2 -o '%s/long.png' "
             "2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "the prompt is 8 tokens; the model reads 6: the last 2 are dropped");
    assert_null(strstr(strstr(text, "the last 2 are dropped") + 1, "the last 2 are dropped"));
    /* x0 previews after chosen steps, named after each image, in output folders that do not
     * exist yet; a bad list is refused */
    snprintf(cmd, sizeof cmd,
             "'%s' -m '%s' -p 'a bag' --steps 3 --save-x0 1,3 -o '%s/new/deeper/pre.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "/new/deeper/pre_x0-1.png: x0 after step 1");
    assert_contains(text, "/new/deeper/pre_x0-3.png: x0 after step 3 (t = 0)");
    snprintf(out, sizeof out, "%s/new/deeper/pre_x0-3.png", g_dir);
    assert_status(ldm_png_read(out, 1, NULL, &img), LDM_OK);
    assert_true(img.width == 8 && img.height == 8);
    ldm_image_free(&img);
    snprintf(out, sizeof out, "%s/new/deeper/pre_x0-2.png", g_dir);
    assert_false(test_file_exists(out));
    snprintf(out, sizeof out, "%s/new/deeper/pre.png", g_dir);
    assert_true(test_file_exists(out));
    /* a folder that cannot be made (a file is in the way): named, before any work */
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x -o '%s/prompts.txt/sub/x.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 1);
    assert_contains(text, "cannot create the output folder");
    assert_contains(text, "prompts.txt/sub'");
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x --save-x0 1,zero 2>&1", LDMCL_SAMPLE_PROGRAM,
             g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "--save-x0 1,zero");
    /* steps beyond the chain would write nothing: refused (DDIM: --steps; DDPM: the model's T) */
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x --steps 2 --save-x0 1,99 -o '%s/late.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "--save-x0 1,99: step 99 is beyond the 2 sampling steps (--steps)");
    snprintf(cmd, sizeof cmd,
             "'%s' -m '%s' -p x --sampling-method ddpm --save-x0 51 -o '%s/late.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text,
                    "step 51 is beyond the 50 sampling steps (DDPM takes all of the model's)");
    snprintf(out, sizeof out, "%s/late.png", g_dir);
    assert_false(test_file_exists(out));
    /* -o counters: zero-padded widths give distinct names; a width whose names cannot be files
     * (every one once came out the same, truncated) is refused before any work */
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x --steps 1 -b 2 -o '%s/w-%%03d.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "/w-001.png: seed=42");
    assert_contains(text, "/w-002.png: seed=43");
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x --steps 1 -b 2 -o '%s/x-%%0999d.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "x-%0999d.png: the names it makes for 2 images are too long (a file "
                          "name takes at most 255 characters");
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x --steps 1 -o '%s/x-%%099999999999d.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_dir, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "are too long");
    /* an empty prompt file is an error naming it */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("# nothing\n\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' --prompt-file '%s' 2>&1", LDMCL_SAMPLE_PROGRAM, g_dir,
             path);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "prompts.txt holds no prompt");
    /* bad flags: exit 2 with a message; a missing model: exit 1 naming the file */
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x --steps many 2>&1", LDMCL_SAMPLE_PROGRAM, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "--steps many: not a number");
    snprintf(cmd, sizeof cmd, "'%s' -m '%s/none' -p x 2>&1", LDMCL_SAMPLE_PROGRAM, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 1);
    assert_contains(text, "loading the model");
    assert_contains(text, "none/model.ini");

    snprintf(path, sizeof path, "%s/autoencoder.safetensors", g_dir);
    assert_int_equal(unlink(path), 0);
    assert_status(ldm_pipeline_open(ctx, g_dir, &o, &p), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "autoencoder.safetensors");
    ldm_ctx_destroy(ctx);
}

/* A tiny model folder g_dir/name (its model.ini with ae_extra, random weights) opened as a
 * pipeline; its configuration in *c. */
static ldm_pipeline *open_tiny_model(ldm_ctx *ctx, const char *name, const char *ae_extra,
                                     const ldm_pipeline_options *o, ldm_run_config *c) {
    char dir[4300], path[4400], ini[8192];
    snprintf(dir, sizeof dir, "%s/%s", g_dir, name);
    assert_int_equal(mkdir(dir, 0755), 0);
    fixture_model_ini(ini, sizeof ini, "", "", ae_extra);
    snprintf(path, sizeof path, "%s/model.ini", dir);
    test_write_file(path, ini, strlen(ini));
    assert_status(ldm_run_config_read(path, c), LDM_OK);
    save_model_in(ctx, c, dir);
    ldm_pipeline *p;
    assert_status(ldm_pipeline_open(ctx, dir, o, &p), LDM_OK);
    return p;
}

/* A model.ini with latent_scaling: the sampled latents are those of the same model without it
 * (the UNet works in the normalised space), and decoding first undoes the scaling per channel:
 * its images are the unscaled model's decoding of z * std + mean. Without its statistics such a
 * model.ini is refused. */
static void undoes_latent_scaling_before_decoding(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    const char *kinds[2] = {"plain", "scaled"};
    const char *extra[2] = {"", "latent_scaling = channel\nlatent_mean = [0.5, -1]\n"
                                "latent_std = [2, 3]\n"};
    ldm_pipeline *p[2];
    ldm_pipeline_options o = {
        .method = LDM_SAMPLER_DDIM, .steps = 3, .guidance_scale = 2.0f, .batch = 2};
    for (int i = 0; i < 2; i++) {
        ldm_run_config c;
        p[i] = open_tiny_model(ctx, kinds[i], extra[i], &o, &c);
    }
    float z[2][2 * 2 * 4 * 4], img[2][2 * 64], want[2 * 64];
    for (int i = 0; i < 2; i++)
        assert_status(ldm_pipeline_generate_latents(p[i], "a bag", NULL, 5, z[i]), LDM_OK);
    assert_memory_equal(z[0], z[1], sizeof z[0]);
    assert_status(ldm_pipeline_generate(p[1], "a bag", NULL, 5, img[1]), LDM_OK);
    assert_status(ldm_pipeline_generate(p[0], "a bag", NULL, 5, img[0]), LDM_OK);
    assert_true(memcmp(img[0], img[1], sizeof img[0]) != 0);
    for (int b = 0; b < 2; b++) /* [batch, channel, 4, 4]: channel 0 x2 + 0.5, channel 1 x3 - 1 */
        for (int k = 0; k < 16; k++) {
            z[0][(b * 2 + 0) * 16 + k] = z[0][(b * 2 + 0) * 16 + k] * 2.0f + 0.5f;
            z[0][(b * 2 + 1) * 16 + k] = z[0][(b * 2 + 1) * 16 + k] * 3.0f - 1.0f;
        }
    assert_status(ldm_pipeline_decode(p[0], z[0], want), LDM_OK);
    assert_true(test_rel_err(img[1], want, NULL, 2 * 64) < 1e-6);
    for (int i = 0; i < 2; i++)
        ldm_pipeline_destroy(p[i]);

    char path[4400], ini[8192];
    fixture_model_ini(ini, sizeof ini, "", "", "latent_scaling = global\n");
    snprintf(path, sizeof path, "%s/scaled/model.ini", g_dir);
    test_write_file(path, ini, strlen(ini));
    snprintf(path, sizeof path, "%s/scaled", g_dir);
    assert_status(ldm_pipeline_open(ctx, path, &o, &p[0]), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "latent_scaling without latent_mean and latent_std");
    ldm_ctx_destroy(ctx);
}

/* A model.ini with latent_patch = 2 (and latent_scaling): the UNet samples 2x2x8 latents,
 * each 2x2 patch of the autoencoder's 4x4x2 latents as channels, and decoding undoes the scaling,
 * then puts the patches back (pixel_shuffle): its images are those the same autoencoder decodes
 * from the rearranged latents. */
static void undoes_latent_patch_before_decoding(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    const char *kinds[2] = {"unpatched", "patched"};
    const char *extra[2] = {"", "latent_patch = 2\nlatent_scaling = channel\n"
                                "latent_mean = [0, 1, 2, 3, 4, 5, 6, 7]\n"
                                "latent_std = [1, 2, 3, 4, 5, 6, 7, 8]\n"};
    ldm_pipeline *p[2];
    ldm_pipeline_options o = {
        .method = LDM_SAMPLER_DDIM, .steps = 3, .guidance_scale = 2.0f, .batch = 2};
    for (int i = 0; i < 2; i++) {
        ldm_run_config c;
        p[i] = open_tiny_model(ctx, kinds[i], extra[i], &o, &c);
        assert_int_equal(c.model.unet.im_channels, i ? 8 : 2);
        assert_int_equal(ldm_model_latent_size(&c.model), i ? 2 : 4);
    }
    float z[2 * 8 * 2 * 2], plain[2 * 2 * 4 * 4], img[2 * 64], want[2 * 64];
    assert_status(ldm_pipeline_generate_latents(p[1], "a bag", NULL, 5, z), LDM_OK);
    for (int b = 0; b < 2; b++) /* patched channel k = c 4 + i 2 + j at (y, x): (c, 2y+i, 2x+j) */
        for (int k = 0; k < 8; k++)
            for (int y = 0; y < 2; y++)
                for (int x = 0; x < 2; x++) {
                    float v = z[((b * 8 + k) * 2 + y) * 2 + x] * (float)(k + 1) + (float)k;
                    int c = k / 4, i = k / 2 % 2, j = k % 2;
                    plain[((b * 2 + c) * 4 + 2 * y + i) * 4 + 2 * x + j] = v;
                }
    assert_status(ldm_pipeline_generate(p[1], "a bag", NULL, 5, img), LDM_OK);
    assert_status(ldm_pipeline_decode(p[0], plain, want), LDM_OK);
    assert_true(test_rel_err(img, want, NULL, 2 * 64) < 1e-6);
    for (int i = 0; i < 2; i++)
        ldm_pipeline_destroy(p[i]);
    ldm_ctx_destroy(ctx);
}

/* Garbage is an error, never a picture: a UNet file of NaN weights is refused when opened (the
 * tensor named), and weights so large that the chain or the decoder overflows fail the generation
 * naming the file to suspect; ldmcl-sample exits 1 and writes no PNG. */
static void non_finite_models_are_errors(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    const char *names[3] = {"nan_unet", "huge_unet", "huge_ae"};
    const float unet_k[3] = {NAN, 1e30f, 1.0f}, ae_k[3] = {1.0f, 1.0f, 1e30f};
    ldm_pipeline_options o = {
        .method = LDM_SAMPLER_DDIM, .steps = 3, .guidance_scale = 2.0f, .batch = 1};
    for (int i = 0; i < 3; i++) {
        char dir[4300], path[4400], ini[8192], cmd[9000], text[1024];
        snprintf(dir, sizeof dir, "%s/%s", g_dir, names[i]);
        assert_int_equal(mkdir(dir, 0755), 0);
        fixture_model_ini(ini, sizeof ini, "", "", "");
        snprintf(path, sizeof path, "%s/model.ini", dir);
        test_write_file(path, ini, strlen(ini));
        ldm_run_config c;
        assert_status(ldm_run_config_read(path, &c), LDM_OK);
        fixture_save_model(ctx, &c, dir, unet_k[i], ae_k[i]);
        ldm_pipeline *p = NULL;
        float img[64];
        if (i == 0) {
            assert_status(ldm_pipeline_open(ctx, dir, &o, &p), LDM_ERR_FORMAT);
        } else {
            assert_status(ldm_pipeline_open(ctx, dir, &o, &p), LDM_OK);
            assert_status(ldm_pipeline_generate(p, "a bag", NULL, 3, img), LDM_ERR_FORMAT);
            ldm_pipeline_destroy(p);
        }
        snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p 'a bag' --steps 3 -o '%s/out.png' 2>&1",
                 LDMCL_SAMPLE_PROGRAM, dir, dir);
        assert_int_equal(test_run_capture(cmd, text, sizeof text), 1);
        snprintf(path, sizeof path, "%s/%s/unet.safetensors", g_dir, names[i]);
        if (i == 0) {
            assert_contains(text, "loading the model: ");
            assert_contains(text, path);
            assert_contains(text, "tensor 'conv_in.weight' holds 144 NaN or infinite values of "
                                  "144 (the first at element 0: nan)");
        } else if (i == 1) {
            assert_contains(text, "generating: sampling with '");
            assert_contains(text, path);
            assert_contains(text, "the sampled latents hold 32 NaN/Inf values of 32 after step 1 "
                                  "of 3");
        } else {
            snprintf(path, sizeof path, "%s/%s/autoencoder.safetensors", g_dir, names[i]);
            assert_contains(text, "generating: ");
            assert_contains(text, "the decoded images hold 64 NaN/Inf values of 64");
            assert_contains(text, path);
        }
        snprintf(path, sizeof path, "%s/out.png", dir);
        assert_false(test_file_exists(path));
    }
    ldm_ctx_destroy(ctx);
}

static int setup(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("model");
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    free(dir);
    return 0;
}

/* Flags ldmcl-sample refuses before it opens anything: unknown options (with the closest known
 * one), values it does not take, outputs it cannot write as named; and --version. */
static void sample_flags_are_checked(void **state) {
    (void)state;
    const struct {
        const char *args, *message;
    } bad[] = {
        {"--bogus", "unknown option '--bogus' (see --help)"},
        {"--vae x.safetensors", "unknown option '--vae' (see --help)"},
        {"-m m -p p --stesp 3", "unknown option '--stesp' (did you mean '--steps'?"},
        {"-m m -p p --steps 2.5", "--steps 2.5: not a value it takes"},
        {"-m m -p p --cfg-scale x", "--cfg-scale x: not a number"},
        {"-m m -p p -o out.jpg",
         "-o 'out.jpg': ldmcl-sample writes PNG images; name the file .png"},
        {"-m m -p p --grid g.webp", "--grid 'g.webp': ldmcl-sample writes PNG images"},
        {"-m m -p", "'-p' needs a value"},
    };
    char cmd[512], text[8192];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", LDMCL_SAMPLE_PROGRAM, bad[i].args);
        assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
        assert_contains(text, bad[i].message);
    }
    /* a user's error without ldmcl's source positions, unless -v */
    snprintf(cmd, sizeof cmd, "'%s' -m /nonexistent-model -p x 2>&1", LDMCL_SAMPLE_PROGRAM);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 1);
    assert_contains(text, "ldmcl-sample: loading the model: cannot open the config "
                          "'/nonexistent-model/model.ini'");
    assert_null(strstr(text, "src/"));
    snprintf(cmd, sizeof cmd, "'%s' -m /nonexistent-model -p x -v 2>&1", LDMCL_SAMPLE_PROGRAM);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 1);
    assert_contains(text, "src/");
    snprintf(cmd, sizeof cmd, "'%s' --version 2>&1", LDMCL_SAMPLE_PROGRAM);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "ldmcl-sample " LDMCL_VERSION "\n");
    snprintf(cmd, sizeof cmd, "'%s' --help 2>&1", LDMCL_SAMPLE_PROGRAM);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "-h, --help");
    assert_contains(text, "--version");
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generates_from_a_model_folder),
        cmocka_unit_test(undoes_latent_scaling_before_decoding),
        cmocka_unit_test(undoes_latent_patch_before_decoding),
        cmocka_unit_test(non_finite_models_are_errors),
        cmocka_unit_test(sample_flags_are_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
