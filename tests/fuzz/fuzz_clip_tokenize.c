/* tests/fuzz/fuzz_clip_tokenize.c: libFuzzer target for CLIP's text pipeline
 * (src/text/clip_tokenize.c, src/text/unicode.c): the input is a prompt, tokenized with OpenAI's
 * real vocabulary (bpe_simple_vocab_16e6.txt.gz: $LDMCL_FUZZ_CLIP_VOCAB, else the one
 * tools/setup.sh fetched into the build folder's data/). */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "fuzz_clip_common.h"

static ldm_clip_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *path = getenv("LDMCL_FUZZ_CLIP_VOCAB");
    if (!path || !*path) path = LDMCL_FUZZ_CLIP_VOCAB_DEFAULT;
    ldm_status st = ldm_clip_tokenizer_load_bpe(path, &g_tok);
    if (st != LDM_OK) {
        fprintf(stderr,
                "fuzz_clip_tokenize: %s\nThis target needs OpenAI's CLIP vocabulary: "
                "tools/fetch_clip_vocab.sh <build>/data, or LDMCL_FUZZ_CLIP_VOCAB=<path>\n",
                ldm_last_error());
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_check_tokenize(g_tok, (const char *)data, size);
    return 0;
}
