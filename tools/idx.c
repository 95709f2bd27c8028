/* tools/idx.c: the IDX reader (see idx.h), through zlib so that .gz files read directly. */
#include "idx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int read_all(gzFile f, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int idx_read(const char *path, int want_ndim, idx_file *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "%s: cannot open", path);
        return -1;
    }
    uint8_t head[4];
    int rc = -1;
    if (read_all(f, head, 4) != 0) {
        snprintf(err, err_size, "%s: too short for an IDX header", path);
    } else if (head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] != want_ndim) {
        snprintf(err, err_size,
                 "%s: not an IDX file of unsigned bytes with %d dimensions (magic %02x %02x %02x "
                 "%02x)",
                 path, want_ndim, head[0], head[1], head[2], head[3]);
    } else {
        out->ndim = want_ndim;
        out->count = 1;
        rc = 0;
        for (int d = 0; d < want_ndim && rc == 0; d++) {
            uint8_t b[4];
            if (read_all(f, b, 4) != 0) {
                snprintf(err, err_size, "%s: truncated header", path);
                rc = -1;
                break;
            }
            out->dims[d] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
            if (out->dims[d] == 0 || out->dims[d] > (1u << 24)) {
                snprintf(err, err_size, "%s: dimension %d is %u", path, d, out->dims[d]);
                rc = -1;
            }
            out->count *= out->dims[d];
        }
        if (rc == 0 && out->count > ((size_t)1 << 32)) {
            snprintf(err, err_size, "%s: %zu values is too many", path, out->count);
            rc = -1;
        }
        if (rc == 0) {
            out->data = malloc(out->count);
            if (!out->data) {
                snprintf(err, err_size, "%s: out of memory for %zu bytes", path, out->count);
                rc = -1;
            } else if (read_all(f, out->data, out->count) != 0) {
                snprintf(err, err_size, "%s: truncated: fewer than the %zu values its header gives",
                         path, out->count);
                rc = -1;
            }
        }
    }
    gzclose(f);
    if (rc != 0) idx_free(out);
    return rc;
}

void idx_free(idx_file *f) {
    free(f->data);
    memset(f, 0, sizeof *f);
}
