/* tools/bench_tune.c: ldmcl-bench --tune, the kernels' tunables measured on the user's device
 * (src/core/tunables.h): for each family, candidate settings are timed on the op cases where
 * they matter (the seed UNet's shapes on a GPU, small ones otherwise, or as --shapes says; the
 * CPU layout's families have small shapes only), round by round in turn so
 * that a device whose speed drifts treats every candidate alike; the fastest median wins and the
 * result is kept as the device's tunables file beside the kernel cache, next to the GEMM tuning
 * file of --tune-gemm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_CASES 3
#define MAX_CANDIDATES 8

typedef struct family {
    const char *name;
    int layout; /* 0: the GPU layout's, 1: the CPU layout's, -1: both */
    const char *gpu_cases[MAX_CASES], *cpu_cases[MAX_CASES];
    const char *candidates[MAX_CANDIDATES]; /* "%u": four, then eight work-groups per CU */
} family;

static const family families[] = {
    {"attention",
     0,
     {"self-attn 1024 tok C384 16h b4", "cross-attn 1024x77 C384 16h",
      "self-attn 256 tok C512 16h"},
     {"self-attn 256 tok C64 4h", "cross-attn 256x77 C64 4h"},
     {"attn_tile=32,16 attn_side=8", "attn_tile=32,32 attn_side=8", "attn_tile=64,32 attn_side=8",
      "attn_tile=16,16 attn_side=8", "attn_tile=64,64 attn_side=16", "attn_tile=32,32 attn_side=16",
      "attn_tile=16,16 attn_side=4"}},
    {"attention",
     1,
     {NULL},
     {"self-attn 256 tok C64 4h", "cross-attn 256x77 C64 4h"},
     {"attn_keys=32,16", "attn_keys=16,16", "attn_keys=64,32", "attn_keys=128,64"}},
    {"conv",
     0,
     {"conv 3x3 256->256 @32", "conv 3x3 768->768 @4", "upsample convT 4x4 s2 512 @4"},
     {"conv 3x3 32->32 @16", "upsample convT 4x4 s2 32 @8"},
     {"conv_batched=0", "conv_batched=1", "conv_batched=0 conv_local=64,4",
      "conv_batched=1 conv_local=64,4", "conv_batched=1 conv_local=256,1"}},
    {"conv",
     1,
     {NULL},
     {"conv 3x3 32->32 @16", "upsample convT 4x4 s2 32 @8"},
     {"conv_local=1,64", "conv_local=1,16", "conv_local=1,128", "conv_local=2,32"}},
    {"group_norm",
     0,
     {"group_norm 32g 256 @32 b4", "group_norm 32g 256 @32", "group_norm 32g 768 @4"},
     {"group_norm 8g 32 @16"},
     {"norm_wg=256 norm_split_groups=0", "norm_wg=256 norm_split_groups=%u",
      "norm_wg=256 norm_split_groups=%u*2", "norm_wg=128 norm_split_groups=%u",
      "norm_wg=64 norm_split_groups=%u"}},
    {"group_norm", 1, {NULL}, {"group_norm 8g 32 @16"}, {"norm_wg=16", "norm_wg=32", "norm_wg=64"}},
    {"elementwise",
     -1,
     {"silu 256 @32"},
     {"silu 32 @16"},
     {"elementwise_wg=256", "elementwise_wg=128", "elementwise_wg=64"}},
};
#define N_FAMILIES (sizeof families / sizeof *families)

/* A candidate's text with "%u" (and "%u*2") replaced by 4 (and 8) work-groups per compute unit. */
static void expand(const char *in, unsigned cu, char *out, size_t size) {
    const char *p = strstr(in, "%u");
    if (!p) {
        snprintf(out, size, "%s", in);
        return;
    }
    int twice = !strncmp(p + 2, "*2", 2);
    snprintf(out, size, "%.*s%u%s", (int)(p - in), in, 4 * cu * (twice ? 2 : 1),
             p + (twice ? 4 : 2));
}

/* Medians over s->repeat rounds of each candidate's summed device time over the cases; a
 * candidate the context refuses (tiles over local memory, ...) gets a negative time. */
static ldm_status measure(ldm_ctx *ctx, const bench_settings *s, const char *base,
                          const char *const *cases, char cand[][256], int nc, double *median) {
    bench_op_graph *g[MAX_CANDIDATES][MAX_CASES] = {{NULL}};
    double *rounds = calloc((size_t)nc * (size_t)s->repeat, sizeof *rounds);
    if (!rounds) return LDM_ERR_HOST_MEMORY;
    ldm_status st = LDM_OK;
    for (int c = 0; c < nc && st == LDM_OK; c++) {
        st = ldm_ctx_set_tunables_text(ctx, base);
        if (st == LDM_OK && ldm_ctx_set_tunables_text(ctx, cand[c]) != LDM_OK) {
            printf("    %-40s refused: %s\n", cand[c], ldm_last_error());
            median[c] = -1;
            continue;
        }
        for (int k = 0; k < MAX_CASES && cases[k] && st == LDM_OK; k++) {
            if (bench_op_graph_open(ctx, cases[k], &g[c][k]) != LDM_OK) {
                printf("    %-40s refused on %s: %s\n", cand[c], cases[k], ldm_last_error());
                median[c] = -1;
                break;
            }
        }
    }
    for (int r = 0; r < s->repeat && st == LDM_OK; r++)
        for (int c = 0; c < nc && st == LDM_OK; c++)
            for (int k = 0; k < MAX_CASES && cases[k] && median[c] >= 0 && st == LDM_OK; k++) {
                double f = 0, b = 0;
                st = bench_op_graph_time(g[c][k], r == 0 ? s->warmup : 0, 1, &f, &b);
                rounds[c * s->repeat + r] += f + b;
            }
    for (int c = 0; c < nc; c++) {
        if (st == LDM_OK && median[c] >= 0)
            median[c] = bench_median(rounds + c * s->repeat, s->repeat);
        for (int k = 0; k < MAX_CASES; k++)
            bench_op_graph_close(g[c][k]);
    }
    free(rounds);
    if (st == LDM_OK) st = ldm_ctx_set_tunables_text(ctx, base);
    return st;
}

/* Whether name is in the comma-separated list (NULL: every family). */
static int wanted(const char *list, const char *name) {
    if (!list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, name, n)) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

int bench_tune_families_known(const char *list) {
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        int known = 0;
        for (size_t f = 0; f < N_FAMILIES; f++)
            known |= strlen(families[f].name) == len && !strncmp(p, families[f].name, len);
        if (!known) {
            fprintf(stderr,
                    "ldmcl-bench: --tune-families: no family '%.*s' (attention, conv, "
                    "group_norm, elementwise)\n",
                    (int)len, p);
            return 0;
        }
        p += len + (p[len] == ',');
    }
    return 1;
}

ldm_status bench_tune(ldm_ctx *ctx, const bench_settings *s, int seed_shapes,
                      const char *families_list) {
    const ldm_device_info *d = ldm_ctx_device_info(ctx);
    int cpu = ldm_ctx_cpu_kernels(ctx);
    char base[1024], path[4096], comment[256];
    if (getenv("LDMCL_TUNABLES"))
        printf("note: LDMCL_TUNABLES is set; it overrides the tunables file in every program\n");
    printf("tuning the kernels laid out for %s on %s (median of %d rounds, device time)\n",
           cpu ? "CPUs" : "GPUs", d->device_name, s->repeat);
    for (size_t f = 0; f < N_FAMILIES; f++) {
        const family *fam = &families[f];
        if ((fam->layout >= 0 && fam->layout != cpu) || !wanted(families_list, fam->name)) continue;
        const char *const *cases =
            seed_shapes && fam->gpu_cases[0] ? fam->gpu_cases : fam->cpu_cases;
        char cand[MAX_CANDIDATES][256];
        double median[MAX_CANDIDATES] = {0};
        int nc = 0;
        for (; nc < MAX_CANDIDATES && fam->candidates[nc]; nc++)
            expand(fam->candidates[nc], d->compute_units, cand[nc], sizeof cand[nc]);
        ldm_ctx_tunables_text(ctx, base, sizeof base);
        printf("  %s (", fam->name);
        for (int k = 0; k < MAX_CASES && cases[k]; k++)
            printf("%s%s", k ? "; " : "", cases[k]);
        printf("):\n");
        fflush(stdout);
        BENCH_TRY(measure(ctx, s, base, cases, cand, nc, median));
        int best = -1;
        for (int c = 0; c < nc; c++)
            if (median[c] >= 0 && (best < 0 || median[c] < median[best])) best = c;
        for (int c = 0; c < nc; c++)
            if (median[c] >= 0)
                printf("    %-40s %10.3f ms%s\n", cand[c], median[c],
                       c == best ? "  <- chosen" : "");
        if (best >= 0) BENCH_TRY(ldm_ctx_set_tunables_text(ctx, cand[best]));
    }
    snprintf(comment, sizeof comment, "measured by ldmcl-bench --tune (%s shapes, %d rounds)",
             seed_shapes ? "seed" : "small", s->repeat);
    BENCH_TRY(ldm_ctx_save_tunables(ctx, comment, path, sizeof path));
    ldm_ctx_tunables_text(ctx, base, sizeof base);
    printf("tunables: %s\nwritten: %s (read by every ldmcl program on this device and driver)\n",
           base, path);
    return LDM_OK;
}
