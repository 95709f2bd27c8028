/* src/graph/params.h: the parameter store behind a graph's parameters: named entries with a
 * shape, whose values (trainable ones in one flat arena, frozen ones in another) and gradients
 * (one flat arena laid out like the trainable values, so that an optimizer, clipping or EMA is one
 * pass over it) belong to the store, not to a graph. A graph records a parameter by name and
 * binds to the store's entry of that name; the store allocates its arenas when the first graph
 * bound to it compiles (its gradients when the first graph that needs them does). Not installed. */
#ifndef LDMCL_GRAPH_PARAMS_H
#define LDMCL_GRAPH_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "graph_internal.h"

typedef struct ldm_param_entry {
    char name[128];
    int ndim;
    int shape[LDM_MAX_DIMS];
    size_t numel;
    ldm_tensor *owner; /* the tensor of the graph that created the entry: its trainable flag
                          decides where the entry's values live */
    int trainable;     /* fixed when the store is allocated */
    int half;          /* stored as IEEE half precision (frozen only; ldm_graph_set_half_weights) */
    ldm_buf value, grad;
} ldm_param_entry;

struct ldm_params {
    ldm_ctx *ctx;
    ldm_param_entry **entries; /* in creation order */
    int n, cap;
    int allocated, has_grads;
    ldm_arena *trainable, *grads;
    /* frozen values in as many arenas as CL_DEVICE_MAX_MEM_ALLOC_SIZE needs (trainable values
     * and gradients stay one span each: an optimizer steps them in one pass) */
    ldm_arena **frozen;
    int n_frozen;
    int refs; /* graphs bound to it, plus one for a creator that keeps it */
};

ldm_status ldm_params_create(ldm_ctx *ctx, ldm_params **out);
void ldm_params_destroy(ldm_params *p); /* drops the creator's reference */

/* The entry of that name, or NULL. */
ldm_param_entry *ldm_params_find(const ldm_params *p, const char *name);
/* A new entry (the store must not be allocated yet); NULL with the store's error when it is or
 * when memory runs out (the caller fails its graph). */
ldm_param_entry *ldm_params_add(ldm_params *p, const char *name, int ndim, const int *shape,
                                ldm_tensor *owner);
/* Allocates the values of every entry (trainable ones in creation order, then frozen ones, split
 * over several buffers where one would exceed the device's largest allocation) and, with grads,
 * the gradients of the trainable ones; a later call with grads adds the gradients. */
ldm_status ldm_params_allocate(ldm_params *p, int grads);
/* Bytes the store still has to allocate for values (and gradients, with grads). */
uint64_t ldm_params_pending_bytes(const ldm_params *p, int grads, uint64_t *trainable,
                                  uint64_t *frozen, uint64_t *gradients);
void ldm_params_retain(ldm_params *p);
void ldm_params_release(ldm_params *p);

#endif
