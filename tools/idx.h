/* tools/idx.h: reading the IDX files of MNIST and Fashion-MNIST (gzip-compressed or not):
 * idx3-ubyte images [n, rows, cols] and idx1-ubyte labels [n]. */
#ifndef LDMCL_TOOLS_IDX_H
#define LDMCL_TOOLS_IDX_H

#include <stddef.h>
#include <stdint.h>

typedef struct idx_file {
    int ndim;
    uint32_t dims[3];
    uint8_t *data; /* the bytes, row-major */
    size_t count;  /* product of dims */
} idx_file;

/* Reads path (transparently gunzipped). On failure returns -1 with a message naming the file in
 * err. want_ndim: 3 for images, 1 for labels. */
int idx_read(const char *path, int want_ndim, idx_file *out, char *err, size_t err_size);
void idx_free(idx_file *f);

#endif
