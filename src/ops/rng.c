/* src/ops/rng.c: device random numbers (cl/rng.cl), and their host twin (src/core/philox.c),
 * both from the single source cl/philox.clh. */
#include <string.h>

#include "ops_internal.h"
#include "philox.h"

void ldm_rng_host(ldm_dist dist, size_t n, uint64_t seed, uint32_t stream, uint64_t step,
                  float *out) {
    ldm_philox_host(dist == LDM_DIST_NORMAL, n, seed, stream, step, out);
}

void ldm_rng_host_part(ldm_dist dist, uint64_t first, size_t n, uint64_t seed, uint32_t stream,
                       uint64_t step, float *out) {
    ldm_philox_host_part(dist == LDM_DIST_NORMAL, first, n, seed, stream, step, out);
}

ldm_status ldm_rng_fill_part(ldm_cmd *c, ldm_dist dist, uint64_t first, size_t n, uint64_t seed,
                             uint32_t stream, uint64_t step_add, ldm_buf counter, float scale,
                             float shift, ldm_buf out) {
    LDM_TRY(ldm_check_count("random numbers", n));
    if (dist != LDM_DIST_UNIFORM && dist != LDM_DIST_NORMAL && dist != LDM_DIST_INTEGER)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "unknown distribution %d", (int)dist);
    if ((first + n + 3) / 4 > (uint64_t)UINT32_MAX + 1)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "random numbers %llu .. %llu: past the generator's 2^34 per key",
                        (unsigned long long)first, (unsigned long long)(first + n));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, "rng.cl", "rng_fill", NULL, &k));
    LDM_TRY(ldm_args_rng_fill(k, (int)n, first, seed, (unsigned)stream, step_add, (int)dist, scale,
                              shift, ldm_unused_or(counter, out), counter.mem != NULL, out));
    return ldm_launch_1d(c, k, (size_t)((first + n + 3) / 4 - first / 4));
}

ldm_status ldm_rng_fill(ldm_cmd *c, ldm_dist dist, size_t n, uint64_t seed, uint32_t stream,
                        uint64_t step_add, ldm_buf counter, float scale, float shift, ldm_buf out) {
    return ldm_rng_fill_part(c, dist, 0, n, seed, stream, step_add, counter, scale, shift, out);
}

/* ---- graph level -------------------------------------------------------------------------- */

/* What ldm_rng_fill draws for a random node; input 0 is the step counter. */
typedef struct random_params {
    ldm_dist dist;
    uint32_t stream;
    uint64_t seed, first; /* first: the element of the whole batch's draw this part starts at */
    float scale, shift;
} random_params;

static ldm_status random_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const random_params *p = LDM_NODE_PARAMS(n, random_params);
    return ldm_rng_fill_part(c, p->dist, p->first, n->out[0]->numel, p->seed, p->stream, 0,
                             ldm_tensor_buf(n->in[0]), p->scale, p->shift,
                             ldm_tensor_buf(n->out[0]));
}

static const ldm_op_class random_op = {
    .name = "random",
    .fwd = random_fwd,
    .params_size = LDM_PARAMS_SIZE(random_params),
    .no_grad = LDM_INPUT(0),
};

ldm_tensor *ldm_random(ldm_graph *g, ldm_dist dist, int ndim, const int *shape, uint64_t seed,
                       uint32_t stream, float scale, float shift) {
    ldm_tensor *step = ldm_graph_step_counter(g);
    if (!step) return NULL;
    int part, parts;
    ldm_graph_batch_part(g, &part, &parts);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (uint64_t)(shape[i] > 0 ? shape[i] : 0);
    random_params p = {dist, stream, seed, (uint64_t)part * numel, scale, shift};
    ldm_node *n = ldm_graph_add_node(g, &random_op, LDM_PARAMS(p), "random", &step, 1, ndim, shape);
    return n ? n->out[0] : NULL;
}
