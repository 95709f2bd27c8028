// cl/softmax.cl: softmax over the last dimension of x [R, D], forward and backward, fp32.
// One work-group per row; the maximum is subtracted before exp.
#include "common.clh"

#ifndef WG
#define WG 256
#endif

kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void softmax_fwd(const int D, global float *y, const ulong y_off, global const float *x,
                 const ulong x_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const ulong base = (ulong)get_group_id(0) * D;
    float m = -INFINITY;
    for (int i = lid; i < D; i += WG) m = fmax(m, x[x_off + base + i]);
    // max over the group, through the same scratch as ldm_wg_sum
    scratch[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] = fmax(scratch[lid], scratch[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    m = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    float s = 0.0f;
    for (int i = lid; i < D; i += WG) s += exp(x[x_off + base + i] - m);
    const float inv = 1.0f / ldm_wg_sum(scratch, s, lid, WG);
    for (int i = lid; i < D; i += WG) y[y_off + base + i] = exp(x[x_off + base + i] - m) * inv;
}

// dx = (acc ? dx : 0) + y * (dy - sum(dy * y))
kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void softmax_bwd(const int D, const int acc, global float *dx, const ulong dx_off,
                 global const float *dy, const ulong dy_off, global const float *y,
                 const ulong y_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const ulong base = (ulong)get_group_id(0) * D;
    float s = 0.0f;
    for (int i = lid; i < D; i += WG) s += dy[dy_off + base + i] * y[y_off + base + i];
    const float dot = ldm_wg_sum(scratch, s, lid, WG);
    for (int i = lid; i < D; i += WG) {
        const ulong o = base + i;
        // y * (dy - dot) with the difference formed first, as PyTorch does
        const float v = y[y_off + o] * (dy[dy_off + o] - dot);
        dx[dx_off + o] = acc ? dx[dx_off + o] + v : v;
    }
}
