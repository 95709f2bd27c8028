/* tests/test_dataset.c: a folder of captioned images: the files found (recursively, sorted,
 * non-images ignored), captions per line with blank and non-UTF-8 lines dropped (warned with
 * file:line), missing captions warned and empty, an unreadable image an error naming it, random
 * choices fixed by the key; the CelebAMask-HQ layout; an empty or absent folder; FIFOs named as
 * images or captions skipped, never opened; caption lines of any length kept whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldmcl/dataset.h"
#include "test_util.h"

static char g_log[8192];

static void capture(void *user, ldm_log_level level, const char *message) {
    (void)user, (void)level;
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s\n", message);
}

static void write_png(const char *path, int w, int h, int channels, int seed) {
    uint8_t *px = malloc((size_t)w * h * channels);
    assert_non_null(px);
    for (int i = 0; i < w * h * channels; i++)
        px[i] = (uint8_t)((i * 31 + seed * 17) % 256);
    ldm_image img = {w, h, channels, px};
    assert_status(ldm_png_write(path, &img, NULL), LDM_OK);
    free(px);
}

static void put(const char *dir, const char *name, const char *text) {
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    test_write_file(path, text, strlen(text));
}

static void captioned_folder(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("data");
    char path[8400], sub[4200];
    snprintf(path, sizeof path, "%s/a.png", dir);
    write_png(path, 12, 10, 3, 1);
    put(dir, "a.txt", "a photo of a sneaker\n\nbad \xff line\r\na sneaker   \n");
    snprintf(path, sizeof path, "%s/c.PNG", dir);
    write_png(path, 8, 8, 1, 2);
    put(dir, "c.txt", "a bag");
    put(dir, "broken.png", "not really a png");
    put(dir, "notes.md", "ignored");
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/image_sample.jpg", LDMCL_TEST_REF_DIR);
    size_t len;
    unsigned char *jpg = test_read_file(path, &len);
    snprintf(path, sizeof path, "%s/b.jpg", sub);
    test_write_file(path, jpg, len);
    free(jpg);

    g_log[0] = 0;
    ldm_dataset_options o = {.size = 8, .channels = 3, .random_flip = 1, .log = capture};
    ldm_dataset *d;
    assert_status(ldm_dataset_open(dir, &o, &d), LDM_OK);
    assert_int_equal(ldm_dataset_count(d), 4);
    const char *want[4] = {"/a.png", "/broken.png", "/c.PNG", "/sub/b.jpg"};
    for (int i = 0; i < 4; i++) {
        const char *p = ldm_dataset_path(d, (size_t)i);
        assert_string_equal(p + strlen(p) - strlen(want[i]), want[i]);
    }
    assert_int_equal(ldm_dataset_missing_captions(d), 2);
    assert_contains(g_log, "a.txt:3: the caption is not UTF-8 text; the line is ignored");
    assert_contains(g_log, "no caption for '");
    assert_contains(g_log, "broken.png' (looked for '");

    float img[3 * 8 * 8], again[3 * 8 * 8];
    const char *caption;
    int seen[2] = {0, 0}, flips = 0;
    for (uint64_t key = 0; key < 32; key++) {
        assert_status(ldm_dataset_get(d, 0, key, img, &caption), LDM_OK);
        seen[0] |= !strcmp(caption, "a photo of a sneaker");
        seen[1] |= !strcmp(caption, "a sneaker");
        assert_true(!strcmp(caption, "a photo of a sneaker") || !strcmp(caption, "a sneaker"));
        const char *c2;
        assert_status(ldm_dataset_get(d, 0, key, again, &c2), LDM_OK);
        assert_memory_equal(img, again, sizeof img); /* the key decides */
        assert_ptr_equal(caption, c2);
        assert_status(ldm_dataset_get(d, 0, 0, again, NULL), LDM_OK);
        flips += memcmp(img, again, sizeof img) != 0;
    }
    assert_true(seen[0] && seen[1]);
    assert_true(flips > 0 && flips < 32);
    for (int i = 0; i < 3 * 64; i++)
        assert_true(img[i] >= -1.0f && img[i] <= 1.0f);
    assert_status(ldm_dataset_get(d, 1, 0, img, &caption), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "broken.png' is neither a PNG nor a JPEG");
    assert_status(ldm_dataset_get(d, 2, 0, img, &caption), LDM_OK); /* gray file as RGB */
    assert_string_equal(caption, "a bag");
    assert_status(ldm_dataset_get(d, 3, 0, img, &caption), LDM_OK);
    assert_string_equal(caption, "");
    ldm_dataset_destroy(d);
    test_rmtree(dir);
    free(dir);
}

static void celebamask_hq_layout_and_errors(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("celeb");
    char img_dir[4200], cap_dir[4200], path[4300];
    snprintf(img_dir, sizeof img_dir, "%s/CelebA-HQ-img", dir);
    snprintf(cap_dir, sizeof cap_dir, "%s/celeba-caption", dir);
    assert_int_equal(mkdir(img_dir, 0700), 0);
    assert_int_equal(mkdir(cap_dir, 0700), 0);
    snprintf(path, sizeof path, "%s/0.png", img_dir);
    write_png(path, 16, 16, 3, 3);
    snprintf(path, sizeof path, "%s/1.png", img_dir);
    write_png(path, 16, 16, 3, 4);
    put(cap_dir, "0.txt", "She is a woman with blond hair. She is wearing lipstick.\n");
    put(dir, "stray.png", "not an image of the layout"); /* outside CelebA-HQ-img: not used */
    ldm_dataset_options o = {.size = 4, .channels = 3};
    ldm_dataset *d;
    assert_status(ldm_dataset_open(dir, &o, &d), LDM_OK);
    assert_int_equal(ldm_dataset_count(d), 2);
    assert_int_equal(ldm_dataset_missing_captions(d), 1);
    float img[3 * 16];
    const char *caption;
    assert_status(ldm_dataset_get(d, 0, 5, img, &caption), LDM_OK);
    assert_string_equal(caption, "She is a woman with blond hair. She is wearing lipstick.");
    ldm_dataset_destroy(d);

    char empty[4200];
    snprintf(empty, sizeof empty, "%s/celeba-caption", dir); /* a folder without images */
    assert_status(ldm_dataset_open(empty, &o, &d), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "holds no images (.png, .jpg or .jpeg files");
    snprintf(empty, sizeof empty, "%s/none", dir);
    assert_status(ldm_dataset_open(empty, &o, &d), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "no dataset folder");
    /* a caption extension too long is refused, not cut */
    o.caption_ext = ".caption-extension-of-40-bytes-0123456789";
    assert_status(ldm_dataset_open(dir, &o, &d), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "bytes, more than the 31 allowed");
    test_rmtree(dir);
    free(dir);
}

/* Image and caption names that are FIFOs: opening one would block until a writer comes, which
 * hung ldmcl-train. The image FIFO is skipped with a warning naming it, the caption FIFO gives
 * the empty caption, the readers refuse a FIFO they are given directly. An alarm turns a hang
 * into a failure. */
static void fifos_are_skipped_not_opened(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("fifo");
    char path[4300];
    snprintf(path, sizeof path, "%s/a.png", dir);
    write_png(path, 8, 8, 3, 1);
    put(dir, "a.txt", "a shoe\n");
    snprintf(path, sizeof path, "%s/b.png", dir);
    write_png(path, 8, 8, 3, 2);
    snprintf(path, sizeof path, "%s/b.txt", dir); /* b's caption file is a FIFO */
    assert_int_equal(mkfifo(path, 0600), 0);
    snprintf(path, sizeof path, "%s/pipe.png", dir); /* an image name that is a FIFO */
    assert_int_equal(mkfifo(path, 0600), 0);

    alarm(60);
    g_log[0] = 0;
    ldm_dataset_options o = {.size = 8, .channels = 3, .log = capture};
    ldm_dataset *d;
    assert_status(ldm_dataset_open(dir, &o, &d), LDM_OK);
    assert_int_equal(ldm_dataset_count(d), 2);
    assert_contains(g_log, "pipe.png' is a FIFO (named pipe), not a regular file: skipped");
    assert_contains(g_log, "b.txt' is a FIFO (named pipe), not a regular file: the empty caption");
    float img[3 * 8 * 8];
    const char *caption;
    for (size_t i = 0; i < ldm_dataset_count(d); i++)
        assert_status(ldm_dataset_get(d, i, 0, img, &caption), LDM_OK);
    assert_string_equal(caption, ""); /* b, the last */
    ldm_dataset_destroy(d);

    ldm_image im;
    assert_status(ldm_image_read(path, 3, NULL, &im), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "pipe.png' is a FIFO (named pipe), not a regular file");
    assert_status(ldm_png_read(path, 3, NULL, &im), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "pipe.png' is a FIFO (named pipe), not a regular file");
    assert_status(ldm_jpeg_read(path, 3, NULL, &im), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "pipe.png' is a FIFO (named pipe), not a regular file");
    ldm_safetensors *st;
    assert_int_not_equal(ldm_safetensors_open(path, &st), LDM_OK);
    assert_contains(ldm_last_error(), "pipe.png' is not a regular file");
    alarm(0);
    test_rmtree(dir);
    free(dir);
}

/* A caption line of 20,000 bytes is one caption, not three (lines were read 8191 bytes at a
 * time, each piece a caption of its own). */
static void long_caption_lines_stay_whole(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("longcap");
    char path[4300];
    snprintf(path, sizeof path, "%s/a.png", dir);
    write_png(path, 8, 8, 1, 1);
    enum { LONG = 20000 };
    char *text = malloc(LONG + 16);
    assert_non_null(text);
    for (int i = 0; i < LONG; i++)
        text[i] = "a sneaker "[i % 10];
    text[LONG - 1] = 'x'; /* no trailing space to trim */
    snprintf(text + LONG, 16, "\nshort\n");
    put(dir, "a.txt", text);
    ldm_dataset_options o = {.size = 8, .channels = 1};
    ldm_dataset *d;
    assert_status(ldm_dataset_open(dir, &o, &d), LDM_OK);
    int seen_long = 0, seen_short = 0;
    for (uint64_t key = 0; key < 64; key++) {
        const char *c = ldm_dataset_caption(d, 0, key);
        if (!strcmp(c, "short"))
            seen_short = 1;
        else if (strlen(c) == LONG && !memcmp(c, text, LONG))
            seen_long = 1;
        else
            fail_msg("caption of %zu bytes: '%.40s...'", strlen(c), c);
    }
    assert_true(seen_long && seen_short);
    ldm_dataset_destroy(d);
    free(text);
    test_rmtree(dir);
    free(dir);
}

/* kohya's layout: N_concept folders repeat their images N times and caption those without a
 * caption file by the concept; other folders (and malformed names) count once. */
static void kohya_repeat_folders(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("kohya");
    const char *folders[] = {"3_sks dog", "plain", "0_zero", "12_", "x_cat", "2_ok"};
    char sub[4300], path[4400];
    for (int i = 0; i < 6; i++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, folders[i]);
        assert_int_equal(mkdir(sub, 0700), 0);
        snprintf(path, sizeof path, "%s/a.png", sub);
        write_png(path, 8, 8, 3, i);
    }
    snprintf(sub, sizeof sub, "%s/2_ok", dir);
    put(sub, "a.txt", "its own caption\n");
    snprintf(sub, sizeof sub, "%s/2_ok/deeper", dir); /* nested: the top folder counts */
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/b.png", sub);
    write_png(path, 8, 8, 3, 9);
    ldm_dataset_options o = {.size = 8, .channels = 3, .log = capture};
    ldm_dataset *d;
    g_log[0] = 0;
    assert_status(ldm_dataset_open(dir, &o, &d), LDM_OK);
    assert_int_equal(ldm_dataset_count(d), 7);
    /* sorted by path: 0_zero, 12_, 2_ok/a, 2_ok/deeper/b, 3_sks dog, plain, x_cat */
    const int repeats[] = {1, 1, 2, 2, 3, 1, 1};
    const char *captions[] = {"", "", "its own caption", "ok", "sks dog", "", ""};
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(ldm_dataset_repeats(d, i), repeats[i]);
        assert_string_equal(ldm_dataset_caption(d, i, 3), captions[i]);
    }
    assert_int_equal(ldm_dataset_repeats(d, 7), 0);
    assert_int_equal(ldm_dataset_missing_captions(d), 4); /* the concepts are no warnings */
    assert_null(strstr(g_log, "sks dog/a.txt"));
    ldm_dataset_destroy(d);
    test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(captioned_folder),
        cmocka_unit_test(celebamask_hq_layout_and_errors),
        cmocka_unit_test(fifos_are_skipped_not_opened),
        cmocka_unit_test(long_caption_lines_stay_whole),
        cmocka_unit_test(kohya_repeat_folders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
