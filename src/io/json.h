/* src/io/json.h: a small strict JSON parser (RFC 8259) for safetensors headers and tokenizer
 * files: UTF-8 checked, duplicate keys rejected, nesting depth limited, integers kept exact;
 * objects of many keys hashed (src/io/json_index.c), so parsing and lookups stay linear. */
#ifndef LDMCL_IO_JSON_H
#define LDMCL_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum ldm_json_type {
    LDM_JSON_NULL,
    LDM_JSON_BOOL,
    LDM_JSON_NUMBER,
    LDM_JSON_STRING,
    LDM_JSON_ARRAY,
    LDM_JSON_OBJECT
} ldm_json_type;

typedef struct ldm_json_index ldm_json_index;

typedef struct ldm_json {
    ldm_json_type type;
    int boolean;
    double number;
    int is_integer; /* the number was written without fraction or exponent and fits int64 */
    int64_t integer;
    char *string; /* NUL-terminated UTF-8 (may contain NUL escapes: then use length) */
    size_t length;
    struct ldm_json *items; /* array elements or object values */
    char **keys;            /* object keys, same order as items */
    size_t count;
    ldm_json_index *index; /* objects of more than a few keys: the hash index of keys (or NULL) */
} ldm_json;

/* Parses text[0..len). On failure returns NULL and writes why, with a byte offset, into err. */
ldm_json *ldm_json_parse(const char *text, size_t len, char *err, size_t err_size);
void ldm_json_free(ldm_json *j);

/* Member of an object by key, or NULL. */
const ldm_json *ldm_json_get(const ldm_json *obj, const char *key);
/* Its position among the object's keys and items, or SIZE_MAX. */
size_t ldm_json_find(const ldm_json *obj, const char *key);

/* The index (json_index.c): adds position pos (keys[pos] its key, not yet in; *x created when
 * NULL); 0 when out of memory. Finds key's position among keys, or SIZE_MAX. */
int ldm_json_index_add(ldm_json_index **x, char *const *keys, size_t pos);
size_t ldm_json_index_find(const ldm_json_index *x, char *const *keys, const char *key);
void ldm_json_index_free(ldm_json_index *x);

#endif
