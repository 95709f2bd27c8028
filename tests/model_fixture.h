/* tests/model_fixture.h: a tiny text-conditioned model folder for the pipeline's and
 * ldmcl-sample's tests: 8x8 one-channel images, a VQ-VAE to 4x4x2 latents, a one-level UNet with
 * attention, CLIP from scratch (context 8), 50 timesteps; random weights from fixed seeds. */
#ifndef LDMCL_TESTS_MODEL_FIXTURE_H
#define LDMCL_TESTS_MODEL_FIXTURE_H

#include <stddef.h>

#include "ldmcl/ldmcl.h"

/* The model.ini text; the extras: more [diffusion], [ldm] and [autoencoder] lines. */
void fixture_model_ini(char *ini, size_t size, const char *diffusion_extra, const char *ldm_extra,
                       const char *ae_extra);

/* The weights into dir (the UNet's and the autoencoder's multiplied by unet_k and ae_k). */
void fixture_save_model(ldm_ctx *ctx, const ldm_run_config *c, const char *dir, float unet_k,
                        float ae_k);

/* A whole folder: model.ini (with the extra [diffusion] and [ldm] lines) and the weights. */
void fixture_model_folder(ldm_ctx *ctx, const char *dir, const char *diffusion_extra,
                          const char *ldm_extra);

#endif
