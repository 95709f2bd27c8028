/* tests/test_diffusion_trainer.c: the LDM's trainer as an object (its step and loss are checked
 * against PyTorch in test_train_step and test_models, its runs in test_train_run): writing the
 * model puts the EMA's weights into the files and leaves the training weights, moments and
 * averages as they were, so training can go on after it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/diffusion_trainer.h"
#include "ldmcl/run_config.h"
#include "ldmcl/safetensors.h"
#include "test_util.h"

/* A small text-conditioned model with a text encoder trained in the step, and EMA. */
static void read_config(const char *dir, ldm_run_config *c) {
    char ini[4200];
    snprintf(ini, sizeof ini, "%s/run.ini", dir);
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f,
            "[dataset]\npath = data\nresolution = 16\nchannels = 1\n"
            "[diffusion]\nnum_timesteps = 50\n"
            "[autoencoder]\nz_channels = 2\ncodebook_size = 8\ndown_channels = [4, 8]\n"
            "mid_channels = [8, 8]\ndown_sample = [True]\nattn_down = [False]\n"
            "norm_channels = 2\nnum_heads = 1\n"
            "[ldm]\ndown_channels = [8, 8]\nmid_channels = [8, 8]\ndown_sample = [False]\n"
            "attn_down = [True]\ntime_emb_dim = 8\nnorm_channels = 4\nnum_heads = 2\n"
            "conv_out_channels = 8\n"
            "[text]\nencoder = clip_scratch\nvocab = %s\nwidth = 8\nlayers = 1\nheads = 2\n"
            "intermediate_size = 16\ncontext_length = 8\n"
            "[train]\ntrain_batch_size = 2\nlearning_rate = 1e-2\nuse_ema = true\n"
            "ema_decay = 0.5\n",
            LDMCL_CLIP_BPE_DEFAULT);
    fclose(f);
    assert_status(ldm_run_config_read(ini, c), LDM_OK);
}

/* Tensor `name` of file a equals tensor `other` of file b, bit for bit (1) or not (0). */
static int same_tensor(ldm_safetensors *a, const char *name, ldm_safetensors *b,
                       const char *other) {
    int na, nb, sa[8], sb[8];
    float *x = test_st_load(a, name, &na, sa), *y = test_st_load(b, other, &nb, sb);
    assert_int_equal(na, nb);
    size_t n = 1;
    for (int d = 0; d < na; d++) {
        assert_int_equal(sa[d], sb[d]);
        n *= (size_t)sa[d];
    }
    int same = memcmp(x, y, n * sizeof *x) == 0;
    free(x);
    free(y);
    return same;
}

static void writing_the_model_keeps_the_training_state(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("diffusion-trainer");
    ldm_run_config *c = malloc(sizeof *c);
    assert_non_null(c);
    read_config(dir, c);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    int lat = ldm_model_latent_size(&c->model), z = ldm_model_latent_channels(&c->model);
    ldm_diffusion_trainer *t;
    assert_status(ldm_diffusion_trainer_create(ctx, &c->model, &c->ldm_train, lat, 7, &t), LDM_OK);
    size_t n = (size_t)2 * z * lat * lat;
    float *latents = malloc(n * sizeof *latents);
    assert_non_null(latents);
    const char *captions[2] = {"a left thing", "right"};
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++)
            latents[i] = sinf(0.37f * (float)(i + 11 * step));
        float loss;
        assert_status(ldm_diffusion_trainer_forward_backward(t, latents, captions, &loss), LDM_OK);
        assert_true(isfinite(loss));
        assert_status(ldm_diffusion_trainer_apply(t), LDM_OK);
    }
    char before[4300], after[4300], unet[4300], text[4300];
    snprintf(before, sizeof before, "%s/before.safetensors", dir);
    snprintf(after, sizeof after, "%s/after.safetensors", dir);
    snprintf(unet, sizeof unet, "%s/unet.safetensors", dir);
    snprintf(text, sizeof text, "%s/text_encoder.safetensors", dir);
    assert_status(ldm_diffusion_trainer_save_state(t, before, NULL), LDM_OK);
    assert_status(ldm_diffusion_trainer_write_model(t, dir), LDM_OK);
    assert_status(ldm_diffusion_trainer_save_state(t, after, NULL), LDM_OK);
    size_t len_b, len_a;
    unsigned char *b = test_read_file(before, &len_b), *a = test_read_file(after, &len_a);
    assert_int_equal(len_a, len_b); /* weights, moments, averages and counters as they were */
    assert_memory_equal(a, b, len_a);
    free(a);
    free(b);

    /* the model files hold the averages, which differ from the trained weights */
    ldm_safetensors *st, *model;
    assert_status(ldm_safetensors_open(before, &st), LDM_OK);
    int checked = 0, differ = 0;
    for (int k = 0; k < 2; k++) {
        assert_status(ldm_safetensors_open(k ? text : unet, &model), LDM_OK);
        for (size_t i = 0; i < ldm_safetensors_count(model); i++) {
            const char *name = ldm_safetensors_at(model, i)->name;
            char ema[300];
            snprintf(ema, sizeof ema, "ema.%s", name);
            if (!ldm_safetensors_find(st, ema)) continue; /* not trained: no average */
            assert_true(same_tensor(model, name, st, ema));
            differ += !same_tensor(model, name, st, name);
            checked++;
        }
        ldm_safetensors_close(model);
    }
    assert_true(checked > 10);
    assert_true(differ > checked / 2);
    ldm_safetensors_close(st);

    /* and training goes on from the trained weights: the same step as without the writing */
    for (size_t i = 0; i < n; i++)
        latents[i] = cosf(0.21f * (float)i);
    float loss_written;
    assert_status(ldm_diffusion_trainer_forward_backward(t, latents, captions, &loss_written),
                  LDM_OK);
    ldm_diffusion_trainer *u;
    assert_status(ldm_diffusion_trainer_create(ctx, &c->model, &c->ldm_train, lat, 7, &u), LDM_OK);
    assert_status(ldm_diffusion_trainer_load_state(u, before), LDM_OK);
    float loss_plain;
    assert_status(ldm_diffusion_trainer_forward_backward(u, latents, captions, &loss_plain),
                  LDM_OK);
    assert_true(loss_written == loss_plain);
    ldm_diffusion_trainer_destroy(u);
    ldm_diffusion_trainer_destroy(t);
    free(latents);
    free(c);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writing_the_model_keeps_the_training_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
