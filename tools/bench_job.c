/* tools/bench_job.c: data parallelism (run ldmcl-bench under mpirun -np N; alone it is a job of
 * one). --bench allreduce: the gradient sum over the job as grad_sync does it (its buckets,
 * MPI_Iallreduce on host memory) for the seed UNet's 118,506,500 gradients (474 MB) and
 * the default Fashion-MNIST model's, and the device-host copies around it. --bench job-step: the
 * default model's training step (configs/fashion_mnist.ini, its per-rank batch) as one rank of
 * the job: median wall time per step, and how much of the gradients' sum the backward pass hid.
 * Wall-clock medians (the sum is host and network work, which device events do not see). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define SEED_UNET_PARAMS 118506500u

/* The default model's config, relative to the source tree (this program's folder's parent). */
static ldm_status default_config(ldm_run_config *c) {
    ldm_status st = ldm_run_config_read("configs/fashion_mnist.ini", c);
    if (st == LDM_OK) return st;
    char why[2048];
    snprintf(why, sizeof why, "%s", ldm_last_error()); /* (set_error reuses its buffer) */
    return ldm_set_error(st,
                         "%s (--bench job-step and allreduce read the default model's "
                         "configs/fashion_mnist.ini: run ldmcl-bench from the source tree)",
                         why);
}

/* Median wall ms of summing n floats over the job in buckets (every rank takes part). */
static ldm_status time_sum(ldm_job *job, const bench_settings *s, float *x, size_t n, double *ms) {
    int reps = s->repeat < 3 ? 3 : s->repeat;
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) return LDM_ERR_HOST_MEMORY;
    /* grad_sync's buckets: 25 MiB, or an eighth of the gradients down to 1 MiB */
    size_t bucket = n / 8 < ((size_t)25 << 18) ? n / 8 : (size_t)25 << 18;
    if (bucket < ((size_t)1 << 18)) bucket = (size_t)1 << 18;
    ldm_status st = LDM_OK;
    for (int r = -1; r < reps && st == LDM_OK; r++) { /* one untimed run first */
        int ok, bad;
        st = ldm_job_agree(job, 1, &ok, &bad, "the start of a timed sum");
        double t0 = bench_now_ms();
        for (size_t off = 0; off < n && st == LDM_OK; off += bucket) {
            int id;
            st = ldm_job_sum_start(job, x + off, n - off < bucket ? n - off : bucket, &id);
        }
        if (st == LDM_OK) st = ldm_job_sum_wait_all(job, "a timed sum");
        if (r >= 0) t[r] = bench_now_ms() - t0;
        for (size_t i = 0; i < n && st == LDM_OK; i++) /* keep the values finite */
            x[i] = 1.0f;
    }
    *ms = st == LDM_OK ? bench_median(t, reps) : 0;
    free(t);
    return st;
}

/* Median wall ms of reading n floats from the device into pinned host memory, and back. */
static ldm_status time_staging(ldm_ctx *ctx, const bench_settings *s, size_t n, double *read_ms,
                               double *write_ms) {
    cl_int err;
    size_t bytes = n * 4;
    cl_mem dev = clCreateBuffer(ldm_ctx_cl_context(ctx), CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) return ldm_set_error(LDM_ERR_DEVICE_MEMORY, "a %zu-byte buffer", bytes);
    cl_mem pin = clCreateBuffer(ldm_ctx_cl_context(ctx), CL_MEM_ALLOC_HOST_PTR, bytes, NULL, &err);
    void *host = err == CL_SUCCESS
                     ? clEnqueueMapBuffer(ldm_ctx_queue(ctx), pin, CL_TRUE,
                                          CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0, NULL, NULL, &err)
                     : NULL;
    ldm_status st = host ? LDM_OK : ldm_set_error(LDM_ERR_OPENCL, "pinned host memory");
    int reps = s->repeat < 3 ? 3 : s->repeat;
    double tr[64], tw[64];
    if (reps > 64) reps = 64;
    if (st == LDM_OK) memset(host, 0, bytes);
    for (int r = -1; r < reps && st == LDM_OK; r++) {
        double t0 = bench_now_ms();
        err = clEnqueueReadBuffer(ldm_ctx_queue(ctx), dev, CL_TRUE, 0, bytes, host, 0, NULL, NULL);
        double t1 = bench_now_ms();
        if (err == CL_SUCCESS)
            err = clEnqueueWriteBuffer(ldm_ctx_queue(ctx), dev, CL_TRUE, 0, bytes, host, 0, NULL,
                                       NULL);
        double t2 = bench_now_ms();
        if (err != CL_SUCCESS) st = ldm_set_error(LDM_ERR_OPENCL, "staging copies");
        if (r >= 0) tr[r] = t1 - t0, tw[r] = t2 - t1;
    }
    if (host) clEnqueueUnmapMemObject(ldm_ctx_queue(ctx), pin, host, 0, NULL, NULL);
    clFinish(ldm_ctx_queue(ctx));
    if (pin) clReleaseMemObject(pin);
    clReleaseMemObject(dev);
    *read_ms = st == LDM_OK ? bench_median(tr, reps) : 0;
    *write_ms = st == LDM_OK ? bench_median(tw, reps) : 0;
    return st;
}

/* The default model's step on this rank: its trainer, with random latents and fixed captions. */
static ldm_status default_trainer(ldm_ctx *ctx, ldm_job *job, ldm_run_config *c,
                                  ldm_diffusion_trainer **t, size_t *grads) {
    BENCH_TRY(default_config(c));
    int hw = ldm_autoencoder_latent_size(&c->model.ae, c->model.resolution) / c->model.latent_patch;
    BENCH_TRY(
        ldm_diffusion_trainer_create_in_job(ctx, &c->model, &c->ldm_train, hw, c->seed, job, t));
    ldm_graph_trainable_buf(ldm_diffusion_trainer_graph(*t), grads);
    return LDM_OK;
}

ldm_status bench_allreduce(ldm_ctx *ctx, ldm_job *job, const bench_settings *s, FILE *json) {
    int rank = ldm_job_rank(job), ranks = ldm_job_size(job);
    ldm_run_config *c = malloc(sizeof *c);
    if (!c) return LDM_ERR_HOST_MEMORY;
    ldm_diffusion_trainer *t = NULL;
    size_t default_n = 0;
    ldm_status st = default_trainer(ctx, job, c, &t, &default_n);
    ldm_diffusion_trainer_destroy(t);
    free(c);
    BENCH_TRY(st);
    size_t sizes[2] = {SEED_UNET_PARAMS, default_n};
    const char *names[2] = {"seed UNet", "default model (UNet + text encoder)"};
    float *x = malloc(sizes[0] * sizeof *x);
    if (!x) return LDM_ERR_HOST_MEMORY;
    for (size_t i = 0; i < sizes[0]; i++)
        x[i] = 1.0f;
    if (rank == 0) {
        printf("gradient allreduce over %d rank(s) (%s), grad_sync's buckets, MPI_Iallreduce on "
               "host memory; wall-clock medians:\n",
               ranks, ranks > 1 ? ldm_job_library() : "no MPI: a job of one");
        if (json) fprintf(json, "  \"allreduce\": [\n");
    }
    for (int k = 0; k < 2 && st == LDM_OK; k++) {
        double sum_ms = 0, read_ms = 0, write_ms = 0;
        st = time_sum(job, s, x, sizes[k], &sum_ms);
        if (st == LDM_OK) st = time_staging(ctx, s, sizes[k], &read_ms, &write_ms);
        double bytes = 4.0 * (double)sizes[k];
        /* algorithm bandwidth: the gradient's bytes per second of the sum; bus bandwidth: what
         * each rank's link carries in a ring allreduce, 2 (N - 1) / N of it */
        double algo = sum_ms > 0 ? bytes / (sum_ms * 1e-3) : 0;
        double bus = algo * 2.0 * (ranks - 1) / ranks;
        if (rank == 0 && ranks == 1)
            printf("  %-36s %7.1f MB: no sum (one rank); device->host %.1f ms, host->device "
                   "%.1f ms\n",
                   names[k], bytes / 1e6, read_ms, write_ms);
        else if (rank == 0)
            printf("  %-36s %7.1f MB: sum %8.1f ms (%.2f GB/s of gradients, %.2f GB/s bus); "
                   "device->host %.1f ms, host->device %.1f ms\n",
                   names[k], bytes / 1e6, sum_ms, algo / 1e9, bus / 1e9, read_ms, write_ms);
        if (rank == 0 && json)
            fprintf(json,
                    "    {\"what\": \"%s\", \"bytes\": %.0f, \"ranks\": %d, \"sum_ms\": %.3f, "
                    "\"gradient_gbps\": %.4f, \"bus_gbps\": %.4f, \"read_ms\": %.3f, "
                    "\"write_ms\": %.3f}%s\n",
                    names[k], bytes, ranks, sum_ms, algo / 1e9, bus / 1e9, read_ms, write_ms,
                    k == 0 ? "," : "");
    }
    if (rank == 0 && json) fprintf(json, "  ],\n");
    free(x);
    return st;
}

ldm_status bench_job_step(ldm_ctx *ctx, ldm_job *job, const bench_settings *s, FILE *json) {
    int rank = ldm_job_rank(job), ranks = ldm_job_size(job);
    ldm_run_config *c = malloc(sizeof *c);
    if (!c) return LDM_ERR_HOST_MEMORY;
    ldm_diffusion_trainer *t = NULL;
    size_t grads = 0;
    ldm_status st = default_trainer(ctx, job, c, &t, &grads);
    int b = c->ldm_train.batch, hw = 0;
    size_t lat = 0;
    float *latents = NULL;
    const char **captions = malloc((size_t)b * sizeof *captions);
    if (st == LDM_OK) {
        hw = ldm_autoencoder_latent_size(&c->model.ae, c->model.resolution) / c->model.latent_patch;
        lat = (size_t)c->model.unet.im_channels * hw * hw;
        latents = malloc((size_t)b * lat * sizeof *latents);
        if (!latents || !captions) st = LDM_ERR_HOST_MEMORY;
    }
    for (size_t i = 0; st == LDM_OK && i < (size_t)b * lat; i++)
        latents[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; st == LDM_OK && i < b; i++)
        captions[i] = i % 2 ? "a photo of a sneaker" : "a photo of a shirt";
    int reps = s->repeat < 5 ? 5 : s->repeat, warm = s->warmup < 2 ? 2 : s->warmup;
    double *ms = malloc((size_t)reps * sizeof *ms);
    if (st == LDM_OK && !ms) st = LDM_ERR_HOST_MEMORY;
    ldm_grad_sync *gs = st == LDM_OK ? ldm_diffusion_trainer_grad_sync(t) : NULL;
    if (rank == 0 && json && st == LDM_OK) fprintf(json, "  \"job_step\": [\n");
    /* with the sums overlapping backward, then (a job of more than one) after it */
    for (int overlap = 1; overlap >= (gs ? 0 : 1) && st == LDM_OK; overlap--) {
        if (gs) ldm_grad_sync_set_overlap(gs, overlap);
        ldm_grad_sync_stats before = {0};
        for (int r = -warm; r < reps && st == LDM_OK; r++) {
            if (r == 0 && gs) before = ldm_grad_sync_get_stats(gs);
            int ok, bad;
            st = ldm_job_agree(job, 1, &ok, &bad, "the start of a timed step");
            double t0 = bench_now_ms();
            float loss;
            for (int m = 0; m < c->ldm_train.acc_steps && st == LDM_OK; m++)
                st = ldm_diffusion_trainer_forward_backward(t, latents, captions, &loss);
            if (st == LDM_OK) st = ldm_diffusion_trainer_apply(t);
            if (st == LDM_OK) st = ldm_ctx_finish(ctx);
            if (r >= 0) ms[r] = bench_now_ms() - t0;
        }
        if (st != LDM_OK) break;
        double step = bench_median(ms, reps), comm = 0, exposed = 0;
        if (gs) {
            ldm_grad_sync_stats a = ldm_grad_sync_get_stats(gs);
            double runs = (double)(a.runs - before.runs);
            comm = runs > 0 ? 1e3 * (a.comm_s - before.comm_s) / runs : 0;
            exposed = runs > 0 ? 1e3 * (a.exposed_s - before.exposed_s) / runs : 0;
        }
        double hidden = comm > 0 ? 1.0 - exposed / comm : 0;
        if (rank == 0) {
            printf("default model's training step, %d rank(s) x batch %d (%zu gradients, %.1f "
                   "MB%s): %.1f ms per step (median of %d, wall)",
                   ranks, b, grads, 4e-6 * (double)grads,
                   !gs       ? ""
                   : overlap ? ", sums overlapping backward"
                             : ", sums after backward",
                   step, reps);
            if (gs)
                printf("; gradient sum %.1f ms from its first bucket, %.1f ms of it after the "
                       "backward pass: %.0f%% hidden",
                       comm, exposed, 100 * hidden);
            printf("\n");
            if (json)
                fprintf(json,
                        "    {\"ranks\": %d, \"batch_per_rank\": %d, \"overlap\": %d, "
                        "\"step_ms\": %.3f, \"sum_ms\": %.3f, \"exposed_ms\": %.3f}%s\n",
                        ranks, b, overlap, step, comm, exposed, overlap && gs ? "," : "");
        }
    }
    if (rank == 0 && json && st == LDM_OK) fprintf(json, "  ],\n");
    free(ms);
    free(latents);
    free(captions);
    ldm_diffusion_trainer_destroy(t);
    free(c);
    return st;
}
