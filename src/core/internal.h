/* src/core/internal.h: what the runtime files share and the public API hides: the ldm_ctx
 * layout and small helpers (file reads, atomic writes, bytes). It sees the runtime's public
 * headers only; the error-reporting macros are in fail.h. Not installed. */
#ifndef LDMCL_CORE_INTERNAL_H
#define LDMCL_CORE_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fail.h"
#include "ldmcl/buffer.h"
#include "ldmcl/cl.h"
#include "ldmcl/cmd.h"
#include "ldmcl/context.h"
#include "ldmcl/gemm.h"
#include "ldmcl/program.h"
#include "ldmcl/status.h"
#include "tunables.h"

/* ---- the context ------------------------------------------------------------------------- */

typedef struct ldm_kernel_entry {
    char *name;
    cl_kernel kernel;
} ldm_kernel_entry;

typedef struct ldm_program_entry {
    char *file;
    char *defines;
    cl_program program;
    ldm_kernel_entry *kernels;
    int n_kernels, cap_kernels;
} ldm_program_entry;

struct ldm_ctx {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    ldm_device_info info;

    char *kernel_dir; /* NULL: embedded sources */
    char *cache_dir;  /* NULL: binary cache off */

    ldm_log_fn log;
    void *log_user;

    ldm_program_entry *programs;
    int n_programs, cap_programs;
    ldm_cache_stats stats;

    ldm_cmd *immediate; /* created on first use */

    uint64_t mem_limit;     /* 0: none beyond the device's */
    uint64_t max_alloc_cap; /* 0: the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t mem_in_use;    /* bytes held by this context's arenas */

    int cpu_kernels;               /* ldm_ctx_options.cpu_kernels, resolved */
    ldm_tunables tunables;         /* resolved at creation (tunables.c) */
    int gemm_tuned;                /* CLBlast runs parameters from a tuning file (gemm_tuning.c) */
    int kernel_transfers;          /* ldm_ctx_options.kernel_transfers, resolved (transfer.c) */
    cl_kernel transfer_kernels[2]; /* fill and copy, made at first use (transfer.c) */

    int profiling; /* between ldm_ctx_profile_begin and _end */
    ldm_profile_entry *profile;
    size_t n_profile, cap_profile;
};

/* Host writes, fills and copies as kernels (transfer.c; used by buffer.c, arena.c and cmd.c when
 * ctx->kernel_transfers): dst receives count floats from host memory, a value, or src. */
ldm_status ldm_transfer_write(ldm_ctx *ctx, ldm_buf dst, const void *src, size_t count);
ldm_status ldm_transfer_fill(ldm_ctx *ctx, ldm_buf dst, float value, size_t count, cl_event *ev);
ldm_status ldm_transfer_copy(ldm_ctx *ctx, ldm_buf dst, ldm_buf src, size_t count, cl_event *ev);
/* Counts the contexts open in this process; when the last closes, CLBlast's program cache is
 * emptied (gemm.c). */
void ldm_gemm_context_opened(void);
void ldm_gemm_context_closed(void);

/* Makes the transfer kernels now (when a fill or copy is recorded), so replays look nothing up. */
ldm_status ldm_transfer_prepare(ldm_ctx *ctx);
/* Zeroes a new buffer of `bytes` by one host write of the whole of it (see transfer.c). */
ldm_status ldm_transfer_zero_whole(ldm_ctx *ctx, cl_mem mem, uint64_t bytes);

/* Adds one launch's device time to the context's profile (ldm_ctx_profile_begin). */
ldm_status ldm_ctx_profile_add(ldm_ctx *ctx, const char *name, double ms);

/* Formats a message and hands it to the context's log function, if any. */
void ldm_log(const ldm_ctx *ctx, ldm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills info for one device (indices are left to the caller). */
ldm_status ldm_device_query(cl_platform_id platform, cl_device_id device, ldm_device_info *info);

/* ---- sources and the binary cache (program.c, source.c, binary_cache.c) ------------------ */

/* Reads cl/<file> from ctx->kernel_dir or the embedded copies, without expanding includes. */
ldm_status ldm_source_read(const ldm_ctx *ctx, const char *file, char **out, size_t *len);

/* Tries to create and build the program from the cache file for key_hex. Returns 1 and sets *out
 * on success, 0 on a miss or a rejected file (which is deleted). Never fails otherwise. */
int ldm_binary_cache_load(ldm_ctx *ctx, const char *key_hex, const char *options, cl_program *out);

/* Writes the binary of a built program under key_hex, atomically. Failures are logged. */
void ldm_binary_cache_store(ldm_ctx *ctx, const char *key_hex, cl_program program);

/* The cache file path for key_hex into buf (ctx->cache_dir must be set). */
ldm_status ldm_binary_cache_path(const ldm_ctx *ctx, const char *key_hex, char *buf, size_t size);

/* ---- GEMM (gemm.c) ------------------------------------------------------------------------ */

/* How a GEMM will run: its temporary bytes, and whether a batch is one strided-batched call. */
typedef struct ldm_gemm_plan {
    size_t temp_bytes;
    int batched_single;
} ldm_gemm_plan;

/* Checks the shape and decides the plan (any_offset: some operand has a nonzero offset). */
ldm_status ldm_gemm_prepare(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t batch, int any_offset,
                            ldm_gemm_plan *plan);
/* Enqueues a prepared GEMM; temp must hold plan->temp_bytes (or be NULL when that is 0). */
ldm_status ldm_gemm_enqueue(ldm_ctx *ctx, const ldm_gemm_shape *s, size_t batch, float alpha,
                            ldm_buf A, size_t stride_a, ldm_buf B, size_t stride_b, float beta,
                            ldm_buf C, size_t stride_c, cl_mem temp, const ldm_gemm_plan *plan,
                            cl_event *ev);

/* ---- GEMM tuning (gemm_tuning.c, gemm_tune.c) ------------------------------------------- */

#define LDM_GEMM_TUNING_MAX_PARAMS 24
#define LDM_GEMM_TUNING_MAX_KERNELS 4
/* One CLBlast kernel's parameters ("Xgemm", "GemmRoutine"), as CLBlastOverrideParameters takes
 * them: every parameter the kernel has. */
typedef struct ldm_gemm_tuning_kernel {
    char kernel[32];
    int n;
    char names[LDM_GEMM_TUNING_MAX_PARAMS][32];
    size_t values[LDM_GEMM_TUNING_MAX_PARAMS];
} ldm_gemm_tuning_kernel;
typedef struct ldm_gemm_tuning {
    int n; /* 0: CLBlast's defaults */
    ldm_gemm_tuning_kernel kernels[LDM_GEMM_TUNING_MAX_KERNELS];
} ldm_gemm_tuning;
/* Parses a tuning file's text (modified in place); errors name path and line. */
ldm_status ldm_gemm_tuning_parse(const char *path, char *text, ldm_gemm_tuning *t);
ldm_status ldm_gemm_tuning_load_file(const char *path, ldm_gemm_tuning *t);
/* Hands the parameters to CLBlast for this context's device (for the whole process). */
ldm_status ldm_gemm_tuning_apply(ldm_ctx *ctx, const ldm_gemm_tuning *t);
ldm_status ldm_gemm_tuning_apply_kernel(ldm_ctx *ctx, const ldm_gemm_tuning_kernel *k);
/* Whether this process has handed CLBlast any parameters (they stay for its lifetime). */
int ldm_gemm_tuning_overridden(void);
/* Writes the device's tuning file atomically; comment (may be NULL) goes in as a '#' line. */
ldm_status ldm_gemm_tuning_save(ldm_ctx *ctx, const ldm_gemm_tuning *t, const char *comment);
/* At context creation: applies the device's tuning file when there is one. A file that does not
 * parse or that CLBlast rejects is reported as a warning naming it, and CLBlast's defaults stay. */
void ldm_gemm_tuning_load(ldm_ctx *ctx);

/* Device memory this context may still allocate (arena.c): the device's global memory or the
 * context's limit, whichever is lower, less what its arenas hold; *limit and *which (may be NULL)
 * get that bound and its description. */
uint64_t ldm_ctx_free_bytes(const ldm_ctx *ctx, uint64_t *limit, const char **which);

/* ---- small helpers (util.c) -------------------------------------------------------------- */

char *ldm_strdup(const char *s);
/* Seconds from a monotonic clock (for intervals). */
double ldm_now_s(void);
/* Opens path for reading ("rb") only when it is a regular file (symbolic links followed): a FIFO
 * would block the open, or the reads, forever, and a device never ends. Opened without blocking,
 * checked with fstat, then set back to blocking. 0 on success; otherwise *out is NULL and the
 * result is errno (it could not be opened) or -1 (*kind says what it is instead: "a FIFO (named
 * pipe)", "a folder", ...). */
int ldm_open_regular(const char *path, FILE **out, const char **kind);
/* Reads a whole file; *out is malloc'ed with a terminating NUL not counted in *len. */
ldm_status ldm_read_file(const char *path, char **out, size_t *len);
/* mkdir -p; 0 on success, else errno. */
int ldm_mkdirs(const char *path);
/* How many of x[0..n) are NaN or infinite; *first (may be NULL) gets the first one's index. */
size_t ldm_count_non_finite(const float *x, size_t n, size_t *first);

/* Atomic file writes (src/core/atomic_file.c): open a temporary next to path, write through
 * ldm_atomic_write/printf (or f), then commit (ok = 0 when a write failed: the temporary is
 * removed and the error names path and why: "No space left on device") or abandon. A reader
 * sees the old file or the whole new one. */
typedef struct ldm_atomic_file {
    FILE *f;
    int err; /* errno of the first write that failed through ldm_atomic_write/printf, else 0 */
    char path[4096];
    char tmp[4160];
} ldm_atomic_file;
ldm_status ldm_atomic_open(ldm_atomic_file *a, const char *path);
/* Write through a->f; on failure keep errno for the commit's message. 1 when all was written. */
int ldm_atomic_write(ldm_atomic_file *a, const void *data, size_t n);
int ldm_atomic_printf(ldm_atomic_file *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
ldm_status ldm_atomic_commit(ldm_atomic_file *a, int ok);
void ldm_atomic_abandon(ldm_atomic_file *a);
/* "<cache dir>/<prefix>-<hash of platform, device and driver>.txt": a file kept per device and
 * driver (gemm_tuning.c); `what` names it when the cache is off. */
ldm_status ldm_device_file_path(const ldm_ctx *ctx, const char *what, const char *prefix, char *buf,
                                size_t size);
/* Case-insensitive substring test. */
int ldm_contains_nocase(const char *haystack, const char *needle);

#endif
