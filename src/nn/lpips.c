/* src/nn/lpips.c: the LPIPS perceptual distance over VGG16 features (see ldmcl/lpips.h). */
#include <stdio.h>
#include <string.h>

#include "blocks.h"
#include "fail.h"
#include "ldmcl/lpips.h"
#include "ldmcl/ops.h"

void ldm_lpips_config_default(ldm_lpips_config *c) {
    const int widths[5] = {64, 128, 256, 512, 512};
    memcpy(c->channels, widths, sizeof widths);
}

/* VGG16's stages: the number of 3x3 convs in each, and the torchvision feature index of the
 * first (the later ones follow every 2 indices: conv, ReLU). */
static const int stage_convs[5] = {2, 2, 3, 3, 3};
static const int stage_first[5] = {0, 5, 10, 17, 24};

/* The scaling layer as a fixed 1x1 conv from C (1 or 3) to 3 channels:
 * (x - shift[k]) / scale[k] = x * (1/scale[k]) - shift[k]/scale[k], broadcast from one channel. */
static ldm_tensor *scaling_layer(ldm_graph *g, const char *p, ldm_tensor *x) {
    static const float shift[3] = {-0.030f, -0.088f, -0.188f}, scale[3] = {0.458f, 0.448f, 0.450f};
    int cin = ldm_tensor_dim(x, 1);
    float w[9] = {0}, b[3];
    for (int k = 0; k < 3; k++) {
        w[k * cin + (cin == 3 ? k : 0)] = 1.0f / scale[k];
        b[k] = -shift[k] / scale[k];
    }
    char wn[160], bn[160];
    snprintf(wn, sizeof wn, "%sscaling_layer.conv%d.weight", p, cin);
    snprintf(bn, sizeof bn, "%sscaling_layer.conv%d.bias", p, cin);
    ldm_tensor *wt = ldm_graph_constant(g, wn, LDM_SHAPE(3, cin, 1, 1), w);
    ldm_tensor *bt = ldm_graph_constant(g, bn, LDM_SHAPE(3), b);
    return ldm_conv2d(g, x, wt, bt, 1, 0);
}

static ldm_tensor *frozen(ldm_tensor *t) {
    if (t) ldm_tensor_set_trainable(t, 0);
    return t;
}

/* The five feature maps of VGG16 for x (after the scaling layer). */
static void vgg16_features(ldm_graph *g, const ldm_lpips_config *c, const char *p, ldm_tensor *x,
                           ldm_tensor *feats[5]) {
    ldm_tensor *h = x;
    for (int s = 0; s < 5; s++) {
        if (s > 0) h = ldm_max_pool2d(g, h, 2, 2);
        for (int k = 0; k < stage_convs[s]; k++) {
            int idx = stage_first[s] + 2 * k, cin = ldm_tensor_dim(h, 1), cout = c->channels[s];
            ldm_tensor *w = frozen(
                nn_param(g, LDM_SHAPE(cout, cin, 3, 3), "%snet.slice%d.%d.weight", p, s + 1, idx));
            ldm_tensor *b =
                frozen(nn_param(g, LDM_SHAPE(cout), "%snet.slice%d.%d.bias", p, s + 1, idx));
            h = ldm_relu(g, ldm_conv2d(g, h, w, b, 1, 1));
            if (!h) return;
        }
        feats[s] = h;
    }
}

ldm_tensor *ldm_lpips(ldm_graph *g, const ldm_lpips_config *c, ldm_tensor *a, ldm_tensor *b,
                      const char *prefix) {
    if (!a || !b || ldm_graph_status(g) != LDM_OK) return NULL;
    const char *p = prefix ? prefix : "";
    if (!ldm_check_same_shape(g, "lpips", a, b)) return NULL;
    char sa[64];
    if (ldm_tensor_ndim(a) != 4 || (ldm_tensor_dim(a, 1) != 1 && ldm_tensor_dim(a, 1) != 3) ||
        ldm_tensor_dim(a, 2) < 16 || ldm_tensor_dim(a, 3) < 16)
        return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT,
                              "lpips: images '%s' %s must be [N, 1 or 3, H, W] with H, W >= 16 "
                              "(VGG16 pools four times)",
                              ldm_tensor_name(a), ldm_shape_str(a, sa, sizeof sa));
    for (int s = 0; s < 5; s++)
        if (c->channels[s] < 1)
            return LDM_GRAPH_FAIL(g, LDM_ERR_INVALID_ARGUMENT, "lpips: stage %d has width %d", s,
                                  c->channels[s]);
    ldm_tensor *fa[5] = {0}, *fb[5] = {0};
    vgg16_features(g, c, p, scaling_layer(g, p, a), fa);
    vgg16_features(g, c, p, scaling_layer(g, p, b), fb);
    ldm_tensor *total = NULL;
    for (int s = 0; s < 5; s++) {
        ldm_tensor *d =
            ldm_sub(g, ldm_l2_normalize(g, fa[s], 1e-12f), ldm_l2_normalize(g, fb[s], 1e-12f));
        ldm_tensor *w =
            frozen(nn_param(g, LDM_SHAPE(1, c->channels[s], 1, 1), "%slin%d.model.1.weight", p, s));
        /* mean over (N, 1, H, W) of the 1x1 conv = the batch mean of the spatial means */
        ldm_tensor *m = ldm_mean(g, ldm_conv2d(g, ldm_mul(g, d, d), w, NULL, 1, 0));
        total = total ? ldm_add(g, total, m) : m;
    }
    return total;
}
