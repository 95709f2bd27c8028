/* tests/test_status.c: status names, OpenCL/CLBlast error names, the kept error message, the
 * SHA-256 that keys the kernel cache, the SipHash of the JSON key index, and byte formatting. No
 * device needed. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "sha256.h"
#include "siphash.h"
#include "test_util.h"

static void status_names(void **state) {
    (void)state;
    assert_string_equal(ldm_status_name(LDM_OK), "LDM_OK");
    assert_string_equal(ldm_status_name(LDM_ERR_BUILD), "LDM_ERR_BUILD");
    assert_string_equal(ldm_status_name(LDM_ERR_SELFTEST), "LDM_ERR_SELFTEST");
    assert_string_equal(ldm_status_name(LDM_ERR_JOB), "LDM_ERR_JOB");
    assert_string_equal(ldm_status_name((ldm_status)99), "LDM_ERR_UNKNOWN");
}

static void error_names(void **state) {
    (void)state;
    assert_string_equal(ldm_cl_error_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
    assert_string_equal(ldm_cl_error_name(CL_MEM_OBJECT_ALLOCATION_FAILURE),
                        "CL_MEM_OBJECT_ALLOCATION_FAILURE");
    assert_string_equal(ldm_cl_error_name(CL_INVALID_KERNEL_ARGS), "CL_INVALID_KERNEL_ARGS");
    assert_string_equal(ldm_cl_error_name(-1001), "CL_PLATFORM_NOT_FOUND_KHR");
    assert_string_equal(ldm_cl_error_name(12345), "CL_UNKNOWN_ERROR");
    assert_string_equal(ldm_clblast_error_name(-2050), "CLBlastInsufficientMemoryTemp");
    assert_string_equal(ldm_clblast_error_name(-2045), "CLBlastNoHalfPrecision");
    assert_string_equal(ldm_clblast_error_name(-2046), "CLBlastInvalidLocalMemUsage");
    assert_string_equal(ldm_clblast_error_name(-5), "CL_OUT_OF_RESOURCES");
    assert_string_equal(ldm_clblast_error_name(-7777), "CLBlastUnknownStatus");
}

static int g_fail_line;

static ldm_status fail_here(void) {
    g_fail_line = __LINE__ + 1;
    return LDM_CL_FAIL(CL_MEM_OBJECT_ALLOCATION_FAILURE, "clCreateBuffer", "making a buffer");
}

static void kept_message(void **state) {
    (void)state;
    ldm_clear_error();
    assert_string_equal(ldm_last_error(), "");
    ldm_status st = fail_here();
    assert_int_equal(st, LDM_ERR_DEVICE_MEMORY);
    char where[64];
    snprintf(where, sizeof where, "tests/test_status.c:%d: ", g_fail_line);
    assert_contains(ldm_last_error(), where);
    assert_contains(ldm_last_error(),
                    "clCreateBuffer failed: CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)");
    assert_contains(ldm_last_error(), "while making a buffer.");
    assert_contains(ldm_last_error(), "reduce the batch size"); /* the hint */
    ldm_error_prefix("loading '%s'", "x.cl");
    assert_true(strncmp(ldm_last_error(), "loading 'x.cl': ", 16) == 0);
    assert_int_equal(LDM_CL_FAIL(CL_INVALID_VALUE, "clFoo", "testing"), LDM_ERR_OPENCL);

    /* Long messages (build logs) are kept whole. */
    char big[20000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    LDM_FAIL(LDM_ERR_BUILD, "log:\n%s", big);
    assert_true(strlen(ldm_last_error()) > sizeof big);
}

static void sha256_hex_of(const void *data, size_t n, char hex[65]) {
    ldm_sha256 s;
    unsigned char d[32];
    ldm_sha256_init(&s);
    ldm_sha256_update(&s, data, n);
    ldm_sha256_final(&s, d);
    ldm_sha256_hex(d, hex);
}

static void sha256_vectors(void **state) {
    (void)state;
    char hex[65];
    /* FIPS 180-4 examples (NIST CSRC "SHA256.pdf") */
    sha256_hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex_of(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* One million 'a', fed in uneven pieces to exercise block boundaries. */
    ldm_sha256 s;
    unsigned char d[32], chunk[997];
    memset(chunk, 'a', sizeof chunk);
    ldm_sha256_init(&s);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        ldm_sha256_update(&s, chunk, n);
        left -= n;
    }
    ldm_sha256_final(&s, d);
    ldm_sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void sha256_fields_do_not_run_together(void **state) {
    (void)state;
    ldm_sha256 a, b;
    unsigned char da[32], db[32];
    ldm_sha256_init(&a);
    ldm_sha256_field(&a, "ab", 2);
    ldm_sha256_field(&a, "c", 1);
    ldm_sha256_final(&a, da);
    ldm_sha256_init(&b);
    ldm_sha256_field(&b, "a", 1);
    ldm_sha256_field(&b, "bc", 2);
    ldm_sha256_final(&b, db);
    assert_memory_not_equal(da, db, 32);
}

static void siphash_vectors(void **state) {
    (void)state;
    /* the paper's test key 00 01 .. 0f: the empty message, and its example 00 01 .. 0e */
    unsigned char key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (unsigned char)i;
    memcpy(msg, key, sizeof msg);
    assert_true(ldm_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    assert_true(ldm_siphash24(key, msg, 15) == 0xa129ca6149be45e5ull);
    unsigned char k1[16], k2[16];
    ldm_siphash_key(k1);
    ldm_siphash_key(k2);
    assert_memory_not_equal(k1, k2, sizeof k1);
    assert_true(ldm_siphash24(k1, "abc", 3) != ldm_siphash24(k2, "abc", 3));
}

static void format_bytes(void **state) {
    (void)state;
    char b[32];
    assert_string_equal(ldm_format_bytes(512, b, 32), "512 B");
    assert_string_equal(ldm_format_bytes(1536, b, 32), "1.50 KiB");
    assert_string_equal(ldm_format_bytes(256u << 10, b, 32), "256 KiB");
    assert_string_equal(ldm_format_bytes(35ull << 30, b, 32), "35.0 GiB");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_names),
        cmocka_unit_test(error_names),
        cmocka_unit_test(kept_message),
        cmocka_unit_test(sha256_vectors),
        cmocka_unit_test(sha256_fields_do_not_run_together),
        cmocka_unit_test(siphash_vectors),
        cmocka_unit_test(format_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
