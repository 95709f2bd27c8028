/* src/io/file_hash.c: the SHA-256 of a whole file (ldmcl/safetensors.h), as A1111 hashes a model
 * for its "Model hash" (the first 10 hex digits). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "ldmcl/safetensors.h"
#include "sha256.h"

ldm_status ldm_file_sha256(const char *path, char hex[65]) {
    hex[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return LDM_FAIL(LDM_ERR_NOT_FOUND, "cannot open '%s': %s", path, strerror(errno));
    ldm_sha256 s;
    ldm_sha256_init(&s);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        ldm_sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return LDM_FAIL(LDM_ERR_IO, "cannot read '%s'", path);
    unsigned char digest[32];
    ldm_sha256_final(&s, digest);
    ldm_sha256_hex(digest, hex);
    return LDM_OK;
}
