/* tests/test_atomic_write.c: the atomic writes every file of ldmcl goes through
 * (src/core/atomic_file.c: temporary file, fsync, rename), by the safetensors and PNG writers
 * and ldm_atomic_printf: the mode, whole replacement, no temporary left, the old file kept when a
 * write is abandoned or fails, and errors that say why. */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "internal.h"
#include "ldmcl/image.h"
#include "ldmcl/safetensors.h"
#include "test_util.h"

static char *g_dir;

static int setup(void **state) {
    (void)state;
    g_dir = test_make_tmpdir("atomic");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    free(g_dir);
    return 0;
}

static int files_in(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A written file has the mode a plain fopen gives (0666 less the umask), replaces the old one
 * whole, and leaves no temporary behind; an abandoned or failed write leaves the old file. */
static void writes_are_atomic(void **state) {
    (void)state;
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/atomic", g_dir);
    assert_int_equal(ldm_mkdirs(dir), 0);
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float v[2] = {1, 2};
    int64_t shape[1] = {2};
    ldm_st_entry e[1] = {{"v", 1, shape, v}};
    mode_t old = umask(022);
    assert_status(ldm_safetensors_write(path, e, 1, NULL), LDM_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    umask(077);
    v[0] = 5;
    assert_status(ldm_safetensors_write(path, e, 1, NULL), LDM_OK); /* replaces it */
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    umask(old);
    assert_int_equal(files_in(dir), 1);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    float got[2];
    assert_status(ldm_safetensors_read_f32(st, ldm_safetensors_find(st, "v"), got), LDM_OK);
    assert_true(got[0] == 5.0f && got[1] == 2.0f);
    ldm_safetensors_close(st);

    /* abandoned, and a commit after a failed write: the old file stays, no temporary */
    ldm_atomic_file a;
    assert_status(ldm_atomic_open(&a, path), LDM_OK);
    fputs("half", a.f);
    assert_int_equal(files_in(dir), 2);
    ldm_atomic_abandon(&a);
    assert_status(ldm_atomic_open(&a, path), LDM_OK);
    fputs("half", a.f);
    assert_status(ldm_atomic_commit(&a, 0), LDM_ERR_IO);
    assert_contains(ldm_last_error(), "a.safetensors' failed");
    assert_int_equal(files_in(dir), 1);
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    ldm_safetensors_close(st);
    /* two writers at once get two temporaries */
    ldm_atomic_file b;
    assert_status(ldm_atomic_open(&a, path), LDM_OK);
    assert_status(ldm_atomic_open(&b, path), LDM_OK);
    assert_string_not_equal(a.tmp, b.tmp);
    fputs("first", a.f);
    fputs("second", b.f);
    assert_status(ldm_atomic_commit(&a, 1), LDM_OK);
    assert_status(ldm_atomic_commit(&b, 1), LDM_OK);
    size_t len;
    char *text = (char *)test_read_file(path, &len);
    assert_true(len == 6 && !memcmp(text, "second", 6));
    free(text);
    assert_int_equal(files_in(dir), 1);
    /* a folder that does not exist: named */
    snprintf(path, sizeof path, "%s/no/such/a.safetensors", dir);
    assert_status(ldm_safetensors_write(path, e, 1, NULL), LDM_ERR_IO);
    assert_contains(ldm_last_error(), "no/such/a.safetensors'");
}

/* A write that fails says why: under a file size limit (SIGXFSZ ignored, so write fails with
 * EFBIG) the safetensors and PNG writers and ldm_atomic_printf report "File too large" and leave
 * no temporary; they used to say "a write error", errno lost. */
static void write_errors_say_why(void **state) {
    (void)state;
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/limited", g_dir);
    assert_int_equal(ldm_mkdirs(dir), 0);
    enum { N = 32768 }; /* 128 KiB of floats */
    float *v = calloc(N, sizeof *v);
    uint8_t *px = malloc(3 * 200 * 200);
    assert_non_null(v);
    assert_non_null(px);
    uint32_t x = 12345;
    for (int i = 0; i < 3 * 200 * 200; i++) /* noise: the PNG stays over 100 KiB */
        px[i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
    int64_t shape[1] = {N};
    ldm_st_entry e[1] = {{"big", 1, shape, v}};
    ldm_image img = {200, 200, 3, px};

    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 64 << 10;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    ldm_status st_write = ldm_safetensors_write(path, e, 1, NULL);
    char st_message[1024];
    snprintf(st_message, sizeof st_message, "%s", ldm_last_error());
    snprintf(path, sizeof path, "%s/big.png", dir);
    ldm_status png_write = ldm_png_write(path, &img, NULL);
    char png_message[1024];
    snprintf(png_message, sizeof png_message, "%s", ldm_last_error());
    snprintf(path, sizeof path, "%s/big.txt", dir);
    ldm_atomic_file a;
    ldm_status text_open = ldm_atomic_open(&a, path), text_write = LDM_ERR_IO;
    if (text_open == LDM_OK) {
        for (int i = 0; i < 20000; i++)
            ldm_atomic_printf(&a, "line %d\n", i);
        text_write = ldm_atomic_commit(&a, 1);
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(st_write, LDM_ERR_IO);
    assert_contains(st_message, "big.safetensors' failed: File too large");
    assert_int_equal(png_write, LDM_ERR_IO);
    assert_contains(png_message, "big.png' failed: File too large");
    assert_status(text_open, LDM_OK);
    assert_int_equal(text_write, LDM_ERR_IO);
    assert_contains(ldm_last_error(), "big.txt' failed: File too large");
    assert_int_equal(files_in(dir), 0);
    free(v);
    free(px);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writes_are_atomic),
        cmocka_unit_test(write_errors_say_why),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
