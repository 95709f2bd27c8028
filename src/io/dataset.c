/* src/io/dataset.c: a folder of captioned images (see ldmcl/dataset.h). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "internal.h"
#include "ldmcl/dataset.h"

#define WARN_MAX 10 /* warnings of one kind printed before a summary */
#define EXT_MAX 32  /* a caption extension's bytes, with the NUL */

typedef struct item {
    char *path;
    char **captions;
    int n_captions;
    int repeats; /* kohya's N of an N_concept folder; 1 elsewhere */
} item;

struct ldm_dataset {
    ldm_dataset_options o;
    char ext[EXT_MAX];
    item *items;
    size_t n, cap;
    size_t missing_captions, bad_lines, skipped_names;
};

static void warn(const ldm_dataset *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const ldm_dataset *d, const char *fmt, ...) {
    if (!d->o.log) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    d->o.log(d->o.log_user, LDM_LOG_WARN, msg);
}

static int is_dir(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot &&
           (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static ldm_status add_item(ldm_dataset *d, const char *path) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 256;
        item *items = realloc(d->items, cap * sizeof *items);
        if (!items) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        d->items = items;
        d->cap = cap;
    }
    item *it = &d->items[d->n];
    memset(it, 0, sizeof *it);
    it->path = strdup(path);
    if (!it->path) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    d->n++;
    return LDM_OK;
}

/* Every image under dir, recursively (depth-limited against loops). */
static ldm_status scan(ldm_dataset *d, const char *dir, int depth) {
    if (depth > 16) return LDM_OK;
    DIR *h = opendir(dir);
    if (!h) return LDM_FAIL(LDM_ERR_NOT_FOUND, "cannot read the dataset folder '%s'", dir);
    ldm_status st = LDM_OK;
    struct dirent *e;
    while (st == LDM_OK && (e = readdir(h)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) {
            if (is_image_name(e->d_name) && d->skipped_names++ < WARN_MAX)
                warn(d, "'%s/%s' is a path of more than %zu bytes: skipped", dir, e->d_name,
                     sizeof path - 1);
            continue;
        }
        struct stat sb;
        int known = stat(path, &sb) == 0; /* else (a broken link) the read names the error */
        if (known && S_ISDIR(sb.st_mode))
            st = scan(d, path, depth + 1);
        else if (!is_image_name(e->d_name))
            continue;
        else if (!known || S_ISREG(sb.st_mode))
            st = add_item(d, path);
        else if (d->skipped_names++ < WARN_MAX) /* a FIFO would block the reader forever */
            warn(d, "'%s' is %s, not a regular file: skipped", path,
                 S_ISFIFO(sb.st_mode) ? "a FIFO (named pipe)" : "a device or a socket");
    }
    closedir(h);
    return st;
}

static int by_path(const void *a, const void *b) {
    return strcmp(((const item *)a)->path, ((const item *)b)->path);
}

/* Strict UTF-8 check of s[0..n) (no overlongs, surrogates or values past U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        int extra;
        if (c < 0x80)
            extra = 0;
        else if (c >= 0xC2 && c <= 0xDF)
            extra = 1;
        else if (c >= 0xE0 && c <= 0xEF)
            extra = 2;
        else if (c >= 0xF0 && c <= 0xF4)
            extra = 3;
        else
            return 0;
        if (n - i <= (size_t)extra) return 0;
        unsigned cp = extra == 0 ? c : c & (0x3Fu >> extra);
        for (int k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += (size_t)extra + 1;
    }
    return 1;
}

static ldm_status add_caption(item *it, const char *text) {
    char **caps = realloc(it->captions, (size_t)(it->n_captions + 1) * sizeof *caps);
    if (caps) it->captions = caps;
    char *copy = caps ? strdup(text) : NULL;
    if (!copy) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    it->captions[it->n_captions++] = copy;
    return LDM_OK;
}

/* Reads the caption lines of it from path; a missing file leaves it without captions, or with
 * concept (kohya's N_concept folder name; NULL: none) as its one caption. */
static ldm_status read_captions(ldm_dataset *d, item *it, const char *path, const char *concept) {
    FILE *f;
    const char *kind;
    int err = ldm_open_regular(path, &f, &kind);
    if (err > 0 && concept) return add_caption(it, concept);
    if (err) {
        if (d->missing_captions++ >= WARN_MAX) return LDM_OK;
        if (err < 0)
            warn(d,
                 "the caption file '%s' is %s, not a regular file: the empty caption is used "
                 "for '%s'",
                 path, kind, it->path);
        else
            warn(d, "no caption for '%s' (looked for '%s'): the empty caption is used", it->path,
                 path);
        return LDM_OK;
    }
    char *line = NULL; /* a whole line, however long: one line is one caption */
    size_t line_cap = 0;
    ssize_t got;
    int lineno = 0;
    ldm_status st = LDM_OK;
    while (st == LDM_OK && (got = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        size_t n = (size_t)got;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                         line[n - 1] == '\t'))
            line[--n] = 0;
        if (n == 0) continue;
        if (!valid_utf8((const unsigned char *)line, n) || memchr(line, 0, n)) {
            if (d->bad_lines++ < WARN_MAX)
                warn(d, "%s:%d: the caption is not UTF-8 text; the line is ignored", path, lineno);
            continue;
        }
        st = add_caption(it, line);
    }
    if (st == LDM_OK && ferror(f) && d->bad_lines++ < WARN_MAX)
        warn(d, "%s: a read error after line %d; the rest is ignored", path, lineno);
    free(line);
    fclose(f);
    return st;
}

/* The caption file of an image: <dir>/celeba-caption/<stem>.txt for the CelebAMask-HQ layout,
 * else <image path without extension><ext>. */
static void caption_path(const ldm_dataset *d, const char *root, int celeb, const char *image,
                         char *out, size_t size) {
    const char *base = strrchr(image, '/');
    base = base ? base + 1 : image;
    const char *dot = strrchr(base, '.');
    int stem = dot ? (int)(dot - base) : (int)strlen(base);
    if (celeb)
        snprintf(out, size, "%s/celeba-caption/%.*s%s", root, stem, base, d->ext);
    else
        snprintf(out, size, "%.*s%s", (int)(dot ? dot - image : (long)strlen(image)), image,
                 d->ext);
}

/* kohya's layout: an image in a top-level folder named N_concept (N a whole number from 1 to
 * 100000, concept not empty) is repeated N times per epoch and captioned by the concept when it
 * has no caption file. Returns N (0: not such a folder) and the concept into concept[256]. */
static int kohya_folder(const char *root, const char *image, char *concept) {
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (strncmp(image, root, n) || image[n] != '/') return 0;
    const char *top = image + n + 1, *slash = strchr(top, '/');
    if (!slash) return 0; /* an image in the root itself */
    long repeats = 0;
    const char *c = top;
    while (c < slash && *c >= '0' && *c <= '9' && repeats <= 100000)
        repeats = repeats * 10 + (*c++ - '0');
    if (c == top || *c != '_' || c + 1 >= slash || repeats < 1 || repeats > 100000) return 0;
    snprintf(concept, 256, "%.*s", (int)(slash - c - 1), c + 1);
    return (int)repeats;
}

ldm_status ldm_dataset_open(const char *dir, const ldm_dataset_options *o, ldm_dataset **out) {
    *out = NULL;
    if (o->size < 1 || (o->channels != 1 && o->channels != 3))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "dataset '%s': size %d, %d channels (1 or 3)",
                        dir, o->size, o->channels);
    const char *ext = o->caption_ext ? o->caption_ext : ".txt";
    if (strlen(ext) >= EXT_MAX)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "dataset '%s': the caption extension '%.40s...' is %zu bytes, more than "
                        "the %zu allowed",
                        dir, ext, strlen(ext), (size_t)EXT_MAX - 1);
    ldm_dataset *d = calloc(1, sizeof *d);
    if (!d) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    d->o = *o;
    snprintf(d->ext, sizeof d->ext, "%s", ext);
    char images[4096];
    snprintf(images, sizeof images, "%s/CelebA-HQ-img", dir);
    int celeb = is_dir(images);
    ldm_status st = is_dir(dir) ? scan(d, celeb ? images : dir, 0)
                                : LDM_FAIL(LDM_ERR_NOT_FOUND, "no dataset folder '%s'", dir);
    if (st == LDM_OK && d->n == 0)
        st = LDM_FAIL(LDM_ERR_NOT_FOUND,
                      "the dataset folder '%s' holds no images (.png, .jpg or .jpeg files, in it "
                      "or its subfolders%s)",
                      dir, celeb ? ", here CelebA-HQ-img/" : "");
    if (st == LDM_OK) qsort(d->items, d->n, sizeof *d->items, by_path);
    for (size_t i = 0; st == LDM_OK && i < d->n; i++) {
        char path[4200], concept[256];
        caption_path(d, dir, celeb, d->items[i].path, path, sizeof path);
        int repeats = celeb ? 0 : kohya_folder(dir, d->items[i].path, concept);
        st = read_captions(d, &d->items[i], path, repeats ? concept : NULL);
        d->items[i].repeats = repeats ? repeats : 1;
    }
    if (st == LDM_OK && d->missing_captions > WARN_MAX)
        warn(d, "%zu of %zu images have no caption file in all", d->missing_captions, d->n);
    if (st == LDM_OK && d->bad_lines > WARN_MAX)
        warn(d, "%zu caption lines were not UTF-8 in all", d->bad_lines);
    if (st == LDM_OK && d->skipped_names > WARN_MAX)
        warn(d, "%zu image names were skipped in all (not regular files, or too long)",
             d->skipped_names);
    if (st != LDM_OK) {
        ldm_dataset_destroy(d);
        return st;
    }
    *out = d;
    return LDM_OK;
}

void ldm_dataset_destroy(ldm_dataset *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) {
        for (int k = 0; k < d->items[i].n_captions; k++)
            free(d->items[i].captions[k]);
        free(d->items[i].captions);
        free(d->items[i].path);
    }
    free(d->items);
    free(d);
}

size_t ldm_dataset_count(const ldm_dataset *d) {
    return d->n;
}

const char *ldm_dataset_path(const ldm_dataset *d, size_t i) {
    return i < d->n ? d->items[i].path : NULL;
}

int ldm_dataset_repeats(const ldm_dataset *d, size_t i) {
    return i < d->n ? d->items[i].repeats : 0;
}

size_t ldm_dataset_missing_captions(const ldm_dataset *d) {
    return d->missing_captions;
}

/* splitmix64 of key and index: the per-use random bits. */
static uint64_t mix(uint64_t key, uint64_t i) {
    uint64_t z = key + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const char *ldm_dataset_caption(const ldm_dataset *d, size_t i, uint64_t key) {
    if (i >= d->n) return "";
    const item *it = &d->items[i];
    uint64_t r = mix(key, i);
    return it->n_captions ? it->captions[(r >> 1) % (uint64_t)it->n_captions] : "";
}

ldm_status ldm_dataset_get(ldm_dataset *d, size_t i, uint64_t key, float *image,
                           const char **caption) {
    if (i >= d->n) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "dataset index %zu of %zu", i, d->n);
    uint64_t r = mix(key, i);
    if (caption) *caption = ldm_dataset_caption(d, i, key);
    return ldm_dataset_image(d, i, d->o.random_flip && (r & 1), image);
}

ldm_status ldm_dataset_image(ldm_dataset *d, size_t i, int flip, float *image) {
    if (i >= d->n) return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "dataset index %zu of %zu", i, d->n);
    ldm_image img;
    LDM_TRY(ldm_image_read(d->items[i].path, d->o.channels, &d->o.limits, &img));
    ldm_status st = ldm_image_to_tensor(&img, d->o.size, flip, image);
    ldm_image_free(&img);
    return st;
}
