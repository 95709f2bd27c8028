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
#include "ldmcl/job.h"
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

/* Several models trained together (an autoencoder and its discriminator) in one file, so that
 * they are replaced as one: part k's tensors are named prefix + the names above, its counters
 * "ldmcl.state." + prefix + "graph_step" and so on (a NULL or "" prefix: the names above).
 * Loading reads and checks every part before it changes any. */
#define LDM_TRAIN_STATE_MAX_PARTS 4
typedef struct ldm_train_state_part {
    const char *prefix;
    ldm_graph *g;
    ldm_optimizer *opt; /* may be NULL */
    ldm_ema *ema;       /* may be NULL */
} ldm_train_state_part;
ldm_status ldm_train_state_save_parts(const char *path, const ldm_train_state_part *parts,
                                      int n_parts, const char *const *metadata_pairs);
ldm_status ldm_train_state_load_parts(const char *path, const ldm_train_state_part *parts,
                                      int n_parts);

/* Data parallelism: checks that every rank of the job holds the same state (a hash of each
 * tensor a state file would hold, and the counters, against rank 0's). A difference is
 * LDM_ERR_JOB naming the tensor (on the ranks that differ; the others name the rank). A
 * collective; a job of one is always the same. */
ldm_status ldm_train_state_check_same(ldm_job *job, const ldm_train_state_part *parts, int n_parts);

#ifdef __cplusplus
}
#endif
#endif
