/* src/io/safetensors_write.c: the atomic float32 safetensors writer (temporary file, fsync,
 * rename), with the data section's SHA-256 in the metadata (ldmcl.sha256) for the reader to
 * check (safetensors.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/safetensors.h"
#include "safetensors_internal.h"
#include "sha256.h"

/* Appends s to the growing buffer *b, JSON-escaped when quote is set. */
static int append(char **b, size_t *len, size_t *cap, const char *s, int quote) {
    size_t need = strlen(s) * 6 + 3;
    if (*len + need + 1 > *cap) {
        size_t c = (*cap ? *cap : 1024);
        while (c < *len + need + 1)
            c *= 2;
        char *g = realloc(*b, c);
        if (!g) return 0;
        *b = g;
        *cap = c;
    }
    if (quote) (*b)[(*len)++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (!quote)
            (*b)[(*len)++] = (char)*p;
        else if (*p == '"' || *p == '\\') {
            (*b)[(*len)++] = '\\';
            (*b)[(*len)++] = (char)*p;
        } else if (*p < 0x20)
            *len += (size_t)snprintf(*b + *len, 7, "\\u%04x", *p);
        else
            (*b)[(*len)++] = (char)*p;
    }
    if (quote) (*b)[(*len)++] = '"';
    (*b)[*len] = '\0';
    return 1;
}

/* The data section as written: each entry's floats little-endian, in order, handed to put in
 * pieces; 0 when put fails. */
static int put_data(const ldm_st_entry *entries, size_t n,
                    int (*put)(void *user, const unsigned char *p, size_t len), void *user) {
    unsigned char buf[1 << 14];
    size_t fill = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < entries[i].ndim; d++)
            numel *= (uint64_t)entries[i].shape[d];
        for (uint64_t k = 0; k < numel; k++) {
            uint32_t b;
            memcpy(&b, &entries[i].data[k], 4);
            buf[fill] = (unsigned char)b, buf[fill + 1] = (unsigned char)(b >> 8);
            buf[fill + 2] = (unsigned char)(b >> 16), buf[fill + 3] = (unsigned char)(b >> 24);
            fill += 4;
            if (fill == sizeof buf) {
                if (!put(user, buf, fill)) return 0;
                fill = 0;
            }
        }
    }
    return fill == 0 || put(user, buf, fill);
}

static int hash_piece(void *user, const unsigned char *p, size_t len) {
    ldm_sha256_update(user, p, len);
    return 1;
}

static int write_piece(void *user, const unsigned char *p, size_t len) {
    return ldm_atomic_write(user, p, len);
}

ldm_status ldm_safetensors_write(const char *path, const ldm_st_entry *entries, size_t n,
                                 const char *const *metadata_pairs) {
    for (size_t i = 0; metadata_pairs && metadata_pairs[i] && metadata_pairs[i + 1]; i += 2)
        if (strcmp(metadata_pairs[i], SHA256_KEY) == 0)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "writing '%s': the metadata key %s is ldmcl's own (the checksum of "
                            "the data, computed when writing): do not pass it",
                            path, SHA256_KEY);
    /* The checksum goes into the header, which comes first: a pass over the data for it. */
    ldm_sha256 sha;
    unsigned char digest[32];
    char hex[65];
    ldm_sha256_init(&sha);
    put_data(entries, n, hash_piece, &sha);
    ldm_sha256_final(&sha, digest);
    ldm_sha256_hex(digest, hex);

    char *h = NULL;
    size_t len = 0, cap = 0;
    int ok = append(&h, &len, &cap, "{\"__metadata__\":{", 0);
    for (size_t i = 0; ok && metadata_pairs && metadata_pairs[i] && metadata_pairs[i + 1]; i += 2)
        ok = append(&h, &len, &cap, metadata_pairs[i], 1) && append(&h, &len, &cap, ":", 0) &&
             append(&h, &len, &cap, metadata_pairs[i + 1], 1) && append(&h, &len, &cap, ",", 0);
    ok = ok && append(&h, &len, &cap, SHA256_KEY, 1) && append(&h, &len, &cap, ":", 0) &&
         append(&h, &len, &cap, hex, 1) && append(&h, &len, &cap, "}", 0);
    uint64_t offset = 0;
    for (size_t i = 0; ok && i < n; i++) {
        char num[64];
        ok = append(&h, &len, &cap, ",", 0) && append(&h, &len, &cap, entries[i].name, 1) &&
             append(&h, &len, &cap, ":{\"dtype\":\"F32\",\"shape\":[", 0);
        uint64_t numel = 1;
        for (int d = 0; ok && d < entries[i].ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)entries[i].shape[d]);
            ok = append(&h, &len, &cap, num, 0);
            numel *= (uint64_t)entries[i].shape[d];
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                 (unsigned long long)(offset + numel * 4));
        ok = ok && append(&h, &len, &cap, num, 0);
        offset += numel * 4;
    }
    ok = ok && append(&h, &len, &cap, "}", 0);
    /* Pad the header with spaces so the data starts 8-aligned. */
    while (ok && (8 + len) % 8)
        ok = append(&h, &len, &cap, " ", 0);
    if (!ok) {
        free(h);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory writing '%s'", path);
    }
    ldm_atomic_file a;
    ldm_status st = ldm_atomic_open(&a, path);
    if (st != LDM_OK) {
        free(h);
        return st;
    }
    unsigned char hl[8];
    for (int i = 0; i < 8; i++)
        hl[i] = (unsigned char)((uint64_t)len >> (8 * i));
    ok = ldm_atomic_write(&a, hl, 8) && ldm_atomic_write(&a, h, len);
    free(h);
    ok = ok && put_data(entries, n, write_piece, &a);
    return ldm_atomic_commit(&a, ok);
}
