/* src/io/draw.c: drawing on 8-bit images (see draw.h). */
#include "draw.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"

static void put(ldm_image *img, int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= img->width || y >= img->height) return;
    uint8_t *p = img->pixels + ((size_t)y * img->width + x) * img->channels;
    if (img->channels == 3)
        p[0] = rgb[0], p[1] = rgb[1], p[2] = rgb[2];
    else
        p[0] = (uint8_t)((rgb[0] + rgb[1] + rgb[2]) / 3);
}

ldm_status ldm_draw_canvas(int width, int height, int channels, const uint8_t rgb[3],
                           ldm_image *out) {
    *out = (ldm_image){width, height, channels, malloc((size_t)width * height * channels)};
    if (!out->pixels) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory for a picture");
    ldm_draw_rect(out, 0, 0, width, height, rgb);
    return LDM_OK;
}

void ldm_draw_rect(ldm_image *img, int x, int y, int w, int h, const uint8_t rgb[3]) {
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++)
            put(img, i, j, rgb);
}

void ldm_draw_line(ldm_image *img, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy; /* Bresenham */
    for (;;) {
        put(img, x0, y0, rgb);
        if (x0 == x1 && y0 == y1) return;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

int ldm_draw_text_width(const char *text, int scale) {
    int n = (int)strlen(text);
    return n ? (6 * n - 1) * scale : 0;
}

int ldm_draw_text(ldm_image *img, int x, int y, int scale, const char *text, const uint8_t rgb[3]) {
    int cx = x;
    for (const unsigned char *c = (const unsigned char *)text; *c; c++, cx += 6 * scale) {
        const char *const *g = ldm_font5x7_glyph(*c);
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++)
                if (g[r][col] == '#')
                    ldm_draw_rect(img, cx + col * scale, y + r * scale, scale, scale, rgb);
    }
    return ldm_draw_text_width(text, scale);
}

void ldm_draw_image(ldm_image *dst, int x, int y, const ldm_image *src, int k) {
    for (int j = 0; j < src->height * k; j++)
        for (int i = 0; i < src->width * k; i++) {
            const uint8_t *p = src->pixels + ((size_t)(j / k) * src->width + i / k) * src->channels;
            uint8_t rgb[3] = {p[0], p[src->channels == 3 ? 1 : 0], p[src->channels == 3 ? 2 : 0]};
            if (dst->channels == 1 && src->channels == 3) /* PIL's "L" */
                rgb[0] = rgb[1] = rgb[2] =
                    (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 32768u) >> 16);
            put(dst, x + i, y + j, rgb);
        }
}

ldm_status ldm_draw_labelled_grid(const ldm_image *tiles, int rows, int cols, int k,
                                  const char *const *captions, const char *title, ldm_image *out) {
    enum { PAD = 4, TEXT_SCALE = 1, LINE = 8 * TEXT_SCALE };
    static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0};
    int channels = 1, tile_w = 0, tile_h = 0, caption_w = 0;
    for (int i = 0; i < rows * cols; i++) {
        channels = tiles[i].channels == 3 ? 3 : channels;
        tile_w = tiles[i].width > tile_w ? tiles[i].width : tile_w;
        tile_h = tiles[i].height > tile_h ? tiles[i].height : tile_h;
    }
    for (int r = 0; captions && r < rows; r++) {
        int w = captions[r] ? ldm_draw_text_width(captions[r], TEXT_SCALE) : 0;
        caption_w = w > caption_w ? w : caption_w;
    }
    int row_h = tile_h * k > LINE ? tile_h * k : LINE;
    int top = title ? LINE + 2 * PAD : PAD;
    int width = PAD + cols * (tile_w * k + PAD) + (caption_w ? caption_w + PAD : 0);
    int title_w = title ? ldm_draw_text_width(title, TEXT_SCALE) + 2 * PAD : 0;
    if (title_w > width) width = title_w;
    int height = top + rows * (row_h + PAD);
    LDM_TRY(ldm_draw_canvas(width, height, channels, white, out));
    if (title) ldm_draw_text(out, PAD, PAD, TEXT_SCALE, title, black);
    for (int r = 0; r < rows; r++) {
        int y = top + r * (row_h + PAD);
        for (int c = 0; c < cols; c++)
            ldm_draw_image(out, PAD + c * (tile_w * k + PAD), y, &tiles[r * cols + c], k);
        if (captions && captions[r])
            ldm_draw_text(out, PAD + cols * (tile_w * k + PAD), y + (row_h - 7 * TEXT_SCALE) / 2,
                          TEXT_SCALE, captions[r], black);
    }
    return LDM_OK;
}
