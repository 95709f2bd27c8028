// cl/embedding.cl: torch.nn.Embedding forward and backward, fp32. Indices are float-valued
// integers; an index outside [0, V) reads as a zero row and receives no gradient.

// y[r, d] = w[index[r], d]
kernel void embedding_fwd(const int rows, const int V, const int D, global float *y,
                          const ulong y_off, global const float *index, const ulong index_off,
                          global const float *w, const ulong w_off) {
    const int i = get_global_id(0);
    if (i >= rows * D) return;
    const int r = i / D, d = i % D;
    const int v = (int)index[index_off + r];
    y[y_off + i] = (v >= 0 && v < V) ? w[w_off + (ulong)v * D + d] : 0.0f;
}

// dw[v, d] = (acc ? dw[v, d] : 0) + sum over rows r with index[r] == v of dy[r, d]
// (a gather per (v, d): deterministic, no atomics)
kernel void embedding_bwd(const int rows, const int V, const int D, const int acc,
                          global float *dw, const ulong dw_off, global const float *dy,
                          const ulong dy_off, global const float *index, const ulong index_off) {
    const int i = get_global_id(0);
    if (i >= V * D) return;
    const int v = i / D, d = i % D;
    float s = 0.0f;
    for (int r = 0; r < rows; r++)
        if ((int)index[index_off + r] == v) s += dy[dy_off + (ulong)r * D + d];
    dw[dw_off + i] = acc ? dw[dw_off + i] + s : s;
}

// The same for tables much larger than the row count (a 49,408-token vocabulary): one work-item
// per (row r, d); the first row of each distinct index sums dy over the rows that share it and
// writes dw[index[r], d]. Rows of dw no index names are left alone (zero them first when not
// accumulating). Deterministic, no atomics; rows^2 * D / 2 work.
kernel void embedding_bwd_rows(const int rows, const int V, const int D, const int acc,
                               global float *dw, const ulong dw_off, global const float *dy,
                               const ulong dy_off, global const float *index,
                               const ulong index_off) {
    const int i = get_global_id(0);
    if (i >= rows * D) return;
    const int r = i / D, d = i % D;
    const int v = (int)index[index_off + r];
    if (v < 0 || v >= V) return;
    for (int q = 0; q < r; q++)
        if ((int)index[index_off + q] == v) return; // not the first row of v
    float s = 0.0f;
    for (int q = r; q < rows; q++)
        if ((int)index[index_off + q] == v) s += dy[dy_off + (ulong)q * D + d];
    const ulong o = dw_off + (ulong)v * D + d;
    dw[o] = acc ? dw[o] + s : s;
}

// Sinusoidal embeddings of real-valued timesteps (Stable Diffusion's, diffusers'
// get_timestep_embedding): y[n, i] = sin(t[n] freq[i]) and y[n, halfdim + i] = cos(t[n] freq[i])
// for i < halfdim, the halves swapped when cos_first; n = N * halfdim.
kernel void timestep_sinusoid(const int n, const int halfdim, const int cos_first, global float *y,
                              const ulong y_off, global const float *t, const ulong t_off,
                              global const float *freq, const ulong freq_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int r = i / halfdim, d = i % halfdim;
    const float arg = t[t_off + r] * freq[freq_off + d];
    const ulong row = y_off + (ulong)r * (ulong)(2 * halfdim);
    y[row + (cos_first ? halfdim : 0) + d] = sin(arg);
    y[row + (cos_first ? 0 : halfdim) + d] = cos(arg);
}
