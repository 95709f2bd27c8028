/* tests/fuzz/fuzz_lora.c: libFuzzer target for LoRA inputs (src/sample/lora_prompt.c, sd_lora.c):
 * the first byte picks. 0: the rest is a prompt whose <lora:NAME:WEIGHT> tags are taken out;
 * otherwise the rest is a kohya LoRA file, read and checked against the tiny SD 1.x model of
 * tests/ref/sd/ without its graphs (every tensor classified, pairs and shapes checked; nothing is
 * merged: no device). */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "ldmcl/lora.h"

static char g_file[4200];
static ldm_sd_model g_model;
static volatile int g_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_file, sizeof g_file, "lora.safetensors");
    if (ldm_sd_model_inspect(LDMCL_FUZZ_SD_MODEL, &g_model) != LDM_OK) {
        fprintf(stderr, "fuzz_lora: %s\n", ldm_last_error());
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] == 0) {
        char prompt[4096], out[4096];
        size_t n = size - 1 < sizeof prompt - 1 ? size - 1 : sizeof prompt - 1;
        memcpy(prompt, data + 1, n);
        prompt[n] = '\0';
        ldm_lora_ref refs[LDM_LORA_MAX_REFS];
        int count = 0;
        ldm_status s =
            ldm_lora_parse_prompt(prompt, out, sizeof out, refs, LDM_LORA_MAX_REFS, &count);
        fuzz_status(s);
        if (s == LDM_OK) g_sink += (int)strlen(out) + count;
        return 0;
    }
    fuzz_write(g_file, data + 1, size - 1);
    int merged = 0;
    fuzz_status(ldm_sd_lora_merge(&g_model, g_file, 1.0f, NULL, NULL, &merged));
    g_sink += merged;
    return 0;
}
