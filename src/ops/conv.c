/* src/ops/conv.c: Conv2d and ConvTranspose2d as im2col/col2im + one GEMM per chunk of samples
 * with transposed copies around it, or (the GPU layout's default, tunable conv_batched)
 * strided-batched GEMMs per sample on the images in place (kernels in cl/conv.cl). A chunk holds
 * as many samples as keep the column buffers under CHUNK_BUDGET elements of scratch. Nothing is
 * saved for backward: the column buffer is recomputed from x. Backward reads x and the weight. */
#include <stdio.h>

#include "ops_internal.h"

#define FILE_CL "conv.cl"
#define CHUNK_BUDGET ((size_t)16 << 20) /* elements of scratch a chunk may use */

static size_t positions_in(const ldm_conv_geom *g) {
    return (size_t)g->H * (size_t)g->W;
}

static size_t positions_out(const ldm_conv_geom *g) {
    return (size_t)g->Ho * (size_t)g->Wo;
}

static size_t window(const ldm_conv_geom *g) {
    return (size_t)g->KH * (size_t)g->KW;
}

ldm_status ldm_conv_geom_check(const ldm_conv_geom *g, int transposed) {
    int ho = transposed ? (g->H - 1) * g->SH - 2 * g->PH + g->KH
                        : (g->H + 2 * g->PH - g->KH) / g->SH + 1;
    int wo = transposed ? (g->W - 1) * g->SW - 2 * g->PW + g->KW
                        : (g->W + 2 * g->PW - g->KW) / g->SW + 1;
    if (g->N < 1 || g->Cin < 1 || g->Cout < 1 || g->H < 1 || g->W < 1 || g->KH < 1 || g->KW < 1 ||
        g->SH < 1 || g->SW < 1 || g->PH < 0 || g->PW < 0 || ho < 1 || wo < 1 ||
        (!transposed && (g->H + 2 * g->PH < g->KH || g->W + 2 * g->PW < g->KW)))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "%s: no output for input %dx%d, kernel %dx%d, stride %dx%d, padding %dx%d",
                        transposed ? "conv_transpose2d" : "conv2d", g->H, g->W, g->KH, g->KW, g->SH,
                        g->SW, g->PH, g->PW);
    if (g->Ho != ho || g->Wo != wo)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "conv geometry: output %dx%d, expected %dx%d",
                        g->Ho, g->Wo, ho, wo);
    return LDM_OK;
}

/* Samples per chunk, given the scratch elements one sample needs. */
static size_t chunk_samples(const ldm_conv_geom *g, size_t per_sample) {
    size_t nb = per_sample ? CHUNK_BUDGET / per_sample : (size_t)g->N;
    if (nb < 1) nb = 1;
    return nb > (size_t)g->N ? (size_t)g->N : nb;
}

/* Scratch per sample: conv fwd col + tmp; conv bwd col + dyr + dcol;
 * convT fwd xr + col; convT bwd dcol + xr + Cout (bias partials). */
static size_t per_sample(const ldm_conv_geom *g, int transposed, int backward) {
    size_t cin = (size_t)g->Cin, cout = (size_t)g->Cout;
    if (!transposed) {
        size_t K = cin * window(g), P = positions_out(g);
        return backward ? P * (2 * K + cout) : P * (K + cout);
    }
    size_t Kt = cout * window(g), P = positions_in(g);
    return backward ? P * (Kt + cin) + cout : P * (cin + Kt);
}

size_t ldm_conv_scratch(const ldm_conv_geom *g, int transposed, int backward) {
    size_t ps = per_sample(g, transposed, backward);
    return ps * chunk_samples(g, ps);
}

static ldm_buf at(ldm_buf b, size_t off) {
    return (ldm_buf){b.mem, b.off + off};
}

/* CPU drivers get the *_rows kernels (cl/conv.cl says why); the work-groups of both layouts are
 * in src/core/tunables.c. */
static int on_cpu(ldm_cmd *c) {
    return ldm_tunables_of(c)->cpu_layout;
}

/* col [K, nb, P] (or [nb, K, P] when sample_major, GPU layout only) from nb samples of an image
 * [nb, C, H, W], windows as g describes with the image taken as conv input. */
static ldm_status im2col(ldm_cmd *c, const ldm_conv_geom *g, int C, int H, int W, int Ho, int Wo,
                         size_t nb, int sample_major, ldm_buf col, ldm_buf img) {
    size_t n = (size_t)C * window(g) * nb * (size_t)Ho * (size_t)Wo;
    LDM_TRY(ldm_check_count("im2col", n));
    cl_kernel k;
    int cpu = on_cpu(c);
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, cpu ? "im2col_rows" : "im2col", NULL, &k));
    if (cpu)
        LDM_TRY(ldm_args_im2col_rows(k, C, H, W, g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, Ho, Wo,
                                     (int)nb, col, img));
    else
        LDM_TRY(ldm_args_im2col(k, C, H, W, g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, Ho, Wo,
                                (int)nb, sample_major, col, img));
    size_t rows = n / ((size_t)Ho * (size_t)Wo);
    size_t global[2] = {cpu ? (size_t)Ho : (size_t)Ho * (size_t)Wo, rows};
    return ldm_cmd_launch(c, k, 2, global, ldm_tunables_of(c)->conv_local);
}

static ldm_status col2im(ldm_cmd *c, const ldm_conv_geom *g, int C, int H, int W, int Ho, int Wo,
                         size_t nb, int sample_major, int acc, ldm_buf img, ldm_buf col) {
    size_t n = nb * (size_t)C * (size_t)H * (size_t)W;
    LDM_TRY(ldm_check_count("col2im", n));
    cl_kernel k;
    int cpu = on_cpu(c);
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, cpu ? "col2im_rows" : "col2im", NULL, &k));
    if (cpu)
        LDM_TRY(ldm_args_col2im_rows(k, C, H, W, g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, Ho, Wo,
                                     (int)nb, acc, img, col));
    else
        LDM_TRY(ldm_args_col2im(k, C, H, W, g->KH, g->KW, g->SH, g->SW, g->PH, g->PW, Ho, Wo,
                                (int)nb, sample_major, acc, img, col));
    size_t global[2] = {cpu ? (size_t)H : (size_t)H * (size_t)W, nb * (size_t)C};
    return ldm_cmd_launch(c, k, 2, global, ldm_tunables_of(c)->conv_local);
}

/* y [B, A, P] = acc*y + x [A, B, P] (+ bias[a]). */
static ldm_status swap01(ldm_cmd *c, size_t A, size_t B, size_t P, int acc, ldm_buf y, ldm_buf x,
                         ldm_buf bias) {
    LDM_TRY(ldm_check_count("swap01", A * B * P));
    cl_kernel k;
    LDM_TRY(ldm_cmd_kernel(c, FILE_CL, "swap01", NULL, &k));
    LDM_TRY(ldm_args_swap01(k, (int)A, (int)B, (int)P, acc, bias.mem != NULL, y, x,
                            ldm_unused_or(bias, x)));
    return ldm_launch_1d(c, k, A * B * P);
}

/* ---- the GPU layout's swap-free variant (tunable conv_batched) -------------------------------
 * Columns per sample ([nb, K, P]) and strided-batched GEMMs that read and write the images in
 * place: no transposed copy of y, dy or x. The weight gradient, a sum over samples, takes one GEMM
 * per sample. Scratch: at most what the chunk was sized for (per_sample). */

static int batched(ldm_cmd *c) {
    const ldm_tunables *t = ldm_tunables_of(c);
    return !t->cpu_layout && t->conv_batched;
}

/* db += sum over samples and positions of dy [m, cout, P], through part [m * cout]. */
static ldm_status bias_grad(ldm_cmd *c, size_t m, size_t cout, size_t P, int acc, ldm_buf db,
                            ldm_buf dy, ldm_buf part) {
    LDM_TRY(ldm_sum_rows(c, m * cout, P, 1.0f, 0, part, dy));
    return ldm_sum_cols(c, m, cout, 1.0f, acc, db, part);
}

/* dw [M, N] (+)= sum over the m samples of a[n] [M, P] x b[n] [N, P]^T. */
static ldm_status weight_grad(ldm_cmd *c, size_t m, size_t M, size_t N, size_t P, int acc,
                              ldm_buf dw, ldm_buf a, ldm_buf b) {
    ldm_gemm_shape s = {0, 1, M, N, P, P, P, N};
    for (size_t n = 0; n < m; n++)
        LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, at(a, n * M * P), at(b, n * N * P),
                             acc || n > 0 ? 1.0f : 0.0f, dw));
    return LDM_OK;
}

static ldm_status conv2d_fwd_batched(ldm_cmd *c, const ldm_conv_geom *g, size_t n0, size_t m,
                                     ldm_buf y, ldm_buf x, ldm_buf w, ldm_buf b, ldm_buf scratch) {
    size_t K = (size_t)g->Cin * window(g), P = positions_out(g), cout = (size_t)g->Cout;
    ldm_buf yc = at(y, n0 * cout * P);
    LDM_TRY(im2col(c, g, g->Cin, g->H, g->W, g->Ho, g->Wo, m, 1, scratch,
                   at(x, n0 * (size_t)g->Cin * positions_in(g))));
    ldm_gemm_shape s = {0, 0, cout, P, K, K, P, P};
    LDM_TRY(ldm_cmd_gemm_batched(c, &s, m, 1.0f, w, 0, scratch, K * P, 0.0f, yc, cout * P));
    return b.mem ? ldm_add_channel_bias(c, m, cout, P, yc, b) : LDM_OK;
}

static ldm_status conv2d_bwd_batched(ldm_cmd *c, const ldm_conv_geom *g, size_t n0, size_t m,
                                     int first, int acc_x, ldm_buf dx, int acc_w, ldm_buf dw,
                                     int acc_b, ldm_buf db, ldm_buf dy, ldm_buf x, ldm_buf w,
                                     ldm_buf scratch) {
    size_t K = (size_t)g->Cin * window(g), P = positions_out(g), cout = (size_t)g->Cout;
    ldm_buf col = scratch, dcol = at(scratch, K * m * P), part = at(dcol, K * m * P);
    ldm_buf dyc = at(dy, n0 * cout * P);
    if (db.mem) LDM_TRY(bias_grad(c, m, cout, P, first ? acc_b : 1, db, dyc, part));
    if (dw.mem) {
        LDM_TRY(im2col(c, g, g->Cin, g->H, g->W, g->Ho, g->Wo, m, 1, col,
                       at(x, n0 * (size_t)g->Cin * positions_in(g))));
        LDM_TRY(weight_grad(c, m, cout, K, P, !first || acc_w, dw, dyc, col));
    }
    if (dx.mem) {
        ldm_gemm_shape s = {1, 0, K, P, cout, K, P, P};
        LDM_TRY(ldm_cmd_gemm_batched(c, &s, m, 1.0f, w, 0, dyc, cout * P, 0.0f, dcol, K * P));
        LDM_TRY(col2im(c, g, g->Cin, g->H, g->W, g->Ho, g->Wo, m, 1, acc_x,
                       at(dx, n0 * (size_t)g->Cin * positions_in(g)), dcol));
    }
    return LDM_OK;
}

static ldm_status convt_fwd_batched(ldm_cmd *c, const ldm_conv_geom *g, size_t n0, size_t m,
                                    ldm_buf y, ldm_buf x, ldm_buf w, ldm_buf b, ldm_buf scratch) {
    size_t cin = (size_t)g->Cin, Kt = (size_t)g->Cout * window(g), P = positions_in(g);
    ldm_buf yc = at(y, n0 * (size_t)g->Cout * positions_out(g));
    ldm_gemm_shape s = {1, 0, Kt, P, cin, Kt, P, P};
    LDM_TRY(ldm_cmd_gemm_batched(c, &s, m, 1.0f, w, 0, at(x, n0 * cin * P), cin * P, 0.0f, scratch,
                                 Kt * P));
    LDM_TRY(col2im(c, g, g->Cout, g->Ho, g->Wo, g->H, g->W, m, 1, 0, yc, scratch));
    return b.mem ? ldm_add_channel_bias(c, m, (size_t)g->Cout, positions_out(g), yc, b) : LDM_OK;
}

static ldm_status convt_bwd_batched(ldm_cmd *c, const ldm_conv_geom *g, size_t n0, size_t m,
                                    int first, int acc_x, ldm_buf dx, int acc_w, ldm_buf dw,
                                    int acc_b, ldm_buf db, ldm_buf dy, ldm_buf x, ldm_buf w,
                                    ldm_buf scratch) {
    size_t cin = (size_t)g->Cin, cout = (size_t)g->Cout, Kt = cout * window(g);
    size_t P = positions_in(g), Po = positions_out(g);
    ldm_buf dcol = scratch, part = at(scratch, Kt * m * P), dyc = at(dy, n0 * cout * Po);
    if (dx.mem || dw.mem) LDM_TRY(im2col(c, g, g->Cout, g->Ho, g->Wo, g->H, g->W, m, 1, dcol, dyc));
    if (dx.mem) {
        ldm_gemm_shape s = {0, 0, cin, P, Kt, Kt, P, P};
        LDM_TRY(ldm_cmd_gemm_batched(c, &s, m, 1.0f, w, 0, dcol, Kt * P, acc_x ? 1.0f : 0.0f,
                                     at(dx, n0 * cin * P), cin * P));
    }
    if (dw.mem)
        LDM_TRY(weight_grad(c, m, cin, Kt, P, !first || acc_w, dw, at(x, n0 * cin * P), dcol));
    if (db.mem) LDM_TRY(bias_grad(c, m, cout, Po, first ? acc_b : 1, db, dyc, part));
    return LDM_OK;
}

ldm_status ldm_conv2d_fwd(ldm_cmd *c, const ldm_conv_geom *g, ldm_buf y, ldm_buf x, ldm_buf w,
                          ldm_buf b, ldm_buf scratch) {
    LDM_TRY(ldm_conv_geom_check(g, 0));
    size_t K = (size_t)g->Cin * window(g), P = positions_out(g), cout = (size_t)g->Cout;
    size_t nb = chunk_samples(g, per_sample(g, 0, 0));
    for (size_t n0 = 0; n0 < (size_t)g->N; n0 += nb) {
        size_t m = (size_t)g->N - n0 < nb ? (size_t)g->N - n0 : nb;
        if (batched(c)) {
            LDM_TRY(conv2d_fwd_batched(c, g, n0, m, y, x, w, b, scratch));
            continue;
        }
        ldm_buf col = scratch, tmp = at(scratch, K * m * P);
        LDM_TRY(im2col(c, g, g->Cin, g->H, g->W, g->Ho, g->Wo, m, 0, col,
                       at(x, n0 * (size_t)g->Cin * positions_in(g))));
        ldm_gemm_shape s = {0, 0, cout, m * P, K, K, m * P, m * P};
        LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, w, col, 0.0f, tmp));
        LDM_TRY(swap01(c, cout, m, P, 0, at(y, n0 * cout * P), tmp, b));
    }
    return LDM_OK;
}

ldm_status ldm_conv2d_bwd(ldm_cmd *c, const ldm_conv_geom *g, int acc_x, ldm_buf dx, int acc_w,
                          ldm_buf dw, int acc_b, ldm_buf db, ldm_buf dy, ldm_buf x, ldm_buf w,
                          ldm_buf scratch) {
    LDM_TRY(ldm_conv_geom_check(g, 0));
    size_t K = (size_t)g->Cin * window(g), P = positions_out(g), cout = (size_t)g->Cout;
    size_t nb = chunk_samples(g, per_sample(g, 0, 1));
    for (size_t n0 = 0; n0 < (size_t)g->N; n0 += nb) {
        size_t m = (size_t)g->N - n0 < nb ? (size_t)g->N - n0 : nb;
        int first = n0 == 0;
        if (batched(c)) {
            LDM_TRY(conv2d_bwd_batched(c, g, n0, m, first, acc_x, dx, acc_w, dw, acc_b, db, dy, x,
                                       w, scratch));
            continue;
        }
        ldm_buf col = scratch, dyr = at(scratch, K * m * P), dcol = at(dyr, cout * m * P);
        ldm_buf none = {NULL, 0};
        LDM_TRY(swap01(c, m, cout, P, 0, dyr, at(dy, n0 * cout * P), none));
        if (dw.mem) {
            LDM_TRY(im2col(c, g, g->Cin, g->H, g->W, g->Ho, g->Wo, m, 0, col,
                           at(x, n0 * (size_t)g->Cin * positions_in(g))));
            ldm_gemm_shape s = {0, 1, cout, K, m * P, m * P, m * P, K};
            LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, dyr, col, first && !acc_w ? 0.0f : 1.0f, dw));
        }
        if (db.mem) LDM_TRY(ldm_sum_rows(c, cout, m * P, 1.0f, first ? acc_b : 1, db, dyr));
        if (dx.mem) {
            ldm_gemm_shape s = {1, 0, K, m * P, cout, K, m * P, m * P};
            LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, w, dyr, 0.0f, dcol));
            LDM_TRY(col2im(c, g, g->Cin, g->H, g->W, g->Ho, g->Wo, m, 0, acc_x,
                           at(dx, n0 * (size_t)g->Cin * positions_in(g)), dcol));
        }
    }
    return LDM_OK;
}

ldm_status ldm_conv_transpose2d_fwd(ldm_cmd *c, const ldm_conv_geom *g, ldm_buf y, ldm_buf x,
                                    ldm_buf w, ldm_buf b, ldm_buf scratch) {
    LDM_TRY(ldm_conv_geom_check(g, 1));
    size_t cin = (size_t)g->Cin, Kt = (size_t)g->Cout * window(g), P = positions_in(g);
    size_t nb = chunk_samples(g, per_sample(g, 1, 0));
    for (size_t n0 = 0; n0 < (size_t)g->N; n0 += nb) {
        size_t m = (size_t)g->N - n0 < nb ? (size_t)g->N - n0 : nb;
        if (batched(c)) {
            LDM_TRY(convt_fwd_batched(c, g, n0, m, y, x, w, b, scratch));
            continue;
        }
        ldm_buf xr = scratch, col = at(scratch, cin * m * P), none = {NULL, 0};
        ldm_buf yc = at(y, n0 * (size_t)g->Cout * positions_out(g));
        LDM_TRY(swap01(c, m, cin, P, 0, xr, at(x, n0 * cin * P), none));
        ldm_gemm_shape s = {1, 0, Kt, m * P, cin, Kt, m * P, m * P};
        LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, w, xr, 0.0f, col));
        /* The output image plays the convolution's input; x's positions its output. */
        LDM_TRY(col2im(c, g, g->Cout, g->Ho, g->Wo, g->H, g->W, m, 0, 0, yc, col));
        if (b.mem) LDM_TRY(ldm_add_channel_bias(c, m, (size_t)g->Cout, positions_out(g), yc, b));
    }
    return LDM_OK;
}

ldm_status ldm_conv_transpose2d_bwd(ldm_cmd *c, const ldm_conv_geom *g, int acc_x, ldm_buf dx,
                                    int acc_w, ldm_buf dw, int acc_b, ldm_buf db, ldm_buf dy,
                                    ldm_buf x, ldm_buf w, ldm_buf scratch) {
    LDM_TRY(ldm_conv_geom_check(g, 1));
    size_t cin = (size_t)g->Cin, cout = (size_t)g->Cout, Kt = cout * window(g);
    size_t P = positions_in(g), Po = positions_out(g);
    size_t nb = chunk_samples(g, per_sample(g, 1, 1));
    for (size_t n0 = 0; n0 < (size_t)g->N; n0 += nb) {
        size_t m = (size_t)g->N - n0 < nb ? (size_t)g->N - n0 : nb;
        int first = n0 == 0;
        if (batched(c)) {
            LDM_TRY(convt_bwd_batched(c, g, n0, m, first, acc_x, dx, acc_w, dw, acc_b, db, dy, x, w,
                                      scratch));
            continue;
        }
        ldm_buf dcol = scratch, xr = at(scratch, Kt * m * P), part = at(xr, cin * m * P);
        ldm_buf dyc = at(dy, n0 * cout * Po), none = {NULL, 0};
        if (dx.mem || dw.mem)
            LDM_TRY(im2col(c, g, g->Cout, g->Ho, g->Wo, g->H, g->W, m, 0, dcol, dyc));
        if (dx.mem) {
            ldm_gemm_shape s = {0, 0, cin, m * P, Kt, Kt, m * P, m * P};
            LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, w, dcol, 0.0f, xr));
            LDM_TRY(swap01(c, cin, m, P, acc_x, at(dx, n0 * cin * P), xr, none));
        }
        if (dw.mem) {
            LDM_TRY(swap01(c, m, cin, P, 0, xr, at(x, n0 * cin * P), none));
            ldm_gemm_shape s = {0, 1, cin, Kt, m * P, m * P, m * P, Kt};
            LDM_TRY(ldm_cmd_gemm(c, &s, 1.0f, xr, dcol, first && !acc_w ? 0.0f : 1.0f, dw));
        }
        if (db.mem) {
            LDM_TRY(ldm_sum_rows(c, m * cout, Po, 1.0f, 0, part, dyc));
            LDM_TRY(ldm_sum_cols(c, m, cout, 1.0f, first ? acc_b : 1, db, part));
        }
    }
    return LDM_OK;
}

/* ---- graph level -------------------------------------------------------------------------- */

/* A node's geometry, computed once when it is recorded, and which of the two ops it is. */
typedef struct conv_params {
    ldm_conv_geom geom;
    int transposed;
} conv_params;

#define BUF(t) ldm_tensor_buf(t)

static ldm_status conv_node_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    const conv_params *p = LDM_NODE_PARAMS(n, conv_params);
    ldm_buf b = n->n_in > 2 ? BUF(n->in[2]) : (ldm_buf){NULL, 0};
    if (p->transposed)
        return ldm_conv_transpose2d_fwd(c, &p->geom, BUF(n->out[0]), BUF(n->in[0]), BUF(n->in[1]),
                                        b, scratch);
    return ldm_conv2d_fwd(c, &p->geom, BUF(n->out[0]), BUF(n->in[0]), BUF(n->in[1]), b, scratch);
}

static ldm_status conv_node_bwd(ldm_cmd *c, const ldm_node *n, const ldm_bwd_args *a) {
    const conv_params *p = LDM_NODE_PARAMS(n, conv_params);
    ldm_buf db = n->n_in > 2 ? a->din[2] : (ldm_buf){NULL, 0};
    int acc_b = n->n_in > 2 ? a->acc[2] : 0;
    if (p->transposed)
        return ldm_conv_transpose2d_bwd(c, &p->geom, a->acc[0], a->din[0], a->acc[1], a->din[1],
                                        acc_b, db, a->dout, BUF(n->in[0]), BUF(n->in[1]),
                                        a->scratch);
    return ldm_conv2d_bwd(c, &p->geom, a->acc[0], a->din[0], a->acc[1], a->din[1], acc_b, db,
                          a->dout, BUF(n->in[0]), BUF(n->in[1]), a->scratch);
}

static const ldm_op_class conv_op = {
    .name = "conv2d",
    .fwd = conv_node_fwd,
    .bwd = conv_node_bwd,
    .params_size = LDM_PARAMS_SIZE(conv_params),
    .bwd_reads = LDM_READS_IN(0) | LDM_READS_IN(1),
};

static ldm_tensor *record_conv(ldm_graph *gr, ldm_tensor *x, ldm_tensor *w, ldm_tensor *b,
                               int stride, int pad, int transposed) {
    if (!x || !w) return NULL;
    const char *name = transposed ? "conv_transpose2d" : "conv2d";
    char sx[64], sw[64];
    int cin = transposed ? w->shape[0] : (w->ndim == 4 ? w->shape[1] : -1);
    int cout = transposed ? (w->ndim == 4 ? w->shape[1] : -1) : w->shape[0];
    if (x->ndim != 4 || w->ndim != 4 || x->shape[1] != cin ||
        (b && (b->ndim != 1 || b->shape[0] != cout)))
        return LDM_GRAPH_FAIL(gr, LDM_ERR_INVALID_ARGUMENT,
                              "%s: input '%s' %s and weight '%s' %s%s do not fit (x [N, Cin, H, "
                              "W], weight %s, bias [Cout])",
                              name, x->name, ldm_shape_str(x, sx, sizeof sx), w->name,
                              ldm_shape_str(w, sw, sizeof sw), b ? " (with bias)" : "",
                              transposed ? "[Cin, Cout, KH, KW]" : "[Cout, Cin, KH, KW]");
    ldm_conv_geom g = {
        x->shape[0], cin, x->shape[2], x->shape[3], cout, w->shape[2], w->shape[3], stride,
        stride,      pad, pad,         0,           0};
    g.Ho = transposed ? (g.H - 1) * stride - 2 * pad + g.KH : (g.H + 2 * pad - g.KH) / stride + 1;
    g.Wo = transposed ? (g.W - 1) * stride - 2 * pad + g.KW : (g.W + 2 * pad - g.KW) / stride + 1;
    if (ldm_conv_geom_check(&g, transposed) != LDM_OK) {
        char why[256]; /* a copy: the kept message is about to be replaced */
        snprintf(why, sizeof why, "%s", ldm_last_error());
        return LDM_GRAPH_FAIL(gr, LDM_ERR_INVALID_ARGUMENT, "%s of '%s': %s", name, x->name, why);
    }
    conv_params p = {g, transposed};
    ldm_tensor *in[3] = {x, w, b};
    int shape[4] = {g.N, cout, g.Ho, g.Wo};
    ldm_node *n = ldm_graph_add_node(gr, &conv_op, LDM_PARAMS(p), name, in, b ? 3 : 2, 4, shape);
    if (!n) return NULL;
    n->scratch_fwd = ldm_conv_scratch(&g, transposed, 0);
    n->scratch_bwd = ldm_conv_scratch(&g, transposed, 1);
    return n->out[0];
}

ldm_tensor *ldm_conv2d(ldm_graph *g, ldm_tensor *x, ldm_tensor *w, ldm_tensor *b, int stride,
                       int pad) {
    return record_conv(g, x, w, b, stride, pad, 0);
}

ldm_tensor *ldm_conv_transpose2d(ldm_graph *g, ldm_tensor *x, ldm_tensor *w, ldm_tensor *b,
                                 int stride, int pad) {
    return record_conv(g, x, w, b, stride, pad, 1);
}
