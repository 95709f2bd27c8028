/* src/io/draw.h: drawing on 8-bit images, for the pictures a training run writes (loss curves,
 * labelled grids): rectangles, lines, text in a 5x7 bitmap font (font5x7.c) at any integer
 * scale, images pasted and enlarged (nearest neighbour), and a grid of tiles with a caption per
 * row. Colours are RGB; on a gray image their mean is drawn. Drawing clips to the image. Not
 * installed. */
#ifndef LDMCL_IO_DRAW_H
#define LDMCL_IO_DRAW_H

#include <stdint.h>

#include "ldmcl/image.h"

/* The glyph of character c (? for characters outside 32 to 126): seven rows of five, '#' set. */
const char *const *ldm_font5x7_glyph(int c);

/* A blank image (every pixel the colour), allocated; LDM_ERR_HOST_MEMORY when it cannot be. */
ldm_status ldm_draw_canvas(int width, int height, int channels, const uint8_t rgb[3],
                           ldm_image *out);
void ldm_draw_rect(ldm_image *img, int x, int y, int w, int h, const uint8_t rgb[3]);
void ldm_draw_line(ldm_image *img, int x0, int y0, int x1, int y1, const uint8_t rgb[3]);
/* Text with its top left at (x, y), each font pixel scale x scale; 6 scale pixels a character.
 * Returns the width drawn. */
int ldm_draw_text(ldm_image *img, int x, int y, int scale, const char *text, const uint8_t rgb[3]);
int ldm_draw_text_width(const char *text, int scale);
/* src enlarged k times (nearest neighbour) with its top left at (x, y); gray onto RGB and RGB
 * onto gray are converted. */
void ldm_draw_image(ldm_image *dst, int x, int y, const ldm_image *src, int k);

/* Rows of tiles (each tile an image; rows of cols tiles, tiles[r * cols + c]), every tile
 * enlarged k times, a caption right of each row (NULL: none) and a title above (NULL: none):
 * gray when every tile is, else RGB; white background, black text. */
ldm_status ldm_draw_labelled_grid(const ldm_image *tiles, int rows, int cols, int k,
                                  const char *const *captions, const char *title, ldm_image *out);

#endif
