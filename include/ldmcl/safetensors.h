/* ldmcl/safetensors.h: reading and writing safetensors files.
 *
 * The reader validates as strictly as the format's reference parser: the header length (8 bytes,
 * little-endian, at most 100,000,000), the header as UTF-8 JSON starting with '{', known dtype
 * names, shapes against byte ranges (overflow-checked), offsets that tile the data buffer with no
 * gap and no overlap, and a file length that is exactly header + data. Every error names the file
 * and, where there is one, the tensor. F32, F16 and BF16 (and F64, I32, I64) read into F32.
 * The writer writes F32 to a temporary file and renames it into place, with the SHA-256 of the
 * data section (every byte after the header) in the metadata as ldmcl.sha256 (lower-case hex);
 * the reader checks it when a file has one, so a bit flip or a partial copy is an error. */
#ifndef LDMCL_SAFETENSORS_H
#define LDMCL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ldm_dtype {
    LDM_DTYPE_BOOL,
    LDM_DTYPE_U8,
    LDM_DTYPE_I8,
    LDM_DTYPE_F8_E5M2,
    LDM_DTYPE_F8_E4M3,
    LDM_DTYPE_F8_E8M0,
    LDM_DTYPE_F6_E2M3,
    LDM_DTYPE_F6_E3M2,
    LDM_DTYPE_I16,
    LDM_DTYPE_U16,
    LDM_DTYPE_F16,
    LDM_DTYPE_BF16,
    LDM_DTYPE_I32,
    LDM_DTYPE_U32,
    LDM_DTYPE_F32,
    LDM_DTYPE_C64,
    LDM_DTYPE_F64,
    LDM_DTYPE_I64,
    LDM_DTYPE_U64
} ldm_dtype;

#define LDM_ST_MAX_DIMS 8

typedef struct ldm_st_tensor {
    const char *name;
    ldm_dtype dtype;
    int ndim;
    int64_t shape[LDM_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; /* byte range within the data buffer */
} ldm_st_tensor;

typedef struct ldm_safetensors ldm_safetensors;

/* Opens and validates a file (memory-mapped, read-only). */
ldm_status ldm_safetensors_open(const char *path, ldm_safetensors **out);
void ldm_safetensors_close(ldm_safetensors *st);

size_t ldm_safetensors_count(const ldm_safetensors *st);
const ldm_st_tensor *ldm_safetensors_at(const ldm_safetensors *st, size_t i);
const ldm_st_tensor *ldm_safetensors_find(const ldm_safetensors *st, const char *name);
/* A value of the __metadata__ map, or NULL. */
const char *ldm_safetensors_metadata(const ldm_safetensors *st, const char *key);
/* The metadata value of key as a whole decimal number (a step, a count), digits only:
 * LDM_ERR_FORMAT naming the file and the key when it is missing or not one (a sign, spaces, or
 * more than 2^64 - 1). */
ldm_status ldm_safetensors_metadata_u64(const ldm_safetensors *st, const char *key, uint64_t *out);
const char *ldm_safetensors_path(const ldm_safetensors *st);
const char *ldm_dtype_name(ldm_dtype d);

/* Converts a tensor to float32 into dst (numel floats). Fails, naming the file and tensor, for
 * dtypes that do not convert. */
ldm_status ldm_safetensors_read_f32(const ldm_safetensors *st, const ldm_st_tensor *t, float *dst);

/* One tensor to write. */
typedef struct ldm_st_entry {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} ldm_st_entry;

/* Writes F32 tensors (names unique) and string metadata (NULL-terminated pairs, may be NULL)
 * atomically: a temporary file next to path, fsync, rename. The metadata gets ldmcl.sha256 too;
 * passing that key is LDM_ERR_INVALID_ARGUMENT. */
ldm_status ldm_safetensors_write(const char *path, const ldm_st_entry *entries, size_t n,
                                 const char *const *metadata_pairs);

/* The SHA-256 of a whole file as 64 lower-case hex digits (A1111's "Model hash" is the first
 * 10 of its model file's). */
ldm_status ldm_file_sha256(const char *path, char hex[65]);

#ifdef __cplusplus
}
#endif
#endif
