/* tests/test_sd_pipeline.c: the pipeline over Stable Diffusion checkpoints (the tiny 1.x and 2.x
 * inpainting models of tests/ref/sd/, their token embeddings grown to CLIP's vocabulary so that
 * the real tokenizer fits): text to image (finite, the seed reproduces it, another seed changes
 * it, the prompt matters), img2img, inpainting with the 9-channel UNet and by latent blending,
 * and what it refuses (a single file without --tokenizer, an inpainting UNet without a mask, a
 * size the UNet cannot halve), LoRAs named in prompts. The numbers against diffusers are
 * test_sd_checkpoint's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/pipeline.h"
#include "ldmcl/sd_model.h"
#include "sd_fixture.h"
#include "test_util.h"

enum { SIDE = 64, B = 1 };

static char *g_dir;
static char g_sd1[4200], g_sd2[4200];

static ldm_pipeline *open_pipeline(ldm_ctx *ctx, const char *path, ldm_sampler_method method,
                                   const char *tokenizer) {
    ldm_pipeline_options o = {.method = method,
                              .steps = 4,
                              .guidance_scale = 7.5f,
                              .batch = B,
                              .scheduler = LDM_SIGMAS_KARRAS,
                              .height = SIDE,
                              .width = SIDE,
                              .tokenizer = tokenizer};
    ldm_pipeline *p = NULL;
    ldm_status st = ldm_pipeline_open(ctx, path, &o, &p);
    return st == LDM_OK ? p : NULL;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static double diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void text_to_image_and_img2img(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_pipeline *p = open_pipeline(ctx, g_sd1, LDM_SAMPLER_EULER, LDMCL_CLIP_BPE_DEFAULT);
    if (!p) fail_msg("%s", ldm_last_error());
    assert_non_null(ldm_pipeline_sd_model(p));
    int h, w;
    ldm_pipeline_image_size(p, &h, &w);
    assert_int_equal(h, SIDE);
    size_t n = (size_t)B * 3 * SIDE * SIDE;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    float *d = malloc(n * sizeof *d);
    assert_status(ldm_pipeline_generate(p, "a red fox in the snow", NULL, 7, a), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a red fox in the snow", NULL, 7, b), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a red fox in the snow", NULL, 8, c), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a blue boat", "blurry", 7, d), LDM_OK);
    assert_true(all_finite(a, n));
    assert_true(diff(a, b, n) == 0.0);
    assert_true(diff(a, c, n) > 1e-3);
    assert_true(diff(a, d, n) > 1e-3);
    /* img2img at strength 0.5 from a gradient image */
    for (size_t i = 0; i < n; i++)
        b[i] = (float)((i % SIDE) / (double)SIDE) * 2.0f - 1.0f;
    assert_status(ldm_pipeline_generate_from(p, "a red fox", NULL, 7, b, NULL, 0.5f, c), LDM_OK);
    assert_true(all_finite(c, n));
    /* inpainting by latent blending (a 4-channel UNet): the left half kept */
    float *mask = malloc((size_t)B * SIDE * SIDE * sizeof *mask);
    for (int i = 0; i < B * SIDE * SIDE; i++)
        mask[i] = (i % SIDE) >= SIDE / 2;
    assert_status(ldm_pipeline_generate_from(p, "a red fox", NULL, 7, b, mask, 1.0f, d), LDM_OK);
    assert_true(all_finite(d, n));
    print_message("  SD 1.x tiny, 64x64, euler/karras 4 steps: text to image, img2img and "
                  "blended inpainting finite; seeds and prompts change the image (%.3f, %.3f)\n",
                  diff(a, c, n), diff(a, d, n));
    free(mask);
    free(a);
    free(b);
    free(c);
    free(d);
    ldm_pipeline_destroy(p);
    ldm_ctx_destroy(ctx);
}

static void inpainting_unet(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_pipeline *p = open_pipeline(ctx, g_sd2, LDM_SAMPLER_DPMPP_2M, LDMCL_CLIP_BPE_DEFAULT);
    if (!p) fail_msg("%s", ldm_last_error());
    const ldm_sd_model *m = ldm_pipeline_sd_model(p);
    assert_true(m->inpainting && m->prediction == LDM_PREDICT_V);
    size_t n = (size_t)B * 3 * SIDE * SIDE;
    float *img = malloc(n * sizeof *img), *out = malloc(n * sizeof *out);
    float *mask = malloc((size_t)B * SIDE * SIDE * sizeof *mask);
    for (size_t i = 0; i < n; i++)
        img[i] = (float)(((i / SIDE) % SIDE) / (double)SIDE) - 0.5f;
    for (int i = 0; i < B * SIDE * SIDE; i++)
        mask[i] = (i / SIDE) >= SIDE / 2;
    assert_status(ldm_pipeline_generate(p, "a cat", NULL, 1, out), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "has an inpainting UNet: give the image and the mask");
    assert_status(ldm_pipeline_generate_from(p, "a cat", NULL, 1, img, NULL, 1.0f, out),
                  LDM_ERR_INVALID_ARGUMENT);
    assert_status(ldm_pipeline_generate_from(p, "a cat", NULL, 1, img, mask, 1.0f, out), LDM_OK);
    assert_true(all_finite(out, n));
    free(img);
    free(out);
    free(mask);
    ldm_pipeline_destroy(p);
    ldm_ctx_destroy(ctx);
}

/* A decoder for the whole image that does not fit the device's largest allocation (capped at
 * 24 MiB here) decodes in tiles, and says so. */
static void decoding_falls_back_to_tiles(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_ctx_set_max_allocation(ctx, 24 << 20);
    test_log_clear();
    ldm_pipeline_options o = {.method = LDM_SAMPLER_EULER,
                              .steps = 1,
                              .batch = 1,
                              .height = 256,
                              .width = 256,
                              .tokenizer = LDMCL_CLIP_BPE_DEFAULT};
    ldm_pipeline *p = NULL;
    assert_status(ldm_pipeline_open(ctx, g_sd1, &o, &p), LDM_OK);
    assert_contains(test_log_text(), "decoding in tiles of 256x256 pixels (as --vae-tiling): the "
                                     "VAE's decoder for 256x256 images does not fit");
    float *img = malloc((size_t)3 * 256 * 256 * sizeof *img);
    assert_status(ldm_pipeline_generate(p, "a fox", NULL, 3, img), LDM_OK);
    assert_true(all_finite(img, (size_t)3 * 256 * 256));
    free(img);
    ldm_pipeline_destroy(p);
    ldm_ctx_destroy(ctx);
}

/* <lora:NAME:WEIGHT> in prompts: merged while named (the numbers against diffusers are
 * test_lora's), out again when no longer named, weights of one name added, a missing file or no
 * --lora-model-dir refused before any weight changes. */
static void loras_in_prompts(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_pipeline_options o = {.method = LDM_SAMPLER_EULER,
                              .steps = 3,
                              .guidance_scale = 7.5f,
                              .batch = B,
                              .scheduler = LDM_SIGMAS_KARRAS,
                              .height = SIDE,
                              .width = SIDE,
                              .tokenizer = LDMCL_CLIP_BPE_DEFAULT,
                              .lora_dir = LDMCL_TEST_REF_DIR "/sd"};
    ldm_pipeline *p = NULL;
    if (ldm_pipeline_open(ctx, g_sd1, &o, &p) != LDM_OK) fail_msg("%s", ldm_last_error());
    size_t n = (size_t)B * 3 * SIDE * SIDE;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    assert_true(a && b && c);
    assert_status(ldm_pipeline_generate(p, "a red fox", NULL, 7, a), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a red fox <lora:sd1_lora_kohya:0.7>", NULL, 7, b),
                  LDM_OK);
    double on = diff(a, b, n);
    assert_true(on > 1e-2);
    assert_status(ldm_pipeline_generate(p,
                                        "<lora:sd1_lora_kohya:0.4>a red fox "
                                        "<lora:sd1_lora_kohya.safetensors:0.3>",
                                        NULL, 7, c),
                  LDM_OK);
    double summed = diff(b, c, n);
    assert_status(ldm_pipeline_generate(p, "a red fox <lora:nothing_here:1>", NULL, 7, c),
                  LDM_ERR_NOT_FOUND);
    assert_non_null(strstr(ldm_last_error(), "nothing_here.safetensors"));
    assert_status(ldm_pipeline_generate(p, "a red fox", NULL, 7, c), LDM_OK);
    double off = diff(a, c, n);
    print_message("  <lora:sd1_lora_kohya:0.7> changes the image by %.3g (largest pixel "
                  "difference); 0.4 + 0.3 of it: %.2g from 0.7; without the tag again: %.2g from "
                  "before\n",
                  on, summed, off);
    assert_true(summed < 1e-4 && off < 1e-4);
    ldm_pipeline_destroy(p);
    o.lora_dir = NULL;
    assert_status(ldm_pipeline_open(ctx, g_sd1, &o, &p), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a red fox <lora:sd1_lora_kohya:0.7>", NULL, 7, c),
                  LDM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ldm_last_error(), "--lora-model-dir"));
    ldm_pipeline_destroy(p);
    free(a);
    free(b);
    free(c);
    ldm_ctx_destroy(ctx);
}

static void refusals(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    assert_null(open_pipeline(ctx, g_sd1, LDM_SAMPLER_EULER, NULL));
    assert_contains(ldm_last_error(), "is a single-file checkpoint: it holds no tokenizer. Give "
                                      "CLIP's vocabulary with --tokenizer");
    ldm_pipeline_options o = {.method = LDM_SAMPLER_EULER,
                              .steps = 2,
                              .batch = 1,
                              .height = 72,
                              .width = 64,
                              .tokenizer = LDMCL_CLIP_BPE_DEFAULT};
    ldm_pipeline *p = NULL;
    assert_status(ldm_pipeline_open(ctx, g_sd1, &o, &p), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(
        ldm_last_error(),
        "images of 64x72 (width x height): Stable Diffusion's sides must be multiples of 16 "
        "(its VAE's 4x and its UNet's 4x downsampling)");
    assert_true(ldm_pipeline_is_sd(g_sd1));
    ldm_ctx_destroy(ctx);
}

static int setup(void **state) {
    (void)state;
    g_dir = test_make_tmpdir("sd_pipeline");
    snprintf(g_sd1, sizeof g_sd1, "%s/sd1.safetensors", g_dir);
    snprintf(g_sd2, sizeof g_sd2, "%s/sd2.safetensors", g_dir);
    sd_fixture_rewrite("sd1_single.safetensors", g_sd1, NULL, NULL, 49408);
    sd_fixture_rewrite("sd2_single.safetensors", g_sd2, NULL, NULL, 49408);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    free(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_to_image_and_img2img),
        cmocka_unit_test(inpainting_unet),
        cmocka_unit_test(decoding_falls_back_to_tiles),
        cmocka_unit_test(loras_in_prompts),
        cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
