/* ldmcl/ldmcl.h: the public C API of ldmcl, a C11 + OpenCL framework for latent diffusion models.
 *
 * Layers (docs/ARCHITECTURE.md), bottom up: core (context, programs, buffers, GEMM), io (files),
 * graph (recording, backward, memory plan, replay, checkpoints), ops, nn (models), text
 * (tokenizer), sample (model description, samplers, pipeline), train. Every call returns an
 * ldm_status; ldm_last_error() has the message of the last failure.
 *
 * Shape letters used in comments across ldmcl, always in PyTorch order, e.g. [N, C, H, W]:
 *   N  batch                   C  channels          H, W  height, width
 *   G  groups (GroupNorm)      L  query tokens (H*W for images)
 *   S  context tokens (77 for CLIP text)            D  context dim
 *   NH attention heads         HD head dim (C / NH)
 *   M, N, K  GEMM sizes: [M, K] x [K, N] -> [M, N] (only in gemm.h) */
#ifndef LDMCL_LDMCL_H
#define LDMCL_LDMCL_H

#include "ldmcl/version.h"
#include "ldmcl/cl.h"
#include "ldmcl/status.h"
#include "ldmcl/context.h"
#include "ldmcl/program.h"
#include "ldmcl/buffer.h"
#include "ldmcl/gemm.h"
#include "ldmcl/cmd.h"
#include "ldmcl/job.h"
#include "ldmcl/graph.h"
#include "ldmcl/grad_sync.h"
#include "ldmcl/ops.h"
#include "ldmcl/optim.h"
#include "ldmcl/diffusion.h"
#include "ldmcl/unet.h"
#include "ldmcl/sd_unet.h"
#include "ldmcl/sd_vae.h"
#include "ldmcl/autoencoder.h"
#include "ldmcl/discriminator.h"
#include "ldmcl/lpips.h"
#include "ldmcl/ae_train.h"
#include "ldmcl/clip.h"
#include "ldmcl/tokenizer.h"
#include "ldmcl/image.h"
#include "ldmcl/dataset.h"
#include "ldmcl/caption_tags.h"
#include "ldmcl/ini.h"
#include "ldmcl/train.h"
#include "ldmcl/diffusion_trainer.h"
#include "ldmcl/train_state.h"
#include "ldmcl/model.h"
#include "ldmcl/run_config.h"
#include "ldmcl/pipeline.h"
#include "ldmcl/sd_model.h"
#include "ldmcl/lora.h"
#include "ldmcl/lora_adapter.h"
#include "ldmcl/runner.h"
#include "ldmcl/sample.h"
#include "ldmcl/ksampler.h"
#include "ldmcl/safetensors.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/selftest.h"

#endif
