/* tools/ldmcl_train.c: ldmcl-train, a whole training run from an INI config (ldmcl/run_config.h,
 * ldmcl/runner.h): the autoencoder, the latent cache, the text-conditioned LDM, the model folder.
 *   ldmcl-train CONFIG.ini [--stage all|autoencoder|ldm] [--resume] [--profile STEP]
 *               [--cl-device D] [--cl-platform P] [-v]
 * On a terminal a progress line that fits its width (tools/train_progress.c); otherwise plain
 * lines; a summary at the end. Exit status 0 on
 * success, 1 when the run fails (the message says why; checkpoints already written stay), 2 for
 * a bad command line or config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_options.h"
#include "train_job.h"
#include "ldmcl/ldmcl.h"
#include "train_progress.h"

static void print_log(void *user, ldm_log_level level, const char *message) {
    train_progress *p = user;
    if (level == LDM_LOG_DEBUG && !p->verbose) return;
    if (p->tty && p->line_open) {
        printf("\r\033[K"); /* the message takes the progress line's place; it comes back */
        fflush(stdout);     /* before a warning on stderr */
        p->line_open = 0;
    }
    char text[4096];
    fprintf(level == LDM_LOG_WARN ? stderr : stdout, "%s%s\n",
            level == LDM_LOG_WARN ? "warning: " : "",
            cli_user_text(message, p->verbose, text, sizeof text));
    fflush(stdout);
}

/* The library's last error, its source positions shown only with -v. */
static const char *error_text(int verbose) {
    static char text[4096];
    return cli_user_text(ldm_last_error(), verbose, text, sizeof text);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: ldmcl-train CONFIG.ini [--stage all|autoencoder|ldm] [--resume]\n"
            "                   [--profile STEP] [--cl-device D] [--cl-platform P] [-v]\n"
            "       ldmcl-train --print-config CONFIG.ini\n"
            "  --stage S     all (default): the autoencoder, then the LDM; or one of them\n"
            "  --resume      continue from the output folder's last state (the autoencoder's\n"
            "                every checkpointing_steps, then the LDM's latest checkpoint)\n"
            "  --print-config  print the config as ldmcl reads it, every key with its value or\n"
            "                default (docs/CONFIG.md says what each does), and exit\n"
            "  --profile N   time every launch of step N of each stage and print the device\n"
            "                time by kernel (that step runs slower; the results are unchanged)\n"
            "  --cl-device D, --cl-platform P   OpenCL device (index or name substring)\n"
            "  -v            print the library's notes\n"
            "  --job-timeout S  a rank waits at most S seconds for the others (default 600),\n"
            "                then the job stops naming the ranks that did not arrive\n"
            "  --version     print the version\n"
            "  -h, --help    this text\n"
            "Data-parallel: mpirun -np N ldmcl-train CONFIG.ini (a build with MPI). [train] and\n"
            "[autoencoder_train] batch are per rank. Each rank takes its device: --cl-device\n"
            "D0,D1,.. gives local rank r entry r, one D all ranks, none: local rank r the\n"
            "platform's device r modulo its devices. Rank 0 writes the files and the log.\n");
}

/* Every option, for telling a mistyped one from a known one. */
static const char *const options[] = {
    "--stage",   "--resume",  "--profile", "--stop-after", "--cl-device",    "--cl-platform", "-v",
    "--verbose", "--version", "-h",        "--help",       "--print-config", "--job-timeout"};

/* A job's rank r other than 0 names itself in what it prints. */
static int g_rank;

static void print_error(const char *what) {
    if (g_rank)
        fprintf(stderr, "ldmcl-train (rank %d): %s\n", g_rank, what);
    else
        fprintf(stderr, "ldmcl-train: %s\n", what);
}

static int run(int argc, char **argv, ldm_job *job);

int main(int argc, char **argv) {
    /* under mpirun or srun: one rank of a data-parallel job (alone: a job of one) */
    ldm_job *job = NULL;
    if (ldm_job_init(&argc, &argv, &job) != LDM_OK) {
        fprintf(stderr, "ldmcl-train: %s\n", ldm_last_error());
        return 1;
    }
    g_rank = ldm_job_rank(job);
    int rc = run(argc, argv, job);
    if (rc < 0) ldm_job_abort(job, -rc); /* a failure the other ranks do not know of */
    ldm_job_finalize(job);
    return rc;
}

/* Exit status, negative when the job must be ended at once. */
static int run(int argc, char **argv, ldm_job *job) {
    const char *config = NULL, *device = NULL, *platform = NULL;
    int print_config = 0;
    ldm_run_options ro = {0};
    train_progress ps;
    train_progress_init(&ps, 0);
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
        } else if (!strcmp(a, "--print-config")) {
            print_config = 1;
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
        } else if (!strcmp(a, "--job-timeout") && v) {
            char *end;
            double sec = strtod(v, &end);
            if (*end || !(sec >= 1 && sec <= 1e6)) {
                fprintf(stderr, "ldmcl-train: --job-timeout %s: seconds, from 1\n", v);
                return 2;
            }
            ldm_job_set_timeout(job, sec);
            i++;
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
    if (print_config) {
        if (ldm_run_config_print(config, stdout) == LDM_OK) return 0;
        fprintf(stderr, "ldmcl-train: %s\n", error_text(ps.verbose));
        return 2;
    }
    /* every rank reads the config; a config error is reported once, by the lowest rank */
    ldm_run_config *c = malloc(sizeof *c);
    int read_ok = c && ldm_run_config_read(config, c) == LDM_OK, all_ok = 1, bad = -1;
    char read_error[4096];
    snprintf(read_error, sizeof read_error, "%s", c ? error_text(ps.verbose) : "out of memory");
    if (ldm_job_agree(job, read_ok, &all_ok, &bad, "reading the config") != LDM_OK) {
        print_error(error_text(ps.verbose));
        free(c);
        return -1;
    }
    if (!all_ok) {
        if (bad == g_rank) print_error(read_error);
        free(c);
        return 2;
    }
    char device_buf[256];
    ldm_ctx_options co;
    ldm_ctx_options_init(&co);
    co.device = train_job_device(job, device, platform, device_buf, sizeof device_buf);
    co.platform = platform;
    co.log = print_log;
    co.log_user = &ps;
    ldm_ctx *ctx = NULL;
    int ctx_ok = ldm_ctx_create(&co, &ctx) == LDM_OK;
    if (!ctx_ok) print_error(error_text(ps.verbose));
    if (ldm_job_agree(job, ctx_ok, &all_ok, &bad, "opening the devices") != LDM_OK || !all_ok) {
        ldm_ctx_destroy(ctx);
        free(c);
        return 1;
    }
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    if (ldm_job_size(job) > 1)
        printf("rank %d of %d (local rank %d): device %s (%s), driver %s\n", g_rank,
               ldm_job_size(job), ldm_job_local_rank(job), d->device_name, d->platform_name,
               d->driver_version);
    else
        printf("device: %s (%s), driver %s\n", d->device_name, d->platform_name, d->driver_version);
    struct ldm_run_outcome outcome = {0, 0};
    ro.job = job;
    ro.outcome = &outcome;
    ro.log = print_log;
    ro.log_user = &ps;
    ro.progress = train_progress_step;
    ro.progress_user = &ps;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ldm_status st = ldm_run_train(ctx, c, &ro);
    train_progress_break(&ps);
    if (st != LDM_OK) {
        if (!outcome.reported_elsewhere) print_error(error_text(ps.verbose));
    } else if (!ro.stop_after && !ro.ae_stop_after && !g_rank) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        char model[LDM_RUN_PATH + 8], sampler[4096] = "ldmcl-sample";
        snprintf(model, sizeof model, "%s/model", c->output_dir);
        const char *slash = strrchr(argv[0], '/'); /* the ldmcl-sample beside this program */
        if (slash)
            snprintf(sampler, sizeof sampler, "%.*s/ldmcl-sample", (int)(slash - argv[0]), argv[0]);
        int ldm = ro.stage != LDM_STAGE_AUTOENCODER;
        train_progress_summary(
            &ps, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
            ldm ? model : c->output_dir, ldm ? sampler : NULL,
            c->ldm_train.n_validation_prompts ? c->ldm_train.validation_prompts[0] : NULL);
    }
    ldm_ctx_destroy(ctx);
    free(c);
    if (st != LDM_OK && ldm_job_size(job) > 1 && !outcome.together) return -1;
    return st == LDM_OK ? 0 : 1;
}
