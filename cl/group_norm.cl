// cl/group_norm.cl: GroupNorm forward and backward, fp32: one work-group per (sample, group), or
// (the GPU layout at small batch) each group's sums split over several work-groups. Statistics are
// two-pass (mean, then the mean of squared deviations) and biased, as PyTorch normalises; the
// forward saves mean and rstd = 1/sqrt(var + eps) for the backward. Backward kernels take acc:
// 0 overwrites the gradient, 1 adds to it.
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
