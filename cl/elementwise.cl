// cl/elementwise.cl: element-wise ops, forward and backward, fp32, any length n.
// Activations are chosen at build time with -DACT=...:
//   1 silu: x * sigmoid(x)            2 leaky_relu: x > 0 ? x : slope * x
//   3 gelu: x * Phi(x) (exact, erf)   4 quick_gelu: x * sigmoid(1.702 x)
//   5 exp: e^x
// GEGLU (x's first half times GELU of its second) is its own pair of kernels.
// Backward kernels take acc: 0 overwrites the gradient, 1 adds to it.
#ifndef ACT
#define ACT 1
#endif

inline float sigmoid_f(const float x) {
    return 1.0f / (1.0f + exp(-x));
}

// GELU, exact (erf) form, and its derivative Phi(x) + x phi(x)
inline float gelu_erf_f(const float x) {
    return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f));
}

inline float gelu_erf_df(const float x) {
    const float cdf = 0.5f * (1.0f + erf(x * 0.70710678118654752f));
    const float pdf = 0.39894228040143268f * exp(-0.5f * x * x);
    return cdf + x * pdf;
}

inline float act_f(const float x, const float p) {
#if ACT == 1
    return x * sigmoid_f(x);
#elif ACT == 2
    return x > 0.0f ? x : p * x;
#elif ACT == 3
    return gelu_erf_f(x);
#elif ACT == 4
    return x * sigmoid_f(1.702f * x);
#elif ACT == 5
    return exp(x);
#else
#error "unknown ACT"
#endif
}

// d act / dx
inline float act_df(const float x, const float p) {
#if ACT == 1
    const float s = sigmoid_f(x);
    return s * (1.0f + x * (1.0f - s));
#elif ACT == 2
    return x > 0.0f ? 1.0f : p;
#elif ACT == 3
    return gelu_erf_df(x);
#elif ACT == 4
    const float s = sigmoid_f(1.702f * x);
    return s * (1.0f + 1.702f * x * (1.0f - s));
#elif ACT == 5
    return exp(x);
#endif
}

kernel void act_fwd(const int n, const float p, global float *y, const ulong y_off,
                    global const float *x, const ulong x_off) {
    const int i = get_global_id(0);
    if (i < n) y[y_off + i] = act_f(x[x_off + i], p);
}

kernel void act_bwd(const int n, const float p, const int acc, global float *dx, const ulong dx_off,
                    global const float *dy, const ulong dy_off, global const float *x,
                    const ulong x_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float g = dy[dy_off + i] * act_df(x[x_off + i], p);
    dx[dx_off + i] = acc ? dx[dx_off + i] + g : g;
}

// GEGLU over rows of x [rows, 2D]: y[r, i] = x[r, i] * gelu(x[r, D + i]) (diffusers' GEGLU: the
// projection's first half times GELU of its second), n = rows * D.
kernel void geglu_fwd(const int n, const int D, global float *y, const ulong y_off,
                      global const float *x, const ulong x_off) {
    const int t = get_global_id(0);
    if (t >= n) return;
    const ulong a = x_off + (ulong)(t / D) * (ulong)(2 * D) + (ulong)(t % D);
    y[y_off + t] = x[a] * gelu_erf_f(x[a + D]);
}

// dx[r, i] = dy gelu(gate), dx[r, D + i] = dy x[r, i] gelu'(gate); acc adds to dx.
kernel void geglu_bwd(const int n, const int D, const int acc, global float *dx, const ulong dx_off,
                      global const float *dy, const ulong dy_off, global const float *x,
                      const ulong x_off) {
    const int t = get_global_id(0);
    if (t >= n) return;
    const ulong r = (ulong)(t / D) * (ulong)(2 * D) + (ulong)(t % D);
    const float g = dy[dy_off + t], a = x[x_off + r], gate = x[x_off + r + D];
    const float da = g * gelu_erf_f(gate), dgate = g * a * gelu_erf_df(gate);
    dx[dx_off + r] = acc ? dx[dx_off + r] + da : da;
    dx[dx_off + r + D] = acc ? dx[dx_off + r + D] + dgate : dgate;
}

// y[i] = x's half i, for n IEEE halves stored two per 4-byte element from x_off: a parameter
// kept in half precision, expanded where it is used.
kernel void half_to_float(const int n, global float *y, const ulong y_off, global const uint *x,
                          const ulong x_off) {
    const int i = get_global_id(0);
    if (i < n) y[y_off + i] = vload_half(i, (global const half *)(x + x_off));
}

// y = alpha * a + beta * b
kernel void axpby(const int n, global float *y, const ulong y_off, const float alpha,
                  global const float *a, const ulong a_off, const float beta,
                  global const float *b, const ulong b_off) {
    const int i = get_global_id(0);
    if (i < n) y[y_off + i] = alpha * a[a_off + i] + beta * b[b_off + i];
}

// y = alpha * x + beta
kernel void affine(const int n, global float *y, const ulong y_off, const float alpha,
                   global const float *x, const ulong x_off, const float beta) {
    const int i = get_global_id(0);
    if (i < n) y[y_off + i] = alpha * x[x_off + i] + beta;
}

// dst = (acc ? dst : 0) + alpha * src
kernel void accumulate(const int n, const int acc, global float *dst, const ulong dst_off,
                       const float alpha, global const float *src, const ulong src_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float v = alpha * src[src_off + i];
    dst[dst_off + i] = acc ? dst[dst_off + i] + v : v;
}

// y = a * b
kernel void mul(const int n, global float *y, const ulong y_off, global const float *a,
                const ulong a_off, global const float *b, const ulong b_off) {
    const int i = get_global_id(0);
    if (i < n) y[y_off + i] = a[a_off + i] * b[b_off + i];
}

// dst = (acc ? dst : 0) + dy * b
kernel void mul_acc(const int n, const int acc, global float *dst, const ulong dst_off,
                    global const float *dy, const ulong dy_off, global const float *b,
                    const ulong b_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float v = dy[dy_off + i] * b[b_off + i];
    dst[dst_off + i] = acc ? dst[dst_off + i] + v : v;
}

// y[r, c] = x[r, c] + v[r] for r < rows, c < cols (a per-channel or per-row broadcast add)
kernel void add_rows(const int rows, const int cols, global float *y, const ulong y_off,
                     global const float *x, const ulong x_off, global const float *v,
                     const ulong v_off) {
    const int i = get_global_id(0);
    if (i >= rows * cols) return;
    y[y_off + i] = x[x_off + i] + v[v_off + i / cols];
}

// y[r, c] += b[c] for r < rows, c < cols (a bias added to every row)
kernel void add_cols_inplace(const int rows, const int cols, global float *y, const ulong y_off,
                             global const float *b, const ulong b_off) {
    const int i = get_global_id(0);
    if (i >= rows * cols) return;
    y[y_off + i] += b[b_off + i % cols];
}

// y[n, c, p] += b[c] for an [N, C, P] tensor (a convolution's bias)
kernel void add_channel_bias(const int n_total, const int C, const int P, global float *y,
                             const ulong y_off, global const float *b, const ulong b_off) {
    const int i = get_global_id(0);
    if (i >= n_total) return;
    y[y_off + i] += b[b_off + (i / P) % C];
}
