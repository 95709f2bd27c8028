/* ldmcl/status.h: status codes returned by every library call, and the kept error message.
 *
 * The library never prints and never exits. A failing call returns a status other than LDM_OK
 * and keeps a message for the calling thread: where it failed (file:line), the call that failed,
 * the OpenCL or CLBlast error name, and what the user can do about it. */
#ifndef LDMCL_STATUS_H
#define LDMCL_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ldm_status {
    LDM_OK = 0,
    LDM_ERR_INVALID_ARGUMENT = 1, /* a caller passed a value the call cannot accept */
    LDM_ERR_NO_DEVICE = 2,        /* no OpenCL platform or device, or none matches the selection */
    LDM_ERR_OPENCL = 3,           /* an OpenCL call failed */
    LDM_ERR_BUILD = 4,            /* an OpenCL C program failed to build; the message has its log */
    LDM_ERR_DEVICE_MEMORY = 5,    /* a request does not fit the device's memory limits */
    LDM_ERR_HOST_MEMORY = 6,      /* malloc failed */
    LDM_ERR_IO = 7,               /* a file could not be read or written */
    LDM_ERR_CLBLAST = 8,          /* a CLBlast routine failed */
    LDM_ERR_NOT_FOUND = 9,        /* a kernel source, kernel name or file is missing */
    LDM_ERR_FORMAT = 10,          /* an input file or value is malformed */
    LDM_ERR_SELFTEST = 11,        /* a device self-test computed a wrong result */
    LDM_ERR_JOB = 12              /* another process of a data-parallel job failed, died, did not
                                      answer in time, or holds other values (ldmcl/job.h) */
} ldm_status;

/* "LDM_ERR_OPENCL" etc.; never NULL. */
const char *ldm_status_name(ldm_status s);

/* The message kept by the last failing call on this thread ("" if none). Valid until the next
 * failing call on the same thread. */
const char *ldm_last_error(void);

/* Forget the kept message. */
void ldm_clear_error(void);

/* Keeps a message (printf-style) as the last error and returns st: for callbacks the library
 * calls (image sources) to report why they failed. */
ldm_status ldm_set_error(ldm_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The name of an OpenCL error code ("CL_OUT_OF_RESOURCES"), or "CL_UNKNOWN_ERROR". */
const char *ldm_cl_error_name(int cl_error);

/* The name of a CLBlast status code ("CLBlastInsufficientMemoryTemp"); OpenCL codes map to their
 * CL_ names. */
const char *ldm_clblast_error_name(int clblast_status);

#ifdef __cplusplus
}
#endif
#endif
