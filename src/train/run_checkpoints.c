/* src/train/run_checkpoints.c: a run's checkpoint folder (see runner_internal.h):
 * checkpoint-NNNNNNNN.safetensors files written atomically, the `latest` pointer moved only after
 * a complete save, the oldest beyond the limit removed; on resuming, the checkpoint `latest`
 * names or, when that one is damaged, the newest intact one, saying so. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/safetensors.h"
#include "runner_internal.h"

static void checkpoint_name(char *out, const char *dir, int step) {
    run_format(out, "%s/checkpoint-%08d.safetensors", dir, step);
}

/* The steps of the checkpoint files in dir (at most max), in no order. */
static int list_checkpoints(const char *dir, int *steps, int max) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        int k, end = 0;
        if (sscanf(e->d_name, "checkpoint-%8d.safetensors%n", &k, &end) == 1 &&
            (size_t)end == strlen(e->d_name) && k > 0)
            steps[n++] = k;
    }
    closedir(d);
    return n;
}

int run_has_checkpoints(const char *dir) {
    int step;
    return list_checkpoints(dir, &step, 1) > 0;
}

/* Removes the oldest checkpoints beyond the limit, never the one at step keep (the run's own
 * newest, or the one it resumed from: a newer one may be damaged), and the temporaries of saves
 * another process began and never finished. */
static void rotate(const run_ctx *r, const char *dir, int limit, int keep) {
    run_remove_temporaries(r, dir);
    int steps[4096], n = list_checkpoints(dir, steps, 4096);
    for (int kept = n; kept > limit; kept--) {
        int oldest = -1;
        for (int i = 0; i < n; i++)
            if (steps[i] != keep && (oldest < 0 || steps[i] < steps[oldest])) oldest = i;
        if (oldest < 0) break;
        char path[LDM_RUN_PATH];
        checkpoint_name(path, dir, steps[oldest]);
        if (remove(path) == 0) run_note(r, LDM_LOG_DEBUG, "removed the old checkpoint %s", path);
        steps[oldest] = steps[--n];
    }
}

ldm_status run_checkpoint_save(const run_ctx *r, int step, int limit, run_checkpoint_save_fn save,
                               void *user) {
    char dir[LDM_RUN_PATH], path[LDM_RUN_PATH], latest[LDM_RUN_PATH], text[64];
    run_path(dir, r->out, "checkpoints");
    LDM_TRY(run_mkdirs(dir));
    checkpoint_name(path, dir, step);
    LDM_TRY(save(user, path, step));
    run_path(latest, dir, "latest");
    snprintf(text, sizeof text, "checkpoint-%08d.safetensors\n", step);
    LDM_TRY(run_write_text(latest, text)); /* the pointer moves only after the file is complete */
    run_note(r, LDM_LOG_INFO, "checkpoint: step %d saved in %s", step, path);
    rotate(r, dir, limit, step);
    return LDM_OK;
}

ldm_status run_checkpoint_step(const char *path, int *step) {
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    uint64_t k = 0;
    ldm_status e = ldm_safetensors_metadata_u64(st, RUN_STEP_KEY, &k);
    ldm_safetensors_close(st);
    if (e == LDM_OK && (k < 1 || k > INT32_MAX))
        e = LDM_FAIL(LDM_ERR_FORMAT, "'%s': %s = %llu is not a step", path, RUN_STEP_KEY,
                     (unsigned long long)k);
    if (e == LDM_OK) *step = (int)k;
    return e;
}

static int by_step_descending(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

/* The step named by checkpoints/latest, or 0 when it names none (a note says why). */
static int latest_step(const run_ctx *r, const char *pointer) {
    FILE *f = fopen(pointer, "r");
    if (!f) return 0;
    char name[256] = "";
    int ok = fgets(name, sizeof name, f) != NULL, k = 0, end = 0;
    fclose(f);
    name[strcspn(name, "\r\n")] = 0;
    if (!ok || sscanf(name, "checkpoint-%8d.safetensors%n", &k, &end) != 1 ||
        (size_t)end != strlen(name) || k < 1) {
        run_note(r, LDM_LOG_WARN, "'%s' does not name a checkpoint: using the newest intact one",
                 pointer);
        return 0;
    }
    return k;
}

ldm_status run_checkpoint_resume(const run_ctx *r, int limit, run_checkpoint_load_fn load,
                                 void *user, int *start) {
    *start = 0;
    char dir[LDM_RUN_PATH], pointer[LDM_RUN_PATH], path[LDM_RUN_PATH];
    run_path(dir, r->out, "checkpoints");
    run_path(pointer, dir, "latest");
    int steps[4097], n = list_checkpoints(dir, steps + 1, 4096);
    qsort(steps + 1, (size_t)n, sizeof *steps, by_step_descending);
    int named = latest_step(r, pointer), first = 1;
    if (named) { /* tried first, then the others newest first */
        steps[0] = named;
        first = 0;
        for (int i = 1; i <= n; i++)
            if (steps[i] == named) steps[i] = 0;
    }
    if (first > n) {
        run_note(r, LDM_LOG_INFO, "no checkpoint to resume from in %s: starting afresh", dir);
        return LDM_OK;
    }
    char damaged[2048] = "";
    for (int i = first; i <= n; i++) {
        if (!steps[i]) continue;
        checkpoint_name(path, dir, steps[i]);
        ldm_safetensors *st;
        ldm_status e = ldm_safetensors_open(path, &st);
        if (e == LDM_OK) {
            ldm_safetensors_close(st);
            LDM_TRY(load(user, path, start));
            /* a process killed between a save and the rotation left one too many */
            rotate(r, dir, limit, *start);
            if (damaged[0])
                run_note(r, LDM_LOG_WARN,
                         "resumed from the newest intact checkpoint, %s, instead (%s)", path,
                         damaged);
            run_note(r, LDM_LOG_INFO, "resumed from %s at step %d", path, *start);
            return LDM_OK;
        }
        run_note(r, LDM_LOG_WARN, "checkpoint %s is damaged, not used: %s", path, ldm_last_error());
        size_t used = strlen(damaged);
        if (used + strlen(path) + 16 < sizeof damaged)
            snprintf(damaged + used, sizeof damaged - used, "%s%.*s is damaged", used ? "; " : "",
                     (int)(sizeof damaged - used - 16), path);
    }
    return LDM_FAIL(LDM_ERR_FORMAT,
                    "no intact checkpoint to resume from in %s (%s): restore one, or remove the "
                    "folder to start afresh",
                    dir, damaged);
}
