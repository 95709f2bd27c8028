/* tools/bench_unet.c: the seed configuration's UNet (celebhq_text_cond, 118,506,500 parameters,
 * latent 4x32x32, context 77x512): a full training step (draws, add_noise, CFG dropout, UNet
 * forward and backward, MSE, Adam) and a sampling step (one UNet forward; batch 2 is one
 * classifier-free-guidance step). Device time between markers around each step, median of
 * --repeat after --warmup; memory from the planner and the context's arenas. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

/* Normal numbers into every parameter (scaled) and the given inputs. */
static ldm_status randomise(ldm_ctx *ctx, ldm_graph *g, ldm_tensor **inputs, int n_inputs) {
    ldm_cmd *c = ldm_ctx_immediate(ctx);
    ldm_buf none = {NULL, 0};
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        BENCH_TRY(ldm_rng_fill(c, LDM_DIST_NORMAL, ldm_tensor_numel(p), 1, (uint32_t)i, 0, none,
                               0.02f, 0.0f, ldm_tensor_buf(p)));
    }
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i])
            BENCH_TRY(ldm_rng_fill(c, LDM_DIST_NORMAL, ldm_tensor_numel(inputs[i]), 2, (uint32_t)i,
                                   0, none, 1.0f, 0.0f, ldm_tensor_buf(inputs[i])));
    return ldm_ctx_finish(ctx);
}

static void print_memory(const char *what, ldm_ctx *ctx, ldm_graph *g) {
    ldm_graph_memory m = ldm_graph_memory_report(g);
    char a[32], t[32], all[32];
    printf("  %s memory: activations %s planned (%s without reuse), %s on the device in all\n",
           what, ldm_format_bytes(m.activation_bytes, a, 32),
           ldm_format_bytes(m.activation_total, t, 32),
           ldm_format_bytes(ldm_ctx_device_bytes_in_use(ctx), all, 32));
}

/* Token ids of 12-token prompts padded to 77, and the empty prompt's, for the joint step. */
static ldm_status token_inputs(ldm_diffusion_train_graph *tg, int batch) {
    float *ids = malloc((size_t)batch * 77 * sizeof *ids), *mask = malloc((size_t)batch * 77 * 4);
    float eids[77], emask[77];
    if (!ids || !mask) {
        free(ids);
        free(mask);
        return LDM_ERR_HOST_MEMORY;
    }
    for (int k = 0; k < 77; k++) {
        eids[k] = k == 0 ? 49406.0f : 49407.0f;
        emask[k] = k < 2 ? 1.0f : 0.0f;
        for (int b = 0; b < batch; b++) {
            ids[b * 77 + k] = k == 0 ? 49406.0f : k < 12 ? (float)(320 + 37 * k + b) : 49407.0f;
            mask[b * 77 + k] = k <= 12 ? 1.0f : 0.0f;
        }
    }
    ldm_status st = ldm_tensor_write(tg->ids, ids);
    if (st == LDM_OK) st = ldm_tensor_write(tg->ids_mask, mask);
    if (st == LDM_OK) st = ldm_tensor_write(tg->empty_ids, eids);
    if (st == LDM_OK) st = ldm_tensor_write(tg->empty_mask, emask);
    free(ids);
    free(mask);
    return st;
}

ldm_status bench_unet_train_step(ldm_ctx *ctx, const bench_settings *s, int batch,
                                 int with_text_encoder, FILE *json, bench_step *out) {
    ldm_unet_config u;
    ldm_unet_config_celebhq_text(&u);
    ldm_schedule *sched;
    BENCH_TRY(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, 1000, 0.00085, 0.012, &sched));
    ldm_clip_text_config clip;
    ldm_clip_text_config_default(&clip);
    ldm_diffusion_train_config cfg = {.unet = &u,
                                      .schedule = sched,
                                      .batch = batch,
                                      .height = 32,
                                      .width = 32,
                                      .context_len = 77,
                                      .cond_drop_prob = 0.1f,
                                      .prediction = LDM_PREDICT_EPSILON,
                                      .seed = 1111,
                                      .text_encoder = with_text_encoder ? &clip : NULL};
    ldm_graph *g = NULL;
    ldm_optimizer *opt = NULL;
    ldm_diffusion_train_graph tg;
    ldm_status st = ldm_graph_create(ctx, &g);
    if (st == LDM_OK) st = ldm_diffusion_train_record(g, &cfg, &tg);
    if (st == LDM_OK) st = ldm_graph_compile(g);
    ldm_tensor *ins[3] = {tg.latents, tg.context, tg.empty_context};
    if (st == LDM_OK) st = randomise(ctx, g, ins, 3);
    if (st == LDM_OK && with_text_encoder) st = token_inputs(&tg, batch);
    ldm_adam_config ac;
    ldm_adam_config_init(&ac);
    ac.lr = 5e-6f; /* the seed's ldm_lr */
    if (st == LDM_OK) st = ldm_adam_create(g, &ac, &opt);
    double *t = calloc((size_t)s->repeat, sizeof *t);
    if (!t) st = LDM_ERR_HOST_MEMORY;
    for (int r = -s->warmup; r < s->repeat && st == LDM_OK; r++) {
        cl_event a, b;
        if ((st = bench_marker(ctx, &a)) != LDM_OK) break;
        st = ldm_graph_run(g);
        if (st == LDM_OK) st = ldm_optimizer_step(opt);
        if (st == LDM_OK) st = ldm_graph_zero_grads(g);
        if (st == LDM_OK) st = bench_marker(ctx, &b);
        double ms = 0;
        if (st == LDM_OK) st = bench_span_ms(a, b, &ms);
        if (r >= 0) t[r] = ms;
    }
    if (st == LDM_OK) {
        double ms = bench_median(t, s->repeat);
        float loss = 0;
        ldm_tensor_read(tg.loss, &loss);
        printf("training step, batch %d (draws, add_noise, dropout, %sUNet fwd+bwd, MSE, Adam): "
               "%.1f ms, %.2f images/s (loss %.4f)\n",
               batch, with_text_encoder ? "CLIP text encoder and " : "", ms, batch / (ms * 1e-3),
               loss);
        print_memory("training", ctx, g);
        if (out) *out = (bench_step){batch, ms, ldm_ctx_device_bytes_in_use(ctx)};
        if (json)
            fprintf(
                json,
                "  \"unet%s_train_step\": {\"batch\": %d, \"ms\": %.3f, \"images_per_s\": %.3f, "
                "\"activation_bytes\": %llu, \"device_bytes\": %llu},\n",
                with_text_encoder ? "_clip" : "", batch, ms, batch / (ms * 1e-3),
                (unsigned long long)ldm_graph_memory_report(g).activation_bytes,
                (unsigned long long)ldm_ctx_device_bytes_in_use(ctx));
    }
    free(t);
    ldm_optimizer_destroy(opt);
    ldm_graph_destroy(g);
    ldm_schedule_destroy(sched);
    return st;
}

ldm_status bench_unet_sample_step(ldm_ctx *ctx, const bench_settings *s, int batch, FILE *json,
                                  bench_step *out) {
    ldm_unet_config u;
    ldm_unet_config_celebhq_text(&u);
    ldm_graph *g;
    BENCH_TRY(ldm_graph_create(ctx, &g));
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(batch, 4, 32, 32));
    ldm_tensor *tt = ldm_graph_input(g, "t", LDM_SHAPE(batch));
    ldm_tensor *cx = ldm_graph_input(g, "context", LDM_SHAPE(batch, 77, 512));
    ldm_unet_cond cond = {cx, NULL, NULL};
    ldm_tensor_keep(ldm_unet(g, &u, x, tt, &cond));
    ldm_status st = ldm_graph_compile(g);
    ldm_tensor *ins[2] = {x, cx};
    if (st == LDM_OK) st = randomise(ctx, g, ins, 2);
    double *t = calloc((size_t)s->repeat, sizeof *t);
    if (!t) st = LDM_ERR_HOST_MEMORY;
    for (int r = -s->warmup; r < s->repeat && st == LDM_OK; r++) {
        cl_event a, b;
        if ((st = bench_marker(ctx, &a)) != LDM_OK) break;
        st = ldm_graph_run(g);
        if (st == LDM_OK) st = bench_marker(ctx, &b);
        double ms = 0;
        if (st == LDM_OK) st = bench_span_ms(a, b, &ms);
        if (r >= 0) t[r] = ms;
    }
    if (st == LDM_OK) {
        double ms = bench_median(t, s->repeat);
        printf("sampling step, batch %d (one UNet forward%s): %.1f ms\n", batch,
               batch == 2 ? "; one guided step for one image" : "", ms);
        print_memory("sampling", ctx, g);
        if (out) *out = (bench_step){batch, ms, ldm_ctx_device_bytes_in_use(ctx)};
        if (json)
            fprintf(json,
                    "  \"unet_sample_step_batch%d\": {\"ms\": %.3f, \"activation_bytes\": %llu},\n",
                    batch, ms, (unsigned long long)ldm_graph_memory_report(g).activation_bytes);
    }
    free(t);
    ldm_graph_destroy(g);
    return st;
}

ldm_status bench_unet(ldm_ctx *ctx, const bench_settings *s, int train_batch, FILE *json) {
    size_t params = 0;
    ldm_unet_config u;
    ldm_unet_config_celebhq_text(&u);
    BENCH_TRY(ldm_unet_param_count(ctx, &u, &params));
    printf("seed UNet (celebhq_text_cond): %zu parameters, latent 4x32x32, context 77x512\n",
           params);
    BENCH_TRY(bench_unet_sample_step(ctx, s, 2, json, NULL));
    BENCH_TRY(bench_unet_sample_step(ctx, s, 16, json, NULL));
    return bench_unet_train_step(ctx, s, train_batch, 0, json, NULL);
}
