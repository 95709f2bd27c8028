/* ldmcl/lora_adapter.h: LoRA adapters recorded with a model, for fine-tuning. With a LoRA
 * configuration on a graph (ldm_graph_set_lora), every weight of the targeted kinds that a model
 * records from then on (the nn layer's models: ldmcl's UNet, SD's UNet, the CLIP text encoder)
 * is used as W + alpha / rank * up . down, with two new parameters beside it named as kohya's
 * files name them: <module>.lora_down.weight [rank, in(, kh, kw)] (uniform in +-1/sqrt(in . kh .
 * kw), as kohya and peft) and <module>.lora_up.weight [out, rank(, 1, 1)] (zero: the model starts
 * as it was), <module> the weight's name less ".weight". Freezing the rest is the caller's. */
#ifndef LDMCL_LORA_ADAPTER_H
#define LDMCL_LORA_ADAPTER_H

#include <stddef.h>

#include "ldmcl/graph.h"
#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "attn", "attn+ff" or "all_linear" (every Linear and 1x1 convolution), each optionally with
 * "+conv" (the larger convolutions too) -> ldm_lora_target bits. As kohya's LoRA, only the
 * blocks' weights: not a UNet's first and last convolutions nor its time or class embedding. */
ldm_status ldm_lora_targets_parse(const char *text, unsigned *targets);
/* The kind (one ldm_lora_target bit) of the weight `name` of this shape; 0: none of them (biases,
 * norms, embeddings, adapters). */
unsigned ldm_lora_kind(const char *name, int ndim, const int *shape);
/* Whether name is a LoRA adapter's (.lora_down.weight or .lora_up.weight). */
int ldm_lora_is_adapter(const char *name);

/* w [out, in] += scale * up [out, rank] . down [rank, in] (each sum in double). */
void ldm_lora_add_product(float *w, const float *up, const float *down, size_t out, size_t rank,
                          size_t in, double scale);

/* The weights of graph g (recorded with ldm_graph_set_lora) with its adapters merged in:
 * W += alpha / rank * up . down for every adapted weight, each weight's values kept in *out
 * (NULL when g has no adapters) for ldm_lora_unmerge, which puts them back bit for bit and frees
 * it. For writing a model; training goes on after the unmerge. */
typedef struct ldm_lora_merged ldm_lora_merged;
ldm_status ldm_lora_merge_adapters(ldm_graph *g, ldm_lora_merged **out);
ldm_status ldm_lora_unmerge(ldm_lora_merged *m);

#ifdef __cplusplus
}
#endif
#endif
