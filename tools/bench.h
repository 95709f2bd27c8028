/* tools/bench.h: what the parts of ldmcl-bench share: settings, median timing, and output. */
#ifndef LDMCL_TOOLS_BENCH_H
#define LDMCL_TOOLS_BENCH_H

#include <ldmcl/ldmcl.h>

/* Returns the status of expr from the calling function when it is not LDM_OK. */
#define BENCH_TRY(expr)                                                                            \
    do {                                                                                           \
        ldm_status bench_try_status_ = (expr);                                                     \
        if (bench_try_status_ != LDM_OK) return bench_try_status_;                                 \
    } while (0)

typedef struct bench_settings {
    int warmup;      /* untimed runs before measuring */
    int repeat;      /* timed runs; the median is reported */
    int memory_only; /* --memory-only (sd-train): compile and report memory, run nothing */
    const char *platform, *device;
} bench_settings;

/* The command line (bench_args.c): --help's text; every option; a count (>= 0) or a list of at
 * most max comma-separated numbers in [lo, hi] of flag's value v (0 after saying why). */
void bench_usage(FILE *f);
extern const char *const bench_options[];
extern const size_t bench_n_options;
int bench_parse_count(const char *flag, const char *v, int *out);
int bench_parse_list(const char *flag, const char *v, int lo, int hi, int *out, int max, int *n);

/* Median of n values (sorts them). */
double bench_median(double *v, int n);

/* A marker on the context's profiling queue, and the device milliseconds between the ends of
 * two markers (waits for b; releases both). */
ldm_status bench_marker(ldm_ctx *ctx, cl_event *ev);
ldm_status bench_span_ms(cl_event a, cl_event b, double *ms);

/* The median device milliseconds of fn(user) over the settings' repeats, after its warm-ups
 * (between profiling markers). */
typedef ldm_status (*bench_timed_fn)(void *user);
ldm_status bench_time(ldm_ctx *ctx, const bench_settings *s, bench_timed_fn fn, void *user,
                      double *median_ms);

/* Wall-clock milliseconds from a monotonic clock. */
double bench_now_ms(void);

#include <stdio.h>

/* Device copy bandwidth in GB/s (bytes read + written), from profiling events. json (may be
 * NULL) receives a "copy_gbps": ... member followed by a comma. */
ldm_status bench_copy(ldm_ctx *ctx, const bench_settings *s, double *gbps, FILE *json);
/* SGEMM rates at fixed shapes; *peak receives the best GFLOP/s seen. json: a "gemm": [...] member
 * and a comma. */
ldm_status bench_gemm(ldm_ctx *ctx, const bench_settings *s, double *peak, FILE *json);
/* Every op forward and backward at the seed UNet's shapes (seed_shapes 1) or small ones, as
 * percentages of the measured peaks. json: an "ops": [...] member and a comma. */
ldm_status bench_ops(ldm_ctx *ctx, const bench_settings *s, int seed_shapes, double gemm_gflops,
                     double copy_gbps, FILE *json);

/* One op case of bench_ops (by its name in either table) recorded and compiled with the
 * context's tunables as they are now; timed: medians of the forward and backward device time. */
typedef struct bench_op_graph bench_op_graph;
ldm_status bench_op_graph_open(ldm_ctx *ctx, const char *name, bench_op_graph **out);
ldm_status bench_op_graph_time(bench_op_graph *b, int warmup, int repeat, double *fwd_ms,
                               double *bwd_ms);
void bench_op_graph_close(bench_op_graph *b);

/* --tune: measures candidate tunables for each kernel family on the op cases where they
 * matter (the seed UNet's shapes when seed_shapes, else small ones), interleaved so that a
 * drifting device treats all alike, and keeps the fastest as the device's tunables file.
 * families_list: comma-separated family names to measure (NULL: all); the others keep their
 * values. */
ldm_status bench_tune(ldm_ctx *ctx, const bench_settings *s, int seed_shapes,
                      const char *families_list);
/* Whether every name in the comma-separated list is a family of --tune (else says which not). */
int bench_tune_families_known(const char *list);

/* Data parallelism (run under mpirun -np N; tools/bench_job.c): the gradients' sum over the job
 * for the seed UNet's and the default model's gradients, with the device-host copies around it;
 * the default model's training step as one rank, with the share of the sum the backward pass
 * hides. Rank 0 prints. */
ldm_status bench_allreduce(ldm_ctx *ctx, ldm_job *job, const bench_settings *s, FILE *json);
ldm_status bench_job_step(ldm_ctx *ctx, ldm_job *job, const bench_settings *s, FILE *json);

/* Program build from source against a load from ldmcl's binary cache, on fresh contexts. */
ldm_status bench_cache(const bench_settings *s);

/* One measured step: its batch, median device milliseconds, and the device memory the context
 * held while the step's graph (and its optimizer) lived. */
typedef struct bench_step {
    int batch;
    double ms;
    uint64_t device_bytes;
} bench_step;

/* The seed UNet: sampling steps at batch 2 and 16, a training step at train_batch. json: its
 * members, each followed by a comma. */
ldm_status bench_unet(ldm_ctx *ctx, const bench_settings *s, int train_batch, FILE *json);
/* The seed UNet's training step at batch; with_text_encoder: the CLIP text encoder (real size,
 * random weights) recorded in the step and trained with the UNet. out (may be NULL) receives
 * the figures. */
ldm_status bench_unet_train_step(ldm_ctx *ctx, const bench_settings *s, int batch,
                                 int with_text_encoder, FILE *json, bench_step *out);
/* One sampling step of the seed UNet (one forward) at batch. */
ldm_status bench_unet_sample_step(ldm_ctx *ctx, const bench_settings *s, int batch, FILE *json,
                                  bench_step *out);

/* The autoencoder: encode/decode throughput and a full training step (VQ-VAE, LPIPS,
 * discriminator), for the reference's mnist config (batch 64, 28x28) or celebhq (batch 4,
 * 256x256). A configuration that does not fit the device is reported, not an error. json: its
 * members, each followed by a comma. */
ldm_status bench_autoencoder(ldm_ctx *ctx, const bench_settings *s, int celebhq, FILE *json);

/* The CLIP text encoder at its real size: prompts/s at batch 1 and 16, then the joint training
 * step with the seed UNet at train_batch. json: its members, each followed by a comma. */
ldm_status bench_clip(ldm_ctx *ctx, const bench_settings *s, int train_batch, FILE *json);

/* Stable Diffusion (tools/bench_sd.c): a checkpoint (model: a file or diffusers folder) or, with
 * model NULL, the published config random ("sd15", "sd21"; NULL: sd15) at 256x256 and 512x512:
 * a guided sampling step, the VAE's decode, device memory. json: members, each with a comma. */
ldm_status bench_sd(ldm_ctx *ctx, const bench_settings *s, const char *model, const char *random,
                    int half_weights, FILE *json);

/* What tools/bench_sd.c and bench_sd_train.c share: the model (a checkpoint, or with model NULL
 * the published config of random: "sd15", "sd21"; NULL: sd15; its size printed), random weights
 * (N(0, 0.02); halves drawn on the host) and random N(0, 1) inputs drawn on the device. */
ldm_status bench_sd_model(ldm_ctx *ctx, const char *model, const char *random, int half,
                          ldm_sd_model *m);
ldm_status bench_sd_random_weights(ldm_ctx *ctx, ldm_graph *g);
ldm_status bench_sd_random_inputs(ldm_ctx *ctx, ldm_tensor **in, int n_in);

/* A Stable Diffusion UNet's training step (tools/bench_sd_train.c) at batch 1: MSE loss, backward,
 * Adam; full fine-tuning (rank 0) or LoRA of each rank in ranks (all_linear, alpha = rank), at
 * each side in sides (pixels; latents side / 8): ms per step and device memory (trainable
 * values, gradients and Adam's moments, frozen weights, planned activations), without and/or
 * with gradient checkpointing (checkpointing: 0 and/or 1). A configuration
 * that does not fit the device is reported, not an error. */
ldm_status bench_sd_train(ldm_ctx *ctx, const bench_settings *s, const char *model,
                          const char *random, const int *sides, int n_sides, const int *ranks,
                          int n_ranks, const int *checkpointing, int n_checkpointing, FILE *json);

/* The device's facts, as --list-devices prints them. */
void bench_print_device(const ldm_device_info *d);

/* --report: device facts and tunables, the self-test, the op tests in op_tests_dir (both kernel
 * layouts; skipped, and said so, when the directory holds none), copy and SGEMM peaks, every op's
 * share of them, and the seed UNet's training step at train_batch and sampling step at batch 2
 * with device memory; then a summary table to paste into an issue. json: all of it. */
ldm_status bench_report(ldm_ctx *ctx, const bench_settings *s, int train_batch,
                        const char *op_tests_dir, FILE *json);

#endif
