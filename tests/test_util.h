/* tests/test_util.h: what the cmocka tests share: a context on the test device with its own
 * temporary kernel cache, captured library log lines, temporary directories and status checks
 * that print the library's message when they fail. */
#ifndef LDMCL_TEST_UTIL_H
#define LDMCL_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ldmcl/ldmcl.h"
#include "ldmcl/unet.h"

/* Fails the test with the library's message unless st == want. */
#define assert_status(st, want) test_assert_status((st), (want), #st, __FILE__, __LINE__)
void test_assert_status(ldm_status got, ldm_status want, const char *expr, const char *file,
                        int line);

/* Fails unless haystack contains needle, printing both. */
#define assert_contains(haystack, needle)                                                          \
    test_assert_contains((haystack), (needle), __FILE__, __LINE__)
void test_assert_contains(const char *haystack, const char *needle, const char *file, int line);

/* A new empty directory under $TMPDIR (or /tmp); remove it with test_rmtree. Never NULL. */
char *test_make_tmpdir(const char *tag);
void test_rmtree(const char *dir);

/* Options for a context on the test device: kernel cache in cache_dir (NULL: cache off), kernel
 * sources from kernel_dir (NULL: embedded), log lines captured (see test_log_text). */
void test_ctx_options(ldm_ctx_options *o, const char *cache_dir, const char *kernel_dir);
ldm_ctx *test_ctx_open(const char *cache_dir, const char *kernel_dir);

/* Everything logged through test_ctx_options since the last test_log_clear. */
const char *test_log_text(void);
void test_log_clear(void);
/* The log function that captures (for options structs other than a context's). */
void test_capture_log(void *user, ldm_log_level level, const char *message);

/* A small text-conditioned UNet (4 latent channels, down [4, 8, 8], mid [8, 8], 2 groups,
 * 2 heads): fast enough for pocl, with every kind of block. */
ldm_unet_config test_small_unet(int text_embed_dim, int num_timesteps, int num_down_layers);

/* Reads a whole file into a malloc'ed buffer, NUL-terminated (the NUL not counted in len);
 * fails the test if it cannot. */
unsigned char *test_read_file(const char *path, size_t *len);
void test_write_file(const char *path, const void *data, size_t len);
/* Runs a shell command, its output (up to size - 1 bytes) into text, NUL-terminated; returns its
 * exit status (-1 when it did not exit normally). */
int test_run_capture(const char *cmd, char *text, size_t size);
int test_file_exists(const char *path);

/* A reference tensor of a safetensors file as malloc'ed floats (fails the test when missing);
 * its shape into ndim/shape when those are not NULL. */
float *test_st_load(ldm_safetensors *st, const char *key, int *ndim, int *shape);
/* max |got - want| / max(|want|, 1e-3 max|want|) over the elements not skipped (skip may be
 * NULL). */
double test_rel_err(const float *got, const float *want, const float *skip, size_t n);
/* ||got - want|| / ||want|| over a tensor. */
double test_norm_err(const float *got, const float *want, size_t n);

#endif
