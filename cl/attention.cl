// cl/attention.cl: fused multi-head scaled dot-product attention, forward and backward, fp32,
// with an online softmax: no [L, S] score matrix is ever stored. The forward pass saves the
// log-sum-exp of each query's scores; the backward passes recompute the probabilities from it.
//
// Layout: q, k and v are read in place from row-major sources (a packed in-projection output):
//   q[n, i, h, d] = q_src[(n*L + i) * q_stride + q_col + h*HD + d]
//   k[n, j, h, d] = kv_src[(n*S + j) * k_stride + k_col + h*HD + d], v likewise with v_*
// and the output o [N, L, NH*HD] has heads side by side, as torch.nn.MultiheadAttention.
// Masks: causal (key j > query i is masked) and a key padding mask [N, S] (nonzero = ignore).
// A query whose keys are all masked gets a zero output (PyTorch gives NaN).
//
// -DHD=head dim (private arrays), -DBQ=queries per work-group (one per work-item), -DBK=keys per
// tile staged in local memory.
#ifndef HD
#define HD 64
#endif
#ifndef BQ
#define BQ 64
#endif
#ifndef BK
#define BK 32
#endif

#include "attention_common.clh"

// Stages rows [j0, j0 + BK) of head h of a key or value source into tile[BK][HD] (zeros past S).
inline void load_tile(local float *tile, global const float *src, const ulong base,
                      const int stride, const int col, const int h, const int j0, const int S,
                      const int lid, const int nthreads) {
    for (int t = lid; t < BK * HD; t += nthreads) {
        const int r = t / HD, d = t % HD, j = j0 + r;
        tile[t] = j < S ? src[base + (ulong)j * stride + col + h * HD + d] : 0.0f;
    }
}

// One work-item per query. global (ceil(L/BQ)*BQ, NH, N), local (BQ, 1, 1).
kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void attention_fwd(const int L, const int S, const int NH, const int q_stride, const int q_col,
                   const int k_stride, const int k_col, const int v_stride, const int v_col,
                   const float scale, const int causal, const int has_mask, global float *o,
                   const ulong o_off, global float *lse, const ulong lse_off,
                   global const float *q_src, const ulong q_off, global const float *kv_src,
                   const ulong kv_off, global const float *mask, const ulong mask_off) {
    local float kt[BK * HD], vt[BK * HD];
    const int lid = get_local_id(0), i = get_group_id(0) * BQ + lid;
    const int h = get_global_id(1), n = get_global_id(2);
    const int qi = min(i, L - 1); // rows past L compute on a valid row and write nothing
    float q[HD], acc[HD], s[BK];
    const ulong qrow = q_off + ((ulong)n * L + qi) * q_stride + q_col + h * HD;
    for (int d = 0; d < HD; d++) {
        q[d] = q_src[qrow + d];
        acc[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const ulong k_base = kv_off + (ulong)n * S * k_stride, v_base = kv_off + (ulong)n * S * v_stride;
    for (int j0 = 0; j0 < S; j0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        load_tile(kt, kv_src, k_base, k_stride, k_col, h, j0, S, lid, BQ);
        load_tile(vt, kv_src, v_base, v_stride, v_col, h, j0, S, lid, BQ);
        barrier(CLK_LOCAL_MEM_FENCE);
        float tile_max = -INFINITY;
        for (int r = 0; r < BK; r++) {
            const int j = j0 + r;
            float dot = 0.0f;
            for (int d = 0; d < HD; d++) dot += q[d] * kt[r * HD + d];
            const int off = j >= S || masked(qi, j, causal, mask, mask_off, has_mask, n, S);
            // The backward kernels compute scores by the same expression, so that exp(s - lse)
            // gives back exactly the forward's probabilities.
            s[r] = off ? -INFINITY : dot * scale;
            tile_max = fmax(tile_max, s[r]);
        }
        // No branch around the barriers above: a tile with nothing to add just adds nothing.
        if (tile_max > -INFINITY) {
            const float m_new = fmax(m, tile_max);
            const float corr = exp(m - m_new); // 0 when m was -inf
            l *= corr;
            for (int d = 0; d < HD; d++) acc[d] *= corr;
            for (int r = 0; r < BK; r++) {
                const float p = exp(s[r] - m_new); // 0 for masked keys
                l += p;
                for (int d = 0; d < HD; d++) acc[d] += p * vt[r * HD + d];
            }
            m = m_new;
        }
    }
    if (i >= L) return;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const ulong orow = o_off + ((ulong)n * L + i) * NH * HD + h * HD;
    for (int d = 0; d < HD; d++) o[orow + d] = acc[d] * inv;
    lse[lse_off + ((ulong)n * NH + h) * L + i] = l > 0.0f ? m + log(l) : -INFINITY;
}

// dK and dV: one work-item per key, looping over all queries in tiles of BK staged in local
// memory (q and dO rows, with their lse and delta). global (ceil(S/BQ)*BQ, NH, N).
kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void attention_bwd_dkv(const int L, const int S, const int NH, const int q_stride, const int q_col,
                       const int k_stride, const int k_col, const int v_stride, const int v_col,
                       const float scale, const int causal, const int has_mask, const int acc,
                       global float *dkv, const ulong dkv_off, global const float *dout,
                       const ulong dout_off, global const float *q_src, const ulong q_off,
                       global const float *kv_src, const ulong kv_off, global const float *lse,
                       const ulong lse_off, global const float *delta, const ulong delta_off,
                       global const float *mask, const ulong mask_off) {
    local float qt[BK * HD], dot_[BK * HD], lt[BK], dt[BK];
    const int lid = get_local_id(0), j = get_group_id(0) * BQ + lid;
    const int h = get_global_id(1), n = get_global_id(2);
    const int kj = min(j, S - 1);
    float k[HD], v[HD], dk[HD], dv[HD];
    const ulong krow = kv_off + ((ulong)n * S + kj) * k_stride + k_col + h * HD;
    const ulong vrow = kv_off + ((ulong)n * S + kj) * v_stride + v_col + h * HD;
    for (int d = 0; d < HD; d++) {
        k[d] = kv_src[krow + d];
        v[d] = kv_src[vrow + d];
        dk[d] = 0.0f;
        dv[d] = 0.0f;
    }
    const int key_off = masked(0, kj, 0, mask, mask_off, has_mask, n, S); // padding only
    for (int i0 = 0; i0 < L; i0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int t = lid; t < BK * HD; t += BQ) {
            const int r = t / HD, d = t % HD, i = i0 + r;
            const int ok = i < L;
            qt[t] = ok ? q_src[q_off + ((ulong)n * L + i) * q_stride + q_col + h * HD + d] : 0.0f;
            dot_[t] = ok ? dout[dout_off + ((ulong)n * L + i) * NH * HD + h * HD + d] : 0.0f;
        }
        for (int r = lid; r < BK; r += BQ) {
            const int i = i0 + r;
            const ulong si = ((ulong)n * NH + h) * L + i;
            lt[r] = i < L ? lse[lse_off + si] : -INFINITY;
            dt[r] = i < L ? delta[delta_off + si] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int r = 0; r < BK; r++) {
            const int i = i0 + r;
            if (i >= L || key_off || (causal && kj > i) || lt[r] == -INFINITY) continue;
            float sdot = 0.0f, dp = 0.0f;
            for (int d = 0; d < HD; d++) {
                sdot += qt[r * HD + d] * k[d];
                dp += dot_[r * HD + d] * v[d];
            }
            const float p = exp(sdot * scale - lt[r]);
            const float ds = p * (dp - dt[r]) * scale;
            for (int d = 0; d < HD; d++) {
                dv[d] += p * dot_[r * HD + d];
                dk[d] += ds * qt[r * HD + d];
            }
        }
    }
    if (j >= S) return;
    const ulong dkrow = dkv_off + ((ulong)n * S + j) * k_stride + k_col + h * HD;
    const ulong dvrow = dkv_off + ((ulong)n * S + j) * v_stride + v_col + h * HD;
    for (int d = 0; d < HD; d++) {
        dkv[dkrow + d] = acc ? dkv[dkrow + d] + dk[d] : dk[d];
        dkv[dvrow + d] = acc ? dkv[dvrow + d] + dv[d] : dv[d];
    }
}

// dQ: one work-item per query, looping over the keys in tiles. global (ceil(L/BQ)*BQ, NH, N).
kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void attention_bwd_dq(const int L, const int S, const int NH, const int q_stride, const int q_col,
                      const int k_stride, const int k_col, const int v_stride, const int v_col,
                      const float scale, const int causal, const int has_mask, const int acc,
                      global float *dq, const ulong dq_off, global const float *dout,
                      const ulong dout_off, global const float *q_src, const ulong q_off,
                      global const float *kv_src, const ulong kv_off, global const float *lse,
                      const ulong lse_off, global const float *delta, const ulong delta_off,
                      global const float *mask, const ulong mask_off) {
    local float kt[BK * HD], vt[BK * HD];
    const int lid = get_local_id(0), i = get_group_id(0) * BQ + lid;
    const int h = get_global_id(1), n = get_global_id(2);
    const int qi = min(i, L - 1);
    float q[HD], g[HD], dqa[HD];
    const ulong qrow = q_off + ((ulong)n * L + qi) * q_stride + q_col + h * HD;
    const ulong grow = dout_off + ((ulong)n * L + qi) * NH * HD + h * HD;
    for (int d = 0; d < HD; d++) {
        q[d] = q_src[qrow + d];
        g[d] = dout[grow + d];
        dqa[d] = 0.0f;
    }
    const ulong si = ((ulong)n * NH + h) * L + qi;
    const float lq = lse[lse_off + si], dl = delta[delta_off + si];
    const ulong k_base = kv_off + (ulong)n * S * k_stride, v_base = kv_off + (ulong)n * S * v_stride;
    for (int j0 = 0; j0 < S; j0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        load_tile(kt, kv_src, k_base, k_stride, k_col, h, j0, S, lid, BQ);
        load_tile(vt, kv_src, v_base, v_stride, v_col, h, j0, S, lid, BQ);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int r = 0; r < BK && lq > -INFINITY; r++) {
            const int j = j0 + r;
            if (j >= S || masked(qi, j, causal, mask, mask_off, has_mask, n, S)) continue;
            float sdot = 0.0f, dp = 0.0f;
            for (int d = 0; d < HD; d++) {
                sdot += q[d] * kt[r * HD + d];
                dp += g[d] * vt[r * HD + d];
            }
            const float p = exp(sdot * scale - lq);
            const float ds = p * (dp - dl) * scale;
            for (int d = 0; d < HD; d++) dqa[d] += ds * kt[r * HD + d];
        }
    }
    if (i >= L) return;
    const ulong dqrow = dq_off + ((ulong)n * L + i) * q_stride + q_col + h * HD;
    for (int d = 0; d < HD; d++) dq[dqrow + d] = acc ? dq[dqrow + d] + dqa[d] : dqa[d];
}
