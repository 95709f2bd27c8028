/* tests/test_bench_cli.c: ldmcl-bench's command line: an unknown option is named with the
 * closest known one, a known one without its value or with a value it does not take says which,
 * --version and --help answer; --bench sd-train --memory-only on the tiny SD model reports
 * without running. (Its tuning is tested in test_gemm_tuning and test_tunables.) */
#include <stdio.h>
#include <string.h>

#include "ldmcl/ldmcl.h"
#include "test_util.h"

static void flags_are_checked(void **state) {
    (void)state;
    const struct {
        const char *args, *message;
        int status;
    } cases[] = {
        {"--tun", "unknown option '--tun' (did you mean '--tune'?", 2},
        {"--bogus", "unknown option '--bogus' (see --help)", 2},
        {"--json", "'--json' needs a value (see --help)", 2},
        {"--shapes big", "--shapes big: not a value it takes (see --help)", 2},
        {"--random sd3", "--random sd3: not a value it takes (see --help)", 2},
        {"--bench sd --model /nonexistent.safetensors", "cannot open the model '/nonexistent", 1},
        {"--repeat x", "--repeat needs a count from 0 to 100000, got 'x'", 2},
        {"--checkpointing 2", "--checkpointing needs up to 2 comma-separated numbers from 0 to 1",
         2},
        /* the SD training step's memory, compiled and not run, plain and checkpointed */
        {"--bench sd-train --model " LDMCL_TEST_REF_DIR "/sd/sd1_single.safetensors --sides 64 "
         "--lora-ranks 2 --checkpointing 1 --memory-only",
         "64x64, LoRA rank 2 (all_linear), gradient checkpointing: not run; trainable", 0},
        {"--version", "ldmcl-bench " LDMCL_VERSION "\n", 0},
        {"--help", "-h, --help", 0},
    };
    char cmd[512], text[8192];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", LDMCL_BENCH_PROGRAM, cases[i].args);
        assert_int_equal(test_run_capture(cmd, text, sizeof text), cases[i].status);
        assert_contains(text, cases[i].message);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flags_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
