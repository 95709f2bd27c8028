/* ldmcl/diffusion_trainer.h: the LDM's training, as ldm_ae_trainer is the autoencoder's: the
 * step recorded once (ldm_diffusion_train_record) with its text encoder in the model's mode (none;
 * a frozen CLIP run outside the step; one trained in it, from scratch or fine-tuned from its
 * file), Adam with its clipping and the EMA over the step's parameter store; from scratch or
 * from a pretrained model folder, all weights trained or LoRA adapters only (the run's [model]
 * pretrained and [lora], ldmcl/run_config.h). The caller feeds
 * micro-batches of latents (as the UNet sees them) and captions, and applies the optimizer once
 * per accumulated batch. */
#ifndef LDMCL_DIFFUSION_TRAINER_H
#define LDMCL_DIFFUSION_TRAINER_H

#include "ldmcl/clip.h"
#include "ldmcl/diffusion.h"
#include "ldmcl/grad_sync.h"
#include "ldmcl/graph.h"
#include "ldmcl/job.h"
#include "ldmcl/run_config.h"
#include "ldmcl/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_diffusion_trainer ldm_diffusion_trainer;

/* model: the model trained; train: stage two's settings (batch, learning rate, clipping, EMA,
 * loss weighting, caption dropout); latent_size: the latents' height and width as the UNet sees
 * them; seed: the parameters' initialisation and every random draw. */
ldm_status ldm_diffusion_trainer_create(ldm_ctx *ctx, const ldm_model_config *model,
                                        const ldm_run_diffusion *train, int latent_size,
                                        uint64_t seed, ldm_diffusion_trainer **out);
/* The same as one rank of a data-parallel job (job NULL or of one: alone): the batch is this
 * rank's part of a batch job-size times larger (its random draws those of that part), and the
 * last micro-batch before each optimizer step averages the gradients over the job
 * (ldmcl/grad_sync.h), so every rank steps alike. */
ldm_status ldm_diffusion_trainer_create_in_job(ldm_ctx *ctx, const ldm_model_config *model,
                                               const ldm_run_diffusion *train, int latent_size,
                                               uint64_t seed, ldm_job *job,
                                               ldm_diffusion_trainer **out);
void ldm_diffusion_trainer_destroy(ldm_diffusion_trainer *t);

/* latents [batch, C, h, w] and captions[batch] (none without a text encoder): forward and
 * backward, the gradients added to those of earlier micro-batches; *loss is this one's. */
ldm_status ldm_diffusion_trainer_forward_backward(ldm_diffusion_trainer *t, const float *latents,
                                                  const char *const *captions, float *loss);
/* The optimizer's step (at the learning rate last set), the EMA's update, zeroed gradients. */
ldm_status ldm_diffusion_trainer_set_lr(ldm_diffusion_trainer *t, float lr);
ldm_status ldm_diffusion_trainer_apply(ldm_diffusion_trainer *t);

/* The whole training state (ldmcl/train_state.h) with the caller's metadata, and back. */
ldm_status ldm_diffusion_trainer_save_state(ldm_diffusion_trainer *t, const char *path,
                                            const char *const *metadata_pairs);
ldm_status ldm_diffusion_trainer_load_state(ldm_diffusion_trainer *t, const char *path);

/* Data parallelism: LDM_ERR_JOB naming the tensor when this rank's state (parameters, moments,
 * averages, counters) is not rank 0's (ldm_train_state_check_same). A collective. */
ldm_status ldm_diffusion_trainer_check_same(ldm_diffusion_trainer *t);
/* The gradient averaging (NULL alone), for its figures. */
ldm_grad_sync *ldm_diffusion_trainer_grad_sync(ldm_diffusion_trainer *t);

/* The trained model's files into dir: unet.safetensors (with its diffusion metadata) and, when
 * the encoder was trained, text_encoder.safetensors; the EMA's weights when there is one (swapped
 * with the trained ones for the writing and back: training may go on). With LoRA the UNet's
 * weights are written with the adapters merged in (a model ldmcl-sample reads as any other). */
ldm_status ldm_diffusion_trainer_write_model(ldm_diffusion_trainer *t, const char *dir);
/* With LoRA: the adapters (the EMA's when there is one) as a kohya-format file (ldmcl/lora.h;
 * lora_unet_<parameter name with '_' for '.'>), *layers the adapted layers. */
ldm_status ldm_diffusion_trainer_write_lora(ldm_diffusion_trainer *t, const char *path,
                                            int *layers);

/* What validation shares: the step's graph (its parameter store holds the UNet's and a trained
 * encoder's weights), the store holding the text encoder's weights (the step's when it trains
 * the encoder, the frozen encoder's, NULL without text), and the tokenizer (NULL without text). */
ldm_graph *ldm_diffusion_trainer_graph(ldm_diffusion_trainer *t);
ldm_params *ldm_diffusion_trainer_text_params(ldm_diffusion_trainer *t);
ldm_clip_tokenizer *ldm_diffusion_trainer_tokenizer(ldm_diffusion_trainer *t);

#ifdef __cplusplus
}
#endif
#endif
