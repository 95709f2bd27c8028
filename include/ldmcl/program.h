/* ldmcl/program.h: OpenCL C programs and kernels.
 *
 * Sources are the files of cl/ (embedded in the library at build time, or read from a directory
 * at run time, see ldm_ctx_options.kernel_dir). A line `#include "name.clh"` in a source is
 * replaced by that file, with #line markers so build logs point at the right file and line.
 * Build options are assembled in one place (ldm_build_options); callers add only -D defines.
 * Built programs are kept in memory per context, and as binaries on disk keyed by a SHA-256 of
 * platform, device, driver, OpenCL C version, options, expanded source and ldmcl version. A cache
 * file that cannot be used for any reason is deleted and the program rebuilt from source. */
#ifndef LDMCL_PROGRAM_H
#define LDMCL_PROGRAM_H

#include <stddef.h>

#include "ldmcl/cl.h"
#include "ldmcl/context.h"
#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The program built from cl/<file> with extra -D defines (may be NULL or ""). Owned by ctx. */
ldm_status ldm_program_get(ldm_ctx *ctx, const char *file, const char *defines, cl_program *out);

/* A kernel of that program, shared through the context's cache: set its arguments and enqueue it
 * right away, since the next user of the same kernel will set its own. Owned by ctx. */
ldm_status ldm_kernel_get(ldm_ctx *ctx, const char *file, const char *kernel, const char *defines,
                          cl_kernel *out);

/* A new kernel object that the caller owns (clReleaseKernel), for launches recorded once with
 * their arguments set and replayed many times. */
ldm_status ldm_kernel_create(ldm_ctx *ctx, const char *file, const char *kernel,
                             const char *defines, cl_kernel *out);

/* The full option string used for a build with these defines, written into buf. */
ldm_status ldm_build_options(const ldm_ctx *ctx, const char *defines, char *buf, size_t size);

/* The source of cl/<file> with its includes expanded, as it is handed to the compiler.
 * *out is malloc'ed; free() it. */
ldm_status ldm_source_expand(const ldm_ctx *ctx, const char *file, char **out, size_t *len);

/* Names of the embedded cl/ files, for listings and self-tests. */
int ldm_embedded_source_count(void);
const char *ldm_embedded_source_name(int i);

/* Counters of the program caches of a context, for tests and benchmarks. */
typedef struct ldm_cache_stats {
    unsigned memory_hits;   /* program found in the in-memory cache */
    unsigned source_builds; /* programs built from source */
    unsigned disk_hits;     /* programs loaded from a binary cache file */
    unsigned disk_misses;   /* no cache file for the key */
    unsigned disk_rejected; /* a cache file existed but was unusable; deleted and rebuilt */
    unsigned disk_writes;   /* cache files written */
    unsigned disk_write_failures;
} ldm_cache_stats;

ldm_cache_stats ldm_ctx_cache_stats(const ldm_ctx *ctx);

/* The cache file a program with these defines would use ("" when the cache is off). */
ldm_status ldm_cache_file_path(ldm_ctx *ctx, const char *file, const char *defines, char *buf,
                               size_t size);

/* Drops every program and kernel from the in-memory cache (kernels from ldm_kernel_get become
 * invalid). The next ldm_program_get goes to the disk cache or builds. */
void ldm_program_cache_clear(ldm_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
