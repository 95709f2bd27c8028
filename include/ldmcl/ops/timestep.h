/* ldmcl/ops/timestep.h: sinusoidal timestep embeddings. The reference's (models/blocks.py
 * get_time_embedding): for i < d/2, factor_i = 10000^(i / (d/2)), and
 *     emb[n] = [sin(t_n / factor_0 .. factor_{d/2-1}), cos(t_n / factor_0 .. )]
 * (sines first). Timesteps are integers in [0, T); the table of all T embeddings is computed once
 * on the host in double precision and looked up. */
#ifndef LDMCL_OPS_TIMESTEP_H
#define LDMCL_OPS_TIMESTEP_H

#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The table [T, dim] (dim even) as the reference computes each row. */
void ldm_timestep_table(int T, int dim, float *table);

/* t [N] (float-valued integers in [0, T), no gradient) -> [N, dim]. */
ldm_tensor *ldm_timestep_embedding(ldm_graph *g, ldm_tensor *t, int dim, int T);

/* Stable Diffusion's embedding of real-valued timesteps (k-diffusion passes fractional ones):
 * for i < dim/2, freq_i = exp(-ln(10000) i / (dim/2 - freq_shift)) (in double, then rounded) and
 *     emb[n] = [cos(t_n freq), sin(t_n freq)] when cos_first (SD's UNet, diffusers'
 * flip_sin_to_cos), else [sin, cos]. t [N] takes no gradient; -> [N, dim]. */
ldm_tensor *ldm_timestep_sinusoidal(ldm_graph *g, ldm_tensor *t, int dim, int cos_first,
                                    float freq_shift);

#ifdef __cplusplus
}
#endif
#endif
