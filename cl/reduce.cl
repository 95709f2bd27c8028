// cl/reduce.cl: sums and the losses built on them, fp32, two stages so that any length works:
//   1. *_partial: work-group g reduces elements [g*chunk, min(n, (g+1)*chunk)) into partial[g];
//   2. sum_rows: one work-group per row reduces a row (of partial sums, or of a matrix).
// Reductions run in local memory with a fixed tree order, so a given device and size always
// give the same result.
#include "common.clh"

#ifndef WG
#define WG 256 // work-group size, a power of two
#endif

// f(a, b) of the element pair to be summed; -DTERM=1 a, 2 (a-b)^2, 3 |a-b|, 4 (a-c)^2 with the
// constant c passed as `c`, 5 a^2 (squared norms).
#ifndef TERM
#define TERM 1
#endif

inline float term(const float a, const float b, const float c) {
#if TERM == 1
    return a;
#elif TERM == 2
    return (a - b) * (a - b);
#elif TERM == 3
    return fabs(a - b);
#elif TERM == 4
    return (a - c) * (a - c);
#elif TERM == 5
    return a * a;
#endif
}

kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void reduce_partial(const int n, const int chunk, const float c, global float *partial,
                    const ulong partial_off, global const float *a, const ulong a_off,
                    global const float *b, const ulong b_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0), g = get_group_id(0);
    const int start = (int)g * chunk, end = min(n, start + chunk);
    float acc = 0.0f;
    for (int i = start + (int)lid; i < end; i += WG) {
#if TERM == 1 || TERM == 4 || TERM == 5
        acc += term(a[a_off + i], 0.0f, c);
#else
        acc += term(a[a_off + i], b[b_off + i], c);
#endif
    }
    const float total = ldm_wg_sum(scratch, acc, lid, WG);
    if (lid == 0) partial[partial_off + g] = total;
}

// y[r] = (acc ? y[r] : 0) + scale * sum_c x[r, c]; one work-group per row.
kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void sum_rows(const int cols, const float scale, const int acc, global float *y, const ulong y_off,
              global const float *x, const ulong x_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0);
    const int r = get_group_id(0);
    float s = 0.0f;
    for (int c = (int)lid; c < cols; c += WG) s += x[x_off + (ulong)r * cols + c];
    const float total = ldm_wg_sum(scratch, s, lid, WG);
    if (lid == 0) y[y_off + r] = acc ? y[y_off + r] + scale * total : scale * total;
}

// Backward of scale * sum(term(a, b)) with the upstream gradient read from the device:
//   da = (acc ? da : 0) + scale * dloss[0] * d term / da   (db is -d term/da for TERM 2, 3)
kernel void reduce_bwd(const int n, const float scale, const float c, const int acc,
                       global float *da, const ulong da_off, global const float *dloss,
                       const ulong dloss_off, global const float *a, const ulong a_off,
                       global const float *b, const ulong b_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float g = scale * dloss[dloss_off];
#if TERM == 1
    const float d = g;
#elif TERM == 2
    const float d = g * 2.0f * (a[a_off + i] - b[b_off + i]);
#elif TERM == 3
    const float diff = a[a_off + i] - b[b_off + i];
    const float d = g * (diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : 0.0f));
#elif TERM == 4
    const float d = g * 2.0f * (a[a_off + i] - c);
#elif TERM == 5
    const float d = g * 2.0f * a[a_off + i];
#endif
    da[da_off + i] = acc ? da[da_off + i] + d : d;
}

// y[c] = (acc ? y[c] : 0) + scale * sum_r x[r, c] for x [rows, cols]. Work-group (16, 16): the
// first dimension picks the column, the second strides over rows; local memory sums the 16.
kernel __attribute__((reqd_work_group_size(16, 16, 1)))
void sum_cols(const int rows, const int cols, const float scale, const int acc, global float *y,
              const ulong y_off, global const float *x, const ulong x_off) {
    local float part[16][17];
    const int c = get_global_id(0), lx = get_local_id(0), ly = get_local_id(1);
    float s = 0.0f;
    if (c < cols)
        for (int r = ly; r < rows; r += 16) s += x[x_off + (ulong)r * cols + c];
    part[ly][lx] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (ly == 0 && c < cols) {
        float t = 0.0f;
        for (int k = 0; k < 16; k++) t += part[k][lx];
        y[y_off + c] = acc ? y[y_off + c] + scale * t : scale * t;
    }
}
