/* src/sample/latents.c: the autoencoder's latents as the LDM sees them: their shape, the
 * statistics that put them on the scale the diffusion expects (ldm_latent_stats,
 * ldm_latents_normalize) and their patches as channels (ldm_latents_patchify; see
 * ldmcl/model.h). */
#include <math.h>

#include "fail.h"
#include "ldmcl/model.h"

ldm_status ldm_latent_stats(ldm_latent_scaling scaling, const float *z, size_t n, int channels,
                            size_t hw, float *mean, float *std) {
    if (channels < 1 || channels > LDM_MODEL_MAX_LATENT_CHANNELS || n == 0 || hw == 0)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "latent statistics of %zu items of %d channels x %zu values", n, channels,
                        hw);
    for (int c = 0; c < channels; c++)
        mean[c] = 0.0f, std[c] = 1.0f;
    if (scaling == LDM_LATENT_NONE) return LDM_OK;
    double sum[LDM_MODEL_MAX_LATENT_CHANNELS] = {0}, sq[LDM_MODEL_MAX_LATENT_CHANNELS] = {0};
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < channels; c++) {
            const float *v = z + (i * (size_t)channels + (size_t)c) * hw;
            for (size_t k = 0; k < hw; k++) {
                sum[c] += v[k];
                sq[c] += (double)v[k] * v[k];
            }
        }
    double count = (double)n * (double)hw;
    if (scaling == LDM_LATENT_GLOBAL) {
        double s = 0, q = 0;
        for (int c = 0; c < channels; c++)
            s += sum[c], q += sq[c];
        double m = s / (count * channels), var = q / (count * channels) - m * m;
        if (!(var > 1e-12))
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "latent_scaling = global: the latents are constant (%g), nothing to "
                            "scale by",
                            m);
        for (int c = 0; c < channels; c++)
            std[c] = (float)sqrt(var);
        return LDM_OK;
    }
    for (int c = 0; c < channels; c++) {
        double m = sum[c] / count, var = sq[c] / count - m * m;
        if (!(var > 1e-12))
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "latent_scaling = channel: latent channel %d is constant (%g), nothing "
                            "to scale by",
                            c, m);
        mean[c] = (float)m;
        std[c] = (float)sqrt(var);
    }
    return LDM_OK;
}

void ldm_latents_normalize(float *z, size_t n, int channels, size_t hw, const float *mean,
                           const float *std, int inverse) {
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < channels; c++) {
            float *v = z + (i * (size_t)channels + (size_t)c) * hw;
            for (size_t k = 0; k < hw; k++)
                v[k] = inverse ? v[k] * std[c] + mean[c] : (v[k] - mean[c]) / std[c];
        }
}

int ldm_model_latent_channels(const ldm_model_config *c) {
    int p = c->latent_patch > 1 ? c->latent_patch : 1;
    return c->ae.z_channels * p * p;
}

int ldm_model_latent_size(const ldm_model_config *c) {
    int p = c->latent_patch > 1 ? c->latent_patch : 1;
    return ldm_autoencoder_latent_size(&c->ae, c->resolution) / p;
}

void ldm_latents_patchify(const float *z, float *out, size_t n, int channels, int h, int w, int p,
                          int inverse) {
    /* (c, y, x) of the patched tensor [C, H, W] <-> (c / p^2, y p + i, x p + j) of the plain
     * one [C / p^2, H p, W p] */
    int pc = inverse ? channels : channels * p * p, ph = inverse ? h : h / p,
        pw = inverse ? w : w / p;
    size_t per = (size_t)pc * (size_t)ph * (size_t)pw;
    for (size_t b = 0; b < n; b++)
        for (int c = 0; c < pc; c++)
            for (int y = 0; y < ph; y++)
                for (int x = 0; x < pw; x++) {
                    int k = c / (p * p), i = c / p % p, j = c % p;
                    size_t patched = ((size_t)c * ph + (size_t)y) * pw + (size_t)x;
                    size_t plain =
                        ((size_t)k * ph * p + (size_t)(y * p + i)) * pw * p + (size_t)(x * p + j);
                    if (inverse)
                        out[b * per + plain] = z[b * per + patched];
                    else
                        out[b * per + patched] = z[b * per + plain];
                }
}
