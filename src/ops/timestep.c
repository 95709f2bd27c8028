/* src/ops/timestep.c: sinusoidal timestep embeddings: the reference's as a constant table looked
 * up by Embedding; Stable Diffusion's computed per timestep (cl/embedding.cl). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops_internal.h"

void ldm_timestep_table(int T, int dim, float *table) {
    int half = dim / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double factor = pow(10000.0, (double)i / half);
            table[(size_t)t * dim + i] = (float)sin(t / factor);
            table[(size_t)t * dim + half + i] = (float)cos(t / factor);
        }
}

ldm_tensor *ldm_timestep_embedding(ldm_graph *g, ldm_tensor *t, int dim, int T) {
    if (!t) return NULL;
    if (dim < 2 || dim % 2 || T < 1 || T > 1000000 || (size_t)T * (size_t)dim > ((size_t)1 << 28))
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "timestep_embedding: dimension %d must be even and positive, and "
                              "%d timesteps at most 1000000",
                              dim, T);
    char name[64];
    snprintf(name, sizeof name, "timestep_table_%dx%d", T, dim);
    ldm_tensor *table = ldm_graph_find(g, name);
    if (!table) {
        float *data = malloc((size_t)T * (size_t)dim * sizeof *data);
        if (!data) return LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
        ldm_timestep_table(T, dim, data);
        int shape[2] = {T, dim};
        table = ldm_graph_constant(g, name, 2, shape, data);
        free(data);
    }
    return ldm_embedding(g, t, table);
}

typedef struct sinusoid_params {
    int cos_first;
} sinusoid_params;

static ldm_status sinusoid_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)scratch;
    const ldm_tensor *y = n->out[0];
    int half = y->shape[1] / 2;
    size_t total = (size_t)y->shape[0] * (size_t)half;
    LDM_TRY(ldm_check_count("timestep_sinusoidal", total));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, "embedding.cl", "timestep_sinusoid", NULL, &k));
    LDM_TRY(ldm_args_timestep_sinusoid(
        k, (int)total, half, LDM_NODE_PARAMS(n, sinusoid_params)->cos_first,
        ldm_tensor_buf(n->out[0]), ldm_tensor_buf(n->in[0]), ldm_tensor_buf(n->in[1])));
    return ldm_launch_1d(c, k, total);
}

/* Timesteps and frequencies are data: nothing flows back to them. */
static const ldm_op_class sinusoid_op = {
    .name = "timestep_sinusoidal",
    .fwd = sinusoid_fwd,
    .params_size = LDM_PARAMS_SIZE(sinusoid_params),
    .no_grad = LDM_INPUT(0) | LDM_INPUT(1),
};

ldm_tensor *ldm_timestep_sinusoidal(ldm_graph *g, ldm_tensor *t, int dim, int cos_first,
                                    float freq_shift) {
    if (!t) return NULL;
    int half = dim / 2;
    if (dim < 2 || dim % 2 || dim > (1 << 20) || t->ndim != 1 || !(freq_shift < (float)half))
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "timestep_sinusoidal: '%s' must be [N] and the dimension %d even "
                              "and positive, above twice the shift %g",
                              t->name, dim, (double)freq_shift);
    char name[64];
    snprintf(name, sizeof name, "timestep_freq_%d_%g", dim, (double)freq_shift);
    ldm_tensor *freq = ldm_graph_find(g, name);
    if (!freq) {
        float *data = malloc((size_t)half * sizeof *data);
        if (!data) return LDM_GRAPH_FAIL(g, LDM_ERR_HOST_MEMORY, "out of host memory");
        for (int i = 0; i < half; i++)
            data[i] = (float)exp(-log(10000.0) * i / (half - (double)freq_shift));
        int shape[1] = {half};
        freq = ldm_graph_constant(g, name, 1, shape, data);
        free(data);
    }
    ldm_tensor *in[2] = {t, freq};
    int shape[2] = {t->shape[0], dim};
    sinusoid_params p = {cos_first != 0};
    ldm_node *n =
        ldm_graph_add_node(g, &sinusoid_op, LDM_PARAMS(p), "timestep_sinusoidal", in, 2, 2, shape);
    return n ? n->out[0] : NULL;
}
