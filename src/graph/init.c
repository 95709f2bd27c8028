/* src/graph/init.c: filling parameters by their initialisation rules (ldm_graph_init_params). */
#include <stdlib.h>

#include "graph_internal.h"
#include "philox.h"

/* FNV-1a of a name: the generator stream of its parameter. */
static uint32_t name_stream(const char *name) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

ldm_status ldm_graph_init_params(ldm_graph *g, uint64_t seed, int skip_unruled) {
    if (!g->compiled)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "initialising parameters: compile the graph first");
    for (int i = 0; i < g->n_params; i++) {
        ldm_tensor *t = g->params[i];
        if (t->init_kind == LDM_INIT_NONE) {
            if (skip_unruled) continue;
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "parameter '%s' has no initialisation rule (load it from a file)",
                            t->name);
        }
        float *v = malloc(t->numel * sizeof *v);
        if (!v)
            return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory initialising '%s'", t->name);
        if (t->init_kind == LDM_INIT_CONSTANT) {
            for (size_t k = 0; k < t->numel; k++)
                v[k] = t->init_a;
        } else {
            int normal = t->init_kind == LDM_INIT_NORMAL;
            ldm_philox_host(normal, t->numel, seed, name_stream(t->name), 0, v);
            for (size_t k = 0; k < t->numel; k++)
                v[k] = normal ? t->init_a * v[k] : t->init_a * (2.0f * v[k] - 1.0f);
        }
        ldm_status st = ldm_tensor_write(t, v);
        free(v);
        LDM_TRY(st);
    }
    return LDM_OK;
}
