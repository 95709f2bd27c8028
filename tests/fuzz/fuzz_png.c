/* tests/fuzz/fuzz_png.c: libFuzzer target for the PNG reader (src/io/png.c over libpng), with the
 * readers' default limits as datasets use them. The chunk CRCs of the input are recomputed
 * before it is written to a file (mutations would otherwise stop at the checksums); the file is
 * read as RGB, and when that works as gray too, and turned into a small training tensor
 * (resize, center crop, mirror) as a dataset does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "ldmcl/image.h"

static char g_path[4200];
static volatile float g_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_path, sizeof g_path, "input.png");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) abort();
    memcpy(copy, data, size);
    fuzz_png_fix_crcs(copy, size);
    fuzz_write(g_path, copy, size);
    free(copy);
    ldm_image img;
    ldm_status st = ldm_png_read(g_path, 3, NULL, &img);
    fuzz_status(st);
    if (st != LDM_OK) return 0;
    float t[3 * 8 * 8];
    fuzz_status(ldm_image_to_tensor(&img, 8, 1, t));
    g_sink += t[0] + (float)img.pixels[(size_t)img.width * img.height * 3 - 1];
    ldm_image_free(&img);
    st = ldm_png_read(g_path, 1, NULL, &img);
    if (st != LDM_OK) { /* read as RGB, so readable as gray */
        fprintf(stderr, "fuzz: a PNG read as RGB but not as gray: %s\n", ldm_last_error());
        abort();
    }
    g_sink += (float)img.pixels[(size_t)img.width * img.height - 1];
    ldm_image_free(&img);
    return 0;
}
