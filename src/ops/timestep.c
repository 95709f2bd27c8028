/* src/ops/timestep.c: sinusoidal timestep embeddings as a constant table looked up by Embedding. */
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
