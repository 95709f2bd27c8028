/* tools/sample_previews.c: ldmcl-sample's x0 previews and per-step line (sample_previews.h). */
#include "sample_previews.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample_output.h"

int x0_want(void *user, int k, int steps) {
    const x0_saver *x = user;
    (void)steps;
    if (!strcmp(x->steps, "all")) return 1;
    for (const char *q = x->steps;;) {
        char *end;
        if (strtol(q, &end, 10) == k + 1) return 1;
        if (*end != ',') return 0;
        q = end + 1;
    }
}

ldm_status x0_take(void *user, int k, int t, const float *images) {
    const x0_saver *x = user;
    size_t per = (size_t)x->channels * x->height * x->width;
    for (int j = 0; j < x->batch; j++) {
        char base[OUTPUT_MAX], path[OUTPUT_MAX];
        output_name(x->output, x->first_index + j, base, sizeof base); /* fit: output_names_fit */
        x0_name(base, k + 1, path, sizeof path);
        ldm_status st = write_png_scaled(path, images + (size_t)j * per, x->channels, x->height,
                                         x->width, x->scale, NULL);
        if (st != LDM_OK) return st;
        printf("%s: x0 after step %d (t = %d)\n", path, k + 1, t);
    }
    return LDM_OK;
}

int x0_list_ok(const char *list, long *last) {
    *last = 0;
    if (!strcmp(list, "all")) return 1;
    for (const char *q = list;;) {
        char *end;
        errno = 0;
        long n = strtol(q, &end, 10);
        if (end == q || n < 1 || errno == ERANGE) return 0;
        if (n > *last) *last = n;
        if (!*end) return 1;
        if (*end != ',') return 0;
        q = end + 1;
    }
}

int x0_steps_ok(const char *list, long last, int steps, const char *whose) {
    if (last <= steps) return 1;
    fprintf(stderr,
            "ldmcl-sample: --save-x0 %s: step %ld is beyond the %d sampling steps (%s); choose "
            "steps from 1 to %d\n",
            list, last, steps, whose, steps);
    return 0;
}

void show_step(void *user, int k, int steps) {
    progress_line *p = user;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (k == 0 || p->start.tv_sec == 0) p->start = now;
    double s =
        (double)(now.tv_sec - p->start.tv_sec) + 1e-9 * (double)(now.tv_nsec - p->start.tv_nsec);
    if (k == 0)
        fprintf(stderr, "\rsampling: step 1/%d", steps);
    else
        fprintf(stderr, "\rsampling: step %d/%d  %.2f s/it   ", k + 1, steps, s / k);
    if (k + 1 == steps) fputc('\n', stderr);
    fflush(stderr);
}
