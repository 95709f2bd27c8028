/* src/sample/clip_encoder.c: the frozen CLIP text encoder for inference (see ldmcl/clip.h). */
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/clip.h"
#include "ldmcl/tokenizer.h"

struct ldm_clip_encoder {
    ldm_ctx *ctx;
    ldm_clip_text_config cfg;
    int batch, seq_len;
    ldm_graph *g;
    ldm_tensor *ids, *mask, *out;
    float *host_ids, *host_mask;
    int pad_id, mask_padding; /* ldm_clip_encoder_set_padding */
};

static ldm_status create(ldm_ctx *ctx, ldm_params *params, const ldm_lora_config *lora,
                         const ldm_clip_text_config *c, int batch, int seq_len, int skip,
                         int half_weights, ldm_clip_encoder **out);

void ldm_clip_encoder_set_padding(ldm_clip_encoder *e, int pad_id, int mask_padding) {
    e->pad_id = pad_id;
    e->mask_padding = mask_padding;
}

ldm_status ldm_clip_encoder_create(ldm_ctx *ctx, const ldm_clip_text_config *c, int batch,
                                   int seq_len, int skip, ldm_clip_encoder **out) {
    return create(ctx, NULL, NULL, c, batch, seq_len, skip, 0, out);
}

ldm_params *ldm_clip_encoder_params(const ldm_clip_encoder *e) {
    return ldm_graph_params(e->g);
}

ldm_graph *ldm_clip_encoder_graph(const ldm_clip_encoder *e) {
    return e->g;
}

static ldm_status create(ldm_ctx *ctx, ldm_params *params, const ldm_lora_config *lora,
                         const ldm_clip_text_config *c, int batch, int seq_len, int skip,
                         int half_weights, ldm_clip_encoder **out) {
    *out = NULL;
    LDM_TRY(ldm_clip_text_config_check(c));
    if (batch < 1 || seq_len < 2 || seq_len > c->max_positions)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "CLIP encoder: batch %d of %d tokens (2 to max_position_embeddings = %d)",
                        batch, seq_len, c->max_positions);
    ldm_clip_encoder *e = calloc(1, sizeof *e);
    if (!e) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    e->ctx = ctx;
    e->cfg = *c;
    e->pad_id = -1;
    e->mask_padding = 1;
    e->batch = batch;
    e->seq_len = seq_len;
    e->host_ids = malloc((size_t)batch * (size_t)seq_len * sizeof *e->host_ids);
    e->host_mask = malloc((size_t)batch * (size_t)seq_len * sizeof *e->host_mask);
    ldm_status st = e->host_ids && e->host_mask ? ldm_graph_create_in(ctx, params, &e->g)
                                                : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of memory");
    if (st == LDM_OK) {
        ldm_graph_set_half_weights(e->g, half_weights);
        if (params && lora) ldm_graph_set_lora(e->g, lora);
        e->ids = ldm_graph_input(e->g, "ids", LDM_SHAPE(batch, seq_len));
        e->mask = ldm_graph_input(e->g, "mask", LDM_SHAPE(batch, seq_len));
        e->out = ldm_clip_text(e->g, c, e->ids, e->mask, skip);
        if (e->out) ldm_tensor_keep(e->out);
        for (size_t i = 0; i < ldm_graph_param_count(e->g); i++)
            ldm_tensor_set_trainable(ldm_graph_param_at(e->g, i), 0);
        st = ldm_graph_compile(e->g);
    }
    if (st != LDM_OK) {
        ldm_clip_encoder_destroy(e);
        return st;
    }
    *out = e;
    return LDM_OK;
}

ldm_status ldm_clip_encoder_create_in(ldm_ctx *ctx, ldm_params *params,
                                      const ldm_clip_text_config *c, int batch, int seq_len,
                                      int skip, ldm_clip_encoder **out) {
    return create(ctx, params, NULL, c, batch, seq_len, skip, 0, out);
}

ldm_status ldm_clip_encoder_create_adapted(ldm_ctx *ctx, ldm_params *params,
                                           const ldm_lora_config *lora,
                                           const ldm_clip_text_config *c, int batch, int seq_len,
                                           int skip, ldm_clip_encoder **out) {
    return create(ctx, params, lora, c, batch, seq_len, skip, 0, out);
}

ldm_status ldm_clip_encoder_create_half(ldm_ctx *ctx, const ldm_clip_text_config *c, int batch,
                                        int seq_len, int skip, ldm_clip_encoder **out) {
    return create(ctx, NULL, NULL, c, batch, seq_len, skip, 1, out);
}

void ldm_clip_encoder_destroy(ldm_clip_encoder *e) {
    if (!e) return;
    ldm_graph_destroy(e->g);
    free(e->host_ids);
    free(e->host_mask);
    free(e);
}

ldm_status ldm_clip_encoder_load(ldm_clip_encoder *e, const char *path) {
    static const char *const ignore[] = {"text_model.embeddings.position_ids", NULL};
    ldm_load_options o = {.only_prefix = "text_model.", .ignore = ignore};
    return ldm_graph_load(e->g, path, &o);
}

ldm_status ldm_clip_encoder_run(ldm_clip_encoder *e, const int32_t *ids, const int32_t *mask,
                                float *out) {
    size_t n = (size_t)e->batch * (size_t)e->seq_len;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= e->cfg.vocab_size)
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "CLIP encoder: token id %d at row %zu, position %zu is outside the "
                            "vocabulary of %d",
                            (int)ids[i], i / (size_t)e->seq_len, i % (size_t)e->seq_len,
                            e->cfg.vocab_size);
        e->host_ids[i] = (float)ids[i];
        e->host_mask[i] = mask[i] ? 1.0f : 0.0f;
    }
    LDM_TRY(ldm_tensor_write(e->ids, e->host_ids));
    LDM_TRY(ldm_tensor_write(e->mask, e->host_mask));
    LDM_TRY(ldm_graph_run(e->g));
    return ldm_tensor_read(e->out, out);
}

ldm_status ldm_clip_encode_prompts(ldm_clip_encoder *e, ldm_clip_tokenizer *t,
                                   const char *const *prompts, int count, float *out) {
    if (count < 0 || count > e->batch)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "CLIP encoder: %d prompts for a batch of %d",
                        count, e->batch);
    LDM_TRY(ldm_clip_tokenizer_check_vocab(
        t, e->cfg.vocab_size, "the ldm_clip_text_config given to ldm_clip_encoder_create"));
    size_t n = (size_t)e->batch * (size_t)e->seq_len;
    int32_t *ids = malloc(n * sizeof *ids), *mask = malloc(n * sizeof *mask);
    ldm_status st = ids && mask ? LDM_OK : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    for (int b = 0; b < e->batch && st == LDM_OK; b++) {
        const char *p = b < count ? prompts[b] : "";
        int got = 0;
        int32_t *row_ids = ids + (size_t)b * e->seq_len, *row_mask = mask + (size_t)b * e->seq_len;
        st = ldm_clip_tokenize(t, p, strlen(p), e->seq_len, 1, row_ids, row_mask, &got);
        if (st != LDM_OK) ldm_error_prefix("prompt %d", b);
        for (int i = 0; i < e->seq_len && st == LDM_OK; i++) {
            if (!row_mask[i] && e->pad_id >= 0) row_ids[i] = e->pad_id;
            if (!e->mask_padding) row_mask[i] = 1;
        }
    }
    if (st == LDM_OK) st = ldm_clip_encoder_run(e, ids, mask, out);
    free(ids);
    free(mask);
    return st;
}
