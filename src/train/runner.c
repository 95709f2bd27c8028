/* src/train/runner.c: a whole training run (see ldmcl/runner.h): the stages in order, and what
 * they share: messages, the data order, files, the loss curve. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldmcl/image.h"
#include "runner_internal.h"
#include "sha256.h"

void run_note(const run_ctx *r, ldm_log_level level, const char *fmt, ...) {
    if (!r->o->log) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->o->log(r->o->log_user, level, msg);
}

ldm_status run_profile_begin(const run_ctx *r, int step) {
    if (r->o->profile_step != step + 1) return LDM_OK;
    return ldm_ctx_profile_begin(r->ctx);
}

ldm_status run_profile_report(const run_ctx *r, const char *stage, int step, double wall_s) {
    if (r->o->profile_step != step + 1) return LDM_OK;
    LDM_TRY(ldm_ctx_finish(r->ctx));
    enum { shown = 24 };
    ldm_profile_entry e[shown];
    size_t n = ldm_ctx_profile_end(r->ctx, e, shown), m = n < shown ? n : shown;
    double total = 0;
    for (size_t i = 0; i < m; i++)
        total += e[i].ms;
    run_note(r, LDM_LOG_INFO,
             "%s step %d: %.1f ms wall (each launch waited for), %.1f ms device time in the "
             "%zu largest of %zu kinds of launch:",
             stage, step + 1, wall_s * 1e3, total, m, n);
    for (size_t i = 0; i < m; i++)
        run_note(r, LDM_LOG_INFO, "  %-32s %9.2f ms %5.1f%% %6ld launches", e[i].name, e[i].ms,
                 total > 0 ? 100 * e[i].ms / total : 0.0, e[i].launches);
    return LDM_OK;
}

uint64_t run_mix(uint64_t x) {
    uint64_t z = x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A keyed bijection of [0, 2^(2 half)): a four-round Feistel network. */
static uint64_t feistel(uint64_t x, uint64_t key, unsigned half) {
    uint64_t mask = (1ull << half) - 1, l = x >> half, r = x & mask;
    for (uint64_t round = 0; round < 4; round++) {
        uint64_t f = run_mix(key ^ (round << 56) ^ r) & mask;
        uint64_t nl = r;
        r = l ^ f;
        l = nl;
    }
    return (l << half) | r;
}

size_t run_order(uint64_t seed, size_t n, uint64_t p) {
    /* Stateless, so any position of any epoch is one call: the Feistel bijection over the next
     * even power of two, cycle-walked into [0, n) (a bijection of [0, n) too). */
    uint64_t epoch = p / n, i = p % n;
    unsigned half = 1;
    while ((1ull << (2 * half)) < n)
        half++;
    uint64_t key = run_mix(seed ^ run_mix(epoch + 1));
    do {
        i = feistel(i, key, half);
    } while (i >= n);
    return (size_t)i;
}

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

ldm_status run_sha256_file(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return LDM_FAIL(LDM_ERR_NOT_FOUND, "cannot open '%s': %s", path, strerror(errno));
    ldm_sha256 s;
    ldm_sha256_init(&s);
    unsigned char buf[1 << 16], digest[32];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        ldm_sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return LDM_FAIL(LDM_ERR_IO, "cannot read '%s'", path);
    ldm_sha256_final(&s, digest);
    ldm_sha256_hex(digest, hex);
    return LDM_OK;
}

ldm_status run_plot_losses(const char *path, const float *losses, size_t n) {
    enum { W = 640, H = 240, M = 20 };
    uint8_t *px = malloc((size_t)W * H * 3);
    if (!px) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    memset(px, 255, (size_t)W * H * 3);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (losses[i] > 0 && isfinite(losses[i])) {
            lo = fmin(lo, log10(losses[i]));
            hi = fmax(hi, log10(losses[i]));
        }
    if (!(hi > lo)) hi = lo + 1;
    for (int x = M; x < W - M; x++) /* axes */
        memset(px + ((size_t)(H - M) * W + x) * 3, 0, 3);
    for (int y = M; y < H - M; y++)
        memset(px + ((size_t)y * W + M) * 3, 0, 3);
    for (size_t i = 0; i < n; i++) {
        if (!(losses[i] > 0) || !isfinite(losses[i])) continue;
        int x = M + (int)((double)i / (double)(n > 1 ? n - 1 : 1) * (W - 2 * M - 1));
        int y = (H - M - 1) - (int)((log10(losses[i]) - lo) / (hi - lo) * (H - 2 * M - 1));
        uint8_t *p = px + ((size_t)y * W + x) * 3;
        p[0] = 30, p[1] = 90, p[2] = 200;
    }
    char range[128];
    snprintf(range, sizeof range, "loss per step, log scale from %.4g to %.4g over %zu steps",
             pow(10, lo), pow(10, hi), n);
    const char *text[] = {"Description", range, NULL};
    ldm_image img = {W, H, 3, px};
    ldm_status st = ldm_png_write(path, &img, text);
    free(px);
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

/* Every folder a run writes into. */
static void remove_all_temporaries(const run_ctx *r) {
    const char *sub[] = {"", "/checkpoints", "/samples", "/model"};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        char dir[LDM_RUN_PATH];
        run_format(dir, "%s%s", r->out, sub[i]);
        run_remove_temporaries(r, dir);
    }
}

ldm_status ldm_run_train(ldm_ctx *ctx, const ldm_run_config *config, const ldm_run_options *o) {
    ldm_run_config *c = malloc(sizeof *c); /* with epochs turned into steps */
    if (!c) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    *c = *config;
    run_ctx r = {ctx, c, o, NULL, "", 0};
    snprintf(r.out, sizeof r.out, "%s", c->output_dir);
    ldm_status st = run_mkdirs(r.out);
    /* what a process killed mid-save left (a run never resumes from them) */
    if (st == LDM_OK) remove_all_temporaries(&r);
    if (st == LDM_OK && !c->dataset_path[0])
        st = LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "%s: [dataset] path is not set", c->path);
    ldm_dataset_options dopt = {.size = c->model.resolution,
                                .channels = c->model.channels,
                                .random_flip = c->random_flip,
                                .caption_ext = c->caption_extension,
                                .log = o->log,
                                .log_user = o->log_user};
    if (st == LDM_OK) st = ldm_dataset_open(c->dataset_path, &dopt, &r.data);
    if (st != LDM_OK) {
        free(c);
        return st;
    }
    size_t n = ldm_dataset_count(r.data);
    run_note(&r, LDM_LOG_INFO, "dataset %s: %zu images, %zu without captions", c->dataset_path, n,
             ldm_dataset_missing_captions(r.data));
    if (c->ae_train.epochs > 0 || c->ldm_train.epochs > 0) {
        int ae_epochs = c->ae_train.epochs, epochs = c->ldm_train.epochs;
        ldm_run_config_resolve_epochs(c, n);
        if (ae_epochs > 0)
            run_note(&r, LDM_LOG_INFO, "autoencoder: %d epochs of %zu images = %d steps", ae_epochs,
                     n, c->ae_train.steps);
        if (epochs > 0)
            run_note(&r, LDM_LOG_INFO, "ldm: %d epochs of %zu images = %d steps", epochs, n,
                     c->ldm_train.max_steps);
    }
    char ae_path[LDM_RUN_PATH], cache[LDM_RUN_PATH];
    st = run_check_inputs(&r);
    if (st == LDM_OK && o->stage != LDM_STAGE_LDM) st = run_autoencoder_stage(&r, ae_path);
    if (st == LDM_OK && o->stage == LDM_STAGE_LDM) {
        if (c->ae_checkpoint[0])
            snprintf(ae_path, sizeof ae_path, "%s", c->ae_checkpoint);
        else
            run_path(ae_path, r.out, "autoencoder.safetensors");
        if (!run_exists(ae_path))
            st = LDM_FAIL(LDM_ERR_NOT_FOUND,
                          "the LDM stage needs a trained autoencoder: '%s' does not exist (run "
                          "the autoencoder stage, or set [autoencoder] checkpoint)",
                          ae_path);
    }
    int later = st == LDM_OK && !r.stopped && o->stage != LDM_STAGE_AUTOENCODER;
    if (later) st = run_latent_cache(&r, ae_path, cache);
    if (later && st == LDM_OK) st = run_ldm_stage(&r, ae_path, cache);
    ldm_dataset_destroy(r.data);
    free(c);
    return st;
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
