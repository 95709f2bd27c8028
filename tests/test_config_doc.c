/* tests/test_config_doc.c: docs/CONFIG.md against the config reader, so that it cannot go stale:
 * the keys documented in each section are exactly the keys ldm_run_config_read_ini asks for, and
 * each documented default is the value it resolves an absent key to. And ldmcl-train
 * --print-config: its output reads back as the same config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ldmcl.h"
#include "test_util.h"

#define DOC LDMCL_SOURCE_DIR "/docs/CONFIG.md"
enum { MAX_KEYS = 256 };

typedef struct doc_key {
    char section[32], key[48], type[16], def[128];
    int seen;
} doc_key;

/* The rows "| `key` | type | default | ..." under "## [section]" headings. */
static int read_doc(doc_key *keys) {
    FILE *f = fopen(DOC, "r");
    assert_non_null(f);
    char line[4096], section[32] = "";
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## [", 4)) {
            char *end = strchr(line + 4, ']');
            assert_non_null(end);
            snprintf(section, sizeof section, "%.*s", (int)(end - line - 4), line + 4);
            continue;
        }
        if (strncmp(line, "| `", 3) || !section[0]) continue;
        assert_true(n < MAX_KEYS);
        doc_key *k = &keys[n++];
        memset(k, 0, sizeof *k);
        snprintf(k->section, sizeof k->section, "%s", section);
        char *key = line + 3, *q = strchr(key, '`');
        assert_non_null(q);
        snprintf(k->key, sizeof k->key, "%.*s", (int)(q - key), key);
        char *type = strstr(q, "| ") + 2, *tend = strchr(type, ' ');
        snprintf(k->type, sizeof k->type, "%.*s", (int)(tend - type), type);
        char *def = strstr(tend, "| ") + 2, *dend = strstr(def, " |");
        if (def[0] == '`') def++, dend--; /* `value` */
        snprintf(k->def, sizeof k->def, "%.*s", (int)(dend - def), def);
    }
    fclose(f);
    return n;
}

static void doc_lists_every_key_with_its_default(void **state) {
    (void)state;
    static doc_key keys[MAX_KEYS];
    int n = read_doc(keys);
    assert_true(n > 80);
    /* the defaults: a config that sets only what a valid run needs (the vocabulary's path) */
    const char *text = "[text]\nvocab = /nonexistent/bpe_simple_vocab_16e6.txt.gz\n";
    ldm_ini *ini;
    assert_status(ldm_ini_parse("minimal.ini", text, strlen(text), &ini), LDM_OK);
    ldm_run_config *c = malloc(sizeof *c);
    assert_non_null(c);
    assert_status(ldm_run_config_read_ini(ini, "minimal.ini", c), LDM_OK);
    size_t asked = ldm_ini_lookup_count(ini);
    for (size_t i = 0; i < asked; i++) {
        const char *sec, *key, *value;
        ldm_ini_lookup_at(ini, i, &sec, &key, &value);
        int found = 0;
        for (int j = 0; j < n && !found; j++) {
            doc_key *k = &keys[j];
            if (strcmp(k->section, sec) || strcmp(k->key, key)) continue;
            found = 1;
            k->seen = 1;
            if (!strcmp(k->type, "path")) continue; /* resolved against the config's folder */
            const char *want = strcmp(k->def, "(none)") ? k->def : "";
            if (strcmp(want, value))
                fail_msg("docs/CONFIG.md: [%s] %s: default '%s', the reader's '%s'", sec, key,
                         k->def, value);
        }
        if (!found) fail_msg("docs/CONFIG.md lacks [%s] %s, which the reader reads", sec, key);
    }
    for (int j = 0; j < n; j++)
        if (!keys[j].seen)
            fail_msg("docs/CONFIG.md documents [%s] %s, which the reader does not read",
                     keys[j].section, keys[j].key);
    ldm_ini_free(ini);
    free(c);
}

static void printed_configs_read_back_the_same(void **state) {
    (void)state;
    /* (celebhq_text_cond.ini needs a pretrained CLIP folder to be read at all) */
    static const char *configs[] = {"fashion_mnist.ini", "fashion_mnist_smoke.ini"};
    char *dir = test_make_tmpdir("print-config");
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++) {
        char src[4096], out[4400], cmd[9000], text[256];
        snprintf(src, sizeof src, "%s/configs/%s", LDMCL_SOURCE_DIR, configs[i]);
        snprintf(out, sizeof out, "%s/printed.ini", dir);
        snprintf(cmd, sizeof cmd, "'%s' --print-config '%s' > '%s' 2>&1", LDMCL_TRAIN_PROGRAM, src,
                 out);
        assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
        ldm_run_config *a = malloc(sizeof *a), *b = malloc(sizeof *b);
        assert_non_null(a);
        assert_non_null(b);
        assert_status(ldm_run_config_read(src, a), LDM_OK);
        assert_status(ldm_run_config_read(out, b), LDM_OK);
        memcpy(b->path, a->path, sizeof a->path);
        if (memcmp(a, b, sizeof *a)) fail_msg("%s printed reads back as another config", src);
        free(a);
        free(b);
    }
    test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doc_lists_every_key_with_its_default),
        cmocka_unit_test(printed_configs_read_back_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
