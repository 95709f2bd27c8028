/* src/text/unicode.h: what the CLIP tokenizer needs of Unicode: strict UTF-8 decoding and
 * encoding, code point properties, Python's str.lower (with the final-sigma rule) and NFC
 * normalisation, all from the generated tables (unicode_tables.c). Not installed. */
#ifndef LDMCL_TEXT_UNICODE_H
#define LDMCL_TEXT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#include "unicode_tables.h"

/* A growable array of code points. */
typedef struct ldm_u32s {
    uint32_t *v;
    size_t n, cap;
} ldm_u32s;

int ldm_u32s_push(ldm_u32s *a, uint32_t cp); /* 0, or -1 when out of memory */
void ldm_u32s_free(ldm_u32s *a);

/* Decodes strict UTF-8 (no overlongs, surrogates or values above U+10FFFF) into out (appended).
 * Returns 0, -1 when out of memory, or -2 with *bad_offset the byte offset of the first invalid
 * sequence. */
int ldm_utf8_decode(const char *s, size_t len, ldm_u32s *out, size_t *bad_offset);
/* Appends the UTF-8 of cp to buf (at most 4 bytes); returns the count. */
int ldm_utf8_encode(uint32_t cp, char *buf);

/* The property bits (LDM_UC_*) of a code point. */
uint8_t ldm_uc_props(uint32_t cp);

/* Python's str.lower of the whole array, in place into out (cleared first): per code point
 * mappings, U+0130 to two code points, and capital sigma to final sigma where Python's
 * Final_Sigma context holds. 0, or -1 when out of memory. */
int ldm_uc_lower_all(const uint32_t *in, size_t n, ldm_u32s *out);

/* unicodedata.normalize("NFC", ...) of in into out (cleared first). 0, or -1 when out of memory. */
int ldm_uc_nfc(const uint32_t *in, size_t n, ldm_u32s *out);

#endif
