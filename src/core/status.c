/* src/core/status.c: the kept error message of each thread, and the status-code names.
 * Messages read "file:line: what failed. what to do". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LDM_MESSAGE_MAX (1u << 20) /* build logs are kept up to 1 MiB */

static _Thread_local char *g_message;
static _Thread_local size_t g_message_cap;

/* The main thread's message, freed when the process exits: LeakSanitizer, run without scanning
 * thread-local storage (tests/CMakeLists.txt says why), would count it as leaked. */
__attribute__((destructor)) static void free_message(void) {
    free(g_message);
    g_message = NULL;
    g_message_cap = 0;
}

static void message_reserve(size_t need) {
    if (need <= g_message_cap) return;
    size_t cap = g_message_cap ? g_message_cap : 256;
    while (cap < need && cap < LDM_MESSAGE_MAX)
        cap *= 2;
    if (cap > LDM_MESSAGE_MAX) cap = LDM_MESSAGE_MAX;
    char *p = realloc(g_message, cap);
    if (!p) return; /* keep the old, shorter buffer */
    g_message = p;
    g_message_cap = cap;
}

static void message_set_v(const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void message_set_v(const char *prefix, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int body = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    size_t plen = strlen(prefix);
    size_t need = plen + (body > 0 ? (size_t)body : 0) + 1;
    message_reserve(need);
    if (!g_message_cap) return;
    snprintf(g_message, g_message_cap, "%s", prefix);
    if (plen < g_message_cap) vsnprintf(g_message + plen, g_message_cap - plen, fmt, ap);
}

ldm_status ldm_vfail_at(const char *file, int line, ldm_status st, const char *fmt, va_list ap) {
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s:%d: ", file, line);
    message_set_v(prefix, fmt, ap);
    return st;
}

ldm_status ldm_fail_at(const char *file, int line, ldm_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ldm_vfail_at(file, line, st, fmt, ap);
    va_end(ap);
    return st;
}

ldm_status ldm_cl_fail_at(const char *file, int line, cl_int err, const char *call, const char *fmt,
                          ...) {
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *hint = ldm_cl_error_hint(err);
    ldm_status st = LDM_ERR_OPENCL;
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_INVALID_BUFFER_SIZE)
        st = LDM_ERR_DEVICE_MEMORY;
    else if (err == CL_OUT_OF_HOST_MEMORY)
        st = LDM_ERR_HOST_MEMORY;
    return ldm_fail_at(file, line, st, "%s failed: %s (%d) while %s.%s%s", call,
                       ldm_cl_error_name(err), (int)err, what, *hint ? " " : "", hint);
}

ldm_status ldm_set_error(ldm_status st, const char *fmt, ...) {
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return ldm_restore_error(st, text);
}

ldm_status ldm_restore_error(ldm_status st, const char *message) {
    size_t n = strlen(message);
    message_reserve(n + 1);
    if (g_message_cap >= n + 1) memcpy(g_message, message, n + 1);
    return st;
}

void ldm_error_prefix(const char *fmt, ...) {
    char head[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    size_t hl = strlen(head), ml = g_message ? strlen(g_message) : 0;
    message_reserve(hl + 2 + ml + 1);
    if (g_message_cap < hl + 2 + ml + 1) return;
    memmove(g_message + hl + 2, g_message ? g_message : "", ml + 1);
    memcpy(g_message, head, hl);
    g_message[hl] = ':';
    g_message[hl + 1] = ' ';
}

const char *ldm_last_error(void) {
    return g_message ? g_message : "";
}

void ldm_clear_error(void) {
    if (g_message) g_message[0] = '\0';
}

const char *ldm_status_name(ldm_status s) {
    switch (s) {
    case LDM_OK:
        return "LDM_OK";
    case LDM_ERR_INVALID_ARGUMENT:
        return "LDM_ERR_INVALID_ARGUMENT";
    case LDM_ERR_NO_DEVICE:
        return "LDM_ERR_NO_DEVICE";
    case LDM_ERR_OPENCL:
        return "LDM_ERR_OPENCL";
    case LDM_ERR_BUILD:
        return "LDM_ERR_BUILD";
    case LDM_ERR_DEVICE_MEMORY:
        return "LDM_ERR_DEVICE_MEMORY";
    case LDM_ERR_HOST_MEMORY:
        return "LDM_ERR_HOST_MEMORY";
    case LDM_ERR_IO:
        return "LDM_ERR_IO";
    case LDM_ERR_CLBLAST:
        return "LDM_ERR_CLBLAST";
    case LDM_ERR_NOT_FOUND:
        return "LDM_ERR_NOT_FOUND";
    case LDM_ERR_FORMAT:
        return "LDM_ERR_FORMAT";
    case LDM_ERR_SELFTEST:
        return "LDM_ERR_SELFTEST";
    case LDM_ERR_JOB:
        return "LDM_ERR_JOB";
    }
    return "LDM_ERR_UNKNOWN";
}
