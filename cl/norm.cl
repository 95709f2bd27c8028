// cl/norm.cl: LayerNorm and BatchNorm2d, forward and backward, fp32; and F.normalize (GroupNorm:
// cl/group_norm.cl). Statistics are two-pass (mean, then the mean of squared deviations) and
// biased, as PyTorch normalises. Forward passes save mean and rstd = 1/sqrt(var + eps) for the
// backward passes. Backward kernels take acc: 0 overwrites the gradient, 1 adds to it.
#include "common.clh"

#ifndef WG
#define WG 256 // work-group size of the reductions, a power of two
#endif

// ---- LayerNorm over the last dimension D of x [R, D]; one work-group per row ----

kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
layer_norm_fwd(const int D, const float eps, global float *y, const ulong y_off, global float *mean,
               const ulong mean_off, global float *rstd, const ulong rstd_off,
               global const float *x, const ulong x_off, global const float *gamma,
               const ulong g_off, global const float *beta, const ulong b_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int row = get_group_id(0);
    const ulong base = (ulong)row * D;
    float s = 0.0f;
    for (int i = lid; i < D; i += WG)
        s += x[x_off + base + i];
    const float mu = ldm_wg_sum(scratch, s, lid, WG) / D;
    float v = 0.0f;
    for (int i = lid; i < D; i += WG) {
        const float d = x[x_off + base + i] - mu;
        v += d * d;
    }
    const float r = rsqrt(ldm_wg_sum(scratch, v, lid, WG) / D + eps);
    if (lid == 0) {
        mean[mean_off + row] = mu;
        rstd[rstd_off + row] = r;
    }
    for (int i = lid; i < D; i += WG)
        y[y_off + base + i] = (x[x_off + base + i] - mu) * r * gamma[g_off + i] + beta[b_off + i];
}

kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
layer_norm_bwd_dx(const int D, const int acc, global float *dx, const ulong dx_off,
                  global const float *dy, const ulong dy_off, global const float *x,
                  const ulong x_off, global const float *mean, const ulong mean_off,
                  global const float *rstd, const ulong rstd_off, global const float *gamma,
                  const ulong g_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int row = get_group_id(0);
    const ulong base = (ulong)row * D;
    const float mu = mean[mean_off + row], r = rstd[rstd_off + row];
    float s1 = 0.0f, s2 = 0.0f;
    for (int i = lid; i < D; i += WG) {
        const float gy = dy[dy_off + base + i] * gamma[g_off + i];
        s1 += gy;
        s2 += gy * (x[x_off + base + i] - mu) * r;
    }
    const float m1 = ldm_wg_sum(scratch, s1, lid, WG) / D;
    const float m2 = ldm_wg_sum(scratch, s2, lid, WG) / D;
    for (int i = lid; i < D; i += WG) {
        const float gy = dy[dy_off + base + i] * gamma[g_off + i];
        const float d = r * (gy - m1 - (x[x_off + base + i] - mu) * r * m2);
        dx[dx_off + base + i] = acc ? dx[dx_off + base + i] + d : d;
    }
}

// dgamma[d] = sum_r dy * xhat, dbeta[d] = sum_r dy. Work-group (16, 16): 16 columns, the second
// dimension strides over rows.
kernel __attribute__((reqd_work_group_size(16, 16, 1))) void
layer_norm_bwd_params(const int R, const int D, const int acc_g, global float *dgamma,
                      const ulong dg_off, const int acc_b, global float *dbeta, const ulong db_off,
                      global const float *dy, const ulong dy_off, global const float *x,
                      const ulong x_off, global const float *mean, const ulong mean_off,
                      global const float *rstd, const ulong rstd_off, const int want_g,
                      const int want_b) {
    local float pg[16][17], pb[16][17];
    const int d = get_global_id(0), lx = get_local_id(0), ly = get_local_id(1);
    float sg = 0.0f, sb = 0.0f;
    if (d < D)
        for (int r = ly; r < R; r += 16) {
            const ulong o = (ulong)r * D + d;
            const float g = dy[dy_off + o];
            sg += g * (x[x_off + o] - mean[mean_off + r]) * rstd[rstd_off + r];
            sb += g;
        }
    pg[ly][lx] = sg;
    pb[ly][lx] = sb;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (ly == 0 && d < D) {
        float tg = 0.0f, tb = 0.0f;
        for (int k = 0; k < 16; k++) {
            tg += pg[k][lx];
            tb += pb[k][lx];
        }
        if (want_g) dgamma[dg_off + d] = acc_g ? dgamma[dg_off + d] + tg : tg;
        if (want_b) dbeta[db_off + d] = acc_b ? dbeta[db_off + d] + tb : tb;
    }
}

// ---- BatchNorm2d over x [N, C, P]: statistics per channel over N and P ----

// Training: batch statistics, saved, and the running ones updated in place:
// running = (1 - momentum) * running + momentum * batch (the variance unbiased, as PyTorch).
// Evaluation (training 0): the running statistics normalise; mean/rstd save what was used.
kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
batch_norm_fwd(const int N, const int C, const int P, const float eps, const float momentum,
               const int training, const int gated, global const float *gate,
               const ulong gate_off, global float *y, const ulong y_off, global float *mean,
               const ulong mean_off, global float *rstd, const ulong rstd_off,
               global const float *x, const ulong x_off, global const float *gamma,
               const ulong g_off, global const float *beta, const ulong b_off,
               global float *run_mean, const ulong rm_off, global float *run_var,
               const ulong rv_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int c = get_group_id(0), M = N * P;
    // The batch statistics are computed in evaluation mode too: barriers must not sit inside a
    // branch (pocl 3.1 runs such a branch's "lid == 0" part on every work-item).
    float s = 0.0f;
    for (int i = lid; i < M; i += WG) s += x[x_off + ((ulong)(i / P) * C + c) * P + i % P];
    const float batch_mu = ldm_wg_sum(scratch, s, lid, WG) / M;
    float v = 0.0f;
    for (int i = lid; i < M; i += WG) {
        const float d = x[x_off + ((ulong)(i / P) * C + c) * P + i % P] - batch_mu;
        v += d * d;
    }
    const float var = ldm_wg_sum(scratch, v, lid, WG) / M;
    float mu, r;
    if (training) {
        mu = batch_mu;
        r = rsqrt(var + eps);
        // gated: the update's momentum scaled by gate[0] (0: the running statistics stay as
        // they are; 1: as ungated)
        const float m = gated ? momentum * gate[gate_off] : momentum;
        if (lid == 0) {
            run_mean[rm_off + c] = (1.0f - m) * run_mean[rm_off + c] + m * mu;
            const float unbiased = M > 1 ? var * M / (M - 1) : var;
            run_var[rv_off + c] = (1.0f - m) * run_var[rv_off + c] + m * unbiased;
        }
    } else {
        mu = run_mean[rm_off + c];
        r = rsqrt(run_var[rv_off + c] + eps);
    }
    if (lid == 0) {
        mean[mean_off + c] = mu;
        rstd[rstd_off + c] = r;
    }
    const float ga = gamma[g_off + c], be = beta[b_off + c];
    for (int i = lid; i < M; i += WG) {
        const ulong o = ((ulong)(i / P) * C + c) * P + i % P;
        y[y_off + o] = (x[x_off + o] - mu) * r * ga + be;
    }
}

// One work-group per channel: dgamma, dbeta and (training) dx with the batch-statistics terms,
// (evaluation) dx = dy * gamma * rstd.
kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
batch_norm_bwd(const int N, const int C, const int P, const int training, const int acc_x,
               global float *dx, const ulong dx_off, const int acc_g, global float *dgamma,
               const ulong dg_off, const int acc_b, global float *dbeta, const ulong db_off,
               global const float *dy, const ulong dy_off, global const float *x, const ulong x_off,
               global const float *mean, const ulong mean_off, global const float *rstd,
               const ulong rstd_off, global const float *gamma, const ulong g_off, const int want_x,
               const int want_g, const int want_b) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int c = get_group_id(0), M = N * P;
    const float mu = mean[mean_off + c], r = rstd[rstd_off + c], ga = gamma[g_off + c];
    float sg = 0.0f, sb = 0.0f;
    for (int i = lid; i < M; i += WG) {
        const ulong o = ((ulong)(i / P) * C + c) * P + i % P;
        const float d = dy[dy_off + o];
        sg += d * (x[x_off + o] - mu) * r;
        sb += d;
    }
    sg = ldm_wg_sum(scratch, sg, lid, WG);
    sb = ldm_wg_sum(scratch, sb, lid, WG);
    if (lid == 0) {
        if (want_g) dgamma[dg_off + c] = acc_g ? dgamma[dg_off + c] + sg : sg;
        if (want_b) dbeta[db_off + c] = acc_b ? dbeta[db_off + c] + sb : sb;
    }
    if (!want_x) return;
    for (int i = lid; i < M; i += WG) {
        const ulong o = ((ulong)(i / P) * C + c) * P + i % P;
        const float d = dy[dy_off + o];
        const float v =
            training ? ga * r * (d - sb / M - (x[x_off + o] - mu) * r * sg / M) : d * ga * r;
        dx[dx_off + o] = acc_x ? dx[dx_off + o] + v : v;
    }
}

// F.normalize(x, dim=1): y[n, c, p] = x[n, c, p] / d[n, p], d = max(||x[n, :, p]||_2, eps).
// One work-item per (n, p); d is saved for the backward.
kernel void l2norm_fwd(const int N, const int C, const int P, const float eps, global float *y,
                       const ulong y_off, global float *d, const ulong d_off,
                       global const float *x, const ulong x_off) {
    const int i = get_global_id(0);
    if (i >= N * P) return;
    const ulong base = (ulong)(i / P) * C * P + i % P;
    float s = 0.0f;
    for (int c = 0; c < C; c++) {
        const float v = x[x_off + base + (ulong)c * P];
        s += v * v;
    }
    const float den = fmax(sqrt(s), eps);
    d[d_off + i] = den;
    for (int c = 0; c < C; c++)
        y[y_off + base + (ulong)c * P] = x[x_off + base + (ulong)c * P] / den;
}

// dx = (dy - y <dy, y>) / d where the norm exceeds eps, dy / d where it was clamped to eps.
kernel void l2norm_bwd(const int N, const int C, const int P, const float eps, const int acc,
                       global float *dx, const ulong dx_off, global const float *dy,
                       const ulong dy_off, global const float *x, const ulong x_off,
                       global const float *d, const ulong d_off) {
    const int i = get_global_id(0);
    if (i >= N * P) return;
    const ulong base = (ulong)(i / P) * C * P + i % P;
    const float den = d[d_off + i];
    float dot = 0.0f;
    if (den > eps)
        for (int c = 0; c < C; c++) {
            const ulong o = base + (ulong)c * P;
            dot += dy[dy_off + o] * (x[x_off + o] / den);
        }
    for (int c = 0; c < C; c++) {
        const ulong o = base + (ulong)c * P;
        const float g = (dy[dy_off + o] - (x[x_off + o] / den) * dot) / den;
        dx[dx_off + o] = acc ? dx[dx_off + o] + g : g;
    }
}
