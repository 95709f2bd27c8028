/* tests/test_checkpoint.c: a graph's parameters saved and loaded as safetensors under their names;
 * every missing, unexpected and mis-shaped tensor reported in one message, and nothing changed on
 * a failed load; NaN or infinite values refused, naming the tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/checkpoint.h"
#include "ldmcl/safetensors.h"
#include "test_util.h"

/* A graph with conv.weight [4, 3, 3, 3], conv.bias [4], norm.weight [4], norm.bias [4]. */
static ldm_graph *small_model(ldm_ctx *ctx, int bias_size) {
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, 3, 5, 5));
    ldm_tensor *w = ldm_graph_param(g, "conv.weight", LDM_SHAPE(4, 3, 3, 3));
    ldm_tensor *b = ldm_graph_param(g, "conv.bias", LDM_SHAPE(bias_size));
    ldm_tensor *gw = ldm_graph_param(g, "norm.weight", LDM_SHAPE(4));
    ldm_tensor *gb = ldm_graph_param(g, "norm.bias", LDM_SHAPE(4));
    ldm_tensor *y = ldm_conv2d(g, x, w, bias_size == 4 ? b : NULL, 1, 1);
    ldm_tensor_keep(ldm_group_norm(g, y, 2, 1e-5f, gw, gb));
    assert_status(ldm_graph_compile(g), LDM_OK);
    return g;
}

static void fill_params(ldm_graph *g, float base) {
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        size_t n = ldm_tensor_numel(p);
        float *v = malloc(n * sizeof *v);
        assert_non_null(v);
        for (size_t k = 0; k < n; k++)
            v[k] = base + (float)i + 0.125f * (float)k;
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
}

static void expect_params(ldm_graph *g, float base) {
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        size_t n = ldm_tensor_numel(p);
        float *v = malloc(n * sizeof *v);
        assert_non_null(v);
        assert_status(ldm_tensor_read(p, v), LDM_OK);
        for (size_t k = 0; k < n; k++)
            assert_true(v[k] == base + (float)i + 0.125f * (float)k);
        free(v);
    }
}

static void save_and_load(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("ckpt");
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *a = small_model(ctx, 4), *b = small_model(ctx, 4);
    fill_params(a, 1.0f);
    fill_params(b, -7.0f);
    const char *meta[] = {"step", "42", NULL};
    assert_status(ldm_graph_save(a, path, meta), LDM_OK);
    assert_status(ldm_graph_load(b, path, NULL), LDM_OK);
    expect_params(b, 1.0f);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    assert_string_equal(ldm_safetensors_metadata(st, "step"), "42");
    assert_int_equal(ldm_safetensors_count(st), 4);
    assert_non_null(ldm_safetensors_find(st, "conv.weight"));
    ldm_safetensors_close(st);
    ldm_graph_destroy(a);
    ldm_graph_destroy(b);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

static void reports_every_problem_at_once(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("ckpt");
    char path[4200];
    snprintf(path, sizeof path, "%s/other.safetensors", dir);
    /* The file: conv.weight with another shape, conv.bias, no norm.*, plus two extras. */
    float zeros[64] = {0};
    int64_t s_w[4] = {4, 3, 1, 1}, s_b[1] = {4}, s_x[1] = {2}, s_vis[2] = {2, 2};
    ldm_st_entry e[4] = {{"conv.weight", 4, s_w, zeros},
                         {"conv.bias", 1, s_b, zeros},
                         {"extra.scale", 1, s_x, zeros},
                         {"vision_model.proj", 2, s_vis, zeros}};
    assert_status(ldm_safetensors_write(path, e, 4, NULL), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g = small_model(ctx, 4);
    fill_params(g, 3.0f);
    assert_status(ldm_graph_load(g, path, NULL), LDM_ERR_FORMAT);
    const char *msg = ldm_last_error();
    assert_contains(msg, path);
    assert_contains(msg, "2 missing (norm.weight, norm.bias)");
    assert_contains(msg, "2 unexpected (extra.scale, vision_model.proj)");
    assert_contains(msg,
                    "1 with another shape (conv.weight (file [4, 3, 1, 1], model [4, 3, 3, 3]))");
    expect_params(g, 3.0f); /* nothing changed */

    /* Allowing what is missing and unexpected leaves only the shape. */
    ldm_load_options o = {.allow_missing = 1, .allow_unexpected = 1};
    assert_status(ldm_graph_load(g, path, &o), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "0 missing, 0 unexpected, 1 with another shape");
    expect_params(g, 3.0f);

    /* A prefix narrows what counts as unexpected. */
    ldm_load_options only = {.only_prefix = "vision_model."};
    assert_status(ldm_graph_load(g, path, &only), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "1 unexpected (vision_model.proj)");
    ldm_graph_destroy(g);

    /* A model whose shapes fit loads conv.bias and keeps the rest when missing is allowed. */
    snprintf(path, sizeof path, "%s/bias.safetensors", dir);
    float bias[4] = {9, 8, 7, 6};
    ldm_st_entry eb[1] = {{"conv.bias", 1, s_b, bias}};
    assert_status(ldm_safetensors_write(path, eb, 1, NULL), LDM_OK);
    g = small_model(ctx, 4);
    ldm_load_options partial = {.allow_missing = 1};
    assert_status(ldm_graph_load(g, path, &partial), LDM_OK);
    float got[4];
    assert_status(ldm_tensor_read(ldm_graph_find(g, "conv.bias"), got), LDM_OK);
    assert_memory_equal(got, bias, sizeof bias);
    ldm_graph_destroy(g);

    g = small_model(ctx, 4);
    assert_status(ldm_graph_load(g, "/no/such.safetensors", NULL), LDM_ERR_NOT_FOUND);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

static int not_norm(const char *name, void *user) {
    (void)user;
    return strncmp(name, "norm.", 5) != 0;
}

/* One model of a graph that holds several: saved without its prefix, loaded under it. */
static void subsets_by_prefix(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("ckpt");
    char path[4200];
    snprintf(path, sizeof path, "%s/norm.safetensors", dir);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *a = small_model(ctx, 4);
    fill_params(a, 2.0f);
    assert_status(ldm_graph_save_subset(a, path, NULL, "norm.", 0), LDM_OK);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    assert_int_equal(ldm_safetensors_count(st), 2);
    assert_non_null(ldm_safetensors_find(st, "weight"));
    assert_non_null(ldm_safetensors_find(st, "bias"));
    ldm_safetensors_close(st);

    /* Loading under the prefix touches only norm.*; the others are not "missing". */
    ldm_graph *b = small_model(ctx, 4);
    fill_params(b, 5.0f);
    ldm_load_options under = {.graph_prefix = "norm."};
    assert_status(ldm_graph_load(b, path, &under), LDM_OK);
    float got[4], want_conv_bias[4];
    assert_status(ldm_tensor_read(ldm_graph_find(b, "norm.bias"), got), LDM_OK);
    for (int k = 0; k < 4; k++) /* norm.bias is parameter 3 */
        assert_true(got[k] == 2.0f + 3.0f + 0.125f * (float)k);
    assert_status(ldm_tensor_read(ldm_graph_find(b, "conv.bias"), want_conv_bias), LDM_OK);
    assert_true(want_conv_bias[0] == 5.0f + 1.0f);
    /* A prefix that leaves the file's tensors unmatched reports them by their file names. */
    ldm_load_options wrong = {.graph_prefix = "conv."};
    assert_status(ldm_graph_load(b, path, &wrong), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(),
                    "0 missing, 0 unexpected, 1 with another shape (weight (file [4], model");

    /* A filter by name keeps the names as they are. */
    snprintf(path, sizeof path, "%s/filtered.safetensors", dir);
    assert_status(ldm_graph_save_filtered(a, path, NULL, not_norm, NULL), LDM_OK);
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    assert_int_equal(ldm_safetensors_count(st), 2);
    assert_non_null(ldm_safetensors_find(st, "conv.weight"));
    assert_null(ldm_safetensors_find(st, "norm.weight"));
    ldm_safetensors_close(st);

    /* Trainable only: a frozen parameter stays out. */
    ldm_tensor_set_trainable(ldm_graph_find(a, "conv.bias"), 0);
    snprintf(path, sizeof path, "%s/trainable.safetensors", dir);
    assert_status(ldm_graph_save_subset(a, path, NULL, NULL, 1), LDM_OK);
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    assert_int_equal(ldm_safetensors_count(st), 3);
    assert_null(ldm_safetensors_find(st, "conv.bias"));
    ldm_safetensors_close(st);
    ldm_graph_destroy(a);
    ldm_graph_destroy(b);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

/* A file whose values are NaN or infinite (F32 and F16): refused, naming the file, the tensor, the
 * count and the first, and nothing changed. */
static void non_finite_values_are_refused(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("ckpt");
    char path[4200];
    snprintf(path, sizeof path, "%s/nan.safetensors", dir);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *a = small_model(ctx, 4), *b = small_model(ctx, 4);
    fill_params(a, 1.0f);
    fill_params(b, -2.0f);
    float bias[4] = {1.0f, NAN, 3.0f, -INFINITY};
    assert_status(ldm_tensor_write(ldm_graph_find(a, "conv.bias"), bias), LDM_OK);
    assert_status(ldm_graph_save(a, path, NULL), LDM_OK);
    assert_status(ldm_graph_load(b, path, NULL), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), path);
    assert_contains(ldm_last_error(), "tensor 'conv.bias' holds 2 NaN or infinite values of 4 (the "
                                      "first at element 1: nan)");
    expect_params(b, -2.0f);
    /* an F16 infinity (0x7C00) converts to an infinite float: refused the same way */
    snprintf(path, sizeof path, "%s/inf16.safetensors", dir);
    const char header[] = "{\"norm.bias\":{\"dtype\":\"F16\",\"shape\":[4],"
                          "\"data_offsets\":[0,8]}}";
    size_t hl = sizeof header - 1;
    unsigned char file[256];
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)(hl >> (8 * i));
    memcpy(file + 8, header, hl);
    const unsigned char half[8] = {0x00, 0x3C, 0x00, 0x7C, 0x00, 0x3C, 0x00, 0x3C}; /* 1 inf 1 1 */
    memcpy(file + 8 + hl, half, 8);
    test_write_file(path, file, 8 + hl + 8);
    ldm_load_options o = {.allow_missing = 1};
    assert_status(ldm_graph_load(b, path, &o), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "tensor 'norm.bias' holds 1 NaN or infinite values of 4 (the "
                                      "first at element 1: inf)");
    expect_params(b, -2.0f);
    ldm_graph_destroy(a);
    ldm_graph_destroy(b);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(save_and_load),
        cmocka_unit_test(subsets_by_prefix),
        cmocka_unit_test(reports_every_problem_at_once),
        cmocka_unit_test(non_finite_values_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
