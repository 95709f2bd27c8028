/* src/graph/params.c: the parameter store (see params.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"

#define ALIGN ((uint64_t)LDM_ARENA_ALIGN_ELEMS)

/* 4-byte elements an entry's values take: two halves per element when stored as halves. */
static size_t stored_count(const ldm_param_entry *e) {
    return e->half ? (e->numel + 1) / 2 : e->numel;
}

static uint64_t aligned_bytes(size_t numel) {
    return ((uint64_t)numel + ALIGN - 1) / ALIGN * ALIGN * 4;
}

ldm_status ldm_params_create(ldm_ctx *ctx, ldm_params **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    (*out)->ctx = ctx;
    (*out)->refs = 1;
    return LDM_OK;
}

void ldm_params_retain(ldm_params *p) {
    if (p) p->refs++;
}

void ldm_params_release(ldm_params *p) {
    if (!p || --p->refs > 0) return;
    ldm_arena_destroy(p->trainable);
    for (int i = 0; i < p->n_frozen; i++)
        ldm_arena_destroy(p->frozen[i]);
    free(p->frozen);
    ldm_arena_destroy(p->grads);
    for (int i = 0; i < p->n; i++)
        free(p->entries[i]);
    free(p->entries);
    free(p);
}

void ldm_params_destroy(ldm_params *p) {
    ldm_params_release(p);
}

ldm_param_entry *ldm_params_find(const ldm_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->entries[i]->name, name)) return p->entries[i];
    return NULL;
}

ldm_param_entry *ldm_params_add(ldm_params *p, const char *name, int ndim, const int *shape,
                                ldm_tensor *owner) {
    if (p->allocated) {
        LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                 "parameter '%s': the store is allocated (a graph bound to it compiled), so no "
                 "parameter can join it; record every graph's parameters before compiling",
                 name);
        return NULL;
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        ldm_param_entry **e = realloc(p->entries, (size_t)cap * sizeof *e);
        if (!e) {
            LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
            return NULL;
        }
        p->entries = e;
        p->cap = cap;
    }
    ldm_param_entry *e = calloc(1, sizeof *e);
    if (!e) {
        LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        return NULL;
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    e->numel = 1;
    for (int d = 0; d < ndim; d++) {
        e->shape[d] = shape[d];
        e->numel *= (size_t)shape[d];
    }
    e->owner = owner;
    e->half = owner && ldm_graph_half_weights(owner->g);
    p->entries[p->n++] = e;
    return e;
}

uint64_t ldm_params_pending_bytes(const ldm_params *p, int grads, uint64_t *trainable,
                                  uint64_t *frozen, uint64_t *gradients) {
    uint64_t tr = 0, fr = 0;
    for (int i = 0; i < p->n; i++) {
        const ldm_param_entry *e = p->entries[i];
        int t = p->allocated ? e->trainable : e->owner->trainable;
        if (t)
            tr += aligned_bytes(e->numel);
        else
            fr += aligned_bytes(stored_count(e));
    }
    uint64_t gr = grads && !p->has_grads ? tr : 0;
    if (p->allocated) tr = fr = 0;
    if (trainable) *trainable = tr;
    if (frozen) *frozen = fr;
    if (gradients) *gradients = gr;
    return tr + fr + gr;
}

/* Carves every entry of the given kind from an arena of `bytes` (none when 0). */
static ldm_status carve(ldm_params *p, const char *name, uint64_t bytes, int trainable, int grad,
                        ldm_arena **arena) {
    if (bytes == 0) return LDM_OK;
    LDM_TRY(ldm_arena_create(p->ctx, name, bytes, arena));
    for (int i = 0; i < p->n; i++) {
        ldm_param_entry *e = p->entries[i];
        if (e->trainable != trainable) continue;
        LDM_TRY(ldm_arena_take(*arena, e->numel, e->name, grad ? &e->grad : &e->value));
    }
    return LDM_OK;
}

/* The frozen entries in arenas of at most the device's largest allocation each, in order. */
static ldm_status carve_frozen(ldm_params *p, uint64_t bytes) {
    if (bytes == 0) return LDM_OK;
    uint64_t max = ldm_ctx_max_allocation(p->ctx);
    int first = 0;
    while (first < p->n) {
        uint64_t size = 0;
        int last = first;
        for (; last < p->n; last++) {
            ldm_param_entry *e = p->entries[last];
            if (e->trainable) continue;
            uint64_t b = aligned_bytes(stored_count(e));
            if (size && size + b > max) break;
            size += b; /* an entry alone above the limit: the arena's creation says so */
        }
        if (size == 0) break;
        ldm_arena **more = realloc(p->frozen, (size_t)(p->n_frozen + 1) * sizeof *more);
        if (!more) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        p->frozen = more;
        ldm_arena **arena = &p->frozen[p->n_frozen];
        *arena = NULL;
        LDM_TRY(ldm_arena_create(p->ctx,
                                 p->n_frozen || last < p->n ? "frozen parameters (one of several)"
                                                            : "frozen parameters",
                                 size, arena));
        p->n_frozen++;
        for (int i = first; i < last; i++) {
            ldm_param_entry *e = p->entries[i];
            if (!e->trainable) LDM_TRY(ldm_arena_take(*arena, stored_count(e), e->name, &e->value));
        }
        first = last;
    }
    return LDM_OK;
}

ldm_status ldm_params_allocate(ldm_params *p, int grads) {
    uint64_t tr, fr, gr;
    ldm_params_pending_bytes(p, grads, &tr, &fr, &gr);
    if (!p->allocated) {
        for (int i = 0; i < p->n; i++) {
            ldm_param_entry *e = p->entries[i];
            e->trainable = e->owner->trainable;
            e->owner = NULL; /* its graph may go before the store */
            if (e->half && e->trainable)
                return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                                "parameter '%s' is stored in half precision, which is for frozen "
                                "weights: freeze it (ldm_tensor_set_trainable) or record it in "
                                "full precision",
                                e->name);
        }
        LDM_TRY(carve(p, "trainable parameters", tr, 1, 0, &p->trainable));
        LDM_TRY(carve_frozen(p, fr));
        p->allocated = 1;
    }
    if (gr && !p->has_grads) {
        LDM_TRY(carve(p, "gradients", gr, 1, 1, &p->grads));
        p->has_grads = 1;
    }
    return LDM_OK;
}
