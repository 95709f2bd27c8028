/* src/sample/sd_load.c: Stable Diffusion's weights into graphs that recorded its models (see
 * ldmcl/sd_model.h): by name with the single file's prefixes, through sd_names.c's maps for
 * diffusers' folders and OpenCLIP's packed projections. */
#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/lora_adapter.h"
#include "ldmcl/safetensors.h"
#include "sd_internal.h"
#include "sd_names.h"

static const char *const position_ids[] = {"text_model.embeddings.position_ids",
                                           "cond_stage_model.transformer.text_model.embeddings."
                                           "position_ids",
                                           NULL};

/* LoRA adapters recorded beside the weights (fine-tuning) are not in the checkpoint. */
static int adapter(const char *name, void *user) {
    (void)user;
    return ldm_lora_is_adapter(name);
}

/* Loads g from file through a table that renames (and reshapes) a diffusers file's tensors. */
static ldm_status load_renamed(ldm_graph *g, const char *file, const ldm_sd_model *m, int vae) {
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(file, &st));
    ldm_sd_name_table *t;
    ldm_status status = ldm_sd_name_table_create(&t);
    int up_attn[LDM_SD_MAX_LEVELS] = {0};
    for (int i = 0; i < m->unet.n_levels; i++)
        up_attn[i] = m->unet.attn_levels[m->unet.n_levels - 1 - i];
    for (size_t i = 0; i < ldm_safetensors_count(st) && status == LDM_OK; i++) {
        const char *key = ldm_safetensors_at(st, i)->name;
        char name[256];
        ldm_load_source src = {{0}, 0, 0, 0};
        int known = vae ? ldm_sd_vae_name_from_diffusers(key, m->vae.n_levels, name, sizeof name,
                                                         &src.any_shape)
                        : ldm_sd_unet_name_from_diffusers(key, m->unet.num_res_blocks, up_attn,
                                                          m->unet.n_levels, name, sizeof name);
        if (!known) continue; /* the loader reports it as unexpected */
        snprintf(src.name, sizeof src.name, "%s", key);
        status = ldm_sd_name_table_add(t, name, &src);
    }
    if (status == LDM_OK) status = ldm_sd_name_table_finish(t, file);
    ldm_load_options o = {0};
    o.skip = adapter;
    o.map = ldm_sd_name_table_map;
    o.map_user = t;
    o.allow_unexpected = vae; /* a graph may hold the encoder or the decoder alone */
    if (status == LDM_OK) status = ldm_graph_load_from(g, st, &o);
    ldm_sd_name_table_destroy(t);
    ldm_safetensors_close(st);
    return status;
}

ldm_status ldm_sd_load_unet(const ldm_sd_model *m, ldm_graph *g) {
    if (m->layout == LDM_SD_DIFFUSERS) return load_renamed(g, m->unet_file, m, 0);
    ldm_load_options o = {0};
    o.skip = adapter;
    o.only_prefix = o.file_prefix = "model.diffusion_model.";
    return ldm_graph_load(g, m->unet_file, &o);
}

/* The single file's VAE tensor of a parameter; the mid attention's projections may be stored as
 * 1x1 convolutions [C, C, 1, 1] (the original) or as Linear [C, C] (files converted from
 * diffusers). */
static int single_file_vae(const char *name, ldm_load_source *src, void *user) {
    (void)user;
    memset(src, 0, sizeof *src);
    snprintf(src->name, sizeof src->name, "first_stage_model.%s", name);
    size_t n = strlen(name);
    src->any_shape = strstr(name, ".attn_1.") && !strstr(name, ".norm.") && n > 7 &&
                     !strcmp(name + n - 7, ".weight");
    return 1;
}

ldm_status ldm_sd_load_vae(const ldm_sd_model *m, ldm_graph *g) {
    if (m->layout == LDM_SD_DIFFUSERS) return load_renamed(g, m->vae_file, m, 1);
    ldm_load_options o = {0};
    o.skip = adapter;
    o.only_prefix = "first_stage_model.";
    o.map = single_file_vae;
    o.allow_unexpected = 1; /* a graph may hold the encoder or the decoder alone */
    return ldm_graph_load(g, m->vae_file, &o);
}

typedef struct openclip_map {
    int hidden;
} openclip_map;

static int openclip(const char *name, ldm_load_source *src, void *user) {
    const openclip_map *oc = user;
    return ldm_sd_openclip_source(name, oc->hidden, "cond_stage_model.model.", src);
}

ldm_status ldm_sd_load_text(const ldm_sd_model *m, ldm_graph *g) {
    ldm_load_options o = {0};
    o.skip = adapter;
    o.ignore = position_ids;
    /* a graph that skips the last layers (clip skip) does not read them */
    char last[128];
    snprintf(last, sizeof last, "text_model.encoder.layers.%d.mlp.fc1.weight",
             m->text.num_layers - 1);
    o.allow_unexpected = ldm_graph_find(g, last) == NULL;
    if (m->layout == LDM_SD_DIFFUSERS) {
        o.only_prefix = "text_model.";
        return ldm_graph_load(g, m->text_file, &o);
    }
    if (m->family == LDM_SD_1) {
        o.only_prefix = o.file_prefix = "cond_stage_model.transformer.";
        return ldm_graph_load(g, m->text_file, &o);
    }
    /* OpenCLIP: the projection to the image space, logit_scale and the layers past the
     * penultimate one are not read */
    openclip_map oc = {m->text.hidden_size};
    o.map = openclip;
    o.map_user = &oc;
    o.allow_unexpected = 1;
    return ldm_graph_load(g, m->text_file, &o);
}
