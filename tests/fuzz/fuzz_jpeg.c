/* tests/fuzz/fuzz_jpeg.c: libFuzzer target for the JPEG reader (src/io/jpeg.c over
 * libjpeg-turbo), with the readers' default limits as datasets use them: the input is written to
 * a file and read as RGB, and when that works as gray too, and turned into a small training
 * tensor (resize, center crop, mirror) as a dataset does. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "ldmcl/image.h"

static char g_path[4200];
static volatile float g_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_path, sizeof g_path, "input.jpg");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_path, data, size);
    ldm_image img;
    ldm_status st = ldm_jpeg_read(g_path, 3, NULL, &img);
    fuzz_status(st);
    if (st != LDM_OK) return 0;
    float t[3 * 8 * 8];
    fuzz_status(ldm_image_to_tensor(&img, 8, 1, t));
    g_sink += t[0] + (float)img.pixels[(size_t)img.width * img.height * 3 - 1];
    ldm_image_free(&img);
    st = ldm_jpeg_read(g_path, 1, NULL, &img);
    fuzz_status(st); /* a corrupt scan may decode differently as gray: no promise here */
    if (st == LDM_OK) g_sink += (float)img.pixels[(size_t)img.width * img.height - 1];
    ldm_image_free(&img);
    return 0;
}
