/* tests/test_util.c: shared helpers of the cmocka tests (see test_util.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

void test_assert_status(ldm_status got, ldm_status want, const char *expr, const char *file,
                        int line) {
    if (got == want) return;
    print_error("%s:%d: %s returned %s, expected %s\nlibrary message: %s\n", file, line, expr,
                ldm_status_name(got), ldm_status_name(want), ldm_last_error());
    _fail(file, line);
}

void test_assert_contains(const char *haystack, const char *needle, const char *file, int line) {
    if (haystack && needle && strstr(haystack, needle)) return;
    print_error("%s:%d: expected to find \"%s\" in:\n%s\n", file, line, needle ? needle : "(null)",
                haystack ? haystack : "(null)");
    _fail(file, line);
}

char *test_make_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    assert_non_null(path);
    snprintf(path, 4096, "%s/ldmcl-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    assert_non_null(mkdtemp(path));
    return path;
}

void test_rmtree(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static char g_log[1 << 16];

void test_capture_log(void *user, ldm_log_level level, const char *message) {
    (void)user;
    size_t used = strlen(g_log);
    snprintf(g_log + used, sizeof g_log - used, "%s%s\n", level == LDM_LOG_WARN ? "warning: " : "",
             message);
    if (level == LDM_LOG_WARN) fprintf(stderr, "ldmcl: warning: %s\n", message);
}

const char *test_log_text(void) {
    return g_log;
}

void test_log_clear(void) {
    g_log[0] = '\0';
}

void test_ctx_options(ldm_ctx_options *o, const char *cache_dir, const char *kernel_dir) {
    ldm_ctx_options_init(o);
    o->binary_cache = cache_dir ? 1 : 0;
    o->cache_dir = cache_dir;
    o->kernel_dir = kernel_dir;
    o->log = test_capture_log;
}

ldm_ctx *test_ctx_open(const char *cache_dir, const char *kernel_dir) {
    ldm_ctx_options o;
    test_ctx_options(&o, cache_dir, kernel_dir);
    ldm_ctx *ctx = NULL;
    assert_status(ldm_ctx_create(&o, &ctx), LDM_OK);
    assert_non_null(ctx);
    return ctx;
}

unsigned char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

void test_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

int test_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

ldm_unet_config test_small_unet(int text_embed_dim, int num_timesteps, int num_down_layers) {
    ldm_unet_config c = {.im_channels = 4,
                         .down_channels = {4, 8, 8},
                         .n_down = 3,
                         .mid_channels = {8, 8},
                         .n_mid = 2,
                         .down_sample = {1, 1},
                         .attn_down = {1, 0},
                         .time_emb_dim = 8,
                         .norm_channels = 2,
                         .num_heads = 2,
                         .conv_out_channels = 4,
                         .num_down_layers = num_down_layers,
                         .num_mid_layers = 1,
                         .num_up_layers = 1,
                         .num_timesteps = num_timesteps,
                         .text_embed_dim = text_embed_dim};
    return c;
}

float *test_st_load(ldm_safetensors *st, const char *key, int *ndim, int *shape) {
    const ldm_st_tensor *t = ldm_safetensors_find(st, key);
    if (!t) fail_msg("reference tensor '%s' missing", key);
    float *data = malloc((t->numel ? t->numel : 1) * sizeof *data);
    assert_non_null(data);
    assert_status(ldm_safetensors_read_f32(st, t, data), LDM_OK);
    if (ndim) {
        *ndim = t->ndim;
        for (int i = 0; i < t->ndim; i++)
            shape[i] = (int)t->shape[i];
    }
    return data;
}

double test_rel_err(const float *got, const float *want, const float *skip, size_t n) {
    double top = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        top = fmax(top, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i] != 0.0f) continue;
        double e = fabs(got[i] - want[i]) / fmax(fabs(want[i]), top > 0 ? 1e-3 * top : 1e-30);
        worst = isnan(e) ? INFINITY : fmax(worst, e);
    }
    return worst;
}

double test_norm_err(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return num == 0 ? 0 : (den > 0 ? sqrt(num / den) : INFINITY);
}

int test_run_capture(const char *cmd, char *text, size_t size) {
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t got = fread(text, 1, size - 1, f);
    text[got] = '\0';
    int status = pclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
