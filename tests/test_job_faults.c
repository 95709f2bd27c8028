/* tests/test_job_faults.c: a data-parallel ldmcl-train (`mpirun -np 2`, Open MPI's
 * --oversubscribe, each rank one pocl thread) when things go wrong, each against an
 * uninterrupted 2-rank run of the same config:
 *   - a rank killed with SIGKILL mid-run ends the job at once with mpirun naming the rank, and
 *     `--resume` under 2 ranks finishes with a log and a model identical, byte for byte, to the
 *     uninterrupted run's;
 *   - a rank that hangs (SIGSTOP) makes rank 0 stop the job after --job-timeout, naming it; the
 *     last complete checkpoint then resumes;
 *   - rank 0, the writer, killed in the middle of its checkpoint writes (the LD_PRELOAD shim of
 *     tests/crash at a rename) leaves the previous checkpoint intact: --resume again finishes
 *     identically.
 * Skipped in a build without MPI. The messages checked are Open MPI's mpirun's ("process rank
 * N"). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "train_fixture.h"

#ifdef LDMCL_MPIEXEC

/* The run's config: both stages, the LDM long enough to be interrupted (checkpoints every 3). */
static void config(const char *name, char *ini) {
    write_config_with(name, 8, "", "",
                      "max_train_steps = 12\ncheckpointing_steps = 3\nvalidation_steps = 0\n", ini);
    edit_file(ini, "max_train_steps = 6\n", "checkpointing_steps", "");
    edit_file(ini, "checkpointing_steps = 2\n", "checkpoints_total_limit", "");
    edit_file(ini, "validation_steps = 6\n", "validation_prompts", "");
}

/* Starts `mpirun -np 2 ldmcl-train NAME.ini ARGS` in g_dir (output in NAME.out; each rank's pid
 * in NAME.pid.RANK), each rank with the environment assignments env (set by the rank's wrapper,
 * not mpirun's: $R there is the rank). */
static pid_t start_job(const char *name, const char *env, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && rm -f %s.pid.* && OMPI_ALLOW_RUN_AS_ROOT=1 "
             "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 POCL_MAX_PTHREAD_COUNT=1 exec '%s' -np 2 %s "
             "sh -c 'R=${OMPI_COMM_WORLD_RANK:-$PMI_RANK}; echo $$ > %s.pid.$R; "
             "exec env %s \"$0\" \"$@\"' '%s' %s.ini %s > %s.out 2>&1",
             g_dir, name, LDMCL_MPIEXEC, LDMCL_MPIEXEC_ARGS, name, env, LDMCL_TRAIN_PROGRAM, name,
             args, name);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The job's exit status, waiting at most seconds (fails the test past that). */
static int wait_job(pid_t pid, double seconds, double *took) {
    double t0 = now_s();
    for (;;) {
        int status;
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            if (took) *took = now_s() - t0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (now_s() - t0 > seconds) {
            kill(pid, SIGKILL);
            fail_msg("the job did not end within %.0f s", seconds);
        }
        nap_ms(20);
    }
}

static int run_job(const char *name, const char *env, const char *args) {
    return wait_job(start_job(name, env, args), 600, NULL);
}

/* Rank r's pid, once its wrapper has written it. */
static pid_t rank_pid(const char *name, int r) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.pid.%d", g_dir, name, r);
    for (int tries = 0; tries < 3000; tries++) {
        FILE *f = fopen(path, "r");
        long pid = 0;
        if (f) {
            if (fscanf(f, "%ld", &pid) != 1) pid = 0;
            fclose(f);
        }
        if (pid > 0) return (pid_t)pid;
        nap_ms(10);
    }
    fail_msg("rank %d of '%s' never started", r, name);
    return -1;
}

/* Waits until run NAME's LDM log has a line for step `step` (fails after 600 s). */
static void wait_step(const char *name, int step) {
    char path[1200], want[32];
    snprintf(path, sizeof path, "%s/%s/train_log.csv", g_dir, name);
    snprintf(want, sizeof want, "\n%d,", step);
    for (double t0 = now_s(); now_s() - t0 < 600;) {
        FILE *f = fopen(path, "r");
        if (f) {
            char buf[8192];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            if (strstr(buf, want)) return;
        }
        nap_ms(5);
    }
    fail_msg("'%s' never reached step %d", name, step);
}

static char *job_output(const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.out", g_dir, name);
    return read_text(path);
}

/* Asserts that the output holds `what`, and shows its line. */
static void says(const char *out, const char *what) {
    assert_contains(out, what);
    const char *at = strstr(out, what), *start = at;
    while (start > out && start[-1] != '\n')
        start--;
    print_message("  %.*s\n", (int)strcspn(start, "\n"), start);
}

/* The file, byte for byte, in both runs (train_log.csv without its seconds column). */
static void same_file(const char *a, const char *b, const char *file) {
    char pa[1400], pb[1400];
    snprintf(pa, sizeof pa, "%s/%s/%s", g_dir, a, file);
    snprintf(pb, sizeof pb, "%s/%s/%s", g_dir, b, file);
    char *ta = read_text(pa), *tb = read_text(pb);
    if (strstr(file, "train_log.csv")) {
        char *x = losses(a), *y = losses(b);
        assert_string_equal(x, y);
        free(x);
        free(y);
    } else if (strcmp(ta, tb) != 0 || strlen(ta) != strlen(tb)) {
        size_t la, lb;
        unsigned char *ba = test_read_file(pa, &la), *bb = test_read_file(pb, &lb);
        int same = la == lb && memcmp(ba, bb, la) == 0;
        free(ba);
        free(bb);
        if (!same) fail_msg("%s differs between '%s' and '%s'", file, a, b);
    }
    free(ta);
    free(tb);
}

static void same_as_reference(const char *name) {
    static const char *const files[] = {"train_log.csv", "autoencoder.safetensors",
                                        "model/unet.safetensors", "model/text_encoder.safetensors",
                                        "latents.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        same_file("reference", name, files[i]);
}

static int g_reference_made;

static void reference(void) {
    if (g_reference_made) return;
    char ini[1200];
    config("reference", ini);
    assert_int_equal(run_job("reference", "", ""), 0);
    g_reference_made = 1;
}

static void a_killed_rank_ends_the_job_and_resume_is_exact(void **state) {
    (void)state;
    reference();
    char ini[1200];
    config("killed", ini);
    pid_t job = start_job("killed", "", "");
    pid_t r1 = rank_pid("killed", 1);
    wait_step("killed", 4); /* past the checkpoint of step 3 */
    kill(r1, SIGKILL);
    double took;
    int rc = wait_job(job, 120, &took);
    char *out = job_output("killed");
    print_message("rank 1 killed: the job ended in %.1f s with status %d\n", took, rc);
    assert_int_not_equal(rc, 0);
    says(out, "process rank 1"); /* mpirun names the rank that died */
    free(out);
    assert_int_equal(run_job("killed", "", "--resume"), 0);
    same_as_reference("killed");
}

static void a_hung_rank_is_named_and_the_run_resumes(void **state) {
    (void)state;
    reference();
    char ini[1200];
    config("hung", ini);
    pid_t job = start_job("hung", "", "--job-timeout 5");
    pid_t r1 = rank_pid("hung", 1);
    wait_step("hung", 4);
    kill(r1, SIGSTOP);
    double took;
    int rc = wait_job(job, 120, &took);
    kill(r1, SIGKILL); /* if the launcher left it stopped */
    char *out = job_output("hung");
    print_message("rank 1 stopped: the job ended in %.1f s with status %d\n", took, rc);
    assert_int_not_equal(rc, 0);
    says(out, "rank 1 of 2 did not reach");
    assert_true(took < 60);
    free(out);
    assert_int_equal(run_job("hung", "", "--resume"), 0);
    same_as_reference("hung");
}

static void the_writer_killed_mid_checkpoint_leaves_the_last_one(void **state) {
    (void)state;
    reference();
    /* rank 0's calls the shim counts, traced, in an uninterrupted run: the one that renames the
     * checkpoint of step 9 into place (rank 1 writes nothing and runs without the shim) */
    char ini[1200], forward[2600];
    config("counted", ini);
    snprintf(forward, sizeof forward, "LD_PRELOAD=\"$(test $R = 0 && echo %s)\" LDMCL_KILL_TRACE=1",
             LDMCL_KILLPOINT);
    assert_int_equal(run_job("counted", forward, ""), 0);
    char *out = job_output("counted");
    long at = -1;
    for (char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, "killpoint ", 10) && strstr(line, ": rename(") &&
            strstr(line, "checkpoint-00000009.safetensors)") && at < 0)
            at = strtol(line + 10, NULL, 10);
    free(out);
    assert_true(at > 0);
    const char *when[2] = {"before", "after"};
    for (int w = 0; w < 2; w++) {
        char name[32];
        snprintf(name, sizeof name, "writer-%s", when[w]);
        config(name, ini);
        snprintf(forward, sizeof forward,
                 "LD_PRELOAD=\"$(test $R = 0 && echo %s)\" LDMCL_KILL_AT=%ld LDMCL_KILL_WHEN=%s",
                 LDMCL_KILLPOINT, at, when[w]);
        assert_int_not_equal(run_job(name, forward, ""), 0);
        char *text = job_output(name);
        says(text, "process rank 0"); /* mpirun names rank 0, killed */
        free(text);
        assert_int_equal(run_job(name, "", "--resume"), 0);
        same_as_reference(name);
    }
}

/* A run stopped by a 2-rank job continues in one process from the same global sample position,
 * saying so. */
static void resume_with_another_number_of_ranks(void **state) {
    (void)state;
    char ini[1200], cmd[4096];
    config("regrouped", ini);
    assert_int_equal(run_job("regrouped", "", "--stop-after 4"), 0);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' regrouped.ini --resume > regrouped.alone 2>&1",
             g_dir, LDMCL_TRAIN_PROGRAM);
    assert_int_equal(system(cmd), 0);
    char path[1300];
    snprintf(path, sizeof path, "%s/regrouped.alone", g_dir);
    char *out = read_text(path);
    /* the checkpoint of step 3 (every 3), after 3 steps of 2 ranks x batch 4: 24 samples */
    says(out, "this job has 1");
    assert_contains(out, "was written by 2 rank(s), this job has 1: it continues from global "
                         "sample position 24 (step 3), 4 samples per step from here");
    free(out);
    assert_true(exists("regrouped", "model/unet.safetensors"));
}

/* A config error is found by every rank and said once. */
static void a_config_error_is_reported_once(void **state) {
    (void)state;
    char ini[1200];
    config("badconfig", ini);
    edit_file(ini, "learning_rate = 1e-3", "\n", "learning_rate = -1");
    assert_int_equal(run_job("badconfig", "", ""), 2);
    char *out = job_output("badconfig");
    const char *first = strstr(out, "learning_rate");
    assert_non_null(first);
    says(out, "learning_rate");
    assert_null(strstr(first + 1, "learning_rate")); /* once, not once per rank */
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_config_error_is_reported_once),
        cmocka_unit_test(resume_with_another_number_of_ranks),
        cmocka_unit_test(a_killed_rank_ends_the_job_and_resume_is_exact),
        cmocka_unit_test(a_hung_rank_is_named_and_the_run_resumes),
        cmocka_unit_test(the_writer_killed_mid_checkpoint_leaves_the_last_one),
    };
    return cmocka_run_group_tests(tests, train_fixture_setup, train_fixture_teardown);
}

#else

static void skipped(void **state) {
    (void)state;
    print_message("this build has no MPI (-DLDMCL_MPI): nothing to test\n");
    skip();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(skipped)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
