/* ldmcl/clip.h: the CLIP text encoder as Hugging Face's CLIPTextModel computes it (the reference
 * conditions its UNet on openai/clip-vit-base-patch16's last hidden state [N, 77, 512]):
 *   h = token_embedding[ids] + position_embedding[0 .. S-1]
 *   for each layer: h += self_attn(layer_norm1(h)) (causal, padding keys masked; separate q, k, v
 *                   projections, scale 1/sqrt(head_dim)); h += fc2(act(fc1(layer_norm2(h))))
 *   last_hidden_state = final_layer_norm(h)
 * act is quick_gelu (x * sigmoid(1.702 x)) or gelu. Parameters are named as the HF state_dict
 * (text_model.embeddings.token_embedding.weight, text_model.encoder.layers.0.self_attn.q_proj.
 * weight, ...), so model.safetensors of a CLIPTextModel or a whole CLIPModel (the vision tower
 * ignored: load with only_prefix "text_model.") loads by name. */
#ifndef LDMCL_CLIP_H
#define LDMCL_CLIP_H

#include <stddef.h>

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ldm_clip_act { LDM_CLIP_QUICK_GELU = 0, LDM_CLIP_GELU = 1 } ldm_clip_act;

typedef struct ldm_clip_text_config {
    int vocab_size, hidden_size, intermediate_size, num_layers, num_heads, max_positions;
    float layer_norm_eps;
    ldm_clip_act act;
} ldm_clip_text_config;

/* openai/clip-vit-base-patch16's text tower (CLIPTextConfig's defaults): vocabulary 49,408,
 * width 512, MLP 2048, 12 layers, 8 heads, 77 positions, eps 1e-5, quick_gelu. */
void ldm_clip_text_config_default(ldm_clip_text_config *c);

/* Reads a Hugging Face config.json: a CLIPTextConfig, or a CLIPModel's (its "text_config").
 * Keys that are absent take CLIPTextConfig's defaults; a key of the wrong type or value, or an
 * unsupported hidden_act, is an error naming the file and the key. */
ldm_status ldm_clip_text_config_read(const char *path, ldm_clip_text_config *c);

/* LDM_OK, or an error naming the field that is wrong. */
ldm_status ldm_clip_text_config_check(const ldm_clip_text_config *c);

/* Records the encoder on token ids [N, S] (float-valued integers, S <= max_positions) with an
 * attention mask [N, S] (1: a token, 0: padding; NULL: no padding). skip = 0 returns the last
 * hidden state; skip = k > 0 the output of layer num_layers - k, through the final layer norm
 * ("clip skip", as diffusers and A1111 apply it). Returns [N, S, hidden_size]. Parameters are
 * created on first use (trainable; freeze them with ldm_tensor_set_trainable), with HF's
 * initialisation rules for training from scratch (ldm_graph_init_params). */
ldm_tensor *ldm_clip_text(ldm_graph *g, const ldm_clip_text_config *c, ldm_tensor *ids,
                          ldm_tensor *attention_mask, int skip);

/* A frozen text encoder for inference: one recorded graph for batches of `batch` prompts of
 * seq_len tokens (77 for CLIP), computing the context the UNet attends to. */
typedef struct ldm_clip_encoder ldm_clip_encoder;

ldm_status ldm_clip_encoder_create(ldm_ctx *ctx, const ldm_clip_text_config *c, int batch,
                                   int seq_len, int skip, ldm_clip_encoder **out);
/* The same with the weights of a parameter store (NULL: its own): a training step's that trains
 * the encoder (text_model.* entries), shared, not copied. */
ldm_status ldm_clip_encoder_create_in(ldm_ctx *ctx, ldm_params *params,
                                      const ldm_clip_text_config *c, int batch, int seq_len,
                                      int skip, ldm_clip_encoder **out);
/* The same over a store that holds LoRA adapters (a LoRA training step's), applied as that step
 * applies them (lora: the step's ldm_graph_lora; NULL: none). */
ldm_status ldm_clip_encoder_create_adapted(ldm_ctx *ctx, ldm_params *params,
                                           const ldm_lora_config *lora,
                                           const ldm_clip_text_config *c, int batch, int seq_len,
                                           int skip, ldm_clip_encoder **out);
/* The same on its own store with the weights kept in IEEE half precision on the device (half the
 * weight memory; ldm_graph_set_half_weights): inference of a half-precision checkpoint. */
ldm_status ldm_clip_encoder_create_half(ldm_ctx *ctx, const ldm_clip_text_config *c, int batch,
                                        int seq_len, int skip, ldm_clip_encoder **out);
void ldm_clip_encoder_destroy(ldm_clip_encoder *e);
/* The store holding its weights, for another encoder (another batch) to share them. */
ldm_params *ldm_clip_encoder_params(const ldm_clip_encoder *e);
/* How prompts are padded to seq_len from now on: with pad_id (-1: the tokenizer's pad token),
 * and the padding masked from attention (1, Hugging Face's attention_mask; the default) or
 * attended as tokens (0: Stable Diffusion's text encoders see all 77 positions). */
void ldm_clip_encoder_set_padding(ldm_clip_encoder *e, int pad_id, int mask_padding);
/* Its compiled graph (to load weights from files of other layouts: ldmcl/sd_model.h). */
ldm_graph *ldm_clip_encoder_graph(const ldm_clip_encoder *e);
/* Weights from a Hugging Face model.safetensors: a CLIPTextModel's, or a whole CLIPModel's (only
 * the text_model.* tensors are read; the vision tower, projections and the position_ids buffer
 * are ignored). Every text_model parameter must be there with its shape. */
ldm_status ldm_clip_encoder_load(ldm_clip_encoder *e, const char *path);
/* ids and mask [batch, seq_len] -> out [batch, seq_len, hidden] (host arrays; waits). */
ldm_status ldm_clip_encoder_run(ldm_clip_encoder *e, const int32_t *ids, const int32_t *mask,
                                float *out);
/* The tokenizer's graph-ready ids: prompts[0 .. count) (count <= batch; the remaining rows get
 * the empty prompt) into out [batch, seq_len, hidden]. With count 1 and "" it is the empty
 * prompt's embedding that classifier-free guidance uses. A tokenizer with more tokens than the
 * encoder's vocab_size is refused (ldm_clip_tokenizer_check_vocab). */
struct ldm_clip_tokenizer;
ldm_status ldm_clip_encode_prompts(ldm_clip_encoder *e, struct ldm_clip_tokenizer *t,
                                   const char *const *prompts, int count, float *out);

/* Number of parameters (63,165,952 for the default). */
ldm_status ldm_clip_text_param_count(ldm_ctx *ctx, const ldm_clip_text_config *c, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
