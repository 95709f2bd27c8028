/* src/ops/ops_internal.h: what the op families share: launch helpers and the graph internals. */
#ifndef LDMCL_OPS_INTERNAL_H
#define LDMCL_OPS_INTERNAL_H

#include <limits.h>

#include "graph_internal.h"
#include "kernel_args.h"
#include "tunables.h"
#include "ldmcl/ops.h"

/* The work-group sizes and tiles of c's context (src/core/tunables.h). */
static inline const ldm_tunables *ldm_tunables_of(ldm_cmd *c) {
    return ldm_ctx_tunables(ldm_cmd_ctx(c));
}

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
