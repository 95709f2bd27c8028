/* ldmcl/discriminator.h: the reference's PatchGAN discriminator (models/discriminator.py):
 * layers.0: 4x4 s2 p1 conv with bias -> LeakyReLU(0.2); layers.1 .. n-2: 4x4 s2 p1 conv without
 * bias -> BatchNorm2d -> LeakyReLU(0.2); the last: 4x4 s1 p1 conv to one channel, no bias, no
 * activation. A 256x256 image gives 31x31 patch logits. Parameters are named as its state_dict
 * ("layers.1.0.weight", "layers.1.1.running_mean"; num_batches_tracked is not kept: BatchNorm's
 * momentum is fixed at 0.1, which never reads it). */
#ifndef LDMCL_DISCRIMINATOR_H
#define LDMCL_DISCRIMINATOR_H

#include <stddef.h>

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_DISC_MAX_LAYERS 8

typedef struct ldm_discriminator_config {
    int im_channels;
    int conv_channels[LDM_DISC_MAX_LAYERS]; /* the hidden layers' widths: [64, 128, 256] */
    int n_conv;
} ldm_discriminator_config;

/* The reference's: [64, 128, 256] (663,360 parameters for 3 channels, 661,312 for 1). */
void ldm_discriminator_config_default(ldm_discriminator_config *c, int im_channels);

/* Records the discriminator on x [N, im_channels, H, W] (H, W >= 16 for the default) with its
 * parameters named prefix + the state_dict name (prefix may be NULL). BatchNorm normalises by
 * batch statistics and updates its running ones when training, as the reference (always in
 * training mode) does, unless stats_gate (one value; may be NULL) is 0: a pass the reference
 * would not have made (the generator's before the adversarial loss starts) then leaves them
 * alone; running_mean/var are frozen parameters. Returns logits [N, 1, h, w]. */
ldm_tensor *ldm_discriminator(ldm_graph *g, const ldm_discriminator_config *c, ldm_tensor *x,
                              const char *prefix, int training, ldm_tensor *stats_gate);

/* Number of parameters (running statistics not counted, as in PyTorch's parameters()). */
ldm_status ldm_discriminator_param_count(ldm_ctx *ctx, const ldm_discriminator_config *c,
                                         size_t *count);

#ifdef __cplusplus
}
#endif
#endif
