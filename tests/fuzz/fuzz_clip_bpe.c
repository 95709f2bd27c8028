/* tests/fuzz/fuzz_clip_bpe.c: libFuzzer target for the loader of OpenAI's BPE vocabulary
 * (ldm_clip_tokenizer_load_bpe in src/text/clip_vocab.c): the input is the file, gzip-compressed
 * or plain text (zlib reads both), and a tokenizer that loads then tokenizes a fixed prompt that
 * needs merges, specials, digits, CJK and accents. */
#include <string.h>

#include "fuzz_clip_common.h"
#include "fuzz_util.h"

static char g_path[4200];
static const char g_prompt[] =
    "A photo of the cat's hat, 42 <|endoftext|> THE theory\xc2\xa0of caf\xc3\xa9s \xe6\x9d\xb1"
    "\xe4\xba\xac!! <|startoftext|>";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_path, sizeof g_path, "bpe_vocab.txt.gz");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_path, data, size);
    ldm_clip_tokenizer *t = NULL;
    ldm_status st = ldm_clip_tokenizer_load_bpe(g_path, &t);
    fuzz_status(st);
    if (st != LDM_OK) return 0;
    fuzz_check_tokenize(t, g_prompt, sizeof g_prompt - 1);
    ldm_clip_tokenizer_destroy(t);
    return 0;
}
