/* src/sample/pipeline_lora.c: the LoRAs a prompt names (<lora:NAME:WEIGHT>, A1111's and
 * stable-diffusion.cpp's), merged into a pipeline's weights while prompts name them: a Stable
 * Diffusion checkpoint's, or an ldmcl model folder's (the LoRAs ldmcl-train writes) (see
 * pipeline_internal.h, ldmcl/lora.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "internal.h"
#include "pipeline_internal.h"

/* The weight of name in refs (0: not there). */
static float weight_of(const ldm_lora_ref *refs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(refs[i].name, name)) return refs[i].weight;
    return 0.0f;
}

/* Tags of one prompt, one entry per name (weights of a name named twice add up). */
static ldm_status parse(const char *prompt, char *clean, size_t size, ldm_lora_ref *refs, int *n) {
    ldm_lora_ref raw[LDM_LORA_MAX_REFS];
    int n_raw;
    LDM_TRY(ldm_lora_parse_prompt(prompt, clean, size, raw, LDM_LORA_MAX_REFS, &n_raw));
    *n = 0;
    for (int i = 0; i < n_raw; i++) {
        int k = 0;
        while (k < *n && strcmp(refs[k].name, raw[i].name))
            k++;
        if (k == *n) {
            refs[(*n)++] = raw[i];
        } else {
            refs[k].weight += raw[i].weight;
        }
    }
    return LDM_OK;
}

static int same_set(const ldm_lora_ref *a, int na, const ldm_lora_ref *b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (weight_of(b, nb, a[i].name) != a[i].weight) return 0;
    return 1;
}

/* Merges name with weight w into the UNet and the text encoder. */
static ldm_status merge(ldm_pipeline *p, const char *name, float w) {
    char path[4096];
    LDM_TRY(ldm_lora_find(p->o.lora_dir, name, path, sizeof path));
    int merged;
    LDM_TRY(ldm_sd_lora_merge(p->sd, path, w, ldm_sampler_graph(p->sampler),
                              ldm_clip_encoder_graph(p->encoder), &merged));
    ldm_log(p->ctx, LDM_LOG_INFO, "LoRA '%s': %d layers merged at weight %+g", path, merged,
            (double)w);
    return LDM_OK;
}

ldm_status ldm_pipeline_take_loras(ldm_pipeline *p, const char *const *prompts,
                                   const char *const **use) {
    int batch = p->o.batch;
    if (!p->clean && !(p->clean = calloc((size_t)batch, sizeof *p->clean)))
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    ldm_lora_ref want[LDM_LORA_MAX_REFS], other[LDM_LORA_MAX_REFS];
    int n_want = 0;
    for (int b = 0; b < batch; b++) {
        size_t size = strlen(prompts[b]) + 1;
        char *c = realloc(p->clean[b], size);
        if (!c) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        p->clean[b] = c;
        int n;
        LDM_TRY(parse(prompts[b], c, size, b ? other : want, b ? &n : &n_want));
        if (b && !same_set(want, n_want, other, n))
            return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                            "the prompts of one batch name different LoRAs ('%s' and '%s'): "
                            "the weights are one for the batch",
                            prompts[0], prompts[b]);
    }
    *use = (const char *const *)p->clean;
    if (n_want && !p->o.lora_dir)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "'%s' names a LoRA (<lora:%s:...>): give the folder of LoRA files with "
                        "--lora-model-dir",
                        prompts[0], want[0].name);
    char path[4096]; /* every file found before any weight changes */
    for (int i = 0; i < n_want; i++)
        LDM_TRY(ldm_lora_find(p->o.lora_dir, want[i].name, path, sizeof path));
    /* what is merged and no longer named: out; what is named: to its weight. p->loras follows
     * each merge, so that it says what the weights hold even after a failure. */
    for (int i = 0; i < p->n_loras;) {
        if (weight_of(want, n_want, p->loras[i].name) != 0.0f) {
            i++;
            continue;
        }
        LDM_TRY(merge(p, p->loras[i].name, -p->loras[i].weight));
        p->loras[i] = p->loras[--p->n_loras];
    }
    for (int i = 0; i < n_want; i++) {
        int k = 0;
        while (k < p->n_loras && strcmp(p->loras[k].name, want[i].name))
            k++;
        float have = k < p->n_loras ? p->loras[k].weight : 0.0f;
        if (want[i].weight == have) continue;
        LDM_TRY(merge(p, want[i].name, want[i].weight - have));
        if (k == p->n_loras) p->loras[p->n_loras++] = want[i];
        p->loras[k].weight = want[i].weight;
    }
    return LDM_OK;
}
