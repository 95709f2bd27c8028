// cl/attention.cl: fused multi-head scaled dot-product attention for GPUs, forward and backward,
// fp32, in the FlashAttention-2 manner: a work-group per block of queries (forward, dQ) or of
// keys (dK and dV), score tiles computed cooperatively from tiles staged in local memory, an
// online softmax, and no [L, S] score matrix ever stored. The forward pass saves the log-sum-exp
// of each query's scores; the backward passes recompute the probabilities from it.
//
// Layout: q, k and v are read in place from row-major sources (a packed in-projection output):
//   q[n, i, h, d] = q_src[(n*L + i) * q_stride + q_col + h*HD + d]
//   k[n, j, h, d] = kv_src[(n*S + j) * k_stride + k_col + h*HD + d], v likewise with v_*
// and the output o [N, L, NH*HD] has heads side by side, as torch.nn.MultiheadAttention.
// Masks: causal (key j > query i is masked) and a key padding mask [N, S] (nonzero = ignore).
// A query whose keys are all masked gets a zero output (PyTorch gives NaN).
//
// -DHD=head dim, -DBQ=queries per tile, -DBK=keys per tile, -DT=work-items per side: a
// work-group is T x T work-items (ty, tx); each holds a (rows/T) x (cols/T) piece of a score
// tile (rows ty + a*T, columns tx + b*T) and a (rows/T) x ceil(HD/T) piece of its output rows
// (dims tx + e*T), in registers. BQ and BK are multiples of T; src/ops/attention.c picks them to
// fit the device's local memory. Tiles in local memory have rows padded by one float, so that
// work-items reading one column of different rows touch different banks.
#ifndef HD
#define HD 64
#endif
#ifndef BQ
#define BQ 32
#endif
#ifndef BK
#define BK 16
#endif
#ifndef T
#define T 8
#endif
#define WG (T * T)
#define HDP (HD + 1) // a staged row of q, k, v or dO
#define RD ((HD + T - 1) / T) // output dims per work-item
#define ROWS_Q (BQ / T) // query rows per work-item (forward, dQ)
#define ROWS_K (BK / T) // key rows per work-item (dK, dV)

#include "attention_common.clh"

// Stages rows [r0, r0 + rows) of head h of a row-major source into tile[rows][HDP], zeros past
// limit. Consecutive work-items read consecutive floats of a row.
inline void stage(local float *tile, const int rows, global const float *src, const ulong base,
                  const int stride, const int col, const int h, const int r0, const int limit,
                  const int lid) {
    for (int t = lid; t < rows * HD; t += WG) {
        const int r = t / HD, d = t - r * HD, j = r0 + r;
        tile[r * HDP + d] = j < limit ? src[base + (ulong)j * stride + col + h * HD + d] : 0.0f;
    }
}

// Stages lse and delta of queries [i0, i0 + BQ) of head h (-inf and 0 past L).
inline void stage_rows(local float *lt, local float *dt, global const float *lse,
                       const ulong lse_off, global const float *delta, const ulong delta_off,
                       const ulong row0, const int i0, const int L, const int lid) {
    for (int r = lid; r < BQ; r += WG) {
        const int ok = i0 + r < L;
        lt[r] = ok ? lse[lse_off + row0 + i0 + r] : -INFINITY;
        dt[r] = ok ? delta[delta_off + row0 + i0 + r] : 0.0f;
    }
}

// Whether query i may attend to key j: both exist and no mask hides j from i.
inline int visible(const int i, const int j, const int L, const int S, const int causal,
                   global const float *mask, const ulong mask_off, const int has_mask,
                   const int n) {
    return i < L && j < S && !masked(i, j, causal, mask, mask_off, has_mask, n, S);
}

// global (ceil(L/BQ)*WG, NH, N), local (WG, 1, 1).
kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attention_fwd(const int L, const int S, const int NH, const int q_stride, const int q_col,
                   const int k_stride, const int k_col, const int v_stride, const int v_col,
                   const float scale, const int causal, const int has_mask, global float *o,
                   const ulong o_off, global float *lse, const ulong lse_off,
                   global const float *q_src, const ulong q_off, global const float *kv_src,
                   const ulong kv_off, global const float *mask, const ulong mask_off) {
    local float qs[BQ * HDP], kvs[BK * HDP], ps[BQ * (BK + 1)];
    local float row_m[BQ], row_l[BQ], row_c[BQ];
    const int lid = get_local_id(0), ty = lid / T, tx = lid % T;
    const int i0 = get_group_id(0) * BQ, h = get_group_id(1), n = get_group_id(2);
    const ulong k_base = kv_off + (ulong)n * S * k_stride, v_base = kv_off + (ulong)n * S * v_stride;
    stage(qs, BQ, q_src, q_off + (ulong)n * L * q_stride, q_stride, q_col, h, i0, L, lid);
    for (int r = lid; r < BQ; r += WG) {
        row_m[r] = -INFINITY;
        row_l[r] = 0.0f;
    }
    float acc[ROWS_Q][RD];
    for (int a = 0; a < ROWS_Q; a++)
        for (int e = 0; e < RD; e++) acc[a][e] = 0.0f;
    for (int j0 = 0; j0 < S; j0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE); // the previous tile's values and probabilities are used
        stage(kvs, BK, kv_src, k_base, k_stride, k_col, h, j0, S, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        // Scores of this work-item's piece. The backward kernels compute them by the same
        // expression, so that exp(s - lse) gives back exactly the forward's probabilities.
        float s[ROWS_Q][BK / T];
        for (int a = 0; a < ROWS_Q; a++)
            for (int b = 0; b < BK / T; b++) s[a][b] = 0.0f;
        for (int d = 0; d < HD; d++)
            for (int a = 0; a < ROWS_Q; a++) {
                const float qv = qs[(ty + a * T) * HDP + d];
                for (int b = 0; b < BK / T; b++) s[a][b] += qv * kvs[(tx + b * T) * HDP + d];
            }
        for (int a = 0; a < ROWS_Q; a++)
            for (int b = 0; b < BK / T; b++) {
                const int r = ty + a * T, c = tx + b * T;
                const int on = visible(i0 + r, j0 + c, L, S, causal, mask, mask_off, has_mask, n);
                ps[r * (BK + 1) + c] = on ? s[a][b] * scale : -INFINITY;
            }
        barrier(CLK_LOCAL_MEM_FENCE); // keys used, scores written
        // One work-item per row folds the tile into its running max and sum; meanwhile all
        // stage the values where the keys were.
        for (int r = lid; r < BQ; r += WG) {
            float tile_max = -INFINITY;
            for (int c = 0; c < BK; c++) tile_max = fmax(tile_max, ps[r * (BK + 1) + c]);
            const float m = row_m[r], m_new = fmax(m, tile_max);
            const int none = m_new == -INFINITY; // nothing visible yet: add nothing
            float sum = 0.0f;
            for (int c = 0; c < BK; c++) {
                const float p = none ? 0.0f : exp(ps[r * (BK + 1) + c] - m_new);
                ps[r * (BK + 1) + c] = p;
                sum += p;
            }
            const float corr = none ? 1.0f : exp(m - m_new); // 0 when m was -inf
            row_c[r] = corr;
            row_l[r] = row_l[r] * corr + sum;
            row_m[r] = m_new;
        }
        stage(kvs, BK, kv_src, v_base, v_stride, v_col, h, j0, S, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int a = 0; a < ROWS_Q; a++) {
            const float corr = row_c[ty + a * T];
            for (int e = 0; e < RD; e++) acc[a][e] *= corr;
        }
        for (int c = 0; c < BK; c++)
            for (int a = 0; a < ROWS_Q; a++) {
                const float p = ps[(ty + a * T) * (BK + 1) + c];
                for (int e = 0; e < RD; e++) {
                    const int d = tx + e * T;
                    if (d < HD) acc[a][e] += p * kvs[c * HDP + d];
                }
            }
    }
    for (int a = 0; a < ROWS_Q; a++) {
        const int r = ty + a * T, i = i0 + r;
        if (i >= L) continue;
        const float l = row_l[r], inv = l > 0.0f ? 1.0f / l : 0.0f;
        const ulong orow = o_off + ((ulong)n * L + i) * NH * HD + h * HD;
        for (int e = 0; e < RD; e++) {
            const int d = tx + e * T;
            if (d < HD) o[orow + d] = acc[a][e] * inv;
        }
    }
    for (int r = lid; r < BQ; r += WG) {
        const int i = i0 + r;
        const float l = row_l[r];
        if (i < L) lse[lse_off + ((ulong)n * NH + h) * L + i] = l > 0.0f ? row_m[r] + log(l) : -INFINITY;
    }
}

// dK and dV: a work-group per block of BK keys, looping over all queries in tiles of BQ (q and
// dO rows with their lse and delta). global (ceil(S/BK)*WG, NH, N), local (WG, 1, 1).
kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attention_bwd_dkv(const int L, const int S, const int NH, const int q_stride, const int q_col,
                       const int k_stride, const int k_col, const int v_stride, const int v_col,
                       const float scale, const int causal, const int has_mask, const int acc,
                       global float *dkv, const ulong dkv_off, global const float *dout,
                       const ulong dout_off, global const float *q_src, const ulong q_off,
                       global const float *kv_src, const ulong kv_off, global const float *lse,
                       const ulong lse_off, global const float *delta, const ulong delta_off,
                       global const float *mask, const ulong mask_off) {
    local float ks[BK * HDP], vs[BK * HDP], qs[BQ * HDP], gs[BQ * HDP];
    local float ps[BK * (BQ + 1)], dss[BK * (BQ + 1)], lt[BQ], dt[BQ];
    const int lid = get_local_id(0), ty = lid / T, tx = lid % T;
    const int j0 = get_group_id(0) * BK, h = get_group_id(1), n = get_group_id(2);
    const ulong q_base = q_off + (ulong)n * L * q_stride, g_base = dout_off + (ulong)n * L * NH * HD;
    const ulong row0 = ((ulong)n * NH + h) * L;
    stage(ks, BK, kv_src, kv_off + (ulong)n * S * k_stride, k_stride, k_col, h, j0, S, lid);
    stage(vs, BK, kv_src, kv_off + (ulong)n * S * v_stride, v_stride, v_col, h, j0, S, lid);
    float dk[ROWS_K][RD], dv[ROWS_K][RD];
    for (int a = 0; a < ROWS_K; a++)
        for (int e = 0; e < RD; e++) dk[a][e] = dv[a][e] = 0.0f;
    for (int i0 = 0; i0 < L; i0 += BQ) {
        barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is used
        stage(qs, BQ, q_src, q_base, q_stride, q_col, h, i0, L, lid);
        stage(gs, BQ, dout, g_base, NH * HD, 0, h, i0, L, lid);
        stage_rows(lt, dt, lse, lse_off, delta, delta_off, row0, i0, L, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        float sd[ROWS_K][BQ / T], dp[ROWS_K][BQ / T];
        for (int a = 0; a < ROWS_K; a++)
            for (int b = 0; b < BQ / T; b++) sd[a][b] = dp[a][b] = 0.0f;
        for (int d = 0; d < HD; d++)
            for (int a = 0; a < ROWS_K; a++) {
                const float kv = ks[(ty + a * T) * HDP + d], vv = vs[(ty + a * T) * HDP + d];
                for (int b = 0; b < BQ / T; b++) {
                    sd[a][b] += qs[(tx + b * T) * HDP + d] * kv;
                    dp[a][b] += gs[(tx + b * T) * HDP + d] * vv;
                }
            }
        for (int a = 0; a < ROWS_K; a++)
            for (int b = 0; b < BQ / T; b++) {
                const int r = ty + a * T, c = tx + b * T;
                const int on = lt[c] > -INFINITY &&
                               visible(i0 + c, j0 + r, L, S, causal, mask, mask_off, has_mask, n);
                const float p = on ? exp(sd[a][b] * scale - lt[c]) : 0.0f;
                ps[r * (BQ + 1) + c] = p;
                dss[r * (BQ + 1) + c] = p * (dp[a][b] - dt[c]) * scale;
            }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int c = 0; c < BQ; c++)
            for (int a = 0; a < ROWS_K; a++) {
                const float p = ps[(ty + a * T) * (BQ + 1) + c];
                const float ds = dss[(ty + a * T) * (BQ + 1) + c];
                for (int e = 0; e < RD; e++) {
                    const int d = tx + e * T;
                    if (d < HD) {
                        dv[a][e] += p * gs[c * HDP + d];
                        dk[a][e] += ds * qs[c * HDP + d];
                    }
                }
            }
    }
    for (int a = 0; a < ROWS_K; a++) {
        const int j = j0 + ty + a * T;
        if (j >= S) continue;
        const ulong dkrow = dkv_off + ((ulong)n * S + j) * k_stride + k_col + h * HD;
        const ulong dvrow = dkv_off + ((ulong)n * S + j) * v_stride + v_col + h * HD;
        for (int e = 0; e < RD; e++) {
            const int d = tx + e * T;
            if (d >= HD) continue;
            dkv[dkrow + d] = acc ? dkv[dkrow + d] + dk[a][e] : dk[a][e];
            dkv[dvrow + d] = acc ? dkv[dvrow + d] + dv[a][e] : dv[a][e];
        }
    }
}

// dQ: a work-group per block of BQ queries, looping over the keys in tiles of BK.
// global (ceil(L/BQ)*WG, NH, N), local (WG, 1, 1).
kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attention_bwd_dq(const int L, const int S, const int NH, const int q_stride, const int q_col,
                      const int k_stride, const int k_col, const int v_stride, const int v_col,
                      const float scale, const int causal, const int has_mask, const int acc,
                      global float *dq, const ulong dq_off, global const float *dout,
                      const ulong dout_off, global const float *q_src, const ulong q_off,
                      global const float *kv_src, const ulong kv_off, global const float *lse,
                      const ulong lse_off, global const float *delta, const ulong delta_off,
                      global const float *mask, const ulong mask_off) {
    local float qs[BQ * HDP], gs[BQ * HDP], ks[BK * HDP], vs[BK * HDP];
    local float dss[BQ * (BK + 1)], lt[BQ], dt[BQ];
    const int lid = get_local_id(0), ty = lid / T, tx = lid % T;
    const int i0 = get_group_id(0) * BQ, h = get_group_id(1), n = get_group_id(2);
    const ulong k_base = kv_off + (ulong)n * S * k_stride, v_base = kv_off + (ulong)n * S * v_stride;
    stage(qs, BQ, q_src, q_off + (ulong)n * L * q_stride, q_stride, q_col, h, i0, L, lid);
    stage(gs, BQ, dout, dout_off + (ulong)n * L * NH * HD, NH * HD, 0, h, i0, L, lid);
    stage_rows(lt, dt, lse, lse_off, delta, delta_off, ((ulong)n * NH + h) * L, i0, L, lid);
    float dqa[ROWS_Q][RD];
    for (int a = 0; a < ROWS_Q; a++)
        for (int e = 0; e < RD; e++) dqa[a][e] = 0.0f;
    for (int j0 = 0; j0 < S; j0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is used (and the rows are staged)
        stage(ks, BK, kv_src, k_base, k_stride, k_col, h, j0, S, lid);
        stage(vs, BK, kv_src, v_base, v_stride, v_col, h, j0, S, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        float sd[ROWS_Q][BK / T], dp[ROWS_Q][BK / T];
        for (int a = 0; a < ROWS_Q; a++)
            for (int b = 0; b < BK / T; b++) sd[a][b] = dp[a][b] = 0.0f;
        for (int d = 0; d < HD; d++)
            for (int a = 0; a < ROWS_Q; a++) {
                const float qv = qs[(ty + a * T) * HDP + d], gv = gs[(ty + a * T) * HDP + d];
                for (int b = 0; b < BK / T; b++) {
                    sd[a][b] += qv * ks[(tx + b * T) * HDP + d];
                    dp[a][b] += gv * vs[(tx + b * T) * HDP + d];
                }
            }
        for (int a = 0; a < ROWS_Q; a++)
            for (int b = 0; b < BK / T; b++) {
                const int r = ty + a * T, c = tx + b * T;
                const int on = lt[r] > -INFINITY &&
                               visible(i0 + r, j0 + c, L, S, causal, mask, mask_off, has_mask, n);
                const float p = on ? exp(sd[a][b] * scale - lt[r]) : 0.0f;
                dss[r * (BK + 1) + c] = p * (dp[a][b] - dt[r]) * scale;
            }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int c = 0; c < BK; c++)
            for (int a = 0; a < ROWS_Q; a++) {
                const float ds = dss[(ty + a * T) * (BK + 1) + c];
                for (int e = 0; e < RD; e++) {
                    const int d = tx + e * T;
                    if (d < HD) dqa[a][e] += ds * ks[c * HDP + d];
                }
            }
    }
    for (int a = 0; a < ROWS_Q; a++) {
        const int i = i0 + ty + a * T;
        if (i >= L) continue;
        const ulong dqrow = dq_off + ((ulong)n * L + i) * q_stride + q_col + h * HD;
        for (int e = 0; e < RD; e++) {
            const int d = tx + e * T;
            if (d < HD) dq[dqrow + d] = acc ? dq[dqrow + d] + dqa[a][e] : dqa[a][e];
        }
    }
}
