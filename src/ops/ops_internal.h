/* src/ops/ops_internal.h: what the op families share: launch helpers and the graph internals. */
#ifndef LDMCL_OPS_INTERNAL_H
#define LDMCL_OPS_INTERNAL_H

#include <limits.h>

#include "graph_internal.h"
#include "kernel_args.h"
#include "ldmcl/ops.h"

/* One device class's work-group sizes and tiles, by op family (tunables.c). */
typedef struct ldm_tunables {
    int cpu_layout;        /* kernels laid out for CPU drivers: conv's *_rows, attention_rows.cl */
    size_t elementwise_wg; /* 1-D element-wise launches (ldm_launch_1d) */
    size_t norm_wg;        /* the reductions of norm.cl (-DWG) */
    size_t sum_rows_wg;    /* sum_rows of reduce.cl (-DWG) */
    size_t softmax_wg;     /* softmax.cl (-DWG) */
    size_t conv_local[2];  /* work-groups of im2col and col2im (or their *_rows variants) */
    int attn_tile[2];      /* GPU attention: queries and keys per tile (-DBQ, -DBK), at most */
    int attn_side;         /* GPU attention: work-groups of side x side work-items (-DT) */
    int attn_keys[2];      /* CPU attention: keys per block (-DBK), head dims up to 64 and above */
} ldm_tunables;

/* The table of the device class c's context runs on. */
const ldm_tunables *ldm_tunables_of(ldm_cmd *c);

/* Fails unless n fits the kernels' int indexing. */
static inline ldm_status ldm_check_count(const char *op, size_t n) {
    if (n > (size_t)INT_MAX)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s over %zu elements: at most %d per launch", op,
                        n, INT_MAX);
    return LDM_OK;
}

/* Launches a 1-D kernel over n work-items in groups of the element-wise work-group size. */
static inline ldm_status ldm_launch_1d(ldm_cmd *c, cl_kernel k, size_t n) {
    size_t global = n, local = ldm_tunables_of(c)->elementwise_wg;
    return ldm_cmd_launch(c, k, 1, &global, &local);
}

/* A buffer argument that a kernel variant ignores: any valid buffer will do. */
static inline ldm_buf ldm_unused_or(ldm_buf b, ldm_buf fallback) {
    return b.mem ? b : fallback;
}

#endif
