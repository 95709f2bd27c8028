/* tests/fuzz/fuzz_clip_dir.c: libFuzzer target for the loader of a Hugging Face tokenizer folder
 * (ldm_clip_tokenizer_load_dir in src/text/clip_vocab.c). The input holds up to five parts
 * separated by a line of five dashes: vocab.json, merges.txt, tokenizer_config.json,
 * special_tokens_map.json (a part that is absent is no file) and a prompt, which a tokenizer
 * that loads tokenizes (a fixed prompt when there is no fifth part). */
#include <stdio.h>
#include <string.h>

#include "fuzz_clip_common.h"
#include "fuzz_util.h"

static const char *const g_names[4] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                       "special_tokens_map.json"};
static char g_dir[4200], g_paths[4][4300];
static const char g_prompt[] = "a photo of the cat's hat, 42 <|endoftext|> caf\xc3\xa9";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_dir, sizeof g_dir, "hf");
    fuzz_mkdir(g_dir);
    for (int i = 0; i < 4; i++)
        snprintf(g_paths[i], sizeof g_paths[i], "%s/%s", g_dir, g_names[i]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_part parts[5];
    int n = fuzz_split(data, size, parts, 5);
    for (int i = 0; i < 4; i++) {
        remove(g_paths[i]);
        if (i < n) fuzz_write(g_paths[i], parts[i].data, parts[i].size);
    }
    ldm_clip_tokenizer *t = NULL;
    ldm_status st = ldm_clip_tokenizer_load_dir(g_dir, &t);
    fuzz_status(st);
    if (st != LDM_OK) return 0;
    if (n == 5)
        fuzz_check_tokenize(t, (const char *)parts[4].data, parts[4].size);
    else
        fuzz_check_tokenize(t, g_prompt, sizeof g_prompt - 1);
    ldm_clip_tokenizer_destroy(t);
    return 0;
}
