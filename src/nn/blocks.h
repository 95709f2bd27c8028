/* src/nn/blocks.h: the reference's building blocks (models/blocks.py), recorded on a graph with
 * parameters named as its state_dict: the ResNet sub-block with a time embedding, and the self-
 * and cross-attention sub-blocks over a feature map. `prefix` is the owning module's name, e.g.
 * "downs.0"; `i` the index in its ModuleLists. */
#ifndef LDMCL_NN_BLOCKS_H
#define LDMCL_NN_BLOCKS_H

#include "ldmcl/graph.h"

/* The parameter `name` (printf-style) of the given shape: created on first use, found after. */
ldm_tensor *nn_param(ldm_graph *g, int ndim, const int *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* resnet_conv_first[i] (GroupNorm, SiLU, 3x3 conv) -> + t_emb_layers[i](t_emb) (SiLU, Linear)
 * when t_emb is given -> resnet_conv_second[i] -> + residual_input_conv[i](x) (1x1 conv). */
ldm_tensor *nn_resnet(ldm_graph *g, const char *prefix, int i, ldm_tensor *x, ldm_tensor *t_emb,
                      int out_channels, int norm_channels);

/* x + attentions[i](attention_norms[i](x) as [N, HW, C] tokens). */
ldm_tensor *nn_self_attention(ldm_graph *g, const char *prefix, int i, ldm_tensor *x, int heads,
                              int norm_channels);

/* x + cross_attentions[i](cross_attention_norms[i](x) tokens, context_proj[i](context)). */
ldm_tensor *nn_cross_attention(ldm_graph *g, const char *prefix, int i, ldm_tensor *x,
                               ldm_tensor *context, int heads, int norm_channels);

#endif
