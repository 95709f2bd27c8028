// cl/conv.cl: the data movement around convolution GEMMs, fp32, for a chunk of nb samples.
// Column buffers are [K, nb, P]: row k = (channel, ky, kx) of the kernel window, then sample,
// then output position p = (oy, ox), so one GEMM covers the whole chunk; or, with sample_major
// (the GPU kernels only), [nb, K, P]: one block per sample, for strided-batched GEMMs that
// write and read images in place.
//   conv2d:            col = im2col(x); out = W [Cout, K] x col
//   conv_transpose2d:  col = W^T x;     out = col2im(col)
// col2im gathers (each output pixel sums the column entries that cover it): deterministic, no
// atomics.

// col[k, n, p] = x[n, c, oy*SH - PH + ky, ox*SW - PW + kx], zero outside the image. Launched
// over (p, row = k * nb + n): a row's indices are uniform across dimension 0, so the integer
// divisions are done once per row, not per element (they dominated on CPUs).
kernel void im2col(const int C, const int H, const int W, const int KH, const int KW,
                   const int SH, const int SW, const int PH, const int PW, const int Ho,
                   const int Wo, const int nb, const int sample_major, global float *col,
                   const ulong col_off, global const float *x, const ulong x_off) {
    const int P = Ho * Wo, p = get_global_id(0), row = get_global_id(1), K = C * KH * KW;
    if (p >= P || row >= K * nb) return;
    const int n = sample_major ? row / K : row % nb, k = sample_major ? row % K : row / nb;
    const int kx = k % KW, ky = (k / KW) % KH, c = k / (KW * KH);
    const int oy = p / Wo, ox = p - oy * Wo;
    const int iy = oy * SH - PH + ky, ix = ox * SW - PW + kx;
    float v = 0.0f;
    if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = x[x_off + (((ulong)n * C + c) * H + iy) * W + ix];
    col[col_off + (ulong)row * P + p] = v;
}

// The sum col2im gathers for image pixel (c, iy, ix) of sample n: the column entries of every
// window that covers it.
inline float col2im_sum(const int C, const int c, const int n, const int iy, const int ix,
                        const int KH, const int KW, const int SH, const int SW, const int PH,
                        const int PW, const int Ho, const int Wo, const int nb,
                        const int sample_major, global const float *col, const ulong col_off) {
    const int P = Ho * Wo;
    float s = 0.0f;
    for (int ky = 0; ky < KH; ky++) {
        const int ty = iy + PH - ky;
        if (ty < 0) continue;
        int oy = ty;
        if (SH != 1) {
            if (ty % SH) continue;
            oy = ty / SH;
        }
        if (oy >= Ho) continue;
        for (int kx = 0; kx < KW; kx++) {
            const int tx = ix + PW - kx;
            if (tx < 0) continue;
            int ox = tx;
            if (SW != 1) {
                if (tx % SW) continue;
                ox = tx / SW;
            }
            if (ox >= Wo) continue;
            const int k = (c * KH + ky) * KW + kx;
            const ulong row = sample_major ? (ulong)n * C * KH * KW + k : (ulong)k * nb + n;
            s += col[col_off + row * P + oy * Wo + ox];
        }
    }
    return s;
}

// x[n, c, iy, ix] = (acc ? x : 0) + sum of col[(c, ky, kx), n, (oy, ox)] (or col[n, (c, ky, kx),
// (oy, ox)] with sample_major) over the windows that
// cover (iy, ix): oy*SH - PH + ky == iy and ox*SW - PW + kx == ix. Launched over
// (q = iy * W + ix, row = n * C + c).
kernel void col2im(const int C, const int H, const int W, const int KH, const int KW, const int SH,
                   const int SW, const int PH, const int PW, const int Ho, const int Wo,
                   const int nb, const int sample_major, const int acc, global float *x,
                   const ulong x_off, global const float *col, const ulong col_off) {
    const int q = get_global_id(0), row = get_global_id(1);
    if (q >= H * W || row >= nb * C) return;
    const int c = row % C, n = row / C;
    const int iy = q / W, ix = q - iy * W;
    const float s = col2im_sum(C, c, n, iy, ix, KH, KW, SH, SW, PH, PW, Ho, Wo, nb, sample_major,
                               col, col_off);
    const ulong o = x_off + (ulong)row * H * W + q;
    x[o] = acc ? x[o] + s : s;
}

// The same two for CPU drivers (pocl), where the launches above ran 7-15x slower than these:
// one work-item per (image row, column row) loops over the row's pixels, so each writes or
// reads a contiguous run instead of one element. Launched over (output row, row) for im2col
// and (image row iy, row = n * C + c) for col2im. GPUs keep the kernels above: there adjacent
// work-items must touch adjacent addresses.
kernel void im2col_rows(const int C, const int H, const int W, const int KH, const int KW,
                        const int SH, const int SW, const int PH, const int PW, const int Ho,
                        const int Wo, const int nb, global float *col, const ulong col_off,
                        global const float *x, const ulong x_off) {
    const int oy = get_global_id(0), row = get_global_id(1);
    if (oy >= Ho || row >= C * KH * KW * nb) return;
    const int n = row % nb, k = row / nb;
    const int kx = k % KW, ky = (k / KW) % KH, c = k / (KW * KH);
    const int iy = oy * SH - PH + ky;
    global float *dst = col + col_off + (ulong)row * Ho * Wo + oy * Wo;
    if (iy < 0 || iy >= H) {
        for (int ox = 0; ox < Wo; ox++)
            dst[ox] = 0.0f;
        return;
    }
    global const float *src = x + x_off + (((ulong)n * C + c) * H + iy) * W;
    for (int ox = 0; ox < Wo; ox++) {
        const int ix = ox * SW - PW + kx;
        dst[ox] = ix >= 0 && ix < W ? src[ix] : 0.0f;
    }
}

kernel void col2im_rows(const int C, const int H, const int W, const int KH, const int KW,
                        const int SH, const int SW, const int PH, const int PW, const int Ho,
                        const int Wo, const int nb, const int acc, global float *x,
                        const ulong x_off, global const float *col, const ulong col_off) {
    const int iy = get_global_id(0), row = get_global_id(1);
    if (iy >= H || row >= nb * C) return;
    const int c = row % C, n = row / C;
    global float *dst = x + x_off + (ulong)row * H * W + (ulong)iy * W;
    for (int ix = 0; ix < W; ix++) {
        const float s =
            col2im_sum(C, c, n, iy, ix, KH, KW, SH, SW, PH, PW, Ho, Wo, nb, 0, col, col_off);
        dst[ix] = acc ? dst[ix] + s : s;
    }
}

// y[b, a, p] = (acc ? y : 0) + x[a, b, p] (+ bias[a] when has_bias), x [A, B, P].
kernel void swap01(const int A, const int B, const int P, const int acc, const int has_bias,
                   global float *y, const ulong y_off, global const float *x, const ulong x_off,
                   global const float *bias, const ulong bias_off) {
    const int t = get_global_id(0);
    if (t >= A * B * P) return;
    const int p = t % P, a = (t / P) % A, b = t / (P * A); // t indexes y [B, A, P]
    float v = x[x_off + ((ulong)a * B + b) * P + p];
    if (has_bias) v += bias[bias_off + a];
    const ulong o = y_off + t;
    y[o] = acc ? y[o] + v : v;
}
