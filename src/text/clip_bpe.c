/* src/text/clip_bpe.c: byte-level BPE of one pre-token, with the same result as OpenAI's and
 * Hugging Face's CLIPTokenizer.bpe: while some adjacent pair has a merge, take the pair of the
 * lowest rank and merge its occurrences left to right (never overlapping), in one pass.
 * Here the pairs wait in a heap keyed by (rank, position) over a linked list of the symbols, so a
 * word of n bytes costs O(n log n) instead of the O(n^2) of rescanning the word after each merge
 * (a 100,000-letter word took seconds). All pairs of the lowest rank are merged before the pairs
 * those merges create enter the heap, as the one pass does. Words are cached. */
#include <stdlib.h>
#include <string.h>

#include "clip_tokenizer_internal.h"

#define CACHE_MAX 65536 /* pre-tokens remembered (the cache is emptied when full) */

int ldm_clip_ids_push(ldm_clip_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return 0;
}

typedef struct bpe_word {
    const ldm_clip_tokenizer *t;
    int *sym;            /* per position: its symbol, -1 once merged into its left neighbour */
    int64_t *prev, *nxt; /* the neighbouring live positions, -1 at the ends */
    uint64_t *heap;      /* candidate pairs: rank << 32 | position of the left symbol */
    size_t n_heap;
    size_t *merged; /* the positions merged at the current rank */
} bpe_word;

static void heap_push(bpe_word *w, uint64_t key) {
    size_t i = w->n_heap++;
    while (i > 0 && w->heap[(i - 1) / 2] > key) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = key;
}

static uint64_t heap_pop(bpe_word *w) {
    uint64_t top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && w->heap[c + 1] < w->heap[c]) c++;
        if (w->heap[c] >= last) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* The merge of the pair at live position p and its right neighbour: its rank and result. */
static int pair_at(const bpe_word *w, size_t p, int32_t *rank, int32_t *merged) {
    int64_t q = w->nxt[p];
    if (w->sym[p] < 0 || q < 0) return 0;
    uint64_t key = (uint64_t)(uint32_t)w->sym[p] << 32 | (uint32_t)w->sym[q];
    return ldm_u64map_get(&w->t->merges, key, rank, merged);
}

/* Queues the pair at position p when it has a merge. */
static void queue_pair(bpe_word *w, size_t p) {
    int32_t rank, merged;
    if (pair_at(w, p, &rank, &merged)) heap_push(w, (uint64_t)(uint32_t)rank << 32 | p);
}

/* Merges the word w->sym[0..n) in place; returns its symbols' count, left in w->sym in order. */
static size_t merge_word(bpe_word *w, size_t n) {
    for (size_t p = 0; p < n; p++) {
        w->prev[p] = (int64_t)p - 1;
        w->nxt[p] = p + 1 < n ? (int64_t)p + 1 : -1;
    }
    for (size_t p = 0; p + 1 < n; p++)
        queue_pair(w, p);
    while (w->n_heap) {
        /* every occurrence of the lowest-ranked pair, left to right */
        uint32_t rank = (uint32_t)(w->heap[0] >> 32);
        size_t n_merged = 0;
        while (w->n_heap && (uint32_t)(w->heap[0] >> 32) == rank) {
            size_t p = (size_t)(uint32_t)heap_pop(w);
            int32_t r, m;
            if (!pair_at(w, p, &r, &m) || (uint32_t)r != rank) continue; /* a stale pair */
            int64_t q = w->nxt[p];
            w->sym[p] = m;
            w->sym[q] = -1;
            w->nxt[p] = w->nxt[q];
            if (w->nxt[q] >= 0) w->prev[w->nxt[q]] = (int64_t)p;
            w->merged[n_merged++] = p;
        }
        /* then the pairs those merges made (never of this rank: a merged symbol is longer than
         * either part) */
        for (size_t k = 0; k < n_merged; k++) {
            size_t p = w->merged[k];
            if (w->prev[p] >= 0) queue_pair(w, (size_t)w->prev[p]);
            queue_pair(w, p);
        }
    }
    size_t count = 0;
    for (int64_t p = 0; p >= 0; p = w->nxt[p])
        w->sym[count++] = w->sym[p];
    return count;
}

/* Remembers the ids of a pre-token. 0, or -1 when out of memory. */
static int remember(ldm_clip_tokenizer *t, const unsigned char *bytes, size_t len,
                    const int32_t *ids, size_t count) {
    if (t->cache.count >= CACHE_MAX) {
        for (int i = 0; i < t->cache.count; i++)
            free(t->cache_ids[i]);
        ldm_intern_free(&t->cache);
    }
    int slot = ldm_intern_add(&t->cache, (const char *)bytes, len);
    if (slot < 0) return -1;
    if (slot >= t->cache_cap) {
        int cap = t->cache_cap ? 2 * t->cache_cap : 1024;
        while (cap <= slot)
            cap *= 2;
        int32_t **grown = realloc(t->cache_ids, (size_t)cap * sizeof *grown);
        if (!grown) return -1;
        t->cache_ids = grown;
        int *ns = realloc(t->cache_n, (size_t)cap * sizeof *ns);
        if (!ns) return -1;
        t->cache_n = ns;
        t->cache_cap = cap;
    }
    t->cache_ids[slot] = malloc((count ? count : 1) * sizeof **t->cache_ids);
    if (!t->cache_ids[slot]) return -1;
    memcpy(t->cache_ids[slot], ids, count * sizeof *ids);
    t->cache_n[slot] = (int)count;
    return 0;
}

ldm_status ldm_clip_bpe(ldm_clip_tokenizer *t, const unsigned char *bytes, size_t len,
                        ldm_clip_ids *out) {
    int hit = ldm_intern_find(&t->cache, (const char *)bytes, len);
    if (hit >= 0) {
        for (int k = 0; k < t->cache_n[hit]; k++)
            if (ldm_clip_ids_push(out, t->cache_ids[hit][k]) != 0) goto oom;
        return LDM_OK;
    }
    if (len == 0) return LDM_OK;
    if (len > UINT32_MAX / 2)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "tokenizing: a word of %zu bytes is too long",
                        len);
    /* at most len - 1 pairs at first, and two more per merge */
    bpe_word w = {.t = t,
                  .sym = malloc(len * sizeof *w.sym),
                  .prev = malloc(len * sizeof *w.prev),
                  .nxt = malloc(len * sizeof *w.nxt),
                  .heap = malloc(3 * len * sizeof *w.heap),
                  .merged = malloc(len * sizeof *w.merged)};
    ldm_status st = LDM_OK;
    if (!w.sym || !w.prev || !w.nxt || !w.heap || !w.merged) st = LDM_ERR_HOST_MEMORY;
    size_t n = 0, start = out->n;
    if (st == LDM_OK) {
        for (size_t k = 0; k < len; k++)
            w.sym[k] = k + 1 == len ? t->byte_end_sym[bytes[k]] : t->byte_sym[bytes[k]];
        n = merge_word(&w, len);
    }
    for (size_t k = 0; k < n && st == LDM_OK; k++) {
        int32_t id = t->sym_id[w.sym[k]];
        if (ldm_clip_ids_push(out, id >= 0 ? id : t->unk) != 0) st = LDM_ERR_HOST_MEMORY;
    }
    if (st == LDM_OK && remember(t, bytes, len, out->v + start, out->n - start) != 0)
        st = LDM_ERR_HOST_MEMORY;
    free(w.sym);
    free(w.prev);
    free(w.nxt);
    free(w.heap);
    free(w.merged);
    if (st == LDM_OK) return LDM_OK;
oom:
    return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory while tokenizing");
}
