// cl/selftest.cl: small kernels whose results the host can check exactly; used by the device
// self-test (ldmcl-bench --self-test) and the runtime's tests. Not part of any model.
#include "common.clh"

#ifndef WG
#define WG 64 // work-group size of selftest_sum, a power of two (tunable: -DWG=...)
#endif

// y[i] = a * x[i] + b * y[i] for i < n.
kernel void selftest_axpby(const int n, const float a, global const float *x, const ulong x_off,
                           const float b, global float *y, const ulong y_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = a * x[x_off + i] + b * y[y_off + i];
}

// partial[g] = sum of x[g*WG*CHUNK ... ) over the group's share; one work-group per entry of
// partial. Each work-item adds CHUNK strided elements, then the group reduces in local memory.
#ifndef CHUNK
#define CHUNK 4
#endif
kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void selftest_sum(const int n, global const float *x, const ulong x_off, global float *partial,
                  const ulong partial_off) {
    local float scratch[WG];
    const uint lid = get_local_id(0), g = get_group_id(0);
    const int base = (int)(g * WG * CHUNK);
    float acc = 0.0f;
    for (int c = 0; c < CHUNK; c++) {
        const int i = base + c * WG + (int)lid;
        if (i < n) acc += x[x_off + i];
    }
    const float total = ldm_wg_sum(scratch, acc, lid, WG);
    if (lid == 0) partial[partial_off + g] = total;
}
