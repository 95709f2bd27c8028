/* src/io/jpeg.c: JPEG reading through libjpeg-turbo (see ldmcl/image.h). libjpeg reports errors
 * through error_exit, which longjmps back here with the message kept; the decompressor and the
 * pixels live in a heap struct allocated before setjmp, so nothing leaks. A progressive file of
 * more than MAX_SCANS scans is refused: each scan walks the whole image, so a file of 400 KB and
 * 1000 scans took a minute to decode. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "fail.h"
#include "image_internal.h"
#include "ldmcl/image.h"

#define MAX_SCANS 100 /* a progressive JPEG has about 10 */

typedef struct jpeg_state {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr err;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int too_many_scans;
    FILE *file;
    uint8_t *pixels;
    int created;
} jpeg_state;

static void on_error_exit(j_common_ptr c) {
    jpeg_state *s = (jpeg_state *)c->client_data;
    (*c->err->format_message)(c, s->message);
    longjmp(s->jump, 1);
}

/* libjpeg calls this before each row it decodes of each scan of a multi-scan file, after it has
 * read the scan's header (input_scan_number counts them). */
static void on_progress(j_common_ptr c) {
    jpeg_state *s = (jpeg_state *)c->client_data;
    if (s->cinfo.input_scan_number > MAX_SCANS) {
        s->too_many_scans = 1;
        longjmp(s->jump, 1);
    }
}

static void on_output_message(j_common_ptr c) {
    (void)c; /* warnings (corrupt data that libjpeg can skip) are not printed */
}

static void cleanup(jpeg_state *s) {
    if (s->created) jpeg_destroy_decompress(&s->cinfo);
    if (s->file) fclose(s->file);
    free(s->pixels);
    free(s);
}

ldm_status ldm_jpeg_read(const char *path, int channels, const ldm_image_limits *limits,
                         ldm_image *out) {
    LDM_TRY(ldm_image_read_begin(path, channels, out));
    const int max_side = ldm_image_limits_or_default(limits).max_side;
    const uint64_t max_pixels = ldm_image_limits_or_default(limits).max_pixels;
    jpeg_state *const s = calloc(1, sizeof *s);
    if (!s) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory reading '%s'", path);
    ldm_status opened = ldm_image_open(path, &s->file);
    if (opened != LDM_OK) {
        cleanup(s);
        return opened;
    }
    s->cinfo.err = jpeg_std_error(&s->err);
    s->err.error_exit = on_error_exit;
    s->err.output_message = on_output_message;
    s->cinfo.client_data = s;
    if (setjmp(s->jump)) {
        ldm_status st =
            s->too_many_scans
                ? LDM_FAIL(LDM_ERR_FORMAT,
                           "'%s' is a progressive JPEG of more than %d scans (a normal one has "
                           "about 10): refused, as decoding so many takes minutes (re-encode it)",
                           path, MAX_SCANS)
                : LDM_FAIL(LDM_ERR_FORMAT, "'%s' is not a readable JPEG: %s", path, s->message);
        cleanup(s);
        return st;
    }
    jpeg_create_decompress(&s->cinfo);
    s->created = 1;
    s->progress.progress_monitor = on_progress;
    s->cinfo.progress = &s->progress;
    jpeg_stdio_src(&s->cinfo, s->file);
    jpeg_read_header(&s->cinfo, TRUE);
    unsigned w = s->cinfo.image_width, h = s->cinfo.image_height;
    if ((int)w > max_side || (int)h > max_side || (uint64_t)w * h > max_pixels) {
        cleanup(s);
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s' is %ux%u pixels: more than this reader accepts (sides up to %d, %llu "
                        "pixels)",
                        path, w, h, max_side, (unsigned long long)max_pixels);
    }
    if (s->cinfo.jpeg_color_space == JCS_CMYK || s->cinfo.jpeg_color_space == JCS_YCCK) {
        cleanup(s);
        return LDM_FAIL(LDM_ERR_FORMAT, "'%s' is a CMYK JPEG: convert it to RGB first", path);
    }
    /* gray files stay gray; color ones decode to RGB, then PIL's conversion to gray if asked */
    int gray = s->cinfo.jpeg_color_space == JCS_GRAYSCALE;
    s->cinfo.out_color_space = gray && channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&s->cinfo);
    size_t rowbytes = (size_t)s->cinfo.output_width * (size_t)s->cinfo.output_components;
    s->pixels = malloc(rowbytes * s->cinfo.output_height);
    if (!s->pixels) {
        cleanup(s);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory for '%s'", path);
    }
    while (s->cinfo.output_scanline < s->cinfo.output_height) {
        JSAMPROW row = s->pixels + (size_t)s->cinfo.output_scanline * rowbytes;
        jpeg_read_scanlines(&s->cinfo, &row, 1);
    }
    jpeg_finish_decompress(&s->cinfo);
    if (channels == 1 && s->cinfo.output_components == 3)
        ldm_rgb_to_gray(s->pixels, (size_t)s->cinfo.output_width * s->cinfo.output_height,
                        s->pixels);
    *out =
        (ldm_image){(int)s->cinfo.output_width, (int)s->cinfo.output_height, channels, s->pixels};
    s->pixels = NULL;
    cleanup(s);
    return LDM_OK;
}
