/* tests/test_sd_checkpoint.c: pretrained Stable Diffusion files as users have them
 * (tests/ref/sd/, tools/refgen/make_sd_refs.py): tiny SD 1.x and 2.x (inpainting, v-prediction)
 * models with random F16 weights in the original single-file layout (OpenCLIP for 2.x) and in
 * diffusers' folder layout are inspected (family, sizes, prediction) and loaded, and their UNet,
 * VAE decoder and encoder and text encoder compute what diffusers and transformers compute from
 * the same weights (float64 references; bar 1e-4 norm-wise). Then the refusals: a pickle, SDXL,
 * SD3, a LoRA-less unknown file, a file without its text encoder, a truncated file, a tensor of
 * the wrong shape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "ldmcl/ksampler.h"
#include "ldmcl/sd_model.h"
#include "sd_fixture.h"
#include "test_util.h"

static ldm_safetensors *g_want;
static int g_half;               /* run_against records with half-precision weights */
static uint64_t g_weights_bytes; /* and reports the device bytes its weights took */
static uint64_t g_expect_bytes;  /* and what its parameters should take of them: 4 or 2 bytes
                                    an element, each tensor aligned to LDM_ARENA_ALIGN_ELEMS
                                    4-byte elements */
static float *g_out;             /* and keeps its output (when not NULL: freed by the caller) */

static float *want(const char *key, int *ndim, int *shape) {
    return test_st_load(g_want, key, ndim, shape);
}

/* Runs a one-input model graph on the reference input in_key and compares with out_key. */
typedef ldm_tensor *(*record_fn)(ldm_graph *g, const ldm_sd_model *m, ldm_tensor **in);
typedef ldm_status (*load_fn)(const ldm_sd_model *m, ldm_graph *g);

static double run_against(ldm_ctx *ctx, const ldm_sd_model *m, const char *fam,
                          const char *const *in_keys, int n_in, const char *out_key,
                          record_fn record, load_fn load) {
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_graph_set_half_weights(g, g_half);
    ldm_tensor *in[3];
    float *data[3];
    char key[128];
    for (int i = 0; i < n_in; i++) {
        int ndim, shape[LDM_MAX_DIMS];
        snprintf(key, sizeof key, "%s%s%s", fam ? fam : "", fam ? "." : "", in_keys[i]);
        data[i] = want(key, &ndim, shape);
        in[i] = ldm_graph_input(g, in_keys[i], ndim, shape);
    }
    ldm_tensor *out = record(g, m, in);
    assert_non_null(out);
    ldm_tensor_keep(out);
    for (size_t i = 0; i < ldm_graph_param_count(g); i++)
        ldm_tensor_set_trainable(ldm_graph_param_at(g, i), 0);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(load(m, g), LDM_OK);
    for (int i = 0; i < n_in; i++) {
        assert_status(ldm_tensor_write(in[i], data[i]), LDM_OK);
        free(data[i]);
    }
    assert_status(ldm_graph_run(g), LDM_OK);
    size_t n = ldm_tensor_numel(out);
    float *got = malloc(n * sizeof *got);
    assert_non_null(got);
    assert_status(ldm_tensor_read(out, got), LDM_OK);
    snprintf(key, sizeof key, "%s%s%s", fam ? fam : "", fam ? "." : "", out_key);
    float *w = want(key, NULL, NULL);
    double e = test_norm_err(got, w, n);
    g_weights_bytes = ldm_graph_memory_report(g).frozen_bytes;
    g_expect_bytes = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        uint64_t words = ldm_tensor_numel(ldm_graph_param_at(g, i));
        if (g_half) words = (words + 1) / 2;
        g_expect_bytes +=
            (words + LDM_ARENA_ALIGN_ELEMS - 1) / LDM_ARENA_ALIGN_ELEMS * LDM_ARENA_ALIGN_ELEMS * 4;
    }
    free(g_out);
    g_out = got;
    free(w);
    ldm_graph_destroy(g);
    return e;
}

static ldm_tensor *rec_decode(ldm_graph *g, const ldm_sd_model *m, ldm_tensor **in) {
    return ldm_sd_vae_decode(g, &m->vae, in[0]);
}

static ldm_tensor *rec_encode(ldm_graph *g, const ldm_sd_model *m, ldm_tensor **in) {
    return ldm_sd_vae_encode(g, &m->vae, in[0], NULL);
}

static void check_model(const char *fam, const char *layout) {
    char path[4096];
    sd_fixture_model_path(fam, layout, path, sizeof path);
    ldm_sd_model m;
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    char what[256];
    ldm_sd_model_describe(&m, what, sizeof what);
    int sd2 = !strcmp(fam, "sd2");
    assert_int_equal(m.family, sd2 ? LDM_SD_2 : LDM_SD_1);
    assert_int_equal(m.inpainting, sd2);
    assert_int_equal(m.prediction, sd2 ? LDM_PREDICT_V : LDM_PREDICT_EPSILON);
    assert_int_equal(m.unet.n_levels, sd2 ? 2 : 3);
    assert_int_equal(m.unet.linear_proj, sd2);
    assert_string_equal(m.weights, "F16");
    assert_int_equal(m.pad_token, sd2 ? 0 : 49407);

    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    const char *unet_in[] = {"unet.x", "unet.t", "text.out"};
    const char *z[] = {"vae.z"}, *image[] = {"vae.image"}, *ids[] = {"text.ids"};
    double eu =
        run_against(ctx, &m, fam, unet_in, 3, "unet.out", sd_fixture_record_unet, ldm_sd_load_unet);
    double ed = run_against(ctx, &m, fam, z, 1, "vae.decoded", rec_decode, ldm_sd_load_vae);
    double ee = run_against(ctx, &m, fam, image, 1, "vae.mean", rec_encode, ldm_sd_load_vae);
    double et =
        run_against(ctx, &m, fam, ids, 1, "text.out", sd_fixture_record_text, ldm_sd_load_text);
    print_message("  %s: %s (prediction: %s); against diffusers/transformers (norm-wise): UNet "
                  "%.2e, VAE decoder %.2e, encoder %.2e, text encoder %.2e\n",
                  path + strlen(LDMCL_TEST_REF_DIR) + 1, what, m.prediction_how, eu, ed, ee, et);
    assert_true(eu < 1e-4 && ed < 1e-4 && ee < 1e-4 && et < 1e-4);
    ldm_ctx_destroy(ctx);
}

/* The weights over several buffers when the device's largest allocation is small (capped at
 * 64 KiB here; the tiny UNet's weights are about 400 KiB): the same numbers. */
static void weights_span_several_buffers(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/sd/sd1_single.safetensors", LDMCL_TEST_REF_DIR);
    ldm_sd_model m;
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_ctx_set_max_allocation(ctx, 64 << 10);
    const char *unet_in[] = {"unet.x", "unet.t", "text.out"};
    double e = run_against(ctx, &m, "sd1", unet_in, 3, "unet.out", sd_fixture_record_unet,
                           ldm_sd_load_unet);
    print_message("  UNet with buffers of at most 64 KiB: %.2e norm-wise from diffusers\n", e);
    assert_true(e < 1e-4);
    ldm_ctx_destroy(ctx);
}

/* tools/check_sd_full.sh: a full-size SD 1.5 or 2.1 single file with random weights and
 * diffusers' UNet forward at 64x64 latents ($LDMCL_SD_FULL: the files' common stem); skipped
 * otherwise. */
static void full_size_unet(void **state) {
    (void)state;
    const char *stem = getenv("LDMCL_SD_FULL");
    if (!stem || !*stem) skip();
    char path[4096], ref[4096];
    snprintf(path, sizeof path, "%s.safetensors", stem);
    snprintf(ref, sizeof ref, "%s-reference.safetensors", stem);
    ldm_sd_model m;
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    char what[256];
    ldm_sd_model_describe(&m, what, sizeof what);
    ldm_safetensors *keep = g_want;
    assert_status(ldm_safetensors_open(ref, &g_want), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    size_t params = 0;
    assert_status(ldm_sd_unet_param_count(ctx, &m.unet, &params), LDM_OK);
    const char *in[] = {"x", "t", "context"};
    double t0 = ldm_now_s();
    /* keys without a family prefix: run_against adds "<fam>." */
    double e = run_against(ctx, &m, NULL, in, 3, "out", sd_fixture_record_unet, ldm_sd_load_unet);
    print_message("  %s: %s, %zu UNet parameters; forward at 64x64 against diffusers: %.2e "
                  "norm-wise (compile, load and run %.1f s)\n",
                  path, what, params, e, ldm_now_s() - t0);
    assert_true(e < 1e-4);
    ldm_ctx_destroy(ctx);
    ldm_safetensors_close(g_want);
    g_want = keep;
}

/* Decoding a tile at a time: a latent within one tile decodes exactly as whole; a 16x16 latent
 * in tiles of 8 (3 x 3 tiles, starting at cells 0, 6, 8) is finite and, where only one tile
 * covers a pixel, that tile's decode itself (elsewhere the overlapping tiles' blend). */
static void vae_tiling(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/sd/sd1_single.safetensors", LDMCL_TEST_REF_DIR);
    ldm_sd_model m;
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    enum { L = 16, S = 64 };
    static float z[4 * L * L], whole[3 * S * S], tiled[3 * S * S], same[3 * S * S];
    uint32_t x = 7;
    for (int i = 0; i < 4 * L * L; i++)
        z[i] = ((float)((x = x * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f) * 0.4f;
    ldm_sd_codec *a, *b, *c;
    assert_status(ldm_sd_codec_create(ctx, &m, 1, S, S, 0, 0, &a), LDM_OK);
    assert_status(ldm_sd_codec_create(ctx, &m, 1, S, S, 8, 0, &b), LDM_OK);
    assert_status(ldm_sd_codec_create(ctx, &m, 1, S, S, 32, 0, &c), LDM_OK);
    assert_status(ldm_sd_codec_decode(a, z, whole), LDM_OK);
    assert_status(ldm_sd_codec_decode(b, z, tiled), LDM_OK);
    assert_status(ldm_sd_codec_decode(c, z, same), LDM_OK);
    assert_true(test_norm_err(same, whole, 3 * S * S) == 0.0);
    for (int i = 0; i < 3 * S * S; i++)
        assert_true(isfinite(tiled[i]));
    /* tiles start at latent cells 0, 6 and 8 each way: pixels 0..23 are the first tile's alone */
    static float corner[4 * 8 * 8], first[3 * 32 * 32];
    for (int ch = 0; ch < 4; ch++)
        for (int y = 0; y < 8; y++)
            memcpy(corner + (ch * 8 + y) * 8, z + (ch * L + y) * L, 8 * sizeof *z);
    ldm_sd_codec *d;
    assert_status(ldm_sd_codec_create(ctx, &m, 1, 32, 32, 0, 0, &d), LDM_OK);
    assert_status(ldm_sd_codec_decode(d, corner, first), LDM_OK);
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < 24; y++)
            for (int xx = 0; xx < 24; xx++)
                assert_true(tiled[(ch * S + y) * S + xx] == first[(ch * 32 + y) * 32 + xx]);
    print_message("  VAE decode of a 16x16 latent in tiles of 8: %.3f norm-wise from the whole "
                  "decode (this tiny random VAE's GroupNorms see each tile's statistics)\n",
                  test_norm_err(tiled, whole, 3 * S * S));
    ldm_sd_codec_destroy(a);
    ldm_sd_codec_destroy(b);
    ldm_sd_codec_destroy(c);
    ldm_sd_codec_destroy(d);
    assert_status(ldm_sd_codec_create(ctx, &m, 1, S, S, 6, 0, &a), LDM_ERR_INVALID_ARGUMENT);
    ldm_ctx_destroy(ctx);
}

/* Weights kept in half precision on the device: the tiny models' weights are F16 values, so the
 * UNet, the VAE and the text encoder compute exactly what they compute from float weights, from
 * half the memory. */
static void half_precision_weights(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/sd/sd2_single.safetensors", LDMCL_TEST_REF_DIR);
    ldm_sd_model m;
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    const char *unet_in[] = {"unet.x", "unet.t", "text.out"}, *z[] = {"vae.z"};
    const char *ids[] = {"text.ids"};
    int text_ndim, text_shape[LDM_MAX_DIMS];
    free(want("sd2.text.out", &text_ndim, text_shape));
    assert_int_equal(text_ndim, 3);
    struct {
        const char *what;
        const char *const *in;
        int n_in;
        const char *out;
        record_fn rec;
        load_fn load;
        size_t n;
    } cases[] = {
        {"UNet", unet_in, 3, "unet.out", sd_fixture_record_unet, ldm_sd_load_unet, 4 * 8 * 8},
        {"VAE decoder", z, 1, "vae.decoded", rec_decode, ldm_sd_load_vae, 3 * 16 * 16},
        {"text encoder", ids, 1, "text.out", sd_fixture_record_text, ldm_sd_load_text,
         (size_t)text_shape[0] * text_shape[1] * text_shape[2]}};
    for (int i = 0; i < 3; i++) {
        g_half = 0;
        run_against(ctx, &m, "sd2", cases[i].in, cases[i].n_in, cases[i].out, cases[i].rec,
                    cases[i].load);
        float *f32 = g_out;
        uint64_t f32_bytes = g_weights_bytes, f32_params = g_expect_bytes;
        assert_true(f32_bytes >= f32_params); /* and the graph's constants */
        g_out = NULL;
        g_half = 1;
        double e = run_against(ctx, &m, "sd2", cases[i].in, cases[i].n_in, cases[i].out,
                               cases[i].rec, cases[i].load);
        g_half = 0;
        print_message("  %s with half-precision weights: %.2e norm-wise from diffusers, weights "
                      "%llu bytes (float: %llu)\n",
                      cases[i].what, e, (unsigned long long)g_weights_bytes,
                      (unsigned long long)f32_bytes);
        for (size_t k = 0; k < cases[i].n; k++)
            assert_true(f32[k] == g_out[k]);
        /* halves: half the bytes but for each tensor's alignment (these tensors are tiny) */
        assert_int_equal(g_weights_bytes - g_expect_bytes, f32_bytes - f32_params);
        assert_true(g_weights_bytes * 10 < f32_bytes * 7);
        free(f32);
    }
    ldm_ctx_destroy(ctx);
}

static void sd1_single_file(void **state) {
    (void)state;
    check_model("sd1", "single");
}

static void sd1_diffusers_folder(void **state) {
    (void)state;
    check_model("sd1", "diffusers");
}

static void sd2_single_file(void **state) {
    (void)state;
    check_model("sd2", "single");
}

static void sd2_diffusers_folder(void **state) {
    (void)state;
    check_model("sd2", "diffusers");
}

/* 4 Euler steps over Karras sigmas with guidance 7.5 from seed 42's noise: the tiny 1.x model's
 * latents against diffusers' EulerDiscreteScheduler and UNet stepping the same chain. */
static void sd1_trajectory_matches_diffusers(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/sd/sd1_single.safetensors", LDMCL_TEST_REF_DIR);
    ldm_sd_model m;
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_schedule *s;
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, m.num_timesteps, m.beta_start,
                                      m.beta_end, &s),
                  LDM_OK);
    double sigmas[5];
    assert_status(ldm_ksampler_sigmas(LDM_SAMPLER_EULER, s, LDM_SIGMAS_KARRAS, 4, sigmas), LDM_OK);
    float *want_sigmas = want("sd1.trajectory.sigmas", NULL, NULL);
    for (int i = 0; i < 5; i++)
        assert_true(fabs(sigmas[i] - want_sigmas[i]) <= 1e-5 * fabs(want_sigmas[i]) + 1e-7);
    ldm_sampler_config sc = {.sd_unet = &m.unet,
                             .schedule = s,
                             .batch = 1,
                             .height = 8,
                             .width = 8,
                             .context_len = 77,
                             .guidance_scale = 7.5f,
                             .method = LDM_SAMPLER_EULER,
                             .steps = 4,
                             .scheduler = LDM_SIGMAS_KARRAS,
                             .prediction = LDM_PREDICT_EPSILON,
                             .seed = 42};
    ldm_sampler *sampler;
    assert_status(ldm_sampler_create(ctx, &sc, &sampler), LDM_OK);
    assert_status(ldm_sd_load_unet(&m, ldm_sampler_graph(sampler)), LDM_OK);
    float *cond = want("sd1.trajectory.cond", NULL, NULL);
    float *uncond = want("sd1.trajectory.uncond", NULL, NULL);
    assert_status(ldm_sampler_set_conditions(sampler, cond, uncond, NULL, NULL), LDM_OK);
    float got[4 * 8 * 8];
    assert_status(ldm_sampler_run(sampler, got), LDM_OK);
    float *w = want("sd1.trajectory.latents", NULL, NULL);
    double e = test_norm_err(got, w, 4 * 8 * 8);
    print_message("  euler, karras, 4 steps, guidance 7.5: latents %.2e norm-wise from diffusers' "
                  "(sigmas %.4f .. %.4f)\n",
                  e, sigmas[0], sigmas[3]);
    assert_true(e < 1e-4);
    free(w);
    free(cond);
    free(uncond);
    free(want_sigmas);
    ldm_sampler_destroy(sampler);
    ldm_schedule_destroy(s);
    ldm_ctx_destroy(ctx);
}

/* A file of the given tensors ([2] F32 each), under dir. */
static void write_names(const char *path, const char *const *names) {
    static const float v[2] = {0.5f, -0.5f};
    static const int64_t two[1] = {2};
    ldm_st_entry e[8];
    size_t n = 0;
    for (; names[n]; n++)
        e[n] = (ldm_st_entry){names[n], 1, two, v};
    assert_status(ldm_safetensors_write(path, e, n, NULL), LDM_OK);
}

static void expect_refusal(const char *path, const char *message) {
    ldm_sd_model m;
    ldm_status st = ldm_sd_model_inspect(path, &m);
    if (st == LDM_OK) fail_msg("'%s' was accepted; expected \"%s\"", path, message);
    assert_contains(ldm_last_error(), message);
}

static void bad_files_are_refused_by_name(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("sd_bad");
    char path[4096];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("PK", f);
    fclose(f);
    expect_refusal(path, "is a PyTorch pickle: ldmcl does not read pickles");
    expect_refusal(path, "torch.load");

    snprintf(path, sizeof path, "%s/xl.safetensors", dir);
    const char *xl[] = {"conditioner.embedders.0.transformer.text_model.final_layer_norm.weight",
                        "model.diffusion_model.input_blocks.0.0.weight", NULL};
    write_names(path, xl);
    expect_refusal(path, "is an SDXL checkpoint");
    snprintf(path, sizeof path, "%s/sd3.safetensors", dir);
    const char *sd3[] = {"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", NULL};
    write_names(path, sd3);
    expect_refusal(path, "is a Stable Diffusion 3 (MMDiT) checkpoint");
    snprintf(path, sizeof path, "%s/unknown.safetensors", dir);
    const char *unknown[] = {"net.0.weight", "net.0.bias",  "net.2.weight",
                             "net.2.bias",   "head.weight", NULL};
    write_names(path, unknown);
    expect_refusal(path, "has no Stable Diffusion UNet (model.diffusion_model.input_blocks.0.0."
                         "weight)");

    snprintf(path, sizeof path, "%s/no_text.safetensors", dir);
    sd_fixture_rewrite("sd1_single.safetensors", path, "cond_stage_model.", NULL, 0);
    expect_refusal(path, "has no text encoder");

    /* truncated: the header promises more bytes than the file has */
    snprintf(path, sizeof path, "%s/truncated.safetensors", dir);
    sd_fixture_rewrite("sd1_single.safetensors", path, NULL, NULL, 0);
    FILE *t = fopen(path, "r+b");
    assert_non_null(t);
    fseek(t, 0, SEEK_END);
    long size = ftell(t);
    fclose(t);
    assert_int_equal(truncate(path, size / 2), 0);
    expect_refusal(path, "truncated.safetensors");

    /* a tensor of another shape: inspecting passes (it reads other tensors), loading names it */
    snprintf(path, sizeof path, "%s/misshaped.safetensors", dir);
    const char *bad = "model.diffusion_model.input_blocks.1.0.in_layers.2.bias";
    sd_fixture_rewrite("sd1_single.safetensors", path, NULL, bad, 0);
    ldm_sd_model m;
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, 4, 8, 8));
    ldm_tensor *tt = ldm_graph_input(g, "t", LDM_SHAPE(1));
    ldm_tensor *c = ldm_graph_input(g, "c", LDM_SHAPE(1, 77, m.unet.context_dim));
    ldm_tensor_keep(ldm_sd_unet(g, &m.unet, x, tt, c));
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_sd_load_unet(&m, g), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "1 with another shape (model.diffusion_model.input_blocks.1."
                                      "0.in_layers.2.bias (file [8, 1], model [8]))");
    /* the VAE's attention projections stored as Linear weights (files converted from diffusers)
     * load as the original's 1x1 convolutions */
    snprintf(path, sizeof path, "%s/linear_vae.safetensors", dir);
    sd_fixture_rewrite("sd1_single.safetensors", path, NULL,
                       "first_stage_model.decoder.mid.attn_1.q.weight", 0);
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    const char *z[] = {"vae.z"};
    assert_true(run_against(ctx, &m, "sd1", z, 1, "vae.decoded", rec_decode, ldm_sd_load_vae) <
                1e-4);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
    test_rmtree(dir);
    free(dir);
}

static int setup(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/sd/sd_checkpoints.safetensors", LDMCL_TEST_REF_DIR);
    return ldm_safetensors_open(path, &g_want) == LDM_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    free(g_out);
    ldm_safetensors_close(g_want);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sd1_single_file),
        cmocka_unit_test(sd1_diffusers_folder),
        cmocka_unit_test(sd2_single_file),
        cmocka_unit_test(sd2_diffusers_folder),
        cmocka_unit_test(sd1_trajectory_matches_diffusers),
        cmocka_unit_test(weights_span_several_buffers),
        cmocka_unit_test(full_size_unet),
        cmocka_unit_test(vae_tiling),
        cmocka_unit_test(half_precision_weights),
        cmocka_unit_test(bad_files_are_refused_by_name),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
