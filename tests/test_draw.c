/* tests/test_draw.c: the drawing training's pictures use (src/io/draw.h): every glyph of the 5x7
 * font well formed and distinct, text drawn where and as wide as said, lines and enlarged images
 * on the pixels they should cover, and a labelled grid's layout. */
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "ldmcl/ldmcl.h"
#include "test_util.h"

static const uint8_t WHITE[3] = {255, 255, 255}, BLACK[3] = {0, 0, 0};

static void font_glyphs_are_well_formed(void **state) {
    (void)state;
    for (int c = 32; c < 127; c++) {
        const char *const *g = ldm_font5x7_glyph(c);
        int set = 0;
        for (int r = 0; r < 7; r++) {
            assert_int_equal(strlen(g[r]), 5);
            for (int k = 0; k < 5; k++) {
                assert_true(g[r][k] == '#' || g[r][k] == '.');
                set += g[r][k] == '#';
            }
        }
        assert_true(c == ' ' ? set == 0 : set > 0);
        for (int d = 32; d < c; d++) { /* no two printable characters look the same */
            const char *const *h = ldm_font5x7_glyph(d);
            int same = 1;
            for (int r = 0; r < 7 && same; r++)
                same = !strcmp(g[r], h[r]);
            if (same) fail_msg("'%c' and '%c' have the same glyph", c, d);
        }
    }
    assert_ptr_equal(ldm_font5x7_glyph(200), ldm_font5x7_glyph('?'));
}

static int dark(const ldm_image *img, int x, int y) {
    return img->pixels[((size_t)y * img->width + x) * img->channels] < 128;
}

static void text_lines_and_images_land_where_said(void **state) {
    (void)state;
    ldm_image img;
    assert_status(ldm_draw_canvas(40, 20, 1, WHITE, &img), LDM_OK);
    assert_int_equal(ldm_draw_text(&img, 2, 3, 2, "I", BLACK), 10); /* 5 columns at scale 2 */
    assert_int_equal(ldm_draw_text_width("ab", 1), 11);
    /* 'I': the top row's three middle columns and the middle column all the way down */
    assert_true(dark(&img, 2 + 2 * 1, 3) && dark(&img, 2 + 2 * 3 + 1, 3 + 1));
    assert_false(dark(&img, 2, 3));
    for (int y = 3; y < 3 + 14; y++)
        assert_true(dark(&img, 2 + 2 * 2, y));
    assert_false(dark(&img, 2 + 2 * 2, 3 + 14));
    ldm_draw_line(&img, 20, 2, 30, 12, BLACK); /* a diagonal: every pixel of it */
    for (int k = 0; k <= 10; k++)
        assert_true(dark(&img, 20 + k, 2 + k));
    ldm_draw_line(&img, -5, 0, 100, 0, BLACK); /* clipped, no harm */
    ldm_image tile;
    assert_status(ldm_draw_canvas(2, 1, 3, BLACK, &tile), LDM_OK);
    tile.pixels[3] = tile.pixels[4] = tile.pixels[5] = 255; /* black, white */
    ldm_draw_image(&img, 32, 15, &tile, 3);                 /* 6 x 3, gray from RGB */
    assert_true(dark(&img, 32, 15) && dark(&img, 34, 17) && !dark(&img, 35, 15) &&
                !dark(&img, 37, 17));
    ldm_image_free(&tile);
    ldm_image_free(&img);
}

static void labelled_grids_are_laid_out(void **state) {
    (void)state;
    ldm_image tiles[4];
    for (int i = 0; i < 4; i++)
        assert_status(ldm_draw_canvas(8, 8, 1, BLACK, &tiles[i]), LDM_OK);
    const char *captions[] = {"a bag", "a shirt!"};
    ldm_image out;
    assert_status(ldm_draw_labelled_grid(tiles, 2, 2, 3, captions, "title", &out), LDM_OK);
    /* 4 + 2 (24 + 4) + the longer caption (47) + 4 wide; the title's line and 2 rows of 24 */
    assert_int_equal(out.width, 4 + 2 * 28 + 47 + 4);
    assert_int_equal(out.height, 16 + 2 * 28);
    assert_int_equal(out.channels, 1);
    assert_true(dark(&out, 4, 16) && dark(&out, 4 + 23, 16 + 23) && !dark(&out, 4 + 24, 16));
    ldm_image_free(&out);
    for (int i = 0; i < 4; i++)
        ldm_image_free(&tiles[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(font_glyphs_are_well_formed),
        cmocka_unit_test(text_lines_and_images_land_where_said),
        cmocka_unit_test(labelled_grids_are_laid_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
