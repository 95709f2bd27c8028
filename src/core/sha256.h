/* src/core/sha256.h: SHA-256 (FIPS 180-4), used to key and check binary kernel cache files. */
#ifndef LDMCL_CORE_SHA256_H
#define LDMCL_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct ldm_sha256 {
    uint32_t h[8];
    uint64_t length; /* bytes hashed so far */
    unsigned char block[64];
    size_t fill;
} ldm_sha256;

void ldm_sha256_init(ldm_sha256 *s);
void ldm_sha256_update(ldm_sha256 *s, const void *data, size_t n);
void ldm_sha256_final(ldm_sha256 *s, unsigned char digest[32]);

/* Hashes a field with its length first, so that fields cannot run into each other. */
void ldm_sha256_field(ldm_sha256 *s, const void *data, size_t n);

/* 64 lowercase hex digits and a NUL. */
void ldm_sha256_hex(const unsigned char digest[32], char hex[65]);

#endif
