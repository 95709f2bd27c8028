/* src/graph/graph_internal.h: tensors, nodes, op classes and backward steps, shared by the graph
 * files and by every op family that records nodes. Not installed. */
#ifndef LDMCL_GRAPH_INTERNAL_H
#define LDMCL_GRAPH_INTERNAL_H

#include <stddef.h>

#include "internal.h"
#include "ldmcl/graph.h"

#define LDM_MAX_IN 8
#define LDM_MAX_OUT 4
#define LDM_MAX_BANKS 64
/* Bytes of a node's op parameters: each family's parameter struct must fit (checked where the
 * struct is named, at compile time). */
#define LDM_NODE_PARAMS_BYTES 96

typedef enum tensor_kind {
    TK_PARAM,      /* persistent, in the trainable or the frozen arena */
    TK_INPUT,      /* persistent, in the input arena */
    TK_ACTIVATION, /* planned */
    TK_GRAD,       /* planned, or persistent for leaves */
    TK_SCRATCH     /* planned, alive for one step */
} tensor_kind;

typedef struct ldm_node ldm_node;
struct ldm_param_entry;

struct ldm_tensor {
    ldm_graph *g;
    int id;
    char name[128];
    tensor_kind kind;
    int ndim;
    int shape[LDM_MAX_DIMS];
    size_t numel;
    int trainable;      /* parameters */
    int requires_grad;  /* a gradient flows to it */
    int keep;           /* readable after a run */
    ldm_tensor *base;   /* a view shares base's storage; NULL for a storage owner */
    size_t view_off;    /* a view's first element within base (rows of a leaf, see ldm_view_rows) */
    ldm_tensor *grad;   /* the gradient, once backward created it */
    int producer;       /* index of the node that writes it, -1 for leaves */
    ldm_tensor *owner;  /* for a gradient: the storage it is the gradient of */
    float *init;        /* a constant's values, uploaded when the graph is compiled */
    ldm_init init_kind; /* a parameter's initialisation rule (ldm_graph_init_params) */
    struct ldm_tensor *init_to; /* a computed weight (W + LoRA): whose rule set_init sets */
    float init_a;
    struct ldm_param_entry *entry; /* a parameter's entry in its graph's store */
    ldm_buf buf;
    /* planning */
    int first, last; /* schedule positions of its first write and last read */
    int planned;
    size_t plan_off;
};

/* What an op's backward gets: the gradient of its output, where to put the gradient of each input
 * (mem NULL: not wanted), and whether to add to it (1) or overwrite it (0). */
typedef struct ldm_bwd_args {
    ldm_buf dout;
    ldm_buf din[LDM_MAX_IN];
    int acc[LDM_MAX_IN];
    ldm_buf scratch;
} ldm_bwd_args;

/* What an op class says about the tensors of its nodes, as bits: backward reads input i
 * (LDM_READS_IN), the result (LDM_READS_OUT) or the j-th tensor the forward saved
 * (LDM_READS_SAVED, output 1 + j); input i never gets a gradient (LDM_INPUT, in no_grad). The
 * memory planner keeps exactly what bwd_reads names alive until the node's backward step. */
#define LDM_INPUT(i) (1u << (i))
#define LDM_READS_IN(i) LDM_INPUT(i)
#define LDM_READS_OUTPUT_(o) (1u << (LDM_MAX_IN + (o)))
#define LDM_READS_OUT LDM_READS_OUTPUT_(0)
#define LDM_READS_SAVED(j) LDM_READS_OUTPUT_(1 + (j))

typedef ldm_status (*ldm_op_fwd_fn)(ldm_cmd *c, const ldm_node *n, ldm_buf scratch);
typedef ldm_status (*ldm_op_bwd_fn)(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a);

/* An op class, written with designated initialisers:
 *     static const ldm_op_class gn_op = {.name = "group_norm", .fwd = gn_fwd, .bwd = gn_bwd,
 *         .n_saved = 2, .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1) | LDM_READS_SAVED(0) |
 *         LDM_READS_SAVED(1)};
 * Fields left out are 0: no backward, nothing saved, nothing read, every input differentiable. */
typedef struct ldm_op_class {
    const char *name;
    ldm_op_fwd_fn fwd;
    /* NULL: the op has no backward; a gradient that must pass through it is an error. */
    ldm_op_bwd_fn bwd;
    size_t params_size; /* LDM_PARAMS_SIZE(its parameter struct); 0: it takes none */
    int n_saved;        /* tensors the forward saves for backward: outputs 1 .. n_saved */
    unsigned bwd_reads; /* LDM_READS_IN(i) | LDM_READS_OUT | LDM_READS_SAVED(j) */
    unsigned no_grad;   /* LDM_INPUT(i): input i never gets a gradient (indices, masks) */
} ldm_op_class;

/* 0, or a compile error when a T does not fit a node's parameter bytes. */
#define LDM_PARAMS_FIT_(T)                                                                         \
    (0 * sizeof(struct {                                                                           \
         _Static_assert(sizeof(T) <= LDM_NODE_PARAMS_BYTES, #T " does not fit a node's params");   \
         int fits_;                                                                                \
     }))
/* sizeof(T), for ldm_op_class.params_size. */
#define LDM_PARAMS_SIZE(T) (sizeof(T) + LDM_PARAMS_FIT_(T))
/* The recorder's parameter struct p for ldm_graph_add_node (its address and size), or none. */
#define LDM_PARAMS(p) (const void *)&(p), sizeof(p)
#define LDM_NO_PARAMS NULL, 0
/* A node's parameters as the T its op class takes (const T *), for the fwd and bwd functions. */
#define LDM_NODE_PARAMS(n, T) ((const T *)(const void *)((n)->params.bytes + LDM_PARAMS_FIT_(T)))

static inline int ldm_op_reads_input(const ldm_op_class *op, int i) {
    return (op->bwd_reads & LDM_READS_IN(i)) != 0;
}

/* Output o of a node: 0 the result, 1 + j the j-th saved tensor. */
static inline int ldm_op_reads_output(const ldm_op_class *op, int o) {
    return (op->bwd_reads & LDM_READS_OUTPUT_(o)) != 0;
}

static inline int ldm_op_no_grad(const ldm_op_class *op, int i) {
    return (op->no_grad & LDM_INPUT(i)) != 0;
}

struct ldm_node {
    const ldm_op_class *op;
    int index;
    char label[128];
    ldm_tensor *in[LDM_MAX_IN];
    int n_in;
    ldm_tensor *out[LDM_MAX_OUT]; /* out[0] the result; out[1 + j] saved for backward */
    int n_out;
    /* The op's parameter struct (op->params_size bytes), as the recorder filled it. */
    union {
        max_align_t align_;
        unsigned char bytes[LDM_NODE_PARAMS_BYTES];
    } params;
    size_t scratch_fwd, scratch_bwd; /* elements of scratch each direction needs */
    ldm_tensor *scratch_t[2];        /* planned scratch tensors (forward, backward) */
    int segment; /* gradient checkpointing: the segment it was recorded in (0: none) */
};

/* One step of the backward pass: a node's backward, or (recompute) the forward of a clone of a
 * checkpointed segment's node, run again ahead of the segment's backward steps, which read the
 * clones' tensors (gradient checkpointing). */
typedef struct ldm_bwd_step {
    int recompute;
    ldm_node *node;
    ldm_tensor *dout;
    ldm_tensor *din[LDM_MAX_IN];
    int acc[LDM_MAX_IN];
} ldm_bwd_step;

struct ldm_graph {
    ldm_ctx *ctx;
    ldm_status status;
    char *error;

    ldm_tensor **tensors;
    int n_tensors, cap_tensors;
    ldm_node **nodes;
    int n_nodes, cap_nodes;
    ldm_tensor **params; /* in creation order */
    int n_params, cap_params;
    ldm_params *store; /* where the parameters' values and gradients live (params.h) */
    /* the stretch of the store's trainable values (and gradients, laid out alike) that holds the
     * parameters this graph trains: its optimizer's, EMA's and training state's flat buffers */
    size_t span_off, span_count;

    ldm_tensor *step;            /* the device step counter, when something reads it */
    int batch_part, batch_parts; /* ldm_graph_set_batch_part; parts 0 means 1 */
    int half_weights;            /* ldm_graph_set_half_weights */
    ldm_lora_config lora;        /* ldm_graph_set_lora (rank 0: none) */
    /* gradient checkpointing (ldm_graph_set_checkpointing): the segment being recorded (0:
     * none), how deep segments are nested (inner ones are part of the outer), how many were
     * opened; the nodes recomputed in backward (clones of the segments' nodes, not in nodes) */
    int checkpointing, segment, segment_depth, n_segments;
    ldm_node **clones;
    int n_clones, cap_clones;
    size_t *bwd_end; /* compiled: the launches recorded up to the end of backward step j */

    /* backward */
    int has_backward;
    ldm_tensor *loss;
    ldm_tensor *seed; /* NULL: the loss gradient is ones */
    ldm_bwd_step *steps;
    int n_steps, cap_steps;

    /* compiled */
    int compiled;
    ldm_arena *constants, *inputs, *leaf_grads; /* leaf_grads: inputs' gradients */
    ldm_arena *activations[LDM_MAX_BANKS];      /* the planned buffer, in banks */
    int n_banks;
    ldm_cmd *cmd;
    ldm_graph_memory memory;
};

/* Adds a node of class op with its parameters (LDM_PARAMS(p) or LDM_NO_PARAMS: params_size
 * bytes copied into the node, which must be the class's params_size), the given inputs and a
 * result of the given shape. Returns the node (NULL after an error, which is recorded in g). Any
 * input NULL means an earlier error. */
ldm_node *ldm_graph_add_node(ldm_graph *g, const ldm_op_class *op, const void *params,
                             size_t params_size, const char *label, ldm_tensor *const *in, int n_in,
                             int ndim, const int *shape);
/* A scratch buffer of numel elements (sizes are size_t end to end: a scratch beyond INT_MAX
 * elements is planned and checked against the device like any tensor). */
ldm_tensor *ldm_graph_scratch(ldm_graph *g, const char *name, size_t numel);
/* Adds a saved output (statistics kept for backward) of the given shape to node n: the op class's
 * n_saved of them, in order, each the recorder's to make. */
ldm_tensor *ldm_node_add_saved(ldm_graph *g, ldm_node *n, int ndim, const int *shape);

/* A new tensor of g (kind, shape; name copied): NULL after an error, recorded in g. */
ldm_tensor *ldm_graph_new_tensor(ldm_graph *g, const char *name, tensor_kind kind, int ndim,
                                 const int *shape);

/* Gradient checkpointing (checkpointing.c, for backward.c): a copy of node n reading `in` (n->n_in
 * tensors) with new results of n's shapes, kept in g->clones (not among the forward nodes); and a
 * view shaped as `like` on base. NULL after an error, recorded in g. */
ldm_node *ldm_graph_clone_node(ldm_graph *g, const ldm_node *n, ldm_tensor *const *in);
ldm_tensor *ldm_graph_view_like(ldm_graph *g, const ldm_tensor *like, ldm_tensor *base);

/* The storage owner of a tensor (itself, or the base of a view). */
static inline ldm_tensor *ldm_storage(ldm_tensor *t) {
    return t->base ? t->base : t;
}

/* backward.c, plan.c */
ldm_status ldm_graph_build_backward(ldm_graph *g);
ldm_status ldm_graph_plan(ldm_graph *g, size_t bank_elems, size_t *peak_elems, size_t *total_elems);

#endif
