/* src/core/tunables.h: the work-group sizes and tiles of the op families for one context,
 * resolved when it opens: defaults by kernel layout (ldm_ctx_cpu_kernels) and by the device's
 * compute units, work-group limit and local memory (never by vendor name), then the device's
 * tunables file in the kernel cache directory (written by `ldmcl-bench --tune`), then
 * $LDMCL_TUNABLES. Both use one text form, entries apart by spaces, commas between values:
 *   attn_tile=32,16 attn_side=8 norm_wg=256 ...
 * A family reads its entries here and nowhere else; sizes a kernel fixes itself
 * (reqd_work_group_size(16, 16, 1) of sum_cols, layer_norm_bwd_params and transpose12) and those
 * that fix a scratch size at recording, before any device is known (the reductions' first
 * stage, conv's chunk budget, GroupNorm's most splits), stay in their family. */
#ifndef LDMCL_CORE_TUNABLES_H
#define LDMCL_CORE_TUNABLES_H

#include <stddef.h>

#include "ldmcl/context.h"

typedef struct ldm_tunables {
    int cpu_layout;        /* kernels laid out for CPU drivers: conv's *_rows, attention_rows.cl */
    size_t elementwise_wg; /* 1-D element-wise launches (ldm_launch_1d) */
    size_t norm_wg;        /* the reductions of norm.cl, group_norm.cl (-DWG) */
    size_t sum_rows_wg;    /* sum_rows of reduce.cl (-DWG) */
    size_t softmax_wg;     /* softmax.cl (-DWG) */
    size_t conv_local[2];  /* work-groups of im2col and col2im (or their *_rows variants) */
    int conv_batched;      /* GPU conv: strided-batched GEMMs on images in place (default), else
                              one GEMM per chunk and a transposed copy (conv.c) */
    int attn_tile[2];      /* GPU attention: queries and keys per tile (-DBQ, -DBK), at most */
    int attn_side;         /* GPU attention: work-groups of side x side work-items (-DT) */
    int attn_keys[2];      /* CPU attention: keys per block (-DBK), head dims up to 64 and above */
    int norm_split_groups; /* GPU GroupNorm: split each group's sums while fewer work-groups than
                              this would run (0: never) */
    int norm_split_min;    /* GPU GroupNorm: elements per split, at least */
} ldm_tunables;

/* The context's table. */
const ldm_tunables *ldm_ctx_tunables(const ldm_ctx *ctx);

/* Resolves ctx's table (ldm_ctx_create); fails naming the file or variable and the entry. */
ldm_status ldm_tunables_resolve(ldm_ctx *ctx);

/* Parses text (entries as above) over *t; `where` names its source in errors. */
ldm_status ldm_tunables_parse(const char *where, const char *text, ldm_tunables *t);

/* Writes every entry of t as text in buf (one line). */
void ldm_tunables_format(const ldm_tunables *t, char *buf, size_t size);

/* The path of the device's tunables file in the kernel cache directory, one per kernel layout. */
ldm_status ldm_tunables_path(const ldm_ctx *ctx, char *buf, size_t size);

/* Writes t as the device's tunables file (atomically), with a comment line; and makes it ctx's
 * table. */
ldm_status ldm_tunables_save(ldm_ctx *ctx, const ldm_tunables *t, const char *comment);

#endif
