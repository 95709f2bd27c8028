// cl/diffusion.cl: the diffusion process's element-wise kernels, fp32.

// x_t = sqrt_ab[t_n] * x0 + sqrt_1m_ab[t_n] * noise, with a timestep per sample n (float-valued
// integers in [0, T); the sampler that draws them keeps them there, and they are clamped).
kernel void add_noise(const int total, const int per_sample, const int T, global float *out,
                      const ulong out_off, global const float *x0, const ulong x0_off,
                      global const float *noise, const ulong noise_off, global const float *t,
                      const ulong t_off, global const float *sqrt_ab, const ulong sa_off,
                      global const float *sqrt_1m_ab, const ulong sb_off) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const int ti = clamp((int)t[t_off + i / per_sample], 0, T - 1);
    out[out_off + i] = sqrt_ab[sa_off + ti] * x0[x0_off + i] + sqrt_1m_ab[sb_off + ti] * noise[noise_off + i];
}

// out = table[t_n] * x (+ out when acc), with a timestep per sample n: a loss weight by timestep
// (min-SNR), forward and backward (the backward scales the gradient by the same table).
kernel void timestep_scale(const int total, const int per_sample, const int T, const int acc,
                           global float *out, const ulong out_off, global const float *x,
                           const ulong x_off, global const float *t, const ulong t_off,
                           global const float *table, const ulong table_off) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const int ti = clamp((int)t[t_off + i / per_sample], 0, T - 1);
    const float v = table[table_off + ti] * x[x_off + i];
    out[out_off + i] = acc ? out[out_off + i] + v : v;
}

// One sampler step, out = c_x * x_t + c_eps * eps + sigma * z, and optionally the predicted
// x0 = clamp(x0_x * x_t + x0_eps * eps, -1, 1) for display. DDPM and DDIM differ only in the
// coefficients, which the host computes in double precision.
kernel void diffusion_step(const int n, const float c_x, const float c_eps, const float sigma,
                           const float x0_x, const float x0_eps, const int want_x0,
                           global float *out, const ulong out_off, global float *x0,
                           const ulong x0_off, global const float *xt, const ulong xt_off,
                           global const float *eps, const ulong eps_off, global const float *z,
                           const ulong z_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float x = xt[xt_off + i], e = eps[eps_off + i];
    const float noise = sigma != 0.0f ? sigma * z[z_off + i] : 0.0f;
    out[out_off + i] = c_x * x + c_eps * e + noise;
    if (want_x0) x0[x0_off + i] = clamp(x0_x * x + x0_eps * e, -1.0f, 1.0f);
}

// Classifier-free-guidance dropout of a condition: row n of out is null_row (or zeros when there
// is none) where u[n] < p (or u[n] <= p when inclusive), cond's row n otherwise.
// cond, out [N, R]; null [R] when has_null.
kernel void drop_condition(const int N, const int R, const float p, const int inclusive,
                           const int has_null, global float *out, const ulong out_off,
                           global const float *cond, const ulong cond_off,
                           global const float *null_row, const ulong null_off,
                           global const float *u, const ulong u_off) {
    const int i = get_global_id(0);
    if (i >= N * R) return;
    const float un = u[u_off + i / R];
    const int drop = inclusive ? un <= p : un < p;
    out[out_off + i] = drop ? (has_null ? null_row[null_off + i % R] : 0.0f) : cond[cond_off + i];
}
