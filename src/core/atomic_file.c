/* src/core/atomic_file.c: the one way ldmcl writes a file that must never be seen half-written
 * (checkpoints, safetensors, PNGs, model.ini, the kernel cache, the `latest` pointer): a new
 * temporary file next to the target, flushed and fsync'ed, then renamed onto it, then the folder
 * synced. The temporary file is created with O_EXCL and mode 0666 less the umask, so the result
 * has the permissions a plain fopen would give it, and two writers never share a temporary. A
 * failed write's errno is kept when it happens (ldm_atomic_write/printf), so that the error says
 * why ("No space left on device", "File too large"), not just that a write failed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

ldm_status ldm_atomic_open(ldm_atomic_file *a, const char *path) {
    static unsigned counter;
    memset(a, 0, sizeof *a);
    if (strlen(path) >= sizeof a->path)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "the path '%s' is too long", path);
    snprintf(a->path, sizeof a->path, "%s", path);
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
        int fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0)
            return LDM_FAIL(LDM_ERR_IO, "cannot create a temporary file next to '%s': %s", path,
                            strerror(errno));
        a->f = fdopen(fd, "wb");
        if (!a->f) {
            int err = errno;
            close(fd);
            unlink(a->tmp);
            return LDM_FAIL(LDM_ERR_IO, "cannot write next to '%s': %s", path, strerror(err));
        }
        return LDM_OK;
    }
    return LDM_FAIL(LDM_ERR_IO, "cannot find a free temporary name next to '%s'", path);
}

int ldm_atomic_write(ldm_atomic_file *a, const void *data, size_t n) {
    errno = 0;
    if (n == 0 || fwrite(data, 1, n, a->f) == n) return 1;
    if (!a->err) a->err = errno ? errno : EIO;
    return 0;
}

int ldm_atomic_printf(ldm_atomic_file *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    int n = vfprintf(a->f, fmt, ap);
    va_end(ap);
    if (n >= 0) return 1;
    if (!a->err) a->err = errno ? errno : EIO;
    return 0;
}

void ldm_atomic_abandon(ldm_atomic_file *a) {
    if (!a->f) return;
    fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
}

/* Best effort: a folder that cannot be opened or synced (some file systems refuse) leaves the
 * rename done but perhaps not yet durable across a power cut; a killed process is unaffected. */
static void sync_folder(const char *path) {
    char dir[sizeof((ldm_atomic_file *)0)->path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

ldm_status ldm_atomic_commit(ldm_atomic_file *a, int ok) {
    if (!a->f) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "'%s' is not being written", a->path);
    /* why a write failed: the errno kept when it failed, else what flushing the rest says */
    int err = a->err;
    if (err || ferror(a->f)) ok = 0;
    if (fflush(a->f) != 0) {
        if (!err) err = errno;
        ok = 0;
    }
    if (ok && fsync(fileno(a->f)) != 0) ok = 0, err = errno;
    if (fclose(a->f) != 0 && ok) ok = 0, err = errno;
    a->f = NULL;
    if (ok && rename(a->tmp, a->path) != 0) ok = 0, err = errno;
    if (ok) {
        sync_folder(a->path);
        return LDM_OK;
    }
    unlink(a->tmp);
    return LDM_FAIL(LDM_ERR_IO, "writing '%s' failed: %s", a->path,
                    err ? strerror(err) : "a write error");
}
