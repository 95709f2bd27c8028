/* src/io/json_index.c: the hash index of a JSON object's keys, so that duplicate checks while
 * parsing and lookups afterwards take constant time however many keys an object has (a
 * safetensors header of 200,000 tensors, a tokenizer's vocabulary). Open addressing with linear
 * probing, at most half full; keys hashed with SipHash-2-4 under a random key per index, so keys
 * crafted to collide cannot bring back the quadratic time. Keys compare as C strings (up to a
 * NUL escape), as strcmp did before. */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "siphash.h"

typedef struct slot {
    uint32_t pos;  /* position + 1; 0: empty */
    uint32_t hash; /* the low 32 bits of the key's hash: its home slot, and a quick compare */
} slot;

struct ldm_json_index {
    unsigned char key[16];
    size_t mask; /* slots - 1, slots a power of two, at most 2^32 */
    size_t used;
    slot slot[];
};

static uint32_t hash_of(const ldm_json_index *x, const char *key) {
    return (uint32_t)ldm_siphash24(x->key, key, strlen(key));
}

static void insert(ldm_json_index *x, slot s) {
    size_t i = s.hash & x->mask;
    while (x->slot[i].pos)
        i = (i + 1) & x->mask;
    x->slot[i] = s;
    x->used++;
}

static ldm_json_index *make(size_t slots, const unsigned char key[16]) {
    ldm_json_index *x = calloc(1, sizeof *x + slots * sizeof x->slot[0]);
    if (!x) return NULL;
    if (key)
        memcpy(x->key, key, sizeof x->key);
    else
        ldm_siphash_key(x->key);
    x->mask = slots - 1;
    return x;
}

int ldm_json_index_add(ldm_json_index **x, char *const *keys, size_t pos) {
    if (pos >= (1u << 31)) return 0; /* 2^31 keys, 2^32 slots */
    if (!*x && !(*x = make(16, NULL))) return 0;
    ldm_json_index *old = *x;
    if (2 * (old->used + 1) > old->mask + 1) { /* grow to keep it at most half full */
        ldm_json_index *grown = make(2 * (old->mask + 1), old->key);
        if (!grown) return 0;
        for (size_t i = 0; i <= old->mask; i++)
            if (old->slot[i].pos) insert(grown, old->slot[i]);
        free(old);
        *x = grown;
    }
    insert(*x, (slot){(uint32_t)pos + 1, hash_of(*x, keys[pos])});
    return 1;
}

size_t ldm_json_index_find(const ldm_json_index *x, char *const *keys, const char *key) {
    const uint32_t h = hash_of(x, key);
    for (size_t i = h & x->mask; x->slot[i].pos; i = (i + 1) & x->mask)
        if (x->slot[i].hash == h && strcmp(keys[x->slot[i].pos - 1], key) == 0)
            return x->slot[i].pos - 1;
    return SIZE_MAX;
}

void ldm_json_index_free(ldm_json_index *x) {
    free(x);
}
