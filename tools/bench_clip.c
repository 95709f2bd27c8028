/* tools/bench_clip.c: the CLIP text encoder at its real size (openai/clip-vit-base-patch16's
 * text tower: 12 layers, width 512, 8 heads, vocabulary 49,408; random weights): prompts encoded
 * per second at batch 1 and 16 (77 tokens each, device time of the encoder's graph), and the
 * joint training step of the seed UNet with the encoder trained alongside (bench_unet.c). */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

static ldm_status encode_rate(ldm_ctx *ctx, const bench_settings *s, int batch, FILE *json) {
    ldm_clip_text_config c;
    ldm_clip_text_config_default(&c);
    ldm_clip_encoder *e;
    BENCH_TRY(ldm_clip_encoder_create(ctx, &c, batch, 77, 0, &e));
    int32_t *ids = malloc((size_t)batch * 77 * sizeof *ids);
    int32_t *mask = malloc((size_t)batch * 77 * sizeof *mask);
    float *out = malloc((size_t)batch * 77 * 512 * sizeof *out);
    double *t = calloc((size_t)s->repeat, sizeof *t);
    ldm_status st = ids && mask && out && t ? LDM_OK : LDM_ERR_HOST_MEMORY;
    for (int i = 0; ids && mask && i < batch * 77; i++) {
        int k = i % 77;
        ids[i] = k == 0 ? 49406 : k < 15 ? 320 + 53 * k + i / 77 : 49407;
        mask[i] = k <= 15;
    }
    for (int r = -s->warmup; r < s->repeat && st == LDM_OK; r++) {
        cl_event a, b;
        if ((st = bench_marker(ctx, &a)) != LDM_OK) break;
        st = ldm_clip_encoder_run(e, ids, mask, out);
        if (st == LDM_OK) st = bench_marker(ctx, &b);
        double ms = 0;
        if (st == LDM_OK) st = bench_span_ms(a, b, &ms);
        if (r >= 0) t[r] = ms;
    }
    if (st == LDM_OK) {
        double ms = bench_median(t, s->repeat);
        printf("  text encoding, batch %d x 77 tokens: %.1f ms, %.1f prompts/s (ids upload and "
               "hidden-state read-back included)\n",
               batch, ms, batch / (ms * 1e-3));
        if (json)
            fprintf(json, "  \"clip_encode_batch%d\": {\"ms\": %.3f, \"prompts_per_s\": %.3f},\n",
                    batch, ms, batch / (ms * 1e-3));
    }
    free(ids);
    free(mask);
    free(out);
    free(t);
    ldm_clip_encoder_destroy(e);
    return st;
}

ldm_status bench_clip(ldm_ctx *ctx, const bench_settings *s, int train_batch, FILE *json) {
    ldm_clip_text_config c;
    ldm_clip_text_config_default(&c);
    size_t params = 0;
    BENCH_TRY(ldm_clip_text_param_count(ctx, &c, &params));
    printf("CLIP text encoder (openai/clip-vit-base-patch16 size, random weights): %zu "
           "parameters\n",
           params);
    BENCH_TRY(encode_rate(ctx, s, 1, json));
    BENCH_TRY(encode_rate(ctx, s, 16, json));
    printf("joint training step, the encoder trained with the seed UNet:\n  ");
    return bench_unet_train_step(ctx, s, train_batch, 1, json, NULL);
}
