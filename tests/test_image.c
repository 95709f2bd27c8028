/* tests/test_image.c: PNG files: gray and RGB written with text chunks (tEXt for Latin-1 text,
 * iTXt for the rest) and read back; other layouts (palette, 16-bit with alpha) converted on
 * reading; and the bad inputs: not a PNG, truncated, dimensions past the limits (IHDR checked
 * before any pixel memory), a missing file, ancillary chunks declaring up to 2^31 bytes (skipped
 * unread); progressive JPEGs (their pixels those of the baseline, more than 100 scans refused);
 * and the reference's dataset transform (JPEG and PNG,
 * resize, center crop, flip) against torchvision. */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#include <jpeglib.h>

#include "json.h"
#include "ldmcl/image.h"
#include "ldmcl/safetensors.h"
#include "test_util.h"

static char g_dir[4096];

static void path_of(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", g_dir, name);
}

/* The text chunks of a PNG, through libpng: key -> (text, compression). */
static int find_text(const char *path, const char *key, char *text, size_t size, int *compression) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_false(setjmp(png_jmpbuf(png)));
    png_init_io(png, f);
    png_read_info(png, info);
    png_textp t;
    int n = 0, found = 0;
    png_get_text(png, info, &t, &n);
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].key, key)) {
            snprintf(text, size, "%s", t[i].text);
            *compression = t[i].compression;
            found = 1;
        }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return found;
}

static void round_trip_with_text(void **state) {
    (void)state;
    uint8_t rgb[5 * 3 * 3], gray[4 * 4];
    for (int i = 0; i < 45; i++)
        rgb[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < 16; i++)
        gray[i] = (uint8_t)(i * 16);
    char a[4200], b[4200];
    path_of(a, sizeof a, "rgb.png");
    path_of(b, sizeof b, "gray.png");
    const char *parameters = "a photo of a sneaker\nSteps: 20, Sampler: DDIM, Seed: 42";
    const char *utf8 = "T\xc5\x8dky\xc5\x8d \xe6\x9d\xb1\xe4\xba\xac, caf\xc3\xa9"; /* Tōkyō 東京 */
    const char *latin1 = "caf\xc3\xa9 cr\xc3\xa8me";                                /* Latin-1 */
    const char *text[] = {"parameters", parameters, "prompt", utf8, "note", latin1, NULL};
    ldm_image img = {5, 3, 3, rgb};
    assert_status(ldm_png_write(a, &img, text), LDM_OK);
    ldm_image g = {4, 4, 1, gray};
    assert_status(ldm_png_write(b, &g, NULL), LDM_OK);

    ldm_image back;
    assert_status(ldm_png_read(a, 3, NULL, &back), LDM_OK);
    assert_true(back.width == 5 && back.height == 3 && back.channels == 3);
    assert_memory_equal(back.pixels, rgb, sizeof rgb);
    ldm_image_free(&back);
    /* RGB read as gray: L = 0.299 R + 0.587 G + 0.114 B (within one level of rounding) */
    assert_status(ldm_png_read(a, 1, NULL, &back), LDM_OK);
    for (int i = 0; i < 15; i++) {
        double l = 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
        assert_true(abs((int)back.pixels[i] - (int)(l + 0.5)) <= 1);
    }
    ldm_image_free(&back);
    /* gray read as RGB: replicated */
    assert_status(ldm_png_read(b, 3, NULL, &back), LDM_OK);
    for (int i = 0; i < 16; i++)
        assert_true(back.pixels[3 * i] == gray[i] && back.pixels[3 * i + 2] == gray[i]);
    ldm_image_free(&back);

    char got[256];
    int compression = -9;
    assert_true(find_text(a, "parameters", got, sizeof got, &compression));
    assert_string_equal(got, parameters);
    assert_int_equal(compression, PNG_TEXT_COMPRESSION_NONE); /* tEXt */
    assert_true(find_text(a, "prompt", got, sizeof got, &compression));
    assert_string_equal(got, utf8);
    assert_int_equal(compression, PNG_ITXT_COMPRESSION_NONE); /* iTXt: not Latin-1 */
    assert_true(find_text(a, "note", got, sizeof got, &compression));
    assert_int_equal(compression, PNG_TEXT_COMPRESSION_NONE);
    assert_string_equal(got, "caf\xe9 cr\xe8me"); /* stored as Latin-1 bytes */
}

/* A palette image and a 16-bit gray+alpha one, written with libpng here. */
static void write_with_libpng(const char *path, int color, int depth, int w, int h,
                              const uint8_t *rows, const png_color *palette, int n_palette) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_false(setjmp(png_jmpbuf(png)));
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, n_palette);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, rows + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void other_layouts_are_converted(void **state) {
    (void)state;
    char p[4200];
    path_of(p, sizeof p, "palette.png");
    const png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
    const uint8_t idx[4] = {0, 1, 2, 1};
    write_with_libpng(p, PNG_COLOR_TYPE_PALETTE, 8, 2, 2, idx, pal, 3);
    ldm_image img;
    assert_status(ldm_png_read(p, 3, NULL, &img), LDM_OK);
    const uint8_t want[12] = {255, 0, 0, 0, 255, 0, 10, 20, 30, 0, 255, 0};
    assert_memory_equal(img.pixels, want, sizeof want);
    ldm_image_free(&img);

    path_of(p, sizeof p, "gray16a.png");
    const uint8_t ga[2 * 4] = {0x12, 0x34, 0xff, 0xff, 0xab, 0xcd, 0x00, 0x00}; /* 2 px: G, A */
    write_with_libpng(p, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 2, 1, ga, NULL, 0);
    assert_status(ldm_png_read(p, 1, NULL, &img), LDM_OK);
    assert_true(img.width == 2 && img.channels == 1);
    assert_true(img.pixels[0] == 0x12 && img.pixels[1] == 0xab); /* alpha dropped, high byte */
    ldm_image_free(&img);
}

/* A PNG of just a signature, an IHDR of the given size and the start of an IDAT. */
static void write_header_only(const char *path, uint32_t w, uint32_t h) {
    unsigned char buf[64];
    size_t n = 0;
    const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(buf, sig, 8);
    n = 8;
    unsigned char ihdr[4 + 4 + 13] = {0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    unsigned char *d = ihdr + 8;
    d[0] = (unsigned char)(w >> 24), d[1] = (unsigned char)(w >> 16);
    d[2] = (unsigned char)(w >> 8), d[3] = (unsigned char)w;
    d[4] = (unsigned char)(h >> 24), d[5] = (unsigned char)(h >> 16);
    d[6] = (unsigned char)(h >> 8), d[7] = (unsigned char)h;
    d[8] = 8, d[9] = 2, d[10] = 0, d[11] = 0, d[12] = 0; /* 8-bit RGB */
    memcpy(buf + n, ihdr, sizeof ihdr);
    n += sizeof ihdr;
    uLong crc = crc32(0, ihdr + 4, 17);
    buf[n++] = (unsigned char)(crc >> 24), buf[n++] = (unsigned char)(crc >> 16);
    buf[n++] = (unsigned char)(crc >> 8), buf[n++] = (unsigned char)crc;
    const unsigned char idat[12] = {0, 0, 0, 4, 'I', 'D', 'A', 'T', 1, 2, 3, 4};
    memcpy(buf + n, idat, sizeof idat);
    n += sizeof idat;
    test_write_file(path, buf, n);
}

static void bad_files_are_refused_with_their_name(void **state) {
    (void)state;
    char p[4200];
    ldm_image img;
    path_of(p, sizeof p, "text.png");
    test_write_file(p, "this is not an image at all", 27);
    assert_status(ldm_png_read(p, 3, NULL, &img), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "text.png' is not a PNG file");
    assert_null(img.pixels);

    /* the first half of a valid file */
    char good[4200];
    path_of(good, sizeof good, "good.png");
    uint8_t px[16 * 16 * 3];
    for (int i = 0; i < (int)sizeof px; i++)
        px[i] = (uint8_t)((i * 7919) % 251);
    ldm_image src = {16, 16, 3, px};
    assert_status(ldm_png_write(good, &src, NULL), LDM_OK);
    size_t len;
    unsigned char *bytes = test_read_file(good, &len);
    path_of(p, sizeof p, "truncated.png");
    test_write_file(p, bytes, len / 2);
    free(bytes);
    assert_status(ldm_png_read(p, 3, NULL, &img), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "truncated.png' is not a readable PNG: ");

    /* an IHDR wider than the limit, and one within it but with too many pixels */
    path_of(p, sizeof p, "wide.png");
    write_header_only(p, 100000, 10);
    assert_status(ldm_png_read(p, 3, NULL, &img), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "wide.png' is not a readable PNG: ");
    assert_contains(ldm_last_error(), "exceeds user limit");
    path_of(p, sizeof p, "huge.png");
    write_header_only(p, 16000, 16000);
    assert_status(ldm_png_read(p, 3, NULL, &img), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "huge.png' is 16000x16000 pixels: more than the 67108864");
    ldm_image_limits small = {8, 0};
    assert_status(ldm_png_read(good, 3, &small, &img), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "exceeds user limit");

    path_of(p, sizeof p, "absent.png");
    assert_status(ldm_png_read(p, 3, NULL, &img), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "absent.png");
    ldm_image bad = {0, 3, 3, px};
    assert_status(ldm_png_write(p, &bad, NULL), LDM_ERR_INVALID_ARGUMENT);
    assert_false(test_file_exists(p));
}

/* A chunk: length (as declared, not as given), type, the data given and a CRC over them. */
static size_t put_chunk(unsigned char *out, const char *type, uint32_t declared,
                        const unsigned char *data, size_t n) {
    out[0] = (unsigned char)(declared >> 24), out[1] = (unsigned char)(declared >> 16);
    out[2] = (unsigned char)(declared >> 8), out[3] = (unsigned char)declared;
    memcpy(out + 4, type, 4);
    if (n) memcpy(out + 8, data, n);
    uLong crc = crc32(0, out + 4, (uInt)(4 + n));
    out[8 + n] = (unsigned char)(crc >> 24), out[9 + n] = (unsigned char)(crc >> 16);
    out[10 + n] = (unsigned char)(crc >> 8), out[11 + n] = (unsigned char)crc;
    return 12 + n;
}

/* The peak memory of this process so far, in bytes. */
static uint64_t peak_rss(void) {
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return (uint64_t)ru.ru_maxrss * 1024;
}

/* A PNG of about 100 bytes: signature, a 1x1 IHDR and one ancillary chunk that declares
 * `declared` bytes but holds 40. */
static void write_chunk_bomb(const char *path, const char *type, uint32_t declared) {
    unsigned char buf[128];
    size_t n = 8;
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    const unsigned char ihdr[13] = {0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0}; /* 1x1, 8-bit gray */
    n += put_chunk(buf + n, "IHDR", 13, ihdr, 13);
    unsigned char data[40];
    memset(data, 'a', sizeof data);
    data[5] = 0; /* a keyword's end */
    n += put_chunk(buf + n, type, declared, data, sizeof data);
    test_write_file(path, buf, n);
}

/* Ancillary chunks are skipped unread. libpng 1.6 only warns when one declares more than the
 * chunk memory limit, and then allocated and cleared all of it: a 100-byte file with a tEXt
 * chunk of 2^31 bytes took 2 GiB and seconds. Now such a file is refused at once and the peak
 * memory of the process does not grow by the declared size; a valid file with ancillary chunks
 * of any kind (broken ones too) reads as before. */
static void huge_ancillary_chunks_are_skipped(void **state) {
    (void)state;
    const char *types[] = {"tEXt", "zTXt", "iTXt", "iCCP", "sPLT", "eXIf", "pCAL", "quUX"};
    char p[4200];
    ldm_image img;
    const uint64_t before = peak_rss();
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        path_of(p, sizeof p, "bomb.png");
        write_chunk_bomb(p, types[i], 256u << 20); /* 256 MiB */
        assert_status(ldm_png_read(p, 1, NULL, &img), LDM_ERR_FORMAT);
        assert_contains(ldm_last_error(), "bomb.png' is not a readable PNG: ");
        assert_null(img.pixels);
    }
    if (peak_rss() > before + (64u << 20))
        fail_msg("reading 100-byte PNGs raised the peak memory from %llu to %llu bytes",
                 (unsigned long long)before, (unsigned long long)peak_rss());
    path_of(p, sizeof p, "bomb31.png");
    write_chunk_bomb(p, "tEXt", 0x7ffffff0u); /* just under 2^31 */
    assert_status(ldm_png_read(p, 3, NULL, &img), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "bomb31.png' is not a readable PNG: ");
    assert_contains(ldm_last_error(), "chunk data is too large");
    assert_true(peak_rss() <= before + (64u << 20));

    /* a valid file with a zTXt chunk of garbage and an unknown chunk after IHDR: read */
    uint8_t px[3 * 2 * 3];
    for (int i = 0; i < (int)sizeof px; i++)
        px[i] = (uint8_t)(i * 13);
    ldm_image src = {3, 2, 3, px};
    path_of(p, sizeof p, "extra.png");
    const char *text[] = {"parameters", "a photo", NULL};
    assert_status(ldm_png_write(p, &src, text), LDM_OK);
    size_t len;
    unsigned char *bytes = test_read_file(p, &len);
    unsigned char *spliced = malloc(len + 200);
    assert_non_null(spliced);
    const size_t after_ihdr = 8 + 25;
    memcpy(spliced, bytes, after_ihdr);
    size_t n = after_ihdr;
    const unsigned char junk[16] = {'k', 0, 0, 0xde, 0xad, 0xbe, 0xef};
    n += put_chunk(spliced + n, "zTXt", sizeof junk, junk, sizeof junk);
    n += put_chunk(spliced + n, "quUX", sizeof junk, junk, sizeof junk);
    memcpy(spliced + n, bytes + after_ihdr, len - after_ihdr);
    n += len - after_ihdr;
    test_write_file(p, spliced, n);
    free(bytes);
    free(spliced);
    assert_status(ldm_png_read(p, 3, NULL, &img), LDM_OK);
    assert_true(img.width == 3 && img.height == 2);
    assert_memory_equal(img.pixels, px, sizeof px);
    ldm_image_free(&img);
}

/* A w x h JPEG of a pattern (gray or RGB) written with libjpeg: baseline when scans is -1,
 * libjpeg's progression (about 10 scans) when 0, else a progression of that many scans: the DC
 * scan, then each AC coefficient in turn sent in 11 scans of successive approximation. */
static void write_jpeg(const char *path, int w, int h, int channels, int scans) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err); /* exits on errors: a test failure */
    jpeg_create_compress(&c);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = channels;
    c.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_scan_info *script = NULL;
    if (scans == 0) jpeg_simple_progression(&c);
    if (scans > 0) {
        script = calloc((size_t)scans, sizeof *script);
        assert_non_null(script);
        script[0].comps_in_scan = channels;
        for (int k = 0; k < channels; k++)
            script[0].component_index[k] = k;
        int n = 1;
        for (int k = 0; k < channels && n < scans; k++)
            for (int coef = 1; coef < 64 && n < scans; coef++)
                for (int al = 10; al >= 0 && n < scans; al--, n++) {
                    jpeg_scan_info *s = &script[n];
                    s->comps_in_scan = 1;
                    s->component_index[0] = k;
                    s->Ss = s->Se = coef;
                    s->Ah = al == 10 ? 0 : al + 1; /* the bits from 10 up first, then one a scan */
                    s->Al = al;
                }
        assert_int_equal(n, scans);
        c.scan_info = script;
        c.num_scans = scans;
    }
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * (size_t)channels);
    assert_non_null(row);
    while (c.next_scanline < c.image_height) {
        unsigned y = c.next_scanline;
        for (int i = 0; i < w * channels; i++)
            row[i] = (uint8_t)((unsigned)i * 5u + y * 3u + ((unsigned)i ^ y));
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    free(row);
    free(script);
}

/* A progressive JPEG decodes to the pixels of the baseline one (every coefficient bit sent);
 * one of 100 scans decodes; one of 150 is refused with a message naming it: each scan walks the
 * whole image, and 1000 scans in 400 KB took a minute. */
static void progressive_jpeg_scans_are_limited(void **state) {
    (void)state;
    char base[4200], p[4200];
    ldm_image a, b;
    for (int channels = 1; channels <= 3; channels += 2) {
        path_of(base, sizeof base, "baseline.jpg");
        path_of(p, sizeof p, "progressive.jpg");
        write_jpeg(base, 40, 24, channels, -1);
        write_jpeg(p, 40, 24, channels, 0);
        assert_status(ldm_jpeg_read(base, channels, NULL, &a), LDM_OK);
        assert_status(ldm_jpeg_read(p, channels, NULL, &b), LDM_OK);
        assert_true(b.width == 40 && b.height == 24 && b.channels == channels);
        assert_memory_equal(a.pixels, b.pixels, (size_t)40 * 24 * channels);
        ldm_image_free(&a);
        ldm_image_free(&b);
    }
    path_of(p, sizeof p, "scans100.jpg");
    write_jpeg(p, 64, 64, 1, 100);
    assert_status(ldm_image_read(p, 1, NULL, &a), LDM_OK);
    assert_true(a.width == 64 && a.height == 64);
    ldm_image_free(&a);
    path_of(p, sizeof p, "scans150.jpg");
    write_jpeg(p, 64, 64, 3, 150);
    assert_status(ldm_image_read(p, 3, NULL, &a), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(),
                    "scans150.jpg' is a progressive JPEG of more than 100 scans (a normal one has "
                    "about 10): refused");
    assert_null(a.pixels);
}

/* The reference's transform (torchvision Resize + CenterCrop + ToTensor, 2x - 1; PIL decoding
 * and resampling) of a JPEG and a PNG (tests/ref/image.safetensors): within one 8-bit level
 * (PIL resamples in fixed point). */
static void dataset_transform_matches_torchvision(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/image.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    int cases = 0, off_by_one = 0, values = 0;
    for (size_t i = 0; i < ldm_safetensors_count(st); i++) {
        const char *key = ldm_safetensors_at(st, i)->name;
        const char *meta = ldm_safetensors_metadata(st, key);
        char file[64], err[128];
        ldm_json *m = ldm_json_parse(meta, strlen(meta), err, sizeof err);
        assert_non_null(m);
        snprintf(file, sizeof file, "%s", ldm_json_get(m, "file")->string);
        int channels = (int)ldm_json_get(m, "channels")->number;
        int size = (int)ldm_json_get(m, "size")->number;
        ldm_json_free(m);
        snprintf(path, sizeof path, "%s/%s", LDMCL_TEST_REF_DIR, file);
        ldm_image img;
        assert_status(ldm_image_read(path, channels, NULL, &img), LDM_OK);
        size_t n = (size_t)channels * size * size;
        float *got = malloc(n * sizeof *got), *want = test_st_load(st, key, NULL, NULL);
        assert_non_null(got);
        assert_status(ldm_image_to_tensor(&img, size, 0, got), LDM_OK);
        for (size_t k = 0; k < n; k++) {
            float d = fabsf(got[k] - want[k]) * 127.5f;
            if (d > 1.01f)
                fail_msg("%s: element %zu is %g, torchvision %g", key, k, got[k], want[k]);
            off_by_one += d > 0.5f;
        }
        values += (int)n;
        /* flip mirrors the rows */
        float *flipped = malloc(n * sizeof *flipped);
        assert_non_null(flipped);
        assert_status(ldm_image_to_tensor(&img, size, 1, flipped), LDM_OK);
        for (int y = 0; y < size; y++)
            assert_true(flipped[y * size] == got[y * size + size - 1]);
        free(flipped);
        free(got);
        free(want);
        ldm_image_free(&img);
        cases++;
    }
    printf("  %d transforms of a JPEG and a PNG: %d of %d values one 8-bit level off torchvision, "
           "the rest equal\n",
           cases, off_by_one, values);
    assert_int_equal(cases, 12);
    ldm_safetensors_close(st);
}

static int setup(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("png");
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    free(dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_with_text),
        cmocka_unit_test(other_layouts_are_converted),
        cmocka_unit_test(bad_files_are_refused_with_their_name),
        cmocka_unit_test(huge_ancillary_chunks_are_skipped),
        cmocka_unit_test(progressive_jpeg_scans_are_limited),
        cmocka_unit_test(dataset_transform_matches_torchvision),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
