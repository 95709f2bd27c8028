/* tests/test_clip.c: the CLIP text encoder against transformers' CLIPTextModel
 * (tests/ref/clip_text.safetensors; tiny random configurations, quick_gelu and gelu, with and
 * without padding): the last hidden state and the "clip skip" output within 1e-4 norm-wise, and
 * the gradient of every parameter of an MSE loss (1e-4 norm-wise, or twice PyTorch's float32
 * error). The config is read from a config.json as Hugging Face writes it. Also the real-size
 * parameter count and the config's error messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ldmcl/clip.h"
#include "ldmcl/safetensors.h"
#include "op_harness.h"

static ldm_safetensors *g_st;

static double meta_number(const ldm_json *m, const char *key) {
    const ldm_json *v = ldm_json_get(m, key);
    if (!v || v->type != LDM_JSON_NUMBER) fail_msg("metadata key '%s' missing", key);
    return v->number;
}

static double bar(const ldm_json *m, const char *key) {
    return fmax(OP_REL_TOL, 2.0 * meta_number(m, key));
}

/* Writes the case's config as a CLIPModel config.json (under "text_config") and reads it. */
static void read_config(const ldm_json *meta, const char *dir, ldm_clip_text_config *c) {
    const ldm_json *cfg = ldm_json_get(meta, "config");
    char path[4200], text[1024];
    const ldm_json *act = ldm_json_get(cfg, "hidden_act");
    snprintf(text, sizeof text,
             "{\"architectures\": [\"CLIPModel\"], \"projection_dim\": 512,\n \"text_config\": "
             "{\"vocab_size\": %d, \"hidden_size\": %d, \"intermediate_size\": %d, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
             "\"max_position_embeddings\": %d, \"hidden_act\": \"%s\", \"layer_norm_eps\": %g, "
             "\"bos_token_id\": 0, \"dropout\": 0.0},\n \"vision_config\": {\"hidden_size\": 768}}",
             (int)meta_number(cfg, "vocab_size"), (int)meta_number(cfg, "hidden_size"),
             (int)meta_number(cfg, "intermediate_size"), (int)meta_number(cfg, "num_hidden_layers"),
             (int)meta_number(cfg, "num_attention_heads"),
             (int)meta_number(cfg, "max_position_embeddings"), act->string,
             meta_number(cfg, "layer_norm_eps"));
    snprintf(path, sizeof path, "%s/config.json", dir);
    test_write_file(path, text, strlen(text));
    assert_status(ldm_clip_text_config_read(path, c), LDM_OK);
    assert_int_equal(c->hidden_size, (int)meta_number(cfg, "hidden_size"));
    assert_int_equal(c->num_layers, (int)meta_number(cfg, "num_hidden_layers"));
    assert_int_equal(c->act, strcmp(act->string, "gelu") ? LDM_CLIP_QUICK_GELU : LDM_CLIP_GELU);
    assert_true(c->layer_norm_eps == (float)meta_number(cfg, "layer_norm_eps"));
}

static void check_norm(const char *what, ldm_tensor *t, const char *key, double tol,
                       double *worst) {
    size_t n = ldm_tensor_numel(t);
    float *got = malloc(n * sizeof *got), *want = test_st_load(g_st, key, NULL, NULL);
    assert_non_null(got);
    assert_status(ldm_tensor_read(t, got), LDM_OK);
    double e = test_norm_err(got, want, n);
    if (e > tol) fail_msg("%s off by %.3g (norm-wise)", what, e);
    *worst = fmax(*worst, e);
    free(got);
    free(want);
}

static void run_case(const char *name) {
    const char *text = ldm_safetensors_metadata(g_st, name);
    assert_non_null(text);
    char err[128], key[256];
    ldm_json *meta = ldm_json_parse(text, strlen(text), err, sizeof err);
    assert_non_null(meta);
    char *dir = test_make_tmpdir("clip");
    ldm_clip_text_config c;
    read_config(meta, dir, &c);
    int padded = (int)meta_number(meta, "padded");
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    int ndim, shape[4];
    snprintf(key, sizeof key, "%s.in.ids", name);
    float *ids_data = test_st_load(g_st, key, &ndim, shape);
    ldm_tensor *ids = ldm_graph_input(g, "ids", 2, shape);
    ldm_tensor *mask = padded ? ldm_graph_input(g, "mask", 2, shape) : NULL;
    ldm_tensor *target = ldm_graph_input(g, "target", LDM_SHAPE(shape[0], shape[1], c.hidden_size));
    ldm_tensor *out = ldm_clip_text(g, &c, ids, mask, 0);
    ldm_tensor *skip1 = ldm_clip_text(g, &c, ids, mask, 1);
    ldm_tensor_keep(out);
    ldm_tensor_keep(skip1);
    assert_status(ldm_graph_backward(g, ldm_mse_loss(g, out, target)), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_tensor_write(ids, ids_data), LDM_OK);
    free(ids_data);
    if (mask) {
        snprintf(key, sizeof key, "%s.in.mask", name);
        float *m = test_st_load(g_st, key, NULL, NULL);
        assert_status(ldm_tensor_write(mask, m), LDM_OK);
        free(m);
    }
    snprintf(key, sizeof key, "%s.target", name);
    float *t = test_st_load(g_st, key, NULL, NULL);
    assert_status(ldm_tensor_write(target, t), LDM_OK);
    free(t);
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        snprintf(key, sizeof key, "%s.param.%s", name, ldm_tensor_name(p));
        float *v = test_st_load(g_st, key, NULL, NULL);
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
    assert_status(ldm_graph_zero_grads(g), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    double out_err = 0, grad_err = 0;
    snprintf(key, sizeof key, "%s.out", name);
    check_norm("last hidden state", out, key, bar(meta, "torch_fp32_out_norm_err"), &out_err);
    snprintf(key, sizeof key, "%s.out_skip1", name);
    check_norm("clip skip 1", skip1, key, bar(meta, "torch_fp32_out_norm_err"), &out_err);
    /* The key projection's bias gets no gradient in exact arithmetic (softmax ignores a shift
     * of all scores): such gradients are held to 1e-4 of the largest gradient's norm, absolutely;
     * the others norm-wise. */
    double top = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        snprintf(key, sizeof key, "%s.grad.%s", name, ldm_tensor_name(p));
        size_t n = ldm_tensor_numel(p);
        float *want = test_st_load(g_st, key, NULL, NULL);
        double norm = 0;
        for (size_t k = 0; k < n; k++)
            norm += (double)want[k] * want[k];
        top = fmax(top, sqrt(norm));
        free(want);
    }
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        snprintf(key, sizeof key, "%s.grad.%s", name, ldm_tensor_name(p));
        size_t n = ldm_tensor_numel(p);
        float *want = test_st_load(g_st, key, NULL, NULL);
        float *got = malloc(n * sizeof *got);
        assert_non_null(got);
        assert_status(ldm_tensor_read(ldm_tensor_grad(p), got), LDM_OK);
        double dn = 0, wn = 0;
        for (size_t k = 0; k < n; k++) {
            dn += ((double)got[k] - want[k]) * ((double)got[k] - want[k]);
            wn += (double)want[k] * want[k];
        }
        int zero = sqrt(wn) <= 1e-6 * top;
        double e = zero ? sqrt(dn) / top : sqrt(dn / wn);
        if (e > (zero ? OP_REL_TOL : bar(meta, "torch_fp32_grad_norm_err")))
            fail_msg("gradient of %s off by %.3g%s", ldm_tensor_name(p), e,
                     zero ? " of the largest gradient's norm" : " (norm-wise)");
        grad_err = fmax(grad_err, e);
        free(got);
        free(want);
    }
    printf("  %-18s hidden states %.2e, gradients %.2e norm-wise (PyTorch float32: %.2e, %.2e)\n",
           name, out_err, grad_err, meta_number(meta, "torch_fp32_out_norm_err"),
           meta_number(meta, "torch_fp32_grad_norm_err"));
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
    ldm_json_free(meta);
    test_rmtree(dir);
    free(dir);
}

static void text_model_matches_transformers(void **state) {
    (void)state;
    const char *cases[] = {"clip_quick_full", "clip_quick_padded", "clip_gelu_full",
                           "clip_gelu_padded"};
    for (int i = 0; i < 4; i++)
        run_case(cases[i]);
}

static void real_size_parameter_count(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_clip_text_config c;
    ldm_clip_text_config_default(&c);
    size_t n = 0;
    assert_status(ldm_clip_text_param_count(ctx, &c, &n), LDM_OK);
    assert_int_equal(n, 63165952);
    ldm_ctx_destroy(ctx);
}

static void expect_config_error(const char *dir, const char *json, ldm_status want,
                                const char *message) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    test_write_file(path, json, strlen(json));
    ldm_clip_text_config c;
    assert_status(ldm_clip_text_config_read(path, &c), want);
    assert_contains(ldm_last_error(), path);
    assert_contains(ldm_last_error(), message);
}

static void bad_configs_name_file_and_key(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("clip");
    expect_config_error(dir, "{\"hidden_act\": \"relu\"}", LDM_ERR_FORMAT,
                        "\"hidden_act\" is \"relu\"; ldmcl supports \"quick_gelu\" and \"gelu\"");
    expect_config_error(dir, "{\"text_config\": {\"hidden_size\": \"512\"}}", LDM_ERR_FORMAT,
                        "\"hidden_size\" must be a positive integer");
    expect_config_error(dir, "{\"hidden_size\": 100, \"num_attention_heads\": 8}",
                        LDM_ERR_INVALID_ARGUMENT,
                        "hidden_size = 100 is not divisible by num_attention_heads = 8");
    expect_config_error(dir, "{\"vocab_size\": 10,}", LDM_ERR_FORMAT, "not valid JSON");
    ldm_clip_text_config c;
    assert_status(ldm_clip_text_config_read("/no/such/config.json", &c), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "/no/such/config.json");
    /* An empty object is CLIPTextConfig's defaults. */
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    test_write_file(path, "{}", 2);
    assert_status(ldm_clip_text_config_read(path, &c), LDM_OK);
    assert_int_equal(c.vocab_size, 49408);
    assert_int_equal(c.num_layers, 12);
    test_rmtree(dir);
    free(dir);
}

static int open_refs(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/clip_text.safetensors", LDMCL_TEST_REF_DIR);
    return ldm_safetensors_open(path, &g_st) == LDM_OK ? 0 : -1;
}

static int close_refs(void **state) {
    (void)state;
    ldm_safetensors_close(g_st);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_model_matches_transformers),
        cmocka_unit_test(real_size_parameter_count),
        cmocka_unit_test(bad_configs_name_file_and_key),
    };
    return cmocka_run_group_tests(tests, open_refs, close_refs);
}
