/* tests/test_safetensors.c: the safetensors writer and the strict reader: a round trip with
 * metadata, F16/BF16/F64/I32 conversion, and every malformed file the reference parser rejects,
 * each with a message naming the file and, where there is one, the tensor. Also the JSON parser's
 * strictness and the SHA-256 of the data that ldmcl's files carry. (The atomic writes under the
 * writer: test_atomic_write.) */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "internal.h"
#include "json.h"
#include "ldmcl/image.h"
#include "ldmcl/safetensors.h"
#include "sha256.h"
#include "test_util.h"

static char *g_dir;

static int setup(void **state) {
    (void)state;
    g_dir = test_make_tmpdir("st");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    free(g_dir);
    return 0;
}

/* Writes a file from a header text and data bytes; returns its path (static buffer). */
static const char *craft(const char *name, const char *header, const void *data, size_t n) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + n + 1);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (n) memcpy(buf + 8 + hl, data, n);
    test_write_file(path, buf, 8 + hl + n);
    free(buf);
    return path;
}

static void round_trip(void **state) {
    (void)state;
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 65504};
    float b[1] = {42};
    int64_t sa[2] = {2, 3}, sb[1] = {1};
    ldm_st_entry e[2] = {{"weight", 2, sa, a}, {"bias \"quoted\"", 1, sb, b}};
    const char *meta[] = {"step", "1200", "schedule", "scaled_linear", NULL};
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", g_dir);
    assert_status(ldm_safetensors_write(path, e, 2, meta), LDM_OK);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    assert_int_equal(ldm_safetensors_count(st), 2);
    assert_string_equal(ldm_safetensors_metadata(st, "step"), "1200");
    assert_string_equal(ldm_safetensors_metadata(st, "schedule"), "scaled_linear");
    assert_null(ldm_safetensors_metadata(st, "missing"));
    uint64_t n = 0;
    assert_status(ldm_safetensors_metadata_u64(st, "step", &n), LDM_OK);
    assert_int_equal(n, 1200);
    assert_status(ldm_safetensors_metadata_u64(st, "schedule", &n), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "schedule = 'scaled_linear' is not a whole number");
    assert_status(ldm_safetensors_metadata_u64(st, "missing", &n), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "model.safetensors' has no metadata missing");
    assert_int_equal(n, 1200);
    ldm_safetensors_close(st);
    /* digits only: strtoull alone takes " -1" as 2^64 - 1 */
    const char *numbers[] = {"neg",   " -1",
                             "plus",  "+5",
                             "space", " 5",
                             "trail", "5 ",
                             "big",   "18446744073709551616",
                             "max",   "18446744073709551615",
                             NULL};
    assert_status(ldm_safetensors_write(path, e, 2, numbers), LDM_OK);
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    for (int i = 0; i < 5; i++) {
        n = 1200;
        assert_status(ldm_safetensors_metadata_u64(st, numbers[2 * i], &n), LDM_ERR_FORMAT);
        assert_contains(ldm_last_error(), "is not a whole number");
        assert_int_equal(n, 1200);
    }
    assert_status(ldm_safetensors_metadata_u64(st, "max", &n), LDM_OK);
    assert_true(n == UINT64_MAX);
    ldm_safetensors_close(st);
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    const ldm_st_tensor *t = ldm_safetensors_find(st, "weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->dtype, LDM_DTYPE_F32);
    float got[6];
    assert_status(ldm_safetensors_read_f32(st, t, got), LDM_OK);
    assert_memory_equal(got, a, sizeof a);
    t = ldm_safetensors_find(st, "bias \"quoted\"");
    assert_non_null(t);
    assert_status(ldm_safetensors_read_f32(st, t, got), LDM_OK);
    assert_true(got[0] == 42.0f);
    ldm_safetensors_close(st);
}

static void converts_half_bfloat_double_int(void **state) {
    (void)state;
    /* F16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 0x0001;
     * BF16: 1.0 = 0x3F80, -3.0 = 0xC040; F64 0.1; I32 -7. */
    unsigned char data[] = {0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00, /* f16 */
                            0x80, 0x3F, 0x40, 0xC0,                         /* bf16 */
                            0x9A, 0x99, 0x99, 0x99, 0x99, 0x99, 0xB9, 0x3F, /* f64 */
                            0xF9, 0xFF, 0xFF, 0xFF};                        /* i32 */
    const char *h = "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                    "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[12,20]},"
                    "\"i\":{\"dtype\":\"I32\",\"shape\":[1,1],\"data_offsets\":[20,24]}}";
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(craft("conv.safetensors", h, data, sizeof data), &st),
                  LDM_OK);
    float v[4];
    assert_status(ldm_safetensors_read_f32(st, ldm_safetensors_find(st, "h"), v), LDM_OK);
    assert_true(v[0] == 1.0f && v[1] == -2.0f && v[2] == 65504.0f);
    assert_true(v[3] == ldexpf(1.0f, -24));
    assert_status(ldm_safetensors_read_f32(st, ldm_safetensors_find(st, "b"), v), LDM_OK);
    assert_true(v[0] == 1.0f && v[1] == -3.0f);
    assert_status(ldm_safetensors_read_f32(st, ldm_safetensors_find(st, "d"), v), LDM_OK);
    assert_true(v[0] == 0.1f);
    assert_int_equal(ldm_safetensors_find(st, "d")->numel, 1);
    assert_status(ldm_safetensors_read_f32(st, ldm_safetensors_find(st, "i"), v), LDM_OK);
    assert_true(v[0] == -7.0f);
    ldm_safetensors_close(st);

    /* A dtype that is valid but not convertible names the tensor. */
    unsigned char u8[2] = {1, 2};
    assert_status(
        ldm_safetensors_open(
            craft("u8.safetensors",
                  "{\"mask\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", u8, 2),
            &st),
        LDM_OK);
    assert_status(ldm_safetensors_read_f32(st, ldm_safetensors_find(st, "mask"), v),
                  LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "tensor 'mask' is U8");
    ldm_safetensors_close(st);
}

/* Expects the file to be rejected with a message containing `why`. */
static void expect_bad(const char *path, const char *why) {
    ldm_safetensors *st = NULL;
    ldm_status s = ldm_safetensors_open(path, &st);
    if (s != LDM_ERR_FORMAT)
        fail_msg("'%s' (%s) was not rejected: %s", path, why, ldm_status_name(s));
    assert_null(st);
    assert_contains(ldm_last_error(), path);
    assert_contains(ldm_last_error(), why);
}

static void rejects_malformed_files(void **state) {
    (void)state;
    float f[4] = {0};
    const char *ok_entry = "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    char h[512];

    expect_bad(craft("tiny", "", NULL, 0), "does not start with"); /* a header of 0 bytes */
    {
        char path[4200];
        snprintf(path, sizeof path, "%s/seven", g_dir);
        test_write_file(path, "1234567", 7);
        expect_bad(path, "too small");
    }
    {
        unsigned char big[8] = {0x00, 0xE2, 0xF5, 0x05, 0, 0, 0, 0}; /* 100,000,512 */
        char path[4200];
        snprintf(path, sizeof path, "%s/huge", g_dir);
        test_write_file(path, big, 8);
        expect_bad(path, "over the 100000000 limit");
        unsigned char past[12] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
        snprintf(path, sizeof path, "%s/past", g_dir);
        test_write_file(path, past, sizeof past);
        expect_bad(path, "truncated");
    }
    expect_bad(craft("notobj", "[1,2]", NULL, 0), "does not start with '{'");
    expect_bad(craft("badjson", "{\"t\":", NULL, 0), "invalid header JSON");
    expect_bad(craft("utf8", "{\"\xC3\x28\":{}}", NULL, 0), "invalid UTF-8");
    snprintf(h, sizeof h, "{%s,%s}", ok_entry, ok_entry);
    expect_bad(craft("dup", h, f, 8), "duplicate key");
    expect_bad(
        craft("dtype", "{\"t\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", f, 8),
        "tensor 't': unknown dtype 'F33'");
    expect_bad(
        craft("size", "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", f, 8),
        "tensor 't': shape and dtype give 12 bytes, data_offsets 8");
    expect_bad(
        craft("neg", "{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", f, 8),
        "tensor 't': shape[0] is not a size");
    expect_bad(
        craft("rev", "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", f, 8),
        "tensor 't': data_offsets end before they begin");
    expect_bad(craft("gap",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                     f, 12),
               "tensor 'b' begins at byte 8, expected 4");
    expect_bad(craft("overlap",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                     f, 8),
               "tensor 'b' begins at byte 4, expected 8");
    snprintf(h, sizeof h, "{%s}", ok_entry);
    expect_bad(craft("trailing", h, f, 12), "trailing data");
    expect_bad(craft("short", h, f, 4), "truncated");
    expect_bad(craft("extra",
                     "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", f,
                     8),
               "exactly dtype, shape and data_offsets");
    expect_bad(craft("meta", "{\"__metadata__\":{\"k\":1}}", NULL, 0),
               "__metadata__ value 'k' is not a string");
    expect_bad(craft("shapeovf",
                     "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                     "\"data_offsets\":[0,8]}}",
                     f, 8),
               "tensor 't': shape overflows");
    expect_bad(craft("sizeovf",
                     "{\"t\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],"
                     "\"data_offsets\":[0,8]}}",
                     f, 8),
               "tensor 't': size overflows");

    /* An empty file of tensors is fine; so are trailing spaces in the header. */
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(craft("empty", "{}      ", NULL, 0), &st), LDM_OK);
    assert_int_equal(ldm_safetensors_count(st), 0);
    ldm_safetensors_close(st);
    assert_status(ldm_safetensors_open("/no/such/file.safetensors", &st), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "/no/such/file.safetensors");
}

/* bytes[0..len) written as dir/name; returns the path (static buffer). */
static const char *write_bytes(const char *name, const unsigned char *bytes, size_t len) {
    static char path[4300];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    test_write_file(path, bytes, len);
    return path;
}

/* Every file ldmcl writes carries the SHA-256 of its data section (ldmcl.sha256), checked on
 * opening: a flipped data bit, a changed checksum digit or a broken header is an error naming the
 * file; a file without the key (other writers, older ldmcl) opens as before; a caller cannot set
 * the key. */
static void checksum_catches_damage(void **state) {
    (void)state;
    float a[5] = {1, 2, 3, 4, 5}, b[3] = {-1, 0.5f, 7};
    int64_t sa[1] = {5}, sb[1] = {3};
    ldm_st_entry e[2] = {{"a", 1, sa, a}, {"b", 1, sb, b}};
    const char *meta[] = {"step", "7", NULL};
    char path[4300];
    snprintf(path, sizeof path, "%s/sum.safetensors", g_dir);
    assert_status(ldm_safetensors_write(path, e, 2, meta), LDM_OK);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    assert_string_equal(ldm_safetensors_metadata(st, "step"), "7");
    const char *stored = ldm_safetensors_metadata(st, "ldmcl.sha256");
    assert_non_null(stored);
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);
    size_t data = 8 + (size_t)bytes[0] + ((size_t)bytes[1] << 8); /* a small header */
    assert_int_equal(len - data, 32);                             /* 8 floats */
    ldm_sha256 sha;
    unsigned char digest[32];
    char hex[65];
    ldm_sha256_init(&sha);
    ldm_sha256_update(&sha, bytes + data, len - data);
    ldm_sha256_final(&sha, digest);
    ldm_sha256_hex(digest, hex);
    assert_string_equal(stored, hex); /* of the bytes after the header */
    ldm_safetensors_close(st);

    const char *why = "the tensor data do not match its SHA-256 (the file is damaged: bit flip or "
                      "partial copy)";
    bytes[len - 1] ^= 0x01; /* one bit of b[2] */
    expect_bad(write_bytes("bitflip.safetensors", bytes, len), why);
    bytes[len - 1] ^= 0x01;
    char *digits = strstr((char *)bytes + 8, "\"ldmcl.sha256\":\"");
    assert_non_null(digits);
    digits += strlen("\"ldmcl.sha256\":\"");
    char first = digits[0];
    digits[0] = first == '0' ? '1' : '0'; /* the stored checksum itself */
    expect_bad(write_bytes("digit.safetensors", bytes, len), why);
    digits[0] = 'G';
    expect_bad(write_bytes("notsum.safetensors", bytes, len), "is not 64 lower-case hex digits");
    digits[0] = first;
    digits[-1] = 'x'; /* the quote before the digits: no longer JSON */
    expect_bad(write_bytes("header.safetensors", bytes, len), "invalid header JSON");
    digits[-1] = '"';
    assert_status(ldm_safetensors_open(write_bytes("fixed.safetensors", bytes, len), &st), LDM_OK);
    ldm_safetensors_close(st);
    free(bytes);

    /* no checksum: opens as before */
    const char *h = "{\"__metadata__\":{\"step\":\"3\"},"
                    "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    float f[2] = {4, 5}, got[2];
    assert_status(ldm_safetensors_open(craft("nosum.safetensors", h, f, 8), &st), LDM_OK);
    assert_null(ldm_safetensors_metadata(st, "ldmcl.sha256"));
    assert_status(ldm_safetensors_read_f32(st, ldm_safetensors_find(st, "t"), got), LDM_OK);
    assert_true(got[0] == 4.0f && got[1] == 5.0f);
    ldm_safetensors_close(st);

    /* the key is ldmcl's: a caller passing it is refused and nothing is written */
    const char *own[] = {"step", "7", "ldmcl.sha256", "0000", NULL};
    snprintf(path, sizeof path, "%s/own.safetensors", g_dir);
    assert_status(ldm_safetensors_write(path, e, 2, own), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "the metadata key ldmcl.sha256 is ldmcl's own");
    assert_false(test_file_exists(path));
}

static void json_is_strict(void **state) {
    (void)state;
    const char *bad[] = {"",
                         "{",
                         "[1,]",
                         "{\"a\":1,}",
                         "01",
                         "1.",
                         "\"\\x\"",
                         "\"\x01\"",
                         "tru",
                         "[1] 2",
                         "\"\\uD800\"",
                         "\"\\uDC00x\"",
                         "{\"a\" 1}",
                         "\"\xF5\x80\x80\x80\"",
                         "\"\xE0\x80\xAF\""};
    char err[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ldm_json *j = ldm_json_parse(bad[i], strlen(bad[i]), err, sizeof err);
        if (j) fail_msg("parsed invalid JSON <%s>", bad[i]);
        assert_true(strlen(err) > 0);
    }
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_null(ldm_json_parse(deep, 200, err, sizeof err));
    assert_contains(err, "nested too deeply");

    const char *good = " {\"s\":\"a\\u00e9\\ud83d\\ude00\\n\",\"n\":[-12,3.5e2,0],\"t\":true,"
                       "\"z\":null} ";
    ldm_json *j = ldm_json_parse(good, strlen(good), err, sizeof err);
    assert_non_null(j);
    assert_string_equal(ldm_json_get(j, "s")->string, "a\xC3\xA9\xF0\x9F\x98\x80\n");
    const ldm_json *n = ldm_json_get(j, "n");
    assert_int_equal(n->count, 3);
    assert_true(n->items[0].is_integer && n->items[0].integer == -12);
    assert_false(n->items[1].is_integer);
    assert_true(n->items[1].number == 350.0);
    assert_true(ldm_json_get(j, "t")->boolean);
    assert_int_equal(ldm_json_get(j, "z")->type, LDM_JSON_NULL);
    ldm_json_free(j);
}

/* 200,000 tensors of one float each, with __metadata__ in the middle: the file opens, every
 * tensor is found by name at its place, a name that is not there is not found, and a duplicate
 * name after all of them is still refused. The duplicate checks and the lookups go through a
 * hash index: this took minutes when each key was compared with every earlier one. */
static void many_tensors_open_and_are_found(void **state) {
    (void)state;
    enum { N = 200000 };
    const size_t cap = (size_t)N * 96 + 256;
    char *h = malloc(cap);
    float *data = malloc((size_t)N * sizeof *data);
    assert_non_null(h);
    assert_non_null(data);
    size_t len = 0;
    h[len++] = '{';
    for (size_t i = 0; i < N; i++) {
        if (i) h[len++] = ',';
        if (i == N / 2)
            len += (size_t)snprintf(h + len, cap - len, "\"__metadata__\":{\"k\":\"v\"},");
        len += (size_t)snprintf(h + len, cap - len,
                                "\"down.%zu.weight\":{\"dtype\":\"F32\",\"shape\":[1],"
                                "\"data_offsets\":[%zu,%zu]}",
                                i, 4 * i, 4 * i + 4);
        data[i] = (float)i;
    }
    snprintf(h + len, cap - len, "}");
    ldm_safetensors *st;
    const char *path = craft("many.safetensors", h, data, (size_t)N * sizeof *data);
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    assert_int_equal(ldm_safetensors_count(st), N);
    assert_string_equal(ldm_safetensors_metadata(st, "k"), "v");
    assert_null(ldm_safetensors_find(st, "__metadata__"));
    assert_null(ldm_safetensors_find(st, "down.200000.weight"));
    assert_null(ldm_safetensors_find(st, "down.1.weigh"));
    for (size_t i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof name, "down.%zu.weight", i);
        const ldm_st_tensor *t = ldm_safetensors_find(st, name);
        if (!t || strcmp(t->name, name) || t->begin != 4 * i)
            fail_msg("tensor '%s' not found at its place (got '%s')", name, t ? t->name : "none");
    }
    float v;
    const ldm_st_tensor *last = ldm_safetensors_find(st, "down.199999.weight");
    assert_status(ldm_safetensors_read_f32(st, last, &v), LDM_OK);
    assert_true(v == 199999.0f);
    ldm_safetensors_close(st);

    /* the same with the first name again at the end */
    snprintf(h + len, cap - len,
             ",\"down.0.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}");
    expect_bad(craft("many_dup.safetensors", h, data, (size_t)N * sizeof *data), "duplicate key");
    free(h);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(converts_half_bfloat_double_int),
        cmocka_unit_test(rejects_malformed_files),
        cmocka_unit_test(json_is_strict),
        cmocka_unit_test(checksum_catches_damage),
        cmocka_unit_test(many_tensors_open_and_are_found),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
