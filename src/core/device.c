/* src/core/device.c: enumerates OpenCL platforms and devices, reads what --list-devices shows,
 * and resolves a --cl-platform/--cl-device selection (index or name substring) to one device. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "select.h"

#define MAX_PLATFORMS 32
#define MAX_DEVICES 64

static void get_platform_str(cl_platform_id p, cl_platform_info what, char *buf, size_t size) {
    buf[0] = '\0';
    if (clGetPlatformInfo(p, what, size, buf, NULL) != CL_SUCCESS) buf[0] = '\0';
    buf[size - 1] = '\0';
}

static void get_device_str(cl_device_id d, cl_device_info what, char *buf, size_t size) {
    buf[0] = '\0';
    if (clGetDeviceInfo(d, what, size, buf, NULL) != CL_SUCCESS) buf[0] = '\0';
    buf[size - 1] = '\0';
    /* Some drivers pad names with spaces. */
    size_t n = strlen(buf);
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
}

static int has_extension(const char *extensions, const char *name) {
    size_t n = strlen(name);
    for (const char *p = extensions; (p = strstr(p, name)) != NULL; p += n) {
        int starts = p == extensions || p[-1] == ' ';
        int ends = p[n] == '\0' || p[n] == ' ';
        if (starts && ends) return 1;
    }
    return 0;
}

ldm_status ldm_device_query(cl_platform_id platform, cl_device_id device, ldm_device_info *info) {
    memset(info, 0, sizeof *info);
    get_platform_str(platform, CL_PLATFORM_NAME, info->platform_name, sizeof info->platform_name);
    get_platform_str(platform, CL_PLATFORM_VERSION, info->platform_version,
                     sizeof info->platform_version);
    get_device_str(device, CL_DEVICE_NAME, info->device_name, sizeof info->device_name);
    get_device_str(device, CL_DEVICE_VENDOR, info->device_vendor, sizeof info->device_vendor);
    get_device_str(device, CL_DEVICE_VERSION, info->device_version, sizeof info->device_version);
    get_device_str(device, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    get_device_str(device, CL_DEVICE_OPENCL_C_VERSION, info->opencl_c_version,
                   sizeof info->opencl_c_version);

    cl_device_type type = 0;
    cl_uint cu = 0, align = 0;
    cl_ulong gmem = 0, maxalloc = 0, lmem = 0;
    cl_device_local_mem_type ltype = CL_LOCAL;
    size_t wg = 0;
    cl_int err = clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxalloc, &maxalloc, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_TYPE, sizeof ltype, &ltype, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align, &align, NULL);
    if (err != CL_SUCCESS)
        return LDM_FAIL(LDM_ERR_OPENCL, "clGetDeviceInfo failed for device '%s' of platform '%s'",
                        info->device_name, info->platform_name);
    info->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    info->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    info->compute_units = cu;
    info->global_mem_bytes = gmem;
    info->max_alloc_bytes = maxalloc;
    info->local_mem_bytes = lmem;
    info->local_mem_is_global = ltype == CL_GLOBAL;
    info->max_work_group_size = wg;
    info->mem_base_addr_align_bits = align;

    size_t ext_len = 0;
    if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len) == CL_SUCCESS &&
        ext_len > 0) {
        char *ext = malloc(ext_len + 1);
        if (!ext) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, ext_len, ext, NULL) == CL_SUCCESS) {
            ext[ext_len] = '\0';
            info->has_fp16 = has_extension(ext, "cl_khr_fp16");
            info->has_fp64 = has_extension(ext, "cl_khr_fp64");
            info->has_subgroups =
                has_extension(ext, "cl_khr_subgroups") || has_extension(ext, "cl_intel_subgroups");
        }
        free(ext);
    }
    return LDM_OK;
}

/* Platform and device ids of the whole machine, in listing order. */
typedef struct machine {
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint n_platforms;
    cl_device_id devices[MAX_PLATFORMS][MAX_DEVICES];
    cl_uint n_devices[MAX_PLATFORMS];
} machine;

static ldm_status machine_scan(machine *m) {
    memset(m, 0, sizeof *m);
    cl_int err = clGetPlatformIDs(MAX_PLATFORMS, m->platforms, &m->n_platforms);
    if (err == CL_PLATFORM_NOT_FOUND_KHR_VALUE || (err == CL_SUCCESS && m->n_platforms == 0)) {
        m->n_platforms = 0;
        return LDM_OK;
    }
    if (err != CL_SUCCESS) return LDM_CL_FAIL(err, "clGetPlatformIDs", "listing OpenCL platforms");
    if (m->n_platforms > MAX_PLATFORMS) m->n_platforms = MAX_PLATFORMS;
    for (cl_uint p = 0; p < m->n_platforms; p++) {
        err = clGetDeviceIDs(m->platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, m->devices[p],
                             &m->n_devices[p]);
        if (err == CL_DEVICE_NOT_FOUND)
            m->n_devices[p] = 0;
        else if (err != CL_SUCCESS)
            return LDM_CL_FAIL(err, "clGetDeviceIDs", "listing the devices of platform %u", p);
        if (m->n_devices[p] > MAX_DEVICES) m->n_devices[p] = MAX_DEVICES;
    }
    return LDM_OK;
}

ldm_status ldm_list_devices(ldm_device_info **out, int *count) {
    *out = NULL;
    *count = 0;
    machine m;
    LDM_TRY(machine_scan(&m));
    int total = 0;
    for (cl_uint p = 0; p < m.n_platforms; p++)
        total += (int)m.n_devices[p];
    if (total == 0) return LDM_OK;
    ldm_device_info *list = calloc((size_t)total, sizeof *list);
    if (!list) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    int k = 0;
    for (cl_uint p = 0; p < m.n_platforms; p++) {
        for (cl_uint d = 0; d < m.n_devices[p]; d++, k++) {
            ldm_status st = ldm_device_query(m.platforms[p], m.devices[p][d], &list[k]);
            if (st != LDM_OK) {
                free(list);
                return st;
            }
            list[k].platform_index = (int)p;
            list[k].device_index = (int)d;
            list[k].global_index = k;
        }
    }
    *out = list;
    *count = total;
    return LDM_OK;
}

/* A selection value is an index when it is all digits. */
static int parse_index(const char *s, int *index) {
    if (!s || !*s) return 0;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p)) return 0;
        v = v * 10 + (*p - '0');
        if (v > 1000000) return 0;
    }
    *index = (int)v;
    return 1;
}

static void append_listing(char *buf, size_t size, const ldm_device_info *list, int n) {
    size_t used = strlen(buf);
    for (int i = 0; i < n && used + 1 < size; i++) {
        snprintf(buf + used, size - used, "\n  device %d: platform %d '%s', device %d '%s'",
                 list[i].global_index, list[i].platform_index, list[i].platform_name,
                 list[i].device_index, list[i].device_name);
        used = strlen(buf);
    }
}

ldm_status ldm_select_device(const char *platform_sel, const char *device_sel,
                             cl_platform_id *platform, cl_device_id *device, int *global_index,
                             char *chosen_by, size_t chosen_by_size) {
    const char *psel = platform_sel && *platform_sel ? platform_sel : getenv("LDMCL_CL_PLATFORM");
    const char *dsel = device_sel && *device_sel ? device_sel : getenv("LDMCL_CL_DEVICE");
    if (psel && !*psel) psel = NULL;
    if (dsel && !*dsel) dsel = NULL;
    const char *pfrom = platform_sel && *platform_sel ? "--cl-platform" : "LDMCL_CL_PLATFORM";
    const char *dfrom = device_sel && *device_sel ? "--cl-device" : "LDMCL_CL_DEVICE";

    machine m;
    LDM_TRY(machine_scan(&m));
    ldm_device_info *list = NULL;
    int n = 0;
    LDM_TRY(ldm_list_devices(&list, &n));
    if (n == 0) {
        free(list);
        return LDM_FAIL(LDM_ERR_NO_DEVICE, "no OpenCL device found. %s",
                        ldm_cl_error_hint(CL_DEVICE_NOT_FOUND));
    }

    /* Resolve the platform, if one was asked for. */
    int want_platform = -1;
    if (psel) {
        int idx;
        if (parse_index(psel, &idx)) {
            if (idx < (int)m.n_platforms) want_platform = idx;
        } else {
            for (int i = 0; i < n && want_platform < 0; i++)
                if (ldm_contains_nocase(list[i].platform_name, psel))
                    want_platform = list[i].platform_index;
        }
        if (want_platform < 0) {
            char msg[4096];
            snprintf(msg, sizeof msg, "no OpenCL platform matches %s '%s'; the machine has:", pfrom,
                     psel);
            append_listing(msg, sizeof msg, list, n);
            free(list);
            return LDM_FAIL(LDM_ERR_NO_DEVICE, "%s", msg);
        }
    }

    int pick = -1;
    if (dsel) {
        int idx;
        if (parse_index(dsel, &idx)) {
            if (want_platform >= 0) {
                for (int i = 0; i < n; i++)
                    if (list[i].platform_index == want_platform && list[i].device_index == idx)
                        pick = i;
            } else if (idx < n) {
                pick = idx;
            }
        } else {
            for (int i = 0; i < n && pick < 0; i++)
                if ((want_platform < 0 || list[i].platform_index == want_platform) &&
                    ldm_contains_nocase(list[i].device_name, dsel))
                    pick = i;
        }
        if (pick < 0) {
            char msg[4096];
            snprintf(msg, sizeof msg,
                     "no OpenCL device matches %s '%s'%s%s%s; the machine has:", dfrom, dsel,
                     want_platform >= 0 ? " on platform '" : "", want_platform >= 0 ? psel : "",
                     want_platform >= 0 ? "'" : "");
            append_listing(msg, sizeof msg, list, n);
            free(list);
            return LDM_FAIL(LDM_ERR_NO_DEVICE, "%s", msg);
        }
        snprintf(chosen_by, chosen_by_size, "%s '%s'", dfrom, dsel);
    } else {
        for (int i = 0; i < n && pick < 0; i++)
            if ((want_platform < 0 || list[i].platform_index == want_platform) && list[i].is_gpu)
                pick = i;
        for (int i = 0; i < n && pick < 0; i++)
            if (want_platform < 0 || list[i].platform_index == want_platform) pick = i;
        if (pick < 0) {
            free(list);
            return LDM_FAIL(LDM_ERR_NO_DEVICE, "platform %d (%s '%s') has no devices",
                            want_platform, pfrom, psel);
        }
        snprintf(chosen_by, chosen_by_size, "%s",
                 list[pick].is_gpu ? "the first GPU" : "the first device (no GPU found)");
    }
    *platform = m.platforms[list[pick].platform_index];
    *device = m.devices[list[pick].platform_index][list[pick].device_index];
    *global_index = pick;
    free(list);
    return LDM_OK;
}
