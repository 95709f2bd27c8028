/* src/train/run_files.c: the files of a training run: paths, folders, atomic text writes and
 * copies, SHA-256s, CSV logs cut back to a step on resuming, and the temporaries a killed process
 * left. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "runner_internal.h"

void run_path(char *out, const char *dir, const char *name) {
    snprintf(out, LDM_RUN_PATH, "%s/%s", dir, name);
}

void run_format(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, LDM_RUN_PATH, fmt, ap);
    va_end(ap);
}

int run_exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

ldm_status run_mkdirs(const char *dir) {
    char buf[LDM_RUN_PATH];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return LDM_FAIL(LDM_ERR_IO, "cannot create the folder '%s': %s", buf,
                                strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return LDM_FAIL(LDM_ERR_IO, "cannot create the folder '%s': %s", buf, strerror(errno));
    return LDM_OK;
}

ldm_status run_write_text(const char *path, const char *text) {
    ldm_atomic_file a;
    LDM_TRY(ldm_atomic_open(&a, path));
    return ldm_atomic_commit(&a, ldm_atomic_write(&a, text, strlen(text)));
}

ldm_status run_copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) return LDM_FAIL(LDM_ERR_NOT_FOUND, "cannot open '%s': %s", from, strerror(errno));
    ldm_atomic_file a;
    ldm_status st = ldm_atomic_open(&a, to);
    if (st != LDM_OK) {
        fclose(in);
        return st;
    }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = ldm_atomic_write(&a, buf, n);
    ok = ok && !ferror(in);
    fclose(in);
    st = ldm_atomic_commit(&a, ok);
    if (st != LDM_OK) ldm_error_prefix("copying '%s'", from);
    return st;
}

/* Whether name is a temporary of src/core/atomic_file.c (NAME.tmp.PID.N) that another process
 * made. */
static int foreign_temporary(const char *name) {
    const char *t = strstr(name, ".tmp.");
    while (t && strstr(t + 1, ".tmp."))
        t = strstr(t + 1, ".tmp.");
    if (!t || t == name) return 0;
    long pid;
    unsigned serial;
    int end = 0;
    if (sscanf(t, ".tmp.%ld.%u%n", &pid, &serial, &end) != 2 || t[end]) return 0;
    return pid != (long)getpid();
}

void run_remove_temporaries(const run_ctx *r, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!foreign_temporary(e->d_name)) continue;
        char path[LDM_RUN_PATH];
        run_format(path, "%s/%s", dir, e->d_name);
        if (remove(path) == 0)
            run_note(r, LDM_LOG_INFO, "removed %s, left by an interrupted save", path);
    }
    closedir(d);
}

ldm_status run_trim_log(const char *path, int step) {
    if (!run_exists(path)) return LDM_OK;
    char *text;
    size_t len;
    LDM_TRY(ldm_read_file(path, &text, &len));
    /* complete lines only: a process killed mid-write leaves a line without its end */
    size_t keep = 0;
    for (size_t at = 0; at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break;
        size_t n = (size_t)(nl - (text + at)) + 1;
        if (atoi(text + at) <= step) { /* the header reads as 0 */
            memmove(text + keep, text + at, n);
            keep += n;
        }
        at += n;
    }
    text[keep] = '\0';
    ldm_status st = run_write_text(path, text);
    free(text);
    return st;
}
