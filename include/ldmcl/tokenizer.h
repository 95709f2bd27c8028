/* ldmcl/tokenizer.h: CLIP's byte-level BPE tokenizer, producing the ids Hugging Face's
 * CLIPTokenizer produces (the reference's tokenizer; ftfy not installed, as in the reference's
 * requirements):
 *   special tokens (<|startoftext|>, <|endoftext|>) written in the text are kept as they are;
 *   the rest goes through BERT's BasicTokenizer as CLIP configures it (control characters and
 *   U+FFFD dropped, whitespace to spaces, spaces around CJK ideographs, NFC, split on
 *   whitespace, Python's lower() per word), CLIP's pre-tokenisation pattern ('s 't 're 've 'm
 *   'll 'd, letter runs, single digits, runs of other symbols), bytes mapped to printable
 *   characters, BPE over the merges with "</w>" ending each word;
 *   then <|startoftext|> + the ids truncated to max_length - 2 + <|endoftext|>, padded with the
 *   pad token (<|endoftext|> for OpenAI's CLIP) to max_length when asked.
 * Vocabularies: a Hugging Face model folder (vocab.json + merges.txt, pad token from
 * tokenizer_config.json or special_tokens_map.json when present) or OpenAI's
 * bpe_simple_vocab_16e6.txt(.gz). As Hugging Face does, the first line of a merges file is a
 * header and at most 48,894 merges are read. A file with a NUL byte, a merge line that is not two
 * symbols of byte-level BPE's 256 characters ("</w>" allowed at the end), or no merge at all is
 * refused, naming the file (and line).
 * Where ldmcl and Hugging Face differ: CLIPTokenizerFast (the Rust tokenizer) neither drops
 * control characters nor splits CJK ideographs, so its ids differ from CLIPTokenizer's (and
 * ldmcl's) on such text; with ftfy installed, CLIPTokenizer repairs mojibake first, which ldmcl
 * does not. */
#ifndef LDMCL_TOKENIZER_H
#define LDMCL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_clip_tokenizer ldm_clip_tokenizer;

/* vocab.json and merges.txt of a Hugging Face tokenizer. */
ldm_status ldm_clip_tokenizer_load_hf(const char *vocab_json, const char *merges_txt,
                                      ldm_clip_tokenizer **out);
/* A Hugging Face model folder: vocab.json, merges.txt and, when present, tokenizer_config.json or
 * special_tokens_map.json for the pad token. */
ldm_status ldm_clip_tokenizer_load_dir(const char *dir, ldm_clip_tokenizer **out);
/* OpenAI's bpe_simple_vocab_16e6.txt, gzip-compressed or not. */
ldm_status ldm_clip_tokenizer_load_bpe(const char *path, ldm_clip_tokenizer **out);
void ldm_clip_tokenizer_destroy(ldm_clip_tokenizer *t);

/* The number of ids the tokenizer can produce: they are 0 .. vocab_size - 1. */
int ldm_clip_tokenizer_vocab_size(const ldm_clip_tokenizer *t);
/* Fails with LDM_ERR_FORMAT, naming the tokenizer's file, encoder_source (what configured the
 * text encoder, e.g. its config.json) and both sizes, when the tokenizer can produce ids that a
 * text encoder embedding encoder_vocab_size tokens has no row for. */
ldm_status ldm_clip_tokenizer_check_vocab(const ldm_clip_tokenizer *t, int encoder_vocab_size,
                                          const char *encoder_source);
int ldm_clip_tokenizer_bos(const ldm_clip_tokenizer *t);
int ldm_clip_tokenizer_eos(const ldm_clip_tokenizer *t);
int ldm_clip_tokenizer_pad(const ldm_clip_tokenizer *t);

/* The longest text ldm_clip_tokenize takes, in bytes (CLIP reads 77 tokens, a few hundred
 * characters of ordinary text). */
#define LDM_CLIP_MAX_TEXT_BYTES 65536

/* Tokenizes text (UTF-8, len bytes): bos, the ids (at most max_length - 2), eos, then, with
 * pad, the pad token up to max_length. ids and mask (1: token, 0: padding; may be NULL) have
 * room for max_length; *count receives the number written. Invalid UTF-8 is an error naming the
 * byte offset, and so is text longer than LDM_CLIP_MAX_TEXT_BYTES. The work stops once the
 * max_length - 2 ids that truncation keeps are known, and BPE takes O(n log n) in a word's
 * length. */
ldm_status ldm_clip_tokenize(ldm_clip_tokenizer *t, const char *text, size_t len, int max_length,
                             int pad, int32_t *ids, int32_t *mask, int *count);

/* How many tokens text makes, without the start and end tokens and without truncation (so that
 * a caller can say how many a max_length drops). Errors as ldm_clip_tokenize's. */
ldm_status ldm_clip_token_count(ldm_clip_tokenizer *t, const char *text, size_t len, int *count);

#ifdef __cplusplus
}
#endif
#endif
