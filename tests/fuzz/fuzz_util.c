/* tests/fuzz/fuzz_util.c: what the libFuzzer targets share (see fuzz_util.h). */
#define _GNU_SOURCE /* memmem, nftw */
#include "fuzz_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char g_dir[4096];
static volatile size_t g_sink;

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    if (ftw->level > 0) remove(path);
    return 0;
}

void fuzz_clear(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_dir(void) {
    if (!g_dir[0]) return;
    fuzz_clear(g_dir);
    rmdir(g_dir);
}

const char *fuzz_dir(void) {
    if (!g_dir[0]) {
        /* The files are rewritten for every input: memory (/dev/shm) is ten times faster than
         * a disk. */
        const char *tmp = getenv("LDMCL_FUZZ_TMPDIR");
        struct stat sb;
        if (!tmp || !*tmp)
            tmp = stat("/dev/shm", &sb) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                                              : getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/ldmcl-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(g_dir)) {
            fprintf(stderr, "fuzz: cannot create a folder '%s': %s\n", g_dir, strerror(errno));
            abort();
        }
        atexit(remove_dir);
    }
    return g_dir;
}

void fuzz_path(char *out, size_t size, const char *name) {
    if ((size_t)snprintf(out, size, "%s/%s", fuzz_dir(), name) >= size) {
        fprintf(stderr, "fuzz: path too long for '%s'\n", name);
        abort();
    }
}

void fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write '%s': %s\n", path, strerror(errno));
        abort();
    }
}

void fuzz_mkdir(const char *path) {
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz: cannot create '%s': %s\n", path, strerror(errno));
        abort();
    }
}

int fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, int max) {
    const size_t sep = sizeof FUZZ_SEP - 1;
    int n = 0;
    while (n + 1 < max) {
        const uint8_t *at = size >= sep ? memmem(data, size, FUZZ_SEP, sep) : NULL;
        if (!at) break;
        parts[n++] = (fuzz_part){data, (size_t)(at - data)};
        size -= (size_t)(at - data) + sep;
        data = at + sep;
    }
    parts[n++] = (fuzz_part){data, size};
    return n;
}

void fuzz_png_fix_crcs(uint8_t *data, size_t size) {
    size_t at = 8;
    while (size >= at && size - at >= 12) {
        uint32_t len = (uint32_t)data[at] << 24 | (uint32_t)data[at + 1] << 16 |
                       (uint32_t)data[at + 2] << 8 | data[at + 3];
        if (len > size - at - 12) return;
        uLong crc = crc32(0L, data + at + 4, (uInt)len + 4);
        uint8_t *c = data + at + 8 + len;
        c[0] = (uint8_t)(crc >> 24);
        c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8);
        c[3] = (uint8_t)crc;
        at += 12 + (size_t)len;
    }
}

void fuzz_log(void *user, ldm_log_level level, const char *message) {
    (void)user;
    g_sink += strlen(message) + (size_t)level;
}

void fuzz_status(ldm_status st) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("LDMCL_FUZZ_VERBOSE") != NULL;
    if (st == LDM_OK) return;
    g_sink += strlen(ldm_last_error()) + strlen(ldm_status_name(st));
    if (verbose) fprintf(stderr, "fuzz: %s: %s\n", ldm_status_name(st), ldm_last_error());
}
