/* tools/ldmcl_sample.c: ldmcl-sample, text to image with a trained model folder or a Stable
 * Diffusion 1.x/2.x checkpoint (a .safetensors file or a diffusers folder; ldmcl/pipeline.h).
 * Flags follow stable-diffusion.cpp's: -m model, -p prompt, -n negative prompt, --steps,
 * --sampling-method (ddim, ddpm and stable-diffusion.cpp's samplers), --scheduler, --cfg-scale,
 * -s/--seed (negative: random), -b/--batch-count, -o output (output.png, output_2.png, ...; or a
 * printf pattern with %d), plus --grid FILE, --eta, --disable-image-metadata and the device flags;
 * --batch-size B makes B images per pass (image j of generation g uses seed + g B + j, so each is
 * reproducible alone) and --prompt-file FILE takes one
 * prompt per line (a grid row each); --save-x0 STEPS writes the decoded x0 prediction after the
 * chosen sampling steps (the reference writes all of them). Every image's seed is printed; PNGs
 * carry A1111's "parameters" text (iTXt when the prompt is not Latin-1). Before any work, -o names
 * too long for a file and --save-x0 steps beyond the chain are refused (exit 2). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_options.h"
#include "ldmcl/ldmcl.h"
#include "sample_inputs.h"
#include "sample_output.h"
#include "sample_previews.h"

typedef struct args {
    const char *model, *prompt, *prompt_file, *negative, *output, *grid, *platform, *device;
    const char *save_x0;         /* "all" or a comma-separated list of 1-based step numbers */
    const char *init_img, *mask; /* img2img's start and inpainting's mask */
    const char *tokenizer;       /* CLIP's vocabulary for an SD single file */
    const char *lora_dir;        /* SD: where <lora:NAME:W> finds NAME.safetensors */
    int clip_skip, prediction;   /* SD: A1111's clip skip; 0 the model's prediction, 1 eps, 2 v */
    int vae_tiling;              /* SD: decode 32x32-cell tiles with blended seams */
    int half_weights;            /* SD: --weights f16 */
    float strength;
    int steps, batch_count, batch_size, metadata, verbose;
    int height, width, scale; /* -H/-W (0: the model's), --scale */
    ldm_sampler_method method;
    ldm_sigma_schedule scheduler;
    float cfg_scale, eta;
    long long seed;
    char model_hash[11]; /* the UNet file's, for the metadata */
} args;

static void usage(FILE *f) {
    fprintf(
        f, "usage: ldmcl-sample -m MODEL -p PROMPT [options]\n"
           "  -m, --model PATH         a model folder (model.ini, unet/autoencoder safetensors),\n"
           "                           or a Stable Diffusion 1.x/2.x checkpoint: a .safetensors\n"
           "                           file (F32/F16/BF16) or a diffusers folder\n"
           "  --tokenizer PATH         CLIP's vocabulary for an SD .safetensors file, which holds\n"
           "                           none: bpe_simple_vocab_16e6.txt.gz or a Hugging Face\n"
           "                           tokenizer folder\n"
           "  --lora-model-dir DIR     SD: the folder where a prompt's <lora:NAME:WEIGHT>\n"
           "                           finds NAME.safetensors (kohya's format)\n"
           "  --clip-skip N            SD: condition on the text encoder's N-th layer from the\n"
           "                           end (1, the default, is the model's own)\n"
           "  --prediction P           SD: eps or v, overriding what ldmcl detects\n"
           "  --weights f32|f16        SD: keep the model's weights in float (default)\n"
           "                           or half precision on the device (half the memory;\n"
           "                           arithmetic in float either way)\n"
           "  --vae-tiling             SD: decode in tiles of 256x256 pixels, seams blended\n"
           "                           (the decoder's memory a tile's, not the image's)\n"
           "  -p, --prompt TEXT        the prompt\n"
           "  -n, --negative-prompt T  the unconditional branch of guidance (default \"\")\n");
    fprintf(
        f, "  --steps N                sampling steps (default 20; ddpm always takes all T)\n"
           "  --sampling-method M      ddim (default), ddpm (the reference's), or one of\n"
           "                           stable-diffusion.cpp's: euler, euler_a, heun, dpm2,\n"
           "                           dpm++2s_a, dpm++2m, dpm++2mv2, ipndm, ipndm_v, lcm,\n"
           "                           ddim_trailing, tcd\n"
           "  --scheduler S            the sigma schedule of those: discrete (default), karras,\n"
           "                           exponential, ays, sgm_uniform, simple\n"
           "  --cfg-scale F            classifier-free guidance scale (default 7.0; 1: off)\n"
           "  -i, --init-img PATH      img2img: start from this image (PNG or JPEG; converted\n"
           "                           to the model's channels and size, with a note)\n"
           "  --strength S             how much of the chain img2img runs, 0 < S <= 1\n"
           "                           (default 0.75; 1: from noise alone)\n"
           "  --mask PATH              inpainting, with --init-img: white repaints, black\n"
           "                           keeps (gray: partly; resized to the image, with a note);\n"
           "                           for a mask-conditioned UNet, its segmentation mask (a gray\n"
           "                           PNG of class labels, 0 the background)\n"
           "  --eta F                  noise of ddim, ddim_trailing and tcd, 0 to 1 (default 0)\n"
           "  -s, --seed N             seed (default 42; negative: random)\n"
           "  --prompt-file FILE       one prompt per line instead of -p (blank lines and\n"
           "                           lines starting with # skipped); a grid row each\n"
           "  -b, --batch-count N      generations per prompt (default 1)\n"
           "  --batch-size B           images per generation, made together (default 1);\n"
           "                           image j of generation g uses seed + g*B + j, the same\n"
           "                           image a run with that seed and batch size 1 makes\n"
           "  -o, --output PATH        output.png, output_2.png, ... or a pattern with %%d\n"
           "                           (default ./output.png)\n"
           "  --grid PATH              also write all images side by side (with the first\n"
           "                           image's parameters text)\n"
           "  -H, --height N, -W, --width N   image size where the model takes it (multiples of\n"
           "                           its downsampling; default the model's resolution)\n"
           "  --scale N                write images, grids and previews N times larger\n"
           "                           (nearest neighbour; 1 to 64, default 1)\n"
           "  --save-x0 STEPS          also write the x0 prediction after these sampling steps\n"
           "                           (1-based, comma-separated, or all) as OUTPUT_x0-STEP.png\n"
           "  --disable-image-metadata no \"parameters\" text in the PNGs\n"
           "  --cl-platform P, --cl-device D   OpenCL platform/device (index or name)\n"
           "  -v, --verbose            print the library's notes\n"
           "  --version                print the version\n"
           "  -h, --help               this text\n");
}

/* Every option, for telling a mistyped one from a known one. */
static const char *const options[] = {"-m",
                                      "--model",
                                      "--tokenizer",
                                      "--lora-model-dir",
                                      "--clip-skip",
                                      "--prediction",
                                      "--vae-tiling",
                                      "--weights",
                                      "-p",
                                      "--prompt",
                                      "-n",
                                      "--negative-prompt",
                                      "--steps",
                                      "--sampling-method",
                                      "--scheduler",
                                      "--cfg-scale",
                                      "-i",
                                      "--init-img",
                                      "--strength",
                                      "-H",
                                      "--height",
                                      "-W",
                                      "--width",
                                      "--scale",
                                      "--mask",
                                      "--eta",
                                      "-s",
                                      "--seed",
                                      "--prompt-file",
                                      "-b",
                                      "--batch-count",
                                      "--batch-size",
                                      "-o",
                                      "--output",
                                      "--grid",
                                      "--save-x0",
                                      "--disable-image-metadata",
                                      "--cl-platform",
                                      "--cl-device",
                                      "-v",
                                      "--verbose",
                                      "--version",
                                      "-h",
                                      "--help"};

static int known_option(const char *k) {
    for (size_t i = 0; i < sizeof options / sizeof *options; i++)
        if (!strcmp(k, options[i])) return 1;
    return 0;
}

/* ldmcl-sample writes PNG files: a name of another kind is refused, not filled with PNG bytes. */
static int png_name(const char *flag, const char *path) {
    size_t n = strlen(path);
    if (n >= 4 && !strcasecmp(path + n - 4, ".png")) return 1;
    fprintf(stderr, "ldmcl-sample: %s '%s': ldmcl-sample writes PNG images; name the file .png\n",
            flag, path);
    return 0;
}

static int parse(int argc, char **argv, args *a) {
    *a = (args){.negative = "",
                .output = "./output.png",
                .steps = 20,
                .batch_count = 1,
                .batch_size = 1,
                .metadata = 1,
                .method = LDM_SAMPLER_DDIM,
                .cfg_scale = 7.0f,
                .strength = 0.75f,
                .scale = 1,
                .seed = 42};
    char text[1024];
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int value = 1;
        if (!known_option(k)) {
            cli_unknown_option("ldmcl-sample", k, options, sizeof options / sizeof *options);
            return -1;
        } else if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(k, "--version")) {
            printf("ldmcl-sample %s\n", LDMCL_VERSION);
            exit(0);
        } else if (!strcmp(k, "--vae-tiling")) {
            a->vae_tiling = 1, value = 0;
        } else if (!strcmp(k, "--disable-image-metadata")) {
            a->metadata = 0, value = 0;
        } else if (!strcmp(k, "-v") || !strcmp(k, "--verbose")) {
            a->verbose = 1, value = 0;
        } else if (!v) {
            fprintf(stderr, "ldmcl-sample: '%s' needs a value (see --help)\n", k);
            return -1;
        } else if (!strcmp(k, "-m") || !strcmp(k, "--model")) {
            a->model = v;
        } else if (!strcmp(k, "-p") || !strcmp(k, "--prompt")) {
            a->prompt = v;
        } else if (!strcmp(k, "--prompt-file")) {
            a->prompt_file = v;
        } else if (!strcmp(k, "-n") || !strcmp(k, "--negative-prompt")) {
            a->negative = v;
        } else if (!strcmp(k, "-o") || !strcmp(k, "--output")) {
            a->output = v;
        } else if (!strcmp(k, "-i") || !strcmp(k, "--init-img")) {
            a->init_img = v;
        } else if (!strcmp(k, "--mask")) {
            a->mask = v;
        } else if (!strcmp(k, "--weights")) {
            if (strcmp(v, "f32") && strcmp(v, "f16")) {
                fprintf(stderr, "ldmcl-sample: --weights %s: f32 or f16\n", v);
                return -1;
            }
            a->half_weights = !strcmp(v, "f16");
        } else if (!strcmp(k, "--tokenizer")) {
            a->tokenizer = v;
        } else if (!strcmp(k, "--lora-model-dir")) {
            a->lora_dir = v;
        } else if (!strcmp(k, "--prediction")) {
            if (!strcmp(v, "eps") || !strcmp(v, "epsilon"))
                a->prediction = 1;
            else if (!strcmp(v, "v") || !strcmp(v, "v_prediction"))
                a->prediction = 2;
            else {
                fprintf(stderr, "ldmcl-sample: --prediction %s: eps or v\n", v);
                return -1;
            }
        } else if (!strcmp(k, "--grid")) {
            a->grid = v;
        } else if (!strcmp(k, "--save-x0")) {
            a->save_x0 = v;
        } else if (!strcmp(k, "--cl-platform")) {
            a->platform = v;
        } else if (!strcmp(k, "--cl-device")) {
            a->device = v;
        } else if (!strcmp(k, "--sampling-method")) {
            if (ldm_sampler_method_from_name(v, &a->method) != LDM_OK) {
                fprintf(stderr, "ldmcl-sample: --sampling-method: %s\n",
                        cli_user_text(ldm_last_error(), 0, text, sizeof text));
                return -1;
            }
        } else if (!strcmp(k, "--scheduler")) {
            if (ldm_sigma_schedule_from_name(v, &a->scheduler) != LDM_OK) {
                fprintf(stderr, "ldmcl-sample: --scheduler: %s\n",
                        cli_user_text(ldm_last_error(), 0, text, sizeof text));
                return -1;
            }
        } else {
            char *end;
            double x = strtod(v, &end);
            if (*end || end == v) {
                fprintf(stderr, "ldmcl-sample: %s %s: not a number\n", k, v);
                return -1;
            }
            if (!strcmp(k, "--steps") && x >= 1 && x <= 100000 && x == (int)x)
                a->steps = (int)x;
            else if ((!strcmp(k, "-b") || !strcmp(k, "--batch-count")) && x >= 1 && x <= 100000 &&
                     x == (int)x)
                a->batch_count = (int)x;
            else if (!strcmp(k, "--batch-size") && x >= 1 && x <= 4096 && x == (int)x)
                a->batch_size = (int)x;
            else if (!strcmp(k, "--cfg-scale") && x >= 0 && x <= 100)
                a->cfg_scale = (float)x;
            else if ((!strcmp(k, "-H") || !strcmp(k, "--height")) && x >= 1 && x <= 65536 &&
                     x == (int)x)
                a->height = (int)x;
            else if ((!strcmp(k, "-W") || !strcmp(k, "--width")) && x >= 1 && x <= 65536 &&
                     x == (int)x)
                a->width = (int)x;
            else if (!strcmp(k, "--scale") && x >= 1 && x <= 64 && x == (int)x)
                a->scale = (int)x;
            else if (!strcmp(k, "--strength") && x > 0 && x <= 1)
                a->strength = (float)x;
            else if (!strcmp(k, "--eta") && x >= 0 && x <= 1)
                a->eta = (float)x;
            else if (!strcmp(k, "--clip-skip") && x >= 0 && x <= 64 && x == (int)x)
                a->clip_skip = (int)x;
            else if ((!strcmp(k, "-s") || !strcmp(k, "--seed")) && x == (long long)x)
                a->seed = (long long)x;
            else {
                fprintf(stderr, "ldmcl-sample: %s %s: not a value it takes (see --help)\n", k, v);
                return -1;
            }
        }
        i += value;
    }
    if (!png_name("-o", a->output) || (a->grid && !png_name("--grid", a->grid))) return -1;

    if (!a->model || !a->prompt == !a->prompt_file) {
        fprintf(stderr, "ldmcl-sample: -m MODEL and one of -p PROMPT or --prompt-file FILE are "
                        "required (see --help)\n");
        return -1;
    }
    return 0;
}

static void print_log(void *user, ldm_log_level level, const char *message) {
    char text[4096];
    if (level >= LDM_LOG_WARN || *(int *)user)
        fprintf(stderr, "ldmcl: %s\n", cli_user_text(message, *(int *)user, text, sizeof text));
}

static int g_verbose; /* -v: the library's messages with their source positions */

static int fail(const char *what) {
    char text[4096];
    fprintf(stderr, "ldmcl-sample: %s: %s\n", what,
            cli_user_text(ldm_last_error(), g_verbose, text, sizeof text));
    return 1;
}

/* A1111's parameters text of one image. */
static void image_parameters(const args *a, const ldm_model_config *c, const char *prompt,
                             uint64_t seed, int pos, char *out, size_t size) {
    a1111_params ap = {.prompt = prompt,
                       .negative = a->negative,
                       .model_dir = a->model,
                       .model_hash = a->model_hash[0] ? a->model_hash : NULL,
                       .method = a->method,
                       .scheduler = a->scheduler,
                       .steps = a->method == LDM_SAMPLER_DDPM ? c->num_timesteps : a->steps,
                       .width = a->width,
                       .height = a->height,
                       .batch_size = a->batch_size,
                       .batch_pos = pos,
                       .cfg_scale = a->cfg_scale,
                       .eta = a->eta,
                       .strength = a->init_img ? a->strength : 0.0f,
                       .clip_skip = a->clip_skip,
                       .seed = seed};
    a1111_parameters(&ap, out, size);
}

/* One image as a PNG (--scale times larger) with A1111's parameters text. */
static int write_image(const args *a, const ldm_model_config *c, const char *prompt,
                       const float *image, int index, uint64_t seed, int pos) {
    char path[OUTPUT_MAX], params[8192];
    output_name(a->output, index, path, sizeof path); /* fits: output_names_fit */
    image_parameters(a, c, prompt, seed, pos, params, sizeof params);
    const char *text[] = {"parameters", params, NULL};
    if (write_png_scaled(path, image, c->channels, a->height, a->width, a->scale,
                         a->metadata ? text : NULL) != LDM_OK)
        return fail("writing the image");
    printf("%s: seed=%" PRIu64 "\n", path, seed);
    return 0;
}

/* rows x cols images [C, h, w] as one image, row by row, with the first image's text. */
static int write_grid(const args *a, const ldm_model_config *c, const char *prompt, uint64_t seed,
                      const float *images, int rows, int cols) {
    int ch = c->channels, h = a->height, w = a->width;
    size_t per = (size_t)ch * h * w, W = (size_t)w * cols;
    float *g = malloc((size_t)rows * cols * per * sizeof *g);
    for (int r = 0; g && r < rows; r++)
        for (int k = 0; k < ch; k++)
            for (int y = 0; y < h; y++)
                for (int i = 0; i < cols; i++)
                    memcpy(g + ((size_t)k * h * rows + (size_t)r * h + y) * W + (size_t)i * w,
                           images + ((size_t)r * cols + i) * per + ((size_t)k * h + y) * w,
                           w * sizeof *g);
    char params[8192];
    image_parameters(a, c, prompt, seed, 0, params, sizeof params);
    const char *text[] = {"parameters", params, NULL};
    int rc = 0;
    if (!g || write_png_scaled(a->grid, g, ch, h * rows, (int)W, a->scale,
                               a->metadata ? text : NULL) != LDM_OK)
        rc = fail("writing the grid");
    else
        printf("%s: grid of %d x %d images\n", a->grid, rows, cols);
    free(g);
    return rc;
}

int main(int argc, char **argv) {
    args a;
    if (parse(argc, argv, &a) != 0) return 2;
    g_verbose = a.verbose;
    long x0_last = 0;
    if (a.save_x0 && !x0_list_ok(a.save_x0, &x0_last)) {
        fprintf(stderr, "ldmcl-sample: --save-x0 %s: 'all' or step numbers from 1, like 1,10,20\n",
                a.save_x0);
        return 2;
    }
    int run_steps = a.steps; /* img2img runs the last steps x strength of them */
    if (a.init_img)
        run_steps =
            (int)((double)a.steps * a.strength) < 1 ? 1 : (int)((double)a.steps * a.strength);
    if (a.save_x0 && a.method != LDM_SAMPLER_DDPM &&
        !x0_steps_ok(a.save_x0, x0_last, run_steps,
                     a.init_img ? "--steps x --strength" : "--steps"))
        return 2;
    prompts pr;
    if (prompts_read(a.prompt, a.prompt_file, &pr) != 0) return 2;
    if ((long long)pr.count * a.batch_count * a.batch_size > INT_MAX) {
        fprintf(stderr, "ldmcl-sample: %d prompts x %d generations x %d images: too many\n",
                pr.count, a.batch_count, a.batch_size);
        prompts_free(&pr);
        return 2;
    }
    if (output_names_fit(a.output, pr.count * a.batch_count * a.batch_size, a.save_x0 != NULL) !=
        0) {
        prompts_free(&pr);
        return 2;
    }
    if (make_parent_dirs(a.output) != 0 || (a.grid && make_parent_dirs(a.grid) != 0)) {
        prompts_free(&pr);
        return 1;
    }
    if (a.seed < 0) a.seed = (long long)(((uint64_t)time(NULL) * 2654435761u) & 0x7fffffff);
    ldm_ctx_options co;
    ldm_ctx_options_init(&co);
    co.platform = a.platform;
    co.device = a.device;
    co.log = print_log;
    co.log_user = &a.verbose;
    ldm_ctx *ctx;
    if (ldm_ctx_create(&co, &ctx) != LDM_OK) {
        prompts_free(&pr);
        return fail("opening the OpenCL device");
    }
    ldm_pipeline_options po = {.height = a.height,
                               .width = a.width,
                               .method = a.method,
                               .steps = a.steps,
                               .guidance_scale = a.cfg_scale,
                               .eta = a.eta,
                               .batch = a.batch_size,
                               .scheduler = a.scheduler,
                               .tokenizer = a.tokenizer,
                               .clip_skip = a.clip_skip,
                               .prediction = a.prediction,
                               .vae_tile = a.vae_tiling ? 32 : 0,
                               .half_weights = a.half_weights,
                               .lora_dir = a.lora_dir};
    progress_line progress = {0};
    if (isatty(fileno(stderr))) po.progress = (ldm_step_hook){show_step, &progress};
    x0_saver saver = {
        .steps = a.save_x0, .output = a.output, .batch = a.batch_size, .scale = a.scale};
    if (a.save_x0) po.x0_hook = (ldm_x0_hook){x0_want, x0_take, &saver};
    ldm_pipeline *p;
    if (ldm_pipeline_open(ctx, a.model, &po, &p) != LDM_OK) {
        int rc = fail("loading the model");
        ldm_ctx_destroy(ctx);
        prompts_free(&pr);
        return rc;
    }
    const ldm_model_config *c = ldm_pipeline_config(p);
    saver.channels = c->channels;
    char unet[OUTPUT_MAX], hex[65];
    const ldm_sd_model *sd = ldm_pipeline_sd_model(p);
    if (sd) { /* A1111's model hash is its checkpoint file's; a folder's UNet's */
        char what[256];
        ldm_sd_model_describe(sd, what, sizeof what);
        fprintf(stderr, "ldmcl-sample: %s: %s (prediction: %s)\n", a.model, what,
                sd->prediction_how);
        snprintf(unet, sizeof unet, "%s", sd->unet_file);
    } else {
        snprintf(unet, sizeof unet, "%s/unet.safetensors", a.model);
    }
    if (a.metadata && ldm_file_sha256(unet, hex) == LDM_OK) {
        memcpy(a.model_hash, hex, 10);
        a.model_hash[10] = '\0';
    }
    if (a.save_x0 && a.method == LDM_SAMPLER_DDPM &&
        !x0_steps_ok(a.save_x0, x0_last, c->num_timesteps, "DDPM takes all of the model's")) {
        ldm_pipeline_destroy(p);
        ldm_ctx_destroy(ctx);
        prompts_free(&pr);
        return 2;
    }
    ldm_pipeline_image_size(p, &a.height, &a.width);
    saver.height = a.height;
    saver.width = a.width;
    int h = a.height, w = a.width, ch = c->channels, B = a.batch_size;
    int cols = a.batch_count * B;
    size_t per = (size_t)ch * h * w;
    float *images = malloc((size_t)pr.count * cols * per * sizeof *images);
    float *init = NULL, *mask = NULL;
    int rc = images ? 0 : fail("allocating the images");
    int classes = c->unet.image_cond_input_channels; /* a mask-conditioned UNet: --mask is that */
    if (rc == 0 && classes && !a.mask) {
        fprintf(stderr,
                "ldmcl-sample: this model is conditioned on a segmentation mask (%d classes, "
                "%dx%d): give it with --mask (a gray PNG of class labels, 0 the background)\n",
                classes, c->image_cond_w, c->image_cond_h);
        rc = 2;
    } else if (rc == 0 && a.mask && !a.init_img && !classes) {
        fprintf(stderr, "ldmcl-sample: --mask needs --init-img (the image to inpaint)\n");
        rc = 2;
    } else if (rc == 0 && classes) {
        size_t n = (size_t)B * classes * c->image_cond_h * c->image_cond_w;
        float *labels = malloc(n * sizeof *labels);
        if (!labels)
            rc = fail("allocating the mask");
        else if (read_mask_labels(a.mask, classes, c->image_cond_h, c->image_cond_w, B, labels))
            rc = 2;
        else if (ldm_pipeline_set_mask_condition(p, labels) != LDM_OK)
            rc = fail("the mask");
        free(labels);
    }
    if (rc == 0 && a.init_img) { /* bad image inputs are the user's: exit 2 */
        init = malloc((size_t)B * per * sizeof *init);
        if (a.mask && !classes) mask = malloc((size_t)B * h * w * sizeof *mask); /* inpainting */
        if (!init || (a.mask && !classes && !mask))
            rc = fail("allocating the init image");
        else if (read_init_image(a.init_img, ch, h, w, B, init) != 0 ||
                 (mask && read_mask(a.mask, h, w, B, mask) != 0))
            rc = 2;
    }
    for (int r = 0; r < pr.count && rc == 0; r++)
        for (int g = 0; g < a.batch_count && rc == 0; g++) {
            uint64_t seed = (uint64_t)a.seed + (uint64_t)g * (uint64_t)B;
            float *out = images + ((size_t)r * cols + (size_t)g * B) * per;
            saver.first_index = r * cols + g * B;
            ldm_status st = init ? ldm_pipeline_generate_from(p, pr.text[r], a.negative, seed, init,
                                                              mask, a.strength, out)
                                 : ldm_pipeline_generate(p, pr.text[r], a.negative, seed, out);
            if (st != LDM_OK) {
                rc = fail("generating");
                break;
            }
            for (int j = 0; j < B && rc == 0; j++)
                rc = write_image(&a, c, pr.text[r], out + (size_t)j * per, r * cols + g * B + j,
                                 seed + (uint64_t)j, j);
        }
    if (rc == 0 && a.grid)
        rc = write_grid(&a, c, pr.text[0], (uint64_t)a.seed, images, pr.count, cols);
    free(images);
    free(init);
    free(mask);
    ldm_pipeline_destroy(p);
    ldm_ctx_destroy(ctx);
    prompts_free(&pr);
    return rc;
}
