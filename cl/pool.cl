// cl/pool.cl: F.max_pool2d (no padding, floor mode, dilation 1), forward and backward, fp32.
// The maximum of a window is its first largest element in row-major order (NaN wins), as
// PyTorch's CPU kernel picks it; the backward recomputes it instead of saving indices.

// The offset within x (of one [H, W] plane) of the maximum of output window (oy, ox).
inline int window_argmax(global const float *x, const int H, const int W, const int k,
                         const int s, const int oy, const int ox) {
    int best = oy * s * W + ox * s;
    float m = x[best];
    for (int dy = 0; dy < k; dy++)
        for (int dx = 0; dx < k; dx++) {
            const int o = (oy * s + dy) * W + ox * s + dx;
            const float v = x[o];
            if (v > m || (isnan(v) && !isnan(m))) {
                m = v;
                best = o;
            }
        }
    return best;
}

// y [NC, Ho, Wo] = max over each k x k window of x [NC, H, W] at stride s.
kernel void max_pool_fwd(const int NC, const int H, const int W, const int Ho, const int Wo,
                         const int k, const int s, global float *y, const ulong y_off,
                         global const float *x, const ulong x_off) {
    const int t = get_global_id(0);
    if (t >= NC * Ho * Wo) return;
    const int ox = t % Wo, oy = (t / Wo) % Ho, nc = t / (Wo * Ho);
    global const float *plane = x + x_off + (ulong)nc * H * W;
    y[y_off + t] = plane[window_argmax(plane, H, W, k, s, oy, ox)];
}

// dx[nc, iy, ix] = (acc ? dx : 0) + the sum of dy over the windows whose maximum is (iy, ix)
// (a gather per input element: deterministic, no atomics).
kernel void max_pool_bwd(const int NC, const int H, const int W, const int Ho, const int Wo,
                         const int k, const int s, const int acc, global float *dx,
                         const ulong dx_off, global const float *dy, const ulong dy_off,
                         global const float *x, const ulong x_off) {
    const int t = get_global_id(0);
    if (t >= NC * H * W) return;
    const int ix = t % W, iy = (t / W) % H, nc = t / (W * H);
    global const float *plane = x + x_off + (ulong)nc * H * W;
    const int self = iy * W + ix;
    const int oy0 = iy >= k ? (iy - k) / s + 1 : 0, ox0 = ix >= k ? (ix - k) / s + 1 : 0;
    const int oy1 = min(iy / s, Ho - 1), ox1 = min(ix / s, Wo - 1);
    float g = 0.0f;
    for (int oy = oy0; oy <= oy1; oy++)
        for (int ox = ox0; ox <= ox1; ox++)
            if (window_argmax(plane, H, W, k, s, oy, ox) == self)
                g += dy[dy_off + ((ulong)nc * Ho + oy) * Wo + ox];
    dx[dx_off + t] = acc ? dx[dx_off + t] + g : g;
}
