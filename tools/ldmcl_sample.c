/* tools/ldmcl_sample.c: ldmcl-sample, text to image with a trained model folder (ldmcl/pipeline.h).
 * Flags follow stable-diffusion.cpp's: -m model, -p prompt, -n negative prompt, --steps,
 * --sampling-method ddpm|ddim, --cfg-scale, -s/--seed (negative: random), -b/--batch-count (image
 * i uses seed + i), -o output (output.png, output_2.png, ...; or a printf pattern with %d), plus
 * --grid FILE, --eta, --disable-image-metadata and the device flags. Every image's seed is
 * printed; PNGs carry A1111's "parameters" text (iTXt when the prompt is not Latin-1). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ldmcl/ldmcl.h"

typedef struct args {
    const char *model, *prompt, *negative, *output, *grid, *platform, *device;
    int steps, batch_count, ddpm, metadata, verbose;
    float cfg_scale, eta;
    long long seed;
} args;

static void usage(FILE *f) {
    fprintf(f,
            "usage: ldmcl-sample -m MODEL_DIR -p PROMPT [options]\n"
            "  -m, --model DIR          a model folder (model.ini, unet/autoencoder safetensors)\n"
            "  -p, --prompt TEXT        the prompt\n"
            "  -n, --negative-prompt T  the unconditional branch of guidance (default \"\")\n"
            "  --steps N                DDIM steps (default 20; DDPM always takes all T)\n"
            "  --sampling-method M      ddim (default) or ddpm (the reference's sampler)\n"
            "  --cfg-scale F            classifier-free guidance scale (default 7.0; 1: off)\n"
            "  --eta F                  DDIM noise (default 0)\n"
            "  -s, --seed N             seed (default 42; negative: random)\n"
            "  -b, --batch-count N      images to make; image i uses seed + i (default 1)\n"
            "  -o, --output PATH        output.png, output_2.png, ... or a pattern with %%d\n"
            "                           (default ./output.png)\n"
            "  --grid PATH              also write all images side by side\n"
            "  --disable-image-metadata no \"parameters\" text in the PNGs\n"
            "  --cl-platform P, --cl-device D   OpenCL platform/device (index or name)\n"
            "  -v, --verbose            print the library's notes\n");
}

static int parse(int argc, char **argv, args *a) {
    *a = (args){.negative = "",
                .output = "./output.png",
                .steps = 20,
                .batch_count = 1,
                .metadata = 1,
                .cfg_scale = 7.0f,
                .seed = 42};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int value = 1;
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            exit(0);
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
        } else if (!strcmp(k, "-n") || !strcmp(k, "--negative-prompt")) {
            a->negative = v;
        } else if (!strcmp(k, "-o") || !strcmp(k, "--output")) {
            a->output = v;
        } else if (!strcmp(k, "--grid")) {
            a->grid = v;
        } else if (!strcmp(k, "--cl-platform")) {
            a->platform = v;
        } else if (!strcmp(k, "--cl-device")) {
            a->device = v;
        } else if (!strcmp(k, "--sampling-method")) {
            if (strcmp(v, "ddim") && strcmp(v, "ddpm")) {
                fprintf(stderr, "ldmcl-sample: --sampling-method %s: ddim or ddpm\n", v);
                return -1;
            }
            a->ddpm = !strcmp(v, "ddpm");
        } else {
            char *end;
            double x = strtod(v, &end);
            if (*end || end == v) {
                fprintf(stderr, "ldmcl-sample: %s %s: not a number (or unknown option)\n", k, v);
                return -1;
            }
            if (!strcmp(k, "--steps") && x >= 1 && x <= 100000 && x == (int)x)
                a->steps = (int)x;
            else if ((!strcmp(k, "-b") || !strcmp(k, "--batch-count")) && x >= 1 && x <= 100000 &&
                     x == (int)x)
                a->batch_count = (int)x;
            else if (!strcmp(k, "--cfg-scale") && x >= 0 && x <= 100)
                a->cfg_scale = (float)x;
            else if (!strcmp(k, "--eta") && x >= 0 && x <= 10)
                a->eta = (float)x;
            else if ((!strcmp(k, "-s") || !strcmp(k, "--seed")) && x == (long long)x)
                a->seed = (long long)x;
            else {
                fprintf(stderr, "ldmcl-sample: unknown option or bad value: %s %s\n", k, v);
                return -1;
            }
        }
        i += value;
    }
    if (!a->model || !a->prompt) {
        fprintf(stderr, "ldmcl-sample: -m MODEL_DIR and -p PROMPT are required (see --help)\n");
        return -1;
    }
    return 0;
}

static void print_log(void *user, ldm_log_level level, const char *message) {
    if (level >= LDM_LOG_WARN || *(int *)user) fprintf(stderr, "ldmcl: %s\n", message);
}

/* output.png -> output_2.png for image i > 0; a pattern with %d or %0Nd gets i + 1 (the only
 * conversion accepted: the pattern is the user's, never a format string). */
static void output_name(const char *pattern, int i, char *out, size_t size) {
    const char *pct = strchr(pattern, '%');
    if (pct) {
        const char *q = pct + 1;
        int zero = *q == '0', width = 0;
        if (zero) q++;
        while (*q >= '0' && *q <= '9' && width < 100)
            width = width * 10 + (*q++ - '0');
        if (*q == 'd') {
            char num[128];
            snprintf(num, sizeof num, zero ? "%0*d" : "%*d", width, i + 1);
            snprintf(out, size, "%.*s%s%s", (int)(pct - pattern), pattern, num, q + 1);
            return;
        }
    }
    if (i == 0) {
        snprintf(out, size, "%s", pattern);
        return;
    }
    const char *dot = strrchr(pattern, '.'), *slash = strrchr(pattern, '/');
    if (dot && (!slash || dot > slash))
        snprintf(out, size, "%.*s_%d%s", (int)(dot - pattern), pattern, i + 1, dot);
    else
        snprintf(out, size, "%s_%d", pattern, i + 1);
}

static int fail(const char *what) {
    fprintf(stderr, "ldmcl-sample: %s: %s\n", what, ldm_last_error());
    return 1;
}

int main(int argc, char **argv) {
    args a;
    if (parse(argc, argv, &a) != 0) return 2;
    if (a.seed < 0) a.seed = (long long)(((uint64_t)time(NULL) * 2654435761u) & 0x7fffffff);
    ldm_ctx_options co;
    ldm_ctx_options_init(&co);
    co.platform = a.platform;
    co.device = a.device;
    co.log = print_log;
    co.log_user = &a.verbose;
    ldm_ctx *ctx;
    if (ldm_ctx_create(&co, &ctx) != LDM_OK) return fail("opening the OpenCL device");
    ldm_pipeline_options po = {.method = a.ddpm ? LDM_SAMPLER_DDPM : LDM_SAMPLER_DDIM,
                               .steps = a.steps,
                               .guidance_scale = a.cfg_scale,
                               .eta = a.eta,
                               .batch = 1};
    ldm_pipeline *p;
    if (ldm_pipeline_open(ctx, a.model, &po, &p) != LDM_OK) {
        int rc = fail("loading the model");
        ldm_ctx_destroy(ctx);
        return rc;
    }
    const ldm_run_config *c = ldm_pipeline_config(p);
    int size = c->resolution, ch = c->channels, n = a.batch_count;
    size_t per = (size_t)ch * size * size;
    float *images = malloc((size_t)n * per * sizeof *images);
    int rc = images ? 0 : 1;
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t seed = (uint64_t)a.seed + (uint64_t)i;
        if (ldm_pipeline_generate(p, a.prompt, a.negative, seed, images + i * per) != LDM_OK) {
            rc = fail("generating");
            break;
        }
        ldm_image img;
        char path[4096], params[4096];
        output_name(a.output, i, path, sizeof path);
        snprintf(params, sizeof params,
                 "%s\nNegative prompt: %s\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %" PRIu64
                 ", Size: %dx%d, Model: %s, Version: ldmcl %s",
                 a.prompt, a.negative, a.ddpm ? c->num_timesteps : a.steps,
                 a.ddpm ? "DDPM" : "DDIM", (double)a.cfg_scale, seed, size, size, a.model,
                 LDMCL_VERSION);
        const char *text[] = {"parameters", params, NULL};
        if (ldm_image_from_tensor(images + i * per, ch, size, size, &img) != LDM_OK ||
            ldm_png_write(path, &img, a.metadata ? text : NULL) != LDM_OK) {
            ldm_image_free(&img);
            rc = fail("writing the image");
            break;
        }
        ldm_image_free(&img);
        printf("%s: seed=%" PRIu64 "\n", path, seed);
    }
    if (rc == 0 && a.grid) {
        /* all images side by side, in a row */
        float *row = malloc((size_t)n * per * sizeof *row);
        ldm_image grid;
        for (int k = 0; row && k < ch; k++)
            for (int y = 0; y < size; y++)
                for (int i = 0; i < n; i++)
                    memcpy(row + ((size_t)k * size + y) * size * n + (size_t)i * size,
                           images + i * per + ((size_t)k * size + y) * size, size * sizeof *row);
        if (!row || ldm_image_from_tensor(row, ch, size, size * n, &grid) != LDM_OK ||
            ldm_png_write(a.grid, &grid, NULL) != LDM_OK)
            rc = fail("writing the grid");
        else
            printf("%s: grid of %d images\n", a.grid, n);
        if (row) ldm_image_free(&grid);
        free(row);
    }
    free(images);
    ldm_pipeline_destroy(p);
    ldm_ctx_destroy(ctx);
    return rc;
}
