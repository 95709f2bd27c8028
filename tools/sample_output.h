/* tools/sample_output.h: what ldmcl-sample writes besides pixels: output names (-o patterns,
 * x0 preview names), their folders, and A1111's "parameters" text. */
#ifndef LDMCL_TOOLS_SAMPLE_OUTPUT_H
#define LDMCL_TOOLS_SAMPLE_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/ldmcl.h"

#define OUTPUT_MAX 4096 /* bytes of an output path, its NUL included */

/* output.png -> output_2.png for image i > 0; a pattern with %d or %0Nd gets i + 1 (the only
 * conversion accepted: the pattern is the user's, never a format string). The name's length, or
 * -1 when it does not fit `size`. */
int output_name(const char *pattern, int i, char *out, size_t size);

/* The --save-x0 preview name of an image name (stem_x0-STEP.png); its length, or -1. */
int x0_name(const char *base, int step, char *out, size_t size);

/* Whether -o makes usable names for `images` images (with x0 previews when with_x0): each fits
 * the path buffer and its file name NAME_MAX. Prints why not and returns -1; 0 when usable. */
int output_names_fit(const char *output, int images, int with_x0);

/* Creates the folders above `path` (mkdir -p of its dirname). 0, or 1 after naming the folder. */
int make_parent_dirs(const char *path);

/* Floats [channels, h, w] in [-1, 1] as a PNG scale times larger (nearest neighbour), with
 * text pairs (NULL-terminated; NULL: none). */
ldm_status write_png_scaled(const char *path, const float *x, int channels, int h, int w, int scale,
                            const char *const *text);

/* One image's generation, as A1111 writes it. */
typedef struct a1111_params {
    const char *prompt, *negative, *model_dir;
    const char *model_hash; /* 10 hex digits, or NULL */
    ldm_sampler_method method;
    ldm_sigma_schedule scheduler;
    int steps, width, height, batch_size, batch_pos;
    int clip_skip;                  /* written when above 1, as A1111 */
    float cfg_scale, eta, strength; /* strength: img2img's (0: none) */
    uint64_t seed;
} a1111_params;

/* A1111's "parameters" text (prompt, "Negative prompt: ...", then "Steps: ..., Sampler: ...,
 * Schedule type: ..., CFG scale, Seed, Size, Model hash, Model (a checkpoint file's name without
 * .safetensors), Denoising strength, Clip skip, Eta, Batch size/pos, Version"), values holding ',',
 * ':' or a newline quoted as A1111 quotes them (JSON). */
void a1111_parameters(const a1111_params *p, char *out, size_t size);

/* A1111's name of a sampler ("Euler a", "DPM++ 2M") and of a sigma schedule ("Karras"); methods
 * A1111 lacks keep stable-diffusion.cpp's name. */
const char *a1111_sampler_name(ldm_sampler_method m);
const char *a1111_schedule_name(ldm_sigma_schedule s);

#endif
