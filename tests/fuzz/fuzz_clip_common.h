/* tests/fuzz/fuzz_clip_common.h: the check the CLIP tokenizer targets share: a prompt tokenized
 * with padding and without, every id inside the vocabulary (ids index the embedding table on
 * the device), the mask and the count as ldmcl/tokenizer.h promises. */
#ifndef LDMCL_FUZZ_CLIP_COMMON_H
#define LDMCL_FUZZ_CLIP_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "ldmcl/tokenizer.h"

static inline void fuzz_check_tokenize(ldm_clip_tokenizer *t, const char *text, size_t len) {
    enum { LONG = 512 };
    static int32_t ids[LONG], mask[LONG];
    const int vocab = ldm_clip_tokenizer_vocab_size(t);
    for (int pad = 0; pad < 2; pad++) {
        const int max_length = pad ? 77 : LONG;
        int count = -1;
        ldm_status st =
            ldm_clip_tokenize(t, text, len, max_length, pad, ids, pad ? mask : NULL, &count);
        if (st != LDM_OK) {
            fuzz_status(st);
            if (st != LDM_ERR_FORMAT || count != 0) abort();
            continue;
        }
        if (count < 2 || count > max_length || (pad && count != max_length)) abort();
        if (ids[0] != ldm_clip_tokenizer_bos(t)) abort();
        for (int i = 0; i < count; i++)
            if (ids[i] < 0 || ids[i] >= vocab) {
                fprintf(stderr, "fuzz: token %d of %d is id %d, outside the vocabulary of %d\n", i,
                        count, ids[i], vocab);
                abort();
            }
        for (int i = 1; pad && i < count; i++)
            if (mask[i] > mask[i - 1] || (mask[i] == 0 && ids[i] != ldm_clip_tokenizer_pad(t)))
                abort();
    }
}

#endif
