/* src/core/source.c: OpenCL C sources: the embedded cl/ files or a directory given at run time,
 * and the expansion of `#include "x.clh"` lines into the text handed to the compiler, with #line
 * markers so that build logs name the right file and line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "internal.h"

#define MAX_INCLUDE_DEPTH 8
#define MAX_INCLUDED 64

int ldm_embedded_source_count(void) {
    return ldm_embedded_file_count;
}

const char *ldm_embedded_source_name(int i) {
    return i >= 0 && i < ldm_embedded_file_count ? ldm_embedded_files[i].name : NULL;
}

static int valid_name(const char *file) {
    return file && *file && !strchr(file, '/') && !strchr(file, '\\') && strcmp(file, ".") != 0 &&
           strcmp(file, "..") != 0;
}

ldm_status ldm_source_read(const ldm_ctx *ctx, const char *file, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (!valid_name(file))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "kernel source name '%s' must be a plain file name in cl/",
                        file ? file : "(null)");
    if (ctx->kernel_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", ctx->kernel_dir, file);
        ldm_status st = ldm_read_file(path, out, len);
        if (st == LDM_ERR_NOT_FOUND)
            ldm_error_prefix("kernel source '%s' is not in the kernel directory '%s' (set by "
                             "LDMCL_CL_DIR or the kernel_dir option; unset it to use the sources "
                             "built into the library)",
                             file, ctx->kernel_dir);
        return st;
    }
    for (int i = 0; i < ldm_embedded_file_count; i++) {
        if (strcmp(ldm_embedded_files[i].name, file) != 0) continue;
        char *text = malloc(ldm_embedded_files[i].size + 1);
        if (!text) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        memcpy(text, ldm_embedded_files[i].data, ldm_embedded_files[i].size);
        text[ldm_embedded_files[i].size] = '\0';
        *out = text;
        *len = ldm_embedded_files[i].size;
        return LDM_OK;
    }
    return LDM_FAIL(LDM_ERR_NOT_FOUND,
                    "kernel source '%s' is not built into this library (it embeds %d cl/ files); "
                    "rebuild ldmcl, or point LDMCL_CL_DIR at a directory holding it",
                    file, ldm_embedded_file_count);
}

/* A growing output string. */
typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void text_add(text *t, const char *s, size_t n) {
    if (t->failed) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->s, cap);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->s = p;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

/* A marker that makes the compiler count lines of `name` from `line`. */
static void text_line_marker(text *t, int line, const char *name) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "#line %d \"%s\"\n", line, name);
    if (n > 0) text_add(t, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

typedef struct include_state {
    const char *included[MAX_INCLUDED];
    int n_included;
} include_state;

/* If line (without its newline) is `#include "name"`, copies name into buf and returns 1. */
static int parse_include(const char *line, size_t n, char *buf, size_t size) {
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i >= n || line[i] != '#') return 0;
    i++;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (n - i < 7 || strncmp(line + i, "include", 7) != 0) return 0;
    i += 7;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i >= n || line[i] != '"') return 0;
    size_t start = ++i;
    while (i < n && line[i] != '"')
        i++;
    if (i >= n || i - start == 0 || i - start >= size) return 0;
    memcpy(buf, line + start, i - start);
    buf[i - start] = '\0';
    return 1;
}

static ldm_status expand(const ldm_ctx *ctx, const char *file, int depth, include_state *inc,
                         text *out) {
    if (depth > MAX_INCLUDE_DEPTH)
        return LDM_FAIL(LDM_ERR_FORMAT, "kernel source '%s': includes nest deeper than %d", file,
                        MAX_INCLUDE_DEPTH);
    char *src = NULL;
    size_t len = 0;
    LDM_TRY(ldm_source_read(ctx, file, &src, &len));
    text_line_marker(out, 1, file);
    const char *p = src, *end = src + len;
    int line_no = 1;
    ldm_status st = LDM_OK;
    while (p < end && st == LDM_OK) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char name[256];
        if (parse_include(p, n, name, sizeof name)) {
            int seen = 0;
            for (int i = 0; i < inc->n_included; i++)
                if (strcmp(inc->included[i], name) == 0) seen = 1;
            if (!seen) {
                if (inc->n_included == MAX_INCLUDED) {
                    st = LDM_FAIL(LDM_ERR_FORMAT, "kernel source '%s': more than %d includes", file,
                                  MAX_INCLUDED);
                    break;
                }
                char *kept = ldm_strdup(name);
                if (!kept) {
                    st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
                    break;
                }
                inc->included[inc->n_included++] = kept;
                st = expand(ctx, name, depth + 1, inc, out);
                if (st != LDM_OK) {
                    ldm_error_prefix("included from %s:%d", file, line_no);
                    break;
                }
                text_line_marker(out, line_no + 1, file);
            } else {
                text_add(out, "\n", 1);
            }
        } else {
            text_add(out, p, n);
            text_add(out, "\n", 1);
        }
        line_no++;
        p += n + 1;
    }
    free(src);
    if (st == LDM_OK && out->failed) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    return st;
}

ldm_status ldm_source_expand(const ldm_ctx *ctx, const char *file, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    include_state inc = {{0}, 0};
    text t = {0};
    ldm_status st = expand(ctx, file, 0, &inc, &t);
    for (int i = 0; i < inc.n_included; i++)
        free((char *)inc.included[i]);
    if (st != LDM_OK) {
        free(t.s);
        return st;
    }
    *out = t.s;
    *len = t.len;
    return LDM_OK;
}
