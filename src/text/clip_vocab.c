/* src/text/clip_vocab.c: loading the CLIP tokenizer's vocabulary and merges, from a Hugging Face
 * folder (vocab.json, merges.txt, tokenizer_config.json / special_tokens_map.json) or from
 * OpenAI's bpe_simple_vocab_16e6.txt(.gz) (see ldmcl/tokenizer.h). What is not such a file is
 * refused rather than read as a tokenizer of few merges: a NUL byte, a merge line that is not two
 * symbols of byte-level BPE's characters (named by file and line), no merge at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "clip_tokenizer_internal.h"
#include "json.h"
#include "unicode.h"

void ldm_clip_byte_map(uint32_t chars[256], int order[256]) {
    int n = 0, k = 0;
    int printable[256] = {0};
    for (int b = 0; b < 256; b++)
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    for (int b = 0; b < 256; b++)
        if (printable[b]) {
            chars[b] = (uint32_t)b;
            order[k++] = b;
        }
    for (int b = 0; b < 256; b++)
        if (!printable[b]) {
            chars[b] = 256u + (uint32_t)n++;
            order[k++] = b;
        }
}

ldm_status ldm_clip_tokenizer_alloc(ldm_clip_tokenizer **out) {
    ldm_clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    uint32_t chars[256];
    int order[256];
    ldm_clip_byte_map(chars, order);
    for (int b = 0; b < 256; b++) {
        char s[8];
        int len = ldm_utf8_encode(chars[b], s);
        memcpy(t->byte_char[b], s, (size_t)len);
        t->byte_char_len[b] = len;
        memcpy(s + len, "</w>", 4);
        t->byte_sym[b] = ldm_intern_add(&t->syms, s, (size_t)len);
        t->byte_end_sym[b] = ldm_intern_add(&t->syms, s, (size_t)len + 4);
        if (t->byte_sym[b] < 0 || t->byte_end_sym[b] < 0) {
            ldm_clip_tokenizer_destroy(t);
            return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        }
    }
    t->bos = t->eos = t->pad = t->unk = -1;
    *out = t;
    return LDM_OK;
}

void ldm_clip_tokenizer_destroy(ldm_clip_tokenizer *t) {
    if (!t) return;
    free(t->source);
    ldm_intern_free(&t->syms);
    free(t->sym_id);
    ldm_u64map_free(&t->merges);
    for (int i = 0; i < t->cache.count; i++)
        free(t->cache_ids[i]);
    ldm_intern_free(&t->cache);
    free(t->cache_ids);
    free(t->cache_n);
    free(t);
}

/* Makes room in sym_id for every interned symbol (new ones get -1). */
static ldm_status fit_ids(ldm_clip_tokenizer *t) {
    if (t->syms.count <= t->sym_id_cap) return LDM_OK;
    int cap = t->sym_id_cap ? t->sym_id_cap : 1024;
    while (cap < t->syms.count)
        cap *= 2;
    int32_t *ids = realloc(t->sym_id, (size_t)cap * sizeof *ids);
    if (!ids) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    for (int i = t->sym_id_cap; i < cap; i++)
        ids[i] = -1;
    t->sym_id = ids;
    t->sym_id_cap = cap;
    return LDM_OK;
}

ldm_status ldm_clip_set_id(ldm_clip_tokenizer *t, const char *s, size_t len, int id, int *sym) {
    int k = ldm_intern_add(&t->syms, s, len);
    if (k < 0) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    LDM_TRY(fit_ids(t));
    if (id >= 0) t->sym_id[k] = id;
    if (sym) *sym = k;
    return LDM_OK;
}

ldm_status ldm_clip_add_merge(ldm_clip_tokenizer *t, const char *a, size_t la, const char *b,
                              size_t lb, int rank) {
    char joined[512];
    if (la + lb > sizeof joined)
        return LDM_FAIL(LDM_ERR_FORMAT, "a merge of %zu bytes is too long", la + lb);
    memcpy(joined, a, la);
    memcpy(joined + la, b, lb);
    int sa, sb, sm;
    LDM_TRY(ldm_clip_set_id(t, a, la, -1, &sa));
    LDM_TRY(ldm_clip_set_id(t, b, lb, -1, &sb));
    LDM_TRY(ldm_clip_set_id(t, joined, la + lb, -1, &sm));
    if (ldm_u64map_set(&t->merges, (uint64_t)sa << 32 | (uint32_t)sb, rank, sm) != 0)
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    return LDM_OK;
}

static int id_of(const ldm_clip_tokenizer *t, const char *s) {
    int k = ldm_intern_find(&t->syms, s, strlen(s));
    return k >= 0 ? t->sym_id[k] : -1;
}

ldm_status ldm_clip_set_specials(ldm_clip_tokenizer *t, const char *pad, const char *source) {
    t->bos = id_of(t, "<|startoftext|>");
    t->eos = id_of(t, "<|endoftext|>");
    if (t->bos < 0 || t->eos < 0)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "%s: the vocabulary lacks <|startoftext|> or <|endoftext|>: not a CLIP "
                        "tokenizer",
                        source);
    t->unk = t->eos;
    t->pad = pad ? id_of(t, pad) : t->eos;
    if (t->pad < 0)
        return LDM_FAIL(LDM_ERR_FORMAT, "%s: the pad token '%s' is not in the vocabulary", source,
                        pad);
    return LDM_OK;
}

/* Reads a whole file (gzip-compressed or not) into a NUL-terminated buffer. */
static ldm_status read_text(const char *path, const char *what, char **out, size_t *len) {
    *out = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f) return LDM_FAIL(LDM_ERR_NOT_FOUND, "cannot open the %s '%s'", what, path);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    ldm_status st = buf ? LDM_OK : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    while (st == LDM_OK) {
        if (n == cap) {
            if (cap >= ((size_t)1 << 28)) {
                st = LDM_FAIL(LDM_ERR_FORMAT, "the %s '%s' exceeds 256 MiB", what, path);
                break;
            }
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) {
                st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        int got = gzread(f, buf + n, (unsigned)(cap - n));
        if (got < 0) {
            int zerr;
            st = LDM_FAIL(LDM_ERR_FORMAT, "cannot read the %s '%s': %s", what, path,
                          gzerror(f, &zerr));
        }
        if (got <= 0) break;
        n += (size_t)got;
    }
    gzclose(f);
    if (st != LDM_OK) {
        free(buf);
        return st;
    }
    const char *nul = memchr(buf, 0, n);
    if (nul) {
        size_t off = (size_t)(nul - buf), line = 1;
        for (const char *q = buf; q < nul; q++)
            line += *q == '\n';
        free(buf);
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "the %s '%s' holds a NUL byte at byte offset %zu (line %zu): not a text "
                        "file; fetch it again (tools/fetch_clip_vocab.sh for OpenAI's)",
                        what, path, off, line);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return LDM_OK;
}

/* Is cp one of the 256 characters byte-level BPE writes bytes as (ldm_clip_byte_map)? */
static int is_byte_char(uint32_t cp) {
    return (cp >= '!' && cp <= '~') || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF) ||
           (cp >= 0x100 && cp < 0x100 + 68);
}

/* Checks that a merge part is byte-level BPE characters, "</w>" allowed at its end; else fails
 * naming the file, the line and what is wrong. */
static ldm_status check_symbol(const char *s, size_t len, const char *path, int line,
                               ldm_u32s *cps) {
    size_t body = len >= 4 && !memcmp(s + len - 4, "</w>", 4) ? len - 4 : len;
    size_t bad = 0;
    cps->n = 0;
    int rc = ldm_utf8_decode(s, body, cps, &bad);
    if (rc == -1) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (rc == -2)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "%s line %d: a merge symbol is not valid UTF-8 (byte 0x%02X): not a CLIP "
                        "merges file, or a corrupt one",
                        path, line, (unsigned)(unsigned char)s[bad]);
    for (size_t i = 0; i < cps->n; i++)
        if (!is_byte_char(cps->v[i]))
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "%s line %d: the merge symbol \"%.*s\" holds U+%04X, which is not "
                            "one of byte-level BPE's 256 characters: not a CLIP merges file",
                            path, line, (int)(len < 60 ? len : 60), s, (unsigned)cps->v[i]);
    if (body == 0)
        return LDM_FAIL(LDM_ERR_FORMAT, "%s line %d: an empty merge symbol \"</w>\"", path, line);
    return LDM_OK;
}

/* Splits a merge line into its two whitespace-separated symbols. */
static int split_merge(char *line, char **a, size_t *la, char **b, size_t *lb) {
    char *p = line, *parts[3];
    size_t lens[3];
    int n = 0;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f')
            p++;
        if (!*p) break;
        if (n == 3) return 0;
        parts[n] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\v' && *p != '\f')
            p++;
        lens[n] = (size_t)(p - parts[n]);
        n++;
    }
    if (n != 2) return 0;
    *a = parts[0], *la = lens[0], *b = parts[1], *lb = lens[1];
    return 1;
}

/* Reads merges from text lines [1, 1 + LDM_CLIP_MAX_MERGES) (line 0 is a header). strip: drop
 * leading and trailing whitespace of the whole text first (Hugging Face's reading). */
static ldm_status read_merges(ldm_clip_tokenizer *t, char *text, const char *path, int strip,
                              int *result_syms, int *n_merges) {
    char *p = text;
    if (strip) {
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            p++;
        size_t n = strlen(p);
        while (n > 0 &&
               (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == '\t'))
            p[--n] = 0;
    }
    int line = 0, rank = 0;
    ldm_u32s cps = {0};
    ldm_status st = LDM_OK;
    while (p && rank < LDM_CLIP_MAX_MERGES && st == LDM_OK) {
        char *next = strchr(p, '\n');
        if (next) *next++ = 0;
        if (!next && !*p) break; /* after the newline that ends the text */
        if (line > 0) {
            char *a, *b;
            size_t la, lb;
            if (!split_merge(p, &a, &la, &b, &lb)) {
                st = LDM_FAIL(LDM_ERR_FORMAT,
                              "%s line %d: a merge must be two symbols separated by a space, "
                              "found \"%.60s\"",
                              path, line + 1, p);
                break;
            }
            st = check_symbol(a, la, path, line + 1, &cps);
            if (st == LDM_OK) st = check_symbol(b, lb, path, line + 1, &cps);
            if (st == LDM_OK) st = ldm_clip_add_merge(t, a, la, b, lb, rank);
            if (st != LDM_OK) break;
            if (result_syms) {
                char joined[512];
                memcpy(joined, a, la);
                memcpy(joined + la, b, lb);
                result_syms[rank] = ldm_intern_find(&t->syms, joined, la + lb);
            }
            rank++;
        }
        line++;
        p = next;
    }
    ldm_u32s_free(&cps);
    if (st == LDM_OK && rank == 0)
        st = LDM_FAIL(LDM_ERR_FORMAT,
                      "%s holds no merges (%d line%s; the first is a header): not a CLIP merges "
                      "file, or an empty one",
                      path, line, line == 1 ? "" : "s");
    *n_merges = rank;
    return st;
}

ldm_status ldm_clip_tokenizer_load_hf(const char *vocab_json, const char *merges_txt,
                                      ldm_clip_tokenizer **out) {
    *out = NULL;
    char *text;
    size_t len;
    LDM_TRY(read_text(vocab_json, "vocabulary", &text, &len));
    char err[256];
    ldm_json *root = ldm_json_parse(text, len, err, sizeof err);
    free(text);
    if (!root) return LDM_FAIL(LDM_ERR_FORMAT, "%s: not valid JSON: %s", vocab_json, err);
    ldm_clip_tokenizer *t = NULL;
    ldm_status st = ldm_clip_tokenizer_alloc(&t);
    if (st == LDM_OK && root->type != LDM_JSON_OBJECT)
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: a vocabulary is a JSON object of token: id", vocab_json);
    for (size_t i = 0; st == LDM_OK && i < root->count; i++) {
        const ldm_json *v = &root->items[i];
        if (v->type != LDM_JSON_NUMBER || !v->is_integer || v->integer < 0 ||
            v->integer >= (1 << 24)) {
            st = LDM_FAIL(LDM_ERR_FORMAT, "%s: the id of \"%.60s\" must be an integer in [0, 2^24)",
                          vocab_json, root->keys[i]);
            break;
        }
        st = ldm_clip_set_id(t, root->keys[i], strlen(root->keys[i]), (int)v->integer, NULL);
        if ((int)v->integer + 1 > t->vocab_size) t->vocab_size = (int)v->integer + 1;
    }
    ldm_json_free(root);
    if (st == LDM_OK) st = read_text(merges_txt, "merges file", &text, &len);
    int n_merges = 0;
    if (st == LDM_OK) {
        st = read_merges(t, text, merges_txt, 1, NULL, &n_merges);
        free(text);
    }
    if (st == LDM_OK) st = ldm_clip_set_specials(t, NULL, vocab_json);
    if (st == LDM_OK && !(t->source = ldm_strdup(vocab_json)))
        st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (st != LDM_OK) {
        ldm_clip_tokenizer_destroy(t);
        return st;
    }
    *out = t;
    return LDM_OK;
}

/* The "pad_token" of a tokenizer_config.json / special_tokens_map.json (a string or an object with
 * "content"), or NULL when the file or the key is absent. */
static ldm_status read_pad(const char *path, char *pad, size_t size, int *found) {
    *found = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return LDM_OK;
    fclose(f);
    char *text;
    size_t len;
    LDM_TRY(read_text(path, "tokenizer config", &text, &len));
    char err[256];
    ldm_json *root = ldm_json_parse(text, len, err, sizeof err);
    free(text);
    if (!root) return LDM_FAIL(LDM_ERR_FORMAT, "%s: not valid JSON: %s", path, err);
    const ldm_json *p = ldm_json_get(root, "pad_token");
    if (p && p->type == LDM_JSON_OBJECT) p = ldm_json_get(p, "content");
    ldm_status st = LDM_OK;
    if (p && p->type == LDM_JSON_STRING) {
        snprintf(pad, size, "%s", p->string);
        *found = 1;
    } else if (p && p->type != LDM_JSON_NULL) {
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: \"pad_token\" must be a string", path);
    }
    ldm_json_free(root);
    return st;
}

ldm_status ldm_clip_tokenizer_load_dir(const char *dir, ldm_clip_tokenizer **out) {
    char vocab[4096], merges[4096], config[4096], pad[256];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    LDM_TRY(ldm_clip_tokenizer_load_hf(vocab, merges, out));
    const char *files[2] = {"tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 2; i++) {
        int found = 0;
        snprintf(config, sizeof config, "%s/%s", dir, files[i]);
        ldm_status st = read_pad(config, pad, sizeof pad, &found);
        if (st == LDM_OK && found) st = ldm_clip_set_specials(*out, pad, config);
        if (st != LDM_OK) {
            ldm_clip_tokenizer_destroy(*out);
            *out = NULL;
            return st;
        }
        if (found) break;
    }
    return LDM_OK;
}

ldm_status ldm_clip_tokenizer_load_bpe(const char *path, ldm_clip_tokenizer **out) {
    *out = NULL;
    char *text;
    size_t len;
    LDM_TRY(read_text(path, "BPE vocabulary", &text, &len));
    ldm_clip_tokenizer *t = NULL;
    ldm_status st = ldm_clip_tokenizer_alloc(&t);
    /* OpenAI's order: the byte characters, the same with "</w>", the merges, the two specials. */
    uint32_t chars[256];
    int order[256];
    ldm_clip_byte_map(chars, order);
    if (st == LDM_OK) st = fit_ids(t);
    for (int k = 0; k < 256 && st == LDM_OK; k++) {
        t->sym_id[t->byte_sym[order[k]]] = k;
        t->sym_id[t->byte_end_sym[order[k]]] = 256 + k;
    }
    int n_merges = 0;
    int *results = malloc(LDM_CLIP_MAX_MERGES * sizeof *results);
    if (st == LDM_OK && !results) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (st == LDM_OK) st = read_merges(t, text, path, 0, results, &n_merges);
    free(text);
    /* merge i's result gets id 512 + i, in rank order (a later equal string wins, as in
     * OpenAI's dict) */
    for (int i = 0; st == LDM_OK && i < n_merges; i++)
        t->sym_id[results[i]] = 512 + i;
    free(results);
    if (st == LDM_OK) st = ldm_clip_set_id(t, "<|startoftext|>", 15, 512 + n_merges, NULL);
    if (st == LDM_OK) st = ldm_clip_set_id(t, "<|endoftext|>", 13, 513 + n_merges, NULL);
    if (st == LDM_OK) t->vocab_size = 514 + n_merges;
    if (st == LDM_OK) st = ldm_clip_set_specials(t, NULL, path);
    if (st == LDM_OK && !(t->source = ldm_strdup(path)))
        st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    if (st != LDM_OK) {
        ldm_clip_tokenizer_destroy(t);
        return st;
    }
    *out = t;
    return LDM_OK;
}

int ldm_clip_tokenizer_vocab_size(const ldm_clip_tokenizer *t) {
    return t->vocab_size;
}

ldm_status ldm_clip_tokenizer_check_vocab(const ldm_clip_tokenizer *t, int encoder_vocab_size,
                                          const char *encoder_source) {
    if (t->vocab_size <= encoder_vocab_size) return LDM_OK;
    return LDM_FAIL(LDM_ERR_FORMAT,
                    "the tokenizer '%s' has %d tokens but the text encoder (%s) embeds %d "
                    "(vocab_size): ids %d to %d would index past its embedding table. Use the "
                    "tokenizer the encoder was trained with",
                    t->source ? t->source : "?", t->vocab_size,
                    encoder_source ? encoder_source : "?", encoder_vocab_size, encoder_vocab_size,
                    t->vocab_size - 1);
}

int ldm_clip_tokenizer_bos(const ldm_clip_tokenizer *t) {
    return t->bos;
}

int ldm_clip_tokenizer_eos(const ldm_clip_tokenizer *t) {
    return t->eos;
}

int ldm_clip_tokenizer_pad(const ldm_clip_tokenizer *t) {
    return t->pad;
}
