/* tools/bench_sd_train.c: ldmcl-bench --bench sd-train: a Stable Diffusion UNet's training step
 * at batch 1 (forward, MSE loss, backward, Adam), full fine-tuning or LoRA (ldmcl/lora_adapter.h:
 * all_linear, alpha = rank), at each image side: device time per step (profiling events, after
 * warm-up, median of repeats) and what the device holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct train_step {
    ldm_graph *g;
    ldm_optimizer *opt;
} train_step;

static ldm_status run_step(void *user) {
    train_step *t = user;
    BENCH_TRY(ldm_graph_zero_grads(t->g));
    BENCH_TRY(ldm_graph_run(t->g));
    return ldm_optimizer_step(t->opt);
}

/* One configuration: rank 0 is full fine-tuning. */
static ldm_status one(ldm_ctx *ctx, const bench_settings *s, const ldm_sd_model *m, int random,
                      int side, int rank, int ckpt, FILE *json) {
    int lat = side / 8;
    char what[96];
    if (rank)
        snprintf(what, sizeof what, "LoRA rank %d (all_linear)%s", rank,
                 ckpt ? ", gradient checkpointing" : "");
    else if (ckpt)
        snprintf(what, sizeof what, "full fine-tuning, gradient checkpointing");
    else
        snprintf(what, sizeof what, "full fine-tuning");
    train_step t = {NULL, NULL};
    BENCH_TRY(ldm_graph_create(ctx, &t.g));
    ldm_graph_set_checkpointing(t.g, ckpt);
    ldm_lora_config lc = {.rank = rank, .alpha = (float)rank};
    if (rank) {
        BENCH_TRY(ldm_lora_targets_parse("all_linear", &lc.targets));
        ldm_graph_set_lora(t.g, &lc);
    }
    ldm_tensor *x = ldm_graph_input(t.g, "x", LDM_SHAPE(1, m->unet.in_channels, lat, lat));
    ldm_tensor *ts = ldm_graph_input(t.g, "t", LDM_SHAPE(1));
    ldm_tensor *c = ldm_graph_input(t.g, "context", LDM_SHAPE(1, 77, m->unet.context_dim));
    ldm_tensor *target =
        ldm_graph_input(t.g, "target", LDM_SHAPE(1, m->unet.out_channels, lat, lat));
    ldm_tensor *loss = ldm_mse_loss(t.g, ldm_sd_unet(t.g, &m->unet, x, ts, c), target);
    ldm_tensor_keep(loss);
    uint64_t values = 0; /* trained */
    for (size_t i = 0; i < ldm_graph_param_count(t.g); i++) {
        ldm_tensor *p = ldm_graph_param_at(t.g, i);
        int train = !rank || ldm_lora_is_adapter(ldm_tensor_name(p));
        ldm_tensor_set_trainable(p, train);
        if (train) values += ldm_tensor_numel(p);
    }
    ldm_status st = ldm_graph_backward(t.g, loss);
    if (st == LDM_OK) st = ldm_graph_compile(t.g);
    ldm_adam_config a;
    ldm_adam_config_init(&a);
    a.lr = 1e-5f;
    if (st == LDM_OK) st = ldm_adam_create(t.g, &a, &t.opt);
    if (st == LDM_ERR_DEVICE_MEMORY) { /* reported, not an error: the next may fit */
        printf("  %dx%d, %s: does not fit on this device (%s)\n", side, side, what,
               ldm_last_error());
        ldm_optimizer_destroy(t.opt);
        ldm_graph_destroy(t.g);
        return LDM_OK;
    }
    ldm_tensor *ins[3] = {x, c, target};
    int runs = !s->memory_only;
    if (st == LDM_OK && runs)
        st = random ? bench_sd_random_weights(ctx, t.g) : ldm_sd_load_unet(m, t.g);
    if (st == LDM_OK && runs) st = bench_sd_random_inputs(ctx, ins, 3);
    float tv = 500.0f;
    if (st == LDM_OK && runs) st = ldm_tensor_write(ts, &tv);
    double ms = 0;
    if (st == LDM_OK && runs) st = bench_time(ctx, s, run_step, &t, &ms);
    if (st == LDM_OK) {
        ldm_graph_memory mem = ldm_graph_memory_report(t.g);
        char tr[32], fr[32], ac[32], all[32], time[48] = "not run";
        if (runs) snprintf(time, sizeof time, "%.0f ms per step", ms);
        printf("  %dx%d, %s: %s; trainable %s (%llu values; gradients and Adam's "
               "two moments as much again each), frozen %s, activations %s planned, %s on the "
               "device in all\n",
               side, side, what, time, ldm_format_bytes(mem.trainable_bytes, tr, 32),
               (unsigned long long)values, ldm_format_bytes(mem.frozen_bytes, fr, 32),
               ldm_format_bytes(mem.activation_bytes, ac, 32),
               ldm_format_bytes(ldm_ctx_device_bytes_in_use(ctx), all, 32));
        char ms_json[32] = "null"; /* not run */
        if (runs) snprintf(ms_json, sizeof ms_json, "%.3f", ms);
        if (json)
            fprintf(json,
                    "  \"sd_train_%d_rank%d%s\": {\"ms\": %s, \"trainable_bytes\": %llu, "
                    "\"activation_bytes\": %llu, \"device_bytes\": %llu},\n",
                    side, rank, ckpt ? "_checkpointing" : "", ms_json,
                    (unsigned long long)mem.trainable_bytes,
                    (unsigned long long)mem.activation_bytes,
                    (unsigned long long)ldm_ctx_device_bytes_in_use(ctx));
    }
    ldm_optimizer_destroy(t.opt);
    ldm_graph_destroy(t.g);
    return st;
}

ldm_status bench_sd_train(ldm_ctx *ctx, const bench_settings *s, const char *model,
                          const char *random, const int *sides, int n_sides, const int *ranks,
                          int n_ranks, const int *checkpointing, int n_checkpointing, FILE *json) {
    ldm_sd_model m;
    BENCH_TRY(bench_sd_model(ctx, model, random, 0, &m));
    printf("training step at batch 1 (MSE loss, backward, Adam)\n");
    for (int i = 0; i < n_sides; i++)
        for (int k = 0; k < n_ranks; k++)
            for (int c = 0; c < n_checkpointing; c++)
                BENCH_TRY(
                    one(ctx, s, &m, model == NULL, sides[i], ranks[k], checkpointing[c], json));
    return LDM_OK;
}
