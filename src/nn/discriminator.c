/* src/nn/discriminator.c: the reference's PatchGAN discriminator (see ldmcl/discriminator.h). */
#include <stdio.h>
#include <string.h>

#include "blocks.h"
#include "fail.h"
#include "ldmcl/discriminator.h"
#include "ldmcl/ops.h"

void ldm_discriminator_config_default(ldm_discriminator_config *c, int im_channels) {
    memset(c, 0, sizeof *c);
    c->im_channels = im_channels;
    c->conv_channels[0] = 64;
    c->conv_channels[1] = 128;
    c->conv_channels[2] = 256;
    c->n_conv = 3;
}

ldm_tensor *ldm_discriminator(ldm_graph *g, const ldm_discriminator_config *c, ldm_tensor *x,
                              const char *prefix, int training, ldm_tensor *stats_gate) {
    if (!x || ldm_graph_status(g) != LDM_OK) return NULL;
    const char *p = prefix ? prefix : "";
    char sx[64];
    if (c->im_channels < 1 || c->n_conv < 1 || c->n_conv > LDM_DISC_MAX_LAYERS - 1)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "discriminator config: im_channels %d, %d hidden layers (1 to %d)",
                              c->im_channels, c->n_conv, LDM_DISC_MAX_LAYERS - 1);
    if (ldm_tensor_ndim(x) != 4 || ldm_tensor_dim(x, 1) != c->im_channels)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "discriminator: images '%s' %s must be [N, %d, H, W]",
                              ldm_tensor_name(x), ldm_shape_str(x, sx, sizeof sx), c->im_channels);
    int n_layers = c->n_conv + 1;
    ldm_tensor *out = x;
    for (int i = 0; i < n_layers && out; i++) {
        int last = i == n_layers - 1, cout = last ? 1 : c->conv_channels[i];
        /* A 4x4 conv with padding 1 needs at least a 2x2 input. */
        if (ldm_tensor_dim(out, 2) < 2 || ldm_tensor_dim(out, 3) < 2)
            return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                                  "discriminator: images '%s' %s are too small: layer %d gets "
                                  "%dx%d",
                                  ldm_tensor_name(x), ldm_shape_str(x, sx, sizeof sx), i,
                                  ldm_tensor_dim(out, 2), ldm_tensor_dim(out, 3));
        char name[160];
        snprintf(name, sizeof name, "%slayers.%d.0", p, i);
        out = nn_conv(g, name, out, cout, 4, last ? 1 : 2, 1, i == 0);
        if (last) break;
        if (i > 0) {
            ldm_tensor *w = nn_param(g, LDM_SHAPE(cout), "%slayers.%d.1.weight", p, i);
            ldm_tensor *b = nn_param(g, LDM_SHAPE(cout), "%slayers.%d.1.bias", p, i);
            ldm_tensor *rm = nn_param(g, LDM_SHAPE(cout), "%slayers.%d.1.running_mean", p, i);
            ldm_tensor *rv = nn_param(g, LDM_SHAPE(cout), "%slayers.%d.1.running_var", p, i);
            ldm_tensor_set_trainable(rm, 0);
            ldm_tensor_set_trainable(rv, 0);
            nn_init_norm(w, b);
            nn_init_norm(rv, rm); /* running_var 1, running_mean 0 */
            out = ldm_batch_norm(g, out, stats_gate, w, b, rm, rv, 0.1f, 1e-5f, training);
        }
        out = ldm_leaky_relu(g, out, 0.2f);
    }
    return out;
}

ldm_status ldm_discriminator_param_count(ldm_ctx *ctx, const ldm_discriminator_config *c,
                                         size_t *count) {
    *count = 0;
    ldm_graph *g;
    LDM_TRY(ldm_graph_create(ctx, &g));
    int size = 4;
    for (int i = 0; i < c->n_conv && i < LDM_DISC_MAX_LAYERS; i++)
        size *= 2;
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, c->im_channels, size, size));
    ldm_discriminator(g, c, x, NULL, 1, NULL);
    ldm_status st = ldm_graph_status(g);
    if (st != LDM_OK) st = ldm_restore_error(st, ldm_graph_error(g));
    for (size_t i = 0; i < ldm_graph_param_count(g) && st == LDM_OK; i++) {
        ldm_tensor *t = ldm_graph_param_at(g, i);
        if (!strstr(ldm_tensor_name(t), ".running_")) *count += ldm_tensor_numel(t);
    }
    ldm_graph_destroy(g);
    return st;
}
