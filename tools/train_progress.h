/* tools/train_progress.h: ldmcl-train's terminal: a progress line that fits the terminal's width
 * and never wraps (stage and run steps, a smoothed loss, it/s, ETA h:mm:ss for the stage and the
 * run), plain lines when stdout is not a terminal, and the summary at the end. */
#ifndef LDMCL_TOOLS_TRAIN_PROGRESS_H
#define LDMCL_TOOLS_TRAIN_PROGRESS_H

#include "ldmcl/ldmcl.h"

typedef struct train_progress {
    int tty, verbose;
    int columns; /* the terminal's width (TIOCGWINSZ; 80 when unknown) */
    char stage[32];
    int first_step;    /* the stage's first step in this process (after a resume: not 1) */
    double last_print; /* plain lines: when the last was printed */
    double smoothed;   /* EMA of the stage's logged loss */
    int line_open;     /* a progress line is on the screen, not ended */
    /* for the summary: per stage, the steps of this process and the last smoothed loss */
    int ae_steps, ldm_steps;
    double ae_loss, ldm_loss;
} train_progress;

void train_progress_init(train_progress *p, int verbose);

/* ldm_progress_fn */
void train_progress_step(void *user, const ldm_run_progress *r);

/* Ends an open progress line (before a log message or an error). */
void train_progress_break(train_progress *p);

/* The summary: wall time, steps and final (smoothed) losses of each stage, the model folder;
 * with a sampler (the ldmcl-sample beside this program) and a prompt, the command that samples
 * the model, runnable as printed. */
void train_progress_summary(const train_progress *p, double seconds, const char *model_dir,
                            const char *sampler, const char *prompt);

/* h:mm:ss of seconds into buf. */
const char *train_hms(double seconds, char *buf, size_t size);

#endif
