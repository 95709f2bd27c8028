/* ldmcl/context.h: OpenCL platforms and devices, device selection, and the ldm_ctx that holds one
 * context, one in-order profiling queue, the program caches and the device-memory accounting.
 *
 * Selection: a platform and a device may each be given as an index or as a case-insensitive
 * substring of the name. Unset fields fall back to $LDMCL_CL_PLATFORM and $LDMCL_CL_DEVICE;
 * with nothing set, the first GPU of any platform is used, else the first device. */
#ifndef LDMCL_CONTEXT_H
#define LDMCL_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/cl.h"
#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What --list-devices prints about one device. */
typedef struct ldm_device_info {
    int platform_index; /* index of the platform in clGetPlatformIDs order */
    int device_index;   /* index of the device within its platform */
    int global_index;   /* index over all platforms, in listing order */
    char platform_name[128];
    char platform_version[128];
    char device_name[128];
    char device_vendor[128];
    char device_version[128];
    char driver_version[128];
    char opencl_c_version[128];
    int is_gpu; /* CL_DEVICE_TYPE_GPU */
    int is_cpu; /* CL_DEVICE_TYPE_CPU */
    unsigned compute_units;
    uint64_t global_mem_bytes;
    uint64_t max_alloc_bytes; /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t local_mem_bytes;
    int local_mem_is_global; /* CL_GLOBAL: local memory is emulated in global memory */
    size_t max_work_group_size;
    unsigned mem_base_addr_align_bits;
    int has_fp16;
    int has_fp64;
    int has_subgroups;
} ldm_device_info;

/* All devices of all platforms, in listing order. *out is malloc'ed; free() it. A machine with no
 * platform is not an error here: *count is 0. */
ldm_status ldm_list_devices(ldm_device_info **out, int *count);

/* Receives the library's warnings and notes (cache misses, cache files rebuilt, ...). The library
 * itself never prints; programs pass a function that does. */
typedef enum ldm_log_level { LDM_LOG_DEBUG = 0, LDM_LOG_INFO = 1, LDM_LOG_WARN = 2 } ldm_log_level;
typedef void (*ldm_log_fn)(void *user, ldm_log_level level, const char *message);

typedef struct ldm_ctx_options {
    const char *platform;   /* index or name substring; NULL: $LDMCL_CL_PLATFORM, then default */
    const char *device;     /* index or name substring; NULL: $LDMCL_CL_DEVICE, then default.
                               An index counts within the selected platform when a platform was
                               given, and over all platforms (global_index) when not. */
    const char *kernel_dir; /* load cl/ sources from this directory instead of the embedded copies;
                               NULL: $LDMCL_CL_DIR, then embedded */
    const char *cache_dir;  /* binary kernel cache directory; NULL: $LDMCL_CL_CACHE_DIR, then
                               $XDG_CACHE_HOME/ldmcl/kernels, then $HOME/.cache/ldmcl/kernels */
    int binary_cache;       /* 1 on, 0 off, -1 (default): on unless $LDMCL_CL_CACHE=0 */
    int cpu_kernels;        /* 1: kernel variants laid out for CPUs (cl/conv.cl's *_rows), 0: the
                               ones for GPUs, -1 (default): $LDMCL_CPU_KERNELS (0 or 1), else by
                               device type. Results are the same; only speed differs */
    int no_gemm_tuning;     /* 1: leave CLBlast's GEMM parameters alone (no tuning file); see
                               ldm_gemm_tune in gemm.h */
    int kernel_transfers;   /* 1: host writes, fills and buffer copies run as kernels
                               (cl/transfer.cl) instead of the driver's commands, 0: they do not,
                               -1 (default): $LDMCL_KERNEL_TRANSFERS (0 or 1), else only on the
                               Oclgrind simulator, whose uninitialised-value checks need it (see
                               src/core/transfer.c). Results are the same */
    ldm_log_fn log;         /* NULL: messages are dropped */
    void *log_user;
} ldm_ctx_options;

/* Sets every field to its default (NULLs, binary_cache = cpu_kernels = kernel_transfers = -1). */
void ldm_ctx_options_init(ldm_ctx_options *o);

typedef struct ldm_ctx ldm_ctx;

/* Selects a device, creates a context and an in-order queue with profiling enabled. */
ldm_status ldm_ctx_create(const ldm_ctx_options *o, ldm_ctx **out);
void ldm_ctx_destroy(ldm_ctx *ctx);

const ldm_device_info *ldm_ctx_device_info(const ldm_ctx *ctx);
cl_context ldm_ctx_cl_context(const ldm_ctx *ctx);
cl_command_queue ldm_ctx_queue(const ldm_ctx *ctx);
cl_device_id ldm_ctx_cl_device(const ldm_ctx *ctx);

/* Whether this context runs the CPU variants of kernels (ldm_ctx_options.cpu_kernels). */
int ldm_ctx_cpu_kernels(const ldm_ctx *ctx);

/* The kernels' work-group sizes and tiles this context runs (src/core/tunables.h), as the text
 * $LDMCL_TUNABLES takes ("attn_tile=32,16 attn_side=8 ..."), into buf. */
void ldm_ctx_tunables_text(const ldm_ctx *ctx, char *buf, size_t size);
/* Sets the entries in text over the context's table (for measuring candidates: graphs recorded
 * afterwards use them). Fails naming the entry; the table is unchanged then. */
ldm_status ldm_ctx_set_tunables_text(ldm_ctx *ctx, const char *text);
/* Writes the context's table as the device's tunables file in the kernel cache directory, where
 * every later context on this device and driver reads it; its path into path. */
ldm_status ldm_ctx_save_tunables(ldm_ctx *ctx, const char *comment, char *path, size_t size);

/* Whether this context's host writes, fills and copies run as kernels
 * (ldm_ctx_options.kernel_transfers). */
int ldm_ctx_kernel_transfers(const ldm_ctx *ctx);

/* Where the binary kernel cache lives ("" when it is disabled). */
const char *ldm_ctx_cache_dir(const ldm_ctx *ctx);

/* Caps this context's device allocations (arenas) at `bytes`, below what the device reports, e.g.
 * to share a GPU. 0 removes the cap. */
void ldm_ctx_set_memory_limit(ldm_ctx *ctx, uint64_t bytes);

/* Treats the device's largest single allocation as at most `bytes` (0: as reported): buffers are
 * planned and checked against it. For drivers that overstate it, and for tests. */
void ldm_ctx_set_max_allocation(ldm_ctx *ctx, uint64_t bytes);
uint64_t ldm_ctx_max_allocation(const ldm_ctx *ctx);

/* Bytes of device memory this context's arenas hold now. */
uint64_t ldm_ctx_device_bytes_in_use(const ldm_ctx *ctx);

/* Waits for all queued work; reports asynchronous failures (e.g. a kernel killed by a watchdog). */
ldm_status ldm_ctx_finish(ldm_ctx *ctx);

/* Profiling by kernel. Between begin and end, every replay of a recorded command stream waits
 * for each launch and adds its device time to a table keyed by what it runs (a kernel's function
 * name, "gemm", "fill" or "copy"). Slows the replays it covers; for finding where time goes. */
typedef struct ldm_profile_entry {
    char name[64];
    double ms;     /* device time, summed */
    long launches; /* how many launches */
} ldm_profile_entry;
ldm_status ldm_ctx_profile_begin(ldm_ctx *ctx);
/* Stops profiling and writes the table, longest first, into out (at most max entries; NULL with
 * max 0 to discard). Returns the number of distinct entries (which may exceed max). */
size_t ldm_ctx_profile_end(ldm_ctx *ctx, ldm_profile_entry *out, size_t max);

/* Formats a byte count as "1.50 GiB", "12.0 KiB" or "512 B" into buf. Returns buf. */
char *ldm_format_bytes(uint64_t bytes, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
