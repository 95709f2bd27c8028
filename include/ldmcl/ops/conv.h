/* ldmcl/ops/conv.h: torch.nn.Conv2d and ConvTranspose2d (NCHW, bias optional, groups 1,
 * dilation 1, output_padding 0), as im2col/col2im around GEMMs. */
#ifndef LDMCL_OPS_CONV_H
#define LDMCL_OPS_CONV_H

#include <stddef.h>

#include "ldmcl/cmd.h"
#include "ldmcl/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x [N, Cin, H, W] -> y [N, Cout, Ho, Wo]; kernel KH x KW, stride SH x SW, padding PH x PW.
 * conv2d weight [Cout, Cin, KH, KW]; conv_transpose2d weight [Cin, Cout, KH, KW]. */
typedef struct ldm_conv_geom {
    int N, Cin, H, W, Cout, KH, KW, SH, SW, PH, PW, Ho, Wo;
} ldm_conv_geom;

/* LDM_OK when the geometry is consistent (Ho, Wo as PyTorch computes them). */
ldm_status ldm_conv_geom_check(const ldm_conv_geom *g, int transposed);
/* Elements of scratch a forward (backward = 0) or backward pass needs. */
size_t ldm_conv_scratch(const ldm_conv_geom *g, int transposed, int backward);

ldm_status ldm_conv2d_fwd(ldm_cmd *c, const ldm_conv_geom *g, ldm_buf y, ldm_buf x, ldm_buf w,
                          ldm_buf b, ldm_buf scratch);
/* Gradients whose mem is NULL are skipped. */
ldm_status ldm_conv2d_bwd(ldm_cmd *c, const ldm_conv_geom *g, int acc_x, ldm_buf dx, int acc_w,
                          ldm_buf dw, int acc_b, ldm_buf db, ldm_buf dy, ldm_buf x, ldm_buf w,
                          ldm_buf scratch);
ldm_status ldm_conv_transpose2d_fwd(ldm_cmd *c, const ldm_conv_geom *g, ldm_buf y, ldm_buf x,
                                    ldm_buf w, ldm_buf b, ldm_buf scratch);
ldm_status ldm_conv_transpose2d_bwd(ldm_cmd *c, const ldm_conv_geom *g, int acc_x, ldm_buf dx,
                                    int acc_w, ldm_buf dw, int acc_b, ldm_buf db, ldm_buf dy,
                                    ldm_buf x, ldm_buf w, ldm_buf scratch);

/* Square stride and padding; b may be NULL. */
ldm_tensor *ldm_conv2d(ldm_graph *g, ldm_tensor *x, ldm_tensor *w, ldm_tensor *b, int stride,
                       int pad);
ldm_tensor *ldm_conv_transpose2d(ldm_graph *g, ldm_tensor *x, ldm_tensor *w, ldm_tensor *b,
                                 int stride, int pad);

#ifdef __cplusplus
}
#endif
#endif
