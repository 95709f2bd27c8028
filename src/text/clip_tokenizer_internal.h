/* src/text/clip_tokenizer_internal.h: the CLIP tokenizer's state, shared by its loader
 * (clip_vocab.c) and its text pipeline (clip_tokenize.c). Not installed. */
#ifndef LDMCL_TEXT_CLIP_TOKENIZER_INTERNAL_H
#define LDMCL_TEXT_CLIP_TOKENIZER_INTERNAL_H

#include "intern.h"
#include "internal.h"
#include "ldmcl/tokenizer.h"

#define LDM_CLIP_MAX_MERGES (49152 - 256 - 2) /* what Hugging Face and OpenAI read */

struct ldm_clip_tokenizer {
    ldm_intern syms; /* every symbol string: vocabulary entries, merge parts and results */
    int32_t *sym_id; /* per symbol: its vocabulary id, or -1 */
    int sym_id_cap;
    int vocab_size;
    ldm_u64map merges;                    /* (left << 32 | right) -> (rank, merged symbol) */
    int byte_sym[256], byte_end_sym[256]; /* a byte's printable character, and with "</w>" */
    char byte_char[256][3];
    int byte_char_len[256];
    int bos, eos, pad, unk;
    char *source;     /* the file the ids come from (vocab.json or the BPE file), for messages */
    ldm_intern cache; /* pre-tokens already split into ids */
    int32_t **cache_ids;
    int *cache_n;
    int cache_cap;
};

/* A growable array of token ids. */
typedef struct ldm_clip_ids {
    int32_t *v;
    size_t n, cap;
} ldm_clip_ids;

int ldm_clip_ids_push(ldm_clip_ids *a, int32_t id); /* 0, or -1 when out of memory */

/* Byte-level BPE of one pre-token (its UTF-8 bytes), appending its ids to out (clip_bpe.c);
 * cached. */
ldm_status ldm_clip_bpe(ldm_clip_tokenizer *t, const unsigned char *bytes, size_t len,
                        ldm_clip_ids *out);

/* GPT-2's byte-to-character map: the printable bytes keep their code point, the others go to
 * U+0100 on, in byte order. order[k] is the k-th byte of OpenAI's vocabulary order. */
void ldm_clip_byte_map(uint32_t chars[256], int order[256]);

/* Creates an empty tokenizer with the byte symbols interned. */
ldm_status ldm_clip_tokenizer_alloc(ldm_clip_tokenizer **out);
/* The symbol of s (interned) with its vocabulary id set (id -1: none). */
ldm_status ldm_clip_set_id(ldm_clip_tokenizer *t, const char *s, size_t len, int id, int *sym);
/* Adds the merge (a, b) with its rank; its result a+b is interned. */
ldm_status ldm_clip_add_merge(ldm_clip_tokenizer *t, const char *a, size_t la, const char *b,
                              size_t lb, int rank);
/* Looks up the special tokens (pad: the given string, or NULL for eos); errors name `source`. */
ldm_status ldm_clip_set_specials(ldm_clip_tokenizer *t, const char *pad, const char *source);

#endif
