/* tests/test_caption_tags.c: sd-scripts' caption augmentations (ldmcl/caption_tags.h): tags
 * trimmed and rejoined, shuffle_caption a permutation that keeps the first keep_tokens in place
 * and depends on the key alone, caption_tag_dropout_rate drops about that fraction of the other
 * tags, never a kept one. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static char *apply(const char *caption, int shuffle, int keep, float drop, uint64_t key) {
    ldm_caption_tags o = {shuffle, keep, drop};
    char *out = NULL;
    assert_status(ldm_caption_tags_apply(caption, &o, key, &out), LDM_OK);
    assert_non_null(out);
    return out;
}

static void tags_are_trimmed_and_rejoined(void **state) {
    (void)state;
    char *out = apply(" red hair ,smiling,, 1girl ", 0, 0, 0, 1);
    assert_string_equal(out, "red hair, smiling, 1girl");
    free(out);
    out = apply("a photo of a zorb", 1, 0, 0, 7); /* one tag: as it was */
    assert_string_equal(out, "a photo of a zorb");
    free(out);
    out = apply("", 1, 3, 0.5f, 7);
    assert_string_equal(out, "");
    free(out);
    ldm_caption_tags off = {0, 2, 0}, on = {1, 0, 0}, drop = {0, 0, 0.1f};
    assert_false(ldm_caption_tags_active(&off));
    assert_true(ldm_caption_tags_active(&on) && ldm_caption_tags_active(&drop));
}

static void shuffle_keeps_the_first_tokens(void **state) {
    (void)state;
    const char *caption = "sks, dog, grass, sky, ball, tree, sun, red collar";
    int first_seen[8] = {0};
    const char *tags[] = {"grass", "sky", "ball", "tree", "sun", "red collar"};
    for (uint64_t key = 0; key < 200; key++) {
        char *out = apply(caption, 1, 2, 0, key);
        assert_int_equal(strncmp(out, "sks, dog, ", 10), 0);
        assert_int_equal(strlen(out), strlen(caption));
        for (int t = 0; t < 6; t++) { /* every tag once */
            const char *at = strstr(out, tags[t]);
            assert_non_null(at);
            if (at == out + 10) first_seen[t]++;
        }
        char *again = apply(caption, 1, 2, 0, key);
        assert_string_equal(out, again); /* the key decides */
        free(again);
        free(out);
    }
    for (int t = 0; t < 6; t++) /* each tag comes third now and then (200 / 6 on average) */
        assert_true(first_seen[t] > 10);
    char *a = apply(caption, 1, 0, 0, 1), *b = apply(caption, 1, 0, 0, 2);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    a = apply("one, two", 1, 5, 0, 3); /* keep_tokens beyond the tags: nothing moves */
    assert_string_equal(a, "one, two");
    free(a);
}

static void dropout_drops_about_its_rate(void **state) {
    (void)state;
    const char *caption = "keep, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10";
    int dropped = 0;
    for (uint64_t key = 0; key < 400; key++) {
        char *out = apply(caption, 0, 1, 0.25f, key);
        assert_int_equal(strncmp(out, "keep", 4), 0);
        int left = 1;
        for (const char *c = out; *c; c++)
            left += *c == ',';
        dropped += 11 - left;
        free(out);
    }
    double rate = dropped / (400.0 * 10); /* 4000 draws: within 0.25 +- 0.03 (4 sigma) */
    assert_true(rate > 0.22 && rate < 0.28);
    char *all = apply(caption, 0, 0, 1.0f, 5);
    assert_string_equal(all, "");
    free(all);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tags_are_trimmed_and_rejoined),
        cmocka_unit_test(shuffle_keeps_the_first_tokens),
        cmocka_unit_test(dropout_drops_about_its_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
