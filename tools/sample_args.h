/* tools/sample_args.h: ldmcl-sample's command line (its flags, stable-diffusion.cpp's; see
 * tools/ldmcl_sample.c) read into sample_args, with its usage text. */
#ifndef LDMCL_TOOLS_SAMPLE_ARGS_H
#define LDMCL_TOOLS_SAMPLE_ARGS_H

#include <stdio.h>

#include "ldmcl/ldmcl.h"

typedef struct sample_args {
    const char *model, *prompt, *prompt_file, *negative, *output, *grid, *platform, *device;
    const char *save_x0;         /* "all" or a comma-separated list of 1-based step numbers */
    const char *init_img, *mask; /* img2img's start and inpainting's mask */
    const char *tokenizer;       /* CLIP's vocabulary for an SD single file */
    const char *lora_dir;        /* where <lora:NAME:W> finds NAME.safetensors */
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
} sample_args;

/* Reads argv into a (its defaults first): 0 to go on, -1 after printing why the command line is
 * refused (the program exits 2). --help and --version print and exit 0. */
int sample_args_parse(int argc, char **argv, sample_args *a);

#endif
