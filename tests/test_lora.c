/* tests/test_lora.c: kohya-format LoRA files merged into Stable Diffusion models (ldmcl/lora.h).
 * The tiny SD 1.x and 2.x models of tests/ref/sd/ with a random LoRA on their attention,
 * projections, feed-forward, a ResBlock's convolution (LoCon) and the text encoder: the UNet's
 * and the text encoder's outputs against diffusers' load_lora_weights + fuse_lora
 * (tools/refgen/make_lora_refs.py), in both checkpoint layouts and with half-precision weights;
 * the merge's arithmetic (a missing alpha is the rank; weights add up; applying -w undoes w);
 * A1111's <lora:NAME:WEIGHT> tags; the files refused, named. (Adapters for training:
 * test_lora_train.c.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ldmcl/lora.h"
#include "ldmcl/lora_adapter.h"
#include "ldmcl/safetensors.h"
#include "sd_fixture.h"
#include "test_util.h"

static char g_tmp[256];

static int setup(void **state) {
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ldmcl-test-lora-XXXXXX");
    assert_non_null(mkdtemp(g_tmp));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* The UNet and the text encoder of a model, recorded for the reference's inputs and loaded. */
typedef struct models {
    ldm_sd_model m;
    ldm_graph *unet, *text;
    ldm_tensor *x, *t, *ctx, *ids, *unet_out, *text_out;
} models;

static void models_open(ldm_ctx *ctx, const char *fam, const char *layout, int half,
                        ldm_safetensors *ref, models *s) {
    char path[4096];
    sd_fixture_model_path(fam, layout, path, sizeof path);
    assert_status(ldm_sd_model_inspect(path, &s->m), LDM_OK);
    int shape[LDM_MAX_DIMS], ndim;
    assert_status(ldm_graph_create(ctx, &s->unet), LDM_OK);
    ldm_graph_set_half_weights(s->unet, half);
    free(test_st_load(ref, "unet.x", &ndim, shape));
    s->x = ldm_graph_input(s->unet, "x", ndim, shape);
    free(test_st_load(ref, "unet.t", &ndim, shape));
    s->t = ldm_graph_input(s->unet, "t", ndim, shape);
    free(test_st_load(ref, "unet.context", &ndim, shape));
    s->ctx = ldm_graph_input(s->unet, "context", ndim, shape);
    s->unet_out = ldm_sd_unet(s->unet, &s->m.unet, s->x, s->t, s->ctx);
    assert_non_null(s->unet_out);
    ldm_tensor_keep(s->unet_out);
    assert_status(ldm_graph_create(ctx, &s->text), LDM_OK);
    ldm_graph_set_half_weights(s->text, half);
    free(test_st_load(ref, "text.ids", &ndim, shape));
    s->ids = ldm_graph_input(s->text, "ids", ndim, shape);
    s->text_out = ldm_clip_text(s->text, &s->m.text, s->ids, NULL, s->m.text_skip);
    assert_non_null(s->text_out);
    ldm_tensor_keep(s->text_out);
    ldm_graph *gs[2] = {s->unet, s->text};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < ldm_graph_param_count(gs[k]); i++)
            ldm_tensor_set_trainable(ldm_graph_param_at(gs[k], i), 0);
        assert_status(ldm_graph_compile(gs[k]), LDM_OK);
    }
    assert_status(ldm_sd_load_unet(&s->m, s->unet), LDM_OK);
    assert_status(ldm_sd_load_text(&s->m, s->text), LDM_OK);
}

static void models_close(models *s) {
    ldm_graph_destroy(s->unet);
    ldm_graph_destroy(s->text);
}

/* Runs graph g on the reference's inputs and compares its output with the reference's. */
static double run(ldm_safetensors *ref, ldm_graph *g, ldm_tensor **in, const char *const *keys,
                  int n_in, ldm_tensor *out, const char *out_key) {
    for (int i = 0; i < n_in; i++) {
        float *data = test_st_load(ref, keys[i], NULL, NULL);
        assert_status(ldm_tensor_write(in[i], data), LDM_OK);
        free(data);
    }
    assert_status(ldm_graph_run(g), LDM_OK);
    size_t n = ldm_tensor_numel(out);
    float *got = malloc(n * sizeof *got), *want = test_st_load(ref, out_key, NULL, NULL);
    assert_non_null(got);
    assert_status(ldm_tensor_read(out, got), LDM_OK);
    double e = test_norm_err(got, want, n);
    free(got);
    free(want);
    return e;
}

static double run_unet(ldm_safetensors *ref, models *s) {
    ldm_tensor *in[] = {s->x, s->t, s->ctx};
    const char *keys[] = {"unet.x", "unet.t", "unet.context"};
    return run(ref, s->unet, in, keys, 3, s->unet_out, "unet.out");
}

static double run_text(ldm_safetensors *ref, models *s) {
    const char *keys[] = {"text.ids"};
    return run(ref, s->text, &s->ids, keys, 1, s->text_out, "text.out");
}

static void check_family(const char *fam) {
    char ref_path[4096], lora[4096];
    snprintf(ref_path, sizeof ref_path, "%s/sd/%s_lora.safetensors", LDMCL_TEST_REF_DIR, fam);
    snprintf(lora, sizeof lora, "%s/sd/%s_lora_kohya.safetensors", LDMCL_TEST_REF_DIR, fam);
    ldm_safetensors *ref;
    assert_status(ldm_safetensors_open(ref_path, &ref), LDM_OK);
    float weight = (float)atof(ldm_safetensors_metadata(ref, "weight"));
    int adapters = atoi(ldm_safetensors_metadata(ref, "adapters"));
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    static const char *layouts[] = {"single", "diffusers"};
    for (int l = 0; l < 2; l++)
        for (int half = 0; half < 2; half++) {
            if (half && l) continue; /* the weights as halves: one layout is enough */
            models s;
            models_open(ctx, fam, layouts[l], half, ref, &s);
            double before = run_unet(ref, &s);
            int merged = 0;
            assert_status(ldm_sd_lora_merge(&s.m, lora, weight, s.unet, s.text, &merged), LDM_OK);
            assert_int_equal(merged, adapters);
            double eu = run_unet(ref, &s), et = run_text(ref, &s);
            print_message("  %s %s%s + LoRA (%d layers, weight %.2f) against diffusers' "
                          "load_lora_weights: UNet %.2e, text encoder %.2e norm-wise (%.2e "
                          "without the LoRA)\n",
                          fam, layouts[l], half ? " (half-precision weights)" : "", merged, weight,
                          eu, et, before);
            /* halves: the merged weights are rounded to halves, the reference's are not */
            double bar = half ? 2e-3 : 1e-5;
            assert_true(eu < bar && et < bar);
            assert_true(before > 100 * bar); /* the LoRA changes what is compared */
            /* -weight undoes it (up to rounding) */
            assert_status(ldm_sd_lora_merge(&s.m, lora, -weight, s.unet, s.text, &merged), LDM_OK);
            double undone = run_unet(ref, &s);
            assert_true(fabs(undone - before) < 1e-3 * before);
            models_close(&s);
        }
    ldm_ctx_destroy(ctx);
    ldm_safetensors_close(ref);
}

static void sd1_lora_matches_diffusers(void **state) {
    (void)state;
    check_family("sd1");
}

static void sd2_lora_matches_diffusers(void **state) {
    (void)state;
    check_family("sd2");
}

/* Writes a LoRA of the given tensors (F32) to g_tmp/name. */
static void write_lora(const char *name, const ldm_st_entry *e, size_t n, char *path, size_t size) {
    snprintf(path, size, "%s/%s", g_tmp, name);
    assert_status(ldm_safetensors_write(path, e, n, NULL), LDM_OK);
}

static float *read_param(ldm_graph *g, const char *name, size_t *n) {
    ldm_tensor *t = ldm_graph_find(g, name);
    assert_non_null(t);
    *n = ldm_tensor_numel(t);
    float *v = malloc(*n * sizeof *v);
    assert_non_null(v);
    assert_status(ldm_tensor_read(t, v), LDM_OK);
    return v;
}

/* W += weight * alpha / rank * up . down, checked element by element: a 3x3 convolution (LoCon:
 * down [r, in, 3, 3], up [out, r, 1, 1]) without alpha (alpha = rank) and a text encoder Linear
 * with alpha 3; two LoRAs on one layer add up. */
static void merge_arithmetic(void **state) {
    (void)state;
    char ref_path[4096];
    snprintf(ref_path, sizeof ref_path, "%s/sd/sd1_lora.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *ref;
    assert_status(ldm_safetensors_open(ref_path, &ref), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    models s;
    models_open(ctx, "sd1", "single", 0, ref, &s);
    size_t nc, nf;
    float *conv0 = read_param(s.unet, "input_blocks.0.0.weight", &nc);
    float *fc0 = read_param(s.text, "text_model.encoder.layers.1.mlp.fc1.weight", &nf);
    int cout = ldm_tensor_dim(ldm_graph_find(s.unet, "input_blocks.0.0.weight"), 0);
    int cin = (int)(nc / (size_t)cout / 9);
    int fout =
        ldm_tensor_dim(ldm_graph_find(s.text, "text_model.encoder.layers.1.mlp.fc1.weight"), 0);
    int fin = (int)(nf / (size_t)fout);
    enum { R = 2 };
    float *cd = malloc((size_t)R * cin * 9 * sizeof *cd), *cu = malloc((size_t)cout * R * 4);
    float *fd = malloc((size_t)R * fin * 4), *fu = malloc((size_t)fout * R * 4), alpha = 3.0f;
    assert_true(cd && cu && fd && fu);
    for (int i = 0; i < R * cin * 9; i++)
        cd[i] = (float)((i * 7) % 11 - 5) / 8.0f;
    for (int i = 0; i < cout * R; i++)
        cu[i] = (float)((i * 5) % 7 - 3) / 4.0f;
    for (int i = 0; i < R * fin; i++)
        fd[i] = (float)((i * 3) % 5 - 2) / 4.0f;
    for (int i = 0; i < fout * R; i++)
        fu[i] = (float)((i * 11) % 13 - 6) / 8.0f;
    int64_t sd_[4] = {R, cin, 3, 3}, su[4] = {cout, R, 1, 1}, sfd[2] = {R, fin}, sfu[2] = {fout, R},
            s0[1] = {1};
    (void)s0;
    ldm_st_entry e[] = {
        {"lora_unet_conv_in.lora_down.weight", 4, sd_, cd},
        {"lora_unet_conv_in.lora_up.weight", 4, su, cu},
        {"lora_te_text_model_encoder_layers_1_mlp_fc1.lora_down.weight", 2, sfd, fd},
        {"lora_te_text_model_encoder_layers_1_mlp_fc1.lora_up.weight", 2, sfu, fu},
        {"lora_te_text_model_encoder_layers_1_mlp_fc1.alpha", 0, NULL, &alpha},
    };
    char path[512];
    write_lora("arith.safetensors", e, 5, path, sizeof path);
    int merged;
    assert_status(ldm_sd_lora_merge(&s.m, path, 0.5f, s.unet, s.text, &merged), LDM_OK);
    assert_int_equal(merged, 2);
    assert_status(ldm_sd_lora_merge(&s.m, path, 0.25f, s.unet, s.text, &merged), LDM_OK);
    float *conv1 = read_param(s.unet, "input_blocks.0.0.weight", &nc);
    float *fc1 = read_param(s.text, "text_model.encoder.layers.1.mlp.fc1.weight", &nf);
    double worst = 0;
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin * 9; i++) {
            double d = 0;
            for (int r = 0; r < R; r++)
                d += (double)cu[o * R + r] * cd[r * cin * 9 + i];
            double want = conv0[(size_t)o * cin * 9 + i] + 0.75 * d; /* alpha = rank */
            worst = fmax(worst, fabs(conv1[(size_t)o * cin * 9 + i] - want));
        }
    for (int o = 0; o < fout; o++)
        for (int i = 0; i < fin; i++) {
            double d = 0;
            for (int r = 0; r < R; r++)
                d += (double)fu[o * R + r] * fd[r * fin + i];
            double want = fc0[(size_t)o * fin + i] + 0.75 * alpha / R * d;
            worst = fmax(worst, fabs(fc1[(size_t)o * fin + i] - want));
        }
    print_message("  two merges of a LoCon and a Linear LoRA: worst %.2e from W + w a/r up.down\n",
                  worst);
    assert_true(worst < 1e-5);
    /* the UNet alone: the text encoder's adapters are left out */
    assert_status(ldm_sd_lora_merge(&s.m, path, 1.0f, s.unet, NULL, &merged), LDM_OK);
    assert_int_equal(merged, 1);
    free(conv0);
    free(conv1);
    free(fc0);
    free(fc1);
    free(cd);
    free(cu);
    free(fd);
    free(fu);
    models_close(&s);
    ldm_ctx_destroy(ctx);
    ldm_safetensors_close(ref);
}

/* Files that are not a LoRA of this model: an error naming the file and the tensor, and the
 * weights untouched. */
static void bad_loras_are_refused(void **state) {
    (void)state;
    char ref_path[4096], other[4096];
    snprintf(ref_path, sizeof ref_path, "%s/sd/sd1_lora.safetensors", LDMCL_TEST_REF_DIR);
    snprintf(other, sizeof other, "%s/sd/sd2_lora_kohya.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *ref;
    assert_status(ldm_safetensors_open(ref_path, &ref), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    models s;
    models_open(ctx, "sd1", "single", 0, ref, &s);
    double before = run_unet(ref, &s);
    int merged = 0;
    /* a LoRA of another base model (SD 2.x's tiny one): shapes differ */
    assert_status(ldm_sd_lora_merge(&s.m, other, 1.0f, s.unet, s.text, &merged), LDM_ERR_FORMAT);
    print_message("  another model's LoRA: %s\n", ldm_last_error());
    assert_non_null(strstr(ldm_last_error(), "another"));
    assert_non_null(strstr(ldm_last_error(), other));
    assert_int_equal(merged, 0);
    float one[4] = {1, 1, 1, 1};
    int64_t s22[2] = {2, 2};
    struct {
        const char *key, *expect;
    } bad[] = {
        {"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", "SDXL"},
        {"lora_unet_conv_in.hada_w1_a", "LoHa"},
        {"unet.conv_in.lora_A.weight", "diffusers/peft"},
        {"lora_unet_conv_in.lora_down.weight", "no .lora_up.weight"},
        {"lora_unet_no_such_layer.lora_down.weight", NULL},
        {"model.diffusion_model.conv_in.weight", "not a kohya LoRA"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[512], name[64];
        snprintf(name, sizeof name, "bad%zu.safetensors", i);
        ldm_st_entry e[2] = {{bad[i].key, 2, s22, one}, {NULL, 0, NULL, NULL}};
        size_t n = 1;
        if (!bad[i].expect) { /* a complete pair that names no layer */
            e[1] = (ldm_st_entry){"lora_unet_no_such_layer.lora_up.weight", 2, s22, one};
            n = 2;
        }
        write_lora(name, e, n, path, sizeof path);
        assert_status(ldm_sd_lora_merge(&s.m, path, 1.0f, s.unet, s.text, &merged), LDM_ERR_FORMAT);
        print_message("  %s\n", ldm_last_error());
        assert_non_null(strstr(ldm_last_error(), path));
        assert_non_null(strstr(ldm_last_error(), bad[i].expect ? bad[i].expect : "names no"));
    }
    /* a value that is not a number, in the second layer: refused before the first changes */
    {
        float down[2 * 8], up[8 * 2], nan_up[8 * 2];
        for (int k = 0; k < 16; k++)
            down[k] = up[k] = nan_up[k] = 0.5f;
        nan_up[3] = NAN;
        int64_t sd_[4] = {2, 8, 1, 1}, su[4] = {8, 2, 1, 1};
        ldm_st_entry e[] = {
            {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", 4, sd_, down},
            {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", 4, su, up},
            {"lora_unet_down_blocks_0_attentions_1_proj_in.lora_down.weight", 4, sd_, down},
            {"lora_unet_down_blocks_0_attentions_1_proj_in.lora_up.weight", 4, su, nan_up}};
        char path[512];
        write_lora("nan.safetensors", e, 4, path, sizeof path);
        assert_status(ldm_sd_lora_merge(&s.m, path, 1.0f, s.unet, s.text, &merged), LDM_ERR_FORMAT);
        print_message("  %s\n", ldm_last_error());
        assert_non_null(strstr(ldm_last_error(), "attentions_1_proj_in.lora_up.weight"));
        assert_non_null(strstr(ldm_last_error(), "1 NaN or infinite"));
    }
    assert_true(run_unet(ref, &s) == before); /* nothing changed */
    /* finding files: .safetensors added; a pickle refused with the conversion; none: named */
    char path[4096], pickle[600];
    snprintf(pickle, sizeof pickle, "%s/old.ckpt", g_tmp);
    FILE *f = fopen(pickle, "w");
    assert_non_null(f);
    fclose(f);
    assert_status(ldm_lora_find(g_tmp, "bad0", path, sizeof path), LDM_OK);
    assert_non_null(strstr(path, "bad0.safetensors"));
    assert_status(ldm_lora_find(g_tmp, "bad0.safetensors", path, sizeof path), LDM_OK);
    assert_status(ldm_lora_find(g_tmp, "old", path, sizeof path), LDM_ERR_FORMAT);
    assert_non_null(strstr(ldm_last_error(), "pickle"));
    assert_status(ldm_lora_find(g_tmp, "missing", path, sizeof path), LDM_ERR_NOT_FOUND);
    assert_non_null(strstr(ldm_last_error(), "missing.safetensors"));
    models_close(&s);
    ldm_ctx_destroy(ctx);
    ldm_safetensors_close(ref);
}

/* A1111's tags: taken out of the prompt, weights read, bad tags quoted. */
static void prompt_tags(void **state) {
    (void)state;
    ldm_lora_ref refs[LDM_LORA_MAX_REFS];
    char out[256];
    int n;
    assert_status(ldm_lora_parse_prompt("<lora:style:0.6> a cat, <lora:detail> sitting", out,
                                        sizeof out, refs, LDM_LORA_MAX_REFS, &n),
                  LDM_OK);
    assert_int_equal(n, 2);
    assert_string_equal(out, "a cat,  sitting");
    assert_string_equal(refs[0].name, "style");
    assert_true(refs[0].weight == 0.6f);
    assert_string_equal(refs[1].name, "detail");
    assert_true(refs[1].weight == 1.0f);
    assert_status(ldm_lora_parse_prompt("no tags: 2 < 3 > 1", out, sizeof out, refs, 4, &n),
                  LDM_OK);
    assert_int_equal(n, 0);
    assert_string_equal(out, "no tags: 2 < 3 > 1");
    assert_status(ldm_lora_parse_prompt("a <lora:x:-1.5e0>", out, sizeof out, refs, 4, &n), LDM_OK);
    assert_true(refs[0].weight == -1.5f);
    assert_string_equal(out, "a");
    const char *bad[] = {"a <lora:x:abc>",           "a <lora::1>", "a <lora:x:1", "<lora:../x:1>",
                         "<lora:a><lora:b><lora:c>", "<lora:x:nan>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_status(ldm_lora_parse_prompt(bad[i], out, sizeof out, refs, 2, &n),
                      LDM_ERR_INVALID_ARGUMENT);
        print_message("  '%s': %s\n", bad[i], ldm_last_error());
    }
    assert_status(ldm_lora_parse_prompt("a long prompt", out, 5, refs, 2, &n),
                  LDM_ERR_INVALID_ARGUMENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prompt_tags),
        cmocka_unit_test(sd1_lora_matches_diffusers),
        cmocka_unit_test(sd2_lora_matches_diffusers),
        cmocka_unit_test(merge_arithmetic),
        cmocka_unit_test(bad_loras_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
