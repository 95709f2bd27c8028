/* ldmcl/caption_tags.h: sd-scripts' caption augmentations for captions written as comma-separated
 * tags ("1girl, red hair, smiling"): shuffle_caption (the tags in a random order each use, the
 * first keep_tokens in place) and caption_tag_dropout_rate (each tag not kept dropped with that
 * probability). The draws come from a key, so a resumed run repeats them. */
#ifndef LDMCL_CAPTION_TAGS_H
#define LDMCL_CAPTION_TAGS_H

#include <stdint.h>

#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_caption_tags {
    int shuffle;       /* shuffle_caption */
    int keep_tokens;   /* keep_tokens: the first this many tags stay first, in order */
    float tag_dropout; /* caption_tag_dropout_rate, in [0, 1] */
} ldm_caption_tags;

/* Whether o changes captions at all. */
int ldm_caption_tags_active(const ldm_caption_tags *o);

/* caption with o applied (key: the draws) into *out (malloc'd; free it): split at commas, each
 * tag trimmed of spaces (empty tags dropped), rejoined with ", ". A caption without a comma is
 * one tag. */
ldm_status ldm_caption_tags_apply(const char *caption, const ldm_caption_tags *o, uint64_t key,
                                  char **out);

#ifdef __cplusplus
}
#endif
#endif
