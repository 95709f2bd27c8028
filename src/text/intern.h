/* src/text/intern.h: the tokenizer's tables: an interning table of byte strings (each distinct
 * string gets a small integer, its symbol) and a map from 64-bit keys to pairs of integers (BPE
 * merges: (left symbol, right symbol) -> (rank, merged symbol)). Open addressing, power-of-two
 * sizes, growing at half full. Not installed. */
#ifndef LDMCL_TEXT_INTERN_H
#define LDMCL_TEXT_INTERN_H

#include <stddef.h>
#include <stdint.h>

typedef struct ldm_intern {
    char **strings; /* by symbol */
    size_t *lengths;
    int count, cap;
    int *slots; /* symbol + 1, 0 = empty */
    size_t n_slots;
} ldm_intern;

/* The symbol of s[0..len), adding it when new; -1 when out of memory. */
int ldm_intern_add(ldm_intern *t, const char *s, size_t len);
/* The symbol of s[0..len), or -1. */
int ldm_intern_find(const ldm_intern *t, const char *s, size_t len);
void ldm_intern_free(ldm_intern *t);

typedef struct ldm_u64map {
    uint64_t *keys;
    int32_t *a, *b;
    unsigned char *used;
    size_t n_slots, count;
} ldm_u64map;

/* Sets key -> (a, b) (replacing); 0, or -1 when out of memory. */
int ldm_u64map_set(ldm_u64map *m, uint64_t key, int32_t a, int32_t b);
/* 1 and the values when key is present, else 0. */
int ldm_u64map_get(const ldm_u64map *m, uint64_t key, int32_t *a, int32_t *b);
void ldm_u64map_free(ldm_u64map *m);

#endif
