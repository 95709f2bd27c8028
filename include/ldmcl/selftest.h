/* ldmcl/selftest.h: a quick check that this device computes what ldmcl's kernels and CLBlast are
 * meant to compute, against references on the host. Answers "is my driver giving wrong results?"
 * before any model runs. */
#ifndef LDMCL_SELFTEST_H
#define LDMCL_SELFTEST_H

#include "ldmcl/context.h"
#include "ldmcl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called once per check with its name, whether it passed, and a line of detail. */
typedef void (*ldm_selftest_report_fn)(void *user, const char *check, int passed,
                                       const char *detail);

/* Runs every check. Returns LDM_OK when all pass, LDM_ERR_SELFTEST when a result is wrong (the
 * message names the first wrong check), or the status of a failing call. */
ldm_status ldm_selftest_run(ldm_ctx *ctx, ldm_selftest_report_fn report, void *user);

#ifdef __cplusplus
}
#endif
#endif
