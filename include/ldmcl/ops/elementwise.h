/* ldmcl/ops/elementwise.h: activations, exp, add/sub/scale, multiply, broadcast add over rows,
 * stop-gradient, GEGLU. torch references: F.silu, F.leaky_relu, F.relu, F.gelu (exact, erf),
 * quick_gelu x*sigmoid(1.702x), torch.exp, Tensor.detach, a * F.gelu(gate) of x.chunk(2, -1). */
#ifndef LDMCL_OPS_ELEMENTWISE_H
#define LDMCL_OPS_ELEMENTWISE_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ldm_act {
    LDM_ACT_SILU = 1,
    LDM_ACT_LEAKY_RELU = 2, /* param: negative slope */
    LDM_ACT_GELU = 3,
    LDM_ACT_QUICK_GELU = 4,
    LDM_ACT_EXP = 5
} ldm_act;

/* An activation over n elements. */
typedef struct ldm_act_params {
    ldm_act act;
    float param;
    size_t n;
} ldm_act_params;
/* y = act(x). */
ldm_status ldm_act_fwd(ldm_cmd *c, const ldm_act_params *p, ldm_buf y, ldm_buf x);
/* dx = acc*dx + dy * act'(x). */
ldm_status ldm_act_bwd(ldm_cmd *c, const ldm_act_params *p, int acc, ldm_buf dx, ldm_buf dy,
                       ldm_buf x);
/* y = alpha*a + beta*b. */
ldm_status ldm_axpby(ldm_cmd *c, size_t n, ldm_buf y, float alpha, ldm_buf a, float beta,
                     ldm_buf b);
/* y = alpha*x + beta. */
ldm_status ldm_affine_fwd(ldm_cmd *c, size_t n, ldm_buf y, float alpha, ldm_buf x, float beta);
/* dst = acc*dst + alpha*src. */
ldm_status ldm_accumulate(ldm_cmd *c, size_t n, int acc, ldm_buf dst, float alpha, ldm_buf src);
/* y = a*b. */
ldm_status ldm_mul_fwd(ldm_cmd *c, size_t n, ldm_buf y, ldm_buf a, ldm_buf b);
/* dst = acc*dst + dy*b (the gradient of a in y = a*b). */
ldm_status ldm_mul_acc(ldm_cmd *c, size_t n, int acc, ldm_buf dst, ldm_buf dy, ldm_buf b);
/* GEGLU: y [rows, D] = x[:, :D] * gelu(x[:, D:]) of x [rows, 2D] (gelu exact). */
ldm_status ldm_geglu_fwd(ldm_cmd *c, size_t rows, size_t D, ldm_buf y, ldm_buf x);
/* dx [rows, 2D] = acc*dx + the gradient of both halves. */
ldm_status ldm_geglu_bwd(ldm_cmd *c, size_t rows, size_t D, int acc, ldm_buf dx, ldm_buf dy,
                         ldm_buf x);
/* y[r, c] = x[r, c] + v[r]: x, y [rows, cols], v [rows]. */
ldm_status ldm_add_rows_fwd(ldm_cmd *c, size_t rows, size_t cols, ldm_buf y, ldm_buf x, ldm_buf v);

/* y[r, c] += b[c]: y [rows, cols], b [cols]. */
ldm_status ldm_add_cols_inplace(ldm_cmd *c, size_t rows, size_t cols, ldm_buf y, ldm_buf b);
/* y[n, c, p] += b[c]: y [N, C, P], b [C]. */
ldm_status ldm_add_channel_bias(ldm_cmd *c, size_t N, size_t C, size_t P, ldm_buf y, ldm_buf b);

/* Graph level. */
ldm_tensor *ldm_silu(ldm_graph *g, ldm_tensor *x);
ldm_tensor *ldm_leaky_relu(ldm_graph *g, ldm_tensor *x, float negative_slope);
ldm_tensor *ldm_gelu(ldm_graph *g, ldm_tensor *x);
ldm_tensor *ldm_quick_gelu(ldm_graph *g, ldm_tensor *x);
/* A parameter stored in half precision (ldm_graph_set_half_weights) as a float activation of its
 * shape, expanded where the graph reads it (no gradient flows to it); a float one as it is. */
ldm_tensor *ldm_half_weight(ldm_graph *g, ldm_tensor *param);
/* diffusers' GEGLU after its projection: x [..., 2D] -> x[..., :D] * gelu(x[..., D:]) [..., D]
 * (Stable Diffusion's feed-forward). */
ldm_tensor *ldm_geglu(ldm_graph *g, ldm_tensor *x);
/* max(x, 0) (a leaky ReLU of slope 0: the gradient at 0 is 0, as PyTorch's). */
ldm_tensor *ldm_relu(ldm_graph *g, ldm_tensor *x);
ldm_tensor *ldm_exp(ldm_graph *g, ldm_tensor *x);
/* A copy of x through which no gradient flows (x.detach()): the straight-through estimator,
 * losses that must not train what produced their input. */
ldm_tensor *ldm_detach(ldm_graph *g, ldm_tensor *x);
/* alpha*a + beta*b, a and b of the same shape (ldm_add: 1, 1; ldm_sub: 1, -1). */
ldm_tensor *ldm_axpby_t(ldm_graph *g, float alpha, ldm_tensor *a, float beta, ldm_tensor *b);
ldm_tensor *ldm_add(ldm_graph *g, ldm_tensor *a, ldm_tensor *b);
ldm_tensor *ldm_sub(ldm_graph *g, ldm_tensor *a, ldm_tensor *b);
ldm_tensor *ldm_scale(ldm_graph *g, ldm_tensor *x, float alpha);
/* alpha*x + beta (a scalar added: 2x - 1, a constant term of a loss). */
ldm_tensor *ldm_affine(ldm_graph *g, ldm_tensor *x, float alpha, float beta);
ldm_tensor *ldm_mul(ldm_graph *g, ldm_tensor *a, ldm_tensor *b);
/* x [N, C, ...] + v [N, C] broadcast over the trailing dimensions (a time embedding added to a
 * feature map: x + v[:, :, None, None]). */
ldm_tensor *ldm_add_channels(ldm_graph *g, ldm_tensor *x, ldm_tensor *v);

#ifdef __cplusplus
}
#endif
#endif
