// cl/transfer.cl: fills and copies of float buffers as kernels, for devices whose own transfer
// commands cannot be used as they are: under the Oclgrind simulator host writes, fills and
// buffer copies go through these, because its uninitialised-value tracking follows kernel loads
// and stores but not those commands at an offset into a buffer (see src/core/transfer.c).

// y[i] = value for i < n.
kernel void transfer_fill(const ulong n, const float value, global float *y, const ulong y_off) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = value;
}

// y[i] = x[i] for i < n (y and x do not overlap).
kernel void transfer_copy(const ulong n, global float *y, const ulong y_off, global const float *x,
                          const ulong x_off) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = x[x_off + i];
}
