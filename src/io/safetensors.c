/* src/io/safetensors.c: strict safetensors reader (format: github.com/huggingface/safetensors,
 * README "Format"; validation as in its Metadata::validate). The writer (safetensors_write.c)
 * puts the SHA-256 of the data section into the metadata (ldmcl.sha256); the reader checks it
 * when present, so a damaged file is an error, not silently wrong weights. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "json.h"
#include "ldmcl/safetensors.h"
#include "safetensors_internal.h"
#include "sha256.h"

#define MAX_HEADER 100000000ull

struct ldm_safetensors {
    char *path;
    const unsigned char *map;
    size_t size;
    uint64_t data_start;
    ldm_json *header;
    ldm_st_tensor *tensors;
    size_t n;
    const ldm_json *metadata;
    size_t metadata_pos; /* position of __metadata__ in the header, SIZE_MAX when absent */
};

static const struct {
    const char *name;
    int bits;
} dtypes[] = {
    [LDM_DTYPE_BOOL] = {"BOOL", 8},       [LDM_DTYPE_U8] = {"U8", 8},
    [LDM_DTYPE_I8] = {"I8", 8},           [LDM_DTYPE_F8_E5M2] = {"F8_E5M2", 8},
    [LDM_DTYPE_F8_E4M3] = {"F8_E4M3", 8}, [LDM_DTYPE_F8_E8M0] = {"F8_E8M0", 8},
    [LDM_DTYPE_F6_E2M3] = {"F6_E2M3", 6}, [LDM_DTYPE_F6_E3M2] = {"F6_E3M2", 6},
    [LDM_DTYPE_I16] = {"I16", 16},        [LDM_DTYPE_U16] = {"U16", 16},
    [LDM_DTYPE_F16] = {"F16", 16},        [LDM_DTYPE_BF16] = {"BF16", 16},
    [LDM_DTYPE_I32] = {"I32", 32},        [LDM_DTYPE_U32] = {"U32", 32},
    [LDM_DTYPE_F32] = {"F32", 32},        [LDM_DTYPE_C64] = {"C64", 64},
    [LDM_DTYPE_F64] = {"F64", 64},        [LDM_DTYPE_I64] = {"I64", 64},
    [LDM_DTYPE_U64] = {"U64", 64},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *ldm_dtype_name(ldm_dtype d) {
    return (size_t)d < N_DTYPES ? dtypes[d].name : "?";
}

static int dtype_from_name(const char *s, ldm_dtype *d) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(dtypes[i].name, s) == 0) {
            *d = (ldm_dtype)i;
            return 1;
        }
    return 0;
}

void ldm_safetensors_close(ldm_safetensors *st) {
    if (!st) return;
    if (st->map) munmap((void *)st->map, st->size);
    ldm_json_free(st->header);
    free(st->tensors);
    free(st->path);
    free(st);
}

static int by_begin(const void *a, const void *b) {
    const ldm_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

#define BAD(...) LDM_FAIL(LDM_ERR_FORMAT, __VA_ARGS__)

/* Parses one header entry into t. */
static ldm_status parse_entry(const char *path, const char *name, const ldm_json *v,
                              ldm_st_tensor *t) {
    t->name = name;
    if (v->type != LDM_JSON_OBJECT)
        return BAD("safetensors file '%s': tensor '%s': header entry is not an object", path, name);
    const ldm_json *dt = ldm_json_get(v, "dtype"), *sh = ldm_json_get(v, "shape");
    const ldm_json *off = ldm_json_get(v, "data_offsets");
    if (!dt || !sh || !off || v->count != 3)
        return BAD("safetensors file '%s': tensor '%s': entry must have exactly dtype, shape and "
                   "data_offsets",
                   path, name);
    if (dt->type != LDM_JSON_STRING || !dtype_from_name(dt->string, &t->dtype))
        return BAD("safetensors file '%s': tensor '%s': unknown dtype '%s'", path, name,
                   dt->type == LDM_JSON_STRING ? dt->string : "(not a string)");
    if (sh->type != LDM_JSON_ARRAY || sh->count > LDM_ST_MAX_DIMS)
        return BAD("safetensors file '%s': tensor '%s': shape must be a list of at most %d sizes",
                   path, name, LDM_ST_MAX_DIMS);
    t->ndim = (int)sh->count;
    uint64_t numel = 1;
    for (size_t i = 0; i < sh->count; i++) {
        const ldm_json *d = &sh->items[i];
        if (d->type != LDM_JSON_NUMBER || !d->is_integer || d->integer < 0)
            return BAD("safetensors file '%s': tensor '%s': shape[%zu] is not a size", path, name,
                       i);
        t->shape[i] = d->integer;
        if (d->integer != 0 && numel > UINT64_MAX / (uint64_t)d->integer)
            return BAD("safetensors file '%s': tensor '%s': shape overflows", path, name);
        numel *= (uint64_t)d->integer;
    }
    t->numel = numel;
    if (off->type != LDM_JSON_ARRAY || off->count != 2)
        return BAD("safetensors file '%s': tensor '%s': data_offsets must be [begin, end]", path,
                   name);
    for (int i = 0; i < 2; i++)
        if (off->items[i].type != LDM_JSON_NUMBER || !off->items[i].is_integer ||
            off->items[i].integer < 0)
            return BAD("safetensors file '%s': tensor '%s': data_offsets are not byte offsets",
                       path, name);
    t->begin = (uint64_t)off->items[0].integer;
    t->end = (uint64_t)off->items[1].integer;
    if (t->end < t->begin)
        return BAD("safetensors file '%s': tensor '%s': data_offsets end before they begin", path,
                   name);
    int bits = dtypes[t->dtype].bits;
    if (numel > UINT64_MAX / (uint64_t)bits)
        return BAD("safetensors file '%s': tensor '%s': size overflows", path, name);
    uint64_t nbits = numel * (uint64_t)bits;
    if (nbits % 8)
        return BAD("safetensors file '%s': tensor '%s': %s data does not fill whole bytes", path,
                   name, dtypes[t->dtype].name);
    if (nbits / 8 != t->end - t->begin)
        return BAD("safetensors file '%s': tensor '%s': shape and dtype give %llu bytes, "
                   "data_offsets %llu",
                   path, name, (unsigned long long)(nbits / 8),
                   (unsigned long long)(t->end - t->begin));
    return LDM_OK;
}

/* The data section against the SHA-256 ldmcl wrote into the metadata, when there is one (files
 * of other writers, and of ldmcl before it wrote one, have none). */
static ldm_status check_sha256(const ldm_safetensors *st) {
    const ldm_json *want = ldm_json_get(st->metadata, SHA256_KEY);
    if (!want) return LDM_OK;
    int hex = want->length == 64;
    for (size_t i = 0; hex && i < 64; i++)
        hex = (want->string[i] >= '0' && want->string[i] <= '9') ||
              (want->string[i] >= 'a' && want->string[i] <= 'f');
    if (!hex)
        return BAD("safetensors file '%s': metadata %s is not 64 lower-case hex digits (the file "
                   "is damaged)",
                   st->path, SHA256_KEY);
    ldm_sha256 sha;
    unsigned char digest[32];
    char got[65];
    ldm_sha256_init(&sha);
    ldm_sha256_update(&sha, st->map + st->data_start, st->size - (size_t)st->data_start);
    ldm_sha256_final(&sha, digest);
    ldm_sha256_hex(digest, got);
    if (memcmp(got, want->string, 64) != 0)
        return BAD("safetensors file '%s': the tensor data do not match its SHA-256 (the file is "
                   "damaged: bit flip or partial copy)",
                   st->path);
    return LDM_OK;
}

static ldm_status validate(ldm_safetensors *st) {
    const char *path = st->path;
    if (st->size < 8)
        return BAD("safetensors file '%s' is %zu bytes: too small for a header (truncated?)", path,
                   st->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | st->map[i];
    if (n > MAX_HEADER)
        return BAD("safetensors file '%s': header of %llu bytes is over the %llu limit (not a "
                   "safetensors file?)",
                   path, (unsigned long long)n, MAX_HEADER);
    if (n > st->size - 8)
        return BAD("safetensors file '%s': header of %llu bytes but the file has %zu (truncated?)",
                   path, (unsigned long long)n, st->size);
    const char *text = (const char *)st->map + 8;
    if (n == 0 || text[0] != '{')
        return BAD("safetensors file '%s': the header does not start with '{'", path);
    char err[128];
    st->header = ldm_json_parse(text, (size_t)n, err, sizeof err);
    if (!st->header) return BAD("safetensors file '%s': invalid header JSON: %s", path, err);
    if (st->header->type != LDM_JSON_OBJECT)
        return BAD("safetensors file '%s': the header is not a JSON object", path);
    st->data_start = 8 + n;
    st->metadata_pos = SIZE_MAX;
    st->tensors = calloc(st->header->count ? st->header->count : 1, sizeof *st->tensors);
    if (!st->tensors) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    for (size_t i = 0; i < st->header->count; i++) {
        const char *key = st->header->keys[i];
        const ldm_json *v = &st->header->items[i];
        if (strcmp(key, "__metadata__") == 0) {
            if (v->type != LDM_JSON_OBJECT)
                return BAD("safetensors file '%s': __metadata__ is not an object", path);
            for (size_t k = 0; k < v->count; k++)
                if (v->items[k].type != LDM_JSON_STRING)
                    return BAD("safetensors file '%s': __metadata__ value '%s' is not a string",
                               path, v->keys[k]);
            st->metadata = v;
            st->metadata_pos = i;
            continue;
        }
        LDM_TRY(parse_entry(path, key, v, &st->tensors[st->n]));
        st->n++;
    }
    /* The tensors must tile the data buffer exactly. */
    ldm_st_tensor *sorted = malloc((st->n ? st->n : 1) * sizeof *sorted);
    if (!sorted) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    memcpy(sorted, st->tensors, st->n * sizeof *sorted);
    qsort(sorted, st->n, sizeof *sorted, by_begin);
    uint64_t expect = 0;
    ldm_status s = LDM_OK;
    for (size_t i = 0; i < st->n && s == LDM_OK; i++) {
        if (sorted[i].begin != expect)
            s = BAD("safetensors file '%s': tensor '%s' begins at byte %llu, expected %llu (gap "
                    "or overlap in data_offsets)",
                    path, sorted[i].name, (unsigned long long)sorted[i].begin,
                    (unsigned long long)expect);
        expect = sorted[i].end;
    }
    free(sorted);
    if (s != LDM_OK) return s;
    if (st->data_start + expect != st->size)
        return BAD("safetensors file '%s': header and tensors take %llu bytes but the file has "
                   "%zu (%s)",
                   path, (unsigned long long)(st->data_start + expect), st->size,
                   st->data_start + expect > st->size ? "truncated" : "trailing data");
    return check_sha256(st);
}

ldm_status ldm_safetensors_open(const char *path, ldm_safetensors **out) {
    *out = NULL;
    ldm_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = ldm_strdup(path))) {
        free(st);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block the open */
    if (fd < 0) {
        ldm_status s = LDM_FAIL(errno == ENOENT ? LDM_ERR_NOT_FOUND : LDM_ERR_IO,
                                "cannot open safetensors file '%s': %s", path, strerror(errno));
        ldm_safetensors_close(st);
        return s;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        ldm_safetensors_close(st);
        return LDM_FAIL(LDM_ERR_IO, "'%s' is not a regular file", path);
    }
    st->size = (size_t)sb.st_size;
    if (st->size > 0) {
        void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            ldm_status s = LDM_FAIL(LDM_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
            close(fd);
            ldm_safetensors_close(st);
            return s;
        }
        st->map = m;
    }
    close(fd);
    ldm_status s = validate(st);
    if (s != LDM_OK) {
        ldm_safetensors_close(st);
        return s;
    }
    *out = st;
    return LDM_OK;
}

size_t ldm_safetensors_count(const ldm_safetensors *st) {
    return st->n;
}

const ldm_st_tensor *ldm_safetensors_at(const ldm_safetensors *st, size_t i) {
    return i < st->n ? &st->tensors[i] : NULL;
}

/* Through the header's hash index: the tensors are the header's entries in order, less
 * __metadata__. */
const ldm_st_tensor *ldm_safetensors_find(const ldm_safetensors *st, const char *name) {
    size_t i = ldm_json_find(st->header, name);
    if (i == SIZE_MAX || i == st->metadata_pos) return NULL;
    return &st->tensors[i > st->metadata_pos ? i - 1 : i];
}

const char *ldm_safetensors_metadata(const ldm_safetensors *st, const char *key) {
    const ldm_json *v = ldm_json_get(st->metadata, key);
    return v ? v->string : NULL;
}

ldm_status ldm_safetensors_metadata_u64(const ldm_safetensors *st, const char *key, uint64_t *out) {
    const char *v = ldm_safetensors_metadata(st, key);
    if (!v) return LDM_FAIL(LDM_ERR_FORMAT, "'%s' has no metadata %s", st->path, key);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);  /* which skips spaces and takes a sign: */
    if (v[0] < '0' || v[0] > '9' || *end || errno) /* " -1" would be 2^64 - 1 */
        return LDM_FAIL(LDM_ERR_FORMAT, "'%s': metadata %s = '%s' is not a whole number", st->path,
                        key, v);
    *out = x;
    return LDM_OK;
}

const char *ldm_safetensors_path(const ldm_safetensors *st) {
    return st->path;
}

static float half_to_float(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 0x400), exp - 25);
    return sign ? -v : v;
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

ldm_status ldm_safetensors_read_f32(const ldm_safetensors *st, const ldm_st_tensor *t, float *dst) {
    const unsigned char *p = st->map + st->data_start + t->begin;
    for (uint64_t i = 0; i < t->numel; i++) {
        switch (t->dtype) {
        case LDM_DTYPE_F32: {
            uint32_t b = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                         (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            memcpy(&dst[i], &b, 4);
            break;
        }
        case LDM_DTYPE_F16:
            dst[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
            break;
        case LDM_DTYPE_BF16:
            dst[i] = bf16_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
            break;
        case LDM_DTYPE_F64: {
            uint64_t b = 0;
            double d;
            for (int k = 7; k >= 0; k--)
                b = b << 8 | p[8 * i + (uint64_t)k];
            memcpy(&d, &b, 8);
            dst[i] = (float)d;
            break;
        }
        case LDM_DTYPE_I32: {
            uint32_t b = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                         (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            dst[i] = (float)(int32_t)b;
            break;
        }
        case LDM_DTYPE_I64: {
            uint64_t b = 0;
            for (int k = 7; k >= 0; k--)
                b = b << 8 | p[8 * i + (uint64_t)k];
            dst[i] = (float)(int64_t)b;
            break;
        }
        default:
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "safetensors file '%s': tensor '%s' is %s, which ldmcl does not read "
                            "(F32, F16, BF16, F64, I32, I64)",
                            st->path, t->name, ldm_dtype_name(t->dtype));
        }
    }
    return LDM_OK;
}
