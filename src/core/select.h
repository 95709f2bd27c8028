/* src/core/select.h: resolves a platform/device selection to one OpenCL device. */
#ifndef LDMCL_CORE_SELECT_H
#define LDMCL_CORE_SELECT_H

#include <stddef.h>

#include "ldmcl/cl.h"
#include "ldmcl/status.h"

/* CL_PLATFORM_NOT_FOUND_KHR, from cl_ext.h, without pulling that header in everywhere. */
#define CL_PLATFORM_NOT_FOUND_KHR_VALUE (-1001)

/* platform_sel/device_sel: index or name substring, NULL for $LDMCL_CL_PLATFORM/_DEVICE and
 * then the default (first GPU, else first device). chosen_by receives how it was chosen. */
ldm_status ldm_select_device(const char *platform_sel, const char *device_sel,
                             cl_platform_id *platform, cl_device_id *device, int *global_index,
                             char *chosen_by, size_t chosen_by_size);

#endif
