/* tests/fuzz/fuzz_dataset.c: libFuzzer target for the dataset folder (src/io/dataset.c: the
 * scan, the caption files, the images read and transformed). The input is a folder in parts
 * separated by a line of five dashes: the first part holds flags (words: "celeba" for the
 * CelebAMask-HQ layout, "gray" for one channel, "flip" for random_flip); each further part that
 * starts like a PNG or a JPEG is an image (PNG chunk CRCs repaired), every third one in a
 * subfolder; any other part is the caption file of the image before it, or, when that has one
 * already, a file with an image's name that is no image. The dataset is opened, and every item's
 * image and caption are read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "ldmcl/dataset.h"

enum { MAX_PARTS = 9, SIZE = 8 };

static char g_root[4200];
static volatile float g_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_root, sizeof g_root, "dataset");
    fuzz_mkdir(g_root);
    return 0;
}

static int has_word(const fuzz_part *p, const char *word) {
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= p->size; i++)
        if (!memcmp(p->data + i, word, n)) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_part parts[MAX_PARTS];
    int n = fuzz_split(data, size, parts, MAX_PARTS);
    int celeb = has_word(&parts[0], "celeba");
    fuzz_clear(g_root);
    char images[4300], captions[4300], path[4400];
    snprintf(images, sizeof images, "%s%s", g_root, celeb ? "/CelebA-HQ-img" : "");
    snprintf(captions, sizeof captions, "%s%s", g_root, celeb ? "/celeba-caption" : "");
    fuzz_mkdir(images);
    fuzz_mkdir(captions);
    snprintf(path, sizeof path, "%s/sub", images);
    fuzz_mkdir(path);
    char stem[64] = "";
    int captioned = 1;
    for (int k = 1; k < n; k++) {
        const fuzz_part *p = &parts[k];
        int png = p->size >= 8 && !memcmp(p->data, "\x89PNG\r\n\x1a\n", 8);
        int jpeg = p->size >= 3 && !memcmp(p->data, "\xff\xd8\xff", 3);
        if (!png && !jpeg && !captioned) { /* the caption of the last image */
            if (celeb)
                snprintf(path, sizeof path, "%s/%s.txt", captions, strrchr(stem, '/') + 1);
            else
                snprintf(path, sizeof path, "%s/%s.txt", images, stem);
            fuzz_write(path, p->data, p->size);
            captioned = 1;
            continue;
        }
        snprintf(stem, sizeof stem, "%simg%d", k % 3 == 2 ? "sub/" : "./", k);
        snprintf(path, sizeof path, "%s/%s.%s", images, stem, jpeg ? "jpg" : "png");
        uint8_t *copy = malloc(p->size ? p->size : 1);
        if (!copy) abort();
        memcpy(copy, p->data, p->size);
        if (png) fuzz_png_fix_crcs(copy, p->size);
        fuzz_write(path, copy, p->size);
        free(copy);
        captioned = !png && !jpeg;
    }
    ldm_dataset_options o = {.size = SIZE,
                             .channels = has_word(&parts[0], "gray") ? 1 : 3,
                             .random_flip = has_word(&parts[0], "flip"),
                             .log = fuzz_log};
    ldm_dataset *d = NULL;
    ldm_status st = ldm_dataset_open(g_root, &o, &d);
    fuzz_status(st);
    if (st != LDM_OK) return 0;
    float image[3 * SIZE * SIZE];
    size_t count = ldm_dataset_count(d);
    if (count == 0 || ldm_dataset_missing_captions(d) > count) abort();
    for (size_t i = 0; i < count; i++) {
        const char *caption = NULL;
        st = ldm_dataset_get(d, i, 7 * i, image, &caption);
        fuzz_status(st);
        if (!caption || !ldm_dataset_path(d, i)) abort();
        g_sink += (float)strlen(caption) + (st == LDM_OK ? image[0] : 0.0f);
        if (ldm_dataset_repeats(d, i) < 1) abort();
        /* sd-scripts' augmentations: never longer than twice the caption, kept tags first */
        ldm_caption_tags tags = {1, (int)(i % 3), has_word(&parts[0], "drop") ? 0.5f : 0.0f};
        char *tagged = NULL;
        if (ldm_caption_tags_apply(caption, &tags, i, &tagged) != LDM_OK) abort();
        if (strlen(tagged) > 2 * strlen(caption)) abort();
        free(tagged);
    }
    if (ldm_dataset_get(d, count, 0, image, NULL) == LDM_OK || ldm_dataset_path(d, count)) abort();
    ldm_dataset_destroy(d);
    return 0;
}
