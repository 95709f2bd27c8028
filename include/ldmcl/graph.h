/* ldmcl/graph.h: record a model once, generate its backward pass, plan its memory, replay it.
 *
 * Model code calls op functions (ops.h) on tensors of a graph; they record nodes, they compute
 * nothing. ldm_graph_backward then adds the backward pass from a loss: each op's backward kernels
 * in reverse order, accumulating the gradients of tensors used more than once, skipping frozen
 * parameters and inputs that need no gradient. ldm_graph_compile places every activation and
 * gradient in one planned buffer by liveness, allocates the arenas, and records every launch with
 * its arguments set; ldm_graph_run replays them without allocating, building or waiting.
 *
 * Recording functions do not return a status: the first error is kept in the graph (and later
 * calls on it do nothing) and ldm_graph_compile returns it. Tensors never own memory; their
 * buffers exist once the graph is compiled. */
#ifndef LDMCL_GRAPH_H
#define LDMCL_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/buffer.h"
#include "ldmcl/cmd.h"
#include "ldmcl/context.h"
#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_MAX_DIMS 4

typedef struct ldm_graph ldm_graph;
typedef struct ldm_tensor ldm_tensor;

/* A shape as the (ndim, sizes) argument pair: ldm_graph_input(g, "x", LDM_SHAPE(2, 4, 8, 8)). */
#define LDM_SHAPE(...)                                                                             \
    (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int)), (const int[]) {                       \
        __VA_ARGS__                                                                                \
    }

ldm_status ldm_graph_create(ldm_ctx *ctx, ldm_graph **out);
void ldm_graph_destroy(ldm_graph *g);

/* Parameter stores. A graph's parameters are entries of a store, which owns their values and
 * gradients (trainable values in one flat buffer, their gradients in another laid out alike;
 * frozen values apart). ldm_graph_create gives a graph a store of its own. A graph created in
 * another graph's store records its parameters as that store's entries of the same names (and
 * shapes): a training step, its validation sampler and text encoder, an autoencoder's encoder and
 * decoder share one set of weights, with nothing copied. Whether an entry is trainable is decided
 * by the graph that created it (ldm_tensor_set_trainable there, before the first compile in the
 * store); in another graph ldm_tensor_set_trainable(p, 0) only keeps that graph from computing
 * its gradient. A store is allocated when the first of its graphs compiles: record every graph's
 * new parameters before that. It lives as long as a graph does. */
typedef struct ldm_params ldm_params;
ldm_params *ldm_graph_params(const ldm_graph *g);
ldm_status ldm_graph_create_in(ldm_ctx *ctx, ldm_params *params, ldm_graph **out);
ldm_ctx *ldm_graph_ctx(const ldm_graph *g);

/* LDM_OK, or the first error met while recording (ldm_last_error() was set when it happened;
 * ldm_graph_error() keeps a copy). */
ldm_status ldm_graph_status(const ldm_graph *g);
const char *ldm_graph_error(const ldm_graph *g);
/* For recording code (ops, models) that finds a bad argument: records the graph's first error
 * ("file:line: message", as the failing recording call's), and returns NULL for the caller's
 * tensor. */
ldm_tensor *ldm_graph_fail_at(ldm_graph *g, const char *file, int line, ldm_status st,
                              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define LDM_GRAPH_FAIL(g, st, ...) ldm_graph_fail_at((g), __FILE__, __LINE__, (st), __VA_ARGS__)

/* A trainable parameter, named as in the reference's state_dict ("downs.0.resnet_conv_first...").
 */
ldm_tensor *ldm_graph_param(ldm_graph *g, const char *name, int ndim, const int *shape);
/* Data fed before each run (images, noise, timesteps, ...); no gradient unless asked for. */
ldm_tensor *ldm_graph_input(ldm_graph *g, const char *name, int ndim, const int *shape);

/* A constant table (e.g. timestep embeddings): frozen, not a parameter, uploaded at compile
 * time. Recording the same name again returns the same tensor. */
ldm_tensor *ldm_graph_constant(ldm_graph *g, const char *name, int ndim, const int *shape,
                               const float *data);

/* How ldm_graph_init_params fills a parameter: uniform in [-a, a], normal with standard
 * deviation a, or the constant a. Model code sets PyTorch's default initialisation of each layer.
 */
typedef enum ldm_init {
    LDM_INIT_NONE = 0,
    LDM_INIT_UNIFORM = 1,
    LDM_INIT_NORMAL = 2,
    LDM_INIT_CONSTANT = 3
} ldm_init;
void ldm_tensor_set_init(ldm_tensor *t, ldm_init kind, float a);
/* A weight computed from parameter `param` (a LoRA-adapted W + up.down) takes param's place for
 * ldm_tensor_set_init: the layer's rule goes to the parameter. */
void ldm_tensor_set_init_target(ldm_tensor *t, ldm_tensor *param);

/* Freezes a parameter (no gradient, not updated) or unfreezes it. */
void ldm_tensor_set_trainable(ldm_tensor *t, int trainable);
/* Asks for the gradient of an input too (tests, or inputs that are optimised). */
void ldm_tensor_set_requires_grad(ldm_tensor *t, int requires_grad);
/* Keeps an activation readable after a run (outputs); others share memory by liveness. */
void ldm_tensor_keep(ldm_tensor *t);
/* Names a recorded tensor (for messages and profiles). */
void ldm_tensor_set_name(ldm_tensor *t, const char *name);

/* A view of t with another shape and the same number of elements (no copy). */
ldm_tensor *ldm_reshape(ldm_graph *g, ldm_tensor *t, int ndim, const int *shape);

/* Parameters this graph creates from now on are stored on the device in IEEE half precision
 * (half the memory; frozen only: inference), read and written as floats through
 * ldm_tensor_write/read (rounded to nearest even); models read them through ldm_half_weight
 * (ldmcl/ops/elementwise.h), which expands one into a float activation where it is used. */
void ldm_graph_set_half_weights(ldm_graph *g, int on);
int ldm_graph_half_weights(const ldm_graph *g);
/* Whether t is a parameter stored in half precision. */
int ldm_tensor_is_half(const ldm_tensor *t);

/* LoRA adapters (fine-tuning): which weights the models recorded on this graph from now on adapt
 * (ldmcl/lora_adapter.h names them by kind and records W + alpha / rank * up . down in place of
 * each). */
typedef enum ldm_lora_target {
    LDM_LORA_ATTN = 1,   /* attention projections (q, k, v, out) */
    LDM_LORA_FF = 2,     /* transformer feed-forwards (GEGLU's and CLIP's MLP) */
    LDM_LORA_LINEAR = 4, /* every other Linear and 1x1 convolution (not embeddings) */
    LDM_LORA_CONV = 8    /* convolutions with larger kernels (LoCon) */
} ldm_lora_target;
typedef struct ldm_lora_config {
    int rank;                /* >= 1 */
    float alpha;             /* the adapters' scale is alpha / rank */
    unsigned targets;        /* ldm_lora_target bits */
    const char *skip_prefix; /* weights whose names start with it get no adapters ("text_model.":
                                a UNet-only LoRA in a step that also runs a text encoder); NULL:
                                none. Not copied: a string that outlives the graph */
} ldm_lora_config;
/* c (copied) or NULL: none. */
void ldm_graph_set_lora(ldm_graph *g, const ldm_lora_config *c);

/* NULL when none. */
const ldm_lora_config *ldm_graph_lora(const ldm_graph *g);

/* Gradient checkpointing: with it on (before the backward pass is generated), the nodes models
 * record between ldm_graph_segment_begin and _end (a UNet's blocks) are run again in backward,
 * just before their backward steps, which read what they recompute: their tensors then live
 * only through the forward (and their recomputation), not until backward, at the cost of a
 * second forward of each segment. Results and gradients are the same, bit for bit. Segments
 * nest (the outermost counts); without checkpointing begin and end do nothing. */
void ldm_graph_set_checkpointing(ldm_graph *g, int on);
int ldm_graph_checkpointing(const ldm_graph *g);
void ldm_graph_segment_begin(ldm_graph *g);
void ldm_graph_segment_end(ldm_graph *g);

/* Rows [start, start + count) of a parameter or input along dimension 0, as a tensor of its own
 * (no copy): e.g. the query part of a packed in_proj_weight [3C, C]. Its gradient goes to the
 * same rows of the parameter's gradient. */
ldm_tensor *ldm_view_rows(ldm_graph *g, ldm_tensor *t, int start, int count);

/* Generates the backward pass of sum(loss) (a scalar loss is the usual case). */
ldm_status ldm_graph_backward(ldm_graph *g, ldm_tensor *loss);
/* Generates the backward pass of sum(out * seed), seed being an input of out's shape: the
 * gradient flowing into out is the seed's value. Used to check ops against references. */
ldm_status ldm_graph_backward_seeded(ldm_graph *g, ldm_tensor *out, ldm_tensor *seed);

/* Fills every parameter by its rule (ldm_tensor_set_init), drawing on the host from the counter
 * generator keyed by seed and a hash of the parameter's name (so a parameter's values do not
 * depend on what else the graph holds). A parameter without a rule is an error naming it, unless
 * skip_unruled (then it keeps its values: weights loaded from a file). After compile. */
ldm_status ldm_graph_init_params(ldm_graph *g, uint64_t seed, int skip_unruled);

/* Plans memory, allocates the arenas, records every launch. */
ldm_status ldm_graph_compile(ldm_graph *g);
int ldm_graph_is_compiled(const ldm_graph *g);
/* Enqueues the forward pass and, if generated, the backward pass. Leaf gradients accumulate
 * (+=) across runs until ldm_graph_zero_grads. Does not wait. */
ldm_status ldm_graph_run(ldm_graph *g);
ldm_status ldm_graph_zero_grads(ldm_graph *g);
/* The graph's device step counter (one element, uint bits): created on first call, incremented
 * by the last launch of every run. Random-number ops key their draws on it, so each run of a
 * recorded training step draws anew without the host. Set it when resuming. */
ldm_tensor *ldm_graph_step_counter(ldm_graph *g);
ldm_status ldm_graph_set_step(ldm_graph *g, uint64_t step);
ldm_status ldm_graph_get_step(ldm_graph *g, uint64_t *step);
/* Data parallelism: the graph computes part `part` of `parts` equal parts of a batch (its
 * inputs' first dimension). Random tensors recorded after this draw that part of what the whole
 * batch's would draw (ldm_random), so that `parts` graphs, each given its part of a batch, draw
 * together what one graph given the whole batch draws. Before recording; default part 0 of 1. */
ldm_status ldm_graph_set_batch_part(ldm_graph *g, int part, int parts);
void ldm_graph_batch_part(const ldm_graph *g, int *part, int *parts);
/* The recorded launches (for profiling by op label), valid after compile. */
ldm_cmd *ldm_graph_commands(ldm_graph *g);

typedef struct ldm_graph_memory {
    uint64_t trainable_bytes; /* trainable parameters; their gradients take as much again */
    uint64_t frozen_bytes;
    uint64_t input_bytes;
    uint64_t leaf_grad_bytes;  /* gradients of trainable parameters and of inputs that ask */
    uint64_t activation_bytes; /* the planned buffer: peak of live activations, gradients and
                                  scratch */
    uint64_t activation_total; /* what those would take without reuse */
    size_t n_nodes, n_backward_steps, n_launches;
} ldm_graph_memory;

ldm_graph_memory ldm_graph_memory_report(const ldm_graph *g);

/* Tensors. Data transfers are blocking and valid after compile: write parameters and inputs,
 * read parameters, inputs, gradients and kept activations. */
ldm_status ldm_tensor_write(ldm_tensor *t, const float *data);
ldm_status ldm_tensor_read(ldm_tensor *t, float *data);
/* The gradient of t (after ldm_graph_backward), or NULL when t gets none. */
ldm_tensor *ldm_tensor_grad(const ldm_tensor *t);
const char *ldm_tensor_name(const ldm_tensor *t);
int ldm_tensor_ndim(const ldm_tensor *t);
int ldm_tensor_dim(const ldm_tensor *t, int i); /* negative i counts from the end */
size_t ldm_tensor_numel(const ldm_tensor *t);
ldm_buf ldm_tensor_buf(const ldm_tensor *t);
/* Whether t is a parameter of its graph (ldm_graph_param), and one this graph trains. */
int ldm_tensor_is_param(const ldm_tensor *t);
int ldm_tensor_is_trainable(const ldm_tensor *t);
/* "[2, 4, 8, 8]" into buf, for messages. */
const char *ldm_shape_str(const ldm_tensor *t, char *buf, size_t size);
/* 1 when a and b have the same shape; else 0, with the graph failed by a message naming the op
 * (for recording code) and both tensors. */
int ldm_check_same_shape(ldm_graph *g, const char *op, const ldm_tensor *a, const ldm_tensor *b);

/* Parameters in creation order (for optimizers, checkpoints and name lookups). */
size_t ldm_graph_param_count(const ldm_graph *g);
ldm_tensor *ldm_graph_param_at(const ldm_graph *g, size_t i);
ldm_tensor *ldm_graph_find(const ldm_graph *g, const char *name);
/* The trainable parameters and their gradients as flat buffers of the same layout. */
ldm_buf ldm_graph_trainable_buf(const ldm_graph *g, size_t *count);
ldm_buf ldm_graph_trainable_grad_buf(const ldm_graph *g);

#ifdef __cplusplus
}
#endif
#endif
