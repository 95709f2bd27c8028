// cl/rng.cl: fills buffers with random numbers from cl/philox.clh, keyed by (seed, stream, step).
// The step is read from a device counter (uint bits in counter[0]) plus step_add, so a recorded
// training step draws new numbers every replay without the host.
#define LDM_U32 uint
#define LDM_U64 ulong
#define LDM_MULHI(a, b) mul_hi((uint)(a), (uint)(b))
#define LDM_AS_FLOAT(x) as_float((uint)(x))
#define LDM_AS_UINT(x) as_uint(x)
#define LDM_INLINE inline
#include "philox.clh"

// out[i] = element first + i of the stream for i < n; one work-item per block of 4 of the stream
// (block first / 4 + work-item). dist 0 uniform [0, 1), 1 normal, then out = r * scale + shift;
// dist 2 integers: out = min(floor(u * scale), scale - 1) + shift for u uniform (scale a positive
// integer count).
kernel void rng_fill(const int n, const ulong first, const ulong seed, const uint stream,
                     const ulong step_add, const int dist, const float scale, const float shift,
                     global const float *counter, const ulong counter_off, const int use_counter,
                     global float *out, const ulong out_off) {
    const ulong b = first / 4 + get_global_id(0);
    if (b * 4 >= first + (ulong)n) return;
    const ulong step = (use_counter ? (ulong)as_uint(counter[counter_off]) : 0) + step_add;
    float v[4];
    ldm_random_block(seed, stream, step, (uint)b, dist == 1, v);
    for (int k = 0; k < 4; k++) {
        const ulong e = b * 4 + k;
        if (e < first || e >= first + (ulong)n) continue;
        out[out_off + (e - first)] =
            dist == 2 ? fmin(floor(v[k] * scale), scale - 1.0f) + shift : v[k] * scale + shift;
    }
}
