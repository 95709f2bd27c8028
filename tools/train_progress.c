/* tools/train_progress.c: ldmcl-train's progress line and summary (see train_progress.h). */
#include "train_progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

enum { EMA_WINDOW = 20 }; /* the smoothed loss: an EMA with weight 1/20 for the newest step */

static int terminal_columns(void) {
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    return 80;
}

void train_progress_init(train_progress *p, int verbose) {
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDOUT_FILENO);
    p->verbose = verbose;
    p->columns = p->tty ? terminal_columns() : 80;
}

const char *train_hms(double seconds, char *buf, size_t size) {
    long s = seconds > 0 ? (long)(seconds + 0.5) : 0;
    snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    return buf;
}

void train_progress_break(train_progress *p) {
    if (p->line_open) {
        printf("\n");
        p->line_open = 0;
    }
}

/* Appends " piece" to line when it still fits in width; returns whether it did. */
static int fit(char *line, size_t size, int width, const char *piece) {
    size_t n = strlen(line), k = strlen(piece);
    if ((int)(n + k) > width || n + k + 1 > size) return 0;
    memcpy(line + n, piece, k + 1);
    return 1;
}

void train_progress_step(void *user, const ldm_run_progress *r) {
    train_progress *p = user;
    int encoding = !strcmp(r->stage, "encoding");
    if (strcmp(p->stage, r->stage)) {
        train_progress_break(p);
        snprintf(p->stage, sizeof p->stage, "%s", r->stage);
        p->first_step = r->step;
        p->last_print = 0;
        p->smoothed = r->loss;
    }
    p->smoothed += (r->loss - p->smoothed) / EMA_WINDOW;
    if (!strcmp(r->stage, "autoencoder"))
        p->ae_steps = r->step - p->first_step + 1, p->ae_loss = p->smoothed;
    else if (!strcmp(r->stage, "ldm"))
        p->ldm_steps = r->step - p->first_step + 1, p->ldm_loss = p->smoothed;
    /* steps of this process over its seconds (the runner's clock starts at the first step) */
    int done = r->step - p->first_step + 1;
    double rate = r->seconds > 0 ? done / r->seconds : 0;
    double eta = rate > 0 ? (r->total - r->step) / rate : 0;
    double run_eta = rate > 0 ? (r->run_total - r->run_step) / rate : 0;
    char piece[8][96], t1[32], t2[32];
    int n = 0;
    snprintf(piece[n++], sizeof piece[0], "%s %d/%d", r->stage, r->step, r->total);
    if (!encoding) {
        snprintf(piece[n++], sizeof piece[0], "  loss %.5f", p->smoothed);
        snprintf(piece[n++], sizeof piece[0], "  %.2f it/s", rate);
        snprintf(piece[n++], sizeof piece[0], "  ETA %s", train_hms(eta, t1, sizeof t1));
        if (r->run_total > r->total) {
            /* an earlier or later stage runs at another rate: the run's ETA is this rate's */
            int last = r->run_step - r->step + r->total == r->run_total;
            snprintf(piece[n++], sizeof piece[0], "  run %d/%d", r->run_step, r->run_total);
            snprintf(piece[n++], sizeof piece[0], " ETA %s%s", last ? "" : "~",
                     train_hms(run_eta, t2, sizeof t2));
        }
    }
    if (p->tty) {
        char line[512] = "";
        int width = p->columns - 1; /* never the last column: some terminals wrap there */
        for (int i = 0; i < n; i++)
            if (!fit(line, sizeof line, width, piece[i])) break;
        printf("\r\033[K%s", line);
        p->line_open = 1;
        if (r->step == r->total) train_progress_break(p);
        fflush(stdout);
        return;
    }
    /* plain lines: the first and last steps, and about every 10 s */
    if (!encoding &&
        (r->step == p->first_step || r->step == r->total || r->seconds - p->last_print >= 10)) {
        for (int i = 0; i < n; i++)
            fputs(piece[i], stdout);
        printf("\n");
        fflush(stdout);
        p->last_print = r->seconds;
    }
}

/* s in single quotes for a POSIX shell (a ' inside as '\''). */
static void print_quoted(const char *s) {
    putchar('\'');
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", stdout);
        else
            putchar(*s);
    putchar('\'');
}

void train_progress_summary(const train_progress *p, double seconds, const char *model_dir,
                            const char *sampler, const char *prompt) {
    char t[32];
    printf("done in %s:", train_hms(seconds, t, sizeof t));
    if (p->ae_steps) printf(" autoencoder %d steps (loss %.5f);", p->ae_steps, p->ae_loss);
    if (p->ldm_steps) printf(" ldm %d steps (loss %.5f);", p->ldm_steps, p->ldm_loss);
    if (!p->ae_steps && !p->ldm_steps) printf(" nothing left to train;");
    printf(" the model: %s\n", model_dir);
    if (!sampler) return;
    printf("sample it: ");
    print_quoted(sampler);
    printf(" -m ");
    print_quoted(model_dir);
    printf(" -p ");
    print_quoted(prompt && *prompt ? prompt : "a photo");
    printf(" -o output.png\n");
}
