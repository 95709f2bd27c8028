// tests/cl/includes_broken.cl: includes a header with an error; the log must name the header.
#include "broken.clh"
kernel void uses_broken(global float *y, const ulong y_off) {
    y[y_off + get_global_id(0)] = broken_helper(1.0f);
}
