// tests/cl/broken.cl: a kernel that must fail to build; the error is on line 6.
kernel void broken(global float *y, const ulong y_off) {
    const int i = get_global_id(0);
    // The next line uses a name that does not exist.
    float v = (float)i;
    y[y_off + i] = v + no_such_variable;
}
