/* src/core/tunables.c: each context's table of op-family tunables (tunables.h): defaults from
 * the device's facts, then its tunables file, then $LDMCL_TUNABLES. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HEADER "ldmcl-tunables 1"

/* One entry of the text form: its name, where it lies, how many values, of which type. */
typedef struct entry {
    const char *name;
    size_t offset;
    int count;
    int is_size; /* size_t values, else int */
    long min;    /* smallest value accepted */
    int pow2;    /* only powers of two (the work-group sums halve their width) */
} entry;

#define E(field, n, sz, lo, p2)                                                                    \
    { #field, offsetof(ldm_tunables, field), n, sz, lo, p2 }
static const entry entries[] = {
    E(cpu_layout, 1, 0, 0, 0),   E(elementwise_wg, 1, 1, 1, 0),    E(norm_wg, 1, 1, 1, 1),
    E(sum_rows_wg, 1, 1, 1, 1),  E(softmax_wg, 1, 1, 1, 1),        E(conv_local, 2, 1, 1, 0),
    E(conv_batched, 1, 0, 0, 0), E(attn_tile, 2, 0, 1, 0),         E(attn_side, 1, 0, 1, 0),
    E(attn_keys, 2, 0, 1, 0),    E(norm_split_groups, 1, 0, 0, 0), E(norm_split_min, 1, 0, 1, 0),
};
#undef E
#define N_ENTRIES (sizeof entries / sizeof *entries)

static size_t pow2_at_most(size_t v) {
    size_t p = 1;
    while (p * 2 <= v)
        p *= 2;
    return p;
}

/* The defaults: by kernel layout, then clamped to the device's work-group limit. On CPU drivers
 * idle work-items and barrier steps cost more than they save: 16-wide reductions (GroupNorm at
 * 7x7 with 2 to 4 channels per group has 100 to 200 elements per group; a bias gradient sums 64
 * rows of 3,136), conv's *_rows kernels (one image row per work-item) and attention's rows layout
 * at the driver's work-group size. On GPUs: 256-wide reductions, attention tiles fitted to local
 * memory at launch (attention.c), GroupNorm's sums split until every compute unit has four
 * work-groups, and conv by strided-batched GEMMs on the images in place (on pocl in the GPU
 * layout 1.48x faster than one GEMM per chunk and transposed copies at the seed UNet's conv
 * shapes, batch 16; ldmcl-bench --tune measures both on any device). */
static void defaults(const ldm_device_info *d, int cpu_layout, ldm_tunables *t) {
    size_t wg = 256, max = d->max_work_group_size ? d->max_work_group_size : 1;
    *t = (ldm_tunables){
        .cpu_layout = cpu_layout,
        .elementwise_wg = wg,
        .norm_wg = cpu_layout ? 16 : wg,
        .sum_rows_wg = cpu_layout ? 16 : wg,
        .softmax_wg = wg,
        .conv_local = {cpu_layout ? 1 : 32, cpu_layout ? 64 : 4},
        .conv_batched = !cpu_layout,
        .attn_tile = {32, 16},
        .attn_side = 8,
        .attn_keys = {32, 16},
        .norm_split_groups = cpu_layout ? 0 : 4 * (int)d->compute_units,
        .norm_split_min = 1024,
    };
    size_t *sizes[] = {&t->elementwise_wg, &t->norm_wg, &t->sum_rows_wg, &t->softmax_wg};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (*sizes[i] > max) *sizes[i] = pow2_at_most(max);
    while (t->conv_local[0] * t->conv_local[1] > max)
        t->conv_local[t->conv_local[1] > 1 ? 1 : 0] /= 2;
    while ((size_t)(t->attn_side * t->attn_side) > max)
        t->attn_side /= 2;
}

static const entry *find(const char *name, size_t len) {
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (strlen(entries[i].name) == len && !strncmp(entries[i].name, name, len))
            return &entries[i];
    return NULL;
}

static void names(char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ENTRIES && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", entries[i].name);
}

ldm_status ldm_tunables_parse(const char *where, const char *text, ldm_tunables *t) {
    const char *p = text;
    int line = 1;
    while (*p) {
        if (*p == '\n') line++;
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            p++;
            continue;
        }
        if (*p == '#' || !strncmp(p, HEADER, strlen(HEADER))) { /* comment or header line */
            while (*p && *p != '\n')
                p++;
            continue;
        }
        const char *eq = p;
        while (*eq && *eq != '=' && *eq != ' ' && *eq != '\n')
            eq++;
        if (*eq != '=')
            return LDM_FAIL(LDM_ERR_FORMAT, "%s, line %d: expected name=value, got '%.*s'", where,
                            line, (int)(eq - p), p);
        const entry *e = find(p, (size_t)(eq - p));
        if (!e) {
            char known[512];
            names(known, sizeof known);
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "%s, line %d: '%.*s' is no tunable (name=value; "
                            "the tunables: %s)",
                            where, line, (int)(eq - p), p, known);
        }
        p = eq + 1;
        for (int k = 0; k < e->count; k++) {
            char *end;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno || v < e->min || v > 1 << 20 ||
                (k + 1 < e->count ? *end != ',' : (*end && !strchr(" \t\r\n", *end))))
                return LDM_FAIL(LDM_ERR_FORMAT,
                                "%s, line %d: %s takes %d whole number%s from %ld, apart by "
                                "commas; got '%.*s'",
                                where, line, e->name, e->count, e->count > 1 ? "s" : "", e->min,
                                (int)strcspn(eq + 1, " \t\r\n"), eq + 1);
            if (e->pow2 && (v & (v - 1)))
                return LDM_FAIL(LDM_ERR_FORMAT, "%s, line %d: %s must be a power of two, got %ld",
                                where, line, e->name, v);
            char *at = (char *)t + e->offset;
            if (e->is_size)
                ((size_t *)(void *)at)[k] = (size_t)v;
            else
                ((int *)(void *)at)[k] = (int)v;
            p = end + (k + 1 < e->count);
        }
    }
    return LDM_OK;
}

void ldm_tunables_format(const ldm_tunables *t, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ENTRIES && used < size; i++) {
        const entry *e = &entries[i];
        const char *at = (const char *)t + e->offset;
        used += (size_t)snprintf(buf + used, size - used, "%s%s=", i ? " " : "", e->name);
        for (int k = 0; k < e->count && used < size; k++) {
            long v = e->is_size ? (long)((const size_t *)(const void *)at)[k]
                                : (long)((const int *)(const void *)at)[k];
            used += (size_t)snprintf(buf + used, size - used, "%s%ld", k ? "," : "", v);
        }
    }
}

ldm_status ldm_tunables_path(const ldm_ctx *ctx, char *buf, size_t size) {
    return ldm_device_file_path(ctx, "the tunables file",
                                ctx->cpu_kernels ? "tunables-cpu-layout" : "tunables-gpu-layout",
                                buf, size);
}

/* The layout is the context's (LDMCL_CPU_KERNELS): a file or variable may not change it. */
static ldm_status check_layout(const ldm_ctx *ctx, const ldm_tunables *t, const char *where) {
    if (t->cpu_layout != ctx->cpu_kernels)
        return LDM_FAIL(LDM_ERR_FORMAT,
                        "%s: cpu_layout=%d, but this context runs the kernels laid out for %s "
                        "(set LDMCL_CPU_KERNELS to choose)",
                        where, t->cpu_layout, ctx->cpu_kernels ? "CPUs" : "GPUs");
    return LDM_OK;
}

ldm_status ldm_tunables_resolve(ldm_ctx *ctx) {
    ldm_tunables t;
    defaults(&ctx->info, ctx->cpu_kernels, &t);
    char path[4096];
    if (ctx->cache_dir && ldm_tunables_path(ctx, path, sizeof path) == LDM_OK) {
        char *text = NULL;
        size_t len;
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            LDM_TRY(ldm_read_file(path, &text, &len));
            ldm_status st = ldm_tunables_parse(path, text, &t);
            free(text);
            if (st == LDM_OK) st = check_layout(ctx, &t, path);
            if (st != LDM_OK) {
                char why[1024];
                snprintf(why, sizeof why, "%s", ldm_last_error());
                return LDM_FAIL(st, "%s (`ldmcl-bench --tune` writes the file anew; or delete it)",
                                why);
            }
            ldm_log(ctx, LDM_LOG_INFO, "kernel tunables: %s", path);
        }
    }
    const char *env = getenv("LDMCL_TUNABLES");
    if (env && *env) {
        LDM_TRY(ldm_tunables_parse("LDMCL_TUNABLES", env, &t));
        LDM_TRY(check_layout(ctx, &t, "LDMCL_TUNABLES"));
    }
    ctx->tunables = t;
    return LDM_OK;
}

const ldm_tunables *ldm_ctx_tunables(const ldm_ctx *ctx) {
    return &ctx->tunables;
}

void ldm_ctx_tunables_text(const ldm_ctx *ctx, char *buf, size_t size) {
    ldm_tunables_format(&ctx->tunables, buf, size);
}

ldm_status ldm_ctx_set_tunables_text(ldm_ctx *ctx, const char *text) {
    ldm_tunables t = ctx->tunables;
    LDM_TRY(ldm_tunables_parse("tunables", text, &t));
    LDM_TRY(check_layout(ctx, &t, "tunables"));
    ctx->tunables = t;
    return LDM_OK;
}

ldm_status ldm_ctx_save_tunables(ldm_ctx *ctx, const char *comment, char *path, size_t size) {
    LDM_TRY(ldm_tunables_path(ctx, path, size));
    return ldm_tunables_save(ctx, &ctx->tunables, comment);
}

ldm_status ldm_tunables_save(ldm_ctx *ctx, const ldm_tunables *t, const char *comment) {
    LDM_TRY(check_layout(ctx, t, "the tunables to save"));
    char path[4096], line[1024];
    LDM_TRY(ldm_tunables_path(ctx, path, sizeof path));
    int err = ldm_mkdirs(ctx->cache_dir);
    if (err)
        return LDM_FAIL(LDM_ERR_IO, "creating the directory '%s' failed: %s", ctx->cache_dir,
                        strerror(err));
    ldm_tunables_format(t, line, sizeof line);
    ldm_atomic_file a;
    LDM_TRY(ldm_atomic_open(&a, path));
    int ok = ldm_atomic_printf(&a, "%s\n# %s on %s, driver %s\n", HEADER, ctx->info.device_name,
                               ctx->info.platform_name, ctx->info.driver_version);
    if (comment && *comment) ok = ok && ldm_atomic_printf(&a, "# %s\n", comment);
    ok = ok && ldm_atomic_printf(&a, "%s\n", line);
    LDM_TRY(ldm_atomic_commit(&a, ok));
    ctx->tunables = *t;
    return LDM_OK;
}
