/* tests/test_device.c: listing devices, opening the default device, selecting by index, by name
 * substring and through the environment, and clear errors for selections that match nothing. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static void lists_devices(void **state) {
    (void)state;
    ldm_device_info *list = NULL;
    int n = 0;
    assert_status(ldm_list_devices(&list, &n), LDM_OK);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) {
        assert_int_equal(list[i].global_index, i);
        assert_true(strlen(list[i].device_name) > 0);
        assert_true(strlen(list[i].platform_name) > 0);
        assert_true(strncmp(list[i].opencl_c_version, "OpenCL C ", 9) == 0);
        assert_true(list[i].compute_units >= 1);
        assert_true(list[i].global_mem_bytes > 0);
        assert_true(list[i].max_alloc_bytes > 0);
        assert_true(list[i].max_alloc_bytes <= list[i].global_mem_bytes);
        assert_true(list[i].local_mem_bytes > 0);
        assert_true(list[i].max_work_group_size >= 1);
    }
    free(list);
}

static void opens_default_device_with_profiling_queue(void **state) {
    (void)state;
    unsetenv("LDMCL_CL_PLATFORM");
    unsetenv("LDMCL_CL_DEVICE");
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    /* The default is the first GPU, else the first device. */
    ldm_device_info *list = NULL;
    int n = 0;
    assert_status(ldm_list_devices(&list, &n), LDM_OK);
    int want = 0;
    for (int i = n - 1; i >= 0; i--)
        if (list[i].is_gpu) want = i;
    assert_int_equal(d->global_index, want);
    assert_string_equal(d->device_name, list[want].device_name);
    free(list);

    cl_command_queue_properties props = 0;
    assert_int_equal(
        clGetCommandQueueInfo(ldm_ctx_queue(ctx), CL_QUEUE_PROPERTIES, sizeof props, &props, NULL),
        CL_SUCCESS);
    assert_true(props & CL_QUEUE_PROFILING_ENABLE);
    assert_false(props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE);
    assert_status(ldm_ctx_finish(ctx), LDM_OK);
    ldm_ctx_destroy(ctx);
}

static ldm_status open_with(const char *platform, const char *device, ldm_ctx **ctx) {
    ldm_ctx_options o;
    test_ctx_options(&o, NULL, NULL);
    o.platform = platform;
    o.device = device;
    return ldm_ctx_create(&o, ctx);
}

static void selects_by_index_and_name(void **state) {
    (void)state;
    ldm_device_info *list = NULL;
    int n = 0;
    assert_status(ldm_list_devices(&list, &n), LDM_OK);
    const ldm_device_info *last = &list[n - 1];
    char index[16];
    ldm_ctx *ctx = NULL;

    /* Global index, without a platform. */
    snprintf(index, sizeof index, "%d", last->global_index);
    assert_status(open_with(NULL, index, &ctx), LDM_OK);
    assert_int_equal(ldm_ctx_device_info(ctx)->global_index, last->global_index);
    ldm_ctx_destroy(ctx);

    /* Index within a platform. */
    char pindex[16];
    snprintf(pindex, sizeof pindex, "%d", last->platform_index);
    snprintf(index, sizeof index, "%d", last->device_index);
    assert_status(open_with(pindex, index, &ctx), LDM_OK);
    assert_string_equal(ldm_ctx_device_info(ctx)->device_name, last->device_name);
    ldm_ctx_destroy(ctx);

    /* Name substrings, in another case. */
    char dsub[8] = {0}, psub[8] = {0};
    for (int i = 0; i < 4 && last->device_name[i]; i++)
        dsub[i] = (char)toupper((unsigned char)last->device_name[i]);
    for (int i = 0; i < 4 && last->platform_name[i]; i++)
        psub[i] = (char)tolower((unsigned char)last->platform_name[i]);
    assert_status(open_with(psub, dsub, &ctx), LDM_OK);
    assert_true(strncmp(ldm_ctx_device_info(ctx)->device_name, last->device_name, 4) == 0);
    ldm_ctx_destroy(ctx);
    free(list);
}

static void environment_is_the_fallback(void **state) {
    (void)state;
    ldm_ctx *ctx = NULL;
    setenv("LDMCL_CL_DEVICE", "no-such-device-anywhere", 1);
    assert_status(open_with(NULL, NULL, &ctx), LDM_ERR_NO_DEVICE);
    assert_contains(ldm_last_error(), "LDMCL_CL_DEVICE 'no-such-device-anywhere'");
    /* An explicit option wins over the environment. */
    assert_status(open_with(NULL, "0", &ctx), LDM_OK);
    ldm_ctx_destroy(ctx);
    unsetenv("LDMCL_CL_DEVICE");

    setenv("LDMCL_CL_PLATFORM", "57", 1);
    assert_status(open_with(NULL, NULL, &ctx), LDM_ERR_NO_DEVICE);
    assert_contains(ldm_last_error(), "no OpenCL platform matches LDMCL_CL_PLATFORM '57'");
    unsetenv("LDMCL_CL_PLATFORM");
}

static void unmatched_selection_lists_what_exists(void **state) {
    (void)state;
    ldm_ctx *ctx = NULL;
    assert_status(open_with(NULL, "definitely-not-a-device", &ctx), LDM_ERR_NO_DEVICE);
    assert_null(ctx);
    const char *msg = ldm_last_error();
    assert_contains(msg, "no OpenCL device matches --cl-device 'definitely-not-a-device'");
    assert_contains(msg, "the machine has:");
    assert_contains(msg, "device 0: platform 0");
    assert_status(open_with(NULL, "999", &ctx), LDM_ERR_NO_DEVICE);
    assert_status(open_with("0", "999", &ctx), LDM_ERR_NO_DEVICE);
    assert_contains(ldm_last_error(), "on platform '0'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lists_devices),
        cmocka_unit_test(opens_default_device_with_profiling_queue),
        cmocka_unit_test(selects_by_index_and_name),
        cmocka_unit_test(environment_is_the_fallback),
        cmocka_unit_test(unmatched_selection_lists_what_exists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
