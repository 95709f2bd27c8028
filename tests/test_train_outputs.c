/* tests/test_train_outputs.c: what a training run makes of its latents and shows of them, on the
 * tiny dataset and config of train_fixture.h: latent_scaling standardises the cache and the model
 * folder carries its statistics (with latent_patch too), and the validation grids are what the
 * pipeline ldmcl-sample runs makes from the trainer's weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
#include "train_fixture.h"

/* The model folder of run `name` has the per-channel mean and standard deviation of its cache
 * latents.safetensors [n, z, h, w] as the LDM sees it: with latent_patch p, channel
 * c p^2 + i p + j holds the latents at (y p + i, x p + j) of channel c. */
static void check_latent_stats(const char *name, int p) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/latents.safetensors", g_dir, name);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    const ldm_st_tensor *l = ldm_safetensors_find(st, "latents");
    assert_true(l && l->ndim == 4 && l->shape[1] == 2 && l->shape[2] % p == 0);
    size_t n = (size_t)l->shape[0];
    int h = (int)l->shape[2], w = (int)l->shape[3];
    float *z = malloc(n * 2 * (size_t)(h * w) * sizeof *z);
    assert_status(ldm_safetensors_read_f32(st, l, z), LDM_OK);
    ldm_safetensors_close(st);
    ldm_run_config m;
    snprintf(path, sizeof path, "%s/%s/model/model.ini", g_dir, name);
    assert_status(ldm_run_config_read(path, &m), LDM_OK);
    assert_int_equal(m.model.latent_scaling, LDM_LATENT_CHANNEL);
    assert_int_equal(m.model.latent_patch, p);
    assert_int_equal(m.model.n_latent_stats, 2 * p * p);
    assert_int_equal(m.model.unet.im_channels, 2 * p * p);
    for (int k = 0; k < 2 * p * p; k++) {
        int c = k / (p * p), i = k / p % p, j = k % p;
        double sum = 0, sq = 0, count = 0;
        for (size_t b = 0; b < n; b++)
            for (int y = i; y < h; y += p)
                for (int x = j; x < w; x += p) {
                    double v = z[((b * 2 + (size_t)c) * (size_t)h + (size_t)y) * (size_t)w + x];
                    sum += v;
                    sq += v * v;
                    count++;
                }
        double mean = sum / count, sd = sqrt(sq / count - mean * mean);
        assert_true(fabs(m.model.latent_mean[k] - mean) <= 1e-5 * fmax(1.0, fabs(mean)));
        assert_true(fabs(m.model.latent_std[k] - sd) <= 1e-5 * sd);
        assert_true(sd > 1e-3); /* a KL autoencoder's latents vary */
    }
    free(z);
}

/* latent_scaling = channel: the LDM trains on the cache standardised per channel (other losses
 * than without), and the model folder's model.ini carries the cache's mean and standard
 * deviation per channel, computed here from latents.safetensors. With latent_patch = 2 the LDM
 * sees each 2x2 patch of the 8x8x2 latents as channels (4x4x8: its own losses, eight channel
 * statistics), its validation grid is decoded, and its model folder samples. */
static void latent_scaling_standardises_the_cache(void **state) {
    (void)state;
    char ini[4400];
    write_config_with("vae2", 8, "", "kind = vae\n", "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    write_config_with("scaled", 8, "",
                      "kind = vae\ncheckpoint = vae2/autoencoder.safetensors\n"
                      "latent_scaling = channel\n",
                      "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    assert_contains(test_log_text(), "latent_scaling = channel: the latents are normalised");
    char *a = losses("vae2"), *b = losses("scaled");
    assert_string_not_equal(a, b);
    check_latent_stats("scaled", 1);

    write_config_with("patched", 8, "",
                      "kind = vae\ncheckpoint = vae2/autoencoder.safetensors\n"
                      "latent_scaling = channel\nlatent_patch = 2\n",
                      "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    assert_true(exists("patched", "samples/step-00000006.png"));
    char *c = losses("patched");
    assert_string_not_equal(b, c);
    check_latent_stats("patched", 2);
    free(a);
    free(b);
    free(c);

    char dir[4400];
    snprintf(dir, sizeof dir, "%s/patched/model", g_dir);
    ldm_pipeline_options o = {
        .method = LDM_SAMPLER_DDIM, .steps = 2, .guidance_scale = 2.0f, .batch = 1};
    ldm_pipeline *p;
    assert_status(ldm_pipeline_open(g_ctx, dir, &o, &p), LDM_OK);
    float img[16 * 16];
    assert_status(ldm_pipeline_generate(p, "right", NULL, 3, img), LDM_OK);
    for (int k = 0; k < 16 * 16; k++)
        assert_true(isfinite(img[k]));
    ldm_pipeline_destroy(p);
}

/* Validation grids come from the pipeline ldmcl-sample runs, on the trainer's weights: with a
 * text encoder trained in the step (clip_scratch) and with a frozen pretrained one (clip_frozen,
 * the reference model's CLIP folder), whose weights the grid shares with the trainer's frozen
 * encoder instead of reading them again. */
static void validation_grids_are_the_pipelines(void **state) {
    (void)state;
    char ini[4400];
    write_config("grid_scratch", 8, "", ini);
    edit_file(ini, "use_ema = true", "\n", "use_ema = false");
    assert_status(run(ini, 0, 0), LDM_OK);
    grid_is_the_model_folders("grid_scratch", ini);

    write_config("grid_frozen", 8, "", ini);
    edit_file(ini, "use_ema = true", "\n", "use_ema = false");
    char text[4400];
    snprintf(text, sizeof text,
             "[text]\nencoder = clip_frozen\nclip_path = %s/reference_model/clip\n",
             LDMCL_TEST_REF_DIR);
    edit_file(ini, "[text]", "[train]", text);
    assert_status(run(ini, 0, 0), LDM_OK);
    grid_is_the_model_folders("grid_frozen", ini);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(latent_scaling_standardises_the_cache),
        cmocka_unit_test(validation_grids_are_the_pipelines),
    };
    return cmocka_run_group_tests(tests, train_fixture_setup, train_fixture_teardown);
}
