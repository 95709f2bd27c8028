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
#include "sample_args.h"
#include "sample_inputs.h"
#include "sample_output.h"
#include "sample_previews.h"

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
static void image_parameters(const sample_args *a, const ldm_model_config *c, const char *prompt,
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
static int write_image(const sample_args *a, const ldm_model_config *c, const char *prompt,
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
static int write_grid(const sample_args *a, const ldm_model_config *c, const char *prompt,
                      uint64_t seed, const float *images, int rows, int cols) {
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
    sample_args a;
    if (sample_args_parse(argc, argv, &a) != 0) return 2;
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
