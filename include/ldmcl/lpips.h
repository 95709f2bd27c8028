/* ldmcl/lpips.h: the LPIPS perceptual distance as the reference uses it (models/lpips.py, after
 * richzhang/PerceptualSimilarity v0.1, 'vgg'): inputs in [-1, 1] scaled by (x - shift) / scale
 * (shift -0.030, -0.088, -0.188; scale 0.458, 0.448, 0.450; one-channel images broadcast to
 * three), VGG16's feature stack up to relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 (3x3 convs
 * with ReLU, 2x2 max pools between the stages), F.normalize over channels, squared difference, the
 * learned 1x1 convs lin0..lin4 (no bias; dropout off, as in eval mode), spatial mean, sum over
 * the five. The whole network is frozen; the gradient flows to the first input.
 *
 * Parameters are named as the reference LPIPS module's state_dict: net.slice1.0.weight ...
 * net.slice5.28.bias (torchvision's feature indices), lin0.model.1.weight ... lin4. Pretrained
 * weights do not ship with ldmcl: tools/convert_lpips.py writes them from torchvision's VGG16 and
 * the LPIPS v0.1 linear layers into one safetensors file. */
#ifndef LDMCL_LPIPS_H
#define LDMCL_LPIPS_H

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_lpips_config {
    int channels[5]; /* the widths of VGG16's five stages: 64, 128, 256, 512, 512 */
} ldm_lpips_config;

void ldm_lpips_config_default(ldm_lpips_config *c);

/* The mean over the batch of LPIPS(a[n], b[n]) for images a, b [N, C, H, W] with C = 1 or 3 and
 * H, W >= 16: a tensor [1]. Parameters are named prefix + the state_dict name (prefix may be NULL)
 * and frozen; load them with ldm_graph_load (graph_prefix = prefix). */
ldm_tensor *ldm_lpips(ldm_graph *g, const ldm_lpips_config *c, ldm_tensor *a, ldm_tensor *b,
                      const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
