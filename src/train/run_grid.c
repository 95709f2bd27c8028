/* src/train/run_grid.c: the labelled picture grids a training run writes (runner_internal.h):
 * images as tiles enlarged to a viewable size, a caption per row and a title, through the io
 * layer's drawing (draw.h). */
#include <stdlib.h>

#include "draw.h"
#include "runner_internal.h"

ldm_status run_write_grid(const char *path, const float *images, int rows, int cols, int channels,
                          int size, const char *const *captions, const char *title,
                          const char *const *text_pairs) {
    enum { VIEWABLE = 96 }; /* tiles are enlarged to at least this many pixels a side */
    int n = rows * cols, k = size >= VIEWABLE ? 1 : (VIEWABLE + size - 1) / size;
    ldm_image *tiles = calloc((size_t)n, sizeof *tiles), out = {0};
    if (!tiles) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    size_t per = (size_t)channels * size * size;
    ldm_status st = LDM_OK;
    for (int i = 0; i < n && st == LDM_OK; i++)
        st = ldm_image_from_tensor(images + (size_t)i * per, channels, size, size, &tiles[i]);
    if (st == LDM_OK) st = ldm_draw_labelled_grid(tiles, rows, cols, k, captions, title, &out);
    if (st == LDM_OK) st = ldm_png_write(path, &out, text_pairs);
    if (out.pixels) ldm_image_free(&out);
    for (int i = 0; i < n; i++)
        if (tiles[i].pixels) ldm_image_free(&tiles[i]);
    free(tiles);
    return st;
}
