/* tests/fuzz/fuzz_gemm_tuning.c: libFuzzer target for the GEMM tuning file parser
 * (src/core/gemm_tuning.c), which a context reads from the kernel cache folder at start: the
 * input as the file's text (up to its first NUL, as the loader refuses files with one), then
 * the parsed entries checked against the parser's limits. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "internal.h"

static volatile size_t g_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = '\0';
    ldm_gemm_tuning t;
    ldm_status st = ldm_gemm_tuning_parse("fuzz-tuning.txt", text, &t);
    fuzz_status(st);
    if (st == LDM_OK) {
        if (t.n < 0 || t.n > LDM_GEMM_TUNING_MAX_KERNELS) abort();
        for (int i = 0; i < t.n; i++) {
            const ldm_gemm_tuning_kernel *k = &t.kernels[i];
            if (k->n < 1 || k->n > LDM_GEMM_TUNING_MAX_PARAMS) abort();
            if (!memchr(k->kernel, '\0', sizeof k->kernel)) abort();
            for (int j = 0; j < k->n; j++) {
                if (!memchr(k->names[j], '\0', sizeof k->names[j])) abort();
                if (k->values[j] > (1u << 30)) abort();
                g_sink += strlen(k->names[j]) + k->values[j];
            }
        }
    }
    free(text);
    return 0;
}
