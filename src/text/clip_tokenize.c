/* src/text/clip_tokenize.c: CLIP's text pipeline, from UTF-8 to ids (see ldmcl/tokenizer.h):
 * special tokens, BERT's BasicTokenizer as CLIP configures it, the pre-tokenisation pattern,
 * byte-level BPE (clip_bpe.c), then start/end tokens, truncation and padding. */
#include <stdlib.h>
#include <string.h>

#include "clip_tokenizer_internal.h"
#include "unicode.h"

/* BasicTokenizer._is_chinese_char: the CJK ideograph blocks. */
static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Does c match the ASCII letter or symbol x under the pattern's IGNORECASE (simple case
 * folding: also U+017F for s and U+212A for k)? */
static int fold_eq(uint32_t c, char x) {
    if (c == (uint32_t)x) return 1;
    if (x >= 'a' && x <= 'z' && c == (uint32_t)(x - 32)) return 1;
    return (x == 's' && c == 0x17F) || (x == 'k' && c == 0x212A);
}

static size_t match_literal(const uint32_t *w, size_t n, size_t i, const char *lit) {
    size_t len = strlen(lit);
    if (i + len > n) return 0;
    for (size_t k = 0; k < len; k++)
        if (!fold_eq(w[i + k], lit[k])) return 0;
    return len;
}

/* The length of the pattern's match at w[i] (0: none; the scan moves on by one). */
static size_t pattern_match(const uint32_t *w, size_t n, size_t i) {
    static const char *const literals[] = {
        "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t k = 0; k < sizeof literals / sizeof literals[0]; k++) {
        size_t len = match_literal(w, n, i, literals[k]);
        if (len) return len;
    }
    uint8_t p = ldm_uc_props(w[i]);
    size_t j = i;
    if (p & LDM_UC_RE_LETTER) {
        while (j < n && (ldm_uc_props(w[j]) & LDM_UC_RE_LETTER))
            j++;
        return j - i;
    }
    if (p & LDM_UC_RE_NUMBER) return 1;
    if (p & LDM_UC_RE_OTHER) {
        while (j < n && (ldm_uc_props(w[j]) & LDM_UC_RE_OTHER))
            j++;
        return j - i;
    }
    return 0;
}

/* The pre-tokens of one lowercased word, through BPE, until out holds `limit` ids. */
static ldm_status word_ids(ldm_clip_tokenizer *t, const uint32_t *w, size_t n, size_t limit,
                           ldm_clip_ids *out) {
    unsigned char buf[4 * 256];
    size_t i = 0;
    while (i < n && out->n < limit) {
        size_t len = pattern_match(w, n, i);
        if (!len) {
            i++;
            continue;
        }
        /* UTF-8 of the match; long runs in pieces of the buffer would split a BPE word, so grow */
        unsigned char *bytes = buf;
        if (4 * len > sizeof buf && !(bytes = malloc(4 * len)))
            return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory while tokenizing");
        size_t nb = 0;
        for (size_t k = 0; k < len; k++)
            nb += (size_t)ldm_utf8_encode(w[i + k], (char *)bytes + nb);
        /* As OpenAI's and Hugging Face's BPE caches start out: the special tokens' text (here
         * lowercased from, say, <|ENDOFTEXT|>) is the special token. */
        ldm_status st = LDM_OK;
        if (nb == 15 && !memcmp(bytes, "<|startoftext|>", 15)) {
            if (ldm_clip_ids_push(out, t->bos) != 0) st = LDM_ERR_HOST_MEMORY;
        } else if (nb == 13 && !memcmp(bytes, "<|endoftext|>", 13)) {
            if (ldm_clip_ids_push(out, t->eos) != 0) st = LDM_ERR_HOST_MEMORY;
        } else {
            st = ldm_clip_bpe(t, bytes, nb, out);
        }
        if (st == LDM_ERR_HOST_MEMORY)
            st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory while tokenizing");
        if (bytes != buf) free(bytes);
        LDM_TRY(st);
        i += len;
    }
    return LDM_OK;
}

/* BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize, then the pattern and BPE
 * word by word, until out holds `limit` ids (the rest would be truncated). */
static ldm_status plain_ids(ldm_clip_tokenizer *t, const uint32_t *s, size_t n, size_t limit,
                            ldm_clip_ids *out) {
    ldm_u32s clean = {0}, nfc = {0}, lower = {0};
    ldm_status st = LDM_OK;
    for (size_t i = 0; i < n && st == LDM_OK; i++) {
        uint32_t c = s[i];
        uint8_t p = ldm_uc_props(c);
        int fail = 0;
        if (c == 0 || c == 0xFFFD || (p & LDM_UC_CONTROL)) continue;
        if (p & LDM_UC_WS_CLEAN)
            fail = ldm_u32s_push(&clean, ' ');
        else if (is_cjk(c))
            fail = ldm_u32s_push(&clean, ' ') || ldm_u32s_push(&clean, c) ||
                   ldm_u32s_push(&clean, ' ');
        else
            fail = ldm_u32s_push(&clean, c);
        if (fail) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory while tokenizing");
    }
    if (st == LDM_OK && ldm_uc_nfc(clean.v, clean.n, &nfc) != 0)
        st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory while tokenizing");
    size_t i = 0;
    while (st == LDM_OK && i < nfc.n && out->n < limit) { /* str.split(): non-space runs */
        if (ldm_uc_props(nfc.v[i]) & LDM_UC_ISSPACE) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < nfc.n && !(ldm_uc_props(nfc.v[j]) & LDM_UC_ISSPACE))
            j++;
        if (ldm_uc_lower_all(nfc.v + i, j - i, &lower) != 0)
            st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory while tokenizing");
        else
            st = word_ids(t, lower.v, lower.n, limit, out);
        i = j;
    }
    ldm_u32s_free(&clean);
    ldm_u32s_free(&nfc);
    ldm_u32s_free(&lower);
    return st;
}

/* The special token written at s[i], as the added-tokens trie finds it (case-sensitive). */
static int special_at(const ldm_clip_tokenizer *t, const uint32_t *s, size_t n, size_t i,
                      size_t *len) {
    static const char *const names[2] = {"<|startoftext|>", "<|endoftext|>"};
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(names[k]), q = 0;
        while (q < l && i + q < n && s[i + q] == (uint32_t)names[k][q])
            q++;
        if (q == l) {
            *len = l;
            return k == 0 ? t->bos : t->eos;
        }
    }
    return -1;
}

/* The ids of text (UTF-8, len bytes; special tokens as written) without bos and eos, into *body,
 * stopping once `limit` are known. */
static ldm_status body_ids(ldm_clip_tokenizer *t, const char *text, size_t len, size_t limit,
                           ldm_clip_ids *body) {
    ldm_u32s cps = {0};
    size_t bad = 0;
    int rc = ldm_utf8_decode(text, len, &cps, &bad);
    if (rc == -2) {
        ldm_u32s_free(&cps);
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "the prompt is not valid UTF-8: byte 0x%02X at byte offset %zu starts "
                        "no valid sequence",
                        (unsigned)(unsigned char)text[bad], bad);
    }
    if (rc != 0) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory while tokenizing");
    ldm_status st = LDM_OK;
    size_t start = 0;
    for (size_t i = 0; i <= cps.n && st == LDM_OK && body->n < limit;) {
        size_t slen = 0;
        int special = i < cps.n ? special_at(t, cps.v, cps.n, i, &slen) : -1;
        if (special < 0 && i < cps.n) {
            i++;
            continue;
        }
        if (i > start) st = plain_ids(t, cps.v + start, i - start, limit, body);
        if (st == LDM_OK && special >= 0 && ldm_clip_ids_push(body, special) != 0)
            st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory while tokenizing");
        if (i == cps.n) break;
        i += slen;
        start = i;
    }
    ldm_u32s_free(&cps);
    return st;
}

/* Text longer than LDM_CLIP_MAX_TEXT_BYTES is refused (max_length: what the caller reads, or 0). */
static ldm_status check_length(size_t len, int max_length) {
    if (len > LDM_CLIP_MAX_TEXT_BYTES && max_length > 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the prompt is %zu bytes; the tokenizer takes at most %d (of which only "
                        "the first %d tokens are used): shorten it",
                        len, LDM_CLIP_MAX_TEXT_BYTES, max_length - 2);
    if (len > LDM_CLIP_MAX_TEXT_BYTES)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "the prompt is %zu bytes; the tokenizer takes at most %d: shorten it", len,
                        LDM_CLIP_MAX_TEXT_BYTES);
    return LDM_OK;
}

ldm_status ldm_clip_tokenize(ldm_clip_tokenizer *t, const char *text, size_t len, int max_length,
                             int pad, int32_t *ids, int32_t *mask, int *count) {
    *count = 0;
    if (max_length < 2)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "tokenizing: max_length %d leaves no room for "
                        "the start and end tokens",
                        max_length);
    LDM_TRY(check_length(len, max_length));
    ldm_clip_ids body = {0};
    /* no work once the ids that truncation keeps are known */
    const size_t limit = (size_t)max_length - 2;
    ldm_status st = body_ids(t, text, len, limit, &body);
    if (st == LDM_OK) {
        size_t n = body.n < limit ? body.n : limit;
        int k = 0;
        ids[k++] = t->bos;
        for (size_t i = 0; i < n; i++)
            ids[k++] = body.v[i];
        ids[k++] = t->eos;
        for (int i = 0; mask && i < k; i++)
            mask[i] = 1;
        while (pad && k < max_length) {
            if (mask) mask[k] = 0;
            ids[k++] = t->pad;
        }
        *count = k;
    }
    free(body.v);
    return st;
}

ldm_status ldm_clip_token_count(ldm_clip_tokenizer *t, const char *text, size_t len, int *count) {
    *count = 0;
    LDM_TRY(check_length(len, 0));
    ldm_clip_ids body = {0};
    ldm_status st = body_ids(t, text, len, (size_t)-1, &body);
    if (st == LDM_OK) *count = (int)body.n;
    free(body.v);
    return st;
}
