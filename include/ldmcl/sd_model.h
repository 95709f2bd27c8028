/* ldmcl/sd_model.h: pretrained Stable Diffusion 1.x and 2.x checkpoints as users have them.
 *
 * Layouts: the original repository's single file (.safetensors: model.diffusion_model.* the UNet,
 * first_stage_model.* the VAE, cond_stage_model.transformer.text_model.* CLIP ViT-L/14 for 1.x,
 * cond_stage_model.model.* OpenCLIP ViT-H/14 for 2.x), and diffusers' folder (unet/, vae/,
 * text_encoder/, tokenizer/, scheduler/ with their config.json; weights in
 * diffusion_pytorch_model[.fp16].safetensors and model[.fp16].safetensors). Tensors may be F32,
 * F16 or BF16. A pickle (.ckpt, .pt, .bin) is refused with the command that converts it; SDXL,
 * SD3, Flux, LoRA and VAE-only files are refused, named.
 *
 * Inspecting reads only headers and configs: the family (1.x, 2.x; an inpainting UNet has 9
 * input channels) and every size come from the tensors' shapes (single file) or the config.json
 * files (diffusers). Heads and GroupNorm groups are not in the shapes: a single file takes the
 * published ones (1.x: 8 heads; 2.x: 64-channel heads; 32 groups) unless its metadata key
 * "ldmcl.sd_config" (JSON {"unet": {"num_heads" | "head_channels", "norm_groups"}, "vae":
 * {"norm_groups"}, "text": {"num_heads"}}) says otherwise. The prediction: 1.x epsilon; 2.x from
 * scheduler_config.json (diffusers), a "v_pred" tensor, or else ComfyUI's test (a standard
 * deviation of the last output block's transformer_blocks.0.norm1.bias, output_blocks.11 in SD's
 * UNet, above 0.09 is a 768-v model): `how` says which; a caller may override it. */
#ifndef LDMCL_SD_MODEL_H
#define LDMCL_SD_MODEL_H

#include "ldmcl/clip.h"
#include "ldmcl/graph.h"
#include "ldmcl/model.h"
#include "ldmcl/sd_unet.h"
#include "ldmcl/sd_vae.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ldm_sd_family { LDM_SD_1 = 1, LDM_SD_2 = 2 } ldm_sd_family;
typedef enum ldm_sd_layout { LDM_SD_SINGLE_FILE = 0, LDM_SD_DIFFUSERS = 1 } ldm_sd_layout;

typedef struct ldm_sd_model {
    char path[4096];
    ldm_sd_layout layout;
    ldm_sd_family family;
    int inpainting; /* the UNet takes 9 channels: latents, mask, the masked image's latents */
    ldm_prediction prediction;
    char prediction_how[160]; /* what decided it */
    ldm_sd_unet_config unet;
    ldm_sd_vae_config vae;
    ldm_clip_text_config text;
    int text_skip;    /* layers the family skips (2.x single file: 1, the penultimate layer) */
    int pad_token;    /* what pads prompts to 77 tokens: 1.x <|endoftext|>, 2.x 0 ("!") */
    char weights[32]; /* the UNet's dtype in the file: "F16", "F32", "BF16" */
    /* files: the single file three times, or the folder's */
    char unet_file[4096], vae_file[4096], text_file[4096];
    char tokenizer_dir[4096]; /* diffusers' tokenizer/ ("" for a single file: none inside) */
    /* the noise schedule (scaled_linear 0.00085 .. 0.012 over 1000 steps for both families) */
    int num_timesteps;
    double beta_start, beta_end;
} ldm_sd_model;

/* Reads what path is (a file or a diffusers folder) without loading weights; a clear error for
 * anything that is not an SD 1.x/2.x model, naming the file and what it is. */
ldm_status ldm_sd_model_inspect(const char *path, ldm_sd_model *m);

/* One line for users: "SD 2.x v-prediction (inpainting), single file, F16 weights". */
void ldm_sd_model_describe(const ldm_sd_model *m, char *out, size_t size);

/* Loads the UNet's / the VAE's / the text encoder's weights into a compiled graph (or one
 * created in the store that holds them) that recorded that model with m's config. The VAE's
 * graph may hold the encoder, the decoder or both. Errors name the file and tensors; nothing is
 * written to the device unless everything fits. */
ldm_status ldm_sd_load_unet(const ldm_sd_model *m, ldm_graph *g);
ldm_status ldm_sd_load_vae(const ldm_sd_model *m, ldm_graph *g);
ldm_status ldm_sd_load_text(const ldm_sd_model *m, ldm_graph *g);

/* The VAE for inference: images [batch, 3, height, width] (about [-1, 1]) to latents as the
 * UNet sees them (the posterior's mean times scaling_factor) and back. With tile > 0 (latent
 * cells; stable-diffusion.cpp's --vae-tiling uses 32) a latent larger than a tile is decoded a
 * tile at a time, tiles overlapping by a quarter of their side and blended with weights that fall
 * linearly to 0 across the overlap (every pixel's weights sum to 1), so the decoder's memory is a
 * tile's, not the image's. GroupNorm sees a tile's statistics, so tiled images differ slightly
 * from whole ones; a latent within one tile decodes exactly as without tiling. half_weights:
 * the weights stay in half precision on the device (ldm_graph_set_half_weights). */
typedef struct ldm_sd_codec ldm_sd_codec;
ldm_status ldm_sd_codec_create(ldm_ctx *ctx, const ldm_sd_model *m, int batch, int height,
                               int width, int tile, int half_weights, ldm_sd_codec **out);
void ldm_sd_codec_destroy(ldm_sd_codec *k);
ldm_status ldm_sd_codec_encode(ldm_sd_codec *k, const float *images, float *latents);
ldm_status ldm_sd_codec_decode(ldm_sd_codec *k, const float *latents, float *images);

#ifdef __cplusplus
}
#endif
#endif
