/* tests/sim/offset_write_reproducer.c: the Oclgrind 21.10 behaviour that src/core/transfer.c works
 * around, alone (not part of the build). A buffer of 128 floats is zero-filled, then 30 floats
 * are written into it at an element offset, and a kernel sums those 30. The sum is right either
 * way, but under `oclgrind --uninitialized` the write at offset 0 gives no report and the write
 * at offset 64 gives one for every value the kernel touches (92): the plugin replaces the
 * buffer's shadow record at each host write by one the size of the write from the buffer's
 * start, and does not track the fill.
 *   cc tests/sim/offset_write_reproducer.c -o /tmp/repro -lOpenCL
 *   oclgrind --uninitialized /tmp/repro 0 2>&1 | grep -c Uninitialized      (0)
 *   oclgrind --uninitialized /tmp/repro 64 2>&1 | grep -c Uninitialized     (92) */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

static const char *source =
    "kernel void sum(const int n, global float *y, global const float *x, const int off) {\n"
    "    local float scratch[64];\n"
    "    const uint lid = get_local_id(0);\n"
    "    scratch[lid] = lid < n ? x[off + lid] : 0.0f;\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    for (uint s = 32; s > 0; s >>= 1) {\n"
    "        if (lid < s) scratch[lid] += scratch[lid + s];\n"
    "        barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    }\n"
    "    if (lid == 0) y[0] = scratch[0];\n"
    "}\n";

int main(int argc, char **argv) {
    int off = argc > 1 ? atoi(argv[1]) : 64, n = 30;
    if (off < 0 || off > 98) return 2;
    cl_platform_id platform;
    cl_device_id device;
    cl_int err;
    if (clGetPlatformIDs(1, &platform, NULL) != CL_SUCCESS ||
        clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL) != CL_SUCCESS)
        return 1;
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &err);
    cl_program program = clCreateProgramWithSource(context, 1, &source, NULL, &err);
    if (clBuildProgram(program, 1, &device, "", NULL, NULL) != CL_SUCCESS) return 1;
    cl_kernel kernel = clCreateKernel(program, "sum", &err);
    float x[30], zero = 0.0f, y = -1.0f;
    for (int i = 0; i < n; i++)
        x[i] = (float)i;
    cl_mem bx = clCreateBuffer(context, CL_MEM_READ_WRITE, 128 * 4, NULL, &err);
    cl_mem by = clCreateBuffer(context, CL_MEM_READ_WRITE, 4, NULL, &err);
    clEnqueueFillBuffer(queue, bx, &zero, 4, 0, 128 * 4, 0, NULL, NULL);
    clEnqueueWriteBuffer(queue, bx, CL_TRUE, (size_t)off * 4, sizeof x, x, 0, NULL, NULL);
    clSetKernelArg(kernel, 0, sizeof n, &n);
    clSetKernelArg(kernel, 1, sizeof by, &by);
    clSetKernelArg(kernel, 2, sizeof bx, &bx);
    clSetKernelArg(kernel, 3, sizeof off, &off);
    size_t global = 64, local = 64;
    clEnqueueNDRangeKernel(queue, kernel, 1, NULL, &global, &local, 0, NULL, NULL);
    clEnqueueReadBuffer(queue, by, CL_TRUE, 0, 4, &y, 0, NULL, NULL);
    printf("written at offset %d: sum %g (435 expected)\n", off, (double)y);
    clReleaseMemObject(bx);
    clReleaseMemObject(by);
    clReleaseKernel(kernel);
    clReleaseProgram(program);
    clReleaseCommandQueue(queue);
    clReleaseContext(context);
    return y == 435.0f ? 0 : 1;
}
