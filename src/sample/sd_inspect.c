/* src/sample/sd_inspect.c: what a Stable Diffusion file or folder is (see ldmcl/sd_model.h):
 * refusals of what ldmcl does not read, and the single file's family and sizes from its tensors.
 * diffusers' folders are read by sd_diffusers.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fail.h"
#include "json.h"
#include "ldmcl/safetensors.h"
#include "ldmcl/sd_model.h"
#include "sd_internal.h"

#define UNET "model.diffusion_model."
#define VAE "first_stage_model."
#define CLIP_L "cond_stage_model.transformer."
#define CLIP_H "cond_stage_model.model."

static int has_prefix(const ldm_safetensors *st, const char *prefix) {
    size_t n = strlen(prefix);
    for (size_t i = 0; i < ldm_safetensors_count(st); i++)
        if (!strncmp(ldm_safetensors_at(st, i)->name, prefix, n)) return 1;
    return 0;
}

static int has_part(const ldm_safetensors *st, const char *part) {
    for (size_t i = 0; i < ldm_safetensors_count(st); i++)
        if (strstr(ldm_safetensors_at(st, i)->name, part)) return 1;
    return 0;
}

static const ldm_st_tensor *find2(const ldm_safetensors *st, const char *a, const char *b) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", a, b);
    return ldm_safetensors_find(st, name);
}

/* a / b as a size, 0 when b is not positive or the result is not a plausible one (a file's
 * shapes are anyone's: the config check then names what is wrong). */
static int ratio(int64_t a, int b) {
    if (b < 1 || a < 0 || a / b > (1 << 20)) return 0;
    return (int)(a / b);
}

/* A tensor dimension as a size (0 when not plausible). */
static int dim(const ldm_st_tensor *t, int d) {
    return t && d < t->ndim ? ratio(t->shape[d], 1) : 0;
}

/* Counts i = 0, 1, ... while before + i + after names a tensor of st. */
static int count_while(const ldm_safetensors *st, const char *before, const char *after) {
    char name[256];
    for (int i = 0;; i++) {
        snprintf(name, sizeof name, "%s%d%s", before, i, after);
        if (!ldm_safetensors_find(st, name)) return i;
    }
}

/* Refuses, naming it, a file ldmcl does not read by its extension: pickles and GGUF. */
ldm_status ldm_sd_refuse_by_extension(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot) return LDM_OK;
    static const char *pickles[] = {".ckpt", ".pt", ".pth", ".bin", ".pkl"};
    for (size_t i = 0; i < sizeof pickles / sizeof pickles[0]; i++)
        if (!strcmp(dot, pickles[i]))
            return LDM_FAIL(
                LDM_ERR_FORMAT,
                "'%s' is a PyTorch pickle: ldmcl does not read pickles (loading one can run any "
                "code it holds). Convert it once to safetensors, with PyTorch and safetensors "
                "installed:\n  python3 -c \"import torch, safetensors.torch as s; "
                "d = torch.load('%s', map_location='cpu', weights_only=True); "
                "d = d.get('state_dict', d); s.save_file({k: v.contiguous() for k, v in "
                "d.items() if isinstance(v, torch.Tensor)}, '%.*s.safetensors')\"",
                path, path, (int)(dot - path), path);
    if (!strcmp(dot, ".gguf"))
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s' is GGUF (stable-diffusion.cpp's quantized format): ldmcl reads "
                        "safetensors checkpoints (F32, F16 or BF16)",
                        path);
    return LDM_OK;
}

/* Refuses other model families and partial files, naming what the file looks like. */
static ldm_status refuse_others(const ldm_safetensors *st, const char *path) {
    const char *what = NULL;
    if (has_prefix(st, UNET "joint_blocks.") || has_prefix(st, "joint_blocks."))
        what = "a Stable Diffusion 3 (MMDiT) checkpoint";
    else if (has_prefix(st, "double_blocks.") || has_prefix(st, UNET "double_blocks."))
        what = "a Flux checkpoint";
    else if (has_prefix(st, "conditioner.embedders.") || find2(st, UNET, "label_emb.0.0.weight"))
        what = "an SDXL checkpoint";
    else if (has_part(st, "lora_") || has_part(st, ".lora."))
        what = "a LoRA (apply it to a base model; it is not one)";
    if (what)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s' is %s: ldmcl loads Stable Diffusion 1.x and 2.x (text-to-image and "
                        "inpainting UNets)",
                        path, what);
    if (!find2(st, UNET, "input_blocks.0.0.weight")) {
        if (has_prefix(st, "encoder.") && has_prefix(st, "decoder."))
            what = "a VAE alone";
        else if (has_prefix(st, "emb_params") || ldm_safetensors_count(st) <= 4)
            what = "a textual-inversion embedding or another small file";
        else
            what = "not a checkpoint of the original repository's layout";
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s' has no Stable Diffusion UNet (model.diffusion_model.input_blocks.0.0."
                        "weight): %s. ldmcl loads a whole SD 1.x/2.x .safetensors or a diffusers "
                        "folder",
                        path, what);
    }
    return LDM_OK;
}

/* The metadata overrides ("ldmcl.sd_config") of heads and groups. */
static ldm_status read_overrides(const ldm_safetensors *st, const char *path, ldm_sd_model *m) {
    const char *text = ldm_safetensors_metadata(st, "ldmcl.sd_config");
    if (!text) return LDM_OK;
    char err[128];
    ldm_json *root = ldm_json_parse(text, strlen(text), err, sizeof err);
    if (!root) return LDM_FAIL(LDM_ERR_FORMAT, "'%s': metadata ldmcl.sd_config: %s", path, err);
    struct {
        const char *part, *key;
        int *out;
    } keys[] = {{"unet", "num_heads", &m->unet.num_heads},
                {"unet", "head_channels", &m->unet.head_channels},
                {"unet", "norm_groups", &m->unet.norm_groups},
                {"vae", "norm_groups", &m->vae.norm_groups},
                {"text", "num_heads", &m->text.num_heads}};
    ldm_status status = LDM_OK;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && status == LDM_OK; i++) {
        const ldm_json *o = ldm_json_get(root, keys[i].part);
        const ldm_json *v = o ? ldm_json_get(o, keys[i].key) : NULL;
        if (!v) continue;
        if (v->type != LDM_JSON_NUMBER || !v->is_integer || v->integer < 0 || v->integer > 4096)
            status = LDM_FAIL(LDM_ERR_FORMAT, "'%s': metadata ldmcl.sd_config: %s.%s", path,
                              keys[i].part, keys[i].key);
        else
            *keys[i].out = (int)v->integer;
        if (!strcmp(keys[i].key, "num_heads") && !strcmp(keys[i].part, "unet") && v->integer)
            m->unet.head_channels = 0;
        if (!strcmp(keys[i].key, "head_channels") && v->integer) m->unet.num_heads = 0;
    }
    ldm_json_free(root);
    return status;
}

/* UNet sizes from the shapes: model channels, levels, blocks, attention, context. */
static ldm_status unet_from_tensors(const ldm_safetensors *st, const char *path, ldm_sd_model *m) {
    const ldm_st_tensor *w = find2(st, UNET, "input_blocks.0.0.weight");
    ldm_sd_unet_config *u = &m->unet;
    if (w->ndim != 4) return LDM_FAIL(LDM_ERR_FORMAT, "'%s': conv_in is not 4-d", path);
    u->model_channels = dim(w, 0);
    u->in_channels = dim(w, 1);
    const ldm_st_tensor *o = find2(st, UNET, "out.2.weight");
    if (!o || o->ndim != 4)
        return LDM_FAIL(LDM_ERR_FORMAT, "'%s': the UNet has no out.2.weight (its last conv)", path);
    u->out_channels = dim(o, 0);
    /* blocks per level: the first downsample is input_blocks.(blocks + 1) */
    int blocks = 0;
    char name[256];
    for (int k = 1; k < 64; k++) {
        snprintf(name, sizeof name, UNET "input_blocks.%d.0.op.weight", k);
        if (ldm_safetensors_find(st, name)) {
            blocks = k - 1;
            break;
        }
    }
    if (blocks < 1 || blocks > LDM_SD_MAX_RES_BLOCKS)
        return LDM_FAIL(LDM_ERR_FORMAT, "'%s': cannot tell the UNet's blocks per level", path);
    u->num_res_blocks = blocks;
    u->n_levels = 0;
    for (int l = 0; l < LDM_SD_MAX_LEVELS; l++) {
        int k = 1 + l * (blocks + 1);
        snprintf(name, sizeof name, UNET "input_blocks.%d.0.in_layers.2.weight", k);
        const ldm_st_tensor *c = ldm_safetensors_find(st, name);
        if (!c) break;
        u->channel_mult[l] = ratio(c->shape[0], u->model_channels);
        snprintf(name, sizeof name, UNET "input_blocks.%d.1.norm.weight", k);
        u->attn_levels[l] = ldm_safetensors_find(st, name) != NULL;
        u->n_levels = l + 1;
    }
    const ldm_st_tensor *k2 =
        find2(st, UNET, "middle_block.1.transformer_blocks.0.attn2.to_k.weight");
    if (!k2 || k2->ndim != 2)
        return LDM_FAIL(LDM_ERR_FORMAT, "'%s': the UNet has no middle_block cross-attention", path);
    u->context_dim = dim(k2, 1);
    const ldm_st_tensor *pi = find2(st, UNET, "middle_block.1.proj_in.weight");
    u->linear_proj = pi && pi->ndim == 2;
    u->transformer_depth =
        count_while(st, UNET "middle_block.1.transformer_blocks.", ".norm1.weight");
    return LDM_OK;
}

/* The 1.x / 2.x text encoder's sizes from its tensors. */
static ldm_status text_from_tensors(const ldm_safetensors *st, const char *path, ldm_sd_model *m) {
    ldm_clip_text_config *c = &m->text;
    const char *p = m->family == LDM_SD_1 ? CLIP_L "text_model." : CLIP_H;
    const ldm_st_tensor *tok = find2(st, p,
                                     m->family == LDM_SD_1 ? "embeddings.token_embedding.weight"
                                                           : "token_embedding.weight");
    const ldm_st_tensor *pos = find2(st, p,
                                     m->family == LDM_SD_1 ? "embeddings.position_embedding.weight"
                                                           : "positional_embedding");
    const ldm_st_tensor *fc1 =
        find2(st, p,
              m->family == LDM_SD_1 ? "encoder.layers.0.mlp.fc1.weight"
                                    : "transformer.resblocks.0.mlp.c_fc.weight");
    if (!tok || !pos || !fc1 || tok->ndim != 2 || pos->ndim != 2 || fc1->ndim != 2)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s' has no text encoder (%s%s): a checkpoint without its CLIP is not "
                        "one ldmcl can sample from",
                        path, p,
                        m->family == LDM_SD_1 ? "embeddings.token_embedding.weight"
                                              : "token_embedding.weight");
    ldm_clip_text_config_default(c);
    c->vocab_size = dim(tok, 0);
    c->hidden_size = dim(tok, 1);
    c->max_positions = dim(pos, 0);
    c->intermediate_size = dim(fc1, 0);
    c->num_heads = c->hidden_size / 64 > 0 ? c->hidden_size / 64 : 1;
    c->num_layers = m->family == LDM_SD_1
                        ? count_while(st, CLIP_L "text_model.encoder.layers.", ".mlp.fc1.weight")
                        : count_while(st, CLIP_H "transformer.resblocks.", ".mlp.c_fc.weight");
    c->act = m->family == LDM_SD_1 ? LDM_CLIP_QUICK_GELU : LDM_CLIP_GELU;
    m->text_skip = m->family == LDM_SD_2; /* 2.x conditions on the penultimate layer */
    return LDM_OK;
}

/* The VAE's sizes from its tensors. */
static ldm_status vae_from_tensors(const ldm_safetensors *st, const char *path, ldm_sd_model *m) {
    ldm_sd_vae_config *v = &m->vae;
    const ldm_st_tensor *ci = find2(st, VAE, "encoder.conv_in.weight");
    const ldm_st_tensor *co = find2(st, VAE, "encoder.conv_out.weight");
    const ldm_st_tensor *q = find2(st, VAE, "quant_conv.weight");
    const ldm_st_tensor *dco = find2(st, VAE, "decoder.conv_out.weight");
    if (!ci || !co || !q || !dco || ci->ndim != 4 || co->ndim != 4 || q->ndim != 4 ||
        dco->ndim != 4)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s' has no complete VAE (first_stage_model.encoder/decoder, quant_conv)",
                        path);
    v->ch = dim(ci, 0);
    v->in_channels = dim(ci, 1);
    v->out_channels = dim(dco, 0);
    v->z_channels = dim(co, 0) / 2;
    v->embed_dim = dim(q, 0) / 2;
    v->n_levels = count_while(st, VAE "encoder.down.", ".block.0.conv1.weight");
    v->num_res_blocks = count_while(st, VAE "encoder.down.0.block.", ".conv1.weight");
    char name[256];
    for (int l = 0; l < v->n_levels && l < LDM_SD_VAE_MAX_LEVELS; l++) {
        snprintf(name, sizeof name, VAE "encoder.down.%d.block.0.conv1.weight", l);
        v->ch_mult[l] = ratio(dim(ldm_safetensors_find(st, name), 0), v->ch);
    }
    return LDM_OK;
}

/* 2.x's prediction, when the file does not say it: a "v_pred" tensor, or ComfyUI's test. */
static void detect_prediction(const ldm_safetensors *st, ldm_sd_model *m) {
    m->prediction = LDM_PREDICT_EPSILON;
    snprintf(m->prediction_how, sizeof m->prediction_how, "epsilon, as every 1.x model");
    if (m->family != LDM_SD_2) return;
    if (ldm_safetensors_find(st, "v_pred")) {
        m->prediction = LDM_PREDICT_V;
        snprintf(m->prediction_how, sizeof m->prediction_how, "v, the file has a v_pred key");
        return;
    }
    char name[128]; /* the last output block (11 in SD's UNet) */
    snprintf(name, sizeof name, "output_blocks.%d.1.transformer_blocks.0.norm1.bias",
             m->unet.n_levels * (m->unet.num_res_blocks + 1) - 1);
    const ldm_st_tensor *b = find2(st, UNET, name);
    float *x = b ? malloc(b->numel * sizeof *x) : NULL;
    if (x && ldm_safetensors_read_f32(st, b, x) == LDM_OK) {
        double mean = 0, var = 0;
        for (uint64_t i = 0; i < b->numel; i++)
            mean += x[i];
        mean /= (double)b->numel;
        for (uint64_t i = 0; i < b->numel; i++)
            var += (x[i] - mean) * (x[i] - mean);
        double sd = sqrt(var / (double)b->numel);
        m->prediction = sd > 0.09 ? LDM_PREDICT_V : LDM_PREDICT_EPSILON;
        snprintf(m->prediction_how, sizeof m->prediction_how,
                 "%s, guessed as ComfyUI does (the last output block's norm1.bias spreads %.3f, "
                 "%s 0.09); --prediction overrides",
                 sd > 0.09 ? "v" : "epsilon", sd, sd > 0.09 ? "above" : "not above");
    } else {
        snprintf(m->prediction_how, sizeof m->prediction_how,
                 "epsilon, assumed (nothing in the file tells); --prediction overrides");
    }
    free(x);
}

static ldm_status inspect_single_file(const char *path, ldm_sd_model *m) {
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    ldm_status status = refuse_others(st, path);
    if (status == LDM_OK) {
        int l = has_prefix(st, CLIP_L), h = has_prefix(st, CLIP_H);
        m->family = h ? LDM_SD_2 : LDM_SD_1;
        if (!l && !h)
            status = LDM_FAIL(LDM_ERR_FORMAT,
                              "'%s' has no text encoder (neither cond_stage_model.transformer.* "
                              "of SD 1.x nor cond_stage_model.model.* of SD 2.x): ldmcl needs "
                              "the whole checkpoint",
                              path);
    }
    if (status == LDM_OK) {
        m->layout = LDM_SD_SINGLE_FILE;
        snprintf(m->unet_file, sizeof m->unet_file, "%s", path);
        snprintf(m->vae_file, sizeof m->vae_file, "%s", path);
        snprintf(m->text_file, sizeof m->text_file, "%s", path);
        if (m->family == LDM_SD_1)
            ldm_sd_unet_config_sd1(&m->unet);
        else
            ldm_sd_unet_config_sd2(&m->unet);
        ldm_sd_vae_config_sd(&m->vae);
        status = unet_from_tensors(st, path, m);
    }
    if (status == LDM_OK) status = vae_from_tensors(st, path, m);
    if (status == LDM_OK) status = text_from_tensors(st, path, m);
    if (status == LDM_OK) status = read_overrides(st, path, m);
    if (status == LDM_OK) {
        const ldm_st_tensor *w = find2(st, UNET, "input_blocks.0.0.weight");
        snprintf(m->weights, sizeof m->weights, "%s", ldm_dtype_name(w->dtype));
        detect_prediction(st, m);
    }
    ldm_safetensors_close(st);
    return status;
}

ldm_status ldm_sd_model_inspect(const char *path, ldm_sd_model *m) {
    memset(m, 0, sizeof *m);
    if (strlen(path) >= sizeof m->path)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "model path too long: %.64s...", path);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->num_timesteps = 1000;
    m->beta_start = 0.00085;
    m->beta_end = 0.012;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return LDM_FAIL(LDM_ERR_NOT_FOUND, "cannot open the model '%s'", path);
    ldm_status status;
    if (S_ISDIR(sb.st_mode)) {
        status = ldm_sd_inspect_diffusers(path, m);
    } else {
        LDM_TRY(ldm_sd_refuse_by_extension(path));
        status = inspect_single_file(path, m);
    }
    if (status != LDM_OK) return status;
    m->inpainting = m->unet.in_channels == 9;
    m->pad_token = m->family == LDM_SD_1 ? 49407 : 0;
    if (m->unet.in_channels != 4 && m->unet.in_channels != 9)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "'%s': its UNet takes %d channels; ldmcl runs text-to-image UNets (4) and "
                        "inpainting UNets (9), not instruct-pix2pix (8) or depth (5) models",
                        path, m->unet.in_channels);
    status = ldm_sd_unet_config_check(&m->unet);
    if (status == LDM_OK) status = ldm_sd_vae_config_check(&m->vae);
    if (status == LDM_OK) status = ldm_clip_text_config_check(&m->text);
    if (status == LDM_OK && m->unet.context_dim != m->text.hidden_size)
        status =
            LDM_FAIL(LDM_ERR_FORMAT, "its UNet attends to %d-wide text, its text encoder gives %d",
                     m->unet.context_dim, m->text.hidden_size);
    if (status == LDM_OK && m->vae.embed_dim != m->unet.out_channels)
        status = LDM_FAIL(LDM_ERR_FORMAT, "its VAE's latents have %d channels, its UNet's %d",
                          m->vae.embed_dim, m->unet.out_channels);
    if (status != LDM_OK) ldm_error_prefix("'%s'", path);
    return status;
}

void ldm_sd_model_describe(const ldm_sd_model *m, char *out, size_t size) {
    snprintf(out, size, "SD %s %s%s, %s, %s weights", m->family == LDM_SD_1 ? "1.x" : "2.x",
             m->prediction == LDM_PREDICT_V ? "v-prediction" : "epsilon",
             m->inpainting ? " (inpainting UNet)" : "",
             m->layout == LDM_SD_SINGLE_FILE ? "single file" : "diffusers folder", m->weights);
}
