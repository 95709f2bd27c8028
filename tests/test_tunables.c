/* tests/test_tunables.c: the kernels' tunables per context (src/core/tunables.c): defaults by
 * layout and device facts; $LDMCL_TUNABLES and its errors (entry named); the device's tunables
 * file, written and read back per layout, a bad one refused naming the file and the remedy, and
 * the variable winning over it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* Opens a context with the given layout (1: CPU, 0: GPU) and cache folder (NULL: none); the
 * status of the creation, the context in *out. */
static ldm_status open_ctx(int cpu_layout, const char *cache_dir, ldm_ctx **out) {
    ldm_ctx_options o;
    test_ctx_options(&o, cache_dir, NULL);
    o.cpu_kernels = cpu_layout;
    *out = NULL;
    return ldm_ctx_create(&o, out);
}

static void text_of(ldm_ctx *ctx, char *buf, size_t size) {
    ldm_ctx_tunables_text(ctx, buf, size);
}

static void defaults_follow_layout_and_device(void **state) {
    (void)state;
    char text[1024], want[64];
    ldm_ctx *ctx;
    assert_status(open_ctx(0, NULL, &ctx), LDM_OK);
    text_of(ctx, text, sizeof text);
    snprintf(want, sizeof want, "norm_split_groups=%u ",
             4 * ldm_ctx_device_info(ctx)->compute_units);
    assert_contains(text, "cpu_layout=0 ");
    assert_contains(text, want);
    assert_contains(text, "attn_tile=32,16 attn_side=8");
    assert_contains(text, "conv_batched=1 ");
    ldm_ctx_destroy(ctx);
    assert_status(open_ctx(1, NULL, &ctx), LDM_OK);
    text_of(ctx, text, sizeof text);
    assert_contains(text, "cpu_layout=1 ");
    assert_contains(text, "norm_wg=16 ");
    assert_contains(text, "norm_split_groups=0 ");
    assert_contains(text, "conv_batched=0 ");
    ldm_ctx_destroy(ctx);
}

static void variable_sets_and_errors_name_the_entry(void **state) {
    (void)state;
    char text[1024];
    ldm_ctx *ctx;
    assert_int_equal(setenv("LDMCL_TUNABLES", "norm_wg=64  attn_tile=16,8\tconv_batched=0", 1), 0);
    assert_status(open_ctx(0, NULL, &ctx), LDM_OK);
    text_of(ctx, text, sizeof text);
    assert_contains(text, "norm_wg=64 ");
    assert_contains(text, "attn_tile=16,8 ");
    assert_contains(text, "conv_batched=0 ");
    ldm_ctx_destroy(ctx);
    const struct {
        const char *value, *message;
    } bad[] = {
        {"norm_wgg=64", "'norm_wgg' is no tunable"},
        {"attn_tile=32", "attn_tile takes 2 whole numbers from 1"},
        {"norm_wg=0", "norm_wg takes 1 whole number from 1"},
        {"norm_wg=12x", "got '12x'"},
        {"norm_wg=100", "norm_wg must be a power of two, got 100"},
        {"norm_wg", "expected name=value, got 'norm_wg'"},
        {"cpu_layout=1", "cpu_layout=1, but this context runs the kernels laid out for GPUs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(setenv("LDMCL_TUNABLES", bad[i].value, 1), 0);
        assert_status(open_ctx(0, NULL, &ctx), LDM_ERR_FORMAT);
        assert_null(ctx);
        assert_contains(ldm_last_error(), "LDMCL_TUNABLES");
        assert_contains(ldm_last_error(), bad[i].message);
    }
    assert_int_equal(unsetenv("LDMCL_TUNABLES"), 0);
}

static void file_per_layout_is_read_back_and_checked(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("tunables");
    char text[1024], path[4096];
    ldm_ctx *ctx;
    assert_status(open_ctx(0, dir, &ctx), LDM_OK);
    assert_status(ldm_ctx_set_tunables_text(ctx, "norm_wg=128 attn_side=4"), LDM_OK);
    assert_status(ldm_ctx_set_tunables_text(ctx, "attn_side=x"), LDM_ERR_FORMAT);
    assert_status(ldm_ctx_save_tunables(ctx, "a test", path, sizeof path), LDM_OK);
    assert_contains(path, "tunables-gpu-layout-");
    ldm_ctx_destroy(ctx);

    assert_status(open_ctx(0, dir, &ctx), LDM_OK); /* the GPU layout reads it */
    text_of(ctx, text, sizeof text);
    assert_contains(text, "norm_wg=128 ");
    assert_contains(text, "attn_side=4 ");
    ldm_ctx_destroy(ctx);
    assert_status(open_ctx(1, dir, &ctx), LDM_OK); /* the CPU layout has its own file */
    text_of(ctx, text, sizeof text);
    assert_contains(text, "norm_wg=16 ");
    ldm_ctx_destroy(ctx);

    assert_int_equal(setenv("LDMCL_TUNABLES", "norm_wg=32", 1), 0); /* the variable wins */
    assert_status(open_ctx(0, dir, &ctx), LDM_OK);
    text_of(ctx, text, sizeof text);
    assert_contains(text, "norm_wg=32 ");
    assert_contains(text, "attn_side=4 ");
    ldm_ctx_destroy(ctx);
    assert_int_equal(unsetenv("LDMCL_TUNABLES"), 0);

    const char *broken = "ldmcl-tunables 1\n# a device\nnorm_wg=128\nattn_side=-2\n";
    test_write_file(path, broken, strlen(broken));
    assert_status(open_ctx(0, dir, &ctx), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), path);
    assert_contains(ldm_last_error(), "line 4: attn_side takes 1 whole number from 1");
    assert_contains(ldm_last_error(), "ldmcl-bench --tune");
    test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_follow_layout_and_device),
        cmocka_unit_test(variable_sets_and_errors_name_the_entry),
        cmocka_unit_test(file_per_layout_is_read_back_and_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
