/* ldmcl/checkpoint.h: a graph's parameters to and from safetensors files, under their PyTorch
 * state_dict names, so reference checkpoints convert one to one. Loading validates the whole file
 * before touching the device and reports every missing, unexpected and mis-shaped tensor at once.
 */
#ifndef LDMCL_CHECKPOINT_H
#define LDMCL_CHECKPOINT_H

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes every parameter (trainable and frozen; not constants) as F32, atomically, with string
 * metadata given as NULL-terminated key/value pairs (may be NULL). The graph must be compiled. */
ldm_status ldm_graph_save(ldm_graph *g, const char *path, const char *const *metadata_pairs);

typedef struct ldm_load_options {
    const char *only_prefix; /* consider only file tensors whose names start with it (e.g.
                                "text_model." in a full CLIPModel file); NULL: all */
    int allow_missing;       /* parameters the file lacks keep their values */
    int allow_unexpected;    /* file tensors the graph lacks are ignored */
} ldm_load_options;

/* Reads parameters by name (F32, F16, BF16, ... converted to F32). Fails, changing nothing, when
 * the file is malformed or (unless allowed) tensors are missing, unexpected or mis-shaped. */
ldm_status ldm_graph_load(ldm_graph *g, const char *path, const ldm_load_options *options);

#ifdef __cplusplus
}
#endif
#endif
