/* src/text/unicode_tables.h: the Unicode data of the CLIP tokenizer (unicode_tables.c, generated
 * by tools/refgen/gen_unicode_tables.py from the Python and regex module that run Hugging Face's
 * tokenizer). Not installed. */
#ifndef LDMCL_TEXT_UNICODE_TABLES_H
#define LDMCL_TEXT_UNICODE_TABLES_H

#include <stdint.h>

/* Property bits of a code point (see the generator for their exact definitions). */
enum {
    LDM_UC_CONTROL = 1,    /* BasicTokenizer._is_control */
    LDM_UC_WS_CLEAN = 2,   /* BasicTokenizer._is_whitespace */
    LDM_UC_ISSPACE = 4,    /* str.isspace */
    LDM_UC_RE_LETTER = 8,  /* [\p{L}] (IGNORECASE) */
    LDM_UC_RE_NUMBER = 16, /* [\p{N}] (IGNORECASE) */
    LDM_UC_RE_OTHER = 32,  /* [^\s\p{L}\p{N}] (IGNORECASE) */
    LDM_UC_CASED = 64,     /* final sigma's \p{cased} */
    LDM_UC_CASE_IGNORABLE = 128
};

typedef struct ldm_uc_range {
    uint32_t first, last;
    uint8_t value; /* property bits, or a combining class */
} ldm_uc_range;

typedef struct ldm_uc_pair {
    uint32_t from, to;
} ldm_uc_pair;

typedef struct ldm_uc_multi {
    uint32_t from;
    int count;
    uint32_t to[3];
} ldm_uc_multi;

typedef struct ldm_uc_decomp {
    uint32_t cp;
    int offset, count; /* into ldm_uc_decomp_pool: the full canonical decomposition */
} ldm_uc_decomp;

typedef struct ldm_uc_compose {
    uint32_t first, second, composite;
} ldm_uc_compose;

/* All sorted by code point (compositions by (first, second)). */
extern const ldm_uc_range ldm_uc_ranges[];
extern const int ldm_uc_range_count;
extern const ldm_uc_pair ldm_uc_lower[];
extern const int ldm_uc_lower_count;
extern const ldm_uc_multi ldm_uc_lower_multi[];
extern const int ldm_uc_lower_multi_count;
extern const ldm_uc_range ldm_uc_ccc[];
extern const int ldm_uc_ccc_count;
extern const ldm_uc_decomp ldm_uc_decomps[];
extern const int ldm_uc_decomp_count;
extern const uint32_t ldm_uc_decomp_pool[];
extern const ldm_uc_compose ldm_uc_composes[];
extern const int ldm_uc_compose_count;

#endif
