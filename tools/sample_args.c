/* tools/sample_args.c: ldmcl-sample's command line (see sample_args.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli_options.h"
#include "sample_args.h"

static void usage(FILE *f) {
    fprintf(
        f, "usage: ldmcl-sample -m MODEL -p PROMPT [options]\n"
           "  -m, --model PATH         a model folder (model.ini, unet/autoencoder safetensors),\n"
           "                           or a Stable Diffusion 1.x/2.x checkpoint: a .safetensors\n"
           "                           file (F32/F16/BF16) or a diffusers folder\n"
           "  --tokenizer PATH         CLIP's vocabulary for an SD .safetensors file, which holds\n"
           "                           none: bpe_simple_vocab_16e6.txt.gz or a Hugging Face\n"
           "                           tokenizer folder\n"
           "  --lora-model-dir DIR     the folder where a prompt's <lora:NAME:WEIGHT> finds\n"
           "                           NAME.safetensors (kohya's format; for a model folder,\n"
           "                           the lora.safetensors ldmcl-train writes)\n"
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

int sample_args_parse(int argc, char **argv, sample_args *a) {
    *a = (sample_args){.negative = "",
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
