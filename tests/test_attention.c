/* tests/test_attention.c: the fused attention core (packed self-attention, causal, and
 * cross-attention over 77 tokens with a key padding mask; head dims 8, 24 and 64) and the full
 * nn.MultiheadAttention against PyTorch (tests/ref/attention.safetensors); and the memory the
 * planner gives a self-attention block growing linearly with the number of tokens. Both kernel
 * layouts (CPU, GPU) are checked. */
#include <stdio.h>
#include <string.h>

#include "op_harness.h"

static ldm_tensor *b_packed(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    (void)n;
    return ldm_attention_packed(g, in[0], (int)case_number(p, "heads"),
                                (int)case_number(p, "causal"), NULL);
}

static ldm_tensor *b_cross(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    return ldm_attention_cross(g, in[0], in[1], (int)case_number(p, "heads"), n > 2 ? in[2] : NULL);
}

static ldm_tensor *b_mha(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p, int causal) {
    int heads = (int)case_number(p, "heads");
    if (n == 5)
        return ldm_multihead_attention(g, in[0], NULL, in[1], in[2], in[3], in[4], heads, causal,
                                       NULL);
    return ldm_multihead_attention(g, in[0], in[1], in[3], in[4], in[5], in[6], heads, 0, in[2]);
}

static ldm_tensor *b_mha_self(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    return b_mha(g, in, n, p, 0);
}

static ldm_tensor *b_mha_causal(ldm_graph *g, ldm_tensor **in, int n, const ldm_json *p) {
    return b_mha(g, in, n, p, 1);
}

static const op_entry ops[] = {{"attention_packed", b_packed, 0},
                               {"attention_cross", b_cross, 0},
                               {"mha_self", b_mha_self, 0},
                               {"mha_causal", b_mha_causal, 0},
                               {"mha_cross", b_mha_self, (1u << 3) | (1u << 4)}};

/* The harness makes its inputs graph inputs; MultiheadAttention views rows of its in-projection,
 * which works on inputs as on parameters. */
static void attention_matches_pytorch(void **state) {
    (void)state;
    run_ref_family_both_layouts("attention", ops, 5);
}

/* The GPU layout at other tiles than the defaults (what ldmcl-bench --tune may choose): bigger
 * work-groups with more queries and keys per tile, and the smallest side. Not under the
 * simulator, where a variant took over six minutes (the kernels' code and barriers are the same
 * at every tile; the defaults run there). */
static void attention_tiles_match_pytorch(void **state) {
    (void)state;
    if (op_simulator_budget()) {
        printf("  simulator: other tiles not run (minutes each)\n");
        return;
    }
    run_ref_family_gpu_tuned("attention", ops, 5, "attn_tile=64,64 attn_side=16");
    run_ref_family_gpu_tuned("attention", ops, 5, "attn_tile=16,8 attn_side=4");
}

/* Peak planned memory of a training step through self-attention over L tokens. */
static uint64_t attention_block_peak(ldm_ctx *ctx, int L) {
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    const int C = 32, heads = 4;
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(2, L, C));
    ldm_tensor *wi = ldm_graph_param(g, "in_proj_weight", LDM_SHAPE(3 * C, C));
    ldm_tensor *bi = ldm_graph_param(g, "in_proj_bias", LDM_SHAPE(3 * C));
    ldm_tensor *wo = ldm_graph_param(g, "out_proj.weight", LDM_SHAPE(C, C));
    ldm_tensor *bo = ldm_graph_param(g, "out_proj.bias", LDM_SHAPE(C));
    ldm_tensor *y = ldm_multihead_attention(g, x, NULL, wi, bi, wo, bo, heads, 0, NULL);
    assert_status(ldm_graph_backward(g, ldm_mean(g, y)), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    uint64_t peak = ldm_graph_memory_report(g).activation_bytes;
    ldm_graph_destroy(g);
    return peak;
}

static void memory_grows_linearly_with_tokens(void **state) {
    (void)state;
    if (op_simulator_budget()) skip(); /* the planner's test, at 1,024 tokens: no kernel runs */
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    uint64_t p1 = attention_block_peak(ctx, 256), p2 = attention_block_peak(ctx, 512);
    uint64_t p4 = attention_block_peak(ctx, 1024);
    /* Scores alone would be 2 * 4 * L^2 floats: 2 MiB at 256 tokens, 32 MiB at 1024. */
    print_message("  attention block peak: %llu bytes at 256 tokens, %llu at 512, %llu at 1024\n",
                  (unsigned long long)p1, (unsigned long long)p2, (unsigned long long)p4);
    assert_true(p2 <= 2 * p1 + 4096);
    assert_true(p4 <= 2 * p2 + 4096);
    assert_true(p4 < (uint64_t)2 * 4 * 1024 * 1024 * 4 / 8);
    ldm_ctx_destroy(ctx);
}

/* y = attention over qkv [2, L, 3C] with one head (fused, or chunked GEMMs when chunk > 0) and the
 * gradient of mean(y * dy) with respect to qkv. */
static void one_head(ldm_ctx *ctx, int L, int C, int chunk, const float *qkv, const float *dy,
                     float *y, float *dqkv) {
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_param(g, "qkv", LDM_SHAPE(2, L, 3 * C));
    ldm_tensor *d = ldm_graph_input(g, "dy", LDM_SHAPE(2, L, C));
    ldm_tensor *out = chunk > 0 ? ldm_attention_one_head_chunked(g, x, chunk)
                                : ldm_attention_packed(g, x, 1, 0, NULL);
    ldm_tensor_keep(out);
    assert_status(ldm_graph_backward(g, ldm_mean(g, ldm_mul(g, out, d))), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_tensor_write(x, qkv), LDM_OK);
    assert_status(ldm_tensor_write(d, dy), LDM_OK);
    assert_status(ldm_graph_zero_grads(g), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(out, y), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(x), dqkv), LDM_OK);
    ldm_graph_destroy(g);
}

/* The chunked one-head attention (Stable Diffusion's VAE, 512 wide) against the fused core, which
 * the PyTorch references check: 37 queries in chunks of 8 (the last one short). */
static void one_head_chunked_equals_fused(void **state) {
    (void)state;
    if (op_simulator_budget()) skip();
    enum { L = 37, C = 16 };
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    static float qkv[2 * L * 3 * C], dy[2 * L * C], y[2][2 * L * C], dq[2][2 * L * 3 * C];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof qkv / sizeof qkv[0]; i++)
        qkv[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f * 4.0f - 2.0f;
    for (size_t i = 0; i < sizeof dy / sizeof dy[0]; i++)
        dy[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    one_head(ctx, L, C, 0, qkv, dy, y[0], dq[0]);
    one_head(ctx, L, C, 8, qkv, dy, y[1], dq[1]);
    double ey = test_norm_err(y[1], y[0], 2 * L * C),
           eg = test_norm_err(dq[1], dq[0], 2 * L * 3 * C);
    print_message("  one head in chunks of 8 against fused: output %.2e, gradient %.2e norm-wise\n",
                  ey, eg);
    assert_true(ey < 1e-6);
    assert_true(eg < 1e-5);
    ldm_ctx_destroy(ctx);
}

/* Forward-only peak of the chunked attention over L tokens (the VAE decoding at large sizes). */
static uint64_t chunked_peak(ldm_ctx *ctx, int L) {
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "qkv", LDM_SHAPE(1, L, 3 * 8));
    ldm_tensor *y = ldm_attention_one_head_chunked(g, x, 256);
    ldm_tensor_keep(y);
    assert_status(ldm_graph_compile(g), LDM_OK);
    uint64_t peak = ldm_graph_memory_report(g).activation_bytes;
    ldm_graph_destroy(g);
    return peak;
}

static void chunked_memory_grows_linearly(void **state) {
    (void)state;
    if (op_simulator_budget()) skip();
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    uint64_t p1 = chunked_peak(ctx, 1024), p2 = chunked_peak(ctx, 2048);
    uint64_t p4 = chunked_peak(ctx, 4096);
    /* All scores at once would be 4 L^2 bytes: 64 MiB at 4096 tokens. */
    print_message(
        "  chunked one-head peak: %llu bytes at 1024 tokens, %llu at 2048, %llu at 4096\n",
        (unsigned long long)p1, (unsigned long long)p2, (unsigned long long)p4);
    /* Linear: each chunk's scores (256 x L) and the outputs gathered so far; quadratic would
     * quadruple with each doubling. */
    assert_true(p2 <= 2.1 * p1);
    assert_true(p4 <= 2.1 * p2);
    assert_true(p4 < (uint64_t)4096 * 4096 * 4 / 4);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(attention_matches_pytorch),
        cmocka_unit_test(attention_tiles_match_pytorch),
        cmocka_unit_test(memory_grows_linearly_with_tokens),
        cmocka_unit_test(one_head_chunked_equals_fused),
        cmocka_unit_test(chunked_memory_grows_linearly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
