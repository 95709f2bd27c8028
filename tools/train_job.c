/* tools/train_job.c: the device a rank of a data-parallel ldmcl-train takes (see train_job.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_job.h"

static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* Whether device info d belongs to the platform named by p (index or name substring, in any
 * case, as the library matches it). */
static int on_platform(const ldm_device_info *d, const char *p) {
    if (all_digits(p)) return d->platform_index == atoi(p);
    size_t n = strlen(p);
    for (const char *h = d->platform_name; *h; h++) {
        size_t k = 0;
        while (k < n && h[k] && tolower((unsigned char)h[k]) == tolower((unsigned char)p[k]))
            k++;
        if (k == n) return 1;
    }
    return n == 0;
}

const char *train_job_device(const ldm_job *job, const char *device, const char *platform,
                             char *buf, size_t size) {
    if (ldm_job_size(job) == 1) return device;
    int local = ldm_job_local_rank(job);
    const char *list = device ? device : getenv("LDMCL_CL_DEVICE");
    if (list && strchr(list, ',')) { /* entry local % count */
        int count = 1;
        for (const char *c = list; *c; c++)
            count += *c == ',';
        int want = local % count;
        const char *at = list;
        for (int k = 0; k < want; k++)
            at = strchr(at, ',') + 1;
        size_t len = strcspn(at, ",");
        snprintf(buf, size, "%.*s", (int)len, at);
        return buf;
    }
    if (list) return list; /* every rank on this one */
    ldm_device_info *all = NULL;
    int n = 0;
    if (ldm_list_devices(&all, &n) != LDM_OK || n == 0) {
        free(all);
        return NULL; /* the library says what is missing */
    }
    const char *plat = platform ? platform : getenv("LDMCL_CL_PLATFORM");
    int chosen = -1; /* the platform's index */
    for (int i = 0; i < n && chosen < 0; i++)
        if (plat ? on_platform(&all[i], plat) : all[i].is_gpu) chosen = all[i].platform_index;
    if (chosen < 0 && !plat) chosen = all[0].platform_index;
    int m = 0;
    for (int i = 0; i < n; i++)
        m += all[i].platform_index == chosen;
    const char *out = NULL;
    for (int i = 0, k = 0; i < n && m > 0 && !out; i++) {
        if (all[i].platform_index != chosen) continue;
        if (k++ == local % m) {
            /* within the platform when one was named, over all platforms when not */
            snprintf(buf, size, "%d", plat ? all[i].device_index : all[i].global_index);
            out = buf;
        }
    }
    free(all);
    return out;
}
