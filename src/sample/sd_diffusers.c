/* src/sample/sd_diffusers.c: a diffusers folder of Stable Diffusion 1.x/2.x (unet/, vae/,
 * text_encoder/, tokenizer/, scheduler/): sizes from each part's config.json, the prediction from
 * the scheduler's, the weight files (F32 or the .fp16 variant; pickled .bin refused). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fail.h"
#include "internal.h"
#include "json.h"
#include "ldmcl/safetensors.h"
#include "sd_internal.h"

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static ldm_status parse_file(const char *path, ldm_json **out) {
    *out = NULL;
    char *text;
    size_t len;
    LDM_TRY(ldm_read_file(path, &text, &len));
    char err[160];
    *out = ldm_json_parse(text, len, err, sizeof err);
    free(text);
    if (!*out) return LDM_FAIL(LDM_ERR_FORMAT, "%s: not valid JSON: %s", path, err);
    if ((*out)->type != LDM_JSON_OBJECT) {
        ldm_json_free(*out);
        *out = NULL;
        return LDM_FAIL(LDM_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return LDM_OK;
}

/* An integer key (absent: *out unchanged). */
static ldm_status get_int(const char *path, const ldm_json *o, const char *key, int *out) {
    const ldm_json *v = ldm_json_get(o, key);
    if (!v || v->type == LDM_JSON_NULL) return LDM_OK;
    if (v->type != LDM_JSON_NUMBER || !v->is_integer || v->integer < 0 || v->integer > (1 << 24))
        return LDM_FAIL(LDM_ERR_FORMAT, "%s: \"%s\" must be a whole number", path, key);
    *out = (int)v->integer;
    return LDM_OK;
}

/* An array of whole numbers (at most max), or one number repeated over *n entries. */
static ldm_status get_ints(const char *path, const ldm_json *o, const char *key, int *out, int max,
                           int *n) {
    const ldm_json *v = ldm_json_get(o, key);
    if (!v) return LDM_FAIL(LDM_ERR_FORMAT, "%s: \"%s\" is missing", path, key);
    if (v->type == LDM_JSON_NUMBER && v->is_integer && *n > 0) {
        for (int i = 0; i < *n; i++)
            out[i] = (int)v->integer;
        return LDM_OK;
    }
    if (v->type != LDM_JSON_ARRAY || v->count < 1 || v->count > (size_t)max)
        return LDM_FAIL(LDM_ERR_FORMAT, "%s: \"%s\" must be a list of 1 to %d numbers", path, key,
                        max);
    for (size_t i = 0; i < v->count; i++) {
        const ldm_json *x = &v->items[i];
        if (x->type != LDM_JSON_NUMBER || !x->is_integer || x->integer < 1 ||
            x->integer > (1 << 20))
            return LDM_FAIL(LDM_ERR_FORMAT, "%s: \"%s\"[%zu] must be a positive whole number", path,
                            key, i);
        out[i] = (int)x->integer;
    }
    *n = (int)v->count;
    return LDM_OK;
}

/* dir/part/name into out (NULL when no such file). */
static const char *part_file(const char *dir, const char *part, const char *name, char *out,
                             size_t size) {
    snprintf(out, size, "%s/%s/%s", dir, part, name);
    return is_file(out) ? out : NULL;
}

/* The weights of a part: name.safetensors or name.fp16.safetensors; a pickle refused. */
static ldm_status weights_file(const char *dir, const char *part, const char *stem, char *out,
                               size_t size) {
    char name[128];
    snprintf(name, sizeof name, "%s.safetensors", stem);
    if (part_file(dir, part, name, out, size)) return LDM_OK;
    snprintf(name, sizeof name, "%s.fp16.safetensors", stem);
    if (part_file(dir, part, name, out, size)) return LDM_OK;
    snprintf(name, sizeof name, "%s.bin", stem);
    if (part_file(dir, part, name, out, size))
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s' is a PyTorch pickle: ldmcl does not read pickles. Save the folder "
                        "again with safetensors (diffusers: pipe.save_pretrained(dir, "
                        "safe_serialization=True))",
                        out);
    return LDM_FAIL(LDM_ERR_NOT_FOUND,
                    "the diffusers folder '%s' has no %s/%s.safetensors (nor .fp16.safetensors): "
                    "its %s is missing",
                    dir, part, stem, part);
}

static ldm_status read_unet(const char *dir, ldm_sd_model *m) {
    char path[4200];
    if (!part_file(dir, "unet", "config.json", path, sizeof path))
        return LDM_FAIL(LDM_ERR_NOT_FOUND, "'%s' has no unet/config.json: not a diffusers folder",
                        dir);
    ldm_json *o;
    LDM_TRY(parse_file(path, &o));
    ldm_sd_unet_config *u = &m->unet;
    ldm_sd_unet_config_sd1(u);
    int blocks[LDM_SD_MAX_LEVELS], heads[LDM_SD_MAX_LEVELS], n = 0, nh;
    const ldm_json *add = ldm_json_get(o, "addition_embed_type");
    ldm_status st = add && add->type == LDM_JSON_STRING
                        ? LDM_FAIL(LDM_ERR_FORMAT,
                                   "%s: addition_embed_type \"%s\" is SDXL's: ldmcl loads SD 1.x "
                                   "and 2.x",
                                   path, add->string)
                        : LDM_OK;
    if (st == LDM_OK) st = get_int(path, o, "in_channels", &u->in_channels);
    if (st == LDM_OK) st = get_int(path, o, "out_channels", &u->out_channels);
    if (st == LDM_OK) st = get_ints(path, o, "block_out_channels", blocks, LDM_SD_MAX_LEVELS, &n);
    if (st == LDM_OK) st = get_int(path, o, "layers_per_block", &u->num_res_blocks);
    if (st == LDM_OK) st = get_int(path, o, "cross_attention_dim", &u->context_dim);
    if (st == LDM_OK) st = get_int(path, o, "norm_num_groups", &u->norm_groups);
    if (st == LDM_OK) st = get_int(path, o, "transformer_layers_per_block", &u->transformer_depth);
    /* diffusers' attention_head_dim is the number of heads for these models (its naming); a
     * num_attention_heads, when given, is. */
    nh = n;
    const ldm_json *nah = ldm_json_get(o, "num_attention_heads");
    if (st == LDM_OK)
        st = get_ints(path, o,
                      nah && nah->type != LDM_JSON_NULL ? "num_attention_heads"
                                                        : "attention_head_dim",
                      heads, LDM_SD_MAX_LEVELS, &nh);
    const ldm_json *types = st == LDM_OK ? ldm_json_get(o, "down_block_types") : NULL;
    if (st == LDM_OK && (!types || types->type != LDM_JSON_ARRAY || (int)types->count != n))
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: \"down_block_types\" must list %d blocks", path, n);
    const ldm_json *lin = ldm_json_get(o, "use_linear_projection");
    u->linear_proj = lin && lin->type == LDM_JSON_BOOL && lin->boolean;
    if (st == LDM_OK && nh != n)
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: %d head counts for %d blocks", path, nh, n);
    if (st == LDM_OK) {
        u->model_channels = blocks[0];
        u->n_levels = n;
        int same_heads = 1, same_width = 1;
        for (int l = 0; l < n; l++) {
            u->channel_mult[l] = blocks[l] / blocks[0];
            if (blocks[l] % blocks[0])
                st = LDM_FAIL(LDM_ERR_FORMAT, "%s: block_out_channels are not multiples of %d",
                              path, blocks[0]);
            const ldm_json *t = &types->items[l];
            u->attn_levels[l] = t->type == LDM_JSON_STRING && !strncmp(t->string, "CrossAttn", 9);
            same_heads &= heads[l] == heads[0];
            same_width &= heads[l] > 0 && blocks[l] % heads[l] == 0 &&
                          blocks[l] / heads[l] == blocks[0] / heads[0];
        }
        if (same_heads) {
            u->num_heads = heads[0];
            u->head_channels = 0;
        } else if (same_width) {
            u->num_heads = 0;
            u->head_channels = blocks[0] / heads[0];
        } else if (st == LDM_OK) {
            st = LDM_FAIL(LDM_ERR_FORMAT,
                          "%s: heads per block neither fixed nor of one width: not a 1.x/2.x UNet",
                          path);
        }
    }
    ldm_json_free(o);
    if (st == LDM_OK)
        st =
            weights_file(dir, "unet", "diffusion_pytorch_model", m->unet_file, sizeof m->unet_file);
    return st;
}

static ldm_status read_vae(const char *dir, ldm_sd_model *m) {
    char path[4200];
    if (!part_file(dir, "vae", "config.json", path, sizeof path))
        return LDM_FAIL(LDM_ERR_NOT_FOUND, "the diffusers folder '%s' has no vae/config.json", dir);
    ldm_json *o;
    LDM_TRY(parse_file(path, &o));
    ldm_sd_vae_config *v = &m->vae;
    ldm_sd_vae_config_sd(v);
    int blocks[LDM_SD_VAE_MAX_LEVELS], n = 0;
    ldm_status st = get_int(path, o, "in_channels", &v->in_channels);
    if (st == LDM_OK) st = get_int(path, o, "out_channels", &v->out_channels);
    if (st == LDM_OK)
        st = get_ints(path, o, "block_out_channels", blocks, LDM_SD_VAE_MAX_LEVELS, &n);
    if (st == LDM_OK) st = get_int(path, o, "layers_per_block", &v->num_res_blocks);
    if (st == LDM_OK) st = get_int(path, o, "latent_channels", &v->z_channels);
    if (st == LDM_OK) st = get_int(path, o, "norm_num_groups", &v->norm_groups);
    const ldm_json *sf = ldm_json_get(o, "scaling_factor");
    if (st == LDM_OK && sf && (sf->type != LDM_JSON_NUMBER || !(sf->number > 0)))
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: \"scaling_factor\" must be a positive number", path);
    else if (sf)
        v->scaling_factor = (float)sf->number;
    if (st == LDM_OK) {
        v->embed_dim = v->z_channels;
        v->ch = blocks[0];
        v->n_levels = n;
        for (int l = 0; l < n; l++)
            v->ch_mult[l] = blocks[l] / blocks[0];
    }
    ldm_json_free(o);
    if (st == LDM_OK)
        st = weights_file(dir, "vae", "diffusion_pytorch_model", m->vae_file, sizeof m->vae_file);
    return st;
}

static ldm_status read_scheduler(const char *dir, ldm_sd_model *m) {
    char path[4200];
    m->prediction = LDM_PREDICT_EPSILON;
    if (!part_file(dir, "scheduler", "scheduler_config.json", path, sizeof path)) {
        snprintf(m->prediction_how, sizeof m->prediction_how,
                 "epsilon, assumed (no scheduler/scheduler_config.json); --prediction overrides");
        return LDM_OK;
    }
    ldm_json *o;
    LDM_TRY(parse_file(path, &o));
    ldm_status st = get_int(path, o, "num_train_timesteps", &m->num_timesteps);
    const ldm_json *p = ldm_json_get(o, "prediction_type");
    const ldm_json *b0 = ldm_json_get(o, "beta_start"), *b1 = ldm_json_get(o, "beta_end");
    const ldm_json *bs = ldm_json_get(o, "beta_schedule");
    if (b0 && b0->type == LDM_JSON_NUMBER) m->beta_start = b0->number;
    if (b1 && b1->type == LDM_JSON_NUMBER) m->beta_end = b1->number;
    if (st == LDM_OK && bs && (bs->type != LDM_JSON_STRING || strcmp(bs->string, "scaled_linear")))
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: beta_schedule %s%s; SD models use \"scaled_linear\"",
                      path, bs->type == LDM_JSON_STRING ? bs->string : "(not a string)", "");
    if (st == LDM_OK && p && p->type == LDM_JSON_STRING && !strcmp(p->string, "v_prediction"))
        m->prediction = LDM_PREDICT_V;
    else if (st == LDM_OK && p && (p->type != LDM_JSON_STRING || strcmp(p->string, "epsilon")))
        st = LDM_FAIL(LDM_ERR_FORMAT, "%s: prediction_type must be \"epsilon\" or \"v_prediction\"",
                      path);
    snprintf(m->prediction_how, sizeof m->prediction_how, "%s, from %s",
             m->prediction == LDM_PREDICT_V ? "v" : "epsilon", "scheduler/scheduler_config.json");
    ldm_json_free(o);
    return st;
}

ldm_status ldm_sd_inspect_diffusers(const char *dir, ldm_sd_model *m) {
    m->layout = LDM_SD_DIFFUSERS;
    LDM_TRY(read_unet(dir, m));
    LDM_TRY(read_vae(dir, m));
    char path[4200];
    if (!part_file(dir, "text_encoder", "config.json", path, sizeof path))
        return LDM_FAIL(LDM_ERR_NOT_FOUND,
                        "the diffusers folder '%s' has no text_encoder/config.json: its text "
                        "encoder is missing",
                        dir);
    LDM_TRY(ldm_clip_text_config_read(path, &m->text));
    LDM_TRY(weights_file(dir, "text_encoder", "model", m->text_file, sizeof m->text_file));
    LDM_TRY(read_scheduler(dir, m));
    snprintf(m->tokenizer_dir, sizeof m->tokenizer_dir, "%s/tokenizer", dir);
    if (!is_dir(m->tokenizer_dir)) m->tokenizer_dir[0] = '\0';
    m->family = m->unet.linear_proj || m->unet.context_dim == 1024 ? LDM_SD_2 : LDM_SD_1;
    m->text_skip = 0; /* 2.x folders ship the text encoder cut at its penultimate layer */
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(m->unet_file, &st));
    const ldm_st_tensor *w = ldm_safetensors_find(st, "conv_in.weight");
    snprintf(m->weights, sizeof m->weights, "%s", w ? ldm_dtype_name(w->dtype) : "?");
    ldm_safetensors_close(st);
    return LDM_OK;
}
