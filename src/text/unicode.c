/* src/text/unicode.c: UTF-8, properties, lowercase and NFC (see unicode.h). */
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

int ldm_u32s_push(ldm_u32s *a, uint32_t cp) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        uint32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = cp;
    return 0;
}

void ldm_u32s_free(ldm_u32s *a) {
    free(a->v);
    memset(a, 0, sizeof *a);
}

int ldm_utf8_decode(const char *s, size_t len, ldm_u32s *out, size_t *bad_offset) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t c = p[i], cp;
        int extra;
        if (c < 0x80) {
            cp = c;
            extra = 0;
        } else if (c >= 0xC2 && c <= 0xDF) {
            cp = c & 0x1F;
            extra = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            cp = c & 0x0F;
            extra = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            cp = c & 0x07;
            extra = 3;
        } else {
            *bad_offset = i;
            return -2;
        }
        for (int k = 1; k <= extra; k++) {
            if (i + (size_t)k >= len || (p[i + k] & 0xC0) != 0x80) {
                *bad_offset = i;
                return -2;
            }
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            *bad_offset = i;
            return -2;
        }
        if (ldm_u32s_push(out, cp) != 0) return -1;
        i += (size_t)extra + 1;
    }
    return 0;
}

int ldm_utf8_encode(uint32_t cp, char *buf) {
    if (cp < 0x80) {
        buf[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (char)(0xC0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (char)(0xF0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The range of a sorted range table that holds cp, or NULL. */
static const ldm_uc_range *find_range(const ldm_uc_range *t, int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < t[mid].first)
            hi = mid - 1;
        else if (cp > t[mid].last)
            lo = mid + 1;
        else
            return &t[mid];
    }
    return NULL;
}

uint8_t ldm_uc_props(uint32_t cp) {
    const ldm_uc_range *r = find_range(ldm_uc_ranges, ldm_uc_range_count, cp);
    return r ? r->value : 0;
}

static int ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    const ldm_uc_range *r = find_range(ldm_uc_ccc, ldm_uc_ccc_count, cp);
    return r ? r->value : 0;
}

/* The simple lowercase of cp (itself when it has none). */
static uint32_t lower1(uint32_t cp) {
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    int lo = 0, hi = ldm_uc_lower_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (ldm_uc_lower[mid].from == cp) return ldm_uc_lower[mid].to;
        if (ldm_uc_lower[mid].from < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return cp;
}

/* Python's Final_Sigma: a cased letter before (skipping case-ignorables) and none after. */
static int final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    uint8_t p = 0;
    int found = 0;
    while (j > 0) {
        p = ldm_uc_props(s[--j]);
        if (!(p & LDM_UC_CASE_IGNORABLE)) {
            found = 1;
            break;
        }
    }
    if (!found || !(p & LDM_UC_CASED)) return 0;
    for (j = i + 1; j < n; j++) {
        p = ldm_uc_props(s[j]);
        if (!(p & LDM_UC_CASE_IGNORABLE)) return !(p & LDM_UC_CASED);
    }
    return 1;
}

int ldm_uc_lower_all(const uint32_t *in, size_t n, ldm_u32s *out) {
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        if (cp == 0x3A3) {
            if (ldm_u32s_push(out, final_sigma(in, n, i) ? 0x3C2 : 0x3C3) != 0) return -1;
            continue;
        }
        int multi = 0;
        for (int k = 0; k < ldm_uc_lower_multi_count && cp >= 0x80; k++)
            if (ldm_uc_lower_multi[k].from == cp) {
                for (int q = 0; q < ldm_uc_lower_multi[k].count; q++)
                    if (ldm_u32s_push(out, ldm_uc_lower_multi[k].to[q]) != 0) return -1;
                multi = 1;
            }
        if (!multi && ldm_u32s_push(out, lower1(cp)) != 0) return -1;
    }
    return 0;
}

/* Hangul syllables (Unicode 3.12): algorithmic decomposition and composition. */
enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7 };
enum { L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT };
enum { S_COUNT = L_COUNT * N_COUNT };

static int decompose(uint32_t cp, ldm_u32s *out) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        if (ldm_u32s_push(out, L_BASE + s / N_COUNT) != 0 ||
            ldm_u32s_push(out, V_BASE + (s % N_COUNT) / T_COUNT) != 0)
            return -1;
        return s % T_COUNT ? ldm_u32s_push(out, T_BASE + s % T_COUNT) : 0;
    }
    if (cp >= 0xC0) {
        int lo = 0, hi = ldm_uc_decomp_count - 1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            if (ldm_uc_decomps[mid].cp == cp) {
                for (int k = 0; k < ldm_uc_decomps[mid].count; k++)
                    if (ldm_u32s_push(out, ldm_uc_decomp_pool[ldm_uc_decomps[mid].offset + k]) != 0)
                        return -1;
                return 0;
            }
            if (ldm_uc_decomps[mid].cp < cp)
                lo = mid + 1;
            else
                hi = mid - 1;
        }
    }
    return ldm_u32s_push(out, cp);
}

/* The primary composite of (a, b), or 0. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    int lo = 0, hi = ldm_uc_compose_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const ldm_uc_compose *c = &ldm_uc_composes[mid];
        if (c->first == a && c->second == b) return c->composite;
        if (c->first < a || (c->first == a && c->second < b))
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

static int by_key(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Canonical ordering: each run of non-starters sorted by combining class, stably. A short run by
 * insertion; a long one by sorting (class, position, code point) keys, so that a run of n marks
 * costs n log n, not n^2. 0, or -1 when out of memory. */
static int order_marks(uint32_t *d, size_t m) {
    uint64_t *keys = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < m;) {
        if (ccc(d[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < m && ccc(d[j]) != 0)
            j++;
        size_t len = j - i;
        if (len <= 16) {
            for (size_t a = i + 1; a < j; a++) {
                int ca = ccc(d[a]);
                for (size_t b = a; b > i && ccc(d[b - 1]) > ca; b--) {
                    uint32_t t = d[b];
                    d[b] = d[b - 1];
                    d[b - 1] = t;
                }
            }
        } else {
            if (len > cap) {
                uint64_t *grown = realloc(keys, len * sizeof *keys);
                if (!grown) {
                    free(keys);
                    return -1;
                }
                keys = grown;
                cap = len;
            }
            /* class (8 bits) | position in the run (32 bits) | code point (21 bits) */
            for (size_t k = 0; k < len; k++)
                keys[k] = (uint64_t)ccc(d[i + k]) << 53 | (uint64_t)k << 21 | d[i + k];
            qsort(keys, len, sizeof *keys, by_key);
            for (size_t k = 0; k < len; k++)
                d[i + k] = (uint32_t)(keys[k] & 0x1FFFFF);
        }
        i = j;
    }
    free(keys);
    return 0;
}

int ldm_uc_nfc(const uint32_t *in, size_t n, ldm_u32s *out) {
    out->n = 0;
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++)
        ascii = in[i] < 0x80;
    if (ascii) { /* ASCII is its own NFC */
        for (size_t i = 0; i < n; i++)
            if (ldm_u32s_push(out, in[i]) != 0) return -1;
        return 0;
    }
    /* Full canonical decomposition, then canonical ordering. */
    for (size_t i = 0; i < n; i++)
        if (decompose(in[i], out) != 0) return -1;
    uint32_t *d = out->v;
    size_t m = out->n;
    if (order_marks(d, m) != 0) return -1;
    /* Canonical composition: a character joins the last starter when nothing between them is
     * kept (adjacent) or the last kept one has a lower, non-zero combining class. */
    size_t w = 0, starter = (size_t)-1;
    int last_ccc = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t c = d[i];
        int cc = ccc(c);
        if (starter != (size_t)-1 && (w == starter + 1 || (last_ccc != 0 && last_ccc < cc))) {
            uint32_t comp = compose(d[starter], c);
            if (comp) {
                d[starter] = comp;
                continue;
            }
        }
        if (cc == 0) {
            starter = w;
            last_ccc = 0;
        } else {
            last_ccc = cc;
        }
        d[w++] = c;
    }
    out->n = w;
    return 0;
}
