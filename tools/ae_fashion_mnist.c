/* tools/ae_fashion_mnist.c: ae-fashion-mnist, the autoencoder experiment of the docs: trains the
 * reference's mnist VQ-VAE (or KL-VAE, or a smaller one) on Fashion-MNIST (Debian package
 * dataset-fashion-mnist) for a fixed number of steps, then reports the reconstruction PSNR on
 * the test split and how many codebook entries are used. Stage one of ldmcl-train, runnable on
 * its own; wall-clock times printed here are for orientation (speed is ldmcl-bench's business).
 *
 *   ae-fashion-mnist [--steps N] [--batch B] [--lr LR] [--kind vqvae|vae] [--size mnist|small]
 *                    [--disc-start S] [--disc-weight W] [--lpips FILE] [--eval N]
 *                    [--data DIR] [--out DIR] [--seed S] [--log-every K] [--cl-device D] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idx.h"
#include "ldmcl/ldmcl.h"

typedef struct options {
    int steps, batch, eval, log_every, disc_start;
    float lr, disc_weight;
    const char *kind, *size, *lpips, *data, *out, *device;
    uint64_t seed;
} options;

static void usage(void) {
    printf("usage: ae-fashion-mnist [options]\n"
           "  --steps N        training steps (default 400)\n"
           "  --batch B        images per step (default 16)\n"
           "  --lr LR          Adam learning rate (default 1e-3; the reference's mnist: 1e-4)\n"
           "  --kind K         vqvae (default) or vae\n"
           "  --size S         mnist (the reference's config, default) or small\n"
           "  --disc-start S   adversarial terms from step S+1 (default: steps / 2)\n"
           "  --disc-weight W  0 turns the discriminator off (default 0.5)\n"
           "  --lpips FILE     LPIPS weights (tools/convert_lpips.py); without: perceptual "
           "weight 0\n"
           "  --eval N         test images to evaluate (default 10000: all)\n"
           "  --data DIR       the IDX files (default /usr/share/datasets/fashion-mnist)\n"
           "  --out DIR        write ae.safetensors and disc.safetensors there\n"
           "  --seed S         initialisation and shuffling (default 1111)\n"
           "  --log-every K    print the losses every K steps (default 50)\n"
           "  --cl-device D    OpenCL device index or name substring\n");
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){.steps = 400,
                   .batch = 16,
                   .eval = 10000,
                   .log_every = 50,
                   .disc_start = -1,
                   .lr = 1e-3f,
                   .disc_weight = 0.5f,
                   .kind = "vqvae",
                   .size = "mnist",
                   .data = "/usr/share/datasets/fashion-mnist",
                   .seed = 1111};
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            exit(0);
        } else if (v && !strcmp(a, "--steps"))
            o->steps = atoi(v);
        else if (v && !strcmp(a, "--batch"))
            o->batch = atoi(v);
        else if (v && !strcmp(a, "--lr"))
            o->lr = strtof(v, NULL);
        else if (v && !strcmp(a, "--kind"))
            o->kind = v;
        else if (v && !strcmp(a, "--size"))
            o->size = v;
        else if (v && !strcmp(a, "--disc-start"))
            o->disc_start = atoi(v);
        else if (v && !strcmp(a, "--disc-weight"))
            o->disc_weight = strtof(v, NULL);
        else if (v && !strcmp(a, "--lpips"))
            o->lpips = v;
        else if (v && !strcmp(a, "--eval"))
            o->eval = atoi(v);
        else if (v && !strcmp(a, "--data"))
            o->data = v;
        else if (v && !strcmp(a, "--out"))
            o->out = v;
        else if (v && !strcmp(a, "--seed"))
            o->seed = strtoull(v, NULL, 10);
        else if (v && !strcmp(a, "--log-every"))
            o->log_every = atoi(v);
        else if (v && !strcmp(a, "--cl-device"))
            o->device = v;
        else
            used = 0;
        if (!used) {
            fprintf(stderr, "ae-fashion-mnist: unknown option or missing value: %s\n", a);
            return -1;
        }
    }
    if (o->steps < 1 || o->batch < 1 || o->eval < 0 || o->log_every < 1 || !(o->lr > 0) ||
        (strcmp(o->kind, "vqvae") && strcmp(o->kind, "vae")) ||
        (strcmp(o->size, "mnist") && strcmp(o->size, "small"))) {
        fprintf(stderr, "ae-fashion-mnist: bad option value (see --help)\n");
        return -1;
    }
    if (o->disc_start < 0) o->disc_start = o->steps / 2;
    return 0;
}

/* splitmix64: the shuffling order. */
static uint64_t next_random(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void shuffle(uint32_t *order, uint32_t n, uint64_t *s) {
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(next_random(s) % (i + 1));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(ldm_status st, const char *what) {
    fprintf(stderr, "ae-fashion-mnist: %s: %s: %s\n", what, ldm_status_name(st), ldm_last_error());
    return 1;
}

static void model_config(const options *o, ldm_autoencoder_config *c) {
    ldm_autoencoder_kind kind = strcmp(o->kind, "vae") ? LDM_AE_VQVAE : LDM_AE_VAE;
    ldm_autoencoder_config_mnist(c, kind);
    if (!strcmp(o->size, "small")) {
        const int down[3] = {16, 32, 32};
        memcpy(c->down_channels, down, sizeof down);
        c->mid_channels[0] = c->mid_channels[1] = 32;
        c->norm_channels = 8;
        c->num_heads = 4;
    }
}

/* PSNR of images in [-1, 1] against reconstructions clamped to [-1, 1], on the [0, 1] scale. */
static double psnr(const float *x, const float *y, size_t n, double *mse_out) {
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fmin(1.0, fmax(-1.0, (double)y[i]));
        double d = ((double)x[i] - r) / 2.0;
        se += d * d;
    }
    double mse = se / (double)n;
    *mse_out = mse;
    return mse > 0 ? 10.0 * log10(1.0 / mse) : INFINITY;
}

int main(int argc, char **argv) {
    options o;
    if (parse(argc, argv, &o) != 0) return 2;
    char path[4096], err[512];
    idx_file train, test;
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", o.data);
    if (idx_read(path, 3, &train, err, sizeof err) != 0) {
        fprintf(stderr,
                "ae-fashion-mnist: %s\n(install the data: apt install dataset-fashion-mnist)\n",
                err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", o.data);
    if (idx_read(path, 3, &test, err, sizeof err) != 0) {
        fprintf(stderr, "ae-fashion-mnist: %s\n", err);
        return 1;
    }
    int H = (int)train.dims[1], W = (int)train.dims[2];
    size_t img = (size_t)H * (size_t)W;
    if (o.eval > (int)test.dims[0]) o.eval = (int)test.dims[0];

    ldm_ctx_options co;
    ldm_ctx_options_init(&co);
    co.device = o.device;
    ldm_ctx *ctx;
    ldm_status st = ldm_ctx_create(&co, &ctx);
    if (st != LDM_OK) return fail(st, "opening the OpenCL device");
    const ldm_device_info *dev = ldm_ctx_device_info(ctx);
    printf("device: %s (%s), driver %s\n", dev->device_name, dev->platform_name,
           dev->driver_version);

    ldm_autoencoder_config ae;
    model_config(&o, &ae);
    size_t n_params = 0;
    ldm_autoencoder_param_count(ctx, &ae, &n_params);
    ldm_ae_train_config cfg;
    ldm_ae_train_config_init(&cfg, &ae);
    cfg.batch = o.batch;
    cfg.height = H;
    cfg.width = W;
    cfg.lr = o.lr;
    cfg.disc_start = o.disc_start;
    cfg.disc_weight = o.disc_weight;
    cfg.perceptual_weight = o.lpips ? 1.0f : 0.0f;
    cfg.seed = o.seed;
    char disc[64];
    if (o.disc_weight > 0)
        snprintf(disc, sizeof disc, "from step %d", o.disc_start + 1);
    else
        snprintf(disc, sizeof disc, "off");
    printf("model: %s %s config, %zu parameters; %d steps of %d images (%dx%d), lr %g, Adam (0.5, "
           "0.999); discriminator %s; perceptual loss %s\n",
           o.kind, o.size, n_params, o.steps, o.batch, H, W, (double)o.lr, disc,
           o.lpips ? o.lpips : "off (no LPIPS weights given)");
    ldm_ae_trainer *t;
    st = ldm_ae_trainer_create(ctx, &cfg, &t);
    if (st == LDM_OK) st = ldm_ae_trainer_init_params(t, o.seed);
    if (st == LDM_OK && o.lpips) st = ldm_ae_trainer_load_lpips(t, o.lpips);
    if (st != LDM_OK) return fail(st, "creating the trainer");

    uint32_t n_train = train.dims[0];
    uint32_t *order = malloc(n_train * sizeof *order);
    float *batch = malloc((size_t)o.batch * img * sizeof *batch);
    if (!order || !batch) return fail(LDM_ERR_HOST_MEMORY, "allocating");
    for (uint32_t i = 0; i < n_train; i++)
        order[i] = i;
    uint64_t rng = o.seed;
    shuffle(order, n_train, &rng);
    size_t pos = 0;
    double t0 = now_s();
    for (int s = 1; s <= o.steps; s++) {
        for (int b = 0; b < o.batch; b++) {
            if (pos == n_train) {
                shuffle(order, n_train, &rng);
                pos = 0;
            }
            const uint8_t *src = train.data + (size_t)order[pos++] * img;
            for (size_t k = 0; k < img; k++)
                batch[(size_t)b * img + k] = (float)src[k] / 127.5f - 1.0f;
        }
        int log = s % o.log_every == 0 || s == o.steps || s == 1;
        ldm_ae_losses l;
        st = ldm_ae_trainer_step(t, batch, log ? &l : NULL);
        if (st != LDM_OK) return fail(st, "training");
        if (log) {
            double el = now_s() - t0;
            printf("step %5d  recon %.5f  %s %.5f  commit %.5f  g_adv %.4f  d %.4f  codebook used "
                   "%d/%d  %.2f s/step\n",
                   s, (double)l.recon, ae.kind == LDM_AE_VQVAE ? "codebook" : "kl",
                   (double)(ae.kind == LDM_AE_VQVAE ? l.codebook : l.kl), (double)l.commitment,
                   (double)l.g_adv, (double)l.d_total, l.codebook_used,
                   ae.kind == LDM_AE_VQVAE ? ae.codebook_size : 0, el / s);
            fflush(stdout);
        }
    }
    double train_s = now_s() - t0;

    /* Evaluation: the test split through the encoder (quantized / mean latents) and decoder. */
    ldm_ae_codec *k;
    st = ldm_ae_codec_create_in(ctx, ldm_graph_params(ldm_ae_trainer_generator(t)), &ae, o.batch, H,
                                W, 0, 0, &k); /* the trainer's weights */
    if (st != LDM_OK) return fail(st, "creating the evaluation autoencoder");
    int lat[4];
    ldm_ae_codec_latent_shape(k, lat);
    size_t lat_n = (size_t)lat[0] * lat[1] * lat[2] * lat[3];
    float *latents = malloc(lat_n * sizeof *latents), *recon = malloc((size_t)o.batch * img * 4);
    float *idx = malloc((size_t)o.batch * lat[2] * lat[3] * sizeof *idx);
    unsigned char *used = calloc((size_t)ae.codebook_size + 1, 1);
    double psnr_sum = 0, mse_sum = 0;
    int used_count = 0;
    for (int first = 0; first < o.eval; first += o.batch) {
        int count = o.eval - first < o.batch ? o.eval - first : o.batch;
        for (int b = 0; b < o.batch; b++) {
            const uint8_t *src = test.data + (size_t)(first + (b < count ? b : 0)) * img;
            for (size_t q = 0; q < img; q++)
                batch[(size_t)b * img + q] = (float)src[q] / 127.5f - 1.0f;
        }
        st = ldm_ae_codec_encode(k, batch, latents, idx);
        if (st == LDM_OK) st = ldm_ae_codec_decode(k, latents, recon);
        if (st != LDM_OK) return fail(st, "evaluating");
        for (int b = 0; b < count; b++) {
            double mse;
            psnr_sum += psnr(batch + (size_t)b * img, recon + (size_t)b * img, img, &mse);
            mse_sum += mse;
            for (int q = 0; ae.kind == LDM_AE_VQVAE && q < lat[2] * lat[3]; q++) {
                int e = (int)idx[b * lat[2] * lat[3] + q];
                if (e >= 0 && e < ae.codebook_size && !used[e]) {
                    used[e] = 1;
                    used_count++;
                }
            }
        }
    }
    printf("\ntrained %d steps in %.1f s (%.2f s/step)\n", o.steps, train_s, train_s / o.steps);
    printf("test split (%d images): PSNR %.2f dB (mean over images), %.2f dB (of the mean MSE)",
           o.eval, psnr_sum / o.eval, 10.0 * log10(1.0 / (mse_sum / o.eval)));
    if (ae.kind == LDM_AE_VQVAE)
        printf("; codebook entries used %d of %d", used_count, ae.codebook_size);
    printf("\n");
    if (o.out) {
        char ae_path[4200], disc_path[4200], steps_text[32];
        snprintf(ae_path, sizeof ae_path, "%s/ae.safetensors", o.out);
        snprintf(disc_path, sizeof disc_path, "%s/disc.safetensors", o.out);
        snprintf(steps_text, sizeof steps_text, "%d", o.steps);
        const char *meta[] = {"ldmcl.kind", o.kind, "ldmcl.step", steps_text, NULL};
        st = ldm_ae_trainer_save(t, ae_path, disc_path, meta);
        if (st != LDM_OK) return fail(st, "saving");
        printf("saved %s and %s\n", ae_path, disc_path);
    }
    free(latents);
    free(recon);
    free(idx);
    free(used);
    free(order);
    free(batch);
    ldm_ae_codec_destroy(k);
    ldm_ae_trainer_destroy(t);
    ldm_ctx_destroy(ctx);
    idx_free(&train);
    idx_free(&test);
    return 0;
}
