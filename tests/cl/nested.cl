// tests/cl/nested.cl: a header included twice is expanded once.
#include "twice.clh"
#include "twice.clh"
kernel void nested(global float *y, const ulong y_off) {
    y[y_off + get_global_id(0)] = TWICE_VALUE;
}
