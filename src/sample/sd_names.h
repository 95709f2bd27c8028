/* src/sample/sd_names.h: where Stable Diffusion's parameters are in the files users have. ldmcl
 * records the original repository's names (model.diffusion_model.* and first_stage_model.* of a
 * single-file checkpoint, less those prefixes) and Hugging Face's CLIPTextModel names for the
 * text encoders. diffusers' folder layout names the UNet and the VAE otherwise; OpenCLIP (the 2.x
 * text tower of single files) packs q, k and v in one in-projection. Private to the sample
 * layer. */
#ifndef LDMCL_SAMPLE_SD_NAMES_H
#define LDMCL_SAMPLE_SD_NAMES_H

#include <stddef.h>

#include "ldmcl/checkpoint.h"

/* The original name of diffusers' UNet2DConditionModel key into out; 0 when it is not one.
 * up_has_attention[i]: whether up_blocks.i has attentions (its upsampler then comes after them). */
int ldm_sd_unet_name_from_diffusers(const char *key, int layers_per_block,
                                    const int *up_has_attention, int n_levels, char *out,
                                    size_t size);

/* The reverse: diffusers' key of the original's UNet parameter name; 0 when it is not one. */
int ldm_sd_unet_name_to_diffusers(const char *name, int layers_per_block,
                                  const int *up_has_attention, int n_levels, char *out,
                                  size_t size);

/* The original name of diffusers' AutoencoderKL key; *any_shape is set for the mid attention's
 * projections (Linear [C, C] there, 1x1 convolutions [C, C, 1, 1] here). 0 when not one. */
int ldm_sd_vae_name_from_diffusers(const char *key, int n_levels, char *out, size_t size,
                                   int *any_shape);

/* Where Hugging Face CLIP parameter hf_name is in an OpenCLIP text tower whose names start with
 * prefix ("cond_stage_model.model."): q, k and v are row blocks of attn.in_proj_*. 0: nowhere. */
int ldm_sd_openclip_source(const char *hf_name, int hidden, const char *prefix,
                           ldm_load_source *src);

/* A table graph name -> source, for ldm_load_options.map (ldm_sd_name_table_map with the table as
 * map_user). finish sorts it and refuses two sources of one name (what: the file, for the
 * message). */
typedef struct ldm_sd_name_table ldm_sd_name_table;
ldm_status ldm_sd_name_table_create(ldm_sd_name_table **out);
ldm_status ldm_sd_name_table_add(ldm_sd_name_table *t, const char *graph_name,
                                 const ldm_load_source *src);
ldm_status ldm_sd_name_table_finish(ldm_sd_name_table *t, const char *what);
int ldm_sd_name_table_map(const char *name, ldm_load_source *src, void *user);
void ldm_sd_name_table_destroy(ldm_sd_name_table *t);

#endif
