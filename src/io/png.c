/* src/io/png.c: PNG reading and writing through libpng's classic API (see ldmcl/image.h). libpng
 * reports errors by longjmp: every object a jump could leak lives in a heap struct, allocated
 * before setjmp and never reassigned after it, that the handlers free (thread-safe; no volatile
 * locals needed). */
#define _POSIX_C_SOURCE 200809L
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fail.h"
#include "image_internal.h"
#include "ldmcl/image.h"

typedef struct png_failure {
    char message[512];
    char warning[200]; /* the last warning: libpng often says why just before it fails */
} png_failure;

static void on_error(png_structp png, png_const_charp msg) {
    png_failure *f = png_get_error_ptr(png);
    if (f->warning[0])
        snprintf(f->message, sizeof f->message, "%s (%s)", msg, f->warning);
    else
        snprintf(f->message, sizeof f->message, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (a bad iCCP profile, say) do not stop a read; the last one is kept for an error. */
static void on_warning(png_structp png, png_const_charp msg) {
    png_failure *f = png_get_error_ptr(png);
    snprintf(f->warning, sizeof f->warning, "%s", msg);
}

void ldm_image_free(ldm_image *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* What a read holds that an error must release. */
typedef struct read_state {
    FILE *file;
    png_structp png;
    png_infop info;
    uint8_t *pixels;
    png_bytep *rows;
} read_state;

static void read_cleanup(read_state *r) {
    if (r->png) png_destroy_read_struct(&r->png, r->info ? &r->info : NULL, NULL);
    if (r->file) fclose(r->file);
    free(r->rows);
    free(r->pixels);
    free(r);
}

ldm_status ldm_png_read(const char *path, int channels, const ldm_image_limits *limits,
                        ldm_image *out) {
    LDM_TRY(ldm_image_read_begin(path, channels, out));
    const int max_side = ldm_image_limits_or_default(limits).max_side;
    const uint64_t max_pixels = ldm_image_limits_or_default(limits).max_pixels;
    read_state *const r = calloc(1, sizeof *r);
    if (!r) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory reading '%s'", path);
    png_failure failure = {"", ""};
    ldm_status opened = ldm_image_open(path, &r->file);
    if (opened != LDM_OK) {
        read_cleanup(r);
        return opened;
    }
    unsigned char sig[8];
    if (fread(sig, 1, 8, r->file) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        read_cleanup(r);
        return LDM_FAIL(LDM_ERR_FORMAT, "'%s' is not a PNG file (its signature is wrong)", path);
    }
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, on_error, on_warning);
    if (r->png) r->info = png_create_info_struct(r->png);
    if (!r->png || !r->info) {
        read_cleanup(r);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory reading '%s'", path);
    }
    if (setjmp(png_jmpbuf(r->png))) {
        read_cleanup(r);
        return LDM_FAIL(LDM_ERR_FORMAT, "'%s' is not a readable PNG: %s", path, failure.message);
    }
    png_init_io(r->png, r->file);
    png_set_sig_bytes(r->png, 8);
    /* Against decompression bombs: dimensions, ancillary chunk count and chunk memory. */
    png_set_user_limits(r->png, (png_uint_32)max_side, (png_uint_32)max_side);
    png_set_chunk_cache_max(r->png, 128);
    png_set_chunk_malloc_max(r->png, 8u << 20);
    /* The pixels need IHDR, PLTE, tRNS and IDAT only: every other chunk (text, ICC profile, Exif,
     * suggested palette, gamma, unknown ones) is skipped unread. Reading, libpng 1.6 only warns
     * about a chunk over the malloc limit above (a benign error) and then allocates and clears
     * all of it: 2 GiB for a tEXt chunk that declares 2^31 bytes in a 100-byte file. */
    png_set_keep_unknown_chunks(r->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(r->png, r->info);
    png_uint_32 w = png_get_image_width(r->png, r->info), h = png_get_image_height(r->png, r->info);
    if ((uint64_t)w * h > max_pixels) {
        read_cleanup(r);
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s' is %ux%u pixels: more than the %llu this reader accepts", path,
                        (unsigned)w, (unsigned)h, (unsigned long long)max_pixels);
    }
    int color = png_get_color_type(r->png, r->info), depth = png_get_bit_depth(r->png, r->info);
    if (depth == 16) png_set_strip_16(r->png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(r->png);
    if (png_get_valid(r->png, r->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(r->png);
    png_set_strip_alpha(r->png);
    int gray = color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA;
    if (channels == 3 && gray) png_set_gray_to_rgb(r->png);
    int to_gray = channels == 1 && !gray; /* read RGB, then PIL's conversion below */
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);
    size_t rowbytes = png_get_rowbytes(r->png, r->info);
    if (rowbytes != (size_t)w * (size_t)(to_gray ? 3 : channels)) {
        read_cleanup(r);
        return LDM_FAIL(LDM_ERR_FORMAT, "'%s': unexpected row size %zu after conversion", path,
                        rowbytes);
    }
    r->pixels = malloc(rowbytes * h);
    r->rows = malloc(h * sizeof *r->rows);
    if (!r->pixels || !r->rows) {
        read_cleanup(r);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory for '%s' (%ux%u)", path,
                        (unsigned)w, (unsigned)h);
    }
    for (png_uint_32 y = 0; y < h; y++)
        r->rows[y] = r->pixels + (size_t)y * rowbytes;
    png_read_image(r->png, r->rows);
    png_read_end(r->png, NULL);
    if (to_gray) ldm_rgb_to_gray(r->pixels, (size_t)w * h, r->pixels);
    *out = (ldm_image){(int)w, (int)h, channels, r->pixels};
    r->pixels = NULL;
    read_cleanup(r);
    return LDM_OK;
}

/* UTF-8 text as Latin-1 into out (size bytes); 0 when it has characters beyond U+00FF. */
static int to_latin1(const char *s, char *out, size_t size) {
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        if (c >= 0x80) {
            if ((c & 0xE0) != 0xC0 || (*p & 0xC0) != 0x80) return 0;
            c = ((c & 0x1F) << 6) | (*p++ & 0x3F);
            if (c < 0x80 || c > 0xFF) return 0;
        }
        if (n + 1 >= size) return 0;
        out[n++] = (char)c;
    }
    out[n] = 0;
    return 1;
}

typedef struct write_state {
    ldm_atomic_file out; /* the temporary file libpng writes into (write_data) */
    png_structp png;
    png_infop info;
    png_textp text;
    char **latin1;
    int n_text;
    png_bytep *rows;
} write_state;

static void write_cleanup(write_state *w) {
    if (w->png) png_destroy_write_struct(&w->png, w->info ? &w->info : NULL);
    for (int i = 0; w->latin1 && i < w->n_text; i++)
        free(w->latin1[i]);
    free(w->latin1);
    free(w->text);
    free(w->rows);
    free(w);
}

/* libpng's output: the atomic file, which keeps the errno of a failed write. */
static void write_data(png_structp png, png_bytep data, size_t n) {
    write_state *w = png_get_io_ptr(png);
    if (!ldm_atomic_write(&w->out, data, n)) png_error(png, "Write Error");
}

static void flush_data(png_structp png) {
    (void)png; /* the commit flushes */
}

ldm_status ldm_png_write(const char *path, const ldm_image *img, const char *const *text_pairs) {
    if (!img->pixels || img->width < 1 || img->height < 1 ||
        (img->channels != 1 && img->channels != 3))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "writing '%s': a %dx%d image of %d channels",
                        path, img->width, img->height, img->channels);
    write_state *const w = calloc(1, sizeof *w);
    if (!w) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory writing '%s'", path);
    ldm_status opened = ldm_atomic_open(&w->out, path);
    if (opened != LDM_OK) {
        free(w);
        return opened;
    }
    png_failure failure = {"", ""};
    int n_pairs = 0;
    while (text_pairs && text_pairs[2 * n_pairs])
        n_pairs++;
    w->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &failure, on_error, on_warning);
    if (w->png) w->info = png_create_info_struct(w->png);
    w->text = calloc((size_t)n_pairs + 1, sizeof *w->text);
    w->latin1 = calloc((size_t)n_pairs + 1, sizeof *w->latin1);
    w->rows = malloc((size_t)img->height * sizeof *w->rows);
    if (!w->png || !w->info || !w->text || !w->latin1 || !w->rows) {
        ldm_atomic_abandon(&w->out);
        write_cleanup(w);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory writing '%s'", path);
    }
    if (setjmp(png_jmpbuf(w->png))) {
        int err = w->out.err;
        ldm_atomic_abandon(&w->out);
        write_cleanup(w);
        return LDM_FAIL(LDM_ERR_IO, "writing '%s' failed: %s", path,
                        err ? strerror(err) : failure.message);
    }
    png_set_write_fn(w->png, w, write_data, flush_data);
    png_set_IHDR(w->png, w->info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 img->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int i = 0; i < n_pairs; i++) {
        const char *key = text_pairs[2 * i], *value = text_pairs[2 * i + 1];
        size_t len = strlen(value);
        w->latin1[i] = malloc(len + 1);
        w->n_text = i + 1;
        if (!w->latin1[i]) png_error(w->png, "out of host memory");
        png_text *t = &w->text[i];
        t->key = (png_charp)key;
        if (to_latin1(value, w->latin1[i], len + 1)) { /* tEXt */
            t->compression = PNG_TEXT_COMPRESSION_NONE;
            t->text = w->latin1[i];
        } else { /* iTXt, UTF-8 */
            t->compression = PNG_ITXT_COMPRESSION_NONE;
            t->text = (png_charp)value;
            t->lang = (png_charp) "";
            t->lang_key = (png_charp) "";
        }
    }
    if (n_pairs) png_set_text(w->png, w->info, w->text, n_pairs);
    png_write_info(w->png, w->info);
    size_t rowbytes = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < img->height; y++)
        w->rows[y] = img->pixels + (size_t)y * rowbytes;
    png_write_image(w->png, w->rows);
    png_write_end(w->png, NULL);
    ldm_status st = ldm_atomic_commit(&w->out, 1);
    write_cleanup(w);
    return st;
}
