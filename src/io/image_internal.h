/* src/io/image_internal.h: what the image readers share. Not installed. */
#ifndef LDMCL_IO_IMAGE_INTERNAL_H
#define LDMCL_IO_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* PIL's convert("L"): L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16, n pixels; in place is
 * allowed (gray[i] is written after rgb[3i..3i+2] are read). */
static inline void ldm_rgb_to_gray(const uint8_t *rgb, size_t n, uint8_t *gray) {
    for (size_t i = 0; i < n; i++)
        gray[i] = (uint8_t)((rgb[3 * i] * 19595u + rgb[3 * i + 1] * 38470u +
                             rgb[3 * i + 2] * 7471u + 0x8000u) >>
                            16);
}

#endif
