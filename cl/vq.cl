// cl/vq.cl: vector quantisation, the nearest codebook entry of each row by L2 distance.

// index[r] = argmin over k of ||z[r] - e[k]||^2 for z [R, D], e [K, D]; the first of equal
// distances wins (torch.argmin). Written as a float-valued integer (exact below 2^24).
kernel void vq_nearest(const int R, const int K, const int D, global float *index,
                       const ulong index_off, global const float *z, const ulong z_off,
                       global const float *e, const ulong e_off) {
    const int r = get_global_id(0);
    if (r >= R) return;
    global const float *zr = z + z_off + (ulong)r * D;
    float best = INFINITY;
    int arg = 0;
    for (int k = 0; k < K; k++) {
        global const float *ek = e + e_off + (ulong)k * D;
        float s = 0.0f;
        for (int d = 0; d < D; d++) {
            const float v = zr[d] - ek[d];
            s += v * v;
        }
        if (s < best) {
            best = s;
            arg = k;
        }
    }
    index[index_off + r] = (float)arg;
}
