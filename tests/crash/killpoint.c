/* tests/crash/killpoint.c: an LD_PRELOAD shim for the crash-consistency sweep
 * (tests/crash/sweep.sh). It counts the calls that make a write durable or visible, rename(),
 * fsync(), fdatasync(), remove() and unlink(), in the order the process makes them, and kills the
 * process with SIGKILL just before or just after the K-th, as a power cut or kill -9 at that
 * point would leave the files.
 *   LDMCL_KILL_AT=K          the call to die at (1-based; unset: never)
 *   LDMCL_KILL_WHEN=before   before it (default) or after it
 *   LDMCL_KILL_COUNT=FILE    at exit, write the number of calls counted into FILE
 *   LDMCL_KILL_TRACE=1       print each counted call on stderr */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_long g_calls;
static long g_kill_at = -1;
static int g_after, g_trace;
static const char *g_count_file;

static void write_count(void) {
    FILE *f = g_count_file ? fopen(g_count_file, "w") : NULL;
    if (!f) return;
    fprintf(f, "%ld\n", (long)atomic_load(&g_calls));
    fclose(f);
}

__attribute__((constructor)) static void killpoint_init(void) {
    const char *at = getenv("LDMCL_KILL_AT"), *when = getenv("LDMCL_KILL_WHEN");
    if (at && *at) g_kill_at = strtol(at, NULL, 10);
    g_after = when && !strcmp(when, "after");
    g_trace = getenv("LDMCL_KILL_TRACE") != NULL;
    g_count_file = getenv("LDMCL_KILL_COUNT");
    if (g_count_file) atexit(write_count);
}

/* Counts a call; dies before it when it is the one. Returns its number. */
static long enter(const char *what, const char *a, const char *b) {
    long k = atomic_fetch_add(&g_calls, 1) + 1;
    if (g_trace)
        fprintf(stderr, "killpoint %ld: %s(%s%s%s)\n", k, what, a ? a : "", b ? ", " : "",
                b ? b : "");
    if (k == g_kill_at && !g_after) raise(SIGKILL);
    return k;
}

static void leave(long k) {
    if (k == g_kill_at && g_after) raise(SIGKILL);
}

typedef int (*path_fn)(const char *);
typedef int (*pair_fn)(const char *, const char *);
typedef int (*fd_fn)(int);

/* The next definition of a function (libc's): POSIX guarantees that dlsym's object pointer
 * holds a function pointer, which ISO C cannot cast, so it is copied. */
#define NEXT(name, type, var)                                                                      \
    type var;                                                                                      \
    do {                                                                                           \
        void *sym_ = dlsym(RTLD_NEXT, name);                                                       \
        memcpy(&var, &sym_, sizeof var);                                                           \
    } while (0)

int rename(const char *from, const char *to) {
    long k = enter("rename", from, to);
    NEXT("rename", pair_fn, next);
    int r = next(from, to);
    leave(k);
    return r;
}

int fsync(int fd) {
    char fdname[32];
    snprintf(fdname, sizeof fdname, "fd %d", fd);
    long k = enter("fsync", fdname, NULL);
    NEXT("fsync", fd_fn, next);
    int r = next(fd);
    leave(k);
    return r;
}

int fdatasync(int fd) {
    char fdname[32];
    snprintf(fdname, sizeof fdname, "fd %d", fd);
    long k = enter("fdatasync", fdname, NULL);
    NEXT("fdatasync", fd_fn, next);
    int r = next(fd);
    leave(k);
    return r;
}

int remove(const char *path) {
    long k = enter("remove", path, NULL);
    NEXT("remove", path_fn, next);
    int r = next(path);
    leave(k);
    return r;
}

int unlink(const char *path) {
    long k = enter("unlink", path, NULL);
    NEXT("unlink", path_fn, next);
    int r = next(path);
    leave(k);
    return r;
}
