/* src/ops/tunables.c: the work-group sizes and tiles of the op families, one table per device
 * class: GPUs, and CPU drivers (pocl), which get the kernels laid out for them
 * (ldm_ctx_cpu_kernels). A family reads its entries here and nowhere else; sizes a kernel fixes
 * itself (reqd_work_group_size(16, 16, 1) of sum_cols, layer_norm_bwd_params and transpose12)
 * and those that fix a scratch size at recording, before any device is known (the reductions'
 * first stage, conv's chunk budget), stay in their family. */
#include "ops_internal.h"

static const ldm_tunables gpu = {
    .cpu_layout = 0,
    .elementwise_wg = 256,
    .norm_wg = 256,
    .sum_rows_wg = 256,
    .softmax_wg = 256,
    .conv_local = {32, 4}, /* pixels x rows of the column buffer */
    .attn_tile = {32, 16},
    .attn_side = 8,
    .attn_keys = {32, 16},
};

/* On CPU drivers idle work-items and barrier steps cost more than they save: 16-wide reductions
 * (GroupNorm at 7x7 with 2 to 4 channels per group has 100 to 200 elements per group; a bias
 * gradient sums 64 rows of 3,136), conv's *_rows kernels (one image row per work-item) and
 * attention's rows layout at the driver's work-group size. */
static const ldm_tunables cpu = {
    .cpu_layout = 1,
    .elementwise_wg = 256,
    .norm_wg = 16,
    .sum_rows_wg = 16,
    .softmax_wg = 256,
    .conv_local = {1, 64}, /* image rows x column rows */
    .attn_tile = {32, 16},
    .attn_side = 8,
    .attn_keys = {32, 16},
};

const ldm_tunables *ldm_tunables_of(ldm_cmd *c) {
    return ldm_ctx_cpu_kernels(ldm_cmd_ctx(c)) ? &cpu : &gpu;
}
