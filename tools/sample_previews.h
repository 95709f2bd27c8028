/* tools/sample_previews.h: what ldmcl-sample shows while it samples: the decoded x0 previews of
 * --save-x0 (which steps, their files) and the per-step line on a terminal. */
#ifndef LDMCL_TOOLS_SAMPLE_PREVIEWS_H
#define LDMCL_TOOLS_SAMPLE_PREVIEWS_H

#include <time.h>

#include "ldmcl/ldmcl.h"

/* --save-x0: which steps, and where the previews of the current generation go. */
typedef struct x0_saver {
    const char *steps;  /* "all" or 1-based step numbers separated by commas */
    const char *output; /* -o: the images' names, the previews' beside them */
    int batch, channels, height, width, scale;
    int first_index; /* the output index of the generation's first image */
} x0_saver;

/* ldm_x0_hook's want and take over an x0_saver: whether step k (0-based) is listed; the
 * generation's previews written as OUTPUT_x0-STEP.png, each name printed. */
int x0_want(void *user, int k, int steps);
ldm_status x0_take(void *user, int k, int t, const float *images);

/* Whether list is "all" or 1-based step numbers separated by commas; *last gets the largest (0
 * for "all"). */
int x0_list_ok(const char *list, long *last);

/* A step beyond the chain's `steps` would write nothing: says so (whose: what set the count) and
 * returns 0. */
int x0_steps_ok(const char *list, long last, int steps, const char *whose);

/* A per-step line on a terminal: "sampling: step 3/20  0.41 s/it", rewritten in place; show_step
 * is ldm_step_hook's step over it. */
typedef struct progress_line {
    struct timespec start;
} progress_line;
void show_step(void *user, int k, int steps);

#endif
