/* tests/test_gemm_tuning.c: CLBlast GEMM parameters measured per device (gemm_tuning.c,
 * gemm_tune.c): the tuning file's format and its errors (file and line named), a quick tuning
 * run that writes a file a new context applies, GEMMs that still compute the right product
 * with the tuned parameters, a corrupt file that costs a warning and leaves CLBlast's defaults,
 * and the refusal to tune once CLBlast's defaults are gone. The tests run in order: the tuning
 * run must come before anything in this process changes CLBlast's parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_util.h"

static ldm_status parse(const char *text, ldm_gemm_tuning *t) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", text);
    return ldm_gemm_tuning_parse("tuning.txt", buf, t);
}

static void parses_the_format(void **state) {
    (void)state;
    ldm_gemm_tuning t;
    assert_status(parse("# a comment\n\nldmcl-gemm-tuning 1\n# device\n"
                        "Xgemm MWG=64 NWG=32\r\n  GemmRoutine XGEMM_MIN_INDIRECT_SIZE=256  \n",
                        &t),
                  LDM_OK);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.kernels[0].kernel, "Xgemm");
    assert_int_equal(t.kernels[0].n, 2);
    assert_string_equal(t.kernels[0].names[1], "NWG");
    assert_int_equal(t.kernels[0].values[1], 32);
    assert_string_equal(t.kernels[1].names[0], "XGEMM_MIN_INDIRECT_SIZE");
    assert_int_equal(t.kernels[1].values[0], 256);
    /* no entries: CLBlast's defaults measured fastest */
    assert_status(parse("ldmcl-gemm-tuning 1\n# defaults\n", &t), LDM_OK);
    assert_int_equal(t.n, 0);
}

static void reports_bad_lines(void **state) {
    (void)state;
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"", "tuning.txt: empty"},
        {"ldmcl-gemm-tuning 2\n", "tuning.txt:1: expected 'ldmcl-gemm-tuning 1'"},
        {"ldmcl-gemm-tuning 1\nXgemm\n", "tuning.txt:2: expected at least one NAME=VALUE"},
        {"ldmcl-gemm-tuning 1\n\nXgemm MWG=sixty\n", "tuning.txt:3: expected a whole number"},
        {"ldmcl-gemm-tuning 1\nXgemm MWG=-1\n", "tuning.txt:2: expected a whole number"},
        {"ldmcl-gemm-tuning 1\nXgemm MWG=64 MWG=32\n",
         "tuning.txt:2: expected each parameter once"},
        {"ldmcl-gemm-tuning 1\nXgemm =64\n", "tuning.txt:2: expected NAME=VALUE"},
        {"ldmcl-gemm-tuning 1\nXgemm MWG=99999999999\n", "tuning.txt:2: expected a whole number"},
        {"ldmcl-gemm-tuning 1\nA X=1\nB X=1\nC X=1\nD X=1\nE X=1\n",
         "tuning.txt:6: more than 4 kernels"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ldm_gemm_tuning t;
        assert_status(parse(cases[i].text, &t), LDM_ERR_FORMAT);
        assert_contains(ldm_last_error(), cases[i].message);
    }
}

/* C = A B^T through ldm_gemm on sizes that fit no tile, against a host product. */
static void check_gemm(ldm_ctx *ctx, size_t M, size_t N, size_t K) {
    float *a = malloc(M * K * sizeof *a), *b = malloc(N * K * sizeof *b);
    float *c = malloc(M * N * sizeof *c);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    for (size_t i = 0; i < M * K; i++)
        a[i] = (float)((i * 7919) % 23) / 23.0f - 0.5f;
    for (size_t i = 0; i < N * K; i++)
        b[i] = (float)((i * 104729) % 31) / 31.0f - 0.5f;
    ldm_gemm_shape s = {0, 1, M, N, K, K, K, N};
    size_t temp_bytes = 0;
    assert_status(ldm_gemm_temp_bytes(ctx, &s, &temp_bytes), LDM_OK);
    ldm_arena *arena;
    assert_status(
        ldm_arena_create(ctx, "gemm", (M * K + N * K + M * N) * 4 + temp_bytes + 4096, &arena),
        LDM_OK);
    ldm_buf A, B, C, T = {NULL, 0};
    assert_status(ldm_arena_take(arena, M * K, "A", &A), LDM_OK);
    assert_status(ldm_arena_take(arena, N * K, "B", &B), LDM_OK);
    assert_status(ldm_arena_take(arena, M * N, "C", &C), LDM_OK);
    assert_status(ldm_buf_write(ctx, A, a, M * K), LDM_OK);
    assert_status(ldm_buf_write(ctx, B, b, N * K), LDM_OK);
    cl_mem temp = NULL;
    if (temp_bytes) {
        cl_int err;
        temp = clCreateBuffer(ldm_ctx_cl_context(ctx), CL_MEM_READ_WRITE, temp_bytes, NULL, &err);
        assert_int_equal(err, CL_SUCCESS);
        T.mem = temp;
    }
    assert_status(ldm_gemm(ctx, &s, 1.0f, A, B, 0.0f, C, T, temp_bytes, NULL), LDM_OK);
    assert_status(ldm_buf_read(ctx, c, C, M * N), LDM_OK);
    double worst = 0;
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double ref = 0;
            for (size_t k = 0; k < K; k++)
                ref += (double)a[i * K + k] * b[j * K + k];
            double e = fabs(c[i * N + j] - ref);
            if (e > worst) worst = e;
        }
    assert_true(worst < 1e-4);
    if (temp) clReleaseMemObject(temp);
    ldm_arena_destroy(arena);
    free(a);
    free(b);
    free(c);
}

static void tunes_writes_and_reapplies(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("gemm-tuning");
    ldm_ctx_options o;
    test_ctx_options(&o, dir, NULL);
    o.no_gemm_tuning = 1;
    ldm_ctx *ctx;
    assert_status(ldm_ctx_create(&o, &ctx), LDM_OK);
    ldm_gemm_tune_report r;
    test_log_clear();
    assert_status(ldm_gemm_tune(ctx, 1, &r), LDM_OK);
    assert_true(r.default_ms > 0 && r.tuned_ms > 0 && r.tuned_ms <= r.default_ms);
    assert_true(r.candidates >= 4); /* the defaults, two Xgemm sets, one threshold */
    /* its progress: what it times, then each set as it goes */
    assert_contains(test_log_text(), "GEMM tuning: timing 4 parameter sets on ");
    assert_contains(test_log_text(), "GEMM tuning: set 1 of 4, CLBlast's defaults: ");
    assert_contains(test_log_text(), "GEMM tuning: set 2 of 4 (Xgemm GEMMK=0");
    assert_contains(test_log_text(), "GEMM tuning: set 4 of 4 (the best Xgemm set from GEMMs");
    assert_int_equal(r.rejected, 0);
    assert_true(test_file_exists(r.path));
    char path[4096];
    assert_status(ldm_gemm_tuning_path(ctx, path, sizeof path), LDM_OK);
    assert_string_equal(path, r.path);
    ldm_gemm_tuning t;
    assert_status(ldm_gemm_tuning_load_file(r.path, &t), LDM_OK);
    assert_int_equal(ldm_ctx_gemm_tuned(ctx), t.n > 0);
    if (t.n) assert_contains(r.chosen, "Xgemm GEMMK=0");
    check_gemm(ctx, 37, 301, 129);

    /* Tuning again in this process would measure parameters, not CLBlast's defaults. */
    ldm_gemm_tune_report again;
    assert_status(ldm_gemm_tune(ctx, 1, &again), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "no_gemm_tuning");
    ldm_ctx_destroy(ctx);

    /* A new context on the same cache applies the file. */
    test_log_clear();
    ctx = test_ctx_open(dir, NULL);
    assert_int_equal(ldm_ctx_gemm_tuned(ctx), t.n > 0);
    assert_contains(test_log_text(), r.path);
    check_gemm(ctx, 64, 200, 96);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

static void corrupt_file_warns_and_keeps_defaults(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("gemm-tuning-bad");
    ldm_ctx *ctx = test_ctx_open(dir, NULL);
    char path[4096];
    assert_status(ldm_gemm_tuning_path(ctx, path, sizeof path), LDM_OK);
    ldm_ctx_destroy(ctx);
    static const char *bad[] = {
        "ldmcl-gemm-tuning 1\nXgemm MWG=64 oops\n",   /* does not parse */
        "ldmcl-gemm-tuning 1\nXgemm MWG=64 NWG=32\n", /* CLBlast wants every parameter */
        "ldmcl-gemm-tuning 1\nNoSuchKernel A=1\n",    /* CLBlast has no such kernel */
    };
    static const char *said[] = {"gemm-tuning-", "Xgemm", "NoSuchKernel"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        test_write_file(path, bad[i], strlen(bad[i]));
        test_log_clear();
        ctx = test_ctx_open(dir, NULL);
        assert_int_equal(ldm_ctx_gemm_tuned(ctx), 0);
        assert_contains(test_log_text(), said[i]);
        assert_contains(test_log_text(), "CLBlast's default parameters");
        assert_contains(test_log_text(), "--tune-gemm --retune");
        check_gemm(ctx, 20, 30, 40);
        ldm_ctx_destroy(ctx);
    }
    test_rmtree(dir);
    free(dir);
}

static void cache_off_has_no_tuning_file(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    char path[4096];
    assert_status(ldm_gemm_tuning_path(ctx, path, sizeof path), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "LDMCL_CL_CACHE");
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_the_format),
        cmocka_unit_test(reports_bad_lines),
        cmocka_unit_test(tunes_writes_and_reapplies), /* first to touch CLBlast's parameters */
        cmocka_unit_test(corrupt_file_warns_and_keeps_defaults),
        cmocka_unit_test(cache_off_has_no_tuning_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
