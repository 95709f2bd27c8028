/* src/text/intern.c: string interning and a 64-bit-keyed map (see intern.h). */
#include "intern.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t find_slot(const ldm_intern *t, const char *s, size_t len) {
    size_t mask = t->n_slots - 1, i = (size_t)hash_bytes(s, len) & mask;
    while (t->slots[i]) {
        int sym = t->slots[i] - 1;
        if (t->lengths[sym] == len && memcmp(t->strings[sym], s, len) == 0) return i;
        i = (i + 1) & mask;
    }
    return i;
}

static int grow_slots(ldm_intern *t) {
    size_t n = t->n_slots ? 2 * t->n_slots : 1024;
    int *slots = calloc(n, sizeof *slots);
    if (!slots) return -1;
    free(t->slots);
    t->slots = slots;
    t->n_slots = n;
    for (int sym = 0; sym < t->count; sym++)
        t->slots[find_slot(t, t->strings[sym], t->lengths[sym])] = sym + 1;
    return 0;
}

int ldm_intern_find(const ldm_intern *t, const char *s, size_t len) {
    if (!t->n_slots) return -1;
    size_t i = find_slot(t, s, len);
    return t->slots[i] ? t->slots[i] - 1 : -1;
}

int ldm_intern_add(ldm_intern *t, const char *s, size_t len) {
    int found = ldm_intern_find(t, s, len);
    if (found >= 0) return found;
    if (2 * ((size_t)t->count + 1) > t->n_slots && grow_slots(t) != 0) return -1;
    if (t->count == t->cap) {
        int cap = t->cap ? 2 * t->cap : 1024;
        char **strings = realloc(t->strings, (size_t)cap * sizeof *strings);
        if (!strings) return -1;
        t->strings = strings;
        size_t *lengths = realloc(t->lengths, (size_t)cap * sizeof *lengths);
        if (!lengths) return -1;
        t->lengths = lengths;
        t->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, s, len);
    copy[len] = 0;
    int sym = t->count++;
    t->strings[sym] = copy;
    t->lengths[sym] = len;
    t->slots[find_slot(t, s, len)] = sym + 1;
    return sym;
}

void ldm_intern_free(ldm_intern *t) {
    for (int i = 0; i < t->count; i++)
        free(t->strings[i]);
    free(t->strings);
    free(t->lengths);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static size_t map_slot(const ldm_u64map *m, uint64_t key) {
    size_t mask = m->n_slots - 1, i = (size_t)hash_u64(key) & mask;
    while (m->used[i] && m->keys[i] != key)
        i = (i + 1) & mask;
    return i;
}

static int map_grow(ldm_u64map *m) {
    ldm_u64map bigger = {0};
    bigger.n_slots = m->n_slots ? 2 * m->n_slots : 1024;
    bigger.keys = malloc(bigger.n_slots * sizeof *bigger.keys);
    bigger.a = malloc(bigger.n_slots * sizeof *bigger.a);
    bigger.b = malloc(bigger.n_slots * sizeof *bigger.b);
    bigger.used = calloc(bigger.n_slots, 1);
    if (!bigger.keys || !bigger.a || !bigger.b || !bigger.used) {
        ldm_u64map_free(&bigger);
        return -1;
    }
    for (size_t i = 0; i < m->n_slots; i++)
        if (m->used[i]) {
            size_t j = map_slot(&bigger, m->keys[i]);
            bigger.used[j] = 1;
            bigger.keys[j] = m->keys[i];
            bigger.a[j] = m->a[i];
            bigger.b[j] = m->b[i];
            bigger.count++;
        }
    ldm_u64map_free(m);
    *m = bigger;
    return 0;
}

int ldm_u64map_set(ldm_u64map *m, uint64_t key, int32_t a, int32_t b) {
    if (2 * (m->count + 1) > m->n_slots && map_grow(m) != 0) return -1;
    size_t i = map_slot(m, key);
    if (!m->used[i]) {
        m->used[i] = 1;
        m->keys[i] = key;
        m->count++;
    }
    m->a[i] = a;
    m->b[i] = b;
    return 0;
}

int ldm_u64map_get(const ldm_u64map *m, uint64_t key, int32_t *a, int32_t *b) {
    if (!m->n_slots) return 0;
    size_t i = map_slot(m, key);
    if (!m->used[i]) return 0;
    *a = m->a[i];
    *b = m->b[i];
    return 1;
}

void ldm_u64map_free(ldm_u64map *m) {
    free(m->keys);
    free(m->a);
    free(m->b);
    free(m->used);
    memset(m, 0, sizeof *m);
}
