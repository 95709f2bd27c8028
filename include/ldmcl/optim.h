/* ldmcl/optim.h: optimizers over a compiled graph's trainable parameters, and an exponential
 * moving average of them. Everything runs on the device: a step enqueues its kernels (gradient
 * norm, clipping, update, step count) and returns without waiting; the step count and learning
 * rate live in a small device buffer, so a training step needs no host round trip.
 * torch.optim.Adam / AdamW, torch.nn.utils.clip_grad_norm_, diffusers' EMAModel. */
#ifndef LDMCL_OPTIM_H
#define LDMCL_OPTIM_H

#include <stdint.h>

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_adam_config {
    float lr;            /* 1e-3 */
    float beta1, beta2;  /* 0.9, 0.999 */
    float eps;           /* 1e-8 */
    float weight_decay;  /* 0 (Adam: an L2 term on the gradient; AdamW: decoupled) */
    int decoupled;       /* 1: AdamW */
    float max_grad_norm; /* > 0: clip the global gradient norm to it first; 0: off */
} ldm_adam_config;

/* PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay, Adam, no clip. */
void ldm_adam_config_init(ldm_adam_config *cfg);

typedef struct ldm_optimizer ldm_optimizer;

/* For the trainable parameters of a compiled graph with a backward pass. Moments start at 0. */
ldm_status ldm_adam_create(ldm_graph *g, const ldm_adam_config *cfg, ldm_optimizer **out);
void ldm_optimizer_destroy(ldm_optimizer *o);
/* One update from the current gradients; does not zero them and does not wait. */
ldm_status ldm_optimizer_step(ldm_optimizer *o);
/* Sets the learning rate from the next step on (learning-rate schedules). */
ldm_status ldm_optimizer_set_lr(ldm_optimizer *o, float lr);
/* Steps done (reads the device; waits); set them when resuming (Adam's bias correction). */
ldm_status ldm_optimizer_steps(ldm_optimizer *o, uint64_t *steps);
ldm_status ldm_optimizer_set_steps(ldm_optimizer *o, uint64_t steps);
/* The global gradient norm of the last step (when clipping is on; reads the device). */
ldm_status ldm_optimizer_grad_norm(ldm_optimizer *o, float *norm);
/* The moments as flat buffers laid out like the parameters (checkpoints), and the state. */
ldm_buf ldm_optimizer_moment(const ldm_optimizer *o, int which /* 1 or 2 */);

typedef struct ldm_ema ldm_ema;

/* A copy of the trainable parameters, updated by ema = d*ema + (1-d)*params with d = decay, or
 * with warm-up d = min(decay, (1+k)/(10+k)) at the k-th update (k from 0). */
ldm_status ldm_ema_create(ldm_graph *g, float decay, int warmup, ldm_ema **out);
void ldm_ema_destroy(ldm_ema *e);
ldm_status ldm_ema_update(ldm_ema *e);
/* Updates done (the warm-up's k), read and set when resuming. */
ldm_status ldm_ema_updates(ldm_ema *e, uint64_t *updates);
ldm_status ldm_ema_set_updates(ldm_ema *e, uint64_t updates);
/* Exchanges the averaged parameters with the graph's, in place (no copy, no extra memory): after
 * one call the graph computes with the averages (to save or sample them) and the EMA holds the
 * trained weights; a second call puts both back. Update only between pairs of calls. */
ldm_status ldm_ema_swap(ldm_ema *e);
/* The averaged parameters, laid out like ldm_graph_trainable_buf. */
ldm_buf ldm_ema_buf(const ldm_ema *e);

#ifdef __cplusplus
}
#endif
#endif
