/* ldmcl/ops.h: every op of ldmcl, at two levels.
 *   Buffer level: ldm_<op>_fwd / ldm_<op>_bwd launch kernels on buffers through an ldm_cmd
 *   (outputs first, shapes in PyTorch order in the comments). Backward functions take acc:
 *   0 overwrites the gradient, 1 adds to it.
 *   Graph level: ldm_<op>(g, ...) records the op on a graph (graph.h) and returns its result.
 * One header per op family. */
#ifndef LDMCL_OPS_H
#define LDMCL_OPS_H

#include "ldmcl/ops/elementwise.h"
#include "ldmcl/ops/reduce.h"
#include "ldmcl/ops/linear.h"
#include "ldmcl/ops/layout.h"
#include "ldmcl/ops/norm.h"
#include "ldmcl/ops/conv.h"
#include "ldmcl/ops/attention.h"
#include "ldmcl/ops/softmax.h"
#include "ldmcl/ops/timestep.h"
#include "ldmcl/ops/rng.h"
#include "ldmcl/ops/pool.h"
#include "ldmcl/ops/vq.h"

#endif
