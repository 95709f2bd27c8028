/* src/core/gemm_tuning.c: CLBlast's GEMM kernel parameters for one device, kept in a text file
 * beside the binary kernel cache and applied when a context opens. CLBlast ships tuned
 * parameters for many GPUs but none for CPU OpenCL drivers such as pocl, where its defaults run
 * the small GEMMs of convolutions several times slower than they can; ldm_gemm_tune
 * (gemm_tune.c) measures better ones and writes the file through ldm_gemm_tuning_save.
 *
 * File format (text, one entry per line, '#' starts a comment line):
 *   ldmcl-gemm-tuning 1
 *   Xgemm GEMMK=0 KREG=1 KWG=32 ...        every parameter of CLBlast's Xgemm kernel
 *   GemmRoutine XGEMM_MIN_INDIRECT_SIZE=64 the size from which the indirect (tiled) path runs
 * A file with no entries records that CLBlast's defaults measured fastest. */
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sha256.h"

#define HEADER "ldmcl-gemm-tuning 1"

ldm_status ldm_device_file_path(const ldm_ctx *ctx, const char *what, const char *prefix, char *buf,
                                size_t size) {
    if (!ctx->cache_dir)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT,
                        "%s is kept in the kernel cache directory, which is off "
                        "(LDMCL_CL_CACHE=0): turn the cache on or set LDMCL_CL_CACHE_DIR",
                        what);
    const ldm_device_info *d = &ctx->info;
    ldm_sha256 s;
    ldm_sha256_init(&s);
    const char *fields[] = {d->platform_name, d->platform_version, d->device_name,
                            d->device_version, d->driver_version};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        ldm_sha256_field(&s, fields[i], strlen(fields[i]));
    unsigned char digest[32];
    char hex[65];
    ldm_sha256_final(&s, digest);
    ldm_sha256_hex(digest, hex);
    hex[16] = '\0';
    int n = snprintf(buf, size, "%s/%s-%s.txt", ctx->cache_dir, prefix, hex);
    if (n < 0 || (size_t)n >= size)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "kernel cache path too long: '%s'",
                        ctx->cache_dir);
    return LDM_OK;
}

ldm_status ldm_gemm_tuning_path(const ldm_ctx *ctx, char *buf, size_t size) {
    return ldm_device_file_path(ctx, "GEMM tuning", "gemm-tuning", buf, size);
}

static int overridden; /* CLBlast's database is process-wide and cannot be reset */

int ldm_gemm_tuning_overridden(void) {
    return overridden;
}

/* Applies one kernel's parameters to CLBlast's database for this device. */
ldm_status ldm_gemm_tuning_apply_kernel(ldm_ctx *ctx, const ldm_gemm_tuning_kernel *k) {
    overridden = 1;
    const char *names[LDM_GEMM_TUNING_MAX_PARAMS];
    for (int i = 0; i < k->n; i++)
        names[i] = k->names[i];
    CLBlastStatusCode c = CLBlastOverrideParameters(ctx->device, k->kernel, CLBlastPrecisionSingle,
                                                    (size_t)k->n, names, k->values);
    if (c != CLBlastSuccess)
        return LDM_FAIL(LDM_ERR_CLBLAST,
                        "CLBlast rejected the parameters for its '%s' kernel: %s (%d)%s", k->kernel,
                        ldm_clblast_error_name(c), (int)c,
                        c == CLBlastMissingOverrideParameter
                            ? " (this CLBlast version has other parameter names)"
                            : "");
    return LDM_OK;
}

ldm_status ldm_gemm_tuning_apply(ldm_ctx *ctx, const ldm_gemm_tuning *t) {
    for (int i = 0; i < t->n; i++)
        LDM_TRY(ldm_gemm_tuning_apply_kernel(ctx, &t->kernels[i]));
    return LDM_OK;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

/* Parses "Kernel NAME=VALUE ..." into k; NULL when fine, else why not. */
static const char *parse_entry(char *line, ldm_gemm_tuning_kernel *k) {
    memset(k, 0, sizeof *k);
    char *save = NULL, *tok = strtok_r(line, " \t\r", &save);
    if (!tok || strlen(tok) >= sizeof k->kernel) return "a kernel name of at most 31 characters";
    snprintf(k->kernel, sizeof k->kernel, "%s", tok);
    while ((tok = strtok_r(NULL, " \t\r", &save))) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok) return "NAME=VALUE parameters after the kernel name";
        *eq = '\0';
        if (strlen(tok) >= sizeof k->names[0]) return "parameter names of at most 31 characters";
        if (k->n == LDM_GEMM_TUNING_MAX_PARAMS) return "at most 24 parameters";
        char *end = NULL;
        unsigned long long v = strtoull(eq + 1, &end, 10);
        if (eq[1] < '0' || eq[1] > '9' || *end || v > 1u << 30)
            return "a whole number from 0 to 2^30 as each value";
        for (int i = 0; i < k->n; i++)
            if (strcmp(k->names[i], tok) == 0) return "each parameter once";
        snprintf(k->names[k->n], sizeof k->names[0], "%s", tok);
        k->values[k->n++] = (size_t)v;
    }
    if (k->n == 0) return "at least one NAME=VALUE parameter";
    return NULL;
}

ldm_status ldm_gemm_tuning_parse(const char *path, char *text, ldm_gemm_tuning *t) {
    memset(t, 0, sizeof *t);
    int line_no = 0, seen_header = 0;
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line_no++;
        while (is_space(*line))
            line++;
        size_t len = strlen(line);
        while (len && is_space(line[len - 1]))
            line[--len] = '\0';
        if (*line && *line != '#') {
            if (!seen_header) {
                if (strcmp(line, HEADER) != 0)
                    return LDM_FAIL(LDM_ERR_FORMAT,
                                    "%s:%d: expected '%s' as the first line (not an ldmcl GEMM "
                                    "tuning file, or another version of it)",
                                    path, line_no, HEADER);
                seen_header = 1;
            } else {
                if (t->n == LDM_GEMM_TUNING_MAX_KERNELS)
                    return LDM_FAIL(LDM_ERR_FORMAT, "%s:%d: more than %d kernels", path, line_no,
                                    LDM_GEMM_TUNING_MAX_KERNELS);
                const char *why = parse_entry(line, &t->kernels[t->n]);
                if (why) return LDM_FAIL(LDM_ERR_FORMAT, "%s:%d: expected %s", path, line_no, why);
                t->n++;
            }
        }
        line = next;
    }
    if (!seen_header)
        return LDM_FAIL(LDM_ERR_FORMAT, "%s: empty; expected '%s' as the first line", path, HEADER);
    return LDM_OK;
}

ldm_status ldm_gemm_tuning_load_file(const char *path, ldm_gemm_tuning *t) {
    char *text = NULL;
    size_t len = 0;
    LDM_TRY(ldm_read_file(path, &text, &len));
    if (strlen(text) != len) {
        free(text);
        return LDM_FAIL(LDM_ERR_FORMAT, "%s: not a text file (it holds a NUL byte)", path);
    }
    ldm_status st = ldm_gemm_tuning_parse(path, text, t);
    free(text);
    return st;
}

ldm_status ldm_gemm_tuning_save(ldm_ctx *ctx, const ldm_gemm_tuning *t, const char *comment) {
    char path[4096];
    LDM_TRY(ldm_gemm_tuning_path(ctx, path, sizeof path));
    int err = ldm_mkdirs(ctx->cache_dir);
    if (err)
        return LDM_FAIL(LDM_ERR_IO, "creating the directory '%s' failed: %s", ctx->cache_dir,
                        strerror(err));
    ldm_atomic_file a;
    LDM_TRY(ldm_atomic_open(&a, path));
    int ok = ldm_atomic_printf(&a, "%s\n# %s on %s, driver %s\n", HEADER, ctx->info.device_name,
                               ctx->info.platform_name, ctx->info.driver_version);
    if (comment && *comment) ok = ok && ldm_atomic_printf(&a, "# %s\n", comment);
    for (int i = 0; i < t->n && ok; i++) {
        const ldm_gemm_tuning_kernel *k = &t->kernels[i];
        ok = ldm_atomic_printf(&a, "%s", k->kernel);
        for (int j = 0; j < k->n && ok; j++)
            ok = ldm_atomic_printf(&a, " %s=%zu", k->names[j], k->values[j]);
        ok = ok && ldm_atomic_write(&a, "\n", 1);
    }
    return ldm_atomic_commit(&a, ok);
}

void ldm_gemm_tuning_load(ldm_ctx *ctx) {
    char path[4096];
    if (!ctx->cache_dir || ldm_gemm_tuning_path(ctx, path, sizeof path) != LDM_OK) return;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (ctx->info.is_cpu)
            ldm_log(ctx, LDM_LOG_INFO,
                    "GEMMs use CLBlast's default parameters, which are slow on CPU devices: "
                    "`ldmcl-bench --tune-gemm` measures better ones for this device, once "
                    "(minutes)");
        return;
    }
    fclose(f);
    ldm_gemm_tuning t;
    ldm_status st = ldm_gemm_tuning_load_file(path, &t);
    if (st == LDM_OK) st = ldm_gemm_tuning_apply(ctx, &t);
    if (st != LDM_OK) {
        ldm_log(ctx, LDM_LOG_WARN,
                "%s; GEMMs use CLBlast's default parameters. `ldmcl-bench --tune-gemm --retune` "
                "writes a new tuning file",
                ldm_last_error());
        return;
    }
    ctx->gemm_tuned = t.n > 0;
    ldm_log(ctx, LDM_LOG_INFO, "GEMM tuning: %s (%s)", path,
            t.n ? "CLBlast parameters measured for this device"
                : "CLBlast's defaults measured fastest");
}
