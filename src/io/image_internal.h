/* src/io/image_internal.h: what the image readers share. Not installed. */
#ifndef LDMCL_IO_IMAGE_INTERNAL_H
#define LDMCL_IO_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/image.h"

/* The limits of ldm_image_limits' zero fields. */
#define LDM_IMAGE_DEFAULT_MAX_SIDE 16384
#define LDM_IMAGE_DEFAULT_MAX_PIXELS (64ull << 20)

/* Opens an image file for reading, only when it is a regular file (ldm_open_regular): a FIFO
 * named *.png must not block a reader. LDM_ERR_NOT_FOUND when it cannot be opened,
 * LDM_ERR_FORMAT when it is not a regular file; both name the file. (image.c) */
ldm_status ldm_image_open(const char *path, FILE **f);

/* A reader's common start: the output cleared, the channel count checked. */
static inline ldm_status ldm_image_read_begin(const char *path, int channels, ldm_image *out) {
    memset(out, 0, sizeof *out);
    if (channels != 1 && channels != 3)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "reading '%s': %d channels (1 or 3)", path,
                        channels);
    return LDM_OK;
}

/* The limits a reader applies: the caller's, defaults for what is zero or absent. */
static inline ldm_image_limits ldm_image_limits_or_default(const ldm_image_limits *l) {
    ldm_image_limits r = {LDM_IMAGE_DEFAULT_MAX_SIDE, LDM_IMAGE_DEFAULT_MAX_PIXELS};
    if (l && l->max_side > 0) r.max_side = l->max_side;
    if (l && l->max_pixels > 0) r.max_pixels = l->max_pixels;
    return r;
}

/* PIL's convert("L"): L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16, n pixels; in place is
 * allowed (gray[i] is written after rgb[3i..3i+2] are read). */
static inline void ldm_rgb_to_gray(const uint8_t *rgb, size_t n, uint8_t *gray) {
    for (size_t i = 0; i < n; i++)
        gray[i] = (uint8_t)((rgb[3 * i] * 19595u + rgb[3 * i + 1] * 38470u +
                             rgb[3 * i + 2] * 7471u + 0x8000u) >>
                            16);
}

#endif
