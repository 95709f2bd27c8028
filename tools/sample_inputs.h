/* tools/sample_inputs.h: ldmcl-sample's inputs besides flags: the prompts (-p or
 * --prompt-file), and --init-img and --mask read, converted and resized for the model, with a
 * note for every conversion and an error naming the file. */
#ifndef LDMCL_TOOLS_SAMPLE_INPUTS_H
#define LDMCL_TOOLS_SAMPLE_INPUTS_H

#include <stddef.h>

/* The init image (PNG or JPEG) as batch copies of [channels, h, w] in [-1, 1]: converted to the
 * model's channels (color to gray as PIL's "L", gray to RGB replicated) and, when its size
 * differs, resized (scaled to cover h x w, centre crop), each said on stderr. 0, or -1 after
 * naming the file and what is wrong. */
int read_init_image(const char *path, int channels, int h, int w, int batch, float *out);

/* The mask (PNG or JPEG, read as gray) as batch copies of [h, w] in [0, 1]: white (1) repaints,
 * black (0) keeps; resized like the init image, with a note. 0, or -1. */
int read_mask(const char *path, int h, int w, int batch, float *out);

/* A segmentation mask for a mask-conditioned UNet (the reference's CelebAMask-HQ masks: a gray
 * PNG whose values are class labels, 0 the background) as batch copies of one-hot
 * [classes, h, w]: channel k is 1 where the label is k + 1. Resized by nearest neighbour (labels
 * are not blended), with a note; labels above classes are counted in a note and left out. 0, or
 * -1 after naming the file. */
int read_mask_labels(const char *path, int classes, int h, int w, int batch, float *out);

typedef struct prompts {
    char **text;
    int count;
} prompts;

/* The prompts: prompt, or prompt_file's non-blank lines that do not start with '#' (CR LF
 * allowed). 0, or -1 after saying why (an unreadable or empty file). */
int prompts_read(const char *prompt, const char *prompt_file, prompts *out);
void prompts_free(prompts *p);

#endif
