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

// y[n, c, oy, ox] = x[n, c, iy, ix] with i = min(floor(o * in / out), in - 1), the source index
// PyTorch's F.interpolate(mode='nearest') takes (its scale computed in float).
kernel void resize_nearest(const int NC, const int H, const int W, const int Ho, const int Wo,
                           global float *y, const ulong y_off, global const float *x,
                           const ulong x_off) {
    const int t = get_global_id(0);
    if (t >= NC * Ho * Wo) return;
    const int ox = t % Wo, oy = (t / Wo) % Ho, nc = t / (Wo * Ho);
    const float sy = (float)H / (float)Ho, sx = (float)W / (float)Wo;
    const int iy = min((int)floor((float)oy * sy), H - 1), ix = min((int)floor((float)ox * sx), W - 1);
    y[y_off + t] = x[x_off + ((ulong)nc * H + iy) * W + ix];
}
