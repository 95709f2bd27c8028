/* ldmcl/image.h: 8-bit images in memory; JPEG files through libjpeg-turbo; the resize and center
 * crop of a dataset's images; and PNG files through libpng's classic API: reading
 * with size limits (IHDR dimensions, pixel count, chunk memory: decompression bombs) and
 * setjmp error handling, converting whatever the file holds (palette, 1-16 bits, gray, alpha,
 * interlace) to gray or RGB; writing gray or RGB with text chunks (tEXt when the text is Latin-1,
 * iTXt in UTF-8 otherwise, as PIL writes A1111's "parameters"), atomically (temporary file,
 * fsync, rename). */
#ifndef LDMCL_IMAGE_H
#define LDMCL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_image {
    int width, height, channels; /* channels: 1 (gray) or 3 (RGB) */
    uint8_t *pixels;             /* rows top to bottom, channels interleaved, no padding */
} ldm_image;

typedef struct ldm_image_limits {
    int max_side;        /* largest width or height accepted (default 16384) */
    uint64_t max_pixels; /* largest width * height (default 64 Mi) */
} ldm_image_limits;

/* Reads a PNG as channels = 1 (gray; color converted as PIL's "L": (19595 R + 38470 G + 7471 B +
 * 2^15) >> 16) or 3 (RGB; gray is replicated); alpha is dropped and 16-bit samples are reduced
 * to 8. limits may be NULL (the defaults). Ancillary chunks (text, ICC profile, Exif, gamma) are
 * skipped unread, whatever size they declare. Errors name the file and what is wrong (not a PNG,
 * truncated, corrupt, too large); nothing is allocated then. */
ldm_status ldm_png_read(const char *path, int channels, const ldm_image_limits *limits,
                        ldm_image *out);

/* Writes img as an 8-bit gray or RGB PNG with text chunks (NULL-terminated key/value pairs, UTF-8
 * values; may be NULL), replacing path atomically. */
ldm_status ldm_png_write(const char *path, const ldm_image *img, const char *const *text_pairs);

/* Reads a baseline or progressive JPEG (gray, YCbCr or RGB; not CMYK) as 1 or 3 channels, with
 * the same limits and errors; a file of more than 100 scans is refused (a progressive one has
 * about 10, and each scan costs a pass over the whole image). */
ldm_status ldm_jpeg_read(const char *path, int channels, const ldm_image_limits *limits,
                         ldm_image *out);

/* PNG or JPEG by the file's first bytes; anything else is an error naming the file. */
ldm_status ldm_image_read(const char *path, int channels, const ldm_image_limits *limits,
                          ldm_image *out);

/* torchvision's Resize(size) then CenterCrop(size): the shorter side scaled to size (bilinear,
 * antialiased when shrinking: PIL's triangle filter), the middle size x size kept, as floats
 * in [-1, 1] (x / 127.5 - 1), channel-planar [C, size, size]. flip mirrors left-right. */
ldm_status ldm_image_to_tensor(const ldm_image *img, int size, int flip, float *out);

/* The same to out_h x out_w: scaled (as above) to cover it, the middle kept; [C, out_h, out_w]. */
ldm_status ldm_image_to_tensor_hw(const ldm_image *img, int out_h, int out_w, int flip, float *out);

/* Floats [C, H, W] in [-1, 1] (clamped) to an 8-bit image (allocated). */
ldm_status ldm_image_from_tensor(const float *x, int channels, int height, int width,
                                 ldm_image *out);

void ldm_image_free(ldm_image *img);

#ifdef __cplusplus
}
#endif
#endif
