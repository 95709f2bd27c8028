/* tests/test_graph.c: the graph machinery itself: frozen parameters and inputs get no gradient
 * work, a replayed step allocates nothing and builds nothing, memory is reused by liveness, views
 * share storage, and misuse is reported at recording time (op classes that misstate what they
 * save included); sizes beyond INT_MAX elements and graphs beyond the device's memory are refused
 * at compile with their exact byte counts. */
#include <math.h>
#include <string.h>

#include "graph_internal.h"
#include "test_util.h"

static ldm_ctx *g_ctx;

static int setup(void **state) {
    (void)state;
    g_ctx = test_ctx_open(NULL, NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ldm_ctx_destroy(g_ctx);
    return 0;
}

/* y = linear(silu(linear(x, w1, b1)), w2, b2); loss = mean(y). */
static ldm_graph *mlp(int freeze_first, size_t *launches) {
    ldm_graph *g;
    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(4, 8));
    ldm_tensor *w1 = ldm_graph_param(g, "fc1.weight", LDM_SHAPE(16, 8));
    ldm_tensor *b1 = ldm_graph_param(g, "fc1.bias", LDM_SHAPE(16));
    ldm_tensor *w2 = ldm_graph_param(g, "fc2.weight", LDM_SHAPE(3, 16));
    ldm_tensor *b2 = ldm_graph_param(g, "fc2.bias", LDM_SHAPE(3));
    if (freeze_first) {
        ldm_tensor_set_trainable(w1, 0);
        ldm_tensor_set_trainable(b1, 0);
    }
    ldm_tensor *h = ldm_silu(g, ldm_linear(g, x, w1, b1));
    ldm_tensor *loss = ldm_mean(g, ldm_linear(g, h, w2, b2));
    assert_status(ldm_graph_backward(g, loss), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    *launches = ldm_graph_memory_report(g).n_launches;
    return g;
}

static void frozen_parameters_get_no_gradient_work(void **state) {
    (void)state;
    size_t all, frozen;
    ldm_graph *a = mlp(0, &all), *b = mlp(1, &frozen);
    assert_non_null(ldm_tensor_grad(ldm_graph_find(a, "fc1.weight")));
    assert_null(ldm_tensor_grad(ldm_graph_find(b, "fc1.weight")));
    assert_null(ldm_tensor_grad(ldm_graph_find(b, "fc1.bias")));
    assert_null(ldm_tensor_grad(ldm_graph_find(b, "x")));
    assert_non_null(ldm_tensor_grad(ldm_graph_find(b, "fc2.weight")));
    /* Frozen: no fc1 backward (2 GEMMs, a bias sum) nor the silu backward. */
    assert_true(frozen + 4 <= all);
    ldm_graph_memory ma = ldm_graph_memory_report(a), mb = ldm_graph_memory_report(b);
    assert_true(mb.trainable_bytes < ma.trainable_bytes);
    assert_true(mb.frozen_bytes > 0);
    ldm_graph_destroy(a);
    ldm_graph_destroy(b);
}

static void replay_allocates_and_builds_nothing(void **state) {
    (void)state;
    size_t launches;
    ldm_graph *g = mlp(0, &launches);
    uint64_t bytes = ldm_ctx_device_bytes_in_use(g_ctx);
    ldm_cache_stats before = ldm_ctx_cache_stats(g_ctx);
    for (int i = 0; i < 5; i++)
        assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_ctx_finish(g_ctx), LDM_OK);
    ldm_cache_stats after = ldm_ctx_cache_stats(g_ctx);
    assert_int_equal(ldm_ctx_device_bytes_in_use(g_ctx), bytes);
    assert_int_equal(after.source_builds, before.source_builds);
    assert_int_equal(after.disk_hits, before.disk_hits);
    assert_int_equal(after.memory_hits, before.memory_hits); /* no kernel lookups at all */
    ldm_graph_destroy(g);
}

static void memory_is_reused_by_liveness(void **state) {
    (void)state;
    ldm_graph *g;
    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(64, 64));
    ldm_tensor *h = x;
    for (int i = 0; i < 10; i++)
        h = ldm_silu(g, h); /* a chain: at most two alive at once */
    ldm_tensor_keep(h);
    assert_status(ldm_graph_compile(g), LDM_OK);
    ldm_graph_memory m = ldm_graph_memory_report(g);
    assert_int_equal(m.activation_total, 10u * 64 * 64 * 4);
    assert_int_equal(m.activation_bytes, 2u * 64 * 64 * 4);
    float in[64 * 64], out[64 * 64];
    for (int i = 0; i < 64 * 64; i++)
        in[i] = (float)(i % 13) - 6.0f;
    assert_status(ldm_tensor_write(x, in), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(h, out), LDM_OK);
    for (int i = 0; i < 64 * 64; i++) {
        double v = in[i];
        for (int k = 0; k < 10; k++)
            v = v / (1.0 + exp(-v));
        assert_true(fabs(out[i] - v) <= 1e-5 * (fabs(v) + 1e-3));
    }
    ldm_graph_destroy(g);
}

/* With the largest allocation capped at one tensor, the plan spreads over several buffers and
 * still computes the same; a tensor larger than the cap is refused with need/have. */
static void plan_spreads_over_buffers(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_ctx_set_max_allocation(ctx, 64 * 64 * 4);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(64, 64));
    ldm_tensor *h = ldm_scale(g, x, 2.0f);
    for (int i = 0; i < 5; i++)
        h = ldm_add(g, h, ldm_scale(g, h, 0.5f)); /* 1.5^5 * 2 x */
    ldm_tensor_keep(h);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_true(ldm_graph_memory_report(g).activation_bytes >= 2u * 64 * 64 * 4);
    float in[64 * 64], out[64 * 64];
    for (int i = 0; i < 64 * 64; i++)
        in[i] = (float)(i % 7) - 3.0f;
    assert_status(ldm_tensor_write(x, in), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(h, out), LDM_OK);
    for (int i = 0; i < 64 * 64; i++)
        assert_true(out[i] == in[i] * 2.0f * 7.59375f);
    ldm_graph_destroy(g);

    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    x = ldm_graph_input(g, "x", LDM_SHAPE(64, 65));
    ldm_tensor_keep(ldm_silu(g, x));
    assert_status(ldm_graph_compile(g), LDM_ERR_DEVICE_MEMORY);
    assert_contains(ldm_last_error(), "largest single allocation");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

/* Buffer sizes are size_t end to end. A convolution over a 16384 x 16384 image needs a column
 * scratch of 2^28 positions x (9 + 1) = 2,684,354,560 elements (more than INT_MAX; once read as
 * "size -1610612736"), and one over a 1 x 429,496,730 row 4,294,967,300 = 2^32 + 4 (once wrapped
 * to 4 elements: an undersized buffer). Recorded, never run: compile refuses them with the exact
 * byte count against the (lowered) largest allocation, and a graph whose buffers together exceed
 * the context's memory limit is refused before any buffer is made. */
static void huge_sizes_are_refused_with_their_bytes(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_ctx_set_max_allocation(ctx, (uint64_t)1 << 30);
    const int widths[2] = {16384, 429496730}, heights[2] = {16384, 1};
    const char *bytes[2] = {"need 10.0 GiB (10737418240 bytes) in one buffer, have 1.00 GiB",
                            "need 16.0 GiB (17179869440 bytes) in one buffer, have 1.00 GiB"};
    for (int i = 0; i < 2; i++) {
        ldm_graph *g;
        assert_status(ldm_graph_create(ctx, &g), LDM_OK);
        ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, 1, heights[i], widths[i]));
        ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(1, 1, 3, 3));
        ldm_tensor_keep(ldm_conv2d(g, x, w, NULL, 1, 1));
        assert_status(ldm_graph_compile(g), LDM_ERR_DEVICE_MEMORY);
        assert_contains(ldm_last_error(), ".scratch' does not fit on '");
        assert_contains(ldm_last_error(), bytes[i]);
        assert_int_equal(ldm_ctx_device_bytes_in_use(ctx), 0);
        ldm_graph_destroy(g);
    }
    /* every tensor fits one buffer (1 MiB each), together they need 3 MiB, with 2 MiB allowed */
    ldm_ctx_set_max_allocation(ctx, 0);
    ldm_ctx_set_memory_limit(ctx, (uint64_t)2 << 20);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(512, 512));
    ldm_tensor *y = ldm_silu(g, x);
    ldm_tensor_keep(y);
    ldm_tensor_keep(ldm_silu(g, y));
    assert_status(ldm_graph_compile(g), LDM_ERR_DEVICE_MEMORY);
    assert_contains(ldm_last_error(), "the graph does not fit on '");
    assert_contains(ldm_last_error(), "need 3.00 MiB (3145728 bytes: parameters 0 B, inputs 1.00 "
                                      "MiB, gradients 0 B, activations 2.00 MiB), have 2.00 MiB "
                                      "free of 2.00 MiB (the memory limit set on this context)");
    assert_int_equal(ldm_ctx_device_bytes_in_use(ctx), 0);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

static void views_share_storage_and_gradients(void **state) {
    (void)state;
    ldm_graph *g;
    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(2, 3));
    ldm_tensor *v = ldm_reshape(g, w, LDM_SHAPE(6));
    ldm_tensor *loss = ldm_sum(g, ldm_mul(g, v, v)); /* d/dw = 2w */
    assert_status(ldm_graph_backward(g, loss), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    float hw[6] = {1, -2, 3, -4, 5, -6}, grad[6];
    assert_status(ldm_tensor_write(w, hw), LDM_OK);
    assert_status(ldm_graph_zero_grads(g), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(w), grad), LDM_OK);
    for (int i = 0; i < 6; i++)
        assert_true(grad[i] == 2 * hw[i]);
    assert_true(ldm_tensor_buf(v).mem == ldm_tensor_buf(w).mem);
    assert_int_equal(ldm_tensor_buf(v).off, ldm_tensor_buf(w).off);
    ldm_graph_destroy(g);
}

static void misuse_is_reported(void **state) {
    (void)state;
    ldm_graph *g;
    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(3));
    ldm_tensor *y = ldm_silu(g, x);
    /* Nothing trainable reaches y. */
    assert_status(ldm_graph_backward(g, y), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "does not depend on any trainable parameter");
    ldm_graph_destroy(g);

    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    ldm_graph_param(g, "w", LDM_SHAPE(3));
    assert_null(ldm_graph_param(g, "w", LDM_SHAPE(3)));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "parameter 'w' is defined twice");
    ldm_graph_destroy(g);

    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    x = ldm_graph_input(g, "x", LDM_SHAPE(2, 3));
    assert_null(ldm_reshape(g, x, LDM_SHAPE(4)));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "reshape of 'x' [2, 3] to [4] changes its size");
    ldm_graph_destroy(g);

    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    x = ldm_graph_input(g, "x", LDM_SHAPE(2, 3));
    y = ldm_silu(g, x);
    assert_status(ldm_graph_compile(g), LDM_OK);
    float out[6];
    assert_status(ldm_tensor_read(y, out), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "is not kept after a run");
    assert_status(ldm_tensor_write(y, out), LDM_ERR_INVALID_ARGUMENT);
    assert_null(ldm_silu(g, x)); /* recording after compile */
    ldm_graph_destroy(g);
}

/* loss = mean(x * a * b) on graph g, with a trainable there and b not. */
static void product_loss(ldm_graph *g, const char *a, const char *b) {
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(3));
    ldm_tensor *pa = ldm_graph_param(g, a, LDM_SHAPE(3));
    ldm_tensor *pb = ldm_graph_param(g, b, LDM_SHAPE(3));
    ldm_tensor_set_trainable(pb, 0);
    assert_status(ldm_graph_backward(g, ldm_mean(g, ldm_mul(g, ldm_mul(g, x, pa), pb))), LDM_OK);
}

/* Two graphs in one store share the entries of the same names, each trains its own span of the
 * store's gradient buffer (zeroing its gradients leaves the other's), and the store refuses a
 * shape that differs, a parameter after it is allocated, and graphs whose trained parameters
 * interleave. */
static void graphs_share_a_parameter_store(void **state) {
    (void)state;
    ldm_graph *a, *b, *c;
    assert_status(ldm_graph_create(g_ctx, &a), LDM_OK);
    ldm_tensor *ax = ldm_graph_input(a, "x", LDM_SHAPE(3));
    ldm_tensor *au = ldm_graph_param(a, "u", LDM_SHAPE(3)); /* a trains u */
    assert_status(ldm_graph_create_in(g_ctx, ldm_graph_params(a), &b), LDM_OK);
    product_loss(b, "v", "u");                              /* b trains v, reads u */
    ldm_tensor *av = ldm_graph_param(a, "v", LDM_SHAPE(3)); /* b's entry: a only reads it */
    ldm_tensor_set_trainable(av, 0);
    assert_status(ldm_graph_backward(a, ldm_mean(a, ldm_mul(a, ldm_mul(a, ax, au), av))), LDM_OK);
    assert_status(ldm_graph_create_in(g_ctx, ldm_graph_params(a), &c), LDM_OK);
    assert_null(ldm_graph_param(c, "u", LDM_SHAPE(4)));
    assert_contains(ldm_graph_error(c), "parameter 'u' is [4] here but has another shape");
    ldm_graph_destroy(c);
    assert_status(ldm_graph_compile(a), LDM_OK);
    assert_status(ldm_graph_compile(b), LDM_OK);

    ldm_tensor *bu = ldm_graph_find(b, "u"), *bv = ldm_graph_find(b, "v"),
               *bx = ldm_graph_find(b, "x");
    assert_true(ldm_tensor_buf(au).mem == ldm_tensor_buf(bu).mem);
    assert_int_equal(ldm_tensor_buf(au).off, ldm_tensor_buf(bu).off);
    assert_int_equal(ldm_tensor_buf(av).off, ldm_tensor_buf(bv).off);
    const float x[3] = {1, 2, 3}, u[3] = {4, 5, 6}, v[3] = {7, 8, 9};
    assert_status(ldm_tensor_write(au, u), LDM_OK);
    assert_status(ldm_tensor_write(bv, v), LDM_OK);
    float got[3];
    assert_status(ldm_tensor_read(bu, got), LDM_OK); /* written through a, read through b */
    assert_memory_equal(got, u, sizeof got);
    assert_status(ldm_tensor_write(ax, x), LDM_OK);
    assert_status(ldm_tensor_write(bx, x), LDM_OK);
    assert_status(ldm_graph_zero_grads(a), LDM_OK);
    assert_status(ldm_graph_zero_grads(b), LDM_OK);
    assert_status(ldm_graph_run(a), LDM_OK);
    assert_status(ldm_graph_run(b), LDM_OK);
    assert_status(ldm_graph_zero_grads(a), LDM_OK); /* b's gradient stays */
    float gu[3], gv[3];
    assert_status(ldm_tensor_read(ldm_tensor_grad(au), gu), LDM_OK);
    assert_status(ldm_tensor_read(ldm_tensor_grad(bv), gv), LDM_OK);
    assert_null(ldm_tensor_grad(bu));
    for (int i = 0; i < 3; i++) {
        assert_true(gu[i] == 0.0f);
        assert_float_equal(gv[i], x[i] * u[i] / 3.0f, 1e-6);
    }
    size_t na, nb;
    ldm_buf ta = ldm_graph_trainable_buf(a, &na), tb = ldm_graph_trainable_buf(b, &nb);
    assert_true(na >= 3 && nb >= 3);
    assert_true(ta.off + na <= tb.off || tb.off + nb <= ta.off); /* two spans, apart */
    assert_int_equal(ta.off, ldm_tensor_buf(au).off);
    assert_int_equal(tb.off, ldm_tensor_buf(bv).off);

    assert_status(ldm_graph_create_in(g_ctx, ldm_graph_params(a), &c), LDM_OK);
    assert_null(ldm_graph_param(c, "w", LDM_SHAPE(3)));
    assert_contains(ldm_graph_error(c), "the store is allocated");
    ldm_graph_destroy(c);
    ldm_graph_destroy(a);
    ldm_graph_destroy(b); /* the store lives as long as a graph does */

    /* a records p, b records q, then a records r: b's q lies among a's */
    assert_status(ldm_graph_create(g_ctx, &a), LDM_OK);
    ax = ldm_graph_input(a, "x", LDM_SHAPE(3));
    ldm_tensor *p = ldm_graph_param(a, "p", LDM_SHAPE(3));
    assert_status(ldm_graph_create_in(g_ctx, ldm_graph_params(a), &b), LDM_OK);
    product_loss(b, "q", "p");
    ldm_tensor *r = ldm_graph_param(a, "r", LDM_SHAPE(3));
    assert_status(ldm_graph_backward(a, ldm_mean(a, ldm_mul(a, ldm_mul(a, ax, p), r))), LDM_OK);
    assert_status(ldm_graph_compile(a), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "'q' lies among them but another graph trains it");
    ldm_graph_destroy(b);
    ldm_graph_destroy(a);
}

static ldm_status nothing_fwd(ldm_cmd *c, const ldm_node *n, ldm_buf scratch) {
    (void)c;
    (void)n;
    (void)scratch;
    return LDM_OK;
}

/* A node keeps the parameter struct it was recorded with, of the size its op class takes. The
 * memory planner trusts what an op class says it saves and reads; a class that reads a saved
 * tensor it does not declare, or a node with more or fewer saved tensors than its class
 * declares, is refused. */
static void op_classes_are_checked(void **state) {
    (void)state;
    static const ldm_op_class reads_undeclared = {
        .name = "reads_undeclared",
        .fwd = nothing_fwd,
        .n_saved = 1,
        .bwd_reads = LDM_READS_IN(0) | LDM_READS_SAVED(1),
    };
    static const ldm_op_class saves_one = {
        .name = "saves_one",
        .fwd = nothing_fwd,
        .n_saved = 1,
        .bwd_reads = LDM_READS_SAVED(0),
    };
    typedef struct two_ints {
        int a, b;
    } two_ints;
    static const ldm_op_class takes_two_ints = {
        .name = "takes_two_ints",
        .fwd = nothing_fwd,
        .params_size = LDM_PARAMS_SIZE(two_ints),
    };
    ldm_graph *g;
    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(3));
    two_ints p = {3, -4};
    ldm_node *n = ldm_graph_add_node(g, &takes_two_ints, LDM_PARAMS(p), NULL, &x, 1, LDM_SHAPE(3));
    assert_non_null(n);
    assert_int_equal(LDM_NODE_PARAMS(n, two_ints)->b, -4);
    int one = 1;
    assert_null(ldm_graph_add_node(g, &takes_two_ints, LDM_PARAMS(one), NULL, &x, 1, LDM_SHAPE(3)));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "takes_two_ints: recorded with 4 bytes of parameters, its op "
                                      "class takes 8");
    ldm_graph_destroy(g);

    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    x = ldm_graph_input(g, "x", LDM_SHAPE(3));
    assert_null(ldm_graph_add_node(g, &reads_undeclared, LDM_NO_PARAMS, NULL, &x, 1, LDM_SHAPE(3)));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "op class reads_undeclared: saves 1 tensors");
    ldm_graph_destroy(g);

    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    x = ldm_graph_input(g, "x", LDM_SHAPE(3));
    n = ldm_graph_add_node(g, &saves_one, LDM_NO_PARAMS, NULL, &x, 1, LDM_SHAPE(3));
    assert_non_null(n);
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "op saves_one saves 1 tensors, its node has 0");
    ldm_graph_destroy(g);

    assert_status(ldm_graph_create(g_ctx, &g), LDM_OK);
    x = ldm_graph_input(g, "x", LDM_SHAPE(3));
    n = ldm_graph_add_node(g, &saves_one, LDM_NO_PARAMS, NULL, &x, 1, LDM_SHAPE(3));
    assert_non_null(ldm_node_add_saved(g, n, LDM_SHAPE(1)));
    assert_null(ldm_node_add_saved(g, n, LDM_SHAPE(1)));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "op saves_one saves 1 tensors, and one more was added");
    ldm_graph_destroy(g);
}

/* Parameters stored in half precision: written and read as floats, rounded to nearest even
 * (ties to even, subnormals, overflow to infinity), expanded exactly by ldm_half_weight; a
 * trainable one is refused when the store is allocated. */
static void half_precision_parameters(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_graph_set_half_weights(g, 1);
    enum { N = 9 };
    ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(N));
    ldm_tensor_set_trainable(w, 0);
    ldm_tensor *y = ldm_scale(g, ldm_half_weight(g, w), 1.0f);
    ldm_tensor_keep(y);
    assert_status(ldm_graph_compile(g), LDM_OK);
    const float in[N] = {1.0f,     1.0f + 0x1p-11f, 1.0f + 0x3p-12f, -2.5f, 65504.0f,
                         65520.0f, 0x1p-24f,        0x1p-26f,        1e-8f};
    const float want[N] = {1.0f, 1.0f, 1.0f + 0x1p-10f, -2.5f, 65504.0f, INFINITY, 0x1p-24f,
                           0.0f, 0.0f};
    float back[N], out[N];
    assert_status(ldm_tensor_write(w, in), LDM_OK);
    assert_status(ldm_tensor_read(w, back), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    assert_status(ldm_tensor_read(y, out), LDM_OK);
    for (int i = 0; i < N; i++) {
        if (back[i] != want[i])
            fail_msg("%d: %a read back as %a, want %a", i, in[i], back[i], want[i]);
        assert_true(out[i] == want[i]);
    }
    ldm_graph_destroy(g);
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_graph_set_half_weights(g, 1);
    w = ldm_graph_param(g, "w", LDM_SHAPE(4));
    ldm_tensor_keep(ldm_half_weight(g, w));
    assert_status(ldm_graph_compile(g), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "parameter 'w' is stored in half precision, which is for "
                                      "frozen weights");
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frozen_parameters_get_no_gradient_work),
        cmocka_unit_test(replay_allocates_and_builds_nothing),
        cmocka_unit_test(memory_is_reused_by_liveness),
        cmocka_unit_test(plan_spreads_over_buffers),
        cmocka_unit_test(huge_sizes_are_refused_with_their_bytes),
        cmocka_unit_test(views_share_storage_and_gradients),
        cmocka_unit_test(misuse_is_reported),
        cmocka_unit_test(graphs_share_a_parameter_store),
        cmocka_unit_test(op_classes_are_checked),
        cmocka_unit_test(half_precision_parameters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
