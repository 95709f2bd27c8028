/* tests/test_grad_sync.c: data-parallel gradients (ldmcl/grad_sync.h) on a job of any size: run
 * alone (ctest's test_grad_sync) and under `mpirun -np 2` (test_grad_sync_mpi2). Each rank's graph
 * takes its part of a batch: the averaged gradients equal one graph's on the whole batch within
 * float32 summation error, are bit for bit the same on every rank, and bit for bit what averaging
 * after the whole run gives (so no bucket was read before backward had finished it), with
 * gradient accumulation over two runs and random numbers drawn in the graph. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/grad_sync.h"
#include "ldmcl/job.h"
#include "ldmcl/ops.h"
#include "ldmcl/optim.h"
#include "ldmcl/train_state.h"
#include "test_util.h"

enum { PER = 3, IN = 8, HID = 16, OUT = 4 };

static ldm_ctx *g_ctx;
static ldm_job *g_job;

static int setup(void **state) {
    (void)state;
    assert_status(ldm_job_init(NULL, NULL, &g_job), LDM_OK);
    ldm_job_set_timeout(g_job, 120);
    g_ctx = test_ctx_open(NULL, NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ldm_ctx_destroy(g_ctx);
    ldm_job_finalize(g_job);
    return 0;
}

typedef struct net {
    ldm_graph *g;
    ldm_tensor *x, *target, *w[4];
} net;

/* x + 0.1 noise -> linear -> silu -> linear, MSE against target; batch rows, part k of K. */
static void net_make(net *n, int rows, int part, int parts) {
    assert_status(ldm_graph_create(g_ctx, &n->g), LDM_OK);
    ldm_graph *g = n->g;
    assert_status(ldm_graph_set_batch_part(g, part, parts), LDM_OK);
    n->x = ldm_graph_input(g, "x", LDM_SHAPE(rows, IN));
    n->target = ldm_graph_input(g, "target", LDM_SHAPE(rows, OUT));
    n->w[0] = ldm_graph_param(g, "l1.weight", LDM_SHAPE(HID, IN));
    n->w[1] = ldm_graph_param(g, "l1.bias", LDM_SHAPE(HID));
    n->w[2] = ldm_graph_param(g, "l2.weight", LDM_SHAPE(OUT, HID));
    n->w[3] = ldm_graph_param(g, "l2.bias", LDM_SHAPE(OUT));
    ldm_tensor *noise = ldm_random(g, LDM_DIST_NORMAL, LDM_SHAPE(rows, IN), 5, 3, 0.1f, 0.0f);
    ldm_tensor *h = ldm_silu(g, ldm_linear(g, ldm_add(g, n->x, noise), n->w[0], n->w[1]));
    ldm_tensor *loss = ldm_mse_loss(g, ldm_linear(g, h, n->w[2], n->w[3]), n->target);
    assert_status(ldm_graph_backward(g, loss), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    for (int i = 0; i < 4; i++) { /* the same weights on every rank */
        size_t count = ldm_tensor_numel(n->w[i]);
        float *v = malloc(count * sizeof *v);
        assert_non_null(v);
        for (size_t k = 0; k < count; k++)
            v[k] = 0.3f * sinf(0.7f * (float)(k + 13 * i) + 0.1f);
        assert_status(ldm_tensor_write(n->w[i], v), LDM_OK);
        free(v);
    }
}

/* rows first .. first + rows of the whole batch's inputs for micro-batch m */
static void net_feed(net *n, int first, int rows, int m) {
    float x[64 * IN], t[64 * OUT];
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < IN; k++)
            x[r * IN + k] = cosf(0.37f * (float)((first + r) * IN + k) + (float)m);
        for (int k = 0; k < OUT; k++)
            t[r * OUT + k] = sinf(0.11f * (float)((first + r) * OUT + k) - (float)m);
    }
    assert_status(ldm_tensor_write(n->x, x), LDM_OK);
    assert_status(ldm_tensor_write(n->target, t), LDM_OK);
}

static float *grads_of(net *n, size_t *count) {
    ldm_graph_trainable_buf(n->g, count);
    float *v = malloc(*count * sizeof *v);
    assert_non_null(v);
    assert_status(ldm_buf_read(g_ctx, v, ldm_graph_trainable_grad_buf(n->g), *count), LDM_OK);
    return v;
}

/* Two micro-batches: the first run plain, the second synchronised (overlapped, or after it),
 * the buckets reaching the host as `host` says. */
static float *part_grads(int overlapped, size_t bucket_bytes, ldm_grad_sync_host host,
                         size_t *count) {
    int rank = ldm_job_rank(g_job), size = ldm_job_size(g_job);
    net n;
    net_make(&n, PER, rank, size);
    ldm_grad_sync *s;
    assert_status(ldm_grad_sync_create_with(n.g, g_job, bucket_bytes, host, &s), LDM_OK);
    net_feed(&n, rank * PER, PER, 0);
    assert_status(ldm_graph_run(n.g), LDM_OK);
    net_feed(&n, rank * PER, PER, 1);
    if (overlapped) {
        assert_status(ldm_grad_sync_run(s), LDM_OK);
    } else {
        assert_status(ldm_graph_run(n.g), LDM_OK);
        assert_status(ldm_grad_sync_now(s), LDM_OK);
    }
    ldm_grad_sync_stats st = ldm_grad_sync_get_stats(s);
    if (size > 1) {
        assert_int_equal(st.runs, 1);
        if (bucket_bytes == 4) assert_int_equal(st.buckets, 4); /* one per parameter */
    }
    float *g = grads_of(&n, count);
    ldm_grad_sync_destroy(s);
    ldm_graph_destroy(n.g);
    return g;
}

static void parts_average_to_the_whole_batch(void **state) {
    (void)state;
    int size = ldm_job_size(g_job);
    size_t count, count2, count_full;
    float *g = part_grads(1, 4, LDM_GRAD_SYNC_MAP, &count);
    float *after = part_grads(0, 0, LDM_GRAD_SYNC_AUTO, &count2);
    assert_int_equal(count, count2);
    /* overlapped, bucket by bucket, equals averaging after the run, bit for bit; buckets mapped
     * in place or copied through the staging alike */
    assert_memory_equal(g, after, count * sizeof *g);
    free(after);
    after = part_grads(1, 4, LDM_GRAD_SYNC_STAGE, &count2);
    assert_memory_equal(g, after, count * sizeof *g);
    /* every rank holds rank 0's values */
    float *mine = malloc(count * sizeof *mine);
    assert_non_null(mine);
    memcpy(mine, g, count * sizeof *g);
    assert_status(ldm_job_broadcast(g_job, g, count * sizeof *g, 0, "rank 0's gradients"), LDM_OK);
    assert_memory_equal(g, mine, count * sizeof *g);
    /* one graph on the whole batch */
    net n;
    net_make(&n, PER * size, 0, 1);
    net_feed(&n, 0, PER * size, 0);
    assert_status(ldm_graph_run(n.g), LDM_OK);
    net_feed(&n, 0, PER * size, 1);
    assert_status(ldm_graph_run(n.g), LDM_OK);
    float *full = grads_of(&n, &count_full);
    assert_int_equal(count, count_full);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < count; i++) {
        worst = fmax(worst, fabs((double)g[i] - (double)full[i]));
        scale = fmax(scale, fabs((double)full[i]));
    }
    assert_true(scale > 1e-3); /* gradients that say something */
    /* float32 sums over a different grouping of the same terms: a few ulps of the largest */
    if (worst > 1e-6 * scale)
        fail_msg("job of %d: averaged gradients differ from the whole batch's by %.3g (largest "
                 "gradient %.3g)",
                 size, worst, scale);
    ldm_graph_destroy(n.g);
    free(full);
    free(mine);
    free(after);
    free(g);
}

static void job_collectives(void **state) {
    (void)state;
    int rank = ldm_job_rank(g_job), size = ldm_job_size(g_job);
    assert_true(rank >= 0 && rank < size);
    assert_true(ldm_job_local_rank(g_job) < ldm_job_local_size(g_job));
    float x[3] = {1.0f, (float)rank, 0.5f};
    assert_status(ldm_job_sum(g_job, x, 3, "a test sum"), LDM_OK);
    assert_float_equal(x[0], (float)size, 0);
    assert_float_equal(x[1], (float)(size * (size - 1) / 2), 0);
    int ok, all, bad;
    ok = 1;
    assert_status(ldm_job_agree(g_job, ok, &all, &bad, "a test agreement"), LDM_OK);
    assert_int_equal(all, 1);
    assert_int_equal(bad, -1);
    assert_status(ldm_job_agree(g_job, rank != size - 1, &all, &bad, "a test agreement"), LDM_OK);
    assert_int_equal(all, 0);
    assert_int_equal(bad, size - 1);
    float mine[2] = {(float)rank, (float)rank + 0.5f}, every[64];
    size_t counts[32];
    for (int r = 0; r < size && r < 32; r++)
        counts[r] = r == 0 ? 1 : 2;
    assert_status(ldm_job_gather(g_job, mine, counts, rank == 0 ? every : NULL, 0, "a gather"),
                  LDM_OK);
    if (rank == 0)
        for (int r = 1; r < size; r++) {
            assert_float_equal(every[1 + 2 * (r - 1)], (float)r, 0);
            assert_float_equal(every[2 + 2 * (r - 1)], (float)r + 0.5f, 0);
        }
}

/* The same state passes; one weight changed on the last rank stops every rank, the changed one
 * naming the tensor and the others the rank. */
static void a_rank_that_differs_is_named(void **state) {
    (void)state;
    int rank = ldm_job_rank(g_job), size = ldm_job_size(g_job);
    net n;
    net_make(&n, PER, rank, size);
    ldm_adam_config a;
    ldm_adam_config_init(&a);
    ldm_optimizer *opt;
    assert_status(ldm_adam_create(n.g, &a, &opt), LDM_OK);
    ldm_train_state_part part = {NULL, n.g, opt, NULL};
    assert_status(ldm_train_state_check_same(g_job, &part, 1), LDM_OK);
    if (size > 1) {
        if (rank == size - 1) {
            float b[OUT] = {0.5f, 0.25f, 0.125f, 1.0f};
            assert_status(ldm_tensor_write(n.w[3], b), LDM_OK);
        }
        assert_status(ldm_train_state_check_same(g_job, &part, 1), LDM_ERR_JOB);
        if (rank == size - 1)
            assert_contains(ldm_last_error(), "tensor 'l2.bias'");
        else
            assert_contains(ldm_last_error(), "differs from rank 0's (rank");
    }
    ldm_optimizer_destroy(opt);
    ldm_graph_destroy(n.g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(job_collectives),
        cmocka_unit_test(parts_average_to_the_whole_batch),
        cmocka_unit_test(a_rank_that_differs_is_named),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
