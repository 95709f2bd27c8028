/* ldmcl/cl.h: the one place that includes the OpenCL headers, so every file agrees on the API
 * version. ldmcl calls only OpenCL 1.2 entry points (clCreateCommandQueue included), which every
 * platform it targets provides: NVIDIA (OpenCL 3.0, OpenCL C 1.2), AMD, Intel and pocl. */
#ifndef LDMCL_CL_H
#define LDMCL_CL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#endif
