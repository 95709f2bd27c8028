// cl/layout.cl: data movement: batched 2-D transpose and copies of slices along one dimension.

#define TILE 16

// y[b, c, r] = (acc ? y[b, c, r] : 0) + x[b, r, c] for x [B, R, C]. Work-group (16, 16) over a
// tile of x, staged through local memory so both reads and writes are coalesced.
kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void transpose12(const int R, const int C, const int acc, global float *y, const ulong y_off,
                 global const float *x, const ulong x_off) {
    local float tile[TILE][TILE + 1];
    const int b = get_global_id(2);
    const int c0 = get_group_id(0) * TILE, r0 = get_group_id(1) * TILE;
    const int lx = get_local_id(0), ly = get_local_id(1);
    const ulong base = (ulong)b * R * C;
    if (r0 + ly < R && c0 + lx < C) tile[ly][lx] = x[x_off + base + (ulong)(r0 + ly) * C + c0 + lx];
    barrier(CLK_LOCAL_MEM_FENCE);
    const int r = r0 + lx, c = c0 + ly;
    if (r < R && c < C) {
        const ulong o = y_off + base + (ulong)c * R + r;
        const float v = tile[lx][ly];
        y[o] = acc ? y[o] + v : v;
    }
}

// dst[o, dst_start + j, i] = (acc ? dst[...] : 0) + src[o, src_start + j, i]
// for o < outer, j < len, i < inner; the middle dimensions are src_mid and dst_mid long.
kernel void copy_slice(const int outer, const int len, const int inner, const int src_mid,
                       const int src_start, const int dst_mid, const int dst_start, const int acc,
                       global float *dst, const ulong dst_off, global const float *src,
                       const ulong src_off) {
    const int t = get_global_id(0);
    if (t >= outer * len * inner) return;
    const int i = t % inner, j = (t / inner) % len, o = t / (inner * len);
    const ulong s = src_off + ((ulong)o * src_mid + src_start + j) * inner + i;
    const ulong d = dst_off + ((ulong)o * dst_mid + dst_start + j) * inner + i;
    dst[d] = acc ? dst[d] + src[s] : src[s];
}

// The source index resize_nearest takes for output o of out from in.
inline int nearest_src(const int o, const int in, const int out) {
    return min((int)floor((float)o * ((float)in / (float)out)), in - 1);
}

// y[n, c, oy, ox] = x[n, c, iy, ix] with i = min(floor(o * in / out), in - 1), the source index
// PyTorch's F.interpolate(mode='nearest') takes (its scale computed in float).
kernel void resize_nearest(const int NC, const int H, const int W, const int Ho, const int Wo,
                           global float *y, const ulong y_off, global const float *x,
                           const ulong x_off) {
    const int t = get_global_id(0);
    if (t >= NC * Ho * Wo) return;
    const int ox = t % Wo, oy = (t / Wo) % Ho, nc = t / (Wo * Ho);
    const int iy = nearest_src(oy, H, Ho), ix = nearest_src(ox, W, Wo);
    y[y_off + t] = x[x_off + ((ulong)nc * H + iy) * W + ix];
}

// dx[n, c, iy, ix] = acc dx + the sum of dy over the outputs whose source it is: those lie in
// [iy out / in - 1, (iy + 1) out / in + 1], checked with the forward's own index formula.
kernel void resize_nearest_bwd(const int NC, const int H, const int W, const int Ho, const int Wo,
                               const int acc, global float *dx, const ulong dx_off,
                               global const float *dy, const ulong dy_off) {
    const int t = get_global_id(0);
    if (t >= NC * H * W) return;
    const int ix = t % W, iy = (t / W) % H, nc = t / (W * H);
    const int y0 = max(iy * Ho / H - 1, 0), y1 = min((iy + 1) * Ho / H + 1, Ho - 1);
    const int x0 = max(ix * Wo / W - 1, 0), x1 = min((ix + 1) * Wo / W + 1, Wo - 1);
    float s = 0.0f;
    for (int oy = y0; oy <= y1; oy++) {
        if (nearest_src(oy, H, Ho) != iy) continue;
        for (int ox = x0; ox <= x1; ox++)
            if (nearest_src(ox, W, Wo) == ix) s += dy[dy_off + ((ulong)nc * Ho + oy) * Wo + ox];
    }
    dx[dx_off + t] = acc ? dx[dx_off + t] + s : s;
}
