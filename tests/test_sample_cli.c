/* tests/test_sample_cli.c: ldmcl-sample's samplers, img2img and inpainting, and metadata through
 * the program, on the tiny model folder (model_fixture.h) as an epsilon and as a v-prediction
 * model: every --sampling-method by stable-diffusion.cpp's name with --scheduler, A1111's
 * Sampler / Schedule type / Model hash / quoted Model name / Eta / Denoising strength, DDPM and
 * --save-x0 on v-prediction, each image of a --batch-size batch the image its own seed gives
 * alone, --init-img/--strength/--mask with their conversions and errors, and bad flags refused. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldmcl/ldmcl.h"
#include "model_fixture.h"
#include "sd_fixture.h"
#include "test_util.h"

static char *g_dir;       /* the work folder */
static char g_eps[4300];  /* the epsilon model ("tiny, eps:1": A1111 quotes such names) */
static char g_v[4300];    /* the v-prediction model */
static char g_mask[4300]; /* a mask-conditioned one (3 segmentation classes at 8x8) */
static char g_cmd[20000]; /* scratch */
static char g_text[8192]; /* a program's output */

static int setup(void **state) {
    (void)state;
    g_dir = test_make_tmpdir("sample-cli");
    snprintf(g_eps, sizeof g_eps, "%s/tiny, eps:1", g_dir);
    snprintf(g_v, sizeof g_v, "%s/tiny-v", g_dir);
    snprintf(g_mask, sizeof g_mask, "%s/tiny-mask", g_dir);
    assert_int_equal(mkdir(g_eps, 0777), 0);
    assert_int_equal(mkdir(g_v, 0777), 0);
    assert_int_equal(mkdir(g_mask, 0777), 0);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    fixture_model_folder(ctx, g_eps, "", "");
    fixture_model_folder(ctx, g_v, "prediction_type = v_prediction\n", "");
    fixture_model_folder(ctx, g_mask, "",
                         "image_condition_input_channels = 3\nimage_condition_output_channels = 2\n"
                         "image_condition_h = 8\nimage_condition_w = 8\n");
    ldm_ctx_destroy(ctx);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    free(g_dir);
    return 0;
}

/* Runs ldmcl-sample on model with args; its exit status, output in g_text. */
static int sample(const char *model, const char *args) {
    snprintf(g_cmd, sizeof g_cmd, "'%s' -m '%s' -p 'a bag' --cfg-scale 2 %s 2>&1",
             LDMCL_SAMPLE_PROGRAM, model, args);
    return test_run_capture(g_cmd, g_text, sizeof g_text);
}

/* The file's bytes hold text. */
static void file_holds(const char *path, const char *text) {
    size_t len;
    char *png = (char *)test_read_file(path, &len);
    assert_non_null(png);
    if (!memmem(png, len, text, strlen(text))) fail_msg("%s lacks '%s'", path, text);
    free(png);
}

static void every_sampler_by_name(void **state) {
    (void)state;
    static const struct {
        const char *name, *a1111;
    } methods[] = {{"ddim", "DDIM"},
                   {"ddpm", "DDPM"},
                   {"euler", "Euler"},
                   {"euler_a", "Euler a"},
                   {"heun", "Heun"},
                   {"dpm2", "DPM2"},
                   {"dpm++2s_a", "DPM++ 2S a"},
                   {"dpm++2m", "DPM++ 2M"},
                   {"dpm++2mv2", "dpm++2mv2"},
                   {"ipndm", "ipndm"},
                   {"ipndm_v", "ipndm_v"},
                   {"lcm", "LCM"},
                   {"ddim_trailing", "ddim_trailing"},
                   {"tcd", "tcd"}};
    static const char *schedules[] = {"discrete", "karras",      "exponential",
                                      "ays",      "sgm_uniform", "simple"};
    static const char *a1111_schedules[] = {"Uniform",          "Karras",      "Exponential",
                                            "Align Your Steps", "SGM Uniform", "Simple"};
    char hex[65], want[256], out[4400], unet[4400];
    snprintf(unet, sizeof unet, "%s/unet.safetensors", g_eps);
    assert_status(ldm_file_sha256(unet, hex), LDM_OK);
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        const char *model = i % 2 ? g_v : g_eps; /* both predictions, alternately */
        char args[4600];
        snprintf(out, sizeof out, "%s/m%zu.png", g_dir, i);
        snprintf(args, sizeof args, "--sampling-method %s --scheduler %s --steps 3 -s 9 -o '%s'",
                 methods[i].name, schedules[i % 6], out);
        if (sample(model, args) != 0) fail_msg("%s: %s", methods[i].name, g_text);
        snprintf(want, sizeof want, "Sampler: %s", methods[i].a1111);
        file_holds(out, want);
        int own_steps = !strcmp(methods[i].name, "ddpm") || !strcmp(methods[i].name, "ddim") ||
                        !strcmp(methods[i].name, "ddim_trailing") ||
                        !strcmp(methods[i].name, "tcd");
        if (!own_steps) {
            snprintf(want, sizeof want, "Schedule type: %s, CFG scale: 2", a1111_schedules[i % 6]);
            file_holds(out, want);
        }
        file_holds(out, !strcmp(methods[i].name, "ddpm") ? "Steps: 50" : "Steps: 3");
    }
    /* A1111's model hash: the first 10 hex digits of the UNet file's SHA-256; the model's folder
     * name, quoted as JSON because it holds ',' and ':' */
    snprintf(out, sizeof out, "%s/m0.png", g_dir);
    snprintf(want, sizeof want, "Model hash: %.10s, Model: \"tiny, eps:1\", Version", hex);
    file_holds(out, want);
    /* Eta where it is used */
    snprintf(out, sizeof out, "%s/eta.png", g_dir);
    char args[4600];
    snprintf(args, sizeof args, "--sampling-method ddim_trailing --eta 0.5 --steps 2 -o '%s'", out);
    assert_int_equal(sample(g_eps, args), 0);
    file_holds(out, ", Eta: 0.5");
}

static void v_prediction_takes_ddpm_and_x0_previews(void **state) {
    (void)state;
    char args[4600], out[4400];
    snprintf(args, sizeof args, "--sampling-method ddpm --save-x0 1,50 -o '%s/vd.png'", g_dir);
    if (sample(g_v, args) != 0) fail_msg("%s", g_text);
    assert_contains(g_text, "/vd_x0-50.png: x0 after step 50 (t = 0)");
    snprintf(args, sizeof args, "--steps 3 --save-x0 all -o '%s/vi.png'", g_dir);
    assert_int_equal(sample(g_v, args), 0);
    assert_contains(g_text, "/vi_x0-3.png: x0 after step 3");
    snprintf(args, sizeof args, "--sampling-method dpm++2m --steps 3 --save-x0 2 -o '%s/vk.png'",
             g_dir);
    assert_int_equal(sample(g_v, args), 0);
    snprintf(out, sizeof out, "%s/vk_x0-2.png", g_dir);
    assert_true(test_file_exists(out));
}

/* The pixels of a PNG. */
static ldm_image read_png(const char *path) {
    ldm_image img;
    assert_status(ldm_png_read(path, 1, NULL, &img), LDM_OK);
    return img;
}

static void batch_images_reproduce_alone(void **state) {
    (void)state;
    static const char *methods[] = {"euler_a", "ddim --eta 1", "ddpm"};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        char args[4600], a[4400], b[4400];
        snprintf(args, sizeof args,
                 "--sampling-method %s --steps 3 --batch-size 2 -b 2 -s 20 -o '%s/bb%%d.png'",
                 methods[i], g_dir);
        assert_int_equal(sample(g_eps, args), 0);
        assert_contains(g_text, "/bb4.png: seed=23"); /* generation 1, image 1: 20 + 2 + 1 */
        snprintf(args, sizeof args, "--sampling-method %s --steps 3 -s 23 -o '%s/alone.png'",
                 methods[i], g_dir);
        assert_int_equal(sample(g_eps, args), 0);
        snprintf(a, sizeof a, "%s/bb4.png", g_dir);
        snprintf(b, sizeof b, "%s/alone.png", g_dir);
        ldm_image x = read_png(a), y = read_png(b);
        size_t n = (size_t)x.width * x.height, off = 0;
        assert_true(x.width == y.width && x.height == y.height);
        for (size_t k = 0; k < n; k++) /* 8-bit pixels: a rounding step at most */
            off += abs((int)x.pixels[k] - (int)y.pixels[k]) > 1;
        if (off) fail_msg("%s: %zu pixels differ between the batch and alone", methods[i], off);
        ldm_image_free(&x);
        ldm_image_free(&y);
        file_holds(a, "Seed: 23,");
    }
}

/* Writes a size x size test image (gray or RGB) to path. */
static void write_test_image(const char *path, int size, int channels, int black) {
    ldm_image img = {size, size, channels, malloc((size_t)size * size * channels)};
    assert_non_null(img.pixels);
    for (int i = 0; i < size * size * channels; i++)
        img.pixels[i] = black ? 0 : (unsigned char)((i * 37 + (i % channels) * 90) % 256);
    assert_status(ldm_png_write(path, &img, NULL), LDM_OK);
    ldm_image_free(&img);
}

static void img2img_and_inpainting(void **state) {
    (void)state;
    char init[4400], big[4400], black[4400], args[9000], a[4400], b[4400];
    snprintf(init, sizeof init, "%s/init.png", g_dir);
    snprintf(big, sizeof big, "%s/big-color.png", g_dir);
    snprintf(black, sizeof black, "%s/black.png", g_dir);
    write_test_image(init, 8, 1, 0);
    write_test_image(big, 16, 3, 0);
    write_test_image(black, 8, 1, 1);
    /* img2img with any sampler; the strength in the metadata */
    snprintf(args, sizeof args,
             "-i '%s' --strength 0.3 --sampling-method euler --steps 10 -o '%s/i2i.png'", init,
             g_dir);
    if (sample(g_eps, args) != 0) fail_msg("%s", g_text);
    snprintf(a, sizeof a, "%s/i2i.png", g_dir);
    file_holds(a, "Denoising strength: 0.3");
    /* another size and color: converted and resized, each with a note */
    snprintf(args, sizeof args, "--init-img '%s' --steps 4 -o '%s/i2i-big.png'", big, g_dir);
    assert_int_equal(sample(g_v, args), 0);
    assert_contains(g_text, "is 16x16; resized to the model's 8x8");
    assert_contains(g_text, "is in color; converted to gray");
    /* a black mask keeps all of the init: every seed and sampler gives the same image (the
     * autoencoder's reconstruction of the init) */
    static const char *methods[] = {"ddim", "euler_a", "ddpm"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args,
                 "-i '%s' --mask '%s' --strength 1 --sampling-method %s --steps 4 -s %d "
                 "-o '%s/keep%d.png'",
                 init, black, methods[i], 3 + i, g_dir, i);
        if (sample(g_eps, args) != 0) fail_msg("%s", g_text);
    }
    snprintf(a, sizeof a, "%s/keep0.png", g_dir);
    ldm_image x = read_png(a);
    for (int i = 1; i < 3; i++) {
        snprintf(b, sizeof b, "%s/keep%d.png", g_dir, i);
        ldm_image y = read_png(b);
        assert_memory_equal(x.pixels, y.pixels, (size_t)x.width * x.height);
        ldm_image_free(&y);
    }
    ldm_image_free(&x);
    /* a white mask repaints all: another seed, another image */
    snprintf(args, sizeof args, "-i '%s' --mask '%s' -s 4 --steps 4 -o '%s/paint.png'", init, init,
             g_dir);
    assert_int_equal(sample(g_eps, args), 0);
    /* bad inputs: each named, before any sampling (exit 2) */
    snprintf(args, sizeof args, "-i '%s/missing.png' -o '%s/no.png'", g_dir, g_dir);
    assert_int_equal(sample(g_eps, args), 2);
    assert_contains(g_text, "missing.png");
    snprintf(args, sizeof args, "-i '%s' --mask '%s/missing-mask.png' -o '%s/no.png'", init, g_dir,
             g_dir);
    assert_int_equal(sample(g_eps, args), 2);
    assert_contains(g_text, "missing-mask.png");
    snprintf(args, sizeof args, "-i '%s/tiny-v/model.ini' -o '%s/no.png'", g_dir, g_dir);
    assert_int_equal(sample(g_eps, args), 2);
    assert_contains(g_text, "model.ini");
    snprintf(b, sizeof b, "%s/no.png", g_dir);
    assert_false(test_file_exists(b));
    assert_int_equal(sample(g_eps, "--mask m.png"), 2);
    assert_contains(g_text, "--mask needs --init-img");
    assert_int_equal(sample(g_eps, "-i x.png --strength 0"), 2);
    assert_contains(g_text, "--strength 0: not a value it takes");
    assert_int_equal(sample(g_eps, "-i x.png --strength 1.5"), 2);
}

/* -W/-H where the model takes them (its latents at another size), a clear error elsewhere;
 * --scale for images, grids and previews; a grid carries its first image's text. */
static void sizes_scale_and_grid_text(void **state) {
    (void)state;
    char args[9000], out[4400];
    snprintf(args, sizeof args,
             "-W 12 -H 6 --sampling-method euler --steps 3 -o '%s/wide.png' -i '%s/init.png' "
             "--strength 0.5",
             g_dir, g_dir);
    if (sample(g_eps, args) != 0) fail_msg("%s", g_text);
    assert_contains(g_text, "is 8x8; resized to the model's 12x6");
    snprintf(out, sizeof out, "%s/wide.png", g_dir);
    ldm_image img = read_png(out);
    assert_true(img.width == 12 && img.height == 6);
    ldm_image_free(&img);
    file_holds(out, "Size: 12x6");
    assert_int_equal(sample(g_eps, "-W 7"), 1);
    assert_contains(g_text, "images of 7x8 (width x height): this model's sides must be multiples "
                            "of 2 (its autoencoder's 2x and its UNet's 1x downsampling)");
    snprintf(args, sizeof args,
             "--scale 3 --steps 2 -b 2 --save-x0 2 -o '%s/big.png' --grid '%s/biggrid.png'", g_dir,
             g_dir);
    assert_int_equal(sample(g_eps, args), 0);
    snprintf(out, sizeof out, "%s/big_2.png", g_dir);
    img = read_png(out);
    assert_true(img.width == 24 && img.height == 24);
    ldm_image_free(&img);
    snprintf(out, sizeof out, "%s/big_x0-2.png", g_dir);
    img = read_png(out);
    assert_true(img.width == 24 && img.height == 24);
    ldm_image_free(&img);
    snprintf(out, sizeof out, "%s/biggrid.png", g_dir);
    img = read_png(out);
    assert_true(img.width == 48 && img.height == 24);
    ldm_image_free(&img);
    file_holds(out, "a bag\nNegative prompt: \nSteps: 2");
    file_holds(out, "Seed: 42,");
    assert_int_equal(sample(g_eps, "--scale 0"), 2);
    assert_contains(g_text, "--scale 0: not a value it takes");
}

/* A mask-conditioned UNet (the reference's image_condition_config) takes its segmentation mask
 * from --mask: labels one-hot, resized by nearest label; another mask, another image; none, an
 * error saying what to give. */
static void mask_conditioned_models_take_their_mask(void **state) {
    (void)state;
    char m1[4400], m2[4400], args[9000], a[4400], b[4400];
    snprintf(m1, sizeof m1, "%s/labels1.png", g_dir);
    snprintf(m2, sizeof m2, "%s/labels2.png", g_dir);
    uint8_t px[16 * 16];
    for (int i = 0; i < 16 * 16; i++)
        px[i] = (uint8_t)(i % 16 < 8 ? 1 : 3); /* left: class 1, right: class 3 */
    ldm_image img = {16, 16, 1, px};
    assert_status(ldm_png_write(m1, &img, NULL), LDM_OK);
    for (int i = 0; i < 16 * 16; i++)
        px[i] = (uint8_t)(i / 16 < 8 ? 2 : 9); /* top: class 2; bottom: beyond the 3 classes */
    assert_status(ldm_png_write(m2, &img, NULL), LDM_OK);
    snprintf(args, sizeof args, "--mask '%s' --steps 3 -o '%s/seg1.png'", m1, g_dir);
    if (sample(g_mask, args) != 0) fail_msg("%s", g_text);
    assert_contains(g_text, "labels1.png' is 16x16; resized to the model's 8x8 (nearest label)");
    snprintf(args, sizeof args, "--mask '%s' --steps 3 -o '%s/seg2.png'", m2, g_dir);
    assert_int_equal(sample(g_mask, args), 0);
    assert_contains(g_text, "32 pixels have labels above the model's 3 classes");
    snprintf(a, sizeof a, "%s/seg1.png", g_dir);
    snprintf(b, sizeof b, "%s/seg2.png", g_dir);
    ldm_image x = read_png(a), y = read_png(b);
    assert_memory_not_equal(x.pixels, y.pixels, (size_t)x.width * x.height);
    ldm_image_free(&x);
    ldm_image_free(&y);
    assert_int_equal(sample(g_mask, "--steps 2"), 2);
    assert_contains(g_text, "this model is conditioned on a segmentation mask (3 classes, 8x8): "
                            "give it with --mask");
    /* a training config for such a UNet is refused: no dataset gives masks */
    char ini[4400];
    snprintf(ini, sizeof ini, "%s/model.ini", g_mask);
    snprintf(g_cmd, sizeof g_cmd, "'%s' '%s' 2>&1", LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(g_cmd, g_text, sizeof g_text), 2);
    assert_contains(g_text, "ldmcl-train cannot train a mask-conditioned UNet yet");
}

/* On a terminal (script(1) gives it one), a line per sampling step with its s/it. */
static void a_terminal_sees_each_step(void **state) {
    (void)state;
    snprintf(g_cmd, sizeof g_cmd,
             "script -qec \"'%s' -m '%s' -p 'a bag' --steps 3 -o '%s/tty.png'\" /dev/null 2>&1",
             LDMCL_SAMPLE_PROGRAM, g_eps, g_dir);
    assert_int_equal(test_run_capture(g_cmd, g_text, sizeof g_text), 0);
    assert_contains(g_text, "\rsampling: step 1/3");
    assert_contains(g_text, "\rsampling: step 3/3  ");
    assert_contains(g_text, " s/it");
}

/* A Stable Diffusion single file (the tiny 1.x model, its token embedding grown to CLIP's
 * vocabulary; F32 as the fixture writes it) and the 2.x inpainting one from the command line. */
static void stable_diffusion_checkpoints(void **state) {
    (void)state;
    char sd1[4400], sd2[4400], args[9000], init[4400], mask[4400], out[4400];
    snprintf(sd1, sizeof sd1, "%s/sd1.safetensors", g_dir);
    snprintf(sd2, sizeof sd2, "%s/sd2-inpainting.safetensors", g_dir);
    sd_fixture_rewrite("sd1_single.safetensors", sd1, NULL, NULL, 49408);
    sd_fixture_rewrite("sd2_single.safetensors", sd2, NULL, NULL, 49408);
    snprintf(args, sizeof args, "-H 64 -W 64 --steps 2 -o '%s/sd.png'", g_dir);
    assert_int_equal(sample(sd1, args), 1);
    assert_contains(g_text, "is a single-file checkpoint: it holds no tokenizer. Give CLIP's "
                            "vocabulary with --tokenizer");
    snprintf(args, sizeof args,
             "--tokenizer '%s' -H 64 -W 64 --steps 2 --sampling-method euler --scheduler karras "
             "--clip-skip 2 --vae-tiling -o '%s/sd.png'",
             LDMCL_CLIP_BPE_DEFAULT, g_dir);
    if (sample(sd1, args) != 0) fail_msg("%s", g_text);
    assert_contains(g_text, "SD 1.x epsilon, single file, F32 weights (prediction: epsilon, as "
                            "every 1.x model)");
    snprintf(out, sizeof out, "%s/sd.png", g_dir);
    ldm_image img = read_png(out);
    assert_int_equal(img.width, 64);
    free(img.pixels);
    file_holds(out, "Sampler: Euler, Schedule type: Karras");
    file_holds(out, "Model: sd1, Clip skip: 2");
    /* a LoRA named in the prompt, from --lora-model-dir; the tag stays in the metadata (A1111's) */
    snprintf(args, sizeof args,
             "--tokenizer '%s' -H 64 -W 64 --steps 2 -p 'a bag <lora:sd1_lora_kohya:0.5>' "
             "--lora-model-dir '%s/sd' -v -o '%s/sd-lora.png'",
             LDMCL_CLIP_BPE_DEFAULT, LDMCL_TEST_REF_DIR, g_dir);
    if (sample(sd1, args) != 0) fail_msg("%s", g_text);
    assert_contains(g_text, "sd1_lora_kohya.safetensors': 146 layers merged at weight +0.5");
    snprintf(out, sizeof out, "%s/sd-lora.png", g_dir);
    file_holds(out, "a bag <lora:sd1_lora_kohya:0.5>");
    snprintf(args, sizeof args,
             "--tokenizer '%s' -H 64 -W 64 --steps 2 -p 'a bag <lora:sd1_lora_kohya:0.5>' "
             "-o '%s/sd-lora.png'",
             LDMCL_CLIP_BPE_DEFAULT, g_dir);
    assert_int_equal(sample(sd1, args), 1);
    assert_contains(g_text, "give the folder of LoRA files with --lora-model-dir");
    /* the inpainting UNet: no mask is refused; with one it repaints; --prediction overrides */
    snprintf(init, sizeof init, "%s/sd-init.png", g_dir);
    snprintf(mask, sizeof mask, "%s/sd-mask.png", g_dir);
    write_test_image(init, 64, 3, 0);
    write_test_image(mask, 64, 1, 0);
    snprintf(args, sizeof args, "--tokenizer '%s' -H 64 -W 64 --steps 2 -o '%s/sd2.png'",
             LDMCL_CLIP_BPE_DEFAULT, g_dir);
    assert_int_equal(sample(sd2, args), 1);
    assert_contains(g_text, "has an inpainting UNet: give the image and the mask");
    snprintf(args, sizeof args,
             "--tokenizer '%s' -H 64 -W 64 --steps 2 -i '%s' --mask '%s' --prediction eps "
             "--sampling-method dpm++2m --weights f16 -o '%s/sd2.png'",
             LDMCL_CLIP_BPE_DEFAULT, init, mask, g_dir);
    if (sample(sd2, args) != 0) fail_msg("%s", g_text);
    assert_contains(g_text, "SD 2.x epsilon (inpainting UNet), single file, F32 weights "
                            "(prediction: epsilon, as asked)");
    snprintf(args, sizeof args, "--prediction x -o '%s/x.png'", g_dir);
    assert_int_equal(sample(sd2, args), 2);
    assert_contains(g_text, "--prediction x: eps or v");
    snprintf(args, sizeof args, "--weights f8 -o '%s/x.png'", g_dir);
    assert_int_equal(sample(sd2, args), 2);
    assert_contains(g_text, "--weights f8: f32 or f16");
}

static void bad_sampler_flags_are_refused(void **state) {
    (void)state;
    assert_int_equal(sample(g_eps, "--sampling-method euler_ancestral"), 2);
    assert_contains(g_text, "--sampling-method: unknown sampling method 'euler_ancestral' (known: "
                            "ddpm, ddim, euler, euler_a, heun");
    assert_int_equal(sample(g_eps, "--scheduler Karras"), 2);
    assert_contains(g_text, "unknown scheduler 'Karras' (known: discrete, karras, exponential");
    assert_int_equal(sample(g_eps, "--eta 1.5"), 2);
    assert_contains(g_text, "--eta 1.5: not a value it takes");
    char args[4600];
    snprintf(args, sizeof args, "--sampling-method tcd --steps 60 -o '%s/tcd.png'", g_dir);
    assert_int_equal(sample(g_eps, args), 1);
    assert_contains(g_text, "tcd with 60 steps");
    assert_null(strstr(g_text, "src/"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_sampler_by_name),
        cmocka_unit_test(v_prediction_takes_ddpm_and_x0_previews),
        cmocka_unit_test(batch_images_reproduce_alone),
        cmocka_unit_test(img2img_and_inpainting),
        cmocka_unit_test(sizes_scale_and_grid_text),
        cmocka_unit_test(mask_conditioned_models_take_their_mask),
        cmocka_unit_test(a_terminal_sees_each_step),
        cmocka_unit_test(stable_diffusion_checkpoints),
        cmocka_unit_test(bad_sampler_flags_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
