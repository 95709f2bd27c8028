/* ldmcl/lora.h: LoRA adapters for Stable Diffusion in the kohya format that A1111, ComfyUI,
 * stable-diffusion.cpp and diffusers' load_lora_weights read: for each adapted layer,
 * lora_unet_<module>.lora_down.weight [rank, in(, kh, kw)], .lora_up.weight [out, rank(, 1, 1)]
 * and an optional .alpha (a scalar; rank when absent), where <module> is diffusers' module path
 * with '_' for '.' (lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q;
 * lora_te_text_model_encoder_layers_0_self_attn_q_proj for the text encoder). Applied by merging:
 * W += weight * alpha / rank * up . down, so sampling costs nothing more. */
#ifndef LDMCL_LORA_H
#define LDMCL_LORA_H

#include <stddef.h>

#include "ldmcl/graph.h"
#include "ldmcl/sd_model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_LORA_MAX_REFS 16

/* One <lora:NAME:WEIGHT> tag of a prompt. */
typedef struct ldm_lora_ref {
    char name[256];
    float weight;
} ldm_lora_ref;

/* Takes A1111's <lora:NAME:WEIGHT> tags (":WEIGHT" optional: 1) out of prompt: out (size bytes)
 * gets the prompt without them, refs the tags in order (at most max; *n their number). A tag with
 * an empty name, a weight that is not a finite number, or more than max tags: an error quoting
 * the tag. */
ldm_status ldm_lora_parse_prompt(const char *prompt, char *out, size_t size, ldm_lora_ref *refs,
                                 int max, int *n);

/* Where the LoRA named `name` is in dir: dir/name.safetensors (name may also end in
 * .safetensors). A pickle (.ckpt, .pt) there is refused with the line that converts it; none:
 * an error naming the paths tried. */
ldm_status ldm_lora_find(const char *dir, const char *name, char *path, size_t size);

/* Merges the LoRA file into the weights of m's UNet (in graph unet, which recorded ldm_sd_unet
 * and holds m's weights) and text encoder (graph text; either may be NULL: its adapters are then
 * skipped): W += weight * alpha / rank * up . down. Every adapter must name a weight of the model
 * whose element count is out x in(. kh . kw); an SDXL LoRA (lora_te1_, lora_te2_), another kind
 * of adapter (LoHa, LoKr, DoRA), a diffusers- or peft-format file, a missing half of a pair, or a
 * shape that differs (a LoRA of another base model) is an error naming the file and tensor,
 * before any weight changes. *merged: the layers changed. m NULL: unet holds ldmcl's own UNet,
 * whose adapters are named after its parameters (as ldm_sd_lora_save writes them with m NULL:
 * the LoRA files ldmcl-train writes). */
ldm_status ldm_sd_lora_merge(const ldm_sd_model *m, const char *file, float weight, ldm_graph *unet,
                             ldm_graph *text, int *merged);

/* Writes the LoRA adapters trained in graphs unet and text (either may be NULL; recorded with
 * ldm_graph_set_lora, ldmcl/lora_adapter.h) as a kohya file that A1111, ComfyUI,
 * stable-diffusion.cpp and diffusers' load_lora_weights read: diffusers' module names, each
 * layer's alpha, kohya's ss_network_* metadata; F32, atomically. *saved: the layers written.
 * m NULL: unet holds ldmcl's own UNet (and maybe a text encoder, text_model.*, recorded beside
 * it), whose adapters are named after its parameters: lora_unet_<name with '_' for '.'>. */
ldm_status ldm_sd_lora_save(const ldm_sd_model *m, ldm_graph *unet, ldm_graph *text,
                            const char *path, int *saved);

#ifdef __cplusplus
}
#endif
#endif
