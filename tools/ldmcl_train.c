/* tools/ldmcl_train.c: ldmcl-train, a whole training run from an INI config (ldmcl/run_config.h,
 * ldmcl/runner.h): the autoencoder, the latent cache, the text-conditioned LDM, the model folder.
 *   ldmcl-train CONFIG.ini [--stage all|autoencoder|ldm] [--resume] [--profile STEP]
 *               [--cl-device D] [--cl-platform P] [-v]
 * On a terminal a progress bar (step, loss, it/s, ETA); otherwise plain lines. Exit status 0 on
 * success, 1 when the run fails (the message says why; checkpoints already written stay), 2 for
 * a bad command line or config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_options.h"
#include "ldmcl/ldmcl.h"

typedef struct progress_state {
    int tty, verbose;
    const char *last_stage;
    double last_print;
    int first_step; /* the stage's first step in this process (after a resume: not 1) */
} progress_state;

static void print_log(void *user, ldm_log_level level, const char *message) {
    progress_state *p = user;
    if (level == LDM_LOG_DEBUG && !p->verbose) return;
    if (p->tty) fprintf(stdout, "\r\033[K");
    char text[4096];
    fprintf(level == LDM_LOG_WARN ? stderr : stdout, "%s%s\n",
            level == LDM_LOG_WARN ? "warning: " : "",
            cli_user_text(message, p->verbose, text, sizeof text));
    fflush(stdout);
}

static void progress(void *user, const char *stage, int step, int total, float loss,
                     double seconds) {
    progress_state *p = user;
    if (!p->last_stage || strcmp(p->last_stage, stage)) {
        p->last_stage = stage;
        p->first_step = step;
        p->last_print = 0;
    }
    /* steps of this process over its seconds (the runner's clock starts at the first step) */
    int done = step - p->first_step + 1;
    double rate = seconds > 0 ? done / seconds : 0, eta = rate > 0 ? (total - step) / rate : 0;
    if (p->tty) {
        int width = 30, fill = total > 0 ? (int)((long long)width * step / total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        if (!strcmp(stage, "encoding"))
            printf("\r\033[K%-11s [%s] %d/%d", stage, bar, step, total);
        else
            printf("\r\033[K%-11s [%s] %d/%d  loss %.5f  %.2f it/s  ETA %.0f s", stage, bar, step,
                   total, (double)loss, rate, eta);
        if (step == total) printf("\n");
        fflush(stdout);
        return;
    }
    /* plain lines: the first and last steps, and about every 10 s */
    if (strcmp(stage, "encoding") &&
        (step == p->first_step || step == total || seconds - p->last_print >= 10)) {
        printf("%s step %d/%d loss %.6f %.3f it/s ETA %.0f s\n", stage, step, total, (double)loss,
               rate, eta);
        fflush(stdout);
        p->last_print = seconds;
    }
}

/* The library's last error, its source positions shown only with -v. */
static const char *error_text(int verbose) {
    static char text[4096];
    return cli_user_text(ldm_last_error(), verbose, text, sizeof text);
}

static void usage(FILE *f) {
    fprintf(f, "usage: ldmcl-train CONFIG.ini [--stage all|autoencoder|ldm] [--resume]\n"
               "                   [--profile STEP] [--cl-device D] [--cl-platform P] [-v]\n"
               "  --stage S     all (default): the autoencoder, then the LDM; or one of them\n"
               "  --resume      continue from the output folder's last state (the autoencoder's\n"
               "                every checkpointing_steps, then the LDM's latest checkpoint)\n"
               "  --profile N   time every launch of step N of each stage and print the device\n"
               "                time by kernel (that step runs slower; the results are unchanged)\n"
               "  --cl-device D, --cl-platform P   OpenCL device (index or name substring)\n"
               "  -v            print the library's notes\n"
               "  --version     print the version\n"
               "  -h, --help    this text\n");
}

/* Every option, for telling a mistyped one from a known one. */
static const char *const options[] = {
    "--stage", "--resume",  "--profile", "--stop-after", "--cl-device", "--cl-platform",
    "-v",      "--verbose", "--version", "-h",           "--help"};

int main(int argc, char **argv) {
    const char *config = NULL, *device = NULL, *platform = NULL;
    ldm_run_options ro = {0};
    progress_state ps = {isatty(fileno(stdout)), 0, NULL, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("ldmcl-train %s\n", LDMCL_VERSION);
            return 0;
        } else if (!strcmp(a, "--resume")) {
            ro.resume = 1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            ps.verbose = 1;
        } else if (!strcmp(a, "--stage") && v) {
            if (!strcmp(v, "all"))
                ro.stage = LDM_STAGE_ALL;
            else if (!strcmp(v, "autoencoder"))
                ro.stage = LDM_STAGE_AUTOENCODER;
            else if (!strcmp(v, "ldm"))
                ro.stage = LDM_STAGE_LDM;
            else {
                fprintf(stderr, "ldmcl-train: --stage %s: all, autoencoder or ldm\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--profile") && v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 1000000000) {
                fprintf(stderr, "ldmcl-train: --profile %s: a step number from 1\n", v);
                return 2;
            }
            ro.profile_step = (int)n;
            i++;
        } else if (!strcmp(a, "--stop-after") && v) { /* tests of resumption */
            ro.stop_after = atoi(v);
            i++;
        } else if (!strcmp(a, "--cl-device") && v) {
            device = v, i++;
        } else if (!strcmp(a, "--cl-platform") && v) {
            platform = v, i++;
        } else if (a[0] != '-' && !config) {
            config = a;
        } else if (a[0] == '-') {
            int known = 0;
            for (size_t k = 0; k < sizeof options / sizeof *options; k++)
                known |= !strcmp(a, options[k]);
            if (known)
                fprintf(stderr, "ldmcl-train: '%s' needs a value (see --help)\n", a);
            else
                cli_unknown_option("ldmcl-train", a, options, sizeof options / sizeof *options);
            return 2;
        } else {
            fprintf(stderr, "ldmcl-train: one config at a time: '%s' after '%s'\n", a, config);
            return 2;
        }
    }
    if (!config) {
        usage(stderr);
        return 2;
    }
    ldm_run_config *c = malloc(sizeof *c);
    if (!c || ldm_run_config_read(config, c) != LDM_OK) {
        fprintf(stderr, "ldmcl-train: %s\n", c ? error_text(ps.verbose) : "out of memory");
        free(c);
        return 2;
    }
    ldm_ctx_options co;
    ldm_ctx_options_init(&co);
    co.device = device;
    co.platform = platform;
    co.log = print_log;
    co.log_user = &ps;
    ldm_ctx *ctx;
    if (ldm_ctx_create(&co, &ctx) != LDM_OK) {
        fprintf(stderr, "ldmcl-train: %s\n", error_text(ps.verbose));
        free(c);
        return 1;
    }
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    printf("device: %s (%s), driver %s\n", d->device_name, d->platform_name, d->driver_version);
    ro.log = print_log;
    ro.log_user = &ps;
    ro.progress = progress;
    ro.progress_user = &ps;
    ldm_status st = ldm_run_train(ctx, c, &ro);
    if (st != LDM_OK) {
        if (ps.tty) printf("\n");
        fprintf(stderr, "ldmcl-train: %s\n", error_text(ps.verbose));
    }
    ldm_ctx_destroy(ctx);
    free(c);
    return st == LDM_OK ? 0 : 1;
}
