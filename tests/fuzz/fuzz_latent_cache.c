/* tests/fuzz/fuzz_latent_cache.c: libFuzzer target for the latent cache as stage two of a
 * training run reads it back (run_latent_cache_read in src/train/latent_cache.c, then what
 * runner_ldm.c does with it: patches as channels, the latent statistics and the normalisation).
 * The input is the latents.safetensors file, read under three runs of the default model
 * (z_channels 3): plain; random_flip with latent_patch 2 and per-channel scaling; global
 * scaling. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "runner_internal.h"

static char g_path[4200];
static ldm_run_config g_runs[3];
static volatile float g_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_path, sizeof g_path, "latents.safetensors");
    for (int k = 0; k < 3; k++) {
        ldm_run_config_init(&g_runs[k]);
        g_runs[k].model.resolution = 16; /* 4x4 latents, as the seeds hold */
    }
    g_runs[1].random_flip = 1;
    g_runs[1].model.latent_patch = 2;
    g_runs[1].model.latent_scaling = LDM_LATENT_CHANNEL;
    g_runs[2].model.latent_scaling = LDM_LATENT_GLOBAL;
    return 0;
}

/* runner_ldm.c's patch_cache and scale_cache, on the public functions they call. */
static void as_the_ldm_sees_it(const ldm_run_config *c, run_latents *l) {
    int p = c->model.latent_patch, hw = l->hw;
    float **zs[2] = {&l->z, &l->z_flipped};
    for (int k = 0; p > 1 && k < 2; k++) {
        if (!*zs[k]) continue;
        float *patched = malloc((l->n * l->lat ? l->n * l->lat : 1) * sizeof *patched);
        if (!patched) abort();
        ldm_latents_patchify(*zs[k], patched, l->n, c->model.ae.z_channels, hw, hw, p, 0);
        free(*zs[k]);
        *zs[k] = patched;
    }
    hw /= p;
    if (c->model.latent_scaling == LDM_LATENT_NONE) return;
    int z = ldm_model_latent_channels(&c->model);
    size_t plane = (size_t)hw * (size_t)hw;
    float mean[LDM_MODEL_MAX_LATENT_CHANNELS], std[LDM_MODEL_MAX_LATENT_CHANNELS];
    ldm_status st = ldm_latent_stats(c->model.latent_scaling, l->z, l->n, z, plane, mean, std);
    fuzz_status(st);
    if (st != LDM_OK) return;
    ldm_latents_normalize(l->z, l->n, z, plane, mean, std, 0);
    if (l->z_flipped) ldm_latents_normalize(l->z_flipped, l->n, z, plane, mean, std, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_path, data, size);
    for (int k = 0; k < 3; k++) {
        run_latents l;
        ldm_status st = run_latent_cache_read(&g_runs[k], g_path, 1000, &l);
        fuzz_status(st);
        if (st != LDM_OK) {
            if (l.z || l.idx || l.z_flipped) abort(); /* nothing is kept on failure */
            continue;
        }
        if (l.lat != (size_t)g_runs[k].model.ae.z_channels * (size_t)l.hw * (size_t)l.hw) abort();
        as_the_ldm_sees_it(&g_runs[k], &l);
        for (size_t i = 0; i < l.n; i++)
            g_sink += l.idx[i] + l.z[i * l.lat] + (l.z_flipped ? l.z_flipped[i * l.lat] : 0.0f);
        run_latents_free(&l);
    }
    return 0;
}
