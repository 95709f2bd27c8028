/* src/train/run_inputs.c: every file a training run will read, checked before its first step
 * (see ldmcl/runner.h): a missing vocabulary or a damaged LPIPS file is reported at once, not
 * after an hour of autoencoder training. Each file is opened and read as the stage will read it
 * (tokenizers built and their size checked against the text encoder's, safetensors headers and
 * checksums verified); the validation prompts are tokenized. Nothing is written. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/safetensors.h"
#include "ldmcl/tokenizer.h"
#include "runner_internal.h"

/* A safetensors file the run reads, opened (header, size and SHA-256 checked) and closed. */
static ldm_status check_safetensors(const char *what, const char *path) {
    ldm_safetensors *st;
    ldm_status s = ldm_safetensors_open(path, &st);
    if (s != LDM_OK) {
        ldm_error_prefix("%s", what);
        return s;
    }
    ldm_safetensors_close(st);
    return LDM_OK;
}

/* The LDM stage's tokenizer, loaded as the stage loads it; the validation prompts through it. */
static ldm_status check_text(const ldm_run_config *c) {
    ldm_clip_tokenizer *tok;
    ldm_status s = c->model.text == LDM_TEXT_CLIP_SCRATCH
                       ? ldm_clip_tokenizer_load_bpe(c->model.vocab, &tok)
                       : ldm_clip_tokenizer_load_dir(c->model.clip_path, &tok);
    if (s != LDM_OK) {
        ldm_error_prefix("%s: [text] %s", c->path,
                         c->model.text == LDM_TEXT_CLIP_SCRATCH ? "vocab" : "clip_path");
        return s;
    }
    char source[LDM_RUN_PATH + 64];
    if (c->model.text == LDM_TEXT_CLIP_SCRATCH)
        snprintf(source, sizeof source, "'%s' [text]", c->path);
    else
        snprintf(source, sizeof source, "'%s/config.json'", c->model.clip_path);
    s = ldm_clip_tokenizer_check_vocab(tok, c->model.clip.vocab_size, source);
    int len = c->model.context_length, got;
    int32_t *ids = malloc((size_t)len * sizeof *ids), *mask = malloc((size_t)len * sizeof *mask);
    if (!ids || !mask) s = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    for (int i = 0; i < c->ldm_train.n_validation_prompts && s == LDM_OK; i++) {
        const char *p = c->ldm_train.validation_prompts[i];
        s = ldm_clip_tokenize(tok, p, strlen(p), len, 1, ids, mask, &got);
        if (s != LDM_OK)
            ldm_error_prefix("%s: [train] validation_prompts, prompt %d (\"%.40s\")", c->path,
                             i + 1, p);
    }
    free(ids);
    free(mask);
    ldm_clip_tokenizer_destroy(tok);
    if (s != LDM_OK || c->model.text == LDM_TEXT_CLIP_SCRATCH) return s;
    char path[LDM_RUN_PATH + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", c->model.clip_path);
    return check_safetensors("[text] clip_path", path);
}

ldm_status run_check_inputs(const run_ctx *r) {
    const ldm_run_config *c = r->c;
    int ae_stage = r->o->stage != LDM_STAGE_LDM, ldm_stage = r->o->stage != LDM_STAGE_AUTOENCODER;
    char what[LDM_RUN_PATH + 64];
    if (c->ae_checkpoint[0]) {
        snprintf(what, sizeof what, "%s: [autoencoder] checkpoint", c->path);
        LDM_TRY(check_safetensors(what, c->ae_checkpoint));
    } else if (ae_stage && c->ae_train.step.perceptual_weight > 0 && c->ae_train.lpips_path[0]) {
        snprintf(what, sizeof what, "%s: [autoencoder_train] lpips_path", c->path);
        LDM_TRY(check_safetensors(what, c->ae_train.lpips_path));
    }
    if (c->ldm_train.pretrained[0] && !ldm_stage)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "%s: [model] pretrained: a pretrained model's run has no autoencoder "
                        "stage (its autoencoder encodes the latents); --stage autoencoder has "
                        "nothing to do",
                        c->path);
    if (!ldm_stage) return LDM_OK;
    if (c->ldm_train.pretrained[0]) {
        char unet[LDM_RUN_PATH + 32];
        snprintf(what, sizeof what, "%s: [model] pretrained", c->path);
        snprintf(unet, sizeof unet, "%s/unet.safetensors", c->ldm_train.pretrained);
        LDM_TRY(check_safetensors(what, unet));
    }
    if (c->model.text != LDM_TEXT_NONE) LDM_TRY(check_text(c));
    if (c->ldm_train.resume[0] && strcmp(c->ldm_train.resume, "latest") && !r->o->resume) {
        snprintf(what, sizeof what, "%s: [train] resume_from_checkpoint", c->path);
        LDM_TRY(check_safetensors(what, c->ldm_train.resume));
    }
    return LDM_OK;
}
