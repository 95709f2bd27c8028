/* tests/test_reference_model.c: a model of the reference implementation assembled by
 * tools/reference_model.py (tests/ref/reference_model/) samples the reference's images through
 * the pipeline and through ldmcl-sample; a copy whose text encoder embeds fewer tokens than its
 * tokenizer has is refused. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ldmcl.h"
#include "test_util.h"

static char g_dir[4096];

static int setup(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("refmodel");
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    free(dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    return 0;
}

/* A model of the reference implementation (its Unet, VQVAE and YAML, a Hugging Face CLIP folder)
 * assembled by tools/reference_model.py into tests/ref/reference_model/: ldmcl's pipeline and
 * ldmcl-sample give the images of the reference's own sampling loop (DDPM, guidance 3 against
 * the empty prompt) run in float64 with ldmcl's noise (tools/refgen/make_refs.py). */
static void samples_a_reference_model(void **state) {
    (void)state;
    char model[4096], path[4300];
    snprintf(model, sizeof model, "%s/reference_model", LDMCL_TEST_REF_DIR);
    snprintf(path, sizeof path, "%s/reference_model_samples.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    int ndim, shape[8];
    float *want = test_st_load(st, "images", &ndim, shape);
    assert_true(ndim == 4 && shape[0] == 1 && shape[1] == 1 && shape[2] == 8 && shape[3] == 8);
    const char *meta_prompt = ldm_safetensors_metadata(st, "prompt");
    const char *meta_err = ldm_safetensors_metadata(st, "torch_fp32_images_rel_err");
    assert_non_null(meta_prompt);
    assert_non_null(meta_err);
    char prompt[256];
    snprintf(prompt, sizeof prompt, "%s", meta_prompt);
    double torch_fp32 = atof(meta_err);
    uint64_t seed = 0;
    assert_status(ldm_safetensors_metadata_u64(st, "seed", &seed), LDM_OK);
    ldm_safetensors_close(st);

    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_pipeline_options o = {.method = LDM_SAMPLER_DDPM, .guidance_scale = 3.0f, .batch = 1};
    ldm_pipeline *p;
    assert_status(ldm_pipeline_open(ctx, model, &o, &p), LDM_OK);
    float got[64];
    assert_status(ldm_pipeline_generate(p, prompt, "", seed, got), LDM_OK);
    ldm_pipeline_destroy(p);
    double err = test_rel_err(got, want, NULL, 64);
    print_message("  reference model: images within %.2e of the reference's (float64); PyTorch's "
                  "own float32 run %.2e\n",
                  err, torch_fp32);
    /* the same order as PyTorch's float32 rounding (twenty steps, guidance amplifying it) */
    assert_true(err <= fmax(10.0 * torch_fp32, 1e-4));

    /* the program: the same image as a PNG, within one level of the float one */
    char cmd[20000], text[512];
    snprintf(cmd, sizeof cmd,
             "'%s' -m '%s' -p '%s' --sampling-method ddpm --cfg-scale 3 -s %llu "
             "-o '%s/reference.png' 2>&1",
             LDMCL_SAMPLE_PROGRAM, model, prompt, (unsigned long long)seed, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    snprintf(path, sizeof path, "%s/reference.png", g_dir);
    ldm_image img;
    assert_status(ldm_png_read(path, 1, NULL, &img), LDM_OK);
    assert_true(img.width == 8 && img.height == 8 && img.channels == 1);
    for (int i = 0; i < 64; i++) {
        double v = fmin(fmax((want[i] + 1.0) * 0.5, 0.0), 1.0) * 255.0;
        assert_true(fabs(img.pixels[i] - v) <= 1.0);
    }
    ldm_image_free(&img);
    free(want);

    /* the same model whose text encoder embeds fewer tokens than its tokenizer has: refused when
     * opened, naming both files and both sizes (ids past 499 would read past the embedding) */
    char copy[4200], cmd2[9000];
    snprintf(copy, sizeof copy, "%s/small_vocab", g_dir);
    snprintf(cmd2, sizeof cmd2, "cp -r '%s' '%s'", model, copy);
    assert_int_equal(system(cmd2), 0);
    snprintf(path, sizeof path, "%s/clip/config.json", copy);
    size_t clen;
    char *config = (char *)test_read_file(path, &clen);
    char *edited = malloc(clen + 1), *at = memmem(config, clen, "\"vocab_size\": 521", 17);
    assert_true(edited && at);
    memcpy(edited, config, clen);
    memcpy(edited + (at - config), "\"vocab_size\": 500", 17);
    test_write_file(path, edited, clen);
    free(config);
    free(edited);
    assert_status(ldm_pipeline_open(ctx, copy, &o, &p), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "small_vocab/clip/vocab.json' has 521 tokens but the text "
                                      "encoder ('");
    assert_contains(ldm_last_error(), "small_vocab/clip/config.json') embeds 500 (vocab_size)");
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p x -o '%s/never.png' 2>&1", LDMCL_SAMPLE_PROGRAM,
             copy, g_dir);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 1);
    assert_contains(text, "has 521 tokens but the text encoder");
    snprintf(path, sizeof path, "%s/never.png", g_dir);
    assert_false(test_file_exists(path));
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(samples_a_reference_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
