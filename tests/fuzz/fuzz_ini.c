/* tests/fuzz/fuzz_ini.c: libFuzzer target for the strict INI reader (src/io/ini.c): parse the
 * input, then ask for keys of section [s] through every typed getter (strings, integers, numbers,
 * booleans, lists) and list the unused keys, as ldm_run_config_read does. */
#include <string.h>

#include "fuzz_util.h"
#include "ldmcl/ini.h"

static volatile double g_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ldm_ini *ini = NULL;
    ldm_status st = ldm_ini_parse("fuzz.ini", (const char *)data, size, &ini);
    fuzz_status(st);
    if (st != LDM_OK) return 0;
    const char *str = NULL;
    long i = 0, ints[64];
    double d = 0, nums[64];
    int b = 0, n = 0;
    fuzz_status(ldm_ini_string(ini, "s", "str", &str));
    if (str) g_sink += (double)strlen(str);
    fuzz_status(ldm_ini_int(ini, "s", "int", -1000, 1L << 40, &i));
    fuzz_status(ldm_ini_double(ini, "s", "num", -1e30, 1e30, &d));
    fuzz_status(ldm_ini_bool(ini, "s", "bool", &b));
    fuzz_status(ldm_ini_int_list(ini, "s", "ints", 0, 1 << 14, ints, 64, &n));
    for (int k = 0; k < n; k++)
        g_sink += (double)ints[k];
    n = 0;
    fuzz_status(ldm_ini_int_list(ini, "s", "few", -5, 5, ints, 4, &n));
    n = 0;
    fuzz_status(ldm_ini_double_list(ini, "s", "nums", -1e30, 1e30, nums, 64, &n));
    for (int k = 0; k < n; k++)
        g_sink += nums[k];
    g_sink += (double)i + d + b + ldm_ini_has_section(ini, "s") + ldm_ini_has_section(ini, "t");
    fuzz_status(ldm_ini_check_unused(ini));
    ldm_ini_free(ini);
    return 0;
}
