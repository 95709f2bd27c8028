// cl/norm.cl: GroupNorm, LayerNorm and BatchNorm2d, forward and backward, fp32; and F.normalize.
// Statistics are two-pass (mean, then the mean of squared deviations) and biased, as PyTorch
// normalises. Forward passes save mean and rstd = 1/sqrt(var + eps) for the backward passes.
// Backward kernels take acc: 0 overwrites the gradient, 1 adds to it.
#include "common.clh"

#ifndef WG
#define WG 256 // work-group size of the reductions, a power of two
#endif

// ---- GroupNorm: x [N, C, P] (P = H*W), G groups of C/G channels; one work-group per (n, g) ----
// (or, split, several per group: see below). The sums over a range [b, e) of a group's or a
// channel's elements are shared by both; every work-item of the group must call them.

// The mean of x[base + i], i in [b, e), and the sum of squared deviations from it (two-pass):
// *mu and *m2 (0 and 0 for an empty range).
inline void range_mean_m2(global const float *x, const ulong base, const int b, const int e,
                          local float *scratch, const uint lid, float *mu, float *m2) {
    float s = 0.0f;
    for (int i = b + lid; i < e; i += WG)
        s += x[base + i];
    const float total = ldm_wg_sum(scratch, s, lid, WG);
    const float m = e > b ? total / (e - b) : 0.0f;
    float v = 0.0f;
    for (int i = b + lid; i < e; i += WG) {
        const float d = x[base + i] - m;
        v += d * d;
    }
    *mu = m;
    *m2 = ldm_wg_sum(scratch, v, lid, WG);
}

// Over elements [b, e) of the group starting at element base, whose first channel is c0: the
// sums of gy = dy*gamma (*s1) and of gy*xhat (*s2).
inline void range_dx_sums(const int b, const int e, const int P, const int c0, const ulong base,
                          global const float *dy, const ulong dy_off, global const float *x,
                          const ulong x_off, global const float *gamma, const ulong g_off,
                          const float mu, const float r, local float *scratch, const uint lid,
                          float *s1, float *s2) {
    float a1 = 0.0f, a2 = 0.0f;
    for (int i = b + lid; i < e; i += WG) {
        const float gy = dy[dy_off + base + i] * gamma[g_off + c0 + i / P];
        a1 += gy;
        a2 += gy * (x[x_off + base + i] - mu) * r;
    }
    *s1 = ldm_wg_sum(scratch, a1, lid, WG);
    *s2 = ldm_wg_sum(scratch, a2, lid, WG);
}

// Over elements i = n*P + p in [b, e) of channel c: the sums of dy*xhat (*sg) and dy (*sb).
inline void channel_param_sums(const int b, const int e, const int C, const int P, const int G,
                               const int c, global const float *dy, const ulong dy_off,
                               global const float *x, const ulong x_off,
                               global const float *mean, const ulong mean_off,
                               global const float *rstd, const ulong rstd_off,
                               local float *scratch, const uint lid, float *sg, float *sb) {
    const int g = c / (C / G);
    float ag = 0.0f, ab = 0.0f;
    for (int i = b + lid; i < e; i += WG) {
        const int n = i / P, p = i % P;
        const ulong o = ((ulong)n * C + c) * P + p;
        const float d = dy[dy_off + o];
        ag += d * (x[x_off + o] - mean[mean_off + n * G + g]) * rstd[rstd_off + n * G + g];
        ab += d;
    }
    *sg = ldm_wg_sum(scratch, ag, lid, WG);
    *sb = ldm_wg_sum(scratch, ab, lid, WG);
}

kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
group_norm_fwd(const int C, const int P, const int G, const float eps, global float *y,
               const ulong y_off, global float *mean, const ulong mean_off, global float *rstd,
               const ulong rstd_off, global const float *x, const ulong x_off,
               global const float *gamma, const ulong g_off, global const float *beta,
               const ulong b_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int ng = get_group_id(0), g = ng % G, cpg = C / G, M = cpg * P;
    const ulong base = (ulong)ng * M; // the group's elements are contiguous
    float mu, m2;
    range_mean_m2(x, x_off + base, 0, M, scratch, lid, &mu, &m2);
    const float r = rsqrt(m2 / M + eps);
    if (lid == 0) {
        mean[mean_off + ng] = mu;
        rstd[rstd_off + ng] = r;
    }
    for (int i = lid; i < M; i += WG) {
        const int c = g * cpg + i / P;
        y[y_off + base + i] = (x[x_off + base + i] - mu) * r * gamma[g_off + c] + beta[b_off + c];
    }
}

// dx = rstd * (dy*gamma - mean(dy*gamma) - xhat * mean(dy*gamma*xhat)) over the group
kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
group_norm_bwd_dx(const int C, const int P, const int G, const int acc, global float *dx,
                  const ulong dx_off, global const float *dy, const ulong dy_off,
                  global const float *x, const ulong x_off, global const float *mean,
                  const ulong mean_off, global const float *rstd, const ulong rstd_off,
                  global const float *gamma, const ulong g_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int ng = get_group_id(0), g = ng % G, cpg = C / G, M = cpg * P;
    const ulong base = (ulong)ng * M;
    const float mu = mean[mean_off + ng], r = rstd[rstd_off + ng];
    float s1, s2;
    range_dx_sums(0, M, P, g * cpg, base, dy, dy_off, x, x_off, gamma, g_off, mu, r, scratch, lid,
                  &s1, &s2);
    const float m1 = s1 / M, m2 = s2 / M;
    for (int i = lid; i < M; i += WG) {
        const float gy = dy[dy_off + base + i] * gamma[g_off + g * cpg + i / P];
        const float xhat = (x[x_off + base + i] - mu) * r;
        const float d = r * (gy - m1 - xhat * m2);
        dx[dx_off + base + i] = acc ? dx[dx_off + base + i] + d : d;
    }
}

// dgamma[c] = sum_{n,p} dy * xhat, dbeta[c] = sum_{n,p} dy; one work-group per channel.
kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
group_norm_bwd_params(const int N, const int C, const int P, const int G, const int acc_g,
                      global float *dgamma, const ulong dg_off, const int acc_b,
                      global float *dbeta, const ulong db_off, global const float *dy,
                      const ulong dy_off, global const float *x, const ulong x_off,
                      global const float *mean, const ulong mean_off, global const float *rstd,
                      const ulong rstd_off, const int want_g, const int want_b) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int c = get_group_id(0);
    float sg, sb;
    channel_param_sums(0, N * P, C, P, G, c, dy, dy_off, x, x_off, mean, mean_off, rstd, rstd_off,
                       scratch, lid, &sg, &sb);
    if (lid == 0) {
        if (want_g) dgamma[dg_off + c] = acc_g ? dgamma[dg_off + c] + sg : sg;
        if (want_b) dbeta[db_off + c] = acc_b ? dbeta[db_off + c] + sb : sb;
    }
}

// ---- GroupNorm split (the GPU layout at small batch): each group's M = (C/G)*P elements in
// `splits` chunks of ceil(M / splits), one work-group per (chunk, group): global
// (splits*WG, N*G), local (WG, 1). The chunks' statistics are merged by Chan's rule. ----

// The chunk [*b, *e) of split s of a group of M elements.
inline void split_range(const int M, const int splits, const int s, int *b, int *e) {
    const int chunk = (M + splits - 1) / splits;
    *b = min(M, s * chunk);
    *e = min(M, *b + chunk);
}

// part[(ng*splits + s)*3 + 0..2] = the chunk's count, mean and sum of squared deviations from
// its mean (two-pass, as the unsplit kernel).
kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
group_norm_split_stats(const int C, const int P, const int G, const int splits, global float *part,
                       const ulong part_off, global const float *x, const ulong x_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int s = get_group_id(0), ng = get_group_id(1), M = (C / G) * P;
    int b, e;
    split_range(M, splits, s, &b, &e);
    float mu, m2;
    range_mean_m2(x, x_off + (ulong)ng * M, b, e, scratch, lid, &mu, &m2);
    if (lid == 0) {
        const ulong o = part_off + ((ulong)ng * splits + s) * 3;
        part[o] = (float)(e - b);
        part[o + 1] = mu;
        part[o + 2] = m2;
    }
}

// mean and rstd of each group from its chunks. global (N*G).
kernel void group_norm_split_finish(const int NG, const int splits, const float eps,
                                    global float *mean, const ulong mean_off, global float *rstd,
                                    const ulong rstd_off, global const float *part,
                                    const ulong part_off) {
    const int ng = get_global_id(0);
    if (ng >= NG) return;
    float n = 0.0f, mu = 0.0f, m2 = 0.0f;
    for (int s = 0; s < splits; s++) {
        const ulong o = part_off + ((ulong)ng * splits + s) * 3;
        const float nb = part[o];
        if (nb == 0.0f) continue;
        const float delta = part[o + 1] - mu, nn = n + nb;
        mu += delta * (nb / nn);
        m2 += part[o + 2] + delta * delta * (n * nb / nn);
        n = nn;
    }
    mean[mean_off + ng] = mu;
    rstd[rstd_off + ng] = rsqrt(m2 / n + eps);
}

// y = (x - mean) * rstd * gamma + beta, one work-item per element of x [N, C, P].
kernel void group_norm_apply(const int total, const int C, const int P, const int G,
                             global float *y, const ulong y_off, global const float *x,
                             const ulong x_off, global const float *mean, const ulong mean_off,
                             global const float *rstd, const ulong rstd_off,
                             global const float *gamma, const ulong g_off,
                             global const float *beta, const ulong b_off) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const int c = (i / P) % C, ng = (i / (C * P)) * G + c / (C / G);
    y[y_off + i] =
        (x[x_off + i] - mean[mean_off + ng]) * rstd[rstd_off + ng] * gamma[g_off + c] + beta[b_off + c];
}

// part[(ng*splits + s)*2 + 0..1] = the chunk's sums of dy*gamma and dy*gamma*xhat.
kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
group_norm_bwd_split_sums(const int C, const int P, const int G, const int splits,
                          global float *part, const ulong part_off, global const float *dy,
                          const ulong dy_off, global const float *x, const ulong x_off,
                          global const float *mean, const ulong mean_off,
                          global const float *rstd, const ulong rstd_off,
                          global const float *gamma, const ulong g_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int s = get_group_id(0), ng = get_group_id(1), g = ng % G, cpg = C / G, M = cpg * P;
    const ulong base = (ulong)ng * M;
    const float mu = mean[mean_off + ng], r = rstd[rstd_off + ng];
    int b, e;
    split_range(M, splits, s, &b, &e);
    float s1, s2;
    range_dx_sums(b, e, P, g * cpg, base, dy, dy_off, x, x_off, gamma, g_off, mu, r, scratch, lid,
                  &s1, &s2);
    if (lid == 0) {
        const ulong o = part_off + ((ulong)ng * splits + s) * 2;
        part[o] = s1;
        part[o + 1] = s2;
    }
}

// means[ng*2 + 0..1] = the group's means of dy*gamma and dy*gamma*xhat. global (N*G).
kernel void group_norm_bwd_split_finish(const int NG, const int splits, const int M,
                                        global float *means, const ulong means_off,
                                        global const float *part, const ulong part_off) {
    const int ng = get_global_id(0);
    if (ng >= NG) return;
    float s1 = 0.0f, s2 = 0.0f;
    for (int s = 0; s < splits; s++) {
        s1 += part[part_off + ((ulong)ng * splits + s) * 2];
        s2 += part[part_off + ((ulong)ng * splits + s) * 2 + 1];
    }
    means[means_off + (ulong)ng * 2] = s1 / M;
    means[means_off + (ulong)ng * 2 + 1] = s2 / M;
}

// dx from the group means, one work-item per element.
kernel void group_norm_bwd_split_dx(const int total, const int C, const int P, const int G,
                                    const int acc, global float *dx, const ulong dx_off,
                                    global const float *dy, const ulong dy_off,
                                    global const float *x, const ulong x_off,
                                    global const float *mean, const ulong mean_off,
                                    global const float *rstd, const ulong rstd_off,
                                    global const float *gamma, const ulong g_off,
                                    global const float *means, const ulong means_off) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const int c = (i / P) % C, ng = (i / (C * P)) * G + c / (C / G);
    const float r = rstd[rstd_off + ng];
    const float gy = dy[dy_off + i] * gamma[g_off + c];
    const float xhat = (x[x_off + i] - mean[mean_off + ng]) * r;
    const float d = r * (gy - means[means_off + (ulong)ng * 2] - xhat * means[means_off + (ulong)ng * 2 + 1]);
    dx[dx_off + i] = acc ? dx[dx_off + i] + d : d;
}

// The parameter gradients split likewise: channel c's N*P elements in `splits` chunks, one
// work-group per (chunk, channel): global (splits*WG, C); part[(c*splits + s)*2 + 0..1] = the
// chunk's sums of dy*xhat and dy.
kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
group_norm_bwd_params_split_sums(const int N, const int C, const int P, const int G,
                                 const int splits, global float *part, const ulong part_off,
                                 global const float *dy, const ulong dy_off,
                                 global const float *x, const ulong x_off,
                                 global const float *mean, const ulong mean_off,
                                 global const float *rstd, const ulong rstd_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int s = get_group_id(0), c = get_group_id(1);
    int b, e;
    split_range(N * P, splits, s, &b, &e);
    float sg, sb;
    channel_param_sums(b, e, C, P, G, c, dy, dy_off, x, x_off, mean, mean_off, rstd, rstd_off,
                       scratch, lid, &sg, &sb);
    if (lid == 0) {
        const ulong o = part_off + ((ulong)c * splits + s) * 2;
        part[o] = sg;
        part[o + 1] = sb;
    }
}

// dgamma, dbeta from the chunks' sums. global (C).
kernel void group_norm_bwd_params_split_finish(const int C, const int splits, const int acc_g,
                                               global float *dgamma, const ulong dg_off,
                                               const int acc_b, global float *dbeta,
                                               const ulong db_off, global const float *part,
                                               const ulong part_off, const int want_g,
                                               const int want_b) {
    const int c = get_global_id(0);
    if (c >= C) return;
    float sg = 0.0f, sb = 0.0f;
    for (int s = 0; s < splits; s++) {
        sg += part[part_off + ((ulong)c * splits + s) * 2];
        sb += part[part_off + ((ulong)c * splits + s) * 2 + 1];
    }
    if (want_g) dgamma[dg_off + c] = acc_g ? dgamma[dg_off + c] + sg : sg;
    if (want_b) dbeta[db_off + c] = acc_b ? dbeta[db_off + c] + sb : sb;
}

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
