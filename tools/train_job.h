/* tools/train_job.h: ldmcl-train as one rank of a data-parallel job (ldmcl/job.h): the device a
 * rank takes. */
#ifndef LDMCL_TOOLS_TRAIN_JOB_H
#define LDMCL_TOOLS_TRAIN_JOB_H

#include <stddef.h>

#include "ldmcl/ldmcl.h"

/* The --cl-device value for this rank: alone, device as given; in a job, a comma list (given, or
 * $LDMCL_CL_DEVICE) gives rank r of a machine its entry r modulo the list's length, one device
 * names every rank's, and none gives the machine's local rank modulo the devices of the chosen
 * platform (--cl-platform, $LDMCL_CL_PLATFORM, else the first GPU's, else the first device's).
 * NULL: the library's default. buf holds the value made. */
const char *train_job_device(const ldm_job *job, const char *device, const char *platform,
                             char *buf, size_t size);

#endif
