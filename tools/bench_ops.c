/* tools/bench_ops.c: every op forward and backward at the seed UNet's shapes (batch 16, latent
 * 4x32x32, channels 256/384/512/768, context 77x512) or at small shapes. Each case is recorded as
 * a one-op graph with random inputs and a random upstream gradient, replayed --warmup times, then
 * --repeat times with a profiling event around every launch; the median of the per-pass sums is
 * reported with GFLOP/s, GB/s and the percentage of the device's measured SGEMM rate and copy
 * bandwidth. Every input takes a gradient, so backward passes are complete (dx and dW). FLOPs
 * count useful work (a backward pass as twice its forward for GEMM-like ops, attention included,
 * although its backward recomputes the scores); bytes count one read of each input and one write
 * of each output (twice that for a backward pass). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef enum kind { CONV, CONVT, LINEAR, GROUPNORM, LAYERNORM, SILU, ATTN_SELF, ATTN_CROSS } kind;

typedef struct op_case {
    const char *name;
    kind k;
    int a[8]; /* shape parameters, by kind (see build) */
} op_case;

/* Seed UNet (celebhq_text_cond) shapes at batch 16, and two at sampling's batch. */
static const op_case seed_cases[] = {
    {"conv_in 3x3 4->256 @32", CONV, {16, 4, 32, 256, 3, 1, 1}},
    {"conv 3x3 256->256 @32", CONV, {16, 256, 32, 256, 3, 1, 1}},
    {"conv 3x3 384->384 @16", CONV, {16, 384, 16, 384, 3, 1, 1}},
    {"conv 3x3 512->512 @8", CONV, {16, 512, 8, 512, 3, 1, 1}},
    {"conv 3x3 768->768 @4", CONV, {16, 768, 4, 768, 3, 1, 1}},
    {"conv 1x1 256->384 @32", CONV, {16, 256, 32, 384, 1, 1, 0}},
    {"downsample 4x4 s2 384 @32", CONV, {16, 384, 32, 384, 4, 2, 1}},
    {"upsample convT 4x4 s2 512 @4", CONVT, {16, 512, 4, 512, 4, 2, 1}},
    {"t_emb linear 512->512", LINEAR, {16, 512, 512}},
    {"context_proj 77x512->384", LINEAR, {16 * 77, 512, 384}},
    {"group_norm 32g 256 @32", GROUPNORM, {16, 256, 32, 32}},
    {"group_norm 32g 768 @4", GROUPNORM, {16, 768, 4, 32}},
    {"silu 256 @32", SILU, {16 * 256 * 32 * 32}},
    {"self-attn 1024 tok C384 16h", ATTN_SELF, {16, 1024, 384, 16}},
    {"cross-attn 1024x77 C384 16h", ATTN_CROSS, {16, 1024, 77, 384, 16}},
    {"self-attn 256 tok C512 16h", ATTN_SELF, {16, 256, 512, 16}},
    {"layer_norm 77x512 (CLIP)", LAYERNORM, {16 * 77, 512}},
    /* sampling at batch 2 (CFG: 4 rows): few groups and heads per compute unit */
    {"group_norm 32g 256 @32 b4", GROUPNORM, {4, 256, 32, 32}},
    {"self-attn 1024 tok C384 16h b4", ATTN_SELF, {4, 1024, 384, 16}},
};

static const op_case small_cases[] = {
    {"conv 3x3 32->32 @16", CONV, {2, 32, 16, 32, 3, 1, 1}},
    {"downsample 4x4 s2 32 @16", CONV, {2, 32, 16, 32, 4, 2, 1}},
    {"upsample convT 4x4 s2 32 @8", CONVT, {2, 32, 8, 32, 4, 2, 1}},
    {"linear 64->64", LINEAR, {128, 64, 64}},
    {"group_norm 8g 32 @16", GROUPNORM, {2, 32, 16, 8}},
    {"silu 32 @16", SILU, {2 * 32 * 16 * 16}},
    {"self-attn 256 tok C64 4h", ATTN_SELF, {2, 256, 64, 4}},
    {"cross-attn 256x77 C64 4h", ATTN_CROSS, {2, 256, 77, 64, 4}},
    {"layer_norm 77x64", LAYERNORM, {2 * 77, 64}},
};

typedef struct measured {
    double fwd_ms, bwd_ms, flop, bytes;
} measured;

/* Records the case's op; sets the forward FLOPs and bytes. */
static ldm_tensor *build(ldm_graph *g, const op_case *c, double *flop, double *bytes) {
    const int *a = c->a;
    switch (c->k) {
    case CONV:
    case CONVT: {
        int n = a[0], cin = a[1], hw = a[2], cout = a[3], k = a[4], s = a[5], p = a[6];
        ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(n, cin, hw, hw));
        ldm_tensor_set_requires_grad(x, 1); /* the full backward: dx, dW and db */
        ldm_tensor *w = c->k == CONV ? ldm_graph_param(g, "w", LDM_SHAPE(cout, cin, k, k))
                                     : ldm_graph_param(g, "w", LDM_SHAPE(cin, cout, k, k));
        ldm_tensor *b = ldm_graph_param(g, "b", LDM_SHAPE(cout));
        ldm_tensor *y =
            c->k == CONV ? ldm_conv2d(g, x, w, b, s, p) : ldm_conv_transpose2d(g, x, w, b, s, p);
        if (!y) return NULL;
        double out_pos = (double)ldm_tensor_dim(y, 2) * ldm_tensor_dim(y, 3);
        double in_pos = (double)hw * hw;
        *flop = 2.0 * n * cin * cout * k * k * (c->k == CONV ? out_pos : in_pos);
        *bytes = 4.0 * ((double)ldm_tensor_numel(x) + ldm_tensor_numel(w) + ldm_tensor_numel(y));
        return y;
    }
    case LINEAR: {
        ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(a[0], a[1]));
        ldm_tensor_set_requires_grad(x, 1);
        ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(a[2], a[1]));
        ldm_tensor *b = ldm_graph_param(g, "b", LDM_SHAPE(a[2]));
        *flop = 2.0 * a[0] * a[1] * a[2];
        *bytes = 4.0 * ((double)a[0] * a[1] + (double)a[1] * a[2] + (double)a[0] * a[2]);
        return ldm_linear(g, x, w, b);
    }
    case GROUPNORM: {
        ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(a[0], a[1], a[2], a[2]));
        ldm_tensor_set_requires_grad(x, 1);
        ldm_tensor *gw = ldm_graph_param(g, "w", LDM_SHAPE(a[1]));
        ldm_tensor *gb = ldm_graph_param(g, "b", LDM_SHAPE(a[1]));
        *flop = 0;
        *bytes = 8.0 * ldm_tensor_numel(x);
        return ldm_group_norm(g, x, a[3], 1e-5f, gw, gb);
    }
    case LAYERNORM: {
        ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(a[0], a[1]));
        ldm_tensor_set_requires_grad(x, 1);
        ldm_tensor *gw = ldm_graph_param(g, "w", LDM_SHAPE(a[1]));
        ldm_tensor *gb = ldm_graph_param(g, "b", LDM_SHAPE(a[1]));
        *flop = 0;
        *bytes = 8.0 * a[0] * a[1];
        return ldm_layer_norm(g, x, 1e-5f, gw, gb);
    }
    case SILU: {
        ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(a[0]));
        ldm_tensor_set_requires_grad(x, 1);
        *flop = 0;
        *bytes = 8.0 * a[0];
        return ldm_silu(g, x);
    }
    case ATTN_SELF: {
        int n = a[0], l = a[1], c3 = 3 * a[2];
        ldm_tensor *qkv = ldm_graph_input(g, "qkv", LDM_SHAPE(n, l, c3));
        ldm_tensor_set_requires_grad(qkv, 1);
        *flop = 4.0 * n * (double)l * l * a[2];
        *bytes = 4.0 * ((double)n * l * c3 + (double)n * l * a[2]);
        return ldm_attention_packed(g, qkv, a[3], 0, NULL);
    }
    case ATTN_CROSS: {
        int n = a[0], l = a[1], s = a[2], ch = a[3];
        ldm_tensor *q = ldm_graph_input(g, "q", LDM_SHAPE(n, l, ch));
        ldm_tensor *kv = ldm_graph_input(g, "kv", LDM_SHAPE(n, s, 2 * ch));
        ldm_tensor_set_requires_grad(q, 1);
        ldm_tensor_set_requires_grad(kv, 1);
        *flop = 4.0 * n * (double)l * s * ch;
        *bytes = 4.0 * ((double)n * l * ch * 2 + (double)n * s * ch * 2);
        return ldm_attention_cross(g, q, kv, a[4], NULL);
    }
    }
    return NULL;
}

/* Fills every parameter and input of g with normal numbers (parameters scaled down). */
static ldm_status randomise(ldm_graph *g, ldm_ctx *ctx, ldm_tensor *seed) {
    ldm_cmd *c = ldm_ctx_immediate(ctx);
    ldm_buf none = {NULL, 0};
    uint32_t stream = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        BENCH_TRY(ldm_rng_fill(c, LDM_DIST_NORMAL, ldm_tensor_numel(p), 1, stream++, 0, none, 0.05f,
                               0.0f, ldm_tensor_buf(p)));
    }
    const char *inputs[] = {"x", "qkv", "q", "kv"};
    for (int i = 0; i < 4; i++) {
        ldm_tensor *t = ldm_graph_find(g, inputs[i]);
        if (t)
            BENCH_TRY(ldm_rng_fill(c, LDM_DIST_NORMAL, ldm_tensor_numel(t), 1, stream++, 0, none,
                                   1.0f, 0.0f, ldm_tensor_buf(t)));
    }
    return ldm_rng_fill(c, LDM_DIST_NORMAL, ldm_tensor_numel(seed), 1, stream, 0, none, 1.0f, 0.0f,
                        ldm_tensor_buf(seed));
}

static int is_backward(const char *label) {
    size_t n = strlen(label);
    return n >= 9 && strcmp(label + n - 9, ".backward") == 0;
}

/* One case recorded and compiled, with its forward FLOPs and bytes. */
struct bench_op_graph {
    ldm_ctx *ctx;
    ldm_graph *g;
    double flop, bytes;
};

static ldm_status open_case(ldm_ctx *ctx, const op_case *oc, bench_op_graph **out) {
    *out = NULL;
    bench_op_graph *b = calloc(1, sizeof *b);
    if (!b) return LDM_ERR_HOST_MEMORY;
    b->ctx = ctx;
    ldm_status st = ldm_graph_create(ctx, &b->g);
    if (st != LDM_OK) {
        free(b);
        return st;
    }
    ldm_graph *g = b->g;
    ldm_tensor *y = build(g, oc, &b->flop, &b->bytes);
    st = ldm_graph_status(g);
    if (y && st == LDM_OK) {
        int shape[LDM_MAX_DIMS];
        for (int i = 0; i < ldm_tensor_ndim(y); i++)
            shape[i] = ldm_tensor_dim(y, i);
        ldm_tensor *dy = ldm_graph_input(g, "dy", ldm_tensor_ndim(y), shape);
        st = ldm_graph_backward_seeded(g, y, dy);
        if (st == LDM_OK) st = ldm_graph_compile(g);
        if (st == LDM_OK) st = randomise(g, ctx, dy);
    } else if (st == LDM_OK) {
        st = ldm_graph_compile(g); /* reports the recording error */
    }
    if (st != LDM_OK) {
        bench_op_graph_close(b);
        return st;
    }
    *out = b;
    return LDM_OK;
}

ldm_status bench_op_graph_open(ldm_ctx *ctx, const char *name, bench_op_graph **out) {
    const op_case *tables[2] = {seed_cases, small_cases};
    size_t sizes[2] = {sizeof seed_cases / sizeof *seed_cases,
                       sizeof small_cases / sizeof *small_cases};
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < sizes[t]; i++)
            if (!strcmp(tables[t][i].name, name)) return open_case(ctx, &tables[t][i], out);
    fprintf(stderr, "no op case '%s'\n", name);
    return LDM_ERR_INVALID_ARGUMENT;
}

void bench_op_graph_close(bench_op_graph *b) {
    if (!b) return;
    ldm_graph_destroy(b->g);
    free(b);
}

ldm_status bench_op_graph_time(bench_op_graph *b, int warmup, int repeat, double *fwd_ms,
                               double *bwd_ms) {
    ldm_cmd *cmd = ldm_graph_commands(b->g);
    size_t nl = ldm_cmd_count(cmd);
    ldm_status st = LDM_OK;
    double *ms = calloc(nl ? nl : 1, sizeof *ms);
    double *fwd = calloc((size_t)repeat, sizeof *fwd), *bwd = calloc((size_t)repeat, sizeof *bwd);
    if (!ms || !fwd || !bwd) st = LDM_ERR_HOST_MEMORY;
    for (int r = 0; r < warmup && st == LDM_OK; r++) {
        st = ldm_graph_run(b->g);
        if (st == LDM_OK) st = ldm_ctx_finish(b->ctx);
    }
    for (int r = 0; r < repeat && st == LDM_OK; r++) {
        memset(ms, 0, nl * sizeof *ms);
        st = ldm_cmd_replay_profiled(cmd, ms);
        for (size_t i = 0; i < nl && st == LDM_OK; i++) {
            const char *label = ldm_cmd_launch_label(cmd, i);
            if (is_backward(label))
                bwd[r] += ms[i];
            else if (strcmp(label, "backward seed") != 0)
                fwd[r] += ms[i];
        }
    }
    if (st == LDM_OK) {
        *fwd_ms = bench_median(fwd, repeat);
        *bwd_ms = bench_median(bwd, repeat);
    }
    free(ms);
    free(fwd);
    free(bwd);
    return st;
}

/* Times one case: median over repeats of the forward and the backward launches' device time. */
static ldm_status time_case(ldm_ctx *ctx, const bench_settings *s, const op_case *oc, measured *m) {
    bench_op_graph *b;
    BENCH_TRY(open_case(ctx, oc, &b));
    m->flop = b->flop;
    m->bytes = b->bytes;
    ldm_status st = bench_op_graph_time(b, s->warmup, s->repeat, &m->fwd_ms, &m->bwd_ms);
    bench_op_graph_close(b);
    return st;
}

ldm_status bench_ops(ldm_ctx *ctx, const bench_settings *s, int seed_shapes, double gemm_gflops,
                     double copy_gbps, FILE *json) {
    const op_case *cases = seed_shapes ? seed_cases : small_cases;
    size_t n = seed_shapes ? sizeof seed_cases / sizeof seed_cases[0]
                           : sizeof small_cases / sizeof small_cases[0];
    printf("ops at %s shapes (median of %d, device time; %%: of the measured %s)\n",
           seed_shapes ? "the seed UNet's (batch 16)" : "small", s->repeat,
           "SGEMM rate for GEMM-like ops, copy bandwidth for the others");
    printf("  %-30s %10s %9s %8s %6s  %10s %9s %8s %6s\n", "op", "fwd ms", "GFLOP/s", "GB/s", "%",
           "bwd ms", "GFLOP/s", "GB/s", "%");
    if (json) fprintf(json, "  \"ops\": [\n");
    for (size_t i = 0; i < n; i++) {
        measured m = {0, 0, 0, 0};
        BENCH_TRY(time_case(ctx, s, &cases[i], &m));
        /* Useful work of the backward pass: twice the forward FLOPs, twice the traffic. */
        double ff = m.flop / (m.fwd_ms * 1e6), bf = 2 * m.flop / (m.bwd_ms * 1e6);
        double fb = m.bytes / (m.fwd_ms * 1e6), bb = 2 * m.bytes / (m.bwd_ms * 1e6);
        double fp = m.flop > 0 ? 100 * ff / gemm_gflops : 100 * fb / copy_gbps;
        double bp = m.flop > 0 ? 100 * bf / gemm_gflops : 100 * bb / copy_gbps;
        printf("  %-30s %10.3f %9.1f %8.1f %5.1f%%  %10.3f %9.1f %8.1f %5.1f%%\n", cases[i].name,
               m.fwd_ms, ff, fb, fp, m.bwd_ms, bf, bb, bp);
        fflush(stdout);
        if (json)
            fprintf(json,
                    "    {\"op\": \"%s\", \"fwd_ms\": %.6f, \"fwd_gflops\": %.3f, \"fwd_gbps\": "
                    "%.3f, \"fwd_pct_peak\": %.2f, \"bwd_ms\": %.6f, \"bwd_gflops\": %.3f, "
                    "\"bwd_gbps\": %.3f, \"bwd_pct_peak\": %.2f}%s\n",
                    cases[i].name, m.fwd_ms, ff, fb, fp, m.bwd_ms, bf, bb, bp,
                    i + 1 < n ? "," : "");
    }
    if (json) fprintf(json, "  ],\n");
    return LDM_OK;
}
