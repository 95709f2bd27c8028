/* tools/sample_inputs.c: ldmcl-sample's prompts, --init-img and --mask (see sample_inputs.h). */
#include "sample_inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ldmcl.h"

/* Reads path as `channels`; says when the file is resized. img is freed by the caller. */
static int read_as(const char *flag, const char *path, int channels, int h, int w, ldm_image *img) {
    if (ldm_image_read(path, channels, NULL, img) != LDM_OK) {
        fprintf(stderr, "ldmcl-sample: %s: %s\n", flag, ldm_last_error());
        return -1;
    }
    if (img->width != w || img->height != h)
        fprintf(stderr,
                "ldmcl-sample: note: %s '%s' is %dx%d; resized to the model's %dx%d (scaled to "
                "cover it, then the centre)\n",
                flag, path, img->width, img->height, w, h);
    return 0;
}

/* Whether an RGB image has color (a channel differs from another somewhere). */
static int has_color(const ldm_image *img) {
    size_t n = (size_t)img->width * img->height;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = img->pixels + 3 * i;
        if (p[0] != p[1] || p[1] != p[2]) return 1;
    }
    return 0;
}

/* The image as [channels, size, size] in [-1, 1], copied batch times. */
static int to_batch(const ldm_image *img, int channels, int h, int w, int batch, float *out) {
    if (ldm_image_to_tensor_hw(img, h, w, 0, out) != LDM_OK) {
        fprintf(stderr, "ldmcl-sample: %s\n", ldm_last_error());
        return -1;
    }
    size_t per = (size_t)channels * h * w;
    for (int b = 1; b < batch; b++)
        memcpy(out + (size_t)b * per, out, per * sizeof *out);
    return 0;
}

int read_init_image(const char *path, int channels, int h, int w, int batch, float *out) {
    ldm_image img = {0};
    if (read_as("--init-img", path, 3, h, w, &img) != 0) return -1;
    if (channels == 1 && has_color(&img))
        fprintf(stderr,
                "ldmcl-sample: note: --init-img '%s' is in color; converted to gray (the "
                "autoencoder's one channel) as PIL's \"L\"\n",
                path);
    if (channels != 3) {
        ldm_image_free(&img);
        if (ldm_image_read(path, channels, NULL, &img) != LDM_OK) {
            fprintf(stderr, "ldmcl-sample: --init-img: %s\n", ldm_last_error());
            return -1;
        }
    }
    int rc = to_batch(&img, channels, h, w, batch, out);
    ldm_image_free(&img);
    return rc;
}

int read_mask_labels(const char *path, int classes, int h, int w, int batch, float *out) {
    ldm_image img = {0};
    if (ldm_image_read(path, 1, NULL, &img) != LDM_OK) {
        fprintf(stderr, "ldmcl-sample: --mask: %s\n", ldm_last_error());
        return -1;
    }
    if (img.width != w || img.height != h)
        fprintf(stderr,
                "ldmcl-sample: note: --mask '%s' is %dx%d; resized to the model's %dx%d (nearest "
                "label)\n",
                path, img.width, img.height, w, h);
    size_t per = (size_t)classes * h * w, outside = 0;
    memset(out, 0, per * sizeof *out);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int sy = (int)((long long)y * img.height / h), sx = (int)((long long)x * img.width / w);
            int label = img.pixels[(size_t)sy * img.width + sx];
            if (label > classes)
                outside++;
            else if (label > 0)
                out[((size_t)(label - 1) * h + y) * w + x] = 1.0f;
        }
    ldm_image_free(&img);
    if (outside)
        fprintf(stderr,
                "ldmcl-sample: note: --mask '%s': %zu pixels have labels above the model's %d "
                "classes; they condition nothing\n",
                path, outside, classes);
    for (int b = 1; b < batch; b++)
        memcpy(out + (size_t)b * per, out, per * sizeof *out);
    return 0;
}

int read_mask(const char *path, int h, int w, int batch, float *out) {
    ldm_image img = {0};
    if (read_as("--mask", path, 1, h, w, &img) != 0) return -1;
    int rc = to_batch(&img, 1, h, w, batch, out);
    ldm_image_free(&img);
    size_t n = (size_t)batch * h * w;
    for (size_t i = 0; rc == 0 && i < n; i++)
        out[i] = 0.5f * (out[i] + 1.0f);
    return rc;
}

void prompts_free(prompts *p) {
    for (int i = 0; i < p->count; i++)
        free(p->text[i]);
    free(p->text);
}

int prompts_read(const char *prompt, const char *prompt_file, prompts *out) {
    *out = (prompts){0};
    if (!prompt_file) {
        out->text = malloc(sizeof *out->text);
        if (!out->text || !(out->text[0] = strdup(prompt))) return -1;
        out->count = 1;
        return 0;
    }
    FILE *f = fopen(prompt_file, "rb");
    if (!f) {
        perror(prompt_file);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        char **grown = realloc(out->text, (size_t)(out->count + 1) * sizeof *grown);
        if (!grown) {
            rc = -1;
            break;
        }
        out->text = grown;
        if (!(out->text[out->count] = strdup(line)))
            rc = -1;
        else
            out->count++;
    }
    if (ferror(f)) {
        fprintf(stderr, "ldmcl-sample: reading %s failed\n", prompt_file);
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc == 0 && out->count == 0) {
        fprintf(stderr, "ldmcl-sample: %s holds no prompt\n", prompt_file);
        rc = -1;
    }
    if (rc != 0) prompts_free(out);
    return rc;
}
