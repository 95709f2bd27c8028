/* src/core/fail.h: how every layer reports an error: LDM_FAIL keeps "file:line: message" for this
 * thread and returns a status, LDM_TRY passes a failure up, ldm_error_prefix adds what the caller
 * was doing, LDM_CL_FAIL names a failed OpenCL call with its error and a hint. Not installed. */
#ifndef LDMCL_CORE_FAIL_H
#define LDMCL_CORE_FAIL_H

#include <stdarg.h>

#include "ldmcl/cl.h"
#include "ldmcl/status.h"

/* Keeps "file:line: <message>" for this thread and returns st. */
ldm_status ldm_fail_at(const char *file, int line, ldm_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
ldm_status ldm_vfail_at(const char *file, int line, ldm_status st, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* For a failed OpenCL call: "file:line: <call> failed: CL_NAME (code) while <what>. <hint>". */
ldm_status ldm_cl_fail_at(const char *file, int line, cl_int err, const char *call, const char *fmt,
                          ...) __attribute__((format(printf, 5, 6)));

/* What a user can do about an OpenCL error, or "" when there is nothing general to say. */
const char *ldm_cl_error_hint(cl_int err);

/* Makes message (kept earlier, e.g. by a graph) this thread's message again; returns st. */
ldm_status ldm_restore_error(ldm_status st, const char *message);

/* Prepends "<context>: " to the kept message (for callers that add what they were doing). */
void ldm_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define LDM_FAIL(st, ...) ldm_fail_at(__FILE__, __LINE__, (st), __VA_ARGS__)
#define LDM_CL_FAIL(err, call, ...) ldm_cl_fail_at(__FILE__, __LINE__, (err), (call), __VA_ARGS__)
#define LDM_TRY(expr)                                                                              \
    do {                                                                                           \
        ldm_status ldm_try_status_ = (expr);                                                       \
        if (ldm_try_status_ != LDM_OK) return ldm_try_status_;                                     \
    } while (0)

#endif
