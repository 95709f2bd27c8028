/* ldmcl/checkpoint.h: a graph's parameters to and from safetensors files, under their PyTorch
 * state_dict names, so reference checkpoints convert one to one. Loading validates the whole file
 * before touching the device and reports every missing, unexpected and mis-shaped tensor at once.
 */
#ifndef LDMCL_CHECKPOINT_H
#define LDMCL_CHECKPOINT_H

#include "ldmcl/graph.h"
#include "ldmcl/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes every parameter (trainable and frozen; not constants) as F32, atomically, with string
 * metadata given as NULL-terminated key/value pairs (may be NULL). The graph must be compiled. */
ldm_status ldm_graph_save(ldm_graph *g, const char *path, const char *const *metadata_pairs);
/* The same for the parameters whose names start with graph_prefix (NULL: all), saved under their
 * names without it, and only the trainable ones if asked: one model of a graph that holds
 * several (an autoencoder beside a frozen copy of its discriminator and LPIPS). */
ldm_status ldm_graph_save_subset(ldm_graph *g, const char *path, const char *const *metadata_pairs,
                                 const char *graph_prefix, int trainable_only);

/* The parameters a filter accepts (by their graph names, kept as they are): a UNet apart from the
 * text encoder trained with it, say. */
typedef int (*ldm_param_filter)(const char *name, void *user);
ldm_status ldm_graph_save_filtered(ldm_graph *g, const char *path,
                                   const char *const *metadata_pairs, ldm_param_filter filter,
                                   void *user);

/* Where a parameter's values are in a file whose names or packing differ from the graph's
 * (diffusers' folder layout, OpenCLIP's packed q, k, v projections). */
typedef struct ldm_load_source {
    char name[256];          /* the file tensor */
    int64_t row_start, rows; /* a block of rows of its first dimension; rows 0: all of it */
    int any_shape;           /* accept another shape of as many elements (a Linear's [C, C] as
                                a 1x1 convolution's [C, C, 1, 1]) */
} ldm_load_source;
/* Fills src for the parameter `name` (its graph name less graph_prefix); returns 0 when the file
 * has no tensor for it (then it is missing). */
typedef int (*ldm_load_map)(const char *name, ldm_load_source *src, void *user);

typedef struct ldm_load_options {
    const char *only_prefix;   /* consider only file tensors whose names start with it (e.g.
                                  "text_model." in a full CLIPModel file); NULL: all */
    int allow_missing;         /* parameters the file lacks keep their values */
    int allow_unexpected;      /* file tensors the graph lacks are ignored */
    const char *graph_prefix;  /* only the graph's parameters under this prefix take part, matched
                                  to file names without it ("lpips." + "net.slice1.0.weight");
                                  NULL: all */
    int trainable_only;        /* only the graph's trainable parameters take part */
    const char *const *ignore; /* file tensors to skip by name (NULL-terminated; NULL: none),
                                  e.g. Hugging Face's text_model.embeddings.position_ids buffer */
    const char *file_prefix;   /* the file names of the parameters start with it (one of several
                                  models in one file: "discriminator_state." + name); NULL: none */
    int check_only;            /* check names, shapes and dtypes, convert, change nothing */
    ldm_load_map map;          /* where each parameter is in the file (file_prefix is then not
                                  used; a file tensor no parameter reads is unexpected); NULL:
                                  by name */
    void *map_user;
    ldm_param_filter skip; /* the graph's parameters for which it returns nonzero take no
                              part (LoRA adapters beside a pretrained model's weights) */
    void *skip_user;
} ldm_load_options;

/* Reads parameters by name (F32, F16, BF16, ... converted to F32). Fails, changing nothing, when
 * the file is malformed, a tensor holds NaN or infinite values (named, with their count), or
 * (unless allowed) tensors are missing, unexpected or mis-shaped. */
ldm_status ldm_graph_load(ldm_graph *g, const char *path, const ldm_load_options *options);
/* The same from a file already open (one file read for several graphs or checks). */
ldm_status ldm_graph_load_from(ldm_graph *g, const ldm_safetensors *st,
                               const ldm_load_options *options);

#ifdef __cplusplus
}
#endif
#endif
