/* tests/test_ini.c: the strict INI reader: sections, comments, values with ';' and '#' (prompts),
 * quoted values, lines far past inih's 200 bytes, typed getters with their errors (file:line), and
 * every malformed input: a bad line, a key outside a section, duplicate keys and sections, a NUL
 * byte, invalid UTF-8, unknown keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ini.h"
#include "test_util.h"

static ldm_ini *parse(const char *text) {
    ldm_ini *ini = NULL;
    assert_status(ldm_ini_parse("train.ini", text, strlen(text), &ini), LDM_OK);
    return ini;
}

#define PARSE_ERROR(text, message) expect_parse_error((text), strlen(text), (message))

static void expect_parse_error(const char *text, size_t len, const char *message) {
    ldm_ini *ini = NULL;
    assert_status(ldm_ini_parse("bad.ini", text, len, &ini), LDM_ERR_FORMAT);
    assert_null(ini);
    assert_contains(ldm_last_error(), message);
}

static void values_and_getters(void **state) {
    (void)state;
    char text[4096];
    char long_prompt[1001];
    memset(long_prompt, 'a', 1000);
    long_prompt[1000] = 0;
    snprintf(text, sizeof text,
             "; a comment\n# another\n\n[train]\nseed = 1111\nlearning_rate = 5e-6\n"
             "use_ema = yes\n  [ldm]  \ndown_channels = [256, 384, 512, 768]\n"
             "down_sample = [True, True, False]\nprompt = a cat; very #1 cute\n"
             "quoted = \"  spaced  \"\nlong = %s\nempty =\nmeans = [0.5, -1e-3 , 2]\n"
             "stds = 1, x\n",
             long_prompt);
    ldm_ini *ini = parse(text);
    long seed = 0, list[8];
    double lr = 0;
    int ema = 0, count = 0;
    const char *prompt = NULL, *quoted = NULL, *lng = NULL, *empty = NULL;
    assert_status(ldm_ini_int(ini, "train", "seed", 0, 1L << 40, &seed), LDM_OK);
    assert_status(ldm_ini_double(ini, "train", "learning_rate", 0, 1, &lr), LDM_OK);
    assert_status(ldm_ini_bool(ini, "train", "use_ema", &ema), LDM_OK);
    assert_true(seed == 1111 && lr == 5e-6 && ema == 1);
    assert_status(ldm_ini_int_list(ini, "ldm", "down_channels", 1, 4096, list, 8, &count), LDM_OK);
    assert_true(count == 4 && list[0] == 256 && list[3] == 768);
    assert_status(ldm_ini_int_list(ini, "ldm", "down_sample", 0, 1, list, 8, &count), LDM_OK);
    assert_true(count == 3 && list[0] == 1 && list[2] == 0);
    double dl[4];
    assert_status(ldm_ini_double_list(ini, "ldm", "means", -10, 10, dl, 4, &count), LDM_OK);
    assert_true(count == 3 && dl[0] == 0.5 && dl[1] == -1e-3 && dl[2] == 2.0);
    assert_status(ldm_ini_double_list(ini, "ldm", "means", 0, 10, dl, 4, &count), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "item 2 outside [0, 10]");
    assert_status(ldm_ini_double_list(ini, "ldm", "stds", 0, 10, dl, 4, &count), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "train.ini:16: [ldm] stds = 1, x: item 2 is not a finite");
    assert_status(ldm_ini_string(ini, "ldm", "prompt", &prompt), LDM_OK);
    assert_string_equal(prompt, "a cat; very #1 cute");
    assert_status(ldm_ini_string(ini, "ldm", "quoted", &quoted), LDM_OK);
    assert_string_equal(quoted, "  spaced  ");
    assert_status(ldm_ini_string(ini, "ldm", "long", &lng), LDM_OK);
    assert_string_equal(lng, long_prompt);
    assert_status(ldm_ini_string(ini, "ldm", "empty", &empty), LDM_OK);
    assert_string_equal(empty, "");
    long absent = 7;
    assert_status(ldm_ini_int(ini, "train", "absent", 0, 10, &absent), LDM_OK);
    assert_int_equal(absent, 7);
    assert_true(ldm_ini_has_section(ini, "ldm") && !ldm_ini_has_section(ini, "vae"));
    assert_status(ldm_ini_check_unused(ini), LDM_OK);

    /* typed errors name file:line, section, key and value */
    assert_status(ldm_ini_int(ini, "train", "learning_rate", 0, 10, &seed), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "train.ini:6: [train] learning_rate = 5e-6: not an integer");
    assert_status(ldm_ini_double(ini, "train", "learning_rate", 1e-3, 1, &lr), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "outside [0.001, 1]");
    assert_status(ldm_ini_bool(ini, "ldm", "prompt", &ema), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "train.ini:11: [ldm] prompt = a cat; very #1 cute: not a "
                                      "boolean");
    assert_status(ldm_ini_int_list(ini, "ldm", "down_channels", 1, 300, list, 8, &count),
                  LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "item 2 outside [1, 300]");
    assert_status(ldm_ini_int_list(ini, "ldm", "down_channels", 1, 4096, list, 2, &count),
                  LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "more than 2 values");
    ldm_ini_free(ini);

    ini = parse("[a]\nx = 1\ny = 2\n[b]\nx = 3\n");
    long x;
    assert_status(ldm_ini_int(ini, "a", "x", 0, 9, &x), LDM_OK);
    assert_status(ldm_ini_check_unused(ini), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "2 unknown keys (a typo?): train.ini:3 [a] y; train.ini:5 "
                                      "[b] x");
    ldm_ini_free(ini);
}

static void malformed_files_name_the_line(void **state) {
    (void)state;
    PARSE_ERROR("[a]\nx = 1\nno equals sign here\n", "bad.ini:3: expected key = value");
    PARSE_ERROR("x = 1\n", "bad.ini:1: key 'x' comes before any [section]");
    PARSE_ERROR("[a]\nx = 1\nx = 2\n", "bad.ini:3: key 'x' of [a] is set twice (first "
                                       "on line 2)");
    PARSE_ERROR("[a]\n[b]\n[a]\n", "bad.ini:3: section [a] appears twice");
    PARSE_ERROR("[a b]\n", "bad.ini:1: a section header is [name]");
    expect_parse_error("[a]\nx = 1\0\n", 11, "bad.ini:2: a NUL byte");
    PARSE_ERROR("[a]\nx = caf\xe9\n", "bad.ini:2: the line is not UTF-8 text");
    PARSE_ERROR("[a]\n = 1\n", "bad.ini:2: expected key = value");
    ldm_ini *ini;
    assert_status(ldm_ini_read("/no/such/train.ini", &ini), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "cannot open the config '/no/such/train.ini'");
    /* CRLF line ends and a byte order mark are fine */
    ini = NULL;
    const char *crlf = "\xEF\xBB\xBF[a]\r\nx = 1\r\n";
    assert_status(ldm_ini_parse("crlf.ini", crlf, strlen(crlf), &ini), LDM_OK);
    const char *v;
    assert_status(ldm_ini_string(ini, "a", "x", &v), LDM_OK);
    assert_string_equal(v, "1");
    ldm_ini_free(ini);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_and_getters),
        cmocka_unit_test(malformed_files_name_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
