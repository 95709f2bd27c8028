/* tests/test_data_parallel.c: a whole training run as a job of N ranks (ctest runs this program
 * under `mpirun -np 2` as test_data_parallel_mpi2; alone it is a job of one and checks the same
 * against itself) against one process with the global batch: both stages and the latent cache,
 * a text-conditioned LDM with EMA, gradient clipping and gradient accumulation. Every step's
 * losses and every weight of the autoencoder, the LDM (its EMA) and its text encoder agree within
 * float32 reduction error (the bound below says why), and rank 0 alone wrote the files.
 *
 * The discriminator is kept out of the steps compared (disc_start past them): its BatchNorms
 * normalise by each rank's batch, which one process with the global batch does not (stated in
 * the README's data-parallel section). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/job.h"
#include "ldmcl/runner.h"
#include "ldmcl/safetensors.h"
#include "train_fixture.h"

static ldm_job *g_job;

static int setup(void **state) {
    assert_status(ldm_job_init(NULL, NULL, &g_job), LDM_OK);
    ldm_job_set_timeout(g_job, 120); /* a rank whose assertion failed skips collectives */
    /* rank 0 makes the folder and the dataset; every rank works in it */
    if (ldm_job_rank(g_job) == 0) {
        if (train_fixture_setup(state) != 0) return -1;
        char path[1200]; /* the same samples for any split: no unreadable image */
        snprintf(path, sizeof path, "%s/data/left/corrupt.png", g_dir);
        remove(path);
        snprintf(path, sizeof path, "%s/data/left/corrupt.txt", g_dir);
        remove(path);
    } else {
        g_ctx = test_ctx_open(NULL, NULL);
    }
    assert_status(ldm_job_broadcast(g_job, g_dir, sizeof g_dir, 0, "the test folder"), LDM_OK);
    return g_ctx ? 0 : -1;
}

static int teardown(void **state) {
    int ok, bad;
    assert_status(ldm_job_agree(g_job, 1, &ok, &bad, "the end of the tests"), LDM_OK);
    if (ldm_job_rank(g_job) == 0)
        train_fixture_teardown(state);
    else
        ldm_ctx_destroy(g_ctx);
    ldm_job_finalize(g_job);
    return 0;
}

/* The run's config: batch per rank for both stages, accumulation 2, clipping, EMA. */
static void config(const char *name, int batch, char *ini) {
    /* each rank its own copy: the ranks share the folder, and one rank rewriting the file while
     * another reads it gave that one a partial config */
    sprintf(ini, "%s/%s-rank%d.ini", g_dir, name, ldm_job_rank(g_job));
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f,
            "[dataset]\npath = data\nresolution = 16\nchannels = 1\n"
            "[diffusion]\nnum_timesteps = 50\n"
            "[autoencoder]\nz_channels = 2\ncodebook_size = 8\ndown_channels = [4, 8]\n"
            "mid_channels = [8, 8]\ndown_sample = [True]\nattn_down = [False]\n"
            "norm_channels = 2\nnum_heads = 1\n"
            "[autoencoder_train]\ntrain_batch_size = %d\nmax_train_steps = 4\n"
            "gradient_accumulation_steps = 2\nperceptual_weight = 0\ndisc_start = 100\n"
            "learning_rate = 1e-3\n"
            "[ldm]\ndown_channels = [8, 8]\nmid_channels = [8, 8]\ndown_sample = [False]\n"
            "attn_down = [True]\ntime_emb_dim = 8\nnorm_channels = 4\nnum_heads = 2\n"
            "conv_out_channels = 8\n"
            "[text]\nencoder = clip_scratch\nvocab = %s\nwidth = 8\nlayers = 1\nheads = 2\n"
            "intermediate_size = 16\ncontext_length = 8\n"
            "[train]\noutput_dir = %s\ntrain_batch_size = %d\nlearning_rate = 1e-3\n"
            "max_train_steps = 4\ngradient_accumulation_steps = 2\nmax_grad_norm = 0.5\n"
            "checkpointing_steps = 2\ncheckpoints_total_limit = 2\nuse_ema = true\n"
            "validation_steps = 4\nvalidation_prompts = a left thing | right\n"
            "validation_sampling_steps = 2\n",
            batch, LDMCL_CLIP_BPE_DEFAULT, name, batch);
    fclose(f);
}

/* configs/fashion_mnist_smoke.ini on the test's images, batch per rank in both stages, with
 * accumulation 2 in both, clipping and EMA added. */
static void smoke_config(const char *name, int batch, char *ini) {
    char src[1200];
    snprintf(src, sizeof src, "%s/configs/fashion_mnist_smoke.ini", LDMCL_SOURCE_DIR);
    char *text = read_text(src);
    /* each rank its own copy: the ranks share the folder, and one rank rewriting the file while
     * another reads it gave that one a partial config */
    sprintf(ini, "%s/%s-rank%d.ini", g_dir, name, ldm_job_rank(g_job));
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "path = ", 7))
            fprintf(f, "path = data\n");
        else if (!strncmp(line, "vocab = ", 8))
            fprintf(f, "vocab = %s\n", LDMCL_CLIP_BPE_DEFAULT);
        else if (!strncmp(line, "output_dir = ", 13))
            fprintf(f, "output_dir = %s\n", name);
        else if (!strncmp(line, "train_batch_size = ", 19))
            fprintf(f, "train_batch_size = %d\n", batch);
        else
            fprintf(f, "%s\n", line);
        if (!strcmp(line, "[autoencoder_train]")) fprintf(f, "gradient_accumulation_steps = 2\n");
        if (!strcmp(line, "[train]"))
            fprintf(f, "gradient_accumulation_steps = 2\nmax_grad_norm = 0.5\nuse_ema = true\n");
    }
    fclose(f);
    free(text);
}

static ldm_status train(const char *ini, ldm_job *job) {
    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    ldm_run_options o = {.stage = LDM_STAGE_ALL, .log = test_capture_log, .job = job};
    test_log_clear();
    return ldm_run_train(g_ctx, &c, &o);
}

/* The numbers of a CSV log after its header, in order. */
static double *csv_numbers(const char *path, size_t *n) {
    char *text = read_text(path);
    double *v = malloc(strlen(text) * sizeof *v);
    assert_non_null(v);
    *n = 0;
    char *line = strchr(text, '\n'); /* past the header */
    while (line && *++line) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        for (char *field = line; field; field = strchr(field, ',') ? strchr(field, ',') + 1 : NULL)
            v[(*n)++] = strtod(field, NULL);
        line = end;
    }
    free(text);
    return v;
}

static const char *g_job_run = "dp", *g_alone_run = "one"; /* the runs compared */

/* Loss columns: every field but the step (first), for the LDM log the seconds (last), and
 * column `skip` (-1: none). */
static void compare_logs(const char *file, int fields, int skip_last, int skip) {
    char a[1400], b[1400];
    snprintf(a, sizeof a, "%s/%s/%s", g_dir, g_job_run, file);
    snprintf(b, sizeof b, "%s/%s/%s", g_dir, g_alone_run, file);
    size_t na, nb;
    double *va = csv_numbers(a, &na), *vb = csv_numbers(b, &nb);
    assert_int_equal(na, nb);
    assert_true(na >= 4 * (size_t)fields);
    for (size_t i = 0; i < na; i++) {
        int col = (int)(i % (size_t)fields);
        if (col == 0 || (skip_last && col == fields - 1) || col == skip) continue;
        /* a loss: the job's mean of the ranks' means against the global batch's mean */
        if (fabs(va[i] - vb[i]) > 1e-5 * fmax(1.0, fabs(vb[i])))
            fail_msg("%s row %zu column %d: %.9g with the job, %.9g alone", file,
                     i / (size_t)fields + 1, col, va[i], vb[i]);
    }
    free(va);
    free(vb);
}

/* Every weight of the two files within `each` of each other, and their root mean square
 * difference within `rms`. */
static void compare_weights(const char *file, double each, double rms) {
    char a[1400], b[1400];
    snprintf(a, sizeof a, "%s/%s/%s", g_dir, g_job_run, file);
    snprintf(b, sizeof b, "%s/%s/%s", g_dir, g_alone_run, file);
    ldm_safetensors *sa, *sb;
    assert_status(ldm_safetensors_open(a, &sa), LDM_OK);
    assert_status(ldm_safetensors_open(b, &sb), LDM_OK);
    assert_int_equal(ldm_safetensors_count(sa), ldm_safetensors_count(sb));
    double worst = 0, sum2 = 0;
    uint64_t count = 0;
    const char *where = "";
    for (size_t i = 0; i < ldm_safetensors_count(sa); i++) {
        const ldm_st_tensor *ta = ldm_safetensors_at(sa, i);
        const ldm_st_tensor *tb = ldm_safetensors_find(sb, ta->name);
        assert_non_null(tb);
        assert_int_equal(ta->numel, tb->numel);
        float *x = malloc(ta->numel * sizeof *x), *y = malloc(ta->numel * sizeof *y);
        assert_non_null(x);
        assert_non_null(y);
        assert_status(ldm_safetensors_read_f32(sa, ta, x), LDM_OK);
        assert_status(ldm_safetensors_read_f32(sb, tb, y), LDM_OK);
        for (uint64_t k = 0; k < ta->numel; k++) {
            double d = fabs((double)x[k] - (double)y[k]);
            sum2 += d * d;
            if (d > worst) {
                worst = d;
                where = ta->name;
            }
        }
        count += ta->numel;
        free(x);
        free(y);
    }
    double r = count ? sqrt(sum2 / (double)count) : 0;
    print_message("%s: largest difference %.3g (%s; bound %.3g), root mean square %.3g (bound "
                  "%.3g)\n",
                  file, worst, where, each, r, rms);
    if (worst > each) fail_msg("%s: '%s' differs by %.3g (bound %.3g)", file, where, worst, each);
    if (r > rms) fail_msg("%s: root mean square difference %.3g (bound %.3g)", file, r, rms);
    ldm_safetensors_close(sa);
    ldm_safetensors_close(sb);
}

/* Runs NAME-dp as the job with batch per rank and NAME-one alone with the global batch (the
 * config written by make), then compares on rank 0. */
static void job_against_one_process(const char *name, void (*make)(const char *, int, char *),
                                    int batch) {
    int rank = ldm_job_rank(g_job), ranks = ldm_job_size(g_job);
    char ini[1200], dp[64], one[64];
    snprintf(dp, sizeof dp, "%s-dp", name);
    snprintf(one, sizeof one, "%s-one", name);
    make(dp, batch, ini);
    assert_status(train(ini, g_job), LDM_OK);
    int ok, bad;
    assert_status(ldm_job_agree(g_job, 1, &ok, &bad, "the job's run"), LDM_OK);
    if (rank == 0) { /* the same samples in one process: the global batch */
        make(one, batch * ranks, ini);
        assert_status(train(ini, NULL), LDM_OK);
        g_job_run = dp;
        g_alone_run = one;
        /* g_adv (column 6), the discriminator's opinion of the reconstruction, logged before
         * disc_start with weight 0: its BatchNorms normalise by each rank's batch */
        compare_logs("autoencoder_log.csv", 9, 0, 6);
        compare_logs("train_log.csv", 4, 1, -1);
        /* Weights after 2 optimizer steps per stage. The gradients differ by float32
         * reassociation (the mean of the ranks' means against one mean), about 1e-7 relative;
         * Adam's step lr * m / (sqrt(v) + eps) passes that on as a relative difference of the
         * update, except where a gradient is itself at rounding level (an attention's key bias,
         * whose true gradient is 0: softmax ignores it), where Adam's normalisation makes the
         * update anything up to lr. So each weight is within the 2 steps' 2 lr (lr 1e-3), and
         * the root mean square, dominated by ordinary weights, within 1e-5: a wrong sample or a
         * missed bucket moves most weights by about lr. The latents are the same autoencoder's
         * encodings of the same images, in shards. */
        compare_weights("autoencoder.safetensors", 2e-3, 1e-5);
        compare_weights("model/unet.safetensors", 2e-3, 1e-5);
        compare_weights("model/text_encoder.safetensors", 2e-3, 1e-5);
        compare_weights("latents.safetensors", 1e-4, 1e-6);
    }
    assert_status(ldm_job_agree(g_job, 1, &ok, &bad, "the comparison"), LDM_OK);
}

/* A small text-conditioned config (16x16, CLIP from scratch). */
static void job_equals_one_process_with_the_global_batch(void **state) {
    (void)state;
    job_against_one_process("small", config, 2);
}

/* The smoke config (configs/fashion_mnist_smoke.ini: 28x28, the tests' images resized). */
static void smoke_config_job_equals_one_process(void **state) {
    (void)state;
    job_against_one_process("smoke", smoke_config, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(job_equals_one_process_with_the_global_batch),
        cmocka_unit_test(smoke_config_job_equals_one_process),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
