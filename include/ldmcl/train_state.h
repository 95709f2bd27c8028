/* ldmcl/train_state.h: everything a resumed training run needs, in one safetensors file written
 * atomically: the graph's parameters (trainable and frozen, by name), the optimizer's moments
 * (optimizer.exp_avg.<name>, optimizer.exp_avg_sq.<name>) and step count, the EMA copy
 * (ema.<name>) and its update count, the graph's device step counter (the random draws), and
 * the caller's metadata (data position, config). Loading checks everything before changing
 * anything, so a truncated or foreign file leaves the run as it was. */
#ifndef LDMCL_TRAIN_STATE_H
#define LDMCL_TRAIN_STATE_H

#include <stdint.h>

#include "ldmcl/graph.h"
#include "ldmcl/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* opt and ema may be NULL. metadata_pairs: NULL-terminated key/value pairs (may be NULL). */
ldm_status ldm_train_state_save(const char *path, ldm_graph *g, ldm_optimizer *opt, ldm_ema *ema,
                                const char *const *metadata_pairs);

/* Restores what ldm_train_state_save wrote into the same model (names and shapes must match;
 * an optimizer or EMA the file lacks is an error when one is given). */
ldm_status ldm_train_state_load(const char *path, ldm_graph *g, ldm_optimizer *opt, ldm_ema *ema);

#ifdef __cplusplus
}
#endif
#endif
