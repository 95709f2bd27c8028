/* src/io/json.c: a strict recursive-descent JSON parser (RFC 8259), written for untrusted input:
 * every byte is bounds-checked, strings must be valid UTF-8 (no surrogates, no overlongs),
 * escapes are decoded (\u pairs included), duplicate object keys are an error (found through
 * each object's hash index, json_index.c, once it has a few keys), and nesting is limited to 64
 * levels. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define MAX_DEPTH 64
#define INDEX_FROM 8 /* objects of this many keys or more get a hash index */

typedef struct parser {
    const unsigned char *p, *start, *end;
    char *err;
    size_t err_size;
    int failed;
} parser;

static void fail(parser *ps, const char *what) {
    if (ps->failed) return;
    ps->failed = 1;
    snprintf(ps->err, ps->err_size, "%s at byte %zu", what, (size_t)(ps->p - ps->start));
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int parse_value(parser *ps, ldm_json *out, int depth);

/* Appends code point cp as UTF-8. */
static size_t put_utf8(char *dst, unsigned cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0. */
static int utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    int n;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (end - p < n) return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return n;
}

static int hex4(parser *ps, unsigned *v) {
    if (ps->end - ps->p < 4) return 0;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = ps->p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        *v = *v << 4 | d;
    }
    ps->p += 4;
    return 1;
}

static int parse_string(parser *ps, char **out, size_t *out_len) {
    ps->p++; /* opening quote */
    /* The decoded string is never longer than its source. */
    const unsigned char *q = ps->p;
    while (q < ps->end && *q != '"')
        q += *q == '\\' && q + 1 < ps->end ? 2 : 1;
    if (q >= ps->end) {
        fail(ps, "unterminated string");
        return 0;
    }
    char *s = malloc((size_t)(q - ps->p) + 1);
    if (!s) {
        fail(ps, "out of memory");
        return 0;
    }
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned c = *ps->p;
        if (c < 0x20) {
            fail(ps, "control character in string");
            break;
        }
        if (c != '\\') {
            int len = utf8_len(ps->p, ps->end);
            if (!len) {
                fail(ps, "invalid UTF-8");
                break;
            }
            memcpy(s + n, ps->p, (size_t)len);
            n += (size_t)len;
            ps->p += len;
            continue;
        }
        ps->p++;
        if (ps->p >= ps->end) break;
        c = *ps->p++;
        switch (c) {
        case '"':
            s[n++] = '"';
            break;
        case '\\':
            s[n++] = '\\';
            break;
        case '/':
            s[n++] = '/';
            break;
        case 'b':
            s[n++] = '\b';
            break;
        case 'f':
            s[n++] = '\f';
            break;
        case 'n':
            s[n++] = '\n';
            break;
        case 'r':
            s[n++] = '\r';
            break;
        case 't':
            s[n++] = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(ps, &cp)) {
                fail(ps, "bad \\u escape");
                break;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(ps, "lone low surrogate");
                break;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    fail(ps, "lone high surrogate");
                    break;
                }
                ps->p += 2;
                if (!hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    fail(ps, "bad surrogate pair");
                    break;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(s + n, cp);
            break;
        }
        default:
            fail(ps, "bad escape");
        }
        if (ps->failed) break;
    }
    if (ps->failed) {
        free(s);
        return 0;
    }
    ps->p++; /* closing quote */
    s[n] = '\0';
    *out = s;
    *out_len = n;
    return 1;
}

static int parse_number(parser *ps, ldm_json *out) {
    const unsigned char *s = ps->p;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
        fail(ps, "bad number");
        return 0;
    }
    if (*ps->p == '0')
        ps->p++;
    else
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    int integral = 1;
    if (ps->p < ps->end && *ps->p == '.') {
        integral = 0;
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
            fail(ps, "bad number");
            return 0;
        }
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integral = 0;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
            fail(ps, "bad number");
            return 0;
        }
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    char buf[64];
    size_t len = (size_t)(ps->p - s);
    if (len >= sizeof buf) {
        fail(ps, "number too long");
        return 0;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    out->type = LDM_JSON_NUMBER;
    out->number = strtod(buf, NULL);
    if (integral) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == 0) {
            out->is_integer = 1;
            out->integer = v;
        }
    }
    return 1;
}

static int literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        fail(ps, "unexpected character");
        return 0;
    }
    ps->p += n;
    return 1;
}

static int push_item(parser *ps, ldm_json *parent, size_t *cap) {
    if (parent->count == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        ldm_json *items = realloc(parent->items, c * sizeof *items);
        if (!items) {
            fail(ps, "out of memory");
            return 0;
        }
        parent->items = items;
        if (parent->type == LDM_JSON_OBJECT) {
            char **keys = realloc(parent->keys, c * sizeof *keys);
            if (!keys) {
                fail(ps, "out of memory");
                return 0;
            }
            parent->keys = keys;
        }
        *cap = c;
    }
    memset(&parent->items[parent->count], 0, sizeof parent->items[0]);
    return 1;
}

static int parse_container(parser *ps, ldm_json *out, int depth, int object) {
    out->type = object ? LDM_JSON_OBJECT : LDM_JSON_ARRAY;
    ps->p++;
    size_t cap = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) {
        ps->p++;
        return 1;
    }
    for (;;) {
        skip_ws(ps);
        if (!push_item(ps, out, &cap)) return 0;
        if (object) {
            char *key;
            size_t klen;
            if (ps->p >= ps->end || *ps->p != '"') {
                fail(ps, "expected a string key");
                return 0;
            }
            if (!parse_string(ps, &key, &klen)) return 0;
            if (ldm_json_find(out, key) != SIZE_MAX) {
                free(key);
                fail(ps, "duplicate key");
                return 0;
            }
            out->keys[out->count] = key;
            /* the index from the INDEX_FROM-th key on: earlier keys first */
            if (out->index || out->count + 1 >= INDEX_FROM)
                for (size_t i = out->index ? out->count : 0; i <= out->count; i++)
                    if (!ldm_json_index_add(&out->index, out->keys, i)) {
                        out->count++; /* so the key is freed */
                        fail(ps, "out of memory");
                        return 0;
                    }
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                out->count++; /* so the key is freed */
                fail(ps, "expected ':'");
                return 0;
            }
            ps->p++;
        }
        out->count++;
        if (!parse_value(ps, &out->items[out->count - 1], depth + 1)) return 0;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) {
            ps->p++;
            return 1;
        }
        fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
        return 0;
    }
}

static int parse_value(parser *ps, ldm_json *out, int depth) {
    if (depth > MAX_DEPTH) {
        fail(ps, "nested too deeply");
        return 0;
    }
    skip_ws(ps);
    if (ps->p >= ps->end) {
        fail(ps, "unexpected end");
        return 0;
    }
    switch (*ps->p) {
    case '{':
        return parse_container(ps, out, depth, 1);
    case '[':
        return parse_container(ps, out, depth, 0);
    case '"':
        out->type = LDM_JSON_STRING;
        return parse_string(ps, &out->string, &out->length);
    case 't':
        out->type = LDM_JSON_BOOL;
        out->boolean = 1;
        return literal(ps, "true");
    case 'f':
        out->type = LDM_JSON_BOOL;
        return literal(ps, "false");
    case 'n':
        out->type = LDM_JSON_NULL;
        return literal(ps, "null");
    default:
        return parse_number(ps, out);
    }
}

static void free_contents(ldm_json *j) {
    free(j->string);
    for (size_t i = 0; i < j->count; i++) {
        free_contents(&j->items[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    ldm_json_index_free(j->index);
}

void ldm_json_free(ldm_json *j) {
    if (!j) return;
    free_contents(j);
    free(j);
}

ldm_json *ldm_json_parse(const char *text, size_t len, char *err, size_t err_size) {
    parser ps = {(const unsigned char *)text,
                 (const unsigned char *)text,
                 (const unsigned char *)text + len,
                 err,
                 err_size,
                 0};
    if (err_size) err[0] = '\0';
    ldm_json *root = calloc(1, sizeof *root);
    if (!root) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    if (parse_value(&ps, root, 0)) {
        skip_ws(&ps);
        if (ps.p != ps.end) fail(&ps, "trailing characters");
    }
    if (ps.failed) {
        ldm_json_free(root);
        return NULL;
    }
    return root;
}

size_t ldm_json_find(const ldm_json *obj, const char *key) {
    if (!obj || obj->type != LDM_JSON_OBJECT) return SIZE_MAX;
    if (obj->index) return ldm_json_index_find(obj->index, obj->keys, key);
    for (size_t i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0) return i;
    return SIZE_MAX;
}

const ldm_json *ldm_json_get(const ldm_json *obj, const char *key) {
    size_t i = ldm_json_find(obj, key);
    return i == SIZE_MAX ? NULL : &obj->items[i];
}
