/* tools/bench_ae.c: the autoencoder (stage one): a full training step (VQ-VAE generator forward
 * and backward with LPIPS and the adversarial term, the discriminator's two passes and backward,
 * both Adam steps; the images' upload included) and encode / decode throughput, for the
 * reference's mnist config (1x28x28) and its celebhq config (3x256x256). Device time between
 * markers, median of --repeat after --warmup; memory from the planner and the context's arenas.
 * Weights are random (LPIPS too: timing does not need pretrained ones). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* Random normal values into every parameter of g (scaled). */
static ldm_status randomise(ldm_ctx *ctx, ldm_graph *g) {
    ldm_cmd *c = ldm_ctx_immediate(ctx);
    ldm_buf none = {NULL, 0};
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        BENCH_TRY(ldm_rng_fill(c, LDM_DIST_NORMAL, ldm_tensor_numel(p), 3, (uint32_t)i, 0, none,
                               0.02f, 0.0f, ldm_tensor_buf(p)));
    }
    return ldm_ctx_finish(ctx);
}

static float *random_images(size_t n) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    return v;
}

typedef struct train_job {
    ldm_ae_trainer *t;
    const float *images;
} train_job;

static ldm_status train_once(void *user) {
    train_job *j = user;
    return ldm_ae_trainer_step(j->t, j->images, NULL);
}

static void memory_line(const char *what, ldm_ctx *ctx, ldm_graph *g) {
    ldm_graph_memory m = ldm_graph_memory_report(g);
    char a[32], t[32], all[32];
    printf("    %s: activations %s planned (%s without reuse); %s on the device in all\n", what,
           ldm_format_bytes(m.activation_bytes, a, 32), ldm_format_bytes(m.activation_total, t, 32),
           ldm_format_bytes(ldm_ctx_device_bytes_in_use(ctx), all, 32));
}

static ldm_status train_step(ldm_ctx *ctx, const bench_settings *s, const char *name,
                             const ldm_autoencoder_config *ae, int batch, int size, FILE *json) {
    ldm_ae_train_config cfg;
    ldm_ae_train_config_init(&cfg, ae);
    cfg.batch = batch;
    cfg.height = cfg.width = size;
    cfg.disc_start = 0; /* every step adversarial: the full cost */
    ldm_ae_trainer *t = NULL;
    ldm_status st = ldm_ae_trainer_create(ctx, &cfg, &t);
    if (st != LDM_OK) {
        printf("  training step, batch %d: does not fit this device: %s\n", batch,
               ldm_last_error());
        return LDM_OK;
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/ldmcl-bench-lpips-%d.safetensors", (int)getpid());
    st = randomise(ctx, ldm_ae_trainer_generator(t));
    if (st == LDM_OK) st = randomise(ctx, ldm_ae_trainer_discriminator(t));
    if (st == LDM_OK)
        st = ldm_graph_save_subset(ldm_ae_trainer_generator(t), path, NULL, "lpips.", 0);
    if (st == LDM_OK) st = ldm_ae_trainer_load_lpips(t, path);
    unlink(path);
    size_t n = (size_t)batch * ae->im_channels * size * size;
    float *images = random_images(n);
    if (!images) st = LDM_ERR_HOST_MEMORY;
    train_job job = {t, images};
    double ms = 0;
    if (st == LDM_OK) st = bench_time(ctx, s, train_once, &job, &ms);
    if (st == LDM_OK) {
        printf("  training step, batch %d (VQ-VAE fwd+bwd, LPIPS, adversarial; discriminator "
               "fwd+bwd x2; two Adam steps): %.1f ms, %.2f images/s\n",
               batch, ms, batch / (ms * 1e-3));
        memory_line("generator graph", ctx, ldm_ae_trainer_generator(t));
        memory_line("discriminator graph", ctx, ldm_ae_trainer_discriminator(t));
        if (json)
            fprintf(json,
                    "  \"ae_%s_train_step\": {\"batch\": %d, \"ms\": %.3f, \"images_per_s\": %.3f, "
                    "\"activation_bytes\": %llu, \"device_bytes\": %llu},\n",
                    name, batch, ms, batch / (ms * 1e-3),
                    (unsigned long long)ldm_graph_memory_report(ldm_ae_trainer_generator(t))
                        .activation_bytes,
                    (unsigned long long)ldm_ctx_device_bytes_in_use(ctx));
    }
    free(images);
    ldm_ae_trainer_destroy(t);
    return st;
}

typedef struct codec_job {
    ldm_ae_codec *k;
    const float *images;
    float *latents, *decoded;
    int decode;
} codec_job;

static ldm_status codec_once(void *user) {
    codec_job *j = user;
    return j->decode ? ldm_ae_codec_decode(j->k, j->latents, j->decoded)
                     : ldm_ae_codec_encode(j->k, j->images, j->latents, NULL);
}

static ldm_status encode_decode(ldm_ctx *ctx, const bench_settings *s, const char *name,
                                const ldm_autoencoder_config *ae, int batch, int size, FILE *json) {
    ldm_ae_codec *k = NULL;
    ldm_status st = ldm_ae_codec_create(ctx, ae, batch, size, size, 0, 0, &k);
    if (st != LDM_OK) {
        printf("  encode/decode, batch %d: does not fit this device: %s\n", batch,
               ldm_last_error());
        return LDM_OK;
    }
    int lat[4];
    ldm_ae_codec_latent_shape(k, lat);
    size_t n = (size_t)batch * ae->im_channels * size * size;
    float *images = random_images(n), *decoded = malloc(n * sizeof *decoded);
    float *latents = malloc((size_t)lat[0] * lat[1] * lat[2] * lat[3] * sizeof *latents);
    if (!images || !decoded || !latents) st = LDM_ERR_HOST_MEMORY;
    /* The codec's weights stay as compiled (zeros): the same kernels run on the same shapes. */
    codec_job job = {k, images, latents, decoded, 0};
    double enc_ms = 0, dec_ms = 0;
    if (st == LDM_OK) st = bench_time(ctx, s, codec_once, &job, &enc_ms);
    job.decode = 1;
    if (st == LDM_OK) st = bench_time(ctx, s, codec_once, &job, &dec_ms);
    if (st == LDM_OK) {
        char all[32];
        printf("  encode, batch %d -> %dx%dx%d latents: %.1f ms, %.2f images/s; decode: %.1f ms, "
               "%.2f images/s (host transfers included); %s on the device with both graphs\n",
               batch, lat[1], lat[2], lat[3], enc_ms, batch / (enc_ms * 1e-3), dec_ms,
               batch / (dec_ms * 1e-3),
               ldm_format_bytes(ldm_ctx_device_bytes_in_use(ctx), all, 32));
        if (json)
            fprintf(json,
                    "  \"ae_%s_codec\": {\"batch\": %d, \"encode_ms\": %.3f, \"decode_ms\": %.3f, "
                    "\"device_bytes\": %llu},\n",
                    name, batch, enc_ms, dec_ms,
                    (unsigned long long)ldm_ctx_device_bytes_in_use(ctx));
    }
    free(images);
    free(decoded);
    free(latents);
    ldm_ae_codec_destroy(k);
    return st;
}

ldm_status bench_autoencoder(ldm_ctx *ctx, const bench_settings *s, int celebhq, FILE *json) {
    ldm_autoencoder_config ae;
    int batch, size;
    if (celebhq) {
        ldm_autoencoder_config_celebhq(&ae, LDM_AE_VQVAE);
        batch = 4;
        size = 256;
    } else {
        ldm_autoencoder_config_mnist(&ae, LDM_AE_VQVAE);
        batch = 64;
        size = 28;
    }
    const char *name = celebhq ? "celebhq" : "mnist";
    size_t params = 0;
    BENCH_TRY(ldm_autoencoder_param_count(ctx, &ae, &params));
    printf("autoencoder %s (VQ-VAE, %zu parameters; PatchGAN discriminator; LPIPS VGG16), "
           "%dx%dx%d images, batch %d:\n",
           name, params, ae.im_channels, size, size, batch);
    BENCH_TRY(encode_decode(ctx, s, name, &ae, batch, size, json));
    return train_step(ctx, s, name, &ae, batch, size, json);
}
