/* tools/bench_sd.c: ldmcl-bench --bench sd: a Stable Diffusion model (a checkpoint, or SD 1.5's
 * or 2.1's published configs with random weights) at 256x256 and 512x512: one sampling step with
 * classifier-free guidance (one UNet forward at batch 2), the VAE's decode of one image, and the
 * device memory each holds (weights, planned activations, the context's buffers). Device times
 * from profiling events, after warm-up, medians of repeats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Random weights: N(0, 0.02) drawn on the device; half-precision ones drawn on the host (uniform
 * of the same spread) and converted as they are written. */
ldm_status bench_sd_random_weights(ldm_ctx *ctx, ldm_graph *g) {
    ldm_cmd *c = ldm_ctx_immediate(ctx);
    ldm_buf none = {NULL, 0};
    uint32_t x = 12345;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        size_t n = ldm_tensor_numel(p);
        if (!ldm_tensor_is_half(p)) {
            BENCH_TRY(ldm_rng_fill(c, LDM_DIST_NORMAL, n, 5, (uint32_t)i, 0, none, 0.02f, 0.0f,
                                   ldm_tensor_buf(p)));
            continue;
        }
        float *v = malloc(n * sizeof *v);
        if (!v) return LDM_ERR_HOST_MEMORY;
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            v[k] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.07f;
        }
        ldm_status st = ldm_tensor_write(p, v);
        free(v);
        BENCH_TRY(st);
    }
    return ldm_ctx_finish(ctx);
}

ldm_status bench_sd_random_inputs(ldm_ctx *ctx, ldm_tensor **in, int n_in) {
    ldm_cmd *c = ldm_ctx_immediate(ctx);
    ldm_buf none = {NULL, 0};
    for (int i = 0; i < n_in; i++)
        BENCH_TRY(ldm_rng_fill(c, LDM_DIST_NORMAL, ldm_tensor_numel(in[i]), 6, (uint32_t)i, 0, none,
                               1.0f, 0.0f, ldm_tensor_buf(in[i])));
    return ldm_ctx_finish(ctx);
}

static ldm_status run_graph(void *g) {
    return ldm_graph_run(g);
}

/* One guided sampling step's UNet forward (batch 2) at side x side pixels. */
static ldm_status unet_step(ldm_ctx *ctx, const bench_settings *s, const ldm_sd_model *m,
                            int random, int half, int side, FILE *json) {
    int lat = side / 8;
    ldm_graph *g;
    BENCH_TRY(ldm_graph_create(ctx, &g));
    ldm_graph_set_half_weights(g, half);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(2, m->unet.in_channels, lat, lat));
    ldm_tensor *t = ldm_graph_input(g, "t", LDM_SHAPE(2));
    ldm_tensor *c = ldm_graph_input(g, "context", LDM_SHAPE(2, 77, m->unet.context_dim));
    ldm_tensor_keep(ldm_sd_unet(g, &m->unet, x, t, c));
    for (size_t i = 0; i < ldm_graph_param_count(g); i++)
        ldm_tensor_set_trainable(ldm_graph_param_at(g, i), 0);
    ldm_status st = ldm_graph_compile(g);
    ldm_tensor *ins[2] = {x, c};
    if (st == LDM_OK) st = random ? bench_sd_random_weights(ctx, g) : ldm_sd_load_unet(m, g);
    if (st == LDM_OK) st = bench_sd_random_inputs(ctx, ins, 2);
    float tv[2] = {500.0f, 500.0f};
    if (st == LDM_OK) st = ldm_tensor_write(t, tv);
    double ms = 0;
    if (st == LDM_OK) st = bench_time(ctx, s, run_graph, g, &ms);
    if (st == LDM_OK) {
        ldm_graph_memory mem = ldm_graph_memory_report(g);
        char w[32], a[32], all[32];
        printf("  %dx%d, guided step (UNet at batch 2): %.0f ms; weights %s, activations %s "
               "planned, %s on the device in all\n",
               side, side, ms, ldm_format_bytes(mem.frozen_bytes, w, 32),
               ldm_format_bytes(mem.activation_bytes, a, 32),
               ldm_format_bytes(ldm_ctx_device_bytes_in_use(ctx), all, 32));
        if (json)
            fprintf(json,
                    "  \"sd_step_%d\": {\"ms\": %.3f, \"activation_bytes\": %llu, "
                    "\"device_bytes\": %llu},\n",
                    side, ms, (unsigned long long)mem.activation_bytes,
                    (unsigned long long)ldm_ctx_device_bytes_in_use(ctx));
    }
    ldm_graph_destroy(g);
    return st;
}

/* The VAE decoding one image of side x side pixels. */
static ldm_status vae_decode(ldm_ctx *ctx, const bench_settings *s, const ldm_sd_model *m,
                             int random, int half, int side, FILE *json) {
    int lat = side / 8;
    ldm_graph *g;
    BENCH_TRY(ldm_graph_create(ctx, &g));
    ldm_graph_set_half_weights(g, half);
    ldm_tensor *z = ldm_graph_input(g, "z", LDM_SHAPE(1, m->vae.embed_dim, lat, lat));
    ldm_tensor_keep(ldm_sd_vae_decode(g, &m->vae, z));
    for (size_t i = 0; i < ldm_graph_param_count(g); i++)
        ldm_tensor_set_trainable(ldm_graph_param_at(g, i), 0);
    ldm_status st = ldm_graph_compile(g);
    if (st == LDM_ERR_DEVICE_MEMORY) { /* reported, not an error: the next size may fit */
        printf("  %dx%d, VAE decode of one image: does not fit on this device (%s); "
               "ldmcl-sample --vae-tiling decodes it in tiles\n",
               side, side, ldm_last_error());
        ldm_graph_destroy(g);
        return LDM_OK;
    }
    if (st == LDM_OK) st = random ? bench_sd_random_weights(ctx, g) : ldm_sd_load_vae(m, g);
    if (st == LDM_OK) st = bench_sd_random_inputs(ctx, &z, 1);
    double ms = 0;
    if (st == LDM_OK) st = bench_time(ctx, s, run_graph, g, &ms);
    if (st == LDM_OK) {
        char a[32], all[32];
        printf("  %dx%d, VAE decode of one image: %.0f ms; activations %s planned, %s on the "
               "device in all\n",
               side, side, ms, ldm_format_bytes(ldm_graph_memory_report(g).activation_bytes, a, 32),
               ldm_format_bytes(ldm_ctx_device_bytes_in_use(ctx), all, 32));
        if (json) fprintf(json, "  \"sd_vae_decode_%d\": {\"ms\": %.3f},\n", side, ms);
    }
    ldm_graph_destroy(g);
    return st;
}

ldm_status bench_sd_model(ldm_ctx *ctx, const char *model, const char *random, int half,
                          ldm_sd_model *m) {
    if (model) {
        BENCH_TRY(ldm_sd_model_inspect(model, m));
    } else {
        memset(m, 0, sizeof *m);
        int sd2 = random && !strcmp(random, "sd21");
        if (random && !sd2 && strcmp(random, "sd15")) {
            fprintf(stderr, "ldmcl-bench: --random %s: sd15 or sd21\n", random);
            return LDM_ERR_INVALID_ARGUMENT;
        }
        if (sd2)
            ldm_sd_unet_config_sd2(&m->unet);
        else
            ldm_sd_unet_config_sd1(&m->unet);
        ldm_sd_vae_config_sd(&m->vae);
    }
    size_t params = 0;
    BENCH_TRY(ldm_sd_unet_param_count(ctx, &m->unet, &params));
    printf("Stable Diffusion %s: UNet %zu parameters (context %d), %s weights\n",
           model ? model
                 : (random && !strcmp(random, "sd21") ? "2.1 (random weights)"
                                                      : "1.5 (random weights)"),
           params, m->unet.context_dim, half ? "half-precision" : "float");
    return LDM_OK;
}

ldm_status bench_sd(ldm_ctx *ctx, const bench_settings *s, const char *model, const char *random,
                    int half, FILE *json) {
    ldm_sd_model m;
    BENCH_TRY(bench_sd_model(ctx, model, random, half, &m));
    static const int sides[] = {256, 512};
    for (int i = 0; i < 2; i++) {
        BENCH_TRY(unet_step(ctx, s, &m, model == NULL, half, sides[i], json));
        BENCH_TRY(vae_decode(ctx, s, &m, model == NULL, half, sides[i], json));
    }
    return LDM_OK;
}
