// cl/attention_rows.cl: the kernels of cl/attention.cl laid out for CPU drivers (pocl), with the
// same names, arguments, layout, masks and results (up to rounding). There, staging key and
// value tiles in local memory costs barriers, and the private arrays each work-item keeps across
// them cost copies; here every work-item reads its keys and values straight from global memory
// (the caches hold them) and no barrier is needed. Scores are computed by the same expressions
// in the forward and backward kernels, so exp(s - lse) gives back the forward's probabilities.
// Launched over (L or S, NH, N) with any work-group size.
//
// -DHD=head dim (private arrays), -DBK=keys per block of the online softmax.
#ifndef HD
#define HD 64
#endif
#ifndef BK
#define BK 32
#endif

#include "attention_common.clh"

// One work-item per query.
kernel void attention_fwd(const int L, const int S, const int NH, const int q_stride,
                          const int q_col, const int k_stride, const int k_col, const int v_stride,
                          const int v_col, const float scale, const int causal, const int has_mask,
                          global float *o, const ulong o_off, global float *lse,
                          const ulong lse_off, global const float *q_src, const ulong q_off,
                          global const float *kv_src, const ulong kv_off, global const float *mask,
                          const ulong mask_off) {
    const int i = get_global_id(0), h = get_global_id(1), n = get_global_id(2);
    if (i >= L) return;
    float q[HD], acc[HD], s[BK];
    const ulong qrow = q_off + ((ulong)n * L + i) * q_stride + q_col + h * HD;
    for (int d = 0; d < HD; d++) {
        q[d] = q_src[qrow + d];
        acc[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const ulong k_base = kv_off + (ulong)n * S * k_stride + k_col + h * HD;
    const ulong v_base = kv_off + (ulong)n * S * v_stride + v_col + h * HD;
    for (int j0 = 0; j0 < S; j0 += BK) {
        const int nk = min(BK, S - j0);
        float block_max = -INFINITY;
        for (int r = 0; r < nk; r++) {
            const int j = j0 + r;
            global const float *kr = kv_src + k_base + (ulong)j * k_stride;
            float dot = 0.0f;
            for (int d = 0; d < HD; d++) dot += q[d] * kr[d];
            s[r] = masked(i, j, causal, mask, mask_off, has_mask, n, S) ? -INFINITY : dot * scale;
            block_max = fmax(block_max, s[r]);
        }
        if (block_max == -INFINITY) continue;
        const float m_new = fmax(m, block_max);
        const float corr = exp(m - m_new); // 0 when m was -inf
        l *= corr;
        for (int d = 0; d < HD; d++) acc[d] *= corr;
        for (int r = 0; r < nk; r++) {
            const float p = exp(s[r] - m_new); // 0 for masked keys
            global const float *vr = kv_src + v_base + (ulong)(j0 + r) * v_stride;
            l += p;
            for (int d = 0; d < HD; d++) acc[d] += p * vr[d];
        }
        m = m_new;
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const ulong orow = o_off + ((ulong)n * L + i) * NH * HD + h * HD;
    for (int d = 0; d < HD; d++) o[orow + d] = acc[d] * inv;
    lse[lse_off + ((ulong)n * NH + h) * L + i] = l > 0.0f ? m + log(l) : -INFINITY;
}

// dK and dV: one work-item per key, looping over all queries.
kernel void attention_bwd_dkv(const int L, const int S, const int NH, const int q_stride,
                              const int q_col, const int k_stride, const int k_col,
                              const int v_stride, const int v_col, const float scale,
                              const int causal, const int has_mask, const int acc,
                              global float *dkv, const ulong dkv_off, global const float *dout,
                              const ulong dout_off, global const float *q_src, const ulong q_off,
                              global const float *kv_src, const ulong kv_off,
                              global const float *lse, const ulong lse_off,
                              global const float *delta, const ulong delta_off,
                              global const float *mask, const ulong mask_off) {
    const int j = get_global_id(0), h = get_global_id(1), n = get_global_id(2);
    if (j >= S) return;
    float k[HD], v[HD], dk[HD], dv[HD];
    const ulong krow = kv_off + ((ulong)n * S + j) * k_stride + k_col + h * HD;
    const ulong vrow = kv_off + ((ulong)n * S + j) * v_stride + v_col + h * HD;
    for (int d = 0; d < HD; d++) {
        k[d] = kv_src[krow + d];
        v[d] = kv_src[vrow + d];
        dk[d] = 0.0f;
        dv[d] = 0.0f;
    }
    if (!masked(0, j, 0, mask, mask_off, has_mask, n, S)) { // padding only; causal per query
        for (int i = causal ? j : 0; i < L; i++) {
            const ulong si = ((ulong)n * NH + h) * L + i;
            const float li = lse[lse_off + si];
            if (li == -INFINITY) continue;
            global const float *qr = q_src + q_off + ((ulong)n * L + i) * q_stride + q_col + h * HD;
            global const float *gr = dout + dout_off + ((ulong)n * L + i) * NH * HD + h * HD;
            float sdot = 0.0f, dp = 0.0f;
            for (int d = 0; d < HD; d++) {
                sdot += qr[d] * k[d];
                dp += gr[d] * v[d];
            }
            const float p = exp(sdot * scale - li);
            const float ds = p * (dp - delta[delta_off + si]) * scale;
            for (int d = 0; d < HD; d++) {
                dv[d] += p * gr[d];
                dk[d] += ds * qr[d];
            }
        }
    }
    const ulong dkrow = dkv_off + ((ulong)n * S + j) * k_stride + k_col + h * HD;
    const ulong dvrow = dkv_off + ((ulong)n * S + j) * v_stride + v_col + h * HD;
    for (int d = 0; d < HD; d++) {
        dkv[dkrow + d] = acc ? dkv[dkrow + d] + dk[d] : dk[d];
        dkv[dvrow + d] = acc ? dkv[dvrow + d] + dv[d] : dv[d];
    }
}

// dQ: one work-item per query, looping over the keys.
kernel void attention_bwd_dq(const int L, const int S, const int NH, const int q_stride,
                             const int q_col, const int k_stride, const int k_col,
                             const int v_stride, const int v_col, const float scale,
                             const int causal, const int has_mask, const int acc, global float *dq,
                             const ulong dq_off, global const float *dout, const ulong dout_off,
                             global const float *q_src, const ulong q_off,
                             global const float *kv_src, const ulong kv_off,
                             global const float *lse, const ulong lse_off,
                             global const float *delta, const ulong delta_off,
                             global const float *mask, const ulong mask_off) {
    const int i = get_global_id(0), h = get_global_id(1), n = get_global_id(2);
    if (i >= L) return;
    float q[HD], g[HD], dqa[HD];
    const ulong qrow = q_off + ((ulong)n * L + i) * q_stride + q_col + h * HD;
    const ulong grow = dout_off + ((ulong)n * L + i) * NH * HD + h * HD;
    for (int d = 0; d < HD; d++) {
        q[d] = q_src[qrow + d];
        g[d] = dout[grow + d];
        dqa[d] = 0.0f;
    }
    const ulong si = ((ulong)n * NH + h) * L + i;
    const float lq = lse[lse_off + si], dl = delta[delta_off + si];
    const ulong k_base = kv_off + (ulong)n * S * k_stride + k_col + h * HD;
    const ulong v_base = kv_off + (ulong)n * S * v_stride + v_col + h * HD;
    for (int j = 0; j < S && lq > -INFINITY; j++) {
        if (masked(i, j, causal, mask, mask_off, has_mask, n, S)) continue;
        global const float *kr = kv_src + k_base + (ulong)j * k_stride;
        global const float *vr = kv_src + v_base + (ulong)j * v_stride;
        float sdot = 0.0f, dp = 0.0f;
        for (int d = 0; d < HD; d++) {
            sdot += q[d] * kr[d];
            dp += g[d] * vr[d];
        }
        const float p = exp(sdot * scale - lq);
        const float ds = p * (dp - dl) * scale;
        for (int d = 0; d < HD; d++) dqa[d] += ds * kr[d];
    }
    const ulong dqrow = dq_off + ((ulong)n * L + i) * q_stride + q_col + h * HD;
    for (int d = 0; d < HD; d++) dq[dqrow + d] = acc ? dq[dqrow + d] + dqa[d] : dqa[d];
}
