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

/* w, or w + alpha / rank * up . down when the graph's LoRA configuration targets the weight
 * `name` (ldmcl/lora_adapter.h; the adapters created on first use). nn_param calls it. */
ldm_tensor *nn_lora_adapt(ldm_graph *g, const char *name, ldm_tensor *w);

/* PyTorch's default initialisation of a Conv2d / Linear / ConvTranspose2d with this fan-in
 * (in_channels * k * k; for a transposed conv out_channels * k * k): weight and bias uniform in
 * +-1/sqrt(fan_in). Either may be NULL. */
void nn_init_fan_in(ldm_tensor *w, ldm_tensor *b, int fan_in);
/* A normalisation layer's affine parameters: weight 1, bias 0. */
void nn_init_norm(ldm_tensor *w, ldm_tensor *b);

/* Conv2d `name` (weight [cout, cin, k, k], bias [cout] if bias) of x at stride and padding. */
ldm_tensor *nn_conv(ldm_graph *g, const char *name, ldm_tensor *x, int cout, int k, int stride,
                    int pad, int bias);

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

/* DownBlock: [resnet_i (-> out_channels) -> self-attention_i if attn -> cross-attention_i if
 * context] for i < layers, then down_sample_conv (4x4 s2 p1) if down_sample. t_emb, context may
 * be NULL. */
ldm_tensor *nn_down_block(ldm_graph *g, const char *prefix, ldm_tensor *x, ldm_tensor *t_emb,
                          ldm_tensor *context, int out_channels, int layers, int attn,
                          int down_sample, int heads, int norm_channels);

/* MidBlock: resnet_0, then [self-attention_i -> cross-attention_i if context -> resnet_{i+1}]. */
ldm_tensor *nn_mid_block(ldm_graph *g, const char *prefix, ldm_tensor *x, ldm_tensor *t_emb,
                         ldm_tensor *context, int out_channels, int layers, int heads,
                         int norm_channels);

/* UpBlock / UpBlockUnet: up_sample_conv (4x4 s2 p1 transposed, channels kept) if up_sample,
 * concat(x, skip) if skip, then [resnet_i -> self-attention_i if attn -> cross-attention_i if
 * context]. */
ldm_tensor *nn_up_block(ldm_graph *g, const char *prefix, ldm_tensor *x, ldm_tensor *skip,
                        ldm_tensor *t_emb, ldm_tensor *context, int out_channels, int layers,
                        int attn, int up_sample, int heads, int norm_channels);

#endif
